# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: runbook_plan
short_description: Turn what the runbook playbook read from each host into the runbook's facts
version_added: 0.1.0
description:
  - Used by the C(redbutton.deploy.runbook) playbook; the result is what its template renders and
    what it writes as the runbook's JSON twin.
  - Builds one plan per host (the release now and to come, the rollback commands, the health checks,
    the baseline, the database part and what to do when each step fails) and groups hosts whose
    plans are identical.
options:
  _input:
    description:
      - One dict per host, as the runbook playbook gathers them (C(host), C(root), C(info), C(stage),
        C(migrate), C(baseline), the role variables).
    type: list
    elements: dict
    required: true
  inventory:
    description: The inventory sources, repeated as C(-i) in the commands.
    type: list
    elements: str
    default: []
  extra:
    description: The C(-e) values the commands repeat (for example C(redbutton_app)).
    type: dict
    default: {}
  generated_at:
    description: When the runbook was written (UTC).
    type: str
author:
  - redbutton.deploy contributors (@redbutton)
'''

EXAMPLES = r'''
- name: Build the runbook's facts from every host's answers
  ansible.builtin.set_fact:
    runbook: >-
      {{ ansible_play_hosts | map('extract', hostvars, '_redbutton_runbook_raw') | list
         | redbutton.deploy.runbook_plan(inventory=ansible_inventory_sources, extra={'redbutton_app': 'shop'}) }}
'''

RETURN = r'''
_value:
  description: The runbook's facts.
  type: dict
  contains:
    release:
      description: The release the rollout moves to.
      type: str
    hosts:
      description: The plan of each host, by inventory name.
      type: dict
    groups:
      description: Hosts with identical plans, each C({hosts, plan}).
      type: list
      elements: dict
'''

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text

from ansible_collections.redbutton.deploy.plugins.module_utils._common import RedbuttonError
from ansible_collections.redbutton.deploy.plugins.module_utils._runbook import build_runbook


def runbook_plan(hosts, inventory=None, extra=None, generated_at=None):
    try:
        return build_runbook(list(hosts or []), dict(inventory=list(inventory or []), extra=dict(extra or {}),
                                                     generated_at=generated_at))
    except RedbuttonError as exc:
        raise AnsibleFilterError(to_text(exc))


class FilterModule(object):

    def filters(self):
        return {'runbook_plan': runbook_plan}
