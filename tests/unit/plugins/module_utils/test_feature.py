# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Feature toggles: values, rendering, history, hand edits and release declarations."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

import pytest

from ansible_collections.redbutton.deploy.plugins.module_utils._common import RedbuttonError
from ansible_collections.redbutton.deploy.plugins.module_utils._feature import (
    FeatureRunner,
    declare_release_toggles,
    parse_features_yml,
    parse_rendered,
    parse_value,
    read_release_toggles,
    render,
    state_path,
    toggle_view,
)
from ansible_collections.redbutton.deploy.plugins.module_utils._ledger import Ledger, ledger_path
from ansible_collections.redbutton.deploy.plugins.module_utils._lock import DeployLock, lock_path


def run(root, check_mode=False, diff=False, warnings=None, **params):
    params = dict(dict(root=str(root), force=False, lock_timeout=0), **params)
    warn = warnings.append if warnings is not None else None
    return FeatureRunner(params, check_mode=check_mode, diff=diff, warn=warn).run()


def app_file(root):
    return os.path.join(str(root), 'shared', 'features.json')


def read_app(root):
    with open(app_file(root)) as handle:
        return json.load(handle)


def feature_events(root):
    return [e for e in Ledger(str(root)).load().data['events'] if e['event'] == 'feature']


def snapshot(root):
    """Every file under root with its bytes: proof that nothing changed."""
    found = {}
    for directory, _dirs, files in os.walk(str(root)):
        for name in files:
            path = os.path.join(directory, name)
            with open(path, 'rb') as handle:
                found[path] = handle.read()
    return found


@pytest.mark.parametrize('raw, value', [
    ('on', 'on'), ('OFF', 'off'), (True, 'on'), (False, 'off'), (25, 25), ('25', 25), ('25%', 25),
    (' 40 % ', 40), (0, 0), ('100%', 100), (50.0, 50),
])
def test_values_are_normalised(raw, value):
    assert parse_value(raw) == value


@pytest.mark.parametrize('raw', [101, -1, '150%', '-5', 'maybe', '', None, 12.5, [1]])
def test_bad_values_are_refused_naming_the_input(raw):
    with pytest.raises(RedbuttonError) as caught:
        parse_value(raw)
    assert 'state %r is not valid' % (raw,) in str(caught.value)


@pytest.mark.parametrize('fmt', ['json', 'env', 'yaml'])
def test_each_format_reads_back_what_it_renders(fmt):
    values = {'new_checkout': 'on', 'search_v2': 25, 'old_cart': 'off'}
    data = render(values, fmt)
    assert parse_rendered(data, fmt) == values
    assert parse_rendered(render({}, fmt), fmt) == {}


def test_rendered_formats_are_what_the_app_reads():
    values = {'new_checkout': 'on', 'search_v2': 25}
    assert json.loads(render(values, 'json').decode()) == values
    env = render(values, 'env').decode().splitlines()
    assert env[1:] == ['FEATURE_NEW_CHECKOUT=on', 'FEATURE_SEARCH_V2=25']
    yaml = render(values, 'yaml').decode().splitlines()
    # Quoted: an unquoted on is the boolean true for a YAML 1.1 reader.
    assert yaml[1:] == ['new_checkout: "on"', 'search_v2: 25']


def test_set_is_recorded_rendered_and_idempotent(tmp_path):
    result = run(tmp_path, check_mode=True, name='new_checkout', state='on')
    assert result['changed'] and result['value'] == 'on' and result['previous_value'] is None
    assert not os.path.exists(app_file(tmp_path)) and not os.path.exists(state_path(str(tmp_path)))
    assert not os.path.exists(ledger_path(str(tmp_path)))

    result = run(tmp_path, name='new_checkout', state='on', note='launch', actor='alice', run_id='r1', diff=True)
    assert result['changed'] and result['event_seq'] == 1
    assert read_app(tmp_path) == {'new_checkout': 'on'}
    assert result['diff']['before'] == '' and json.loads(result['diff']['after']) == {'new_checkout': 'on'}
    events = feature_events(tmp_path)
    assert [(e['name'], e['from'], e['to'], e['note'], e['by'], e['run_id']) for e in events] == [
        ('new_checkout', None, 'on', 'launch', 'alice', 'r1')]
    assert not os.path.exists(lock_path(str(tmp_path))), 'the deploy lock was left behind'

    again = run(tmp_path, check_mode=True, name='new_checkout', state='on')
    assert not again['changed']
    again = run(tmp_path, name='new_checkout', state=True)
    assert not again['changed'] and again['event_seq'] is None
    assert len(feature_events(tmp_path)) == 1

    run(tmp_path, name='search_v2', state='25%')
    assert read_app(tmp_path) == {'new_checkout': 'on', 'search_v2': 25}


def test_previous_walks_back_through_history(tmp_path):
    run(tmp_path, name='search', state='off')
    run(tmp_path, name='search', state='10')
    run(tmp_path, name='search', state='50')
    result = run(tmp_path, name='search', state='previous')
    assert result['changed'] and result['value'] == 10 and result['previous_value'] == 50
    assert read_app(tmp_path) == {'search': 10}
    result = run(tmp_path, name='search', state='previous')
    assert result['value'] == 'off' and read_app(tmp_path) == {'search': 'off'}
    # Undoing the first change removes the toggle: it did not exist before.
    result = run(tmp_path, name='search', state='previous')
    assert result['value'] is None and read_app(tmp_path) == {}
    assert [t['name'] for t in toggle_view(str(tmp_path))] == []
    undos = [e for e in feature_events(tmp_path) if e.get('undoes')]
    assert [(e['from'], e['to']) for e in undos] == [(50, 10), (10, 'off'), ('off', None)]


def test_previous_only_for_a_given_run(tmp_path):
    run(tmp_path, name='flag', state='off', run_id='r1')
    run(tmp_path, name='flag', state='on', run_id='r2')
    result = run(tmp_path, name='flag', state='previous', only_run_id='r1')
    assert not result['changed'] and 'not last changed by run r1' in result['msg']
    assert read_app(tmp_path) == {'flag': 'on'}
    result = run(tmp_path, name='flag', state='previous', only_run_id='r2', run_id='r2')
    assert result['changed'] and read_app(tmp_path) == {'flag': 'off'}
    # Reverting again finds r1's change: nothing to do for r2.
    result = run(tmp_path, name='flag', state='previous', only_run_id='r2', run_id='r2')
    assert not result['changed'] and read_app(tmp_path) == {'flag': 'off'}


@pytest.mark.parametrize('params, message', [
    (dict(name='nope', state='previous'), 'toggle nope is not known'),
    (dict(name='flag', state=101), "state 101 is not valid: a percentage must be between 0 and 100"),
    (dict(name='flag', state='-3%'), 'a percentage must be between 0 and 100'),
    (dict(name='New-Checkout', state='on'), "toggle name 'New-Checkout' is not valid"),
    (dict(name='a' * 64, state='on'), 'is not valid: use a plain identifier'),
    (dict(name='flag', state='sometimes'), "state 'sometimes' is not valid"),
    (dict(name='flag', state='on', only_run_id='r1'), 'only_run_id is only valid with state: previous'),
])
def test_bad_input_changes_nothing(tmp_path, params, message):
    run(tmp_path, name='flag', state='off')
    before = snapshot(tmp_path)
    with pytest.raises(RedbuttonError) as caught:
        run(tmp_path, **params)
    assert message in str(caught.value)
    assert snapshot(tmp_path) == before


def test_hand_broken_toggles_file_is_refused_unless_forced(tmp_path):
    run(tmp_path, name='flag', state='off')
    with open(app_file(tmp_path), 'w') as handle:
        handle.write('{"flag": "on",,}')
    before = snapshot(tmp_path)
    with pytest.raises(RedbuttonError) as caught:
        run(tmp_path, name='flag', state='on')
    message = str(caught.value)
    assert app_file(tmp_path) in message and 'not valid JSON' in message and 'fix it or move it aside' in message
    assert snapshot(tmp_path) == before
    warnings = []
    result = run(tmp_path, name='flag', state='on', force=True, warnings=warnings)
    assert result['changed'] and read_app(tmp_path) == {'flag': 'on'}
    assert len(warnings) == 1 and 'force: true' in warnings[0]


def test_readable_hand_edit_is_taken_as_the_truth(tmp_path):
    run(tmp_path, name='flag', state='off')
    with open(app_file(tmp_path), 'w') as handle:
        json.dump({'flag': 'on', 'extra': 5}, handle)
    warnings = []
    result = run(tmp_path, name='other', state='on', warnings=warnings)
    assert result['changed'] and read_app(tmp_path) == {'flag': 'on', 'extra': 5, 'other': 'on'}
    assert any('toggle flag is on in' in w and 'recorded as off' in w for w in warnings)
    # The value the hand edit set is the "from" of the next change.
    result = run(tmp_path, name='flag', state='off')
    assert result['previous_value'] == 'on'


def test_file_deleted_is_rewritten_without_an_event(tmp_path):
    run(tmp_path, name='flag', state='on')
    os.unlink(app_file(tmp_path))
    result = run(tmp_path, name='flag', state='on')
    assert result['changed'] and 'rewritten' in result['msg'] and read_app(tmp_path) == {'flag': 'on'}
    assert len(feature_events(tmp_path)) == 1


def test_env_format_and_recorded_target(tmp_path):
    target = str(tmp_path / 'etc' / 'app.env')
    run(tmp_path, name='flag', state='on', file=target, format='env')
    run(tmp_path, name='ramp', state='30%')  # file and format come from the state
    with open(target) as handle:
        assert handle.read().splitlines()[1:] == ['FEATURE_FLAG=on', 'FEATURE_RAMP=30']
    assert not os.path.exists(app_file(tmp_path))


def test_flip_waits_for_the_deploy_lock_and_names_the_holder(tmp_path):
    DeployLock(str(tmp_path)).acquire('rollout-7')
    with pytest.raises(RedbuttonError) as caught:
        run(tmp_path, name='flag', state='on')
    assert "owner 'rollout-7'" in str(caught.value)
    assert not os.path.exists(app_file(tmp_path))
    # The same owner re-enters its lock and leaves it held.
    run(tmp_path, name='flag', state='on', lock_owner='rollout-7')
    assert read_app(tmp_path) == {'flag': 'on'} and os.path.exists(lock_path(str(tmp_path)))


def test_query(tmp_path):
    assert run(tmp_path, state='query')['toggles'] == []
    run(tmp_path, name='flag', state='on', note='why', actor='bob')
    result = run(tmp_path, state='query')
    assert not result['changed'] and [(t['name'], t['value'], t['note'], t['by']) for t in result['toggles']] == [
        ('flag', 'on', 'why', 'bob')]
    assert run(tmp_path, name='flag', state='query')['value'] == 'on'
    with pytest.raises(RedbuttonError):
        run(tmp_path, name='other', state='query')


# release declarations --------------------------------------------------------------------
FEATURES_YML = '''# toggles of this release
---
- name: new_checkout
  default: off   # dark launch
  description: "The new checkout: flow #2"
- name: search_v2
  default: 10%
-
  name: banner
  description: 'A banner'
'''


def test_features_yml_subset():
    assert parse_features_yml(FEATURES_YML) == [
        {'name': 'new_checkout', 'default': False, 'description': 'The new checkout: flow #2'},
        {'name': 'search_v2', 'default': '10%'},
        {'name': 'banner', 'description': 'A banner'},
    ]


@pytest.mark.parametrize('text, message', [
    ('new_checkout: on\n', 'expected "- name: ..."'),
    ('- name: a\n  default: [on]\n', 'not a plain scalar'),
    ('- name: a\n  name: b\n', 'key name given twice'),
    ('- name: "a\n', 'unterminated'),
])
def test_features_yml_outside_the_subset_is_refused(text, message):
    with pytest.raises(RedbuttonError) as caught:
        parse_features_yml(text, '/r/features.yml')
    assert '/r/features.yml' in str(caught.value) and message in str(caught.value)


def write_release(tmp_path, release, name, text):
    path = tmp_path / 'releases' / release
    path.mkdir(parents=True, exist_ok=True)
    (path / name).write_text(text)
    return str(path)


def test_read_release_toggles_json_forms(tmp_path):
    listed = write_release(tmp_path, 'a', 'features.json', json.dumps([{'name': 'x', 'default': 'on', 'description': 'X'}]))
    assert read_release_toggles(listed) == {'x': {'default': 'on', 'description': 'X'}}
    mapped = write_release(tmp_path, 'b', 'features.json', json.dumps({'x': {'default': 20}, 'y': 'on'}))
    assert read_release_toggles(mapped) == {'x': {'default': 20, 'description': ''}, 'y': {'default': 'on', 'description': ''}}
    assert read_release_toggles(str(tmp_path / 'releases')) == {}


@pytest.mark.parametrize('text, message', [
    (json.dumps([{'name': 'Bad Name'}]), "toggle name in"),
    (json.dumps([{'name': 'x', 'default': 200}]), 'default of x in'),
    (json.dumps([{'name': 'x', 'colour': 'red'}]), 'unknown keys colour'),
    (json.dumps('on'), 'must hold a list'),
    ('{"x": ', 'is corrupt'),
])
def test_bad_declarations_are_refused_and_change_nothing(tmp_path, text, message):
    root = tmp_path / 'root'
    run(root, name='flag', state='on')
    release = write_release(root, 'v2', 'features.json', text)
    before = snapshot(root)
    with pytest.raises(RedbuttonError) as caught:
        declare_release_toggles(str(root), release)
    assert message in str(caught.value)
    assert snapshot(root) == before


def test_declare_adds_defaults_and_never_changes_a_set_value(tmp_path):
    root = str(tmp_path)
    run(tmp_path, name='new_checkout', state='on', note='set by hand')
    v2 = write_release(tmp_path, 'v2', 'features.yml', FEATURES_YML)

    preview = declare_release_toggles(root, v2, check_mode=True)
    assert preview['added'] == ['banner', 'search_v2'] and preview['changed']
    assert read_app(tmp_path) == {'new_checkout': 'on'}

    result = declare_release_toggles(root, v2, actor='deployer', run_id='r9')
    assert result['added'] == ['banner', 'search_v2'] and result['unknown'] == [] and result['warnings'] == []
    assert read_app(tmp_path) == {'new_checkout': 'on', 'search_v2': 10, 'banner': 'off'}
    view = dict((t['name'], t) for t in toggle_view(root))
    assert view['search_v2']['declared_by'] == 'v2' and view['search_v2']['source'] == 'default'
    assert view['new_checkout']['description'] == 'The new checkout: flow #2'  # described, value untouched
    added = [e for e in feature_events(tmp_path) if e.get('reason') == 'declared']
    assert sorted((e['name'], e['to'], e['run_id'], e['by']) for e in added) == [
        ('banner', 'off', 'r9', 'deployer'), ('search_v2', 10, 'r9', 'deployer')]

    again = declare_release_toggles(root, v2)
    assert not again['changed'] and again['added'] == []

    # Back to a release that knows none of them: values stay, and it says so.
    v1 = str(tmp_path / 'releases' / 'v1')
    os.makedirs(v1)
    back = declare_release_toggles(root, v1)
    assert not back['changed'] and back['unknown'] == ['banner', 'new_checkout', 'search_v2']
    assert 'release v1 does not declare toggles banner, new_checkout, search_v2; left in place' in back['warnings'][0]
    assert read_app(tmp_path) == {'new_checkout': 'on', 'search_v2': 10, 'banner': 'off'}


def test_declare_uses_the_callers_ledger(tmp_path):
    release = write_release(tmp_path, 'v1', 'features.json', json.dumps([{'name': 'x', 'default': 'on'}]))
    ledger = Ledger(str(tmp_path)).load()
    result = declare_release_toggles(str(tmp_path), release, ledger=ledger)
    assert result['added'] == ['x'] and not os.path.exists(ledger_path(str(tmp_path)))
    assert [e['name'] for e in ledger.data['events']] == ['x']
    ledger.save()
    assert [e['to'] for e in feature_events(tmp_path)] == ['on']


def test_declare_leaves_a_broken_app_file_alone(tmp_path):
    run(tmp_path, name='flag', state='on')
    with open(app_file(tmp_path), 'w') as handle:
        handle.write('not json')
    release = write_release(tmp_path, 'v2', 'features.json', json.dumps([{'name': 'x'}]))
    result = declare_release_toggles(str(tmp_path), release)
    assert result['added'] == ['x'] and 'left untouched' in result['warnings'][-1]
    with open(app_file(tmp_path)) as handle:
        assert handle.read() == 'not json'
    assert [t['name'] for t in toggle_view(str(tmp_path))] == ['flag', 'x']


def test_revert_of_a_run_is_idempotent_and_undoes_an_undo(tmp_path):
    run(tmp_path, name='flag', state='off', run_id='r1')
    run(tmp_path, name='flag', state='on', run_id='r2')
    # Run r3 undoes r2's change on purpose, then its checks fail: the revert undoes the undo.
    assert run(tmp_path, name='flag', state='previous', run_id='r3')['value'] == 'off'
    result = run(tmp_path, name='flag', state='previous', only_run_id='r3', run_id='r3')
    assert result['changed'] and result['value'] == 'on' and 'reverted from off to on' in result['msg']
    assert not run(tmp_path, name='flag', state='previous', only_run_id='r3', run_id='r3')['changed']
    # History is consistent afterwards: previous undoes r2's change again.
    assert run(tmp_path, name='flag', state='previous')['value'] == 'off'
