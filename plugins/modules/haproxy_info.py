#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: haproxy_info
short_description: Read the servers of an HAProxy backend through its admin socket
description:
  - Asks HAProxy's runtime API (C(show info), C(show stat)) on the admin socket for one backend's
    servers, with their status and current sessions. Changes nothing.
  - Fails with a message naming the socket when it does not answer, when the backend does not exist,
    or when one of O(servers) is not a server of the backend.
  - The rollout and rollback roles run it once per run on the load balancer host, before the first
    host is drained with C(community.general.haproxy) (the role variable C(redbutton_load_balancer)).
  - Run it on the host where HAProxy runs (C(delegate_to)), as a user who may write to the socket.
attributes:
  check_mode:
    support: full
    description: It only reads, so it runs in check mode as it does otherwise.
  diff_mode:
    support: none
    description: Will return details on what has changed when in diff mode.
    details: Nothing is ever changed, so there is nothing to diff.
  platform:
    platforms: posix
    description: Target OS/families that can be operated against.
    support: N/A
  idempotent:
    support: full
    description: It only reads.
options:
  socket:
    description:
      - The admin socket, the path of the C(stats socket ... level admin) line in C(haproxy.cfg).
    type: path
    default: /run/haproxy/admin.sock
  backend:
    description: The backend whose servers to report.
    type: str
    required: true
  servers:
    description: Server names that must be in O(backend); any that is not fails the module, naming it.
    type: list
    elements: str
    default: []
  timeout:
    description: Seconds to wait for each answer of the socket.
    type: int
    default: 5
seealso:
  - module: community.general.haproxy
author:
  - redbutton.deploy contributors (@redbutton)
'''

EXAMPLES = r'''
- name: Check that haproxy on lb1 has the servers a rollout will drain
  redbutton.deploy.haproxy_info:
    backend: app
    servers: "{{ ansible_play_hosts_all }}"
  delegate_to: lb1
  run_once: true
  register: app_backend

- name: Show the servers and their sessions
  ansible.builtin.debug:
    msg: "{{ app_backend.servers | map(attribute='name') | zip(app_backend.servers | map(attribute='sessions')) }}"
'''

RETURN = r'''
version:
  description: The HAProxy version, as C(show info) says it.
  returned: success
  type: str
  sample: 2.6.12-1+deb12u1
backend:
  description: The backend reported.
  returned: success
  type: str
  sample: app
servers:
  description: The servers of the backend, in HAProxy's order.
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: The server name (C(svname)).
      type: str
    status:
      description: HAProxy's status of the server, for example C(UP), C(DOWN), C(DRAIN), C(MAINT).
      type: str
    sessions:
      description: Current sessions on the server (C(scur)).
      type: int
    weight:
      description: The server's effective weight.
      type: int
    address:
      description: The server's address and port.
      type: str
  sample:
    - {name: web1, status: UP, sessions: 0, weight: 1, address: '10.0.0.11:8080'}
    - {name: web2, status: MAINT, sessions: 0, weight: 1, address: '10.0.0.12:8080'}
problem:
  description: What is wrong when the module fails - C(socket) (no answer), C(backend) (no such backend) or C(server) (a server of O(servers) is missing).
  returned: failure
  type: str
  sample: server
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.redbutton.deploy.plugins.module_utils._haproxy import DEFAULT_SOCKET, HAProxyInfo
from ansible_collections.redbutton.deploy.plugins.module_utils._hosts import run_module


def main():
    module = AnsibleModule(
        argument_spec=dict(
            socket=dict(type='path', default=DEFAULT_SOCKET),
            backend=dict(type='str', required=True),
            servers=dict(type='list', elements='str', default=[]),
            timeout=dict(type='int', default=5),
        ),
        supports_check_mode=True,
    )
    params = module.params
    run_module(module, HAProxyInfo(params['socket'], params['backend'], params['servers'], params['timeout']).run)


if __name__ == '__main__':
    main()
