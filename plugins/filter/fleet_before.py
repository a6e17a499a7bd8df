# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: fleet_before
short_description: Where a host stood before a run, from its ledger events and the run id
version_added: 0.1.0
description:
  - Every ledger event records the id of the run that wrote it. The first switch of C(current) with a run's id says
    which release the host had before that run; no such switch means the run never moved the host.
  - The fleet-wide rollback of the rollout and rehearse playbooks uses it to find exactly the hosts a run moved.
options:
  _input:
    description: The ledger events, oldest first (RV(redbutton.deploy.release_info#module:events)).
    type: list
    elements: dict
    required: true
  run_id:
    description: The run's id.
    type: str
    required: true
  current:
    description: The host's current release (RV(redbutton.deploy.release_info#module:current)).
    type: str
author:
  - redbutton.deploy contributors (@redbutton)
'''

EXAMPLES = r'''
- name: Say where the host stood before run 42
  ansible.builtin.debug:
    msg: "{{ ledger.events | redbutton.deploy.fleet_before('42', ledger.current) }}"
'''

RETURN = r'''
_value:
  description:
    - C(moved) - whether the run switched current; C(before) - the release it had before the run (the current one when
      the run did not move it); C(now) - the current release.
  type: dict
'''

from ansible_collections.redbutton.deploy.plugins.module_utils._fleet import before_run


def fleet_before(events, run_id, current=None):
    return before_run(events, run_id, current)


class FilterModule(object):

    def filters(self):
        return {'fleet_before': fleet_before}
