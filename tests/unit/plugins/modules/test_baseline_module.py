# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The redbutton.deploy.baseline module end to end: argument handling, the four-run
idempotence pattern, command, service and packages probes, and how it fails."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.redbutton.deploy.plugins.modules import baseline as baseline_module


@pytest.fixture
def run(capsys):
    def runner(args, check=False, diff=False):
        args = dict(args)
        if check:
            args['_ansible_check_mode'] = True
        if diff:
            args['_ansible_diff'] = True
        with patch_module_args(args):
            with pytest.raises(SystemExit):
                baseline_module.main()
        return json.loads(capsys.readouterr().out)
    return runner


@pytest.fixture
def root(tmp_path):
    path = tmp_path / 'app'
    (path / 'releases' / 'v1').mkdir(parents=True)
    (path / 'releases' / 'v1' / 'app.py').write_text('print(1)\n')
    os.symlink('releases/v1', str(path / 'current'))
    return str(path)


def fake_tool(directory, name, body):
    """An executable script standing in for a system tool (systemctl, dpkg-query, rpm)."""
    directory.mkdir(exist_ok=True)
    path = directory / name
    path.write_text('#!/bin/sh\n' + body)
    path.chmod(0o755)
    return str(path)


def test_four_runs_check_real_check_real(run, root):
    args = {'root': root, 'name': 'b', 'state': 'captured',
            'probes': [{'name': 'tree', 'path': os.path.join(root, 'current')}]}
    path = os.path.join(root, '.redbutton', 'baselines', 'b.json')
    first = run(args, check=True)
    assert first['changed'] is True and not os.path.exists(path)
    second = run(args)
    assert second['changed'] is True and os.path.exists(path)
    third = run(args, check=True)
    assert third['changed'] is False
    fourth = run(args)
    assert fourth['changed'] is False and fourth['path'] == path


def test_diff_mode(run, root):
    args = {'root': root, 'name': 'b', 'state': 'captured',
            'probes': [{'name': 'tree', 'path': os.path.join(root, 'current')}]}
    result = run(args, diff=True)
    assert result['diff']['before'] == '' and 'app.py file' in result['diff']['after']
    assert 'diff' not in run(args)


def test_compare_fails_with_the_report_or_returns_differences(run, root):
    run({'root': root, 'name': 'b', 'state': 'captured', 'probes': [{'name': 'tree', 'path': os.path.join(root, 'current')}]})
    assert run({'root': root, 'name': 'b', 'state': 'compared'}).get('failed') is not True
    with open(os.path.join(root, 'current', 'app.py'), 'a') as handle:
        handle.write('tampered\n')
    failed = run({'root': root, 'name': 'b', 'state': 'compared'})
    assert failed['failed'] is True
    assert "probe 'tree'" in failed['msg'] and 'changed: app.py: sha256' in failed['msg']
    assert failed['differences'][0]['changed'][0]['item'] == 'app.py'
    quiet = run({'root': root, 'name': 'b', 'state': 'compared', 'fail_on_difference': False})
    assert quiet.get('failed') is not True and quiet['differences'][0]['probe'] == 'tree'


def test_compare_probes_adjust_recorded_ones(run, root):
    run({'root': root, 'name': 'b', 'state': 'captured', 'probes': [{'name': 'tree', 'path': os.path.join(root, 'current')}]})
    with open(os.path.join(root, 'current', 'debug.log'), 'w') as handle:
        handle.write('noise\n')
    assert run({'root': root, 'name': 'b', 'state': 'compared'})['failed'] is True
    result = run({'root': root, 'name': 'b', 'state': 'compared', 'probes': [{'name': 'tree', 'exclude': ['*.log']}]})
    assert result.get('failed') is not True and result['differences'] == []
    result = run({'root': root, 'name': 'b', 'state': 'compared', 'probes': [{'name': 'tree', 'path': root}]})
    assert result['failed'] is True and 'path differs from the baseline' in result['msg']


def test_missing_baseline(run, root):
    result = run({'root': root, 'name': 'never', 'state': 'compared'})
    assert result['failed'] is True and 'never.json does not exist' in result['msg']


@pytest.mark.parametrize('args, fragment', [
    ({'name': 'b', 'state': 'captured'}, 'missing: probes'),
    ({'name': '../b', 'state': 'captured', 'probes': [{'name': 'x', 'path': '/etc'}]}, "baseline id '../b' is not valid"),
    ({'name': 'b', 'state': 'captured', 'probes': [{'name': 'x', 'path': '/etc', 'colour': 'red'}]}, 'colour'),
    ({'name': 'b', 'state': 'captured', 'probes': [{'name': 'x', 'path': '/etc', 'command': 'true'}]}, 'found path and command'),
    ({'name': 'b', 'state': 'captured', 'probes': [{'name': 'x', 'path': '/etc', 'record': ['rc']}]}, 'record applies to command probes only'),
])
def test_bad_input_fails_clearly_and_writes_nothing(run, root, args, fragment):
    result = run(dict(args, root=root))
    assert result['failed'] is True and fragment in result['msg']
    assert not os.path.exists(os.path.join(root, '.redbutton'))


def capture_and_compare(run, root, probe, change):
    run({'root': root, 'name': 'b', 'state': 'captured', 'probes': [probe]})
    same = run({'root': root, 'name': 'b', 'state': 'compared'})
    assert same.get('failed') is not True, same['msg']
    change()
    return run({'root': root, 'name': 'b', 'state': 'compared', 'fail_on_difference': False})


def test_command_probe_stdout(run, root, tmp_path):
    status = tmp_path / 'status'
    status.write_text('healthy\n')
    result = capture_and_compare(run, root, {'name': 'health', 'command': ['cat', str(status)]},
                                 lambda: status.write_text('degraded\n'))
    change = result['differences'][0]['changed'][0]
    assert change['expected'] == {'stdout': 'healthy'} and change['found'] == {'stdout': 'degraded'}


def test_command_probe_regex_value(run, root, tmp_path):
    version = tmp_path / 'version'
    version.write_text('app version 1.2.3 (built today)\n')
    probe = {'name': 'version', 'command': 'cat %s' % version, 'regex': r'version (\S+)'}
    result = run({'root': root, 'name': 'b', 'state': 'captured', 'probes': [probe]})
    assert result['baseline']['probes'][0]['result'] == {'rc': 0, 'value': '1.2.3'}
    version.write_text('app version 1.2.3 (built tomorrow)\n')
    assert run({'root': root, 'name': 'b', 'state': 'compared'}).get('failed') is not True
    version.write_text('app version 1.2.4 (built tomorrow)\n')
    result = run({'root': root, 'name': 'b', 'state': 'compared'})
    assert result['failed'] is True and "value expected '1.2.3', found '1.2.4'" in result['msg']


def test_command_probe_regex_must_match_at_capture(run, root):
    result = run({'root': root, 'name': 'b', 'state': 'captured',
                  'probes': [{'name': 'v', 'command': 'echo nothing', 'regex': r'version (\S+)'}]})
    assert result['failed'] is True and 'does not match' in result['msg']


def test_command_probe_rc_only(run, root, tmp_path):
    flag = tmp_path / 'flag'
    flag.write_text('')
    result = capture_and_compare(run, root, {'name': 'flag', 'command': ['test', '-e', str(flag)], 'record': ['rc']},
                                 flag.unlink)
    assert result['differences'][0]['changed'][0]['found'] == {'rc': 1}


def test_command_probe_no_loss_numbers(run, root, tmp_path):
    count = tmp_path / 'count'
    count.write_text('5\n')
    probe = {'name': 'count', 'command': ['cat', str(count)], 'compare': 'no_loss'}
    result = capture_and_compare(run, root, probe, lambda: count.write_text('6\n'))
    assert result['differences'] == []
    count.write_text('4\n')
    result = run({'root': root, 'name': 'b', 'state': 'compared', 'fail_on_difference': False})
    assert result['differences'][0]['changed'][0]['note'] == 'stdout lower than recorded'


def test_command_string_runs_without_a_shell_unless_asked(run, root):
    probes = [{'name': 'plain', 'command': 'echo a | tr a b'},
              {'name': 'shell', 'command': 'echo a | tr a b', 'shell': True},
              {'name': 'literal', 'command': ['echo', '$HOME']}]
    result = run({'root': root, 'name': 'b', 'state': 'captured', 'probes': probes})
    results = dict((p['name'], p['result']['stdout']) for p in result['baseline']['probes'])
    assert results == {'plain': 'a | tr a b', 'shell': 'b', 'literal': '$HOME'}


def test_command_chdir(run, root, tmp_path):
    result = run({'root': root, 'name': 'b', 'state': 'captured',
                  'probes': [{'name': 'where', 'command': 'pwd', 'chdir': str(tmp_path)}]})
    assert result['baseline']['probes'][0]['result']['stdout'] == str(tmp_path)


def test_missing_command_fails_the_capture(run, root):
    result = run({'root': root, 'name': 'b', 'state': 'captured',
                  'probes': [{'name': 'x', 'command': ['/nonexistent/tool']}]})
    assert result['failed'] is True and "probe 'x': cannot run" in result['msg']
    assert not os.path.exists(os.path.join(root, '.redbutton', 'baselines', 'b.json'))


SYSTEMCTL = 'cat "$(dirname "$0")/unit-state"\n'


def unit_state(directory, active, sub):
    (directory / 'unit-state').write_text(
        'LoadState=loaded\nActiveState=%s\nSubState=%s\nUnitFileState=enabled\n' % (active, sub))


def test_service_probe(run, root, tmp_path, monkeypatch):
    tools = tmp_path / 'tools'
    fake_tool(tools, 'systemctl', SYSTEMCTL)
    unit_state(tools, 'active', 'running')
    monkeypatch.setenv('PATH', '%s:%s' % (tools, os.environ['PATH']))
    result = capture_and_compare(run, root, {'name': 'svc', 'service': 'app.service'},
                                 lambda: unit_state(tools, 'failed', 'failed'))
    change = result['differences'][0]['changed'][0]
    assert change['item'] == 'app.service' and change['attributes'] == ['ActiveState', 'SubState']
    assert change['expected'] == {'ActiveState': 'active', 'SubState': 'running'}
    stored = json.load(open(os.path.join(root, '.redbutton', 'baselines', 'b.json')))
    assert stored['probes'][0]['result']['state']['UnitFileState'] == 'enabled'


def test_service_probe_without_systemd(run, root, tmp_path, monkeypatch):
    tools = tmp_path / 'tools'
    fake_tool(tools, 'systemctl', 'echo "System has not been booted with systemd" >&2; exit 1\n')
    monkeypatch.setenv('PATH', '%s:%s' % (tools, os.environ['PATH']))
    result = run({'root': root, 'name': 'b', 'state': 'captured', 'probes': [{'name': 'svc', 'service': 'app'}]})
    assert result['failed'] is True and 'not been booted with systemd' in result['msg']


def test_packages_probe_reads_dpkg(run, root):
    expected = subprocess.check_output(['dpkg-query', '-W', '-f=${Version}', 'dpkg']).decode()
    result = run({'root': root, 'name': 'b', 'state': 'captured',
                  'probes': [{'name': 'pkgs', 'packages': ['dpkg', 'redbutton-not-installed']}]})
    assert result['baseline']['probes'][0]['result'] == {
        'manager': 'dpkg', 'versions': {'dpkg': expected, 'redbutton-not-installed': None}}


def test_packages_probe_reports_upgrades_and_removals(run, root, tmp_path, monkeypatch):
    tools = tmp_path / 'tools'
    fake_tool(tools, 'dpkg-query', 'cat "$(dirname "$0")/installed"\n')
    (tools / 'installed').write_text('nginx:amd64\tnginx\tii \t1.22\ncurl:amd64\tcurl\tii \t7.88\n')
    monkeypatch.setenv('PATH', '%s:%s' % (tools, os.environ['PATH']))

    def upgrade():
        (tools / 'installed').write_text('nginx:amd64\tnginx\tii \t1.24\ncurl:amd64\tcurl\trc \t7.88\n'
                                         'redis:amd64\tredis\tii \t7.0\n')

    result = capture_and_compare(run, root, {'name': 'pkgs', 'packages': ['nginx', 'curl', 'redis']}, upgrade)
    diff = result['differences'][0]
    assert diff['removed'] == ['curl'] and diff['added'] == ['redis']
    assert diff['changed'] == [{'item': 'nginx', 'attributes': ['version'],
                                'expected': {'version': '1.22'}, 'found': {'version': '1.24'}}]


def test_packages_probe_falls_back_to_rpm(run, root, tmp_path, monkeypatch):
    tools = tmp_path / 'tools'
    fake_tool(tools, 'rpm', 'if [ "$4" = bash ]; then printf "bash\\t5.2.15-1.fc38\\n"; '
                            'else echo "package $4 is not installed"; exit 1; fi\n')
    monkeypatch.setenv('PATH', str(tools))
    result = run({'root': root, 'name': 'b', 'state': 'captured', 'probes': [{'name': 'p', 'packages': ['bash', 'zsh']}]})
    assert result['baseline']['probes'][0]['result'] == {'manager': 'rpm', 'versions': {'bash': '5.2.15-1.fc38', 'zsh': None}}


def test_absent(run, root):
    run({'root': root, 'name': 'b', 'state': 'captured', 'probes': [{'name': 'tree', 'path': root}]})
    assert run({'root': root, 'name': 'b', 'state': 'absent'}, check=True)['changed'] is True
    assert run({'root': root, 'name': 'b', 'state': 'absent'})['changed'] is True
    assert run({'root': root, 'name': 'b', 'state': 'absent'})['changed'] is False
