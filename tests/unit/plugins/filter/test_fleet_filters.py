# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The filters the wave playbooks call: fleet_problems (every setting at once, as the playbooks pass
them), fleet_before and fleet_table, through their FilterModule as Ansible loads them."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.redbutton.deploy.plugins.filter.fleet_before import FilterModule as Before
from ansible_collections.redbutton.deploy.plugins.filter.fleet_problems import FilterModule as Problems
from ansible_collections.redbutton.deploy.plugins.filter.fleet_table import FilterModule as Table

fleet_problems = Problems().filters()['fleet_problems']
fleet_before = Before().filters()['fleet_before']
fleet_table = Table().filters()['fleet_table']


def settings(**values):
    base = {'waves': None, 'serial': None, 'gates': None, 'gate_pause': 0, 'fleet_rollback': None, 'inventory': ['web1', 'web2']}
    base.update(values)
    return base


def test_defaults_have_no_problem():
    assert fleet_problems(settings()) == []
    assert fleet_problems(settings(waves=[1, '50%'], gates=[{'name': 'e', 'kind': 'metric', 'command': 'echo 0', 'max': 0,
                                                             'run_on': 'web2'}], gate_pause=10, fleet_rollback='false')) == []


def test_every_problem_at_once_each_named():
    problems = fleet_problems(settings(waves=[0, '101%'], gates=[{'name': 'e', 'kind': 'metric', 'command': 'echo 0'},
                                                                 {'name': 'f', 'kind': 'ping'}],
                                       gate_pause=-1, fleet_rollback='maybe'))
    assert [p.split(' is not valid')[0].split(':')[0] for p in problems] == [
        'redbutton_waves item 0', 'redbutton_waves item "101%"', 'redbutton_gate_pause -1',
        'redbutton_gates item 1 (e)', 'redbutton_gates item 2 (f)', 'redbutton_fleet_rollback maybe']


@pytest.mark.parametrize('run, to, refused', [('web:1', 'v1', True), ('web:1', None, False), ('', 'v1', False), (None, '', False)])
def test_a_run_id_and_a_target_release_are_not_both_given(run, to, refused):
    problems = fleet_problems(settings(rollback_run=run, rollback_to=to))
    assert problems == ([] if not refused else [
        'redbutton_rollback_run and redbutton_rollback_to are both set: give redbutton_rollback_run (each host goes back to where '
        'it was before that run) or redbutton_rollback_to (every host goes to that release).'])


@pytest.mark.parametrize('playbook, to, refused', [
    ('rollout', 'v1', True), ('rehearse', 'v1', True), ('rollout', '', False), ('rollout', None, False),
    ('rollback', 'v1', False), (None, 'v1', False), ('toggle', 'v1', False)])
def test_a_target_release_given_to_a_rollout_or_a_rehearsal_is_refused(playbook, to, refused):
    given = settings(rollback_to=to, playbook=playbook) if playbook else settings(rollback_to=to)
    problems = fleet_problems(given)
    if not refused:
        assert problems == []
        return
    assert problems == [
        'redbutton_rollback_to v1 is an extra var of the %s playbook: it would override the release each host is put back '
        'on when a wave or a gate fails (the one it had before the run)%s. Leave it out; to go to a given release, run the '
        'rollback playbook with it.' % (playbook, ' and the release the rehearsal rolls back to' if playbook == 'rehearse' else '')]


def test_not_a_mapping():
    with pytest.raises(AnsibleFilterError, match='fleet_problems needs a mapping'):
        fleet_problems([1])


def test_before_and_table():
    events = [{'event': 'activated', 'release': 'v2', 'from': 'v1', 'run_id': 'r'}]
    assert fleet_before(events, 'r', 'v2') == {'moved': True, 'before': 'v1', 'now': 'v2'}
    assert fleet_table({'web1': {'wave': 1, 'outcome': 'skipped'}}) == [
        'host  wave  before  now  what happened', 'web1  1     -       -    not touched: an earlier wave failed']
