# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""redbutton.deploy.release as Ansible runs it: arguments, check mode, diff mode, failures."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import io
import json
import os
import tarfile

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.redbutton.deploy.plugins.modules import release as release_module


def call(capsys, args, check_mode=False, diff=False):
    """Run the module's main(); return (exit code, result dict)."""
    args = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
    with patch_module_args(args):
        with pytest.raises(SystemExit) as caught:
            release_module.main()
    return caught.value.code, json.loads(capsys.readouterr().out)


def archive(tmp_path, version):
    path = tmp_path / ('%s.tar.gz' % version)
    data = ('%s\n' % version).encode()
    with tarfile.open(str(path), 'w:gz') as tar:
        info = tarfile.TarInfo('VERSION')
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return str(path)


def tree(root):
    return sorted(os.path.relpath(os.path.join(d, n), str(root)) for d, dirs, files in os.walk(str(root)) for n in dirs + files)


def test_four_run_idempotence_pattern(capsys, tmp_path):
    root = tmp_path / 'app'
    args = dict(root=str(root), release='v1', src=archive(tmp_path, 'v1'), state='active', status='ok')
    rc, first_check = call(capsys, args, check_mode=True)
    assert rc == 0 and first_check['changed'] and first_check['current'] == 'v1'
    assert not root.exists()
    rc, first = call(capsys, args)
    assert rc == 0 and first['changed'] and first['created'] and first['status'] == 'ok'
    assert os.readlink(str(root / 'current')) == 'releases/v1'
    rc, second_check = call(capsys, args, check_mode=True)
    assert rc == 0 and not second_check['changed'] and second_check['up_to_date']
    rc, second = call(capsys, args)
    assert rc == 0 and not second['changed'] and not second['created']


def test_diff_mode_reports_before_and_after(capsys, tmp_path):
    root = tmp_path / 'app'
    call(capsys, dict(root=str(root), release='v1', src=archive(tmp_path, 'v1'), state='active', status='ok'))
    rc, result = call(capsys, dict(root=str(root), release='v2', src=archive(tmp_path, 'v2'), state='active'),
                      check_mode=True, diff=True)
    assert rc == 0
    assert result['diff'] == {'before': {'current': 'v1', 'releases': {'v1': 'ok'}},
                              'after': {'current': 'v2', 'releases': {'v1': 'ok', 'v2': 'active'}}}
    assert os.readlink(str(root / 'current')) == 'releases/v1'
    assert not (root / 'releases' / 'v2').exists()


def test_returns_the_documented_keys(capsys, tmp_path):
    rc, result = call(capsys, dict(root=str(tmp_path / 'app'), release='v1', src=archive(tmp_path, 'v1'), state='active'))
    for key in ('release', 'path', 'current', 'current_before', 'previous', 'status', 'checksum', 'created',
                'up_to_date', 'locked', 'pruned', 'releases'):
        assert key in result, key
    assert result['path'] == str(tmp_path / 'app' / 'releases' / 'v1')


def test_bad_id_fails_with_a_message_and_changes_nothing(capsys, tmp_path):
    rc, result = call(capsys, dict(root=str(tmp_path / 'app'), release='../x', src=archive(tmp_path, 'v1')))
    assert rc == 1 and result['failed'] and "release id '../x' is not valid" in result['msg']
    assert not (tmp_path / 'app').exists()


def test_bad_state_choice_is_refused_by_the_argument_spec(capsys, tmp_path):
    rc, result = call(capsys, dict(root=str(tmp_path / 'app'), release='v1', state='current'))
    assert rc == 1 and 'state' in result['msg']


def test_malicious_member_fails_naming_it(capsys, tmp_path):
    path = tmp_path / 'evil.tar'
    with tarfile.open(str(path), 'w') as tar:
        info = tarfile.TarInfo('../../escape')
        info.size = 1
        tar.addfile(info, io.BytesIO(b'x'))
    rc, result = call(capsys, dict(root=str(tmp_path / 'app'), release='v1', src=str(path), state='active'))
    assert rc == 1 and "'../../escape'" in result['msg']
    assert tree(tmp_path / 'app') == ['releases']


def test_lock_contention_fails_naming_the_holder(capsys, tmp_path):
    root = tmp_path / 'app'
    rc, result = call(capsys, dict(root=str(root), lock_owner='run-1'))
    assert rc == 0 and result['locked'] and result['changed']
    rc, result = call(capsys, dict(root=str(root), release='v1', src=archive(tmp_path, 'v1'), lock_owner='run-2'))
    assert rc == 1 and "held by owner 'run-1'" in result['msg']
    assert not (root / 'releases').exists()


def test_once_rollback_twice_four_run_pattern(capsys, tmp_path):
    root = str(tmp_path / 'app')
    for version in ('v1', 'v2'):
        call(capsys, dict(root=root, release=version, src=archive(tmp_path, version), state='active', status='ok'))
    args = dict(root=root, release='previous', once=True, state='active', previous_status='rolled_back', reason='rollback',
                status='ok')
    rc, first_check = call(capsys, args, check_mode=True, diff=True)
    assert rc == 0 and first_check['changed'] and first_check['release'] == 'v1'
    assert first_check['diff']['after'] == {'current': 'v1', 'releases': {'v1': 'ok', 'v2': 'rolled_back'}}
    assert os.readlink(os.path.join(root, 'current')) == 'releases/v2'
    rc, first = call(capsys, args)
    assert rc == 0 and first['changed'] and first['current'] == 'v1' and first['last_switch']['reason'] == 'rollback'
    rc, second_check = call(capsys, args, check_mode=True, diff=True)
    assert rc == 0 and not second_check['changed'] and second_check['up_to_date'] and second_check['release'] == 'v1'
    assert second_check['diff']['before'] == second_check['diff']['after']
    rc, second = call(capsys, args)
    assert rc == 0 and not second['changed'] and second['current'] == 'v1'
    assert os.readlink(os.path.join(root, 'current')) == 'releases/v1'
