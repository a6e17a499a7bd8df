# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: fleet_problems
short_description: What is wrong with the wave and gate settings of a run, before any host changes
version_added: 0.1.0
description:
  - Checks C(redbutton_waves) (or the older C(redbutton_serial)), C(redbutton_gates), C(redbutton_gate_pause) and
    C(redbutton_fleet_rollback), and returns one sentence per problem, naming the setting and what to give instead.
    An empty list means the settings are good. The rollout, rollback, rehearse and toggle playbooks refuse a run with
    problems before any host changes.
options:
  _input:
    description:
      - The settings - C(waves), C(serial), C(gates), C(gate_pause), C(fleet_rollback), C(rollback_run) and
        C(rollback_to) (each may be missing or null), C(inventory), the names of every host of the inventory (a gate's
        C(run_on) must be one of them), and C(playbook) (rollout, rollback, rehearse or toggle; missing is rollback).
      - In a rollout or a rehearsal, any C(rollback_to) is refused. Those playbooks set C(redbutton_rollback_to) empty for
        this check, so only an extra var reaches it, and an extra var would override where a failed run puts each host back.
    type: dict
    required: true
author:
  - redbutton.deploy contributors (@redbutton)
'''

EXAMPLES = r'''
- name: Refuse bad wave and gate settings
  ansible.builtin.assert:
    that: problems | length == 0
    fail_msg: "{{ problems | join(' ') }}"
  vars:
    problems: "{{ {'waves': redbutton_waves | default(none), 'gates': redbutton_gates | default([]),
                   'inventory': groups['all']} | redbutton.deploy.fleet_problems }}"
'''

RETURN = r'''
_value:
  description: One sentence per problem; empty when the settings are good.
  type: list
  elements: str
'''

from ansible.errors import AnsibleFilterError

from ansible_collections.redbutton.deploy.plugins.module_utils._fleet import gate_problems, wave_problems


def fleet_problems(settings):
    if not isinstance(settings, dict):
        raise AnsibleFilterError('fleet_problems needs a mapping: waves, serial, gates, gate_pause, fleet_rollback, inventory')
    problems = wave_problems(settings.get('waves'), settings.get('serial'))
    pause = settings.get('gate_pause')
    problems += gate_problems(settings.get('gates'), 0 if pause is None else pause, list(settings.get('inventory') or []))
    rollback = settings.get('fleet_rollback')
    if rollback is not None and not isinstance(rollback, bool) and str(rollback).strip().lower() not in (
            'true', 'false', 'yes', 'no', 'on', 'off', '1', '0'):
        problems.append('redbutton_fleet_rollback %s is not valid: give true (put back every host the run moved when a wave '
                        'or a gate fails) or false (leave them).' % rollback)
    if settings.get('rollback_run') and settings.get('rollback_to'):
        problems.append('redbutton_rollback_run and redbutton_rollback_to are both set: give redbutton_rollback_run (each host '
                        'goes back to where it was before that run) or redbutton_rollback_to (every host goes to that release).')
    if settings.get('playbook') in ('rollout', 'rehearse') and settings.get('rollback_to'):
        # The playbook sets it empty for this check: only an extra var (which wins over every other) is seen here.
        problems.append('redbutton_rollback_to %s is an extra var of the %s playbook: it would override the release each host '
                        'is put back on when a wave or a gate fails (the one it had before the run)%s. Leave it out; to go to '
                        'a given release, run the rollback playbook with it.'
                        % (settings['rollback_to'], settings['playbook'],
                           ' and the release the rehearsal rolls back to' if settings['playbook'] == 'rehearse' else ''))
    return problems


class FilterModule(object):

    def filters(self):
        return {'fleet_problems': fleet_problems}
