# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""redbutton.deploy.release_info as Ansible runs it."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.redbutton.deploy.plugins.module_utils._ledger import ledger_path
from ansible_collections.redbutton.deploy.plugins.modules import release_info


def call(capsys, args, check_mode=False):
    with patch_module_args(dict(args, _ansible_check_mode=check_mode)):
        with pytest.raises(SystemExit) as caught:
            release_info.main()
    return caught.value.code, json.loads(capsys.readouterr().out)


def write_ledger(root, data):
    os.makedirs(os.path.join(str(root), '.redbutton'))
    with open(ledger_path(str(root)), 'w') as handle:
        handle.write(data if isinstance(data, str) else json.dumps(data))


def test_host_without_root_returns_empty_values(capsys, tmp_path):
    rc, result = call(capsys, dict(root=str(tmp_path / 'never-deployed')))
    assert rc == 0 and not result['changed']
    assert (result['current'], result['previous'], result['releases'], result['events'], result['lock']) == (None, None, [], [], None)
    assert not (tmp_path / 'never-deployed').exists()


def test_reports_from_the_ledger_oldest_first_and_last_n_events(capsys, tmp_path):
    root = tmp_path / 'app'
    events = [{'seq': n, 'time': 't', 'event': 'status', 'release': 'v1', 'by': None} for n in range(1, 31)]
    write_ledger(root, {
        'schema': 1, 'seq': 30, 'current': 'v2', 'last_switch': {'from': 'v1', 'to': 'v2'},
        'releases': {
            'v2': {'id': 'v2', 'status': 'active', 'staged_seq': 2, 'activated_seq': 5},
            'v1': {'id': 'v1', 'status': 'ok', 'staged_seq': 1, 'activated_seq': 3},
        },
        'events': events,
    })
    for name in ('v1', 'v2'):
        os.makedirs(str(root / 'releases' / name))
    os.symlink('releases/v2', str(root / 'current'))
    rc, result = call(capsys, dict(root=str(root), events=5), check_mode=True)
    assert rc == 0
    assert result['current'] == 'v2' and result['previous'] == 'v1'
    assert [item['id'] for item in result['releases']] == ['v1', 'v2']
    assert [event['seq'] for event in result['events']] == [26, 27, 28, 29, 30]
    assert result['last_switch']['to'] == 'v2'


def test_corrupt_ledger_fails_and_is_left_untouched(capsys, tmp_path):
    root = tmp_path / 'app'
    write_ledger(root, '{"schema": 1, "releases": ')
    rc, result = call(capsys, dict(root=str(root)))
    assert rc == 1 and 'is corrupt' in result['msg']
    assert open(ledger_path(str(root))).read() == '{"schema": 1, "releases": '
