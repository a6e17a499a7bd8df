# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The transition engine (_transition.Transition) on real roots with real archives: rollout,
rollback, automatic rollback, verify, migrations on SQLite, interrupted runs, check mode and bad
input. The host adapter records the commands it is given and answers them; the health checks ask
a real HTTP server that serves the VERSION file of <root>/current (500 when it says "broken")."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from http.server import BaseHTTPRequestHandler, HTTPServer

from ansible_collections.redbutton.deploy.plugins.module_utils._archive import file_checksum, release_id_from_checksum
from ansible_collections.redbutton.deploy.plugins.module_utils._baseline import baseline_path
from ansible_collections.redbutton.deploy.plugins.module_utils._common import RedbuttonError, state_dir
from ansible_collections.redbutton.deploy.plugins.module_utils._hosts import LocalHost
from ansible_collections.redbutton.deploy.plugins.module_utils._ledger import ledger_path
from ansible_collections.redbutton.deploy.plugins.module_utils._lock import lock_path
from ansible_collections.redbutton.deploy.plugins.module_utils._transition import (
    DIRECTIONS,
    Transition,
    TransitionFailed,
    step_order,
)

from .test_archive import make_tar
from .test_release import snapshot

MIGRATIONS = os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures', 'migrations', 'portable')
SCHEMA_1 = ('1_create_users.up.sql', '1_create_users.down.sql')
SCHEMA_2 = SCHEMA_1 + ('2_add_email.up.sql', '2_add_email.down.sql')
RESTART = 'app-restart'


class App(object):
    """The application as its users see it: GET / answers the VERSION of <root>/current,
    with status 500 when that file says "broken", 503 when there is no current release."""

    def __init__(self, root):
        self.root = root
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                try:
                    with open(os.path.join(app.root, 'current', 'VERSION')) as handle:
                        body = handle.read().strip()
                    status = 500 if 'broken' in body else 200
                except (IOError, OSError):
                    status, body = 503, 'no current release'
                self.send_response(status)
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args):
                pass

        self.httpd = HTTPServer(('127.0.0.1', 0), Handler)
        self.url = 'http://127.0.0.1:%d/' % self.httpd.server_port
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={'poll_interval': 0.02})
        self.thread.daemon = True
        self.thread.start()

    def serves(self):
        return LocalHost().http_get(self.url, 5)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class FakeHost(object):
    """The host adapter exactly as _checks describes it: run_command(args, cwd=None, use_unsafe_shell=False,
    environ_update=None, expand_user_and_vars=True, handle_exceptions=True) -> (rc, stdout, stderr),
    get_bin_path, http_get, warn. It records each command and answers rc 0, or what
    `script(args, current)` returns when that is not None. A cwd that does not exist fails as it
    does in the on-host command (subprocess raises OSError)."""

    def __init__(self, root):
        self.root = root
        self.calls = []
        self.warnings = []
        self.script = lambda args, current: None

    def run_command(self, args, cwd=None, use_unsafe_shell=False, environ_update=None, expand_user_and_vars=True,
                    handle_exceptions=True):
        current = current_of(self.root)
        self.calls.append({'args': args, 'cwd': cwd, 'shell': use_unsafe_shell, 'current': current})
        if cwd and not os.path.isdir(cwd):
            raise OSError(errno.ENOENT, 'No such file or directory', cwd)
        answer = self.script(args, current)
        return answer if answer is not None else (0, '', '')

    @staticmethod
    def get_bin_path(name, required=False):
        return LocalHost.get_bin_path(name, required=required)

    def http_get(self, url, timeout, validate_certs=True):
        return LocalHost().http_get(url, timeout, validate_certs)

    def warn(self, msg):
        self.warnings.append(msg)

    def restarts(self):
        """The release that was current at each restart."""
        return [call['current'] for call in self.calls if RESTART in str(call['args'])]


def current_of(root):
    link = os.path.join(str(root), 'current')
    return os.path.basename(os.readlink(link)) if os.path.islink(link) else None


def ledger(root):
    with open(ledger_path(str(root))) as handle:
        return json.load(handle)


def ledger_bytes(root):
    with open(ledger_path(str(root)), 'rb') as handle:
        return handle.read()


def statuses(root):
    return dict((rid, entry['status']) for rid, entry in ledger(root)['releases'].items())


def lock_holder(root):
    path = lock_path(str(root))
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        return json.load(handle).get('owner')


def schema_columns(database):
    conn = sqlite3.connect(database)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'users'")]
        return [r[1] for r in conn.execute('PRAGMA table_info(users)')] if tables else None
    finally:
        conn.close()


class Env(object):
    """One application root, its archives, the host adapter and the application's HTTP server."""

    def __init__(self, tmp_path, app):
        self.tmp = tmp_path
        self.root = str(tmp_path / 'app')
        self.host = FakeHost(self.root)
        self.app = app
        self.archives = {}
        self.defaults = dict(root=self.root, lock_owner='run-1', actor='alice',
                             service={'manager': 'command', 'restart_command': RESTART},
                             health_checks=[{'name': 'web', 'url': app.url}], health_retries=0, health_delay=0, health_timeout=5)

    def archive(self, version, body=None, files=()):
        """The artifact of a release, built once (the same bytes each time it is asked for)."""
        key = (version, body, tuple(files))
        if key not in self.archives:
            self.archives[key] = self._build(version, body, files)
        return self.archives[key]

    def _build(self, version, body, files):
        entries = [('file', 'VERSION', (body or version) + '\n')]
        for name in files:
            with open(os.path.join(MIGRATIONS, name)) as handle:
                entries.append(('file', 'migrations/' + name, handle.read()))
        return make_tar(self.tmp / ('%s-%d.tar.gz' % (version, len(self.archives))), entries, mode='w:gz')

    def params(self, **params):
        merged = dict(self.defaults)
        merged.update(params)
        return merged

    def run(self, check_mode=False, diff=False, **params):
        return Transition(self.params(**params), self.host, check_mode=check_mode, diff=diff).run()

    def fails(self, check_mode=False, **params):
        with pytest.raises(TransitionFailed) as caught:
            self.run(check_mode=check_mode, **params)
        assert caught.value.result['msg'] == str(caught.value)
        return caught.value.result

    def rollout(self, version, body=None, files=(), **params):
        return self.run(direction='rollout', release=version, src=self.archive(version, body, files), **params)

    def db(self):
        return str(self.tmp / 'app.db')

    def migrations(self, **extra):
        settings = {'engine': 'sqlite', 'database': self.db(), 'path': 'migrations'}
        settings.update(extra)
        return settings


@pytest.fixture
def env(tmp_path):
    app = App(str(tmp_path / 'app'))
    yield Env(tmp_path, app)
    app.close()


def baselines(root):
    folder = os.path.join(state_dir(str(root)), 'baselines')
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def step_outcomes(result):
    return [(step['name'], step['outcome']) for step in result['steps']]


# rollout ----------------------------------------------------------------------------------------
def test_first_rollout_switches_restarts_verifies_and_marks_ok(env):
    result = env.rollout('v1')
    assert result['changed'] and result['outcome'] == 'rolled_out'
    assert (result['direction'], result['release'], result['from'], result['to']) == ('rollout', 'v1', None, 'v1')
    assert result['moved'] and result['current'] == 'v1' and result['created'] and not result['open']
    assert step_outcomes(result) == [('stage', 'changed'), ('migrate', 'skipped'), ('switch', 'changed'), ('restart', 'changed'),
                                     ('verify', 'ok'), ('finish', 'changed')]
    assert result['checks'][0]['passed'] and result['checks'][0]['kind'] == 'http'
    assert result['msg'] == result['summary'] == 'v1 serves and passed 1 health check'
    assert os.readlink(os.path.join(env.root, 'current')) == 'releases/v1'
    assert env.app.serves() == (200, 'v1')
    assert statuses(env.root) == {'v1': 'ok'} and result['statuses'] == {'v1': 'ok'}
    data = ledger(env.root)
    assert data['transition'] is None
    assert data['last_transition']['outcome'] == 'rolled_out' and data['last_transition']['to'] == 'v1'
    assert lock_holder(env.root) is None and not result['locked']
    assert baselines(env.root) == []  # nothing served before: nothing to record
    assert env.host.restarts() == ['v1']


def test_second_rollout_records_the_baseline_of_the_release_it_replaces(env):
    env.rollout('v1')
    result = env.rollout('v2')
    assert result['outcome'] == 'rolled_out' and (result['from'], result['to']) == ('v1', 'v2')
    assert result['msg'] == 'v2 serves and passed 1 health check; v1 is the rollback target'
    assert result['steps'][0]['msg'] == 'recorded baseline before-v2 of v1'
    assert os.path.isfile(baseline_path(env.root, 'before-v2'))
    assert baselines(env.root) == ['before-v2.json']
    meta = ledger(env.root)['releases']['v2']['metadata']
    assert meta['baseline'] == 'before-v2' and meta['baseline_of'] == 'v1'
    assert statuses(env.root) == {'v1': 'ok', 'v2': 'ok'}
    assert result['previous'] == 'v1' and current_of(env.root) == 'v2' and env.app.serves() == (200, 'v2')
    assert lock_holder(env.root) is None and ledger(env.root)['transition'] is None
    assert env.host.restarts() == ['v1', 'v2']


def test_second_rollout_with_a_command_check_records_it_in_the_baseline(env):
    # The baseline of the release that serves includes each command check's rc (rollout_probes);
    # the probe runs through the engine's host adapter, whose run_command has the contract's signature.
    smoke = [{'name': 'smoke', 'command': 'bin/smoke --quick'}]
    env.rollout('v1', health_checks=smoke)
    result = env.rollout('v2', health_checks=smoke)
    assert result['outcome'] == 'rolled_out'
    with open(baseline_path(env.root, 'before-v2')) as handle:
        assert 'health-smoke' in handle.read()


def test_rollout_without_an_id_names_the_release_after_its_content(env):
    src = env.archive('v1')
    result = env.run(direction='rollout', src=src)
    expected = result['release']
    assert re.match(r'^sha256-[0-9a-f]{12}$', expected) and result['to'] == expected
    content = ledger(env.root)['releases'][expected]['content']
    assert expected == release_id_from_checksum(content)
    assert current_of(env.root) == expected and statuses(env.root) == {expected: 'ok'}


def test_a_rebuilt_artifact_of_the_current_release_without_an_id_changes_nothing(env):
    first = env.run(direction='rollout', src=env.archive('v1'))
    before = snapshot(env.root)
    rebuilt = make_tar(env.tmp / 'rebuilt.tar', [('file', 'VERSION', 'v1\n')])  # the same files, other bytes
    again = env.run(direction='rollout', src=rebuilt)
    assert again['release'] == first['release']
    assert again['outcome'] == 'up_to_date' and not again['changed']
    assert snapshot(env.root) == before


def test_rolling_out_a_rolled_back_release_again_by_its_id(env):
    env.rollout('v1')
    env.rollout('v2')
    env.run(direction='rollback')
    result = env.run(direction='rollout', release='v2')  # staged already: no src needed
    assert result['outcome'] == 'rolled_out' and not result['created'] and (result['from'], result['to']) == ('v1', 'v2')
    assert current_of(env.root) == 'v2' and statuses(env.root) == {'v1': 'ok', 'v2': 'ok'}
    assert env.host.restarts()[-1] == 'v2'


def test_rolling_out_a_failed_release_again_is_refused_before_any_change(env):
    env.rollout('v1')
    env.fails(direction='rollout', release='v2', src=env.archive('v2', 'broken'))
    env.run(direction='auto_rollback')
    before = snapshot(env.root)
    with pytest.raises(RedbuttonError) as caught:
        env.rollout('v2', 'broken')
    assert 'marked failed' in str(caught.value)
    assert snapshot(env.root) == before  # no open record, no lock left, baseline untouched


def test_a_lock_held_by_another_run_refuses_the_rollout_and_changes_nothing(env):
    from ansible_collections.redbutton.deploy.plugins.module_utils._lock import DeployLock
    env.rollout('v1')
    DeployLock(env.root).acquire('other-run')
    before = snapshot(env.root)
    with pytest.raises(RedbuttonError) as caught:
        env.rollout('v2')
    assert 'other-run' in str(caught.value)
    assert snapshot(env.root) == before and lock_holder(env.root) == 'other-run'
    with pytest.raises(RedbuttonError, match='other-run'):
        env.run(direction='rollback')
    assert snapshot(env.root) == before


def test_rerun_of_the_current_ok_release_changes_nothing(env):
    env.rollout('v1')
    before = snapshot(env.root)
    restarts = len(env.host.restarts())
    result = env.rollout('v1')
    assert not result['changed'] and result['outcome'] == 'up_to_date' and result['up_to_date']
    assert not result['moved'] and not result['created'] and not result['open']
    assert result['msg'] == 'v1 serves and passed 1 health check; it was already current and ok: nothing changed'
    assert [s['name'] for s in result['steps']] == ['stage', 'verify']
    assert snapshot(env.root) == before  # ledger bytes included: no record, no event
    assert len(env.host.restarts()) == restarts  # a current ok release is not restarted


def test_the_same_steps_cut_in_three_calls_end_where_one_call_ends(env, tmp_path):
    env.rollout('v1')
    staged = env.rollout('v2', steps=['stage'])
    assert staged['open'] and staged['outcome'] == 'in_progress' and not staged['moved']
    assert staged['msg'] == 'v1 serves; the rollout to v2 is not finished yet (done: stage)'
    record = ledger(env.root)['transition']
    assert (record['direction'], record['from'], record['to'], record['done']) == ('rollout', 'v1', 'v2', ['stage'])
    assert record['owner'] == 'run-1' and record['baseline'] == 'before-v2'
    assert lock_holder(env.root) == 'run-1' and current_of(env.root) == 'v1'
    assert statuses(env.root) == {'v1': 'ok', 'v2': 'staged'}

    switched = env.run(direction='rollout', release='v2', steps=['switch'])
    assert switched['open'] and switched['moved'] and switched['current'] == 'v2'
    assert ledger(env.root)['transition']['done'] == ['stage', 'switch']
    assert statuses(env.root) == {'v1': 'ok', 'v2': 'active'}
    assert lock_holder(env.root) == 'run-1' and env.host.restarts() == ['v1']

    finished = env.run(direction='rollout', release='v2', steps=['restart', 'verify', 'finish'])
    assert finished['outcome'] == 'rolled_out' and not finished['open'] and finished['moved']
    assert (finished['from'], finished['to']) == ('v1', 'v2')
    assert [s['name'] for s in finished['steps']] == ['restart', 'verify', 'finish']

    twin = Env(tmp_path / 'twin', env.app)
    (tmp_path / 'twin').mkdir()
    twin.rollout('v1')
    twin.rollout('v2')
    for one in (env, twin):
        assert current_of(one.root) == 'v2' and statuses(one.root) == {'v1': 'ok', 'v2': 'ok'}
        assert ledger(one.root)['transition'] is None and lock_holder(one.root) is None
        assert ledger(one.root)['releases']['v2']['metadata'] == {'baseline': 'before-v2', 'baseline_of': 'v1'}
        assert baselines(one.root) == ['before-v2.json']
        assert one.host.restarts() == ['v1', 'v2']


def test_later_steps_without_an_open_rollout_are_refused(env):
    env.rollout('v1')
    before = ledger_bytes(env.root)
    with pytest.raises(RedbuttonError) as caught:
        env.run(direction='rollout', release='v2', steps=['switch'])
    assert 'no rollout of v2 is in progress in %s: run the stage step first' % env.root in str(caught.value)
    assert ledger_bytes(env.root) == before and lock_holder(env.root) is None and current_of(env.root) == 'v1'


def test_keep_prunes_old_releases_never_current_or_previous(env):
    env.rollout('v1', keep=2)
    env.rollout('v2', keep=2)
    third = env.rollout('v3', keep=2)
    assert third['pruned'] == ['v1']
    fourth = env.rollout('v4', keep=2)
    assert fourth['pruned'] == ['v2']
    assert sorted(os.listdir(os.path.join(env.root, 'releases'))) == ['v3', 'v4']
    assert statuses(env.root) == {'v3': 'ok', 'v4': 'ok'}
    assert fourth['previous'] == 'v3' and current_of(env.root) == 'v4'


def test_settings_for_the_on_host_command_are_written_without_the_password(env):
    migrations = env.migrations(login_password='hunter2-secret')
    env.rollout('v1', files=SCHEMA_1, migrations=migrations, keep=3)
    path = os.path.join(state_dir(env.root), 'settings.json')
    with open(path, 'rb') as handle:
        raw = handle.read()
    assert b'hunter2-secret' not in raw
    settings = json.loads(raw.decode())
    assert settings['service'] == {'manager': 'command', 'restart_command': RESTART, 'action': 'restart'}
    assert settings['health_checks'] == [{'name': 'web', 'url': env.app.url}]
    assert settings['keep'] == 3 and settings['migrate_when'] == 'before_switch'
    assert settings['migrations']['database'] == env.db() and settings['migrations']['path'] == 'migrations'
    assert 'login_password' not in settings['migrations']
    assert settings['migrations']['password_from'] == 'REDBUTTON_DB_PASSWORD or PGPASSWORD'


# failures and the automatic rollback -----------------------------------------------------------------
def test_failing_health_check_then_auto_rollback_restores_the_old_release(env):
    env.rollout('v1')
    env.rollout('v2')
    failed = env.fails(direction='rollout', release='v3', src=env.archive('v3', 'v3 broken'))
    assert failed['failed_step'] == 'verify' and failed['current'] == 'v3' and failed['open']
    assert failed['msg'] == 'Rollout of v3 failed at verify: health checks failed: web (%s answered 500) after 1 attempt.' % env.app.url
    assert failed['statuses'] == {'v1': 'ok', 'v2': 'ok', 'v3': 'active'}
    assert lock_holder(env.root) == 'run-1'  # kept for the rescue's automatic rollback
    record = ledger(env.root)['transition']
    assert record['failed_step'] == 'verify' and record['from'] == 'v2' and record['to'] == 'v3'

    result = env.run(direction='auto_rollback')
    assert result['outcome'] == 'auto_rolled_back' and result['changed'] and result['moved']
    assert (result['from'], result['to'], result['release'], result['current']) == ('v3', 'v2', 'v2', 'v2')
    assert current_of(env.root) == 'v2' and env.app.serves() == (200, 'v2')
    assert statuses(env.root) == {'v1': 'ok', 'v2': 'ok', 'v3': 'failed'}
    assert result['compare']['name'] == 'before-v3' and result['compare']['matched'] is True
    assert step_outcomes(result) == [('switch', 'changed'), ('migrate', 'skipped'), ('restart', 'changed'), ('verify', 'ok'),
                                     ('compare', 'ok'), ('finish', 'changed')]
    assert result['msg'].startswith('Rollout of v3 failed at verify: health checks failed: web (%s answered 500) after 1 attempt. '
                                    'Rolled back automatically: v2 serves again and passed its 1 health check; v3 is marked '
                                    'failed. Host matches baseline before-v3' % env.app.url)
    assert lock_holder(env.root) is None
    data = ledger(env.root)
    assert data['transition'] is None and data['last_transition']['outcome'] == 'auto_rolled_back'
    assert env.host.restarts() == ['v1', 'v2', 'v3', 'v2']


def test_auto_rollback_with_revert_false_keeps_the_failed_release_current(env):
    env.rollout('v1')
    env.fails(direction='rollout', release='v2', src=env.archive('v2', 'v2 broken'))
    restarts = len(env.host.restarts())
    result = env.run(direction='auto_rollback', revert=False)
    assert result['outcome'] == 'failed_kept' and not result['moved']
    assert current_of(env.root) == 'v2' and statuses(env.root) == {'v1': 'ok', 'v2': 'failed'}
    assert 'Automatic rollback is off (redbutton_auto_rollback: false): v2 stays current and is marked failed' in result['msg']
    assert lock_holder(env.root) is None and ledger(env.root)['transition'] is None
    assert len(env.host.restarts()) == restarts  # nothing restored, nothing restarted


def test_a_first_release_that_fails_has_nothing_to_go_back_to(env):
    env.fails(direction='rollout', release='v1', src=env.archive('v1', 'broken'))
    result = env.run(direction='auto_rollback')
    assert result['outcome'] == 'failed_kept' and result['current'] == 'v1'
    assert 'There is no earlier release to go back to: v1 stays current and is marked failed' in result['msg']
    assert statuses(env.root) == {'v1': 'failed'} and lock_holder(env.root) is None
    assert ledger(env.root)['transition'] is None


def stage_failure_then_auto_rollback(env, owner):
    """Run 1 rolls out v1; run 2 fails to stage v2 (bad checksum) and its rescue calls auto_rollback
    with what the role knows: its owner, its run id, the release and the failed task."""
    env.rollout('v1', run_id='run-1')
    src = env.archive('v2')
    wrong = 'sha256:' + '0' * 64
    run = dict(lock_owner=owner, run_id='run-2')
    with pytest.raises(RedbuttonError) as caught:
        env.run(direction='rollout', release='v2', src=src, checksum=wrong, **run)
    assert not isinstance(caught.value, TransitionFailed)
    assert 'mismatch' in str(caught.value) and file_checksum(src) in str(caught.value)
    assert 'v2' not in ledger(env.root)['releases'] and not os.path.exists(os.path.join(env.root, 'releases', 'v2'))
    result = env.run(direction='auto_rollback', release='v2', failure_task='stage the release', failure_msg=str(caught.value), **run)
    assert result['outcome'] == 'stopped_before_switch' and not result['moved']
    assert result['msg'].startswith('Rollout stopped before the switch, at stage the release: ')
    assert result['msg'].endswith('Nothing else changed: v1 still serves.')
    assert current_of(env.root) == 'v1' and statuses(env.root) == {'v1': 'ok'}
    assert lock_holder(env.root) is None and ledger(env.root)['transition'] is None


def test_failure_at_stage_then_auto_rollback_stops_before_the_switch(env):
    stage_failure_then_auto_rollback(env, 'run-2')  # each run has its own lock owner (the roles' default)


def test_failure_at_stage_with_a_fixed_lock_owner_is_not_taken_for_a_finished_rollout(env):
    # redbutton_lock_owner is documented as a setting: the same owner across runs.
    stage_failure_then_auto_rollback(env, 'run-1')


@pytest.mark.parametrize('same_run', [dict(run_id='run-2'), dict(release='v2')])
def test_a_failure_after_the_rollout_finished_keeps_the_healthy_release(env, same_run):
    env.rollout('v1', run_id='run-1')
    env.rollout('v2', run_id='run-2')  # finished; then a hook after the finish failed
    before = snapshot(env.root)
    result = env.run(direction='auto_rollback', failure_task='notify the team', failure_msg='chat is down', **same_run)
    assert result['outcome'] == 'finished_then_failed' and not result['moved']
    assert result['msg'].startswith('Rollout of v2 switched, restarted and passed its health checks, then failed at notify the '
                                    'team: chat is down. v2 stays current')
    assert snapshot(env.root) == before and current_of(env.root) == 'v2'


def test_a_refused_rollback_leaves_the_lock_as_it_found_it(env):
    from ansible_collections.redbutton.deploy.plugins.module_utils._lock import DeployLock
    env.rollout('v1')
    DeployLock(env.root).acquire('run-1')  # the caller holds it already (an earlier task of the play)
    with pytest.raises(RedbuttonError, match='Rollback refused'):
        env.run(direction='rollback')
    assert lock_holder(env.root) == 'run-1'


def test_failure_at_migrate_before_the_switch_removes_the_new_release(env):
    env.rollout('v1', files=SCHEMA_1, migrations=env.migrations())
    broken = env.tmp / 'v2.tar.gz'
    make_tar(broken, [('file', 'VERSION', 'v2\n'), ('file', 'migrations/1_create_users.up.sql', 'CREATE TABLE users (id INTEGER);'),
                      ('file', 'migrations/1_create_users.down.sql', 'DROP TABLE users;'),
                      ('file', 'migrations/2_add_email.up.sql', 'ALTER TABLE nosuch ADD COLUMN email TEXT;'),
                      ('file', 'migrations/2_add_email.down.sql', 'SELECT 1;')], mode='w:gz')
    failed = env.fails(direction='rollout', release='v2', src=str(broken), migrations=env.migrations())
    assert failed['failed_step'] == 'migrate' and failed['current'] == 'v1' and not failed['moved']
    result = env.run(direction='auto_rollback', migrations=env.migrations())
    assert result['outcome'] == 'stopped_before_switch'
    assert 'Rollout of v2 stopped before the switch, at migrate' in result['msg']
    assert result['msg'].endswith('v1 still serves, and the unfinished v2 was removed.')
    assert statuses(env.root) == {'v1': 'ok'} and not os.path.exists(os.path.join(env.root, 'releases', 'v2'))
    assert lock_holder(env.root) is None and schema_columns(env.db()) == ['id', 'name']


def test_a_failing_restart_fails_the_rollout_and_the_auto_rollback_restarts_the_old_one(env):
    env.rollout('v1')
    env.host.script = lambda args, current: (1, '', 'port 8080 in use') if RESTART in str(args) and current == 'v2' else None
    failed = env.fails(direction='rollout', release='v2', src=env.archive('v2'))
    assert failed['failed_step'] == 'restart'
    assert failed['msg'] == ('Rollout of v2 failed at restart: restart with the service commands failed (rc 1): port 8080 in use.')
    assert [s['name'] for s in failed['steps']][-1] == 'restart' and failed['steps'][-1]['outcome'] == 'failed'
    assert failed['checks'] == []  # verify never ran
    result = env.run(direction='auto_rollback')
    assert result['outcome'] == 'auto_rolled_back' and current_of(env.root) == 'v1'
    assert statuses(env.root) == {'v1': 'ok', 'v2': 'failed'}
    assert result['msg'].startswith('Rollout of v2 failed at restart: restart with the service commands failed (rc 1): port 8080 in use. '
                                    'Rolled back automatically: v1 serves again')
    assert env.host.restarts() == ['v1', 'v2', 'v1']


def restart_fails_for(env, release, times=None):
    """The restart fails while `release` is current (the first `times` times, or always)."""
    count = [0]

    def script(args, current):
        if RESTART in str(args) and current == release:
            count[0] += 1
            if times is None or count[0] <= times:
                return 1, '', '%s will not start' % release
        return None
    env.host.script = script


def failed_auto_rollback(env):
    """v1 ok; v2's restart fails; the automatic rollback's restart of v1 fails once too."""
    env.rollout('v1')
    restart_fails_for(env, 'v2')
    env.fails(direction='rollout', release='v2', src=env.archive('v2'))
    previous = env.host.script

    def script(args, current):
        if RESTART in str(args) and current == 'v1' and not script.failed:
            script.failed = True
            return 1, '', 'v1 will not start'
        return previous(args, current)
    script.failed = False
    env.host.script = script
    return env.fails(direction='auto_rollback')


def test_an_auto_rollback_whose_restart_fails_leaves_the_restored_release_active(env):
    failed = failed_auto_rollback(env)
    assert failed['failed_step'] == 'restart' and failed['current'] == 'v1'
    assert failed['msg'].startswith('Rollout of v2 failed at restart: restart with the service commands failed (rc 1): v2 will '
                                    'not start. It was rolled back automatically and marked failed, but ')
    assert 'v1 will not start' in failed['msg'] and 'docs/runbook.md' in failed['msg']
    assert statuses(env.root) == {'v1': 'active', 'v2': 'failed'}  # not ok: it never proved itself
    assert lock_holder(env.root) is None


def test_an_auto_rollback_whose_restart_fails_does_not_blame_the_health_checks(env):
    failed = failed_auto_rollback(env)
    assert 'health checks' not in failed['msg'].split('It was rolled back automatically')[1]


def test_after_a_failed_auto_rollback_the_next_rollout_goes_back_to_the_restored_release(env):
    failed_auto_rollback(env)
    env.host.script = lambda args, current: None
    failed = env.fails(direction='rollout', release='v3', src=env.archive('v3', 'v3 broken'))
    assert failed['from'] == 'v1'  # what serves (active), not v2, the failed release
    result = env.run(direction='auto_rollback')
    assert result['outcome'] == 'auto_rolled_back' and current_of(env.root) == 'v1'
    assert statuses(env.root) == {'v1': 'ok', 'v2': 'failed', 'v3': 'failed'}


@pytest.mark.parametrize('first, then', [(['stage', 'finish'], None), (['stage', 'switch'], ['finish'])])
def test_a_call_that_skips_the_switch_or_the_checks_never_marks_the_release_ok(env, first, then):
    env.rollout('v1')
    try:
        env.rollout('v2', 'v2 broken', steps=first)
        if then:
            env.run(direction='rollout', release='v2', steps=then)
    except RedbuttonError:
        pass  # a refusal is a right answer too
    assert statuses(env.root).get('v2') != 'ok'


def test_steps_that_are_not_consecutive_are_refused_before_any_change(env):
    env.rollout('v1')
    before = snapshot(env.root)
    with pytest.raises(RedbuttonError) as caught:
        env.rollout('v2', steps=['stage', 'finish'])
    assert str(caught.value).startswith('steps stage, finish are not consecutive steps of a rollout')
    assert snapshot(env.root) == before


@pytest.mark.parametrize('direction, steps', [
    ('rollout', ['stage', 'switch', 'restart', 'verify', 'finish']),
    ('rollback', ['switch', 'restart', 'verify', 'compare', 'finish']),
])
def test_without_migrations_the_steps_may_leave_migrate_out(env, direction, steps):
    # What the roles pass when redbutton_migrations is empty: every step but migrate.
    env.rollout('v1')
    if direction == 'rollout':
        result = env.rollout('v2', steps=steps)
    else:
        env.rollout('v2')
        result = env.run(direction='rollback', steps=steps)
    assert result['outcome'] == ('rolled_out' if direction == 'rollout' else 'rolled_back')


def test_a_call_that_would_skip_the_restart_and_checks_is_refused(env):
    env.rollout('v1')
    env.rollout('v2', steps=['stage', 'switch'])
    before = ledger_bytes(env.root)
    with pytest.raises(RedbuttonError) as caught:
        env.run(direction='rollout', release='v2', steps=['finish'])
    assert 'the rollout to v2 has not done restart, verify yet' in str(caught.value)
    assert ledger_bytes(env.root) == before and statuses(env.root)['v2'] == 'active'
    assert lock_holder(env.root) == 'run-1'  # still this run's: it goes on with the right steps
    result = env.run(direction='rollout', release='v2', steps=['restart', 'verify', 'finish'])
    assert result['outcome'] == 'rolled_out' and statuses(env.root)['v2'] == 'ok'


def test_without_a_service_or_checks_a_call_may_leave_those_steps_out(env):
    env.rollout('v1', service={'manager': 'none'}, health_checks=[])
    env.rollout('v2', steps=['stage', 'switch'], service={'manager': 'none'}, health_checks=[])
    result = env.run(direction='rollout', release='v2', steps=['finish'], service={'manager': 'none'}, health_checks=[])
    assert result['outcome'] == 'rolled_out' and statuses(env.root) == {'v1': 'ok', 'v2': 'ok'}
    assert env.host.restarts() == []


# rollback -----------------------------------------------------------------------------------------
def test_rollback_to_previous_compares_with_the_baseline_and_marks_the_undone_release(env):
    env.rollout('v1')
    env.rollout('v2')
    result = env.run(direction='rollback')
    assert result['outcome'] == 'rolled_back' and result['changed'] and result['moved']
    assert (result['from'], result['to'], result['release']) == ('v2', 'v1', 'v1')
    assert current_of(env.root) == 'v1' and env.app.serves() == (200, 'v1')
    assert statuses(env.root) == {'v1': 'ok', 'v2': 'rolled_back'}
    assert result['compare']['name'] == 'before-v2' and result['compare']['matched'] is True
    assert result['msg'].startswith('v1 serves again and passed 1 health check; host matches baseline before-v2 (')
    assert result['msg'].endswith('; v2 is marked rolled_back')
    assert ledger(env.root)['releases']['v1']['metadata']['baseline_checked'] == 'before-v2'
    assert step_outcomes(result) == [('switch', 'changed'), ('migrate', 'skipped'), ('restart', 'changed'), ('verify', 'ok'),
                                     ('compare', 'ok'), ('finish', 'changed')]
    assert lock_holder(env.root) is None and ledger(env.root)['transition'] is None
    assert env.host.restarts() == ['v1', 'v2', 'v1']


def test_rollback_once_right_after_a_rollback_stays_put(env):
    env.rollout('v1')
    env.rollout('v2')
    env.rollout('v3')
    env.run(direction='rollback')
    before = ledger_bytes(env.root)
    restarts = len(env.host.restarts())
    result = env.run(direction='rollback', once=True)
    assert result['outcome'] == 'already_back' and not result['changed'] and not result['moved']
    assert result['current'] == 'v2' and current_of(env.root) == 'v2'
    assert 'The last switch was already a rollback to v2: nothing to roll back' in result['msg']
    assert [s['name'] for s in result['steps']] == ['verify']
    assert ledger_bytes(env.root) == before and len(env.host.restarts()) == restarts
    assert lock_holder(env.root) is None


def test_rollback_once_after_a_rollout_rolls_back(env):
    env.rollout('v1')
    env.rollout('v2')
    result = env.run(direction='rollback', once=True)
    assert result['outcome'] == 'rolled_back' and current_of(env.root) == 'v1'
    assert statuses(env.root) == {'v1': 'ok', 'v2': 'rolled_back'}


def test_rollback_whose_checks_fail_says_where_the_host_stands(env):
    env.rollout('v1')
    env.rollout('v2')
    env.app.root = os.path.join(env.root, 'elsewhere')  # the application stops answering
    failed = env.fails(direction='rollback')
    assert failed['failed_step'] == 'verify' and failed['current'] == 'v1'
    assert failed['msg'] == ('Rollback failed at "verify": health checks failed: web (%s answered 503) after 1 attempt. current was '
                             'switched from v2 to v1 (v2 is marked rolled_back) but it did not pass its checks: choose another target '
                             'with -e redbutton_rollback_to=ID (see the status playbook) or fix forward.' % env.app.url)
    assert statuses(env.root) == {'v1': 'active', 'v2': 'rolled_back'} and lock_holder(env.root) is None


def test_rollback_to_an_explicit_target(env):
    for version in ('v1', 'v2', 'v3'):
        env.rollout(version)
    result = env.run(direction='rollback', release='v1')
    assert (result['from'], result['to'], result['current']) == ('v3', 'v1', 'v1')
    assert statuses(env.root) == {'v1': 'ok', 'v2': 'ok', 'v3': 'rolled_back'}
    # v3's baseline describes v2, not v1: the rollback says so instead of comparing the wrong state.
    assert result['compare']['matched'] is None
    assert result['compare']['msg'] == 'Baseline before-v3 describes v2, not the rollback target v1: not compared.'
    assert current_of(env.root) == 'v1' and env.app.serves() == (200, 'v1')


def test_rollback_without_a_target_changes_nothing(env):
    env.rollout('v1')
    before = snapshot(env.root)
    with pytest.raises(RedbuttonError) as caught:
        env.run(direction='rollback')
    assert str(caught.value).endswith('Rollback refused: current was not changed.')
    assert 'nothing to roll back to in %s: v1 (current) is the only' % env.root in str(caught.value)
    assert snapshot(env.root) == before  # ledger bytes identical, no lock left behind
    assert env.host.restarts() == ['v1']


def test_rollback_to_an_unknown_target_is_refused(env):
    env.rollout('v1')
    env.rollout('v2')
    before = snapshot(env.root)
    with pytest.raises(RedbuttonError) as caught:
        env.run(direction='rollback', release='v9')
    assert 'v9' in str(caught.value) and str(caught.value).endswith('Rollback refused: current was not changed.')
    assert snapshot(env.root) == before


def test_rollback_to_a_failed_target_is_refused_before_any_change(env):
    env.rollout('v1')
    env.fails(direction='rollout', release='v2', src=env.archive('v2', 'broken'))
    env.run(direction='auto_rollback')
    env.rollout('v3')
    before = snapshot(env.root)
    with pytest.raises(RedbuttonError) as caught:
        env.run(direction='rollback', release='v2')
    assert 'marked failed' in str(caught.value) and str(caught.value).endswith('Rollback refused: current was not changed.')
    assert snapshot(env.root) == before


def test_rollback_whose_baseline_differs_fails_naming_the_file_and_leaves_the_target_active(env):
    env.rollout('v1')
    env.rollout('v2')
    with open(os.path.join(env.root, 'releases', 'v1', 'intruder.txt'), 'w') as handle:
        handle.write('not in the release\n')
    failed = env.fails(direction='rollback')
    assert failed['failed_step'] == 'compare' and failed['current'] == 'v1'
    assert failed['msg'].startswith('Rollback: the code is rolled back (v1 is current and passed its health checks) but the host '
                                    'differs from the state recorded before v2 was rolled out. v1 stays current, marked active')
    assert 'intruder.txt' in failed['msg']
    assert failed['compare']['matched'] is False
    assert statuses(env.root) == {'v1': 'active', 'v2': 'rolled_back'}
    assert current_of(env.root) == 'v1' and lock_holder(env.root) is None


def test_rollback_notices_shared_data_lost_since_the_rollout(env):
    env.rollout('v1', shared_paths=['uploads'])
    uploads = os.path.join(env.root, 'shared', 'uploads')
    with open(os.path.join(uploads, 'invoice-1.pdf'), 'w') as handle:
        handle.write('customer data\n')
    env.rollout('v2', shared_paths=['uploads'])
    assert os.path.realpath(os.path.join(env.root, 'current', 'uploads')) == os.path.realpath(uploads)
    os.unlink(os.path.join(uploads, 'invoice-1.pdf'))  # v2 lost a customer's file
    failed = env.fails(direction='rollback', shared_paths=['uploads'])
    assert failed['failed_step'] == 'compare' and 'invoice-1.pdf' in failed['msg']
    assert current_of(env.root) == 'v1' and statuses(env.root) == {'v1': 'active', 'v2': 'rolled_back'}


def test_shared_data_added_since_the_rollout_is_not_a_difference(env):
    env.rollout('v1', shared_paths=['uploads'])
    env.rollout('v2', shared_paths=['uploads'])
    with open(os.path.join(env.root, 'shared', 'uploads', 'invoice-2.pdf'), 'w') as handle:
        handle.write('new customer data\n')
    result = env.run(direction='rollback', shared_paths=['uploads'])
    assert result['outcome'] == 'rolled_back' and result['compare']['matched'] is True


def test_without_baselines_the_rollback_warns_that_it_did_not_compare(env):
    env.rollout('v1', baseline=False)
    env.rollout('v2', baseline=False)
    assert baselines(env.root) == []
    assert 'baseline' not in (ledger(env.root)['releases']['v2'].get('metadata') or {})
    result = env.run(direction='rollback')
    assert result['outcome'] == 'rolled_back' and result['compare']['matched'] is None
    assert [w for w in env.host.warnings if w.startswith('no baseline was recorded before v2 was rolled out')]


def test_rollback_whose_baseline_file_is_gone_warns_and_finishes(env):
    env.rollout('v1')
    env.rollout('v2')
    os.unlink(baseline_path(env.root, 'before-v2'))
    result = env.run(direction='rollback')
    assert result['outcome'] == 'rolled_back' and statuses(env.root) == {'v1': 'ok', 'v2': 'rolled_back'}
    assert result['compare']['matched'] is None
    assert [w for w in env.host.warnings if 'baseline before-v2 is named in the ledger but its file is gone' in w]


# migrations (SQLite) ------------------------------------------------------------------------------
def test_rollout_migrates_up_and_records_the_schema_version_on_both_releases(env):
    first = env.rollout('v1', files=SCHEMA_1, migrations=env.migrations())
    assert first['migrate']['version_after'] == 1 and schema_columns(env.db()) == ['id', 'name']
    second = env.rollout('v2', files=SCHEMA_2, migrations=env.migrations())
    assert second['migrate']['version_before'] == 1 and second['migrate']['version_after'] == 2
    assert schema_columns(env.db()) == ['id', 'name', 'email']
    releases = ledger(env.root)['releases']
    assert releases['v1']['metadata']['schema_version'] == 1 and releases['v2']['metadata']['schema_version'] == 2
    assert ('migrate', 'changed') in step_outcomes(second)


def test_migrate_result_names_the_migrations_it_applied(env):
    env.rollout('v1', files=SCHEMA_1, migrations=env.migrations())
    result = env.rollout('v2', files=SCHEMA_2, migrations=env.migrations())
    assert result['migrate']['applied'] == ['2_add_email']
    back = env.run(direction='rollback', migrations=env.migrations())
    assert back['migrate']['applied'] == ['2_add_email']


def test_migrate_after_the_switch_and_its_automatic_rollback(env):
    settings = dict(migrations=env.migrations(), migrate_when='after_switch')
    env.rollout('v1', files=SCHEMA_1, **settings)
    failed = env.fails(direction='rollout', release='v2', src=env.archive('v2', 'v2 broken', SCHEMA_2), **settings)
    assert [s['name'] for s in failed['steps']] == ['stage', 'switch', 'migrate', 'restart', 'verify']
    assert schema_columns(env.db()) == ['id', 'name', 'email']
    result = env.run(direction='auto_rollback', **settings)
    assert result['outcome'] == 'auto_rolled_back' and current_of(env.root) == 'v1'
    assert schema_columns(env.db()) == ['id', 'name'] and statuses(env.root) == {'v1': 'ok', 'v2': 'failed'}


def test_rollout_after_a_release_without_migrations_records_the_version_it_ran_with(env):
    env.rollout('v1')
    env.rollout('v2', files=SCHEMA_2, migrations=env.migrations())
    releases = ledger(env.root)['releases']
    assert releases['v2']['metadata']['schema_version'] == 2
    assert releases['v1']['metadata']['schema_version'] == 0


def test_auto_rollback_migrates_the_database_back_down(env):
    env.rollout('v1', files=SCHEMA_1, migrations=env.migrations())
    failed = env.fails(direction='rollout', release='v2', src=env.archive('v2', 'v2 broken', SCHEMA_2), migrations=env.migrations())
    assert failed['failed_step'] == 'verify' and schema_columns(env.db()) == ['id', 'name', 'email']
    result = env.run(direction='auto_rollback', migrations=env.migrations())
    assert result['outcome'] == 'auto_rolled_back' and current_of(env.root) == 'v1'
    assert result['migrate']['version_before'] == 2 and result['migrate']['version_after'] == 1
    assert schema_columns(env.db()) == ['id', 'name']
    assert statuses(env.root) == {'v1': 'ok', 'v2': 'failed'}


def test_auto_rollback_before_the_switch_undoes_the_migrations_it_applied(env):
    env.rollout('v1', files=SCHEMA_1, migrations=env.migrations())
    env.rollout('v2', files=SCHEMA_2, steps=['stage', 'migrate'], migrations=env.migrations())
    assert schema_columns(env.db()) == ['id', 'name', 'email'] and current_of(env.root) == 'v1'
    result = env.run(direction='auto_rollback', migrations=env.migrations(), failure_task='a hook', failure_msg='hook failed')
    assert result['outcome'] == 'stopped_before_switch'
    assert schema_columns(env.db()) == ['id', 'name']
    assert statuses(env.root) == {'v1': 'ok'} and lock_holder(env.root) is None


def test_rollback_migrates_down_to_the_target_version(env):
    env.rollout('v1', files=SCHEMA_1, migrations=env.migrations())
    env.rollout('v2', files=SCHEMA_2, migrations=env.migrations())
    result = env.run(direction='rollback', migrations=env.migrations())
    assert result['outcome'] == 'rolled_back' and current_of(env.root) == 'v1'
    assert result['migrate']['version_before'] == 2 and result['migrate']['version_after'] == 1
    assert schema_columns(env.db()) == ['id', 'name']
    assert ('migrate', 'changed') in step_outcomes(result)


def test_rollback_to_a_target_without_schema_version_is_refused_before_any_change(env):
    env.rollout('v1')
    env.rollout('v2')
    before = snapshot(env.root)
    with pytest.raises(RedbuttonError) as caught:
        env.run(direction='rollback', migrations=env.migrations())
    text = str(caught.value)
    assert 'the ledger has no schema version for the target release v1' in text
    assert text.endswith('Rollback refused: current was not changed.')
    assert snapshot(env.root) == before and current_of(env.root) == 'v2'


# interrupted runs ---------------------------------------------------------------------------------
def test_a_rollout_stopped_after_the_switch_is_restarted_verified_and_finished_by_the_next_run(env):
    env.rollout('v1')
    env.rollout('v2', steps=['stage'])
    env.run(direction='rollout', release='v2', steps=['switch'])
    assert current_of(env.root) == 'v2' and statuses(env.root)['v2'] == 'active'
    os.unlink(lock_path(env.root))  # the run died; the next one takes its (stale) lock over
    result = env.rollout('v2', lock_owner='run-2')
    assert result['outcome'] == 'rolled_out' and (result['from'], result['to']) == ('v1', 'v2')
    assert ('restart', 'changed') in step_outcomes(result) and ('verify', 'ok') in step_outcomes(result)
    assert env.host.restarts() == ['v1', 'v2']  # the dead run never restarted v2: this one did
    assert statuses(env.root) == {'v1': 'ok', 'v2': 'ok'}
    assert ledger(env.root)['transition'] is None and lock_holder(env.root) is None
    assert ledger(env.root)['last_transition']['owner'] == 'run-2'


CHILD = """
import json, sys
from ansible_collections.redbutton.deploy.plugins.module_utils._hosts import LocalHost
from ansible_collections.redbutton.deploy.plugins.module_utils._transition import Transition
Transition(json.loads(sys.argv[1]), LocalHost()).run()
"""


def test_a_rollout_killed_after_the_switch_is_finished_by_the_next_run_once_the_lock_expires(env):
    env.rollout('v1')
    log = str(env.tmp / 'child-restarts.log')
    params = env.params(direction='rollout', release='v2', src=env.archive('v2'), lock_ttl=1,
                        service={'manager': 'command', 'restart_command': 'basename "$(pwd -P)" >> %s' % log})
    environ = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), REDBUTTON_KILL_AT='rollout:after:switch')
    child = subprocess.run([sys.executable, '-c', CHILD, json.dumps(params)], env=environ, start_new_session=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120, check=False)
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert current_of(env.root) == 'v2' and statuses(env.root) == {'v1': 'ok', 'v2': 'active'}
    record = ledger(env.root)['transition']
    assert record['done'] == ['stage', 'migrate', 'switch'] and record['from'] == 'v1' and lock_holder(env.root) == 'run-1'
    assert not os.path.exists(log)  # killed before its restart
    time.sleep(2.1)  # the dead run's lock expires (TTL 1 s, second resolution)
    result = env.rollout('v2', lock_owner='run-2')
    assert result['outcome'] == 'rolled_out' and (result['from'], result['to']) == ('v1', 'v2')
    assert env.host.restarts() == ['v1', 'v2'] and result['checks'][0]['passed']
    assert [w for w in env.host.warnings if 'taking over the deploy lock' in w]
    assert statuses(env.root) == {'v1': 'ok', 'v2': 'ok'} and lock_holder(env.root) is None


def test_an_interrupted_rollout_of_a_broken_release_is_not_marked_ok(env):
    env.rollout('v1')
    env.rollout('v2', 'v2 broken', steps=['stage'])
    env.run(direction='rollout', release='v2', steps=['switch'])
    failed = env.fails(direction='rollout', release='v2', src=env.archive('v2', 'v2 broken'))
    assert failed['failed_step'] == 'verify' and statuses(env.root)['v2'] == 'active'


def test_rollback_after_an_interrupted_rollout(env):
    env.rollout('v1')
    env.rollout('v2', steps=['stage'])
    env.run(direction='rollout', release='v2', steps=['switch'])
    result = env.run(direction='rollback')
    assert result['outcome'] == 'rolled_back' and (result['from'], result['to']) == ('v2', 'v1')
    assert current_of(env.root) == 'v1' and statuses(env.root) == {'v1': 'ok', 'v2': 'rolled_back'}
    assert result['compare']['matched'] is True
    data = ledger(env.root)
    assert data['transition'] is None and lock_holder(env.root) is None
    assert [e for e in data['events'] if e['event'] == 'interrupted' and e['release'] == 'v2']


def test_a_rollback_stopped_after_the_switch_is_finished_by_the_next_call(env):
    env.rollout('v1')
    env.rollout('v2')
    switched = env.run(direction='rollback', steps=['switch'])
    assert switched['open'] and current_of(env.root) == 'v1' and statuses(env.root)['v1'] != 'ok'
    restarts = len(env.host.restarts())
    result = env.run(direction='rollback', steps=['migrate', 'restart', 'verify', 'compare', 'finish'])
    assert result['outcome'] == 'rolled_back' and statuses(env.root) == {'v1': 'ok', 'v2': 'rolled_back'}
    assert env.host.restarts()[restarts:] == ['v1']


def killed_rollback_rerun(env, **target):
    env.rollout('v1')
    env.rollout('v2')
    env.run(direction='rollback', steps=['switch'])  # killed right after the switch
    if os.path.exists(lock_path(env.root)):
        os.unlink(lock_path(env.root))  # the dead run's lock, taken over
    restarts = len(env.host.restarts())
    result = env.run(direction='rollback', lock_owner='run-2', **target)
    assert current_of(env.root) == 'v1' and statuses(env.root) == {'v1': 'ok', 'v2': 'rolled_back'}
    assert env.host.restarts()[restarts:] == ['v1']
    assert ('restart', 'changed') in step_outcomes(result)
    assert ledger(env.root)['transition'] is None and lock_holder(env.root) is None


def test_a_killed_rollback_rerun_to_its_target_restarts_the_release_that_is_not_ok(env):
    killed_rollback_rerun(env, release='v1')


def test_a_killed_rollback_rerun_as_it_was_started_finishes_it(env):
    killed_rollback_rerun(env)  # the rollback playbook run again: release "previous"


# check mode ---------------------------------------------------------------------------------------
def test_rollout_in_check_mode_predicts_and_changes_nothing(env):
    env.rollout('v1')
    before = snapshot(env.root)
    result = env.rollout('v2', check_mode=True)
    assert result['changed'] and result['current'] == 'v2'
    assert result['statuses'] == {'v1': 'ok', 'v2': 'ok'}
    assert snapshot(env.root) == before
    assert env.host.restarts() == ['v1']


def test_first_rollout_in_check_mode_with_a_command_check_does_not_fail(env):
    result = env.rollout('v1', check_mode=True, health_checks=[{'name': 'smoke', 'command': 'bin/smoke'}])
    assert result['changed'] and result['statuses'] == {'v1': 'ok'}
    assert not os.path.exists(env.root)
    assert env.host.calls == []


def test_rollback_in_check_mode_predicts_the_target_ok(env):
    env.rollout('v1')
    env.rollout('v2')
    before = snapshot(env.root)
    result = env.run(direction='rollback', check_mode=True)
    assert result['changed'] and result['current'] == 'v1'
    assert result['statuses'] == {'v1': 'ok', 'v2': 'rolled_back'}
    assert snapshot(env.root) == before


def test_diff_mode_reports_before_and_after(env):
    env.rollout('v1')
    result = env.rollout('v2', diff=True, check_mode=True)
    assert result['diff']['before'] == {'current': 'v1', 'releases': {'v1': 'ok'}}
    assert result['diff']['after'] == {'current': 'v2', 'releases': {'v1': 'ok', 'v2': 'ok'}}


# the verify direction -------------------------------------------------------------------------------
def test_verify_passes_and_compares_with_the_baseline_of_the_current_release(env):
    env.rollout('v1')
    env.rollout('v2')
    env.run(direction='rollback')
    before = snapshot(env.root)
    result = env.run(direction='verify')
    assert result['outcome'] == 'verified' and not result['changed']
    assert result['compare']['name'] == 'before-v2' and result['compare']['matched'] is True
    assert result['checks'][0]['passed']
    assert snapshot(env.root) == before


def test_verify_without_a_baseline_of_the_current_release_says_so(env):
    env.rollout('v1')
    env.rollout('v2')
    result = env.run(direction='verify')
    assert result['compare']['matched'] is None and 'No baseline describes v2' in result['compare']['msg']


def test_verify_fails_on_a_failing_check(env):
    env.rollout('v1')
    bad = [{'name': 'missing', 'url': env.app.url + 'nope', 'status': 204}]
    before = snapshot(env.root)
    failed = env.fails(direction='verify', health_checks=bad)
    assert failed['failed_step'] == 'verify'
    assert failed['msg'].startswith('v1: health checks failed: missing (%snope answered 200)' % env.app.url)
    assert snapshot(env.root) == before


def test_verify_fails_on_a_baseline_that_differs(env):
    env.rollout('v1')
    env.rollout('v2')
    env.run(direction='rollback')
    with open(os.path.join(env.root, 'releases', 'v1', 'VERSION'), 'a') as handle:
        handle.write('edited on the host\n')
    failed = env.fails(direction='verify')
    assert failed['failed_step'] == 'compare' and 'differs from baseline before-v2' in failed['msg']
    assert 'VERSION' in failed['msg']


def test_verify_fails_when_the_ledger_says_current_failed(env):
    env.rollout('v1')
    env.fails(direction='rollout', release='v2', src=env.archive('v2', 'broken'))
    env.run(direction='auto_rollback', revert=False)
    failed = env.fails(direction='verify', health_checks=[])
    assert failed['failed_step'] == 'verify'
    assert 'says current is v2 (status failed)' in failed['msg']


def test_verify_of_an_expected_release_that_is_not_current(env):
    env.rollout('v1')
    failed = env.fails(direction='verify', release='v2')
    assert 'says current is v1 (status ok), expected v2' in failed['msg']


# bad input --------------------------------------------------------------------------------------------
@pytest.mark.parametrize('params, named', [
    ({'service': {'manager': 'command', 'start_command': 'bin/start'}}, 'start_command and stop_command'),
    ({'health_checks': [{'name': 'both', 'url': 'http://127.0.0.1/', 'port': 80}]}, 'redbutton_health_checks items'),
    ({'migrations': {'database': '/tmp/x.db', 'path': '/etc/migrations'}}, 'redbutton_migrations.path /etc/migrations must be relative'),
    ({'migrations': {'database': '/tmp/x.db', 'path': '../up'}}, 'redbutton_migrations.path ../up must be relative'),
    ({'migrations': {'path': 'migrations'}}, 'redbutton_migrations needs database'),
    ({'steps': ['stage', 'deploy']}, 'steps deploy are not valid'),
    ({'health_retries': -1}, 'health_retries -1 (redbutton_health_retries) is not valid: give a number from 0 to 1000'),
    ({'keep': -1}, 'keep -1 (redbutton_keep_releases) is not valid'),
    ({'lock_ttl': 99999999999999}, 'lock_ttl 99999999999999 (redbutton_lock_ttl) is not valid'),
    ({'health_timeout': 99999999999999}, 'health_timeout 99999999999999 (redbutton_health_timeout) is not valid'),
    # Values that would fail only after the switch (a regex that does not compile, a status that is not a number, a
    # command with an open quote): refused before any change, naming the check and the key.
    ({'health_checks': [{'name': 'home', 'url': 'http://127.0.0.1/', 'body_regex': '^ok('}]}, "item 'home': body_regex '^ok('"),
    ({'health_checks': [{'name': 'cli', 'command': 'true', 'stdout_regex': 'v[12'}]}, "item 'cli': stdout_regex 'v[12'"),
    ({'health_checks': [{'name': 'home', 'url': 'http://127.0.0.1/', 'status': 'abc'}]}, "item 'home': status 'abc' is not an HTTP"),
    ({'health_checks': [{'name': 'home', 'url': 'http://127.0.0.1/', 'status': [200, 99]}]}, "item 'home': status [200, 99]"),
    ({'health_checks': [{'name': 'db', 'port': 70000}]}, "item 'db': port 70000 is not a TCP port"),
    ({'health_checks': [{'name': 'cli', 'command': "echo 'oops"}]}, "item 'cli': command \"echo 'oops\" cannot be split"),
])
@pytest.mark.parametrize('direction', ['rollout', 'rollback'])
def test_bad_input_is_refused_naming_it_and_nothing_changes(env, params, named, direction):
    env.rollout('v1')
    env.rollout('v2')
    before = snapshot(env.root)
    calls = len(env.host.calls)
    extra = {'release': 'v3', 'src': env.archive('v3')} if direction == 'rollout' else {}
    extra.update(params)
    with pytest.raises(RedbuttonError) as caught:
        env.run(direction=direction, **extra)
    assert named in str(caught.value)
    assert not isinstance(caught.value, TransitionFailed)
    assert snapshot(env.root) == before and len(env.host.calls) == calls


def test_stage_without_src_or_release_is_refused(env):
    with pytest.raises(RedbuttonError, match='the stage step needs src'):
        env.run(direction='rollout')
    assert not os.path.exists(env.root)


def test_directions_and_their_steps():
    assert DIRECTIONS == ('rollout', 'rollback', 'auto_rollback', 'verify')
    assert step_order('rollout') == ('stage', 'migrate', 'switch', 'restart', 'verify', 'finish')
    assert step_order('rollout', 'after_switch') == ('stage', 'switch', 'migrate', 'restart', 'verify', 'finish')
    assert step_order('rollback') == step_order('auto_rollback') == ('switch', 'migrate', 'restart', 'verify', 'compare', 'finish')


def test_a_fault_nothing_foresaw_in_a_step_is_a_failed_step_that_the_automatic_rollback_undoes(env, monkeypatch):
    """An exception that is not the engine's own (here a ValueError in the checks, after the switch) still fails the
    step through the engine's bookkeeping: the transition records it and the automatic rollback puts v1 back."""
    env.rollout('v1')
    from ansible_collections.redbutton.deploy.plugins.module_utils import _checks

    def broken(self):
        raise ValueError('a fault in the checks')
    monkeypatch.setattr(_checks.HealthChecks, 'run', broken)
    with pytest.raises(TransitionFailed) as caught:
        env.rollout('v2')
    assert 'failed at verify: the verify step failed: ValueError: a fault in the checks' in str(caught.value)
    assert ledger(env.root)['transition']['failed_step'] == 'verify'
    monkeypatch.undo()
    result = env.run(direction='auto_rollback')
    assert result['outcome'] == 'auto_rolled_back' and env.app.serves() == (200, 'v1')
    assert statuses(env.root) == {'v1': 'ok', 'v2': 'failed'}


@pytest.mark.parametrize('direction', ['rollout', 'rollback'])
def test_check_mode_after_a_killed_run_predicts_the_takeover_and_changes_nothing(env, direction):
    """A run killed after its switch left its lock (expired) and its transition: --check of the next run predicts that it
    takes the lock over and finishes or undoes, writing nothing; before, it failed on the lock it had not taken."""
    env.rollout('v1')
    params = env.params(direction='rollout', release='v2', src=env.archive('v2'), lock_ttl=1)
    environ = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), REDBUTTON_KILL_AT='rollout:after:switch')
    child = subprocess.run([sys.executable, '-c', CHILD, json.dumps(params)], env=environ, start_new_session=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120, check=False)
    assert child.returncode == -signal.SIGKILL, child.stderr
    time.sleep(2.1)  # the dead run's lock expires (TTL 1 s, second resolution)
    before = snapshot(env.root)
    extra = {'release': 'v2', 'src': env.archive('v2')} if direction == 'rollout' else {}
    predicted = env.run(check_mode=True, direction=direction, lock_owner='run-2', **extra)
    assert predicted['changed'] and snapshot(env.root) == before and lock_holder(env.root) == 'run-1'
    assert [w for w in env.host.warnings if 'taking over the deploy lock' in w]
    done = env.run(direction=direction, lock_owner='run-2', **extra)
    assert done['changed'] and lock_holder(env.root) is None
    assert current_of(env.root) == ('v2' if direction == 'rollout' else 'v1')


@pytest.mark.parametrize('staged', ['v1', None])
def test_check_mode_of_a_rollout_with_migrations_whose_release_is_not_staged(env, staged):
    """--check of a rollout with migrations, the new release not staged yet (on a fresh root too): it predicts the rollout
    and says the migrations are not planned, instead of failing at migrate on a folder that is not there."""
    if staged:
        env.rollout(staged, files=SCHEMA_1, migrations=env.migrations())
    before = snapshot(env.root) if staged else None
    result = env.rollout('v2', files=SCHEMA_2, migrations=env.migrations(), check_mode=True)
    assert result['changed'] and result['current'] == 'v2'
    assert [(s['outcome'], s['msg']) for s in result['steps'] if s['name'] == 'migrate'] == [
        ('skipped', 'would run the pending migrations of v2 (not staged yet, so not planned in check mode; the runbook '
                    'playbook plans them)')]
    assert (snapshot(env.root) == before) if staged else not os.path.exists(env.root)
