# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The migrate logic against real databases: a SQLite file and a real PostgreSQL server.

PostgreSQL tests read REDBUTTON_PG_DSN (eval "$(scripts/postgres.sh)"); each creates and
drops its own database. They skip only when the variable is unset and
REDBUTTON_REQUIRE_PG is not 1; with REDBUTTON_REQUIRE_PG=1 a missing server fails them.
"""

import contextlib
import fcntl
import os
import shutil
import sqlite3
import subprocess
import threading
import time
import uuid

import pytest

from ansible_collections.redbutton.deploy.plugins.module_utils._common import RedbuttonError
from ansible_collections.redbutton.deploy.plugins.module_utils._migrate import Migrator, diff_of, new_backend
from ansible_collections.redbutton.deploy.plugins.module_utils._migrate_postgresql import advisory_lock_key

try:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo
except ImportError:  # pragma: no cover
    psycopg = None

FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures', 'migrations')
PORTABLE = os.path.join(FIXTURES, 'portable')
HISTORY = 'redbutton_schema_history'


def run_command(args, environ_update=None):
    env = dict(os.environ)
    env.update(environ_update or {})
    proc = subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=False)
    return proc.returncode, proc.stdout, proc.stderr


class Db(object):
    """One test database and what the tests ask of it."""

    def __init__(self, engine, database):
        self.engine = engine
        self.database = database

    def backend(self, history_table=HISTORY):
        return new_backend(self.engine, self.database, history_table, run_command=run_command)

    def migrate(self, path, **options):
        return Migrator(self.backend(options.pop('history_table', HISTORY)), str(path), **options).run()

    def refuse(self, path, match, **options):
        with pytest.raises(RedbuttonError, match=match) as info:
            self.migrate(path, **options)
        return info.value

    @contextlib.contextmanager
    def connect(self):
        if self.engine == 'sqlite':
            conn = sqlite3.connect(self.database, isolation_level=None)
        else:
            conn = psycopg.connect(self.database, autocommit=True)
        try:
            yield conn
        finally:
            conn.close()

    def rows(self, sql):
        with self.connect() as conn:
            return [tuple(r) for r in conn.execute(sql).fetchall()]

    def tables(self):
        if self.engine == 'sqlite':
            sql = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        else:
            sql = "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        return sorted(r[0] for r in self.rows(sql))

    def columns(self, table):
        if self.engine == 'sqlite':
            return [r[1] for r in self.rows('PRAGMA table_info(%s)' % table)]
        return [r[0] for r in self.rows("SELECT column_name FROM information_schema.columns WHERE table_name = '%s' "
                                        "ORDER BY ordinal_position" % table)]

    def indexes(self):
        if self.engine == 'sqlite':
            return sorted(r[0] for r in self.rows("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"))
        return sorted(r[0] for r in self.rows("SELECT indexname FROM pg_indexes WHERE schemaname = 'public' "
                                              "AND indexname NOT LIKE '%_pkey' AND indexname NOT LIKE '%_key'"))

    def history(self):
        if HISTORY not in self.tables():
            return []
        return [r[0] for r in self.rows('SELECT version FROM %s ORDER BY version' % HISTORY)]


@pytest.fixture
def pg_dsn():
    dsn = os.environ.get('REDBUTTON_PG_DSN')
    if not dsn:
        if os.environ.get('REDBUTTON_REQUIRE_PG') == '1':
            pytest.fail('REDBUTTON_REQUIRE_PG=1 but REDBUTTON_PG_DSN is unset: run eval "$(scripts/postgres.sh)"')
        pytest.skip('REDBUTTON_PG_DSN is unset: eval "$(scripts/postgres.sh)" to run the PostgreSQL tests')
    if psycopg is None:
        pytest.fail('psycopg is not installed but REDBUTTON_PG_DSN is set')
    name = 'rb_migrate_test_%s' % uuid.uuid4().hex[:12]
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute('CREATE DATABASE %s' % name)
    params = conninfo_to_dict(dsn)
    params['dbname'] = name
    yield make_conninfo(**params)
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute('DROP DATABASE IF EXISTS %s WITH (FORCE)' % name)


@pytest.fixture(params=['sqlite', 'postgresql'])
def db(request, tmp_path):
    if request.param == 'sqlite':
        return Db('sqlite', str(tmp_path / 'app.db'))
    return Db('postgresql', request.getfixturevalue('pg_dsn'))


@pytest.fixture
def pg(pg_dsn):
    return Db('postgresql', pg_dsn)


@pytest.fixture
def sqlite_db(tmp_path):
    return Db('sqlite', str(tmp_path / 'app.db'))


def folder(tmp_path, files, name='migrations'):
    """A migrations folder with the given {file name: SQL text}."""
    path = tmp_path / name
    path.mkdir()
    for file_name, text in files.items():
        (path / file_name).write_text(text)
    return str(path)


def copy_portable(tmp_path, name='migrations', keep=None):
    path = str(tmp_path / name)
    shutil.copytree(PORTABLE, path)
    if keep is not None:
        for file_name in os.listdir(path):
            if file_name.split('_')[0].isdigit() and int(file_name.split('_')[0]) not in keep:
                os.unlink(os.path.join(path, file_name))
    return path


# -- up, down, target ---------------------------------------------------------------

def test_up_to_latest_runs_every_migration_in_numeric_order(db):
    result = db.migrate(PORTABLE)
    assert [(a['version'], a['direction']) for a in result['applied']] == [(1, 'up'), (2, 'up'), (10, 'up')]
    assert (result['version_before'], result['version_after'], result['changed']) == (0, 10, True)
    assert db.history() == [1, 2, 10]
    assert db.rows('SELECT name, email FROM users ORDER BY id') == [
        ('alice', 'alice@example.com'), ('bob', 'bob@example.com'), ('carol; the admin', 'carol; the admin@example.com')]
    assert db.indexes() == ['users_name_idx']
    assert result['ignored'] == ['README.md'] and result['warnings'] == []
    assert result['queries'][0].startswith('CREATE TABLE users')
    assert result['applied'][1]['verify_file'].endswith('2_add_email.verify.sql')


def test_second_run_changes_nothing(db):
    db.migrate(PORTABLE)
    result = db.migrate(PORTABLE)
    assert (result['changed'], result['applied'], result['version_after'], result['direction']) == (False, [], 10, 'none')
    assert result['pending'] == [] and result['pending_after'] == []


def test_target_goes_up_and_down_and_keeps_the_rows(db):
    assert db.migrate(PORTABLE, target=2)['version_after'] == 2
    assert db.indexes() == [] and 'email' in db.columns('users')
    result = db.migrate(PORTABLE, target='1', allow_data_loss=True)
    assert [(a['version'], a['direction']) for a in result['applied']] == [(2, 'down')]
    assert result['version_after'] == 1 and db.history() == [1]
    assert db.columns('users') == ['id', 'name']
    assert db.rows('SELECT count(*) FROM users') == [(3,)]
    result = db.migrate(PORTABLE)
    assert [a['version'] for a in result['applied']] == [2, 10]
    assert db.history() == [1, 2, 10]


def test_target_zero_rolls_everything_back(db):
    db.migrate(PORTABLE)
    result = db.migrate(PORTABLE, target=0, allow_data_loss=True)
    assert [a['version'] for a in result['applied']] == [10, 2, 1]
    assert result['version_after'] == 0
    assert db.tables() == [HISTORY] and db.history() == []


def test_rollback_runs_the_down_script_stored_in_the_history_table(db, tmp_path):
    """The older release's folder does not contain the newer migration's down script."""
    root = tmp_path / 'root'
    root.mkdir()
    db.migrate(PORTABLE, root=str(root))
    kept = root / '.redbutton' / 'migrations' / '10_index_user_names.down.sql'
    assert kept.read_text() == 'DROP INDEX users_name_idx;\n'
    old = copy_portable(tmp_path, 'v1-migrations', keep={1, 2})
    db.refuse(old, r'newer than the latest migration .* set target: 2')
    result = db.migrate(old, target=2)
    assert result['applied'][0]['file'] == '10_index_user_names.down.sql (stored in history table %s)' % HISTORY
    assert db.indexes() == [] and db.history() == [1, 2]
    assert db.migrate(old)['changed'] is False


def test_the_folder_down_script_wins_over_the_stored_one_with_a_warning(db, tmp_path):
    path = copy_portable(tmp_path)
    db.migrate(path)
    with open(os.path.join(path, '10_index_user_names.down.sql'), 'a') as handle:
        handle.write('-- fixed\n')
    result = db.migrate(path, target=2)
    assert result['applied'][0]['file'] == os.path.join(path, '10_index_user_names.down.sql')
    assert 'differs from the down script stored' in result['warnings'][0]


def test_empty_folder_is_version_zero(db, tmp_path):
    result = db.migrate(folder(tmp_path, {}))
    assert (result['changed'], result['version_after'], result['latest']) == (False, 0, 0)


# -- drift ------------------------------------------------------------------------------

def test_drift_fails_naming_the_file_and_both_checksums_and_runs_nothing(db, tmp_path):
    path = copy_portable(tmp_path, keep={1})
    db.migrate(path)
    up = os.path.join(path, '1_create_users.up.sql')
    with open(up, 'a') as handle:
        handle.write("INSERT INTO users (id, name) VALUES (4, 'dave');\n")
    shutil.copy(os.path.join(PORTABLE, '2_add_email.up.sql'), path)
    error = db.refuse(path, 'drift')
    drift = error.result['drift']
    assert [d['file'] for d in drift] == [up]
    assert drift[0]['recorded'] in str(error) and drift[0]['found'] in str(error) and drift[0]['recorded'] != drift[0]['found']
    assert db.history() == [1] and 'email' not in db.columns('users')


# -- failures ----------------------------------------------------------------------------------

def test_failing_migration_leaves_the_previous_version_and_names_file_and_statement(db, tmp_path):
    path = folder(tmp_path, {
        '1_a.up.sql': 'CREATE TABLE a (id INTEGER PRIMARY KEY);\n',
        '2_b.up.sql': '-- two statements, the second one fails\nCREATE TABLE b (id INTEGER PRIMARY KEY);\n\nINSERT INTO missing_table VALUES (1);\n',
        '3_c.up.sql': 'CREATE TABLE c (id INTEGER PRIMARY KEY);\n',
    })
    error = db.refuse(path, r'2_b\.up\.sql line 4 \(statement 2 of 2: INSERT INTO missing_table VALUES \(1\)\): .*missing_table')
    assert 'database is at version 1' in str(error)
    assert 'Migrations run before it in this run stay applied: 1_a (up)' in str(error)
    assert error.result['failure']['line'] == 4
    assert error.result['version_after'] == 1 and [a['version'] for a in error.result['applied']] == [1]
    assert db.history() == [1] and db.tables() == ['a', HISTORY]


def test_postgresql_error_line_points_inside_a_multi_line_statement(pg, tmp_path):
    path = folder(tmp_path, {'1_a.up.sql': 'CREATE TABLE a (\n    id integer,\n    name nosuchtype\n);\n'})
    error = pg.refuse(path, r'1_a\.up\.sql line 3 .*type "nosuchtype" does not exist')
    assert error.result['failure']['line'] == 3


def test_failing_verify_script_rolls_the_migration_back(db, tmp_path):
    path = folder(tmp_path, {'1_a.up.sql': 'CREATE TABLE a (id INTEGER);\n',
                             '1_a.verify.sql': 'SELECT id, forgotten_column FROM a WHERE 1 = 0;\n'})
    db.refuse(path, r'1_a\.verify\.sql line 1 .*forgotten_column')
    assert db.tables() == [HISTORY]


def test_unterminated_string_is_refused_before_anything_runs(db, tmp_path):
    path = folder(tmp_path, {'1_a.up.sql': 'CREATE TABLE a (id INTEGER);\n', '2_b.up.sql': "SELECT 1;\nSELECT 'oops;\n"})
    db.refuse(path, r"2_b\.up\.sql into statements: a ' string starting at line 2 is never closed; nothing was run")
    assert db.history() == [] and 'a' not in db.tables()


# -- files that run without a transaction ----------------------------------------------------

def test_file_with_its_own_transaction_runs_as_is(db, tmp_path):
    path = folder(tmp_path, {'1_a.up.sql': 'BEGIN;\nCREATE TABLE a (id INTEGER);\nINSERT INTO a VALUES (1);\nCOMMIT;\n',
                             '1_a.down.sql': 'BEGIN;\nDROP TABLE a;\nCOMMIT;\n'})
    result = db.migrate(path)
    assert result['applied'][0]['transaction'] is False
    assert result['applied'][0]['no_transaction_reason'] == 'line 1: BEGIN manages its own transaction'
    assert db.rows('SELECT id FROM a') == [(1,)]
    assert db.rows('SELECT no_transaction FROM %s' % HISTORY)[0][0] in (1, True)
    db.migrate(path, target=0, allow_data_loss=True)
    assert db.tables() == [HISTORY]


def test_failure_inside_a_self_managed_transaction_is_rolled_back(db, tmp_path):
    path = folder(tmp_path, {'1_a.up.sql': 'BEGIN;\nCREATE TABLE a (id INTEGER);\nINSERT INTO nope VALUES (1);\nCOMMIT;\n'})
    error = db.refuse(path, r'1_a\.up\.sql line 3 .*nope')
    assert 'statements 1 to 2 took effect' in str(error)
    assert db.tables() == [HISTORY] and db.history() == []
    # The connection is usable again: the same database migrates once the file is fixed.
    with open(os.path.join(path, '1_a.up.sql'), 'w') as handle:
        handle.write('BEGIN;\nCREATE TABLE a (id INTEGER);\nCOMMIT;\n')
    assert db.migrate(path)['version_after'] == 1


def test_marker_comment_runs_the_file_without_a_transaction(db, tmp_path):
    path = folder(tmp_path, {'1_a.up.sql': '-- redbutton:no-transaction\nCREATE TABLE a (id INTEGER);\nINSERT INTO nope VALUES (1);\n'})
    error = db.refuse(path, r'without a transaction \(marker comment "-- redbutton:no-transaction"\): statement 1 took effect')
    assert 'reports version 0 but is partly changed' in str(error)
    assert error.result['failure']['up_checksum'].startswith('sha256:')
    assert error.result['failure']['no_transaction_reason'].startswith('marker comment')
    assert 'a' in db.tables() and db.history() == []


def test_postgresql_create_index_concurrently_runs_outside_a_transaction(pg, tmp_path):
    path = folder(tmp_path, {
        '1_t.up.sql': 'CREATE TABLE t (id integer, v text);\n', '1_t.down.sql': 'DROP TABLE t;\n',
        '2_i.up.sql': 'CREATE INDEX CONCURRENTLY t_v_idx ON t (v);\n', '2_i.down.sql': 'DROP INDEX CONCURRENTLY t_v_idx;\n',
    })
    result = pg.migrate(path)
    assert result['applied'][1]['transaction'] is False
    assert 'CONCURRENTLY' in result['applied'][1]['no_transaction_reason']
    assert pg.indexes() == ['t_v_idx']
    assert pg.migrate(path, target=1)['applied'][0]['transaction'] is False
    assert pg.indexes() == []


def test_sqlite_vacuum_runs_outside_a_transaction(sqlite_db, tmp_path):
    path = folder(tmp_path, {'1_t.up.sql': 'CREATE TABLE t (id INTEGER);\n', '2_vacuum.up.sql': 'VACUUM;\n'})
    result = sqlite_db.migrate(path)
    assert result['applied'][1]['transaction'] is False and sqlite_db.history() == [1, 2]


# -- missing down scripts ----------------------------------------------------------------------

def test_rollback_needing_a_missing_down_refuses_before_changing_anything(db, tmp_path):
    path = folder(tmp_path, {
        '1_a.up.sql': 'CREATE TABLE a (id INTEGER);\n', '1_a.down.sql': 'DROP TABLE a;\n',
        '2_b.up.sql': 'CREATE TABLE b (id INTEGER);\n',
        '3_c.up.sql': 'CREATE TABLE c (id INTEGER);\n', '3_c.down.sql': 'DROP TABLE c;\n',
    })
    assert db.migrate(path)['version_after'] == 3
    error = db.refuse(path, r'cannot roll back to version 1: migration 2_b has no down script .*nothing was run', target=1)
    assert error.result['version_after'] == 3
    assert db.history() == [1, 2, 3] and db.tables() == ['a', 'b', 'c', HISTORY]
    assert db.migrate(path, target=2)['version_after'] == 2


# -- data-loss guard --------------------------------------------------------------------------------

def test_lossy_down_is_refused_without_backup_or_allow_data_loss(db, tmp_path):
    db.migrate(PORTABLE)
    error = db.refuse(PORTABLE, r'refusing to lose data: .*2_add_email\.down\.sql line 1 drops column users\.email, which holds data'
                      r'.*Set root .*allow_data_loss: true', target=1)
    assert error.result['data_loss'][0]['drops'] == 'column users.email'
    db.refuse(PORTABLE, 'refusing to lose data', target=1, root=str(tmp_path), backup=False)
    assert db.history() == [1, 2, 10] and db.indexes() == ['users_name_idx']
    assert db.rows('SELECT count(*) FROM users WHERE email IS NOT NULL') == [(3,)]


def test_lossy_down_runs_with_allow_data_loss_and_no_backup(db, tmp_path):
    db.migrate(PORTABLE)
    result = db.migrate(PORTABLE, target=1, allow_data_loss=True)
    assert result['backup'] is None and result['data_loss'][0]['drops'] == 'column users.email'
    assert 'email' not in db.columns('users')


def test_lossy_down_takes_a_backup_that_holds_the_rows(db, tmp_path):
    root = tmp_path / 'root'
    root.mkdir()
    db.migrate(PORTABLE)
    result = db.migrate(PORTABLE, target=1, root=str(root))
    backup = result['backup']
    assert os.path.dirname(backup) == str(root / '.redbutton' / 'backups')
    assert os.path.basename(backup).endswith('-v10-to-v1-%s' % os.path.basename(backup).split('-')[-1])
    assert 'email' not in db.columns('users')
    if db.engine == 'sqlite':
        with contextlib.closing(sqlite3.connect(backup)) as conn:
            assert conn.execute('SELECT email FROM users ORDER BY id').fetchall() == [
                ('alice@example.com',), ('bob@example.com',), ('carol; the admin@example.com',)]
    else:
        rc, out, err = run_command(['pg_restore', '--data-only', '--table=users', '--file=-', backup])
        assert rc == 0, err
        assert 'alice@example.com' in out and 'carol; the admin@example.com' in out
    assert oct(os.stat(backup).st_mode & 0o777) == '0o600'


def test_dropping_an_empty_table_or_column_needs_no_guard(db, tmp_path):
    path = folder(tmp_path, {'1_a.up.sql': 'CREATE TABLE a (id INTEGER, note TEXT);\nINSERT INTO a (id) VALUES (1);\n',
                             '1_a.down.sql': 'DROP TABLE a;\n',
                             '2_b.up.sql': 'CREATE TABLE b (id INTEGER);\n', '2_b.down.sql': 'DROP TABLE b;\n',
                             '3_c.up.sql': 'ALTER TABLE a ADD COLUMN extra TEXT;\n', '3_c.down.sql': 'ALTER TABLE a DROP COLUMN extra;\n'})
    db.migrate(path)
    result = db.migrate(path, target=1)
    assert result['data_loss'] == [] and db.tables() == ['a', HISTORY]
    db.refuse(path, r'drops table a, which holds data', target=0)


def test_missing_pg_dump_fails_before_anything_runs(pg, tmp_path, monkeypatch):
    monkeypatch.setenv('PATH', str(tmp_path))
    pg.migrate(PORTABLE)
    root = tmp_path / 'root'
    root.mkdir()
    with pytest.raises(RedbuttonError, match='pg_dump is not installed .*nothing was run'):
        pg.migrate(PORTABLE, target=1, root=str(root))
    assert pg.history() == [1, 2, 10] and 'email' in pg.columns('users')
    assert not os.path.exists(str(root / '.redbutton'))


# -- rehearsal ------------------------------------------------------------------------------------------

def test_rehearsal_runs_up_down_up_and_reports_each_migration(db):
    result = db.migrate(PORTABLE, rehearse=True)
    assert [(r['version'], r['schema_equal'], r['one_transaction']) for r in result['rehearsal']] == [
        (1, True, True), (2, True, True), (10, True, True)]
    assert db.history() == [1, 2, 10]
    assert db.rows('SELECT count(*) FROM users WHERE email IS NOT NULL') == [(3,)]
    # up, verify, down, up, verify for migration 2:
    assert result['queries'].count('ALTER TABLE users ADD COLUMN email TEXT') == 2
    assert 'ALTER TABLE users DROP COLUMN email' in result['queries']


def test_rehearsal_fails_when_the_down_script_forgets_something(db, tmp_path):
    path = folder(tmp_path, {
        '1_a.up.sql': 'CREATE TABLE a (id INTEGER);\n', '1_a.down.sql': 'DROP TABLE a;\n',
        '2_b.up.sql': 'CREATE TABLE b (id INTEGER);\nCREATE TABLE b_audit (id INTEGER);\nCREATE INDEX b_id ON b (id);\n',
        '2_b.down.sql': 'DROP TABLE b;\n',
    })
    error = db.refuse(path, r'rehearsal of migration 2_b failed: the schema after .*2_b\.down\.sql differs', rehearse=True)
    assert 'b_audit' in error.result['rehearsal']['diff']
    assert 'rolled back: the database is at version 1, unchanged' in str(error)
    assert db.history() == [1] and db.tables() == ['a', HISTORY]


def test_rehearsal_needs_every_down_script(db, tmp_path):
    path = folder(tmp_path, {'1_a.up.sql': 'CREATE TABLE a (id INTEGER);\n'})
    db.refuse(path, 'rehearse needs a down script for every pending migration; 1_a.up.sql has none', rehearse=True)
    assert db.tables() in ([], [HISTORY])


def test_rehearsal_of_files_without_transaction(db, tmp_path):
    path = folder(tmp_path, {'1_a.up.sql': 'BEGIN;\nCREATE TABLE a (id INTEGER);\nCOMMIT;\n', '1_a.down.sql': 'DROP TABLE a;\n'})
    result = db.migrate(path, rehearse=True)
    assert result['rehearsal'][0]['one_transaction'] is False
    assert db.history() == [1] and 'a' in db.tables()


# -- check mode and diff ---------------------------------------------------------------------------------------

def test_check_mode_returns_the_sql_and_creates_nothing(db):
    result = db.migrate(PORTABLE, check_mode=True)
    assert (result['changed'], result['version_before'], result['version_after']) == (True, 0, 10)
    assert [(a['version'], a['direction'], a['file']) for a in result['applied']] == [
        (1, 'up', os.path.join(PORTABLE, '1_create_users.up.sql')), (2, 'up', os.path.join(PORTABLE, '2_add_email.up.sql')),
        (10, 'up', os.path.join(PORTABLE, '10_index_user_names.up.sql'))]
    assert result['applied'][0]['sql'].startswith('-- Schema 1: users.')
    assert result['queries'][-1] == 'CREATE INDEX users_name_idx ON users (name)'
    if db.engine == 'sqlite':
        assert not os.path.exists(db.database) and not os.path.exists(db.database + '.redbutton-lock')
    else:
        assert db.tables() == []


def test_check_mode_names_each_down_script_and_what_it_drops(db):
    result = db.migrate(PORTABLE, check_mode=True)
    downs = dict((a['version'], (os.path.basename(a['down_file']), [d['drops'] for d in a['down_drops']]))
                 for a in result['applied'])
    assert downs == {1: ('1_create_users.down.sql', ['table users']), 2: ('2_add_email.down.sql', ['column users.email']),
                     10: ('10_index_user_names.down.sql', [])}
    assert result['applied'][1]['down_drops'][0]['line'] >= 1


def test_check_mode_predicts_a_rollback_without_running_it(db, tmp_path):
    db.migrate(PORTABLE)
    result = db.migrate(PORTABLE, target=1, check_mode=True, root=str(tmp_path))
    assert [(a['version'], a['direction']) for a in result['applied']] == [(10, 'down'), (2, 'down')]
    assert result['version_after'] == 1 and result['backup'].startswith(str(tmp_path))
    assert not os.path.exists(os.path.join(str(tmp_path), '.redbutton'))
    assert db.history() == [1, 2, 10] and db.indexes() == ['users_name_idx']


def test_diff_shows_version_and_pending(db):
    result = db.migrate(PORTABLE, target=2, check_mode=True)
    assert diff_of(result)['before'] == 'schema_version: 0\npending: [1, 2, 10]\n'
    assert diff_of(result)['after'] == 'schema_version: 2\npending: [10]\n'


# -- locking ---------------------------------------------------------------------------------------------------------

def test_postgresql_advisory_lock_makes_a_second_run_wait(pg):
    key = advisory_lock_key(HISTORY)
    with psycopg.connect(pg.database, autocommit=True) as holder:
        holder.execute('SELECT pg_advisory_lock(%s)', (key,))
        pid = holder.info.backend_pid
        error = pg.refuse(PORTABLE, r'another migrate run holds the advisory lock .*backend pid %d' % pid, lock_timeout=1)
        assert pg.history() == []
        release = threading.Timer(1.0, lambda: holder.execute('SELECT pg_advisory_unlock(%s)', (key,)))
        started = time.time()
        release.start()
        result = pg.migrate(PORTABLE, lock_timeout=20)
        release.join()
    assert time.time() - started >= 0.9
    assert result['version_after'] == 10
    assert 'waited 1 s' in str(error)


def test_two_concurrent_runs_never_interleave(db, tmp_path):
    if db.engine == 'postgresql':
        slow = 'SELECT pg_sleep(1)'
    else:
        slow = 'WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000000) SELECT count(*) FROM n'
    path = folder(tmp_path, {'1_a.up.sql': 'CREATE TABLE a (id INTEGER);\n%s;\nINSERT INTO a VALUES (1);\n' % slow})
    if db.engine == 'sqlite':
        db.migrate(folder(tmp_path, {}, name='empty'))  # create the file first: both threads open it
    results, errors = [], []

    def run():
        try:
            results.append(db.migrate(path, lock_timeout=30))
        except Exception as exc:  # pylint: disable=broad-except
            errors.append(exc)
    threads = [threading.Thread(target=run), threading.Thread(target=run)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(len(r['applied']) for r in results) == [0, 1]
    assert db.rows('SELECT count(*) FROM a') == [(1,)] and db.history() == [1]


def test_sqlite_lock_file_makes_a_second_run_wait(sqlite_db):
    with open(sqlite_db.database + '.redbutton-lock', 'w') as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        sqlite_db.refuse(PORTABLE, r'another migrate run holds .*app\.db\.redbutton-lock \(waited 0 s\)', lock_timeout=0)
    assert sqlite_db.migrate(PORTABLE, lock_timeout=0)['version_after'] == 10


# -- real golang-migrate folders run unchanged -----------------------------------------------------------------------------

def test_golang_migrate_postgres_folder_runs_unchanged(pg):
    path = os.path.join(FIXTURES, 'golang-migrate-postgres')
    result = pg.migrate(path)
    assert [a['version'] for a in result['applied']] == [1, 2, 3, 4, 10]
    assert [a['transaction'] for a in result['applied']] == [True, False, True, True, False]
    pg.rows("INSERT INTO users (username, password, email, mood) VALUES ('ann', 'x', 'ann@example.com', 'happy') RETURNING 1")
    pg.rows('INSERT INTO orders (user_id, total) SELECT user_id, 9.5 FROM users RETURNING 1')
    assert pg.indexes() == ['orders_user_id_idx']
    assert pg.migrate(path, rehearse=True)['changed'] is False
    result = pg.migrate(path, target=0, allow_data_loss=True)
    assert [a['version'] for a in result['applied']] == [10, 4, 3, 2, 1]
    assert pg.tables() == [HISTORY]
    assert len(pg.migrate(path, rehearse=True)['rehearsal']) == 5


def test_golang_migrate_sqlite_folder_runs_unchanged(sqlite_db, tmp_path):
    path = os.path.join(FIXTURES, 'golang-migrate-sqlite')
    result = sqlite_db.migrate(path)
    assert [a['version'] for a in result['applied']] == [20240105093000, 20240212170000, 20240301120000]
    assert 'PRAGMA foreign_keys=OFF' in result['applied'][2]['no_transaction_reason']
    sqlite_db.rows("INSERT INTO notes (title) VALUES ('first') RETURNING id")
    sqlite_db.rows("UPDATE notes SET title = 'renamed' RETURNING id")
    assert sqlite_db.rows('SELECT title, archived, updated_at IS NOT NULL FROM notes') == [('renamed', 0, 1)]
    root = tmp_path / 'root'
    root.mkdir()
    result = sqlite_db.migrate(path, target=20240105093000, root=str(root))
    assert result['backup'] and result['data_loss'][0]['drops'] == 'table notes'
    assert sqlite_db.rows('SELECT title FROM notes') == [('renamed',)]
    assert 'archived' not in sqlite_db.columns('notes')
    assert sqlite_db.migrate(path, rehearse=True)['rehearsal'][-1]['schema_equal'] is True


# -- bad input -------------------------------------------------------------------------------------------------------------------

def test_duplicate_versions_are_an_error_naming_the_files(sqlite_db, tmp_path):
    path = folder(tmp_path, {'1_a.up.sql': 'SELECT 1;', '001_b.up.sql': 'SELECT 2;'})
    sqlite_db.refuse(path, r'more than one up file for the same version \(version 1: 001_b\.up\.sql, 1_a\.up\.sql\)')
    assert not os.path.exists(sqlite_db.database)


def test_down_without_up_is_an_error(sqlite_db, tmp_path):
    sqlite_db.refuse(folder(tmp_path, {'1_a.up.sql': 'SELECT 1;', '2_b.down.sql': 'SELECT 2;'}),
                     r'has 2_b\.down\.sql without a matching')


def test_version_zero_is_an_error(sqlite_db, tmp_path):
    sqlite_db.refuse(folder(tmp_path, {'0_init.up.sql': 'SELECT 1;'}), 'has version 0')


def test_misnamed_sql_files_are_ignored_with_a_warning(sqlite_db, tmp_path):
    path = folder(tmp_path, {'1_a.up.sql': 'CREATE TABLE a (id INTEGER);', '002-b.up.sql': 'CREATE TABLE b (id INTEGER);',
                             'notes.txt': 'x', '.hidden.sql': 'x'})
    result = sqlite_db.migrate(path)
    assert result['ignored'] == ['002-b.up.sql', 'notes.txt']
    assert len(result['warnings']) == 1 and result['warnings'][0].startswith('002-b.up.sql in ')


@pytest.mark.parametrize('target', ['abc', '-1', -1, True, '1.5', 1.5, '', 'LATEST'])
def test_invalid_target_is_refused(sqlite_db, target):
    sqlite_db.refuse(PORTABLE, 'target .* is not valid: use latest, a migration version', target=target)
    assert not os.path.exists(sqlite_db.database)


def test_unknown_target_version_is_refused(db):
    db.refuse(PORTABLE, r'target 7 is not a known migration version \(in .* or applied: 1, 2, 10\)', target=7)
    assert db.history() == []


def test_unapplied_migration_older_than_the_database_is_refused(db, tmp_path):
    path = copy_portable(tmp_path, keep={1, 10})
    db.migrate(path)
    shutil.copy(os.path.join(PORTABLE, '2_add_email.up.sql'), path)
    db.refuse(path, r'2_add_email\.up\.sql in .* was never applied, but the database is already at version 10')
    assert db.history() == [1, 10]


@pytest.mark.parametrize('name', ['Bad', 'has-dash', 'x' * 64, 'a;drop', ''])
def test_invalid_history_table_is_refused(tmp_path, name):
    with pytest.raises(RedbuttonError, match='history_table .* is not valid'):
        new_backend('sqlite', str(tmp_path / 'a.db'), name)


def test_other_table_with_the_history_name_is_refused(db):
    with db.connect() as conn:
        conn.execute('CREATE TABLE %s (id INTEGER)' % HISTORY)
    db.refuse(PORTABLE, 'exists but is not a redbutton migration history table .*no column version')


def test_missing_path_and_root_are_refused(sqlite_db, tmp_path):
    sqlite_db.refuse(str(tmp_path / 'nope'), 'is not a directory: give the folder')
    sqlite_db.refuse(PORTABLE, 'root .* does not exist', root=str(tmp_path / 'nope'))


def test_sqlite_database_must_be_an_absolute_path_in_an_existing_directory(tmp_path):
    with pytest.raises(RedbuttonError, match='not an absolute path'):
        Db('sqlite', 'app.db').migrate(PORTABLE)
    with pytest.raises(RedbuttonError, match='directory of database .* does not exist'):
        Db('sqlite', str(tmp_path / 'missing' / 'app.db')).migrate(PORTABLE)


def test_unknown_engine_is_refused():
    with pytest.raises(RedbuttonError, match="engine 'mysql' is not supported: use one of postgresql, sqlite"):
        new_backend('mysql', 'x')


def test_postgresql_connection_error_does_not_show_the_password(pg_dsn):
    params = conninfo_to_dict(pg_dsn)
    params.update(password='s3cret-pw', dbname='rb_migrate_no_such_db')
    with pytest.raises(RedbuttonError) as info:
        Db('postgresql', make_conninfo(**params)).migrate(PORTABLE)
    assert 'cannot connect to PostgreSQL database' in str(info.value)
    assert 's3cret-pw' not in str(info.value)


def test_postgresql_invalid_connection_string_is_refused():
    with pytest.raises(RedbuttonError, match='not a valid PostgreSQL connection string'):
        Db('postgresql', 'this is = not valid').migrate(PORTABLE)
