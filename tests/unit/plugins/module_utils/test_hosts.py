# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine's host adapters (_hosts): LocalHost (standard library only, for the on-host
command) and ModuleHost (a real AnsibleModule) run commands, fetch URLs from a real server and
warn; run_module() is the main() of every module. Both adapters also serve the baseline probes."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import io
import json
import os

import pytest

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args

from ansible_collections.redbutton.deploy.plugins.module_utils._baseline import Baseline
from ansible_collections.redbutton.deploy.plugins.module_utils._common import RedbuttonError
from ansible_collections.redbutton.deploy.plugins.module_utils._hosts import LocalHost, ModuleHost, run_module

from .test_checks import Server, closed_port


@pytest.fixture
def server():
    srv = Server({'/ok': (200, 'all good'), '/down': (503, 'maintenance')})
    yield srv
    srv.close()


@pytest.fixture
def module():
    with patch_module_args({}):
        yield AnsibleModule(argument_spec={}, supports_check_mode=True)


def adapters(module):
    return {'local': LocalHost(out=io.StringIO()), 'module': ModuleHost(module)}


# commands ---------------------------------------------------------------------------------------
@pytest.mark.parametrize('kind', ['local', 'module'])
def test_run_command_returns_rc_stdout_stderr_in_cwd(module, tmp_path, kind):
    host = adapters(module)[kind]
    (tmp_path / 'marker').write_text('here')
    rc, out, err = host.run_command(['sh', '-c', 'cat marker; echo oops >&2; exit 3'], cwd=str(tmp_path))
    assert (rc, out, err.strip()) == (3, 'here', 'oops')


@pytest.mark.parametrize('kind', ['local', 'module'])
def test_run_command_shell_and_environment(module, tmp_path, kind):
    host = adapters(module)[kind]
    rc, out, dummy = host.run_command('set -e\necho "$GREETING" | tr a-z A-Z', cwd=str(tmp_path), use_unsafe_shell=True,
                                      environ_update={'GREETING': 'hello'})
    assert rc == 0 and out.strip() == 'HELLO'


def test_local_host_does_not_hand_its_stdin_to_commands(tmp_path):
    rc, out, dummy = LocalHost(out=io.StringIO()).run_command(['sh', '-c', 'cat; echo done'])
    assert rc == 0 and out == 'done\n'


def test_local_host_warns_on_its_stream():
    out = io.StringIO()
    host = LocalHost(out=out)
    host.warn('lock taken over')
    assert out.getvalue() == 'warning: lock taken over\n' and host.warnings == ['lock taken over']


def test_module_host_warns_through_the_module(module):
    host = ModuleHost(module)
    host.warn('lock taken over')
    assert host.warnings == ['lock taken over']
    from ansible.module_utils.common.warnings import get_warning_messages
    assert 'lock taken over' in get_warning_messages()


# HTTP -------------------------------------------------------------------------------------------
@pytest.mark.parametrize('kind', ['local', 'module'])
def test_http_get_answers_status_and_body(module, server, kind):
    host = adapters(module)[kind]
    assert host.http_get(server.url('/ok'), 5) == (200, 'all good')


@pytest.mark.parametrize('kind', ['local', 'module'])
def test_http_get_error_status_keeps_the_body(module, server, kind):
    host = adapters(module)[kind]
    assert host.http_get(server.url('/down'), 5) == (503, 'maintenance')
    assert host.http_get(server.url('/none'), 5) == (404, 'no such page')


@pytest.mark.parametrize('kind', ['local', 'module'])
def test_http_get_nothing_listening_is_status_none_with_the_reason(module, kind):
    host = adapters(module)[kind]
    status, reason = host.http_get('http://127.0.0.1:%d/' % closed_port(), 2)
    assert status is None and 'refused' in str(reason).lower()


# baseline probes through the adapters ------------------------------------------------------------
@pytest.mark.parametrize('kind', ['local', 'module'])
def test_adapter_runs_a_baseline_command_probe(module, tmp_path, kind):
    host = adapters(module)[kind]
    root = tmp_path / 'app'
    (root / 'current').mkdir(parents=True)
    probe = {'name': 'health-smoke', 'command': 'sh -c "exit 0"', 'chdir': str(root / 'current'), 'record': ['rc']}
    result = Baseline(str(root), 'before-v2', host=host).capture([probe])
    assert result['changed']
    with open(result['path']) as handle:
        assert json.load(handle)['probes'][0]['result'] == {'rc': 0}


@pytest.mark.parametrize('kind', ['local', 'module'])
def test_adapter_has_get_bin_path_for_the_service_probe(module, kind):
    host = adapters(module)[kind]
    assert host.get_bin_path('sh') in ('/bin/sh', '/usr/bin/sh')


# run_module ---------------------------------------------------------------------------------------
def run_main(capsys, engine):
    with patch_module_args({}):
        module = AnsibleModule(argument_spec={})
        with pytest.raises(SystemExit) as caught:
            run_module(module, engine)
    return caught.value.code, json.loads(capsys.readouterr().out)


def test_run_module_exits_with_the_engine_result(capsys):
    rc, result = run_main(capsys, lambda: {'changed': True, 'current': 'v2', 'msg': 'v2 serves'})
    assert rc == 0
    assert result['changed'] is True and result['current'] == 'v2' and result['msg'] == 'v2 serves'
    assert 'failed' not in result


def test_run_module_fails_with_the_message_and_the_partial_result(capsys):
    def engine():
        error = RedbuttonError('Rollout of v2 failed at verify: web answered 500.')
        error.result = {'msg': 'ignored: the error text wins', 'failed': False, 'failed_step': 'verify', 'current': 'v2',
                        'statuses': {'v1': 'ok', 'v2': 'active'}}
        raise error
    rc, result = run_main(capsys, engine)
    assert rc == 1
    assert result['failed'] is True and result['msg'] == 'Rollout of v2 failed at verify: web answered 500.'
    assert result['failed_step'] == 'verify' and result['current'] == 'v2' and result['statuses'] == {'v1': 'ok', 'v2': 'active'}


def test_run_module_fails_with_the_message_alone_for_a_refusal(capsys):
    def engine():
        raise RedbuttonError('steps deploy are not valid: use stage, switch')
    rc, result = run_main(capsys, engine)
    assert rc == 1 and result['failed'] is True and result['msg'] == 'steps deploy are not valid: use stage, switch'
    assert 'failed_step' not in result


def test_run_module_does_not_swallow_a_programming_error(capsys):
    def engine():
        raise KeyError('bug')
    with patch_module_args({}):
        module = AnsibleModule(argument_spec={})
        with pytest.raises(KeyError):
            run_module(module, engine)


@pytest.mark.parametrize('kind', ['local', 'module'])
def test_a_program_that_cannot_start_is_rc_127_or_oserror_when_asked(module, kind):
    host = adapters(module)[kind]
    missing = os.path.join('/nonexistent', 'prog')
    if kind == 'local':  # AnsibleModule fails the module instead of answering rc 127
        rc, dummy, err = host.run_command([missing])
        assert rc == 127 and missing in err
    with pytest.raises(OSError):
        host.run_command([missing], handle_exceptions=False)


@pytest.mark.parametrize('kind', ['local', 'module'])
def test_a_command_string_is_split_without_a_shell(module, tmp_path, kind):
    host = adapters(module)[kind]
    rc, out, dummy = host.run_command("printf '%s|' 'a b' '$HOME;x'", cwd=str(tmp_path), expand_user_and_vars=False)
    assert rc == 0 and out == 'a b|$HOME;x|'


def test_local_host_finds_programs_in_sbin_too():
    assert LocalHost.get_bin_path('sh') in ('/bin/sh', '/usr/bin/sh')
    assert LocalHost.get_bin_path('no-such-program-here') is None
    with pytest.raises(RedbuttonError, match='no-such-program-here was not found'):
        LocalHost.get_bin_path('no-such-program-here', required=True)
