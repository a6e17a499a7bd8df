# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The roles' public result and their module calls: redbutton_result as a hook sees it after a
rollout and a rollback, the number of redbutton.deploy.transition calls (a rollout without hooks
is two, a rollback one, a re-run of the current release one), and a hook between switch and
restart cutting the call in two."""

import json
import os

import pytest


# A hook that writes what it sees to <dir>/<n>-<direction>.json, numbered in the order hooks ran.
HOOK = """
- name: Write redbutton_result where the test reads it
  ansible.builtin.copy:
    content: "{{ redbutton_result | to_json }}"
    dest: "%s/{{ '%%03d' | format(query('ansible.builtin.fileglob', '%s/*.json') | length) }}-{{ redbutton_result.direction }}.json"
    mode: "0644"
"""


@pytest.fixture
def hook(tmp_path):
    out = tmp_path / 'seen'
    out.mkdir()
    path = tmp_path / 'hook.yml'
    path.write_text(HOOK % (out, out))

    def seen():
        return [json.loads((out / name).read_text()) for name in sorted(os.listdir(str(out)))]
    return str(path), seen


def test_no_hooks_rollout_is_two_calls_rollback_one_rerun_one(site):
    first = site.rollout('v1')
    assert first.engine_calls() == [('rollout', ['stage']), ('rollout', ['switch', 'restart', 'verify', 'finish'])], first
    site.assert_state('v1', {'v1': 'ok'})
    second = site.rollout('v2')
    assert second.engine_calls() == [('rollout', ['stage']), ('rollout', ['switch', 'restart', 'verify', 'finish'])], second
    site.assert_state('v2', {'v1': 'ok', 'v2': 'ok'})
    back = site.rollback()
    assert back.engine_calls() == [('rollback', ['switch', 'restart', 'verify', 'compare', 'finish'])], back
    site.assert_state('v1', {'v1': 'ok', 'v2': 'rolled_back'})
    # A re-run of the release already current, without health checks: the stage call only.
    extra = site.vars_file('nochecks', {'redbutton_health_checks': []})
    rerun = site.rollout('v1', *extra)
    assert rerun.recap['changed'] == 0, rerun
    assert rerun.engine_calls() == [('rollout', ['stage'])], rerun
    # With the health checks: one more call, that only verifies.
    checked = site.rollout('v1')
    assert checked.recap['changed'] == 0, checked
    assert checked.engine_calls() == [('rollout', ['stage']), ('rollout', ['verify'])], checked


def test_redbutton_result_after_a_rollout_and_a_rollback(site, hook):
    path, seen = hook
    site.rollout('v1')
    site.rollout('v2', '-e', 'redbutton_after_finish=%s' % path)
    site.rollback('-e', 'redbutton_after_finish=%s' % path)
    out, back = seen()

    assert out['direction'] == 'rollout'
    assert (out['release'], out['from'], out['to'], out['current']) == ('v2', 'v1', 'v2', 'v2')
    assert out['moved'] is True and out['open'] is False and out['up_to_date'] is False
    # The stage call of this rollout extracted v2: the transition record carries it to the finish call.
    assert out['created'] is True, 'this rollout extracted v2'
    assert [step['name'] for step in out['steps']] == ['switch', 'restart', 'verify', 'finish']
    assert all(step['outcome'] in ('changed', 'ok', 'skipped') and step['seconds'] >= 0 for step in out['steps'])
    assert [(c['name'], c['kind'], c['passed']) for c in out['checks']] == [('health endpoint', 'http', True)]
    assert out['statuses'] == {'v1': 'ok', 'v2': 'ok'}
    assert out['failed_step'] is None
    assert out['msg'].startswith('v2 serves and passed 1 health check') and out['summary'] == out['msg']
    assert out['previous'] == 'v1' and out['locked'] is False

    assert back['direction'] == 'rollback'
    assert (back['release'], back['from'], back['to'], back['current']) == ('v1', 'v2', 'v1', 'v1')
    assert back['moved'] is True and back['open'] is False
    assert [step['name'] for step in back['steps']] == ['switch', 'restart', 'verify', 'compare', 'finish']
    assert back['compare']['name'] == 'before-v2' and back['compare']['matched'] is True
    assert back['statuses'] == {'v1': 'ok', 'v2': 'rolled_back'}
    assert back['msg'].startswith('v1 serves again and passed 1 health check') and 'v2 is marked rolled_back' in back['msg']
    assert back['locked'] is False
    site.assert_state('v1', {'v1': 'ok', 'v2': 'rolled_back'})


def test_a_hook_between_switch_and_restart_cuts_the_call_in_two(site, hook):
    path, seen = hook
    site.rollout('v1')
    run = site.rollout('v2', '-e', 'redbutton_after_switch=%s' % path)
    assert run.engine_calls() == [('rollout', ['stage']), ('rollout', ['switch']), ('rollout', ['restart', 'verify', 'finish'])], run
    site.assert_state('v2', {'v1': 'ok', 'v2': 'ok'})
    back = site.rollback('-e', 'redbutton_after_switch=%s' % path)
    assert back.engine_calls() == [('rollback', ['switch']), ('rollback', ['restart', 'verify', 'compare', 'finish'])], back
    site.assert_state('v1', {'v1': 'ok', 'v2': 'rolled_back'})
    # Between the two calls the hook saw the switched host and the transition still open.
    out, rolled = seen()
    assert (out['direction'], out['current'], out['open'], out['moved']) == ('rollout', 'v2', True, True)
    assert [step['name'] for step in out['steps']] == ['switch'] and out['statuses']['v2'] == 'active'
    assert out['locked'] is True
    assert (rolled['direction'], rolled['current'], rolled['open']) == ('rollback', 'v1', True)
    assert rolled['statuses'] == {'v1': 'active', 'v2': 'rolled_back'}


def test_hooks_of_an_automatic_rollback_see_its_direction(site, hook):
    path, seen = hook
    site.rollout('v1')
    run = site.rollout('v3', '-e', 'redbutton_after_switch=%s' % path, rc=2)
    assert 'Rolled back automatically: v1 serves again' in run.output, run
    assert run.engine_calls() == [
        ('rollout', ['stage']), ('rollout', ['switch']), ('rollout', ['restart', 'verify', 'finish']),
        ('auto_rollback', ['switch']), ('auto_rollback', ['restart', 'verify', 'compare', 'finish'])], run
    site.assert_state('v1', {'v1': 'ok', 'v3': 'failed'})
    rollout, auto = seen()
    assert (rollout['direction'], rollout['current']) == ('rollout', 'v3')
    assert (auto['direction'], auto['from'], auto['to'], auto['current'], auto['open']) == ('auto_rollback', 'v3', 'v1', 'v1', True)
