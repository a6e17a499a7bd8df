# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The command line of the on-host command (_cli): parsing, human and JSON output, exit
codes, confirmation, and every bad input refused with exit code 2 and nothing changed."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import io
import json
import os
import subprocess
import sys

import pytest

from ansible_collections.redbutton.deploy.plugins.module_utils import _cli
from ansible_collections.redbutton.deploy.plugins.module_utils._lock import DeployLock

from .test_button import release
from .test_release import snapshot

# The directory that holds ansible_collections/ (as imported here: through the development link).
COLLECTIONS = _cli.__file__[:_cli.__file__.index(os.sep + 'ansible_collections' + os.sep)]
# What a rollout records for a host without a service and without health checks.
SETTINGS = {'service': {'manager': 'none'}, 'health_checks': [], 'baseline': True}


def make_root(tmp_path, versions=('v1', 'v2'), settings=None):
    root = str(tmp_path / 'root')
    for version in versions:
        release(root, version, str(tmp_path / 'src'))
    if settings is not False:
        with open(_cli.settings_path(root), 'w') as handle:
            json.dump(SETTINGS if settings is None else settings, handle)
    return root


def press(capsys, *argv):
    """Run the command line in-process: (exit code, stdout, stderr)."""
    code = _cli.main(list(argv), program='/usr/local/bin/not-installed')
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def no_terminal(monkeypatch):
    monkeypatch.setattr(_cli, 'stdin_is_terminal', lambda: False)


@pytest.fixture
def terminal(monkeypatch):
    """A terminal on stdin whose user types the answers given to it."""
    monkeypatch.setattr(_cli, 'stdin_is_terminal', lambda: True)

    def answer(text):
        monkeypatch.setattr(sys, 'stdin', io.StringIO(text))
    return answer


# parsing ---------------------------------------------------------------------------------
@pytest.mark.parametrize('command, words', [
    ('status', ['--events N', '--json', 'the rollback target']),
    ('rollback', ['--to ID', '--yes', '--json', 'REDBUTTON_DB_PASSWORD', 'baseline']),
    ('verify', ['--json', 'Changes nothing']),
])
def test_each_command_has_help(capsys, command, words):
    with pytest.raises(SystemExit) as exc:
        _cli.main([command, '--help'])
    assert exc.value.code == 0
    out = ' '.join(capsys.readouterr().out.split())
    for word in words:
        assert word in out


def test_main_help_lists_the_commands_and_exit_codes(capsys):
    with pytest.raises(SystemExit) as exc:
        _cli.main(['--help'])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for word in ('status', 'rollback', 'verify', '--root DIR', '2 refused before changing anything'):
        assert word in out


def test_version_names_the_collection_version(capsys):
    with pytest.raises(SystemExit) as exc:
        _cli.main(['--version'])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == 'redbutton (redbutton.deploy %s)' % _cli.VERSION


@pytest.mark.parametrize('argv', [[], ['rollback', '--bogus'], ['undo'], ['status', '--events', 'many']])
def test_usage_errors_exit_2(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        _cli.main(argv)
    assert exc.value.code == 2
    assert 'usage: redbutton' in capsys.readouterr().err


def test_root_defaults_to_the_directory_that_holds_the_command(tmp_path):
    root = tmp_path / 'srv' / 'app'
    command = root / '.redbutton' / 'bin' / 'redbutton'
    command.parent.mkdir(parents=True)
    command.write_text('')
    assert _cli.default_root(str(command)) == str(root)
    link = tmp_path / 'redbutton-app'
    link.symlink_to(command)
    assert _cli.default_root(str(link)) == str(root)
    assert _cli.default_root(str(tmp_path / 'redbutton')) is None


def test_without_root_outside_an_installed_command_refuses(tmp_path, capsys):
    code = _cli.main(['status'], program=str(tmp_path / 'redbutton'))
    assert code == 2
    assert 'give the application root with --root DIR' in capsys.readouterr().err


def test_actor_names_the_user_and_the_host(monkeypatch):
    monkeypatch.setenv('SUDO_USER', 'alice')
    monkeypatch.setattr(_cli.socket, 'gethostname', lambda: 'web1')
    assert _cli.actor() == 'alice@web1'
    monkeypatch.delenv('SUDO_USER')
    monkeypatch.setenv('LOGNAME', 'bob')
    monkeypatch.setenv('USER', 'bob')
    assert _cli.actor() == 'bob@web1'


# status ----------------------------------------------------------------------------------
def test_status_shows_what_the_status_playbook_shows(tmp_path, capsys):
    root = make_root(tmp_path)
    DeployLock(root, host='ci1', pid=4242).acquire('rollout:alice:1', ttl=600)
    code, out, _err = press(capsys, '--root', root, 'status', '--events', '2')
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == 'RELEASE   STATUS       NOTE'
    assert lines[1] == 'v1        ok           previous (rollback target)'
    assert lines[2] == 'v2        ok           current'
    assert lines[3].startswith('last switch: v1 -> v2 (None) at ') and lines[3].endswith(' by alice')
    assert len([line for line in lines if line.startswith('event ')]) == 2
    assert ' activated v2 (from v1) by alice' in lines[4]
    assert lines[5].endswith('status v2 -> ok by alice')
    assert lines[6].startswith('lock: rollout:alice:1 since ') and lines[6].endswith('(host ci1, pid 4242)')


def test_status_notes_a_missing_directory_and_an_empty_root(tmp_path, capsys):
    root = make_root(tmp_path)
    os.rename(os.path.join(root, 'releases', 'v1'), str(tmp_path / 'v1-aside'))
    code, out, _err = press(capsys, '--root', root, 'status')
    assert code == 0
    assert 'v1        ok           directory missing' in out.splitlines()
    empty = tmp_path / 'empty'
    (empty / '.redbutton').mkdir(parents=True)
    code, out, _err = press(capsys, '--root', str(empty), 'status')
    assert code == 0
    assert out.splitlines()[1:] == ['no releases under %s' % empty, 'lock: free']


def test_status_json(tmp_path, capsys):
    root = make_root(tmp_path)
    code, out, err = press(capsys, '--root', root, 'status', '--json')
    assert code == 0 and err == ''
    document = json.loads(out)
    assert document['exit'] == 0 and document['command'] == 'status' and document['root'] == root
    assert (document['current'], document['previous'], document['lock']) == ('v2', 'v1', None)
    assert [(item['id'], item['status'], item['present']) for item in document['releases']] == [
        ('v1', 'ok', True), ('v2', 'ok', True)]
    assert len(document['events']) == 5


# bad input: exit 2, a message naming it, nothing changed ---------------------------------
def corrupt_ledger(root, _tmp_path):
    with open(os.path.join(root, '.redbutton', 'ledger.json'), 'w') as handle:
        handle.write('{"schema": 1, "releases": {')
    return [], 'is corrupt'


def unknown_release(_root, _tmp_path):
    return ['--to', 'v9'], 'v9 is not staged'


def missing_directory(root, tmp_path):
    os.rename(os.path.join(root, 'releases', 'v1'), str(tmp_path / 'v1-aside'))
    return [], 'The directories of v1 are missing under %s/releases' % root


def lock_held(root, _tmp_path):
    DeployLock(root, host='ci1', pid=4242).acquire('rollout:alice:17', ttl=600)
    return [], "held by owner 'rollout:alice:17' on host ci1 (pid 4242)"


def failed_target(root, _tmp_path):
    release(root, 'v1', str(_tmp_path / 'src'), state=None, status='failed')
    return ['--to', 'v1'], 'v1 is marked failed; refusing to activate it'


def no_settings(root, _tmp_path):
    os.unlink(_cli.settings_path(root))
    return [], 'no settings recorded in %s' % _cli.settings_path(root)


def corrupt_settings(root, _tmp_path):
    with open(_cli.settings_path(root), 'w') as handle:
        handle.write('{"service": ')
    return [], 'settings file %s is corrupt' % _cli.settings_path(root)


@pytest.mark.parametrize('bad', [corrupt_ledger, unknown_release, missing_directory, lock_held, failed_target,
                                 no_settings, corrupt_settings])
@pytest.mark.parametrize('as_json', [False, True])
def test_rollback_refuses_bad_input_and_changes_nothing(tmp_path, capsys, no_terminal, bad, as_json):
    root = make_root(tmp_path)
    extra, message = bad(root, tmp_path)
    before = snapshot(root)
    code, out, err = press(capsys, '--root', root, 'rollback', '--yes', *(extra + (['--json'] if as_json else [])))
    assert code == 2
    if as_json:
        document = json.loads(out)
        assert document['exit'] == 2 and document['refused'] is True
        assert message in document['msg']
    else:
        assert message in err and err.endswith('. Nothing was changed.\n')
    assert snapshot(root) == before


def test_rollback_with_nothing_to_roll_back_to(tmp_path, capsys, no_terminal):
    root = make_root(tmp_path, versions=('v1',))
    before = snapshot(root)
    code, _out, err = press(capsys, '--root', root, 'rollback', '--yes')
    assert code == 2
    assert 'nothing to roll back to in %s' % root in err and 'Nothing was changed' in err
    assert snapshot(root) == before


def test_status_of_a_corrupt_ledger_exits_2(tmp_path, capsys):
    root = make_root(tmp_path)
    corrupt_ledger(root, tmp_path)
    before = snapshot(root)
    code, _out, err = press(capsys, '--root', root, 'status')
    assert code == 2 and 'is corrupt' in err
    assert snapshot(root) == before


@pytest.mark.parametrize('command', ['status', 'rollback', 'verify'])
def test_a_root_that_is_not_one_exits_2(tmp_path, capsys, command):
    code, _out, err = press(capsys, '--root', str(tmp_path / 'nowhere'), command)
    assert code == 2 and 'is not a directory' in err
    (tmp_path / 'plain').mkdir()
    code, _out, err = press(capsys, '--root', str(tmp_path / 'plain'), command)
    assert code == 2 and 'has no .redbutton/ directory' in err


def _read_only_run(root, argv):
    """Run the command line on root made read-only: a read-only bind mount in a private mount
    namespace when run as root (root ignores permissions), permissions otherwise."""
    code = ('import sys; sys.path.insert(0, %r); from ansible_collections.redbutton.deploy.plugins.module_utils '
            'import _cli; sys.exit(_cli.main(sys.argv[1:]))' % COLLECTIONS)
    command = [sys.executable, '-c', code, '--root', root] + argv
    if os.geteuid() == 0:
        script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" "$1" && shift && exec "$@"'
        return subprocess.run(['unshare', '-m', 'sh', '-c', script, 'sh', root] + command,
                              capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    modes = [(path, os.stat(path).st_mode) for path in (root, os.path.join(root, '.redbutton'))]
    try:
        for path, mode in modes:
            os.chmod(path, 0o555)
        return subprocess.run(command, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    finally:
        for path, mode in modes:
            os.chmod(path, mode)


def test_rollback_on_a_read_only_root_exits_2(tmp_path):
    root = make_root(tmp_path)
    before = snapshot(root)
    proc = _read_only_run(root, ['rollback', '--yes'])
    if 'mount' in proc.stderr and proc.returncode != 2:
        pytest.skip('cannot make a read-only mount here: %s' % proc.stderr)
    assert proc.returncode == 2, proc.stderr
    assert 'cannot write %s (a read-only file system, or no permission for this user)' % root in proc.stderr
    assert 'Nothing was changed' in proc.stderr
    assert snapshot(root) == before
    # status still works on a read-only root
    proc = _read_only_run(root, ['status'])
    assert proc.returncode == 0, proc.stderr
    assert 'v2        ok           current' in proc.stdout


# confirmation ----------------------------------------------------------------------------
def test_without_a_terminal_and_without_yes_it_refuses(tmp_path, capsys, no_terminal):
    root = make_root(tmp_path)
    before = snapshot(root)
    code, _out, err = press(capsys, '--root', root, 'rollback')
    assert code == 2
    assert 'Roll back %s from v2 to v1' % root in err
    assert 'there is no terminal to ask on' in err and 'pass --yes' in err
    assert snapshot(root) == before


def test_answering_no_changes_nothing(tmp_path, capsys, terminal):
    root = make_root(tmp_path)
    before = snapshot(root)
    terminal('n\n')
    code, _out, err = press(capsys, '--root', root, 'rollback')
    assert code == 2
    assert 'Roll back %s from v2 to v1 (v2 will be marked rolled_back; service: none, 0 health checks)? [y/N]' % root in err
    assert 'not confirmed. Nothing was changed.' in err
    assert snapshot(root) == before


# the database password -------------------------------------------------------------------
def plan(current_schema, target_schema):
    return {'release': 'v1', 'current_before': 'v2', 'releases': [
        {'id': 'v1', 'metadata': {'schema_version': target_schema}},
        {'id': 'v2', 'metadata': {'schema_version': current_schema}}]}


POSTGRES = {'engine': 'postgresql', 'database': 'postgresql://app@db/app', 'path': 'migrations',
            'password_from': 'REDBUTTON_DB_PASSWORD or PGPASSWORD'}


def test_password_from_the_environment(monkeypatch):
    monkeypatch.delenv('PGPASSWORD', raising=False)
    monkeypatch.setenv('REDBUTTON_DB_PASSWORD', 's3cret')
    assert _cli.database_password(POSTGRES, plan(2, 1), ask=False) == ('s3cret', 'the environment variable REDBUTTON_DB_PASSWORD')
    monkeypatch.delenv('REDBUTTON_DB_PASSWORD')
    monkeypatch.setenv('PGPASSWORD', 'other')
    assert _cli.database_password(POSTGRES, plan(2, 1), ask=False) == ('other', 'the environment variable PGPASSWORD')


def test_password_typed_at_a_terminal_or_none(monkeypatch):
    monkeypatch.delenv('PGPASSWORD', raising=False)
    monkeypatch.delenv('REDBUTTON_DB_PASSWORD', raising=False)
    prompts = []
    monkeypatch.setattr(_cli.getpass, 'getpass', lambda prompt: prompts.append(prompt) or 'typed')
    assert _cli.database_password(POSTGRES, plan(2, 1), ask=True) == ('typed', 'typed at the prompt')
    assert 'postgresql://app@db/app' in prompts[0]
    password, source = _cli.database_password(POSTGRES, plan(2, 1), ask=False)
    assert password is None and source.startswith('nowhere (REDBUTTON_DB_PASSWORD and PGPASSWORD are unset')


def test_no_password_when_none_is_needed(monkeypatch):
    monkeypatch.setenv('REDBUTTON_DB_PASSWORD', 's3cret')
    # The schema version does not change: nothing migrates.
    assert _cli.database_password(POSTGRES, plan(2, 2), ask=True) == (None, None)
    # No migrations, or the rollout used no password (SQLite, or ~/.pgpass).
    assert _cli.database_password({}, plan(2, 1), ask=True) == (None, None)
    assert _cli.database_password(dict(POSTGRES, password_from=None), plan(2, 1), ask=True) == (None, None)


# with the engine: rollouts through the transition engine, then the button ---------------
def engine_root(tmp_path, checks=None):
    """v1 then v2 rolled out by the engine (as the roles do): it records settings.json and
    installs the command. The health check passes while the release has its HEALTHY file."""
    from ansible_collections.redbutton.deploy.plugins.module_utils import _transition
    root = str(tmp_path / 'root')
    for version in ('v1', 'v2'):
        src = tmp_path / 'src' / version
        (src / 'data').mkdir(parents=True)
        (src / 'VERSION').write_text(version + '\n')
        (src / 'HEALTHY').write_text('yes\n')
        params = _transition.defaults()
        params.update(root=root, direction='rollout', release=version, src=str(src), shared_paths=['data'],
                      actor='alice', lock_owner='rollout-%s' % version, run_id='job-%s' % version,
                      health_checks=checks if checks is not None else [
                          {'name': 'healthy file', 'command': 'test -f HEALTHY', 'retries': 1, 'delay': 0}])
        result = _transition.Transition(params, _cli._local_host()).run()
        assert result['current'] == version and result['button']['path'] == os.path.join(root, '.redbutton', 'bin', 'redbutton')
    return root


def ledger(root):
    with open(os.path.join(root, '.redbutton', 'ledger.json')) as handle:
        return json.load(handle)


def ledger_bytes(root):
    with open(os.path.join(root, '.redbutton', 'ledger.json'), 'rb') as handle:
        return handle.read()


def statuses(root):
    return dict((rid, entry['status']) for rid, entry in ledger(root)['releases'].items())


def current(root):
    return os.path.basename(os.readlink(os.path.join(root, 'current')))


def test_settings_recorded_by_the_rollout_have_no_password(tmp_path):
    root = engine_root(tmp_path)
    with open(_cli.settings_path(root)) as handle:
        settings = json.load(handle)
    assert settings['service']['manager'] == 'none'
    assert [check['name'] for check in settings['health_checks']] == ['healthy file']
    assert 'login_password' not in json.dumps(settings)


def test_rollback_rolls_back_and_records_who_pressed_it(tmp_path, capsys, no_terminal, monkeypatch):
    root = engine_root(tmp_path)
    monkeypatch.setattr(_cli, 'actor', lambda: 'carol@web1')
    code, out, err = press(capsys, '--root', root, 'rollback', '--yes')
    assert code == 0, err
    assert current(root) == 'v1' and statuses(root) == {'v1': 'ok', 'v2': 'rolled_back'}
    assert not os.path.exists(os.path.join(root, '.redbutton', 'lock'))
    lines = out.splitlines()
    assert lines[0] == 'rollback of %s: v2 -> v1' % root
    assert [line.split()[:2] for line in lines[1:7]] == [
        ['switch', 'changed'], ['migrate', 'skipped'], ['restart', 'skipped'], ['verify', 'ok'], ['compare', 'ok'],
        ['finish', 'changed']]
    assert lines[-1] == ('v1 serves again and passed 1 health check; host matches baseline before-v2 (4 files, shared data '
                         'intact, 3 probes); v2 is marked rolled_back')
    data = ledger(root)
    assert data['last_switch']['by'] == 'carol@web1' and data['last_switch']['reason'] == 'rollback'
    pressed = [event for event in data['events'] if event.get('run_id') == 'on-host']
    assert [(e['event'], e['release'], e['by']) for e in pressed] == [
        ('activated', 'v1', 'carol@web1'), ('status', 'v2', 'carol@web1'), ('status', 'v1', 'carol@web1')]
    assert data['releases']['v1']['metadata']['baseline_checked'] == 'before-v2'


def test_rollback_json_and_a_second_press_is_a_no_op(tmp_path, capsys, no_terminal):
    root = engine_root(tmp_path)
    code, out, err = press(capsys, '--root', root, 'rollback', '--yes', '--json')
    assert code == 0, err
    answer = json.loads(out)
    assert (answer['exit'], answer['command'], answer['direction'], answer['release']) == (0, 'rollback', 'rollback', 'v1')
    assert (answer['from'], answer['to'], answer['moved'], answer['current']) == ('v2', 'v1', True, 'v1')
    assert answer['statuses'] == {'v1': 'ok', 'v2': 'rolled_back'}
    assert answer['compare']['name'] == 'before-v2' and answer['compare']['matched'] is True
    before = ledger_bytes(root)
    code, out, err = press(capsys, '--root', root, 'rollback', '--yes', '--json')
    assert code == 0, err
    answer = json.loads(out)
    assert answer['moved'] is False and answer['current'] == 'v1'
    assert 'The last switch was already a rollback to v1: nothing to roll back' in answer['msg']
    assert ledger_bytes(root) == before


def test_confirmed_on_a_terminal(tmp_path, capsys, terminal):
    root = engine_root(tmp_path)
    terminal('y\n')
    code, _out, err = press(capsys, '--root', root, 'rollback', '--to', 'v1')
    assert code == 0, err
    assert 'Roll back %s from v2 to v1 (v2 will be marked rolled_back; service: none, 1 health check)? [y/N]' % root in err
    assert current(root) == 'v1'


def test_a_failing_check_after_the_switch_exits_1_and_says_where_the_host_stands(tmp_path, capsys, no_terminal):
    root = engine_root(tmp_path)
    os.unlink(os.path.join(root, 'releases', 'v1', 'HEALTHY'))
    code, out, err = press(capsys, '--root', root, 'rollback', '--yes')
    assert code == 1
    assert current(root) == 'v1' and statuses(root) == {'v1': 'active', 'v2': 'rolled_back'}
    assert not os.path.exists(os.path.join(root, '.redbutton', 'lock'))
    assert 'check healthy file (command test -f HEALTHY): FAILED after 2 attempts: rc 1' in out
    assert ('rollback failed at verify after switching current to v1 (v2 is marked rolled_back, v1 is not marked ok)'
            in err)
    assert 'redbutton rollback --to v1 to verify again and mark it ok' in err
    # Fixed on the host: pressing again with the target named finishes the job.
    with open(os.path.join(root, 'releases', 'v1', 'HEALTHY'), 'w') as handle:
        handle.write('yes\n')
    code, _out, err = press(capsys, '--root', root, 'rollback', '--yes', '--to', 'v1')
    assert code == 0, err
    assert statuses(root) == {'v1': 'ok', 'v2': 'rolled_back'}


def test_verify_changes_nothing_and_names_a_tampered_file(tmp_path, capsys, no_terminal):
    root = engine_root(tmp_path)
    assert press(capsys, '--root', root, 'rollback', '--yes')[0] == 0
    before = ledger_bytes(root)
    code, out, err = press(capsys, '--root', root, 'verify', '--json')
    assert code == 0, err
    answer = json.loads(out)
    assert [check['passed'] for check in answer['checks']] == [True]
    assert answer['compare']['name'] == 'before-v2' and answer['compare']['matched'] is True
    with open(os.path.join(root, 'releases', 'v1', 'VERSION'), 'a') as handle:
        handle.write('edited on the host\n')
    code, out, err = press(capsys, '--root', root, 'verify')
    assert code == 1
    assert 'differs from baseline before-v2' in out and 'VERSION' in out
    assert 'verify failed at compare' in err and 'Nothing was changed' in err
    assert ledger_bytes(root) == before
    assert not os.path.exists(os.path.join(root, '.redbutton', 'lock'))


def test_rollback_with_an_engine_lock_held_names_the_holder(tmp_path, capsys, no_terminal):
    root = engine_root(tmp_path)
    DeployLock(root, host='ci1', pid=99).acquire('rollout:bob:42', ttl=600)
    before = snapshot(root)
    code, _out, err = press(capsys, '--root', root, 'rollback', '--yes')
    assert code == 2
    assert "held by owner 'rollout:bob:42' on host ci1 (pid 99)" in err
    assert snapshot(root) == before


def test_a_press_that_was_killed_after_the_switch_is_finished_by_the_next(tmp_path, capsys, no_terminal):
    """A rollback killed after its switch (Ctrl-C, a closed SSH session): current is the target, still
    `active`, the transition open and the lock held by a process that is gone. The next press releases
    that lock, restarts, verifies and finishes; it asks first, naming what it will do."""
    from ansible_collections.redbutton.deploy.plugins.module_utils import _transition
    root = engine_root(tmp_path)
    dead = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'], capture_output=True, text=True,
                          check=True).stdout.strip()
    owner = 'on-host:carol@web1:%s' % dead
    params = _transition.defaults()
    params.update(root=root, direction='rollback', release='previous', once=True, steps=['switch'], actor='carol@web1',
                  lock_owner=owner, run_id='on-host')
    _transition.Transition(params, _cli._local_host()).run()
    DeployLock(root, pid=int(dead)).acquire(owner)  # the killed run's lock, as it left it
    assert current(root) == 'v1' and statuses(root)['v1'] == 'active'
    before = snapshot(root)
    code, _out, err = press(capsys, '--root', root, 'rollback')
    assert code == 2 and 'Restart and verify v1, the current release of %s, and mark it ok?' % root in err
    assert snapshot(root) == before, 'a refused press changed something'
    code, out, err = press(capsys, '--root', root, 'rollback', '--yes')
    assert code == 0, err
    assert 'releasing the deploy lock left by an earlier redbutton that is no longer running' in err
    assert statuses(root) == {'v1': 'ok', 'v2': 'rolled_back'}
    assert ledger(root).get('transition') is None
    assert not os.path.exists(os.path.join(root, '.redbutton', 'lock'))


def test_a_press_loads_only_what_its_rollback_uses(tmp_path):
    """The installed command, run as a user runs it: it compares the baseline (so the baseline
    engine loads), but a rollback without PostgreSQL migrations, archives or HTTP checks loads
    neither psycopg (a third of a second) nor the archive readers, the migrate engine or ssl."""
    root = engine_root(tmp_path)
    command = os.path.join(root, '.redbutton', 'bin', 'redbutton')
    proc = subprocess.run([sys.executable, '-X', 'importtime', command, 'rollback', '--yes', '--json'], capture_output=True,
                          text=True, check=False, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    answer = json.loads(proc.stdout)
    assert answer['compare']['matched'] is True and current(root) == 'v1'
    loaded = set(line.split('|')[-1].strip() for line in proc.stderr.splitlines() if line.startswith('import time:'))
    utils = 'ansible_collections.redbutton.deploy.plugins.module_utils.'
    assert utils + '_baseline' in loaded and utils + '_transition' in loaded
    unneeded = ['psycopg', 'tarfile', 'zipfile', 'ssl', 'sqlite3', utils + '_migrate', utils + '_feature', utils + '_button']
    assert not sorted(loaded & set(unneeded))


def test_verify_compares_with_the_baseline_it_is_given(tmp_path, capsys, no_terminal):
    """The verify of a release no baseline describes says how to name one; --baseline NAME does it on the host."""
    root = engine_root(tmp_path)
    code, out, err = press(capsys, '--root', root, 'verify', '--json')
    assert code == 0, err
    answer = json.loads(out)
    assert answer['compare']['matched'] is None and 'redbutton verify --baseline NAME' in answer['compare']['msg']
    before = ledger_bytes(root)
    code, out, err = press(capsys, '--root', root, 'verify', '--baseline', 'before-v2', '--json')
    answer = json.loads(out)
    # before-v2 describes v1, and v2 is current: the comparison runs and names what differs (the release tree).
    assert code == 1 and answer['compare']['name'] == 'before-v2' and answer['compare']['matched'] is False, (out, err)
    assert ledger_bytes(root) == before
