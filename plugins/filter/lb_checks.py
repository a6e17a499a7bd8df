# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: lb_checks
short_description: The load balancer checks of a run, refusing a bad redbutton_load_balancer before any host changes
version_added: 0.1.0
description:
  - Takes each host's C(redbutton_load_balancer) and returns one check per load balancer host, admin socket and backend,
    with every server the play will drain there. The roles run each check on the load balancer host once per run, before
    the first host changes.
  - Fails naming the setting and the host when a host names a load balancer C(host) that is not in the inventory, or a
    C(kind) that is not known.
options:
  _input:
    description: Each host of the play mapped to its C(redbutton_load_balancer) (empty when it has none).
    type: dict
    required: true
  inventory:
    description: The names of every host of the inventory.
    type: list
    elements: str
    required: true
author:
  - redbutton.deploy contributors (@redbutton)
'''

EXAMPLES = r'''
- name: Check each load balancer of the play
  ansible.builtin.debug:
    msg: "{{ item.kind }} backend {{ item.backend }} on {{ item.host }}: {{ item.servers | join(', ') }}"
  loop: >-
    {{ dict(ansible_play_hosts_all | zip(ansible_play_hosts_all | map('extract', hostvars)
       | map(attribute='redbutton_load_balancer', default={}))) | redbutton.deploy.lb_checks(groups['all']) }}
'''

RETURN = r'''
_value:
  description: One check per load balancer host, socket and backend.
  type: list
  elements: dict
  contains:
    kind:
      description: The kind of load balancer.
      type: str
    host:
      description: The inventory host the load balancer runs on.
      type: str
    socket:
      description: The admin socket on that host.
      type: str
    backend:
      description: The backend.
      type: str
    servers:
      description: The server names of the hosts of the play in that backend.
      type: list
      elements: str
'''

from ansible.errors import AnsibleFilterError

from ansible_collections.redbutton.deploy.plugins.module_utils._common import RedbuttonError
from ansible_collections.redbutton.deploy.plugins.module_utils._fleet import lb_checks as _lb_checks


def lb_checks(settings, inventory):
    if not isinstance(settings, dict):
        raise AnsibleFilterError('lb_checks needs a mapping of each host of the play to its redbutton_load_balancer')
    try:
        return _lb_checks(settings, list(inventory or []))
    except RedbuttonError as exc:
        raise AnsibleFilterError(str(exc))


class FilterModule(object):

    def filters(self):
        return {'lb_checks': lb_checks}
