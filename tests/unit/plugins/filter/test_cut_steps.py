# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""cut_steps: the engine calls of a transition, as roles/steps makes them. The calls a user sees
(how many, which hook runs where, drain and enable around the switch and the checks) are what the
integration tests count; here every combination of direction, migrations, hooks and load balancer."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.redbutton.deploy.plugins.filter.cut_steps import FilterModule

cut_steps = FilterModule().filters()['cut_steps']


def calls(segments):
    return [segment['steps'] for segment in segments]


def test_no_hook_a_rollout_is_two_calls_a_rollback_one():
    rollout = cut_steps({'direction': 'rollout'}, {})
    assert calls(rollout) == [['stage'], ['switch', 'restart', 'verify', 'finish']]
    assert [(s['first'], s['file'], s['before'], s['after']) for s in rollout] == [(True, 'call.yml', '', ''), (False, 'call.yml', '', '')]
    for direction in ('rollback', 'auto_rollback'):
        assert calls(cut_steps({'direction': direction}, {})) == [['switch', 'restart', 'verify', 'compare', 'finish']]


@pytest.mark.parametrize('migrate_when, expected', [
    ('before_switch', [['stage'], ['migrate', 'switch', 'restart', 'verify', 'finish']]),
    ('after_switch', [['stage'], ['switch', 'migrate', 'restart', 'verify', 'finish']]),
    (None, [['stage'], ['migrate', 'switch', 'restart', 'verify', 'finish']]),
])
def test_migrations_go_where_migrate_when_puts_them(migrate_when, expected):
    assert calls(cut_steps({'direction': 'rollout'}, {}, migrations=True, migrate_when=migrate_when)) == expected
    assert calls(cut_steps({'direction': 'rollback'}, {}, migrations=True, migrate_when=migrate_when)) == [
        ['switch', 'migrate', 'restart', 'verify', 'compare', 'finish']]


def test_a_hook_cuts_where_it_sits_and_runs_around_its_call():
    segments = cut_steps({'direction': 'rollout'}, {'after_switch': '/h/a.yml', 'before_finish': '/h/b.yml', 'before_stage': '/h/c.yml'})
    assert calls(segments) == [['stage'], ['switch'], ['restart', 'verify'], ['finish']]
    assert [(s['before'], s['after'], s['file']) for s in segments] == [
        ('/h/c.yml', '', 'segment.yml'), ('', '/h/a.yml', 'segment.yml'), ('', '', 'call.yml'), ('/h/b.yml', '', 'segment.yml')]
    # The documented example.
    assert calls(cut_steps({'direction': 'rollout'}, {'after_switch': 'notify.yml'})) == [['stage'], ['switch'], ['restart', 'verify', 'finish']]


def test_hooks_off_or_skipped_cut_nothing():
    hooks = {'before_switch': '/h/a.yml', 'after_verify': '/h/b.yml'}
    for off in (False, 'false', 'False'):
        assert calls(cut_steps({'direction': 'auto_rollback', 'hooks': off}, hooks)) == [['switch', 'restart', 'verify', 'compare', 'finish']]
    segments = cut_steps({'direction': 'rollback', 'skip_hooks': ['before_switch']}, hooks)
    assert calls(segments) == [['switch', 'restart', 'verify'], ['compare', 'finish']]
    assert segments[0]['before'] == '' and segments[0]['after'] == '/h/b.yml'


def test_a_load_balancer_drains_before_the_switch_and_enables_after_the_checks():
    segments = cut_steps({'direction': 'rollout'}, {}, load_balancer=True)
    assert calls(segments) == [['stage'], ['switch', 'restart', 'verify', 'finish']]
    assert [(s['drain'], s['enable'], s['file']) for s in segments] == [(False, False, 'call.yml'), (True, True, 'segment.yml')]
    back = cut_steps({'direction': 'rollback'}, {'after_restart': '/h/a.yml'}, load_balancer=True)
    assert calls(back) == [['switch', 'restart'], ['verify', 'compare', 'finish']]
    assert [(s['drain'], s['enable']) for s in back] == [(True, False), (False, True)]


def test_given_steps_and_empty_or_null_hooks():
    assert calls(cut_steps({'direction': 'rollout', 'steps': ['verify']}, {'before_verify': '/h/v.yml', 'after_verify': None})) == [['verify']]
    assert cut_steps({'direction': 'rollout', 'steps': ['verify']}, {'after_verify': None})[0]['file'] == 'call.yml'


@pytest.mark.parametrize('transition, hooks, message', [
    ({'direction': 'sideways'}, {}, 'cut_steps needs a transition with a direction'),
    ('rollout', {}, 'cut_steps needs a transition with a direction'),
    ({'direction': 'rollout'}, ['after_switch'], 'cut_steps needs hooks'),
    ({'direction': 'rollout', 'steps': ['stage', 'deploy']}, {}, 'cut_steps: unknown step deploy'),
])
def test_bad_input_is_named(transition, hooks, message):
    with pytest.raises(AnsibleFilterError, match=message):
        cut_steps(transition, hooks)
