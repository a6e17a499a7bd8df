# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""redbutton.deploy.feature (and the toggles in release_info) as Ansible runs them."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.redbutton.deploy.plugins.module_utils._ledger import ledger_path
from ansible_collections.redbutton.deploy.plugins.modules import feature, release_info


def call(capsys, module, args, check_mode=False, diff=False):
    with patch_module_args(dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)):
        with pytest.raises(SystemExit) as caught:
            module.main()
    return caught.value.code, json.loads(capsys.readouterr().out)


def app_file(root):
    return os.path.join(root, 'shared', 'features.json')


def test_four_runs_check_real_check_real(capsys, tmp_path):
    root = str(tmp_path)
    args = dict(root=root, name='new_checkout', state='on', note='launch', actor='alice', run_id='r1')
    rc, result = call(capsys, feature, args, check_mode=True, diff=True)
    assert rc == 0 and result['changed'] and not os.path.exists(app_file(root))
    assert json.loads(result['diff']['after']) == {'new_checkout': 'on'} and result['diff']['before_header'] == app_file(root)
    rc, result = call(capsys, feature, args)
    assert rc == 0 and result['changed'] and result['msg'] == 'toggle new_checkout set from unset to on'
    with open(app_file(root)) as handle:
        assert json.load(handle) == {'new_checkout': 'on'}
    rc, result = call(capsys, feature, args, check_mode=True)
    assert rc == 0 and not result['changed']
    rc, result = call(capsys, feature, args)
    assert rc == 0 and not result['changed'] and result['msg'] == 'toggle new_checkout is already on'
    with open(ledger_path(root)) as handle:
        events = [e for e in json.load(handle)['events'] if e['event'] == 'feature']
    assert len(events) == 1 and events[0]['by'] == 'alice' and events[0]['run_id'] == 'r1'


def test_percentages_as_int_and_string_then_previous(capsys, tmp_path):
    root = str(tmp_path)
    call(capsys, feature, dict(root=root, name='search_v2', state=10))
    rc, result = call(capsys, feature, dict(root=root, name='search_v2', state='25%'))
    assert rc == 0 and result['value'] == 25 and result['previous_value'] == 10
    rc, result = call(capsys, feature, dict(root=root, name='search_v2', state='previous'))
    assert rc == 0 and result['changed'] and result['value'] == 10
    with open(app_file(root)) as handle:
        assert json.load(handle) == {'search_v2': 10}


@pytest.mark.parametrize('args, message', [
    (dict(name='ghost', state='previous'), 'toggle ghost is not known'),
    (dict(name='flag', state='101%'), 'a percentage must be between 0 and 100'),
    (dict(name='flag; rm', state='on'), "toggle name 'flag; rm' is not valid"),
    (dict(state='on'), 'name is required'),
])
def test_bad_input_fails_and_changes_nothing(capsys, tmp_path, args, message):
    root = str(tmp_path)
    call(capsys, feature, dict(root=root, name='flag', state='off'))
    with open(app_file(root), 'rb') as handle:
        before = handle.read()
    with open(ledger_path(root), 'rb') as handle:
        ledger_before = handle.read()
    rc, result = call(capsys, feature, dict(args, root=root))
    assert rc == 1 and result['failed'] and message in result['msg']
    with open(app_file(root), 'rb') as handle:
        assert handle.read() == before
    with open(ledger_path(root), 'rb') as handle:
        assert handle.read() == ledger_before


def test_broken_app_file_named_and_kept(capsys, tmp_path):
    root = str(tmp_path)
    call(capsys, feature, dict(root=root, name='flag', state='off'))
    with open(app_file(root), 'w') as handle:
        handle.write('{flag: on}')
    rc, result = call(capsys, feature, dict(root=root, name='flag', state='on'))
    assert rc == 1 and app_file(root) in result['msg'] and 'force: true' in result['msg']
    with open(app_file(root)) as handle:
        assert handle.read() == '{flag: on}'
    rc, result = call(capsys, feature, dict(root=root, name='flag', state='on', force=True))
    assert rc == 0 and result['changed']
    with open(app_file(root)) as handle:
        assert json.load(handle) == {'flag': 'on'}


def test_release_info_reports_toggles(capsys, tmp_path):
    root = str(tmp_path)
    rc, result = call(capsys, release_info, dict(root=root))
    assert rc == 0 and result['features'] == []
    call(capsys, feature, dict(root=root, name='flag', state='on', note='why'))
    rc, result = call(capsys, release_info, dict(root=root))
    assert rc == 0 and [(f['name'], f['value'], f['note']) for f in result['features']] == [('flag', 'on', 'why')]
    with open(os.path.join(root, '.redbutton', 'features.json'), 'w') as handle:
        handle.write('garbage')
    rc, result = call(capsys, release_info, dict(root=root))
    assert rc == 0 and result['features'] == [] and 'features.json' in result['features_error']
