#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: release_info
short_description: Report the releases of an application root, the rollback target and recent events
description:
  - Reads C(<root>/current), the ledger C(<root>/.redbutton/ledger.json) and the deploy lock, and
    reports the current release, the rollback target (C(previous)), every release with its status
    and the most recent events. Changes nothing.
  - On a host where the root or the ledger does not exist yet, returns empty lists and null values
    instead of failing.
  - A ledger that does not parse or has an unknown schema is an error (and is left untouched).
extends_documentation_fragment:
  - redbutton.deploy.root
  - redbutton.deploy.root.attributes
attributes:
  diff_mode:
    support: none
    details: Nothing is ever changed, so there is nothing to diff.
  idempotent:
    support: full
    description: It only reads; running it again gives the same answer while nothing else changes the root.
options:
  events:
    description:
      - How many of the most recent events to return (the ledger keeps at most 500). V(0) returns none.
    type: int
    default: 20
seealso:
  - module: redbutton.deploy.release
  - module: redbutton.deploy.lock
author:
  - redbutton.deploy contributors (@redbutton)
'''

EXAMPLES = r'''
- name: Read the release state of the app
  redbutton.deploy.release_info:
    root: /srv/app
  register: app_releases

- name: Show where a rollback would go
  ansible.builtin.debug:
    msg: "current {{ app_releases.current }}, rollback target {{ app_releases.previous }}"
'''

RETURN = r'''
exists:
  description: Whether the ledger exists.
  returned: always
  type: bool
current:
  description: The release C(<root>/current) points to, or null.
  returned: always
  type: str
  sample: v2
previous:
  description:
    - The rollback target, or null. The most recently activated release other than the current one
      that is still present and not C(failed) or C(rolled_back).
  returned: always
  type: str
  sample: v1
releases:
  description: Every release in the ledger, oldest first, with its status and where it lives.
  returned: always
  type: list
  elements: dict
  sample:
    - id: v1
      status: ok
      checksum: sha256:0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9
      source: /tmp/app-v1.tar.gz
      created_at: '2026-11-26T05:00:00Z'
      activated_at: '2026-11-26T05:01:00Z'
      activated_seq: 3
      by: alice
      metadata: {}
      path: /srv/app/releases/v1
      present: true
      current: false
events:
  description: The last O(events) ledger events, oldest first.
  returned: always
  type: list
  elements: dict
  sample:
    - seq: 7
      time: '2026-11-26T05:01:00Z'
      event: activated
      release: v2
      from: v1
      reason: rollout
      by: alice
      status: active
last_switch:
  description: The last switch of C(current) (from, to, reason, time, by), or null.
  returned: always
  type: dict
  sample: {from: v1, to: v2, reason: rollout, time: '2026-11-26T05:01:00Z', by: alice}
lock:
  description:
    - The holder of the deploy lock (owner, host, pid, acquired_at, ttl, expires_at), or null.
    - A lock file that cannot be read gives a dict with only C(error), the reason.
  returned: always
  type: dict
  sample: {owner: rollout-42, host: web1, pid: 4242, acquired_at: '2026-11-26T05:00:00Z', ttl: 3600,
           expires_at: '2026-11-26T06:00:00Z'}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.redbutton.deploy.plugins.module_utils._common import ROOT_ARGUMENT_SPEC
from ansible_collections.redbutton.deploy.plugins.module_utils._hosts import run_module
from ansible_collections.redbutton.deploy.plugins.module_utils._release import ReleaseInfo


def main():
    argument_spec = dict(ROOT_ARGUMENT_SPEC)
    argument_spec.update(events=dict(type='int', default=20))
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    run_module(module, ReleaseInfo(module.params['root'], events=module.params['events']).run)


if __name__ == '__main__':
    main()
