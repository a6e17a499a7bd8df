# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""redbutton.deploy.lock as Ansible runs it."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

from unittest import mock

import pytest

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args

from ansible_collections.redbutton.deploy.plugins.module_utils._lock import lock_path
from ansible_collections.redbutton.deploy.plugins.modules import lock as lock_module


def call(capsys, args, check_mode=False, diff=False):
    with patch_module_args(dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)):
        with pytest.raises(SystemExit) as caught:
            lock_module.main()
    return caught.value.code, json.loads(capsys.readouterr().out)


def test_acquire_reenter_release_release_again(capsys, tmp_path):
    root = str(tmp_path)
    rc, result = call(capsys, dict(root=root, owner='run-1'), check_mode=True)
    assert rc == 0 and result['changed'] and not os.path.exists(lock_path(root))
    rc, result = call(capsys, dict(root=root, owner='run-1', ttl=120))
    assert rc == 0 and result['changed'] and result['holder']['owner'] == 'run-1' and result['holder']['ttl'] == 120
    rc, result = call(capsys, dict(root=root, owner='run-1'))
    assert rc == 0 and not result['changed']
    rc, result = call(capsys, dict(root=root, owner='run-1', state='absent'), diff=True)
    assert rc == 0 and result['changed'] and result['diff']['after'] == {'holder': None}
    assert result['diff']['before']['holder']['owner'] == 'run-1'
    assert not os.path.exists(lock_path(root))
    rc, result = call(capsys, dict(root=root, owner='run-1', state='absent'))
    assert rc == 0 and not result['changed']


def test_contention_fails_naming_holder(capsys, tmp_path):
    root = str(tmp_path)
    call(capsys, dict(root=root, owner='run-1'))
    rc, result = call(capsys, dict(root=root, owner='run-2', timeout=0.4))
    assert rc == 1 and "owner 'run-1'" in result['msg'] and 'pid' in result['msg'] and 'since' in result['msg']
    assert json.load(open(lock_path(root)))['owner'] == 'run-1'


def test_expired_lock_is_taken_over_with_a_warning(capsys, tmp_path):
    root = str(tmp_path)
    os.makedirs(os.path.dirname(lock_path(root)))
    with open(lock_path(root), 'w') as handle:
        json.dump({'owner': 'dead-run', 'host': 'old', 'pid': 1, 'acquired_at': '2001-01-01T00:00:00Z', 'ttl': 60,
                   'expires_at': '2001-01-01T00:01:00Z'}, handle)
    # Where a warning ends up (result or controller display) depends on what else the process
    # imported, so assert on the module's warn() call itself.
    with mock.patch.object(AnsibleModule, 'warn') as warn:
        rc, result = call(capsys, dict(root=root, owner='run-2'))
    assert rc == 0 and result['changed'] and result['previous_holder']['owner'] == 'dead-run'
    assert warn.call_count == 1
    assert "'dead-run'" in warn.call_args[0][0] and 'TTL passed' in warn.call_args[0][0]
    assert json.load(open(lock_path(root)))['owner'] == 'run-2'


def test_releasing_someone_elses_lock_needs_force(capsys, tmp_path):
    root = str(tmp_path)
    call(capsys, dict(root=root, owner='run-1'))
    rc, result = call(capsys, dict(root=root, owner='run-2', state='absent'))
    assert rc == 1 and "not by 'run-2'" in result['msg'] and os.path.exists(lock_path(root))
    rc, result = call(capsys, dict(root=root, state='absent', force=True))
    assert rc == 0 and result['changed'] and not os.path.exists(lock_path(root))
