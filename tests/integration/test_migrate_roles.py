# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The roles with redbutton_migrations: the database moves with the code.

Releases are built here as directories: the sample app plus a migrations/ folder.
v1 creates users (schema 1), v2 adds an email column with a backfill (schema 2), v3 adds a
migration that fails half-way. The story: rollout v1, v2, rollback, v2 again, a failing v3,
an unchanged re-run; on SQLite, and once on PostgreSQL (REDBUTTON_PG_DSN).
"""

import json
import os
import sqlite3
import sys
import uuid

import pytest

import build_releases

try:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo
except ImportError:  # pragma: no cover - psycopg is in the project's virtualenv
    psycopg = None

MIGRATIONS = {
    'v1': {
        '1_users.up.sql': "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n"
                          "INSERT INTO users (id, name) VALUES (1, 'Ada'), (2, 'Brian'), (3, 'Chloe');\n",
        '1_users.down.sql': 'DROP TABLE users;\n',
    },
    'v2': {
        '2_email.up.sql': 'ALTER TABLE users ADD COLUMN email TEXT;\n'
                          "UPDATE users SET email = lower(name) || '@example.com';\n",
        '2_email.down.sql': 'ALTER TABLE users DROP COLUMN email;\n',
    },
    'v3': {
        # The first statement works, the second does not: the transaction must undo both.
        '3_audit.up.sql': 'CREATE TABLE audit (id INTEGER PRIMARY KEY, what TEXT);\n'
                          'INSERT INTO no_such_table VALUES (1);\n',
        '3_audit.down.sql': 'DROP TABLE audit;\n',
    },
}
ORDER = ('v1', 'v2', 'v3')
COLLECTIONS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), '.build', 'collections')


def build_release(base, version, upto=None):
    """A release directory of the sample app (healthy) whose migrations/ has every migration up to upto (or version)."""
    path = os.path.join(str(base), version)
    files = dict((name, data) for name, (data, _mode) in build_releases.release_files('v1').items())
    files['VERSION'] = version.encode() + b'\n'
    files['config/app.json'] = files['config/app.json'].replace(b'hello from v1', b'hello from ' + version.encode())
    for earlier in ORDER[:ORDER.index(upto or version) + 1]:
        for name, sql in MIGRATIONS[earlier].items():
            files['migrations/' + name] = sql.encode()
    for name, data in files.items():
        target = os.path.join(path, name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, 'wb') as handle:
            handle.write(data)
    return path


class Database(object):
    """What the tests look at in the database: schema version, columns, rows."""

    def __init__(self, engine, database, password=None):
        self.engine = engine
        self.database = database
        self.password = password

    def settings(self):
        data = {'engine': self.engine, 'database': self.database, 'path': 'migrations'}
        if self.password:
            data['login_password'] = self.password
        return data

    def query(self, sql):
        if self.engine == 'sqlite':
            with sqlite3.connect(self.database) as conn:
                return conn.execute(sql).fetchall()
        with psycopg.connect(self.database, password=self.password) as conn:
            return conn.execute(sql).fetchall()

    def version(self):
        return self.query('SELECT coalesce(max(version), 0) FROM redbutton_schema_history')[0][0]

    def columns(self, table):
        if self.engine == 'sqlite':
            return sorted(row[1] for row in self.query('PRAGMA table_info(%s)' % table))
        return sorted(row[0] for row in self.query(
            "SELECT column_name FROM information_schema.columns WHERE table_name = '%s'" % table))

    def tables(self):
        if self.engine == 'sqlite':
            return sorted(row[0] for row in self.query("SELECT name FROM sqlite_master WHERE type = 'table'"))
        return sorted(row[0] for row in self.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"))

    def rows(self):
        return self.query('SELECT count(*) FROM users')[0][0]

    def add_user(self, name):
        """A row written by the app while it runs (not by a migration)."""
        sql = "INSERT INTO users (id, name) VALUES (%d, '%s')" % (100 + self.rows(), name)
        if self.engine == 'sqlite':
            with sqlite3.connect(self.database) as conn:
                conn.execute(sql)
        else:
            with psycopg.connect(self.database, password=self.password) as conn:
                conn.execute(sql)


@pytest.fixture
def releases(tmp_path):
    base = tmp_path / 'builds'
    built = dict((version, build_release(base, version)) for version in ORDER)
    built['v4'] = build_release(base, 'v4', upto='v2')  # another release with v2's migrations
    return built


@pytest.fixture
def sqlite_db(site):
    # Outside shared/: the baseline's probe of shared/ compares file bytes, and migrating up and
    # down changes the file's bytes even when the schema and rows are back where they were.
    return Database('sqlite', str(site.tmp / 'app.db'))


@pytest.fixture
def pg_db():
    dsn = os.environ.get('REDBUTTON_PG_DSN')
    if not dsn:
        if os.environ.get('REDBUTTON_REQUIRE_PG') == '1':
            pytest.fail('REDBUTTON_REQUIRE_PG=1 but REDBUTTON_PG_DSN is unset: run eval "$(scripts/postgres.sh)"')
        pytest.skip('REDBUTTON_PG_DSN is unset: eval "$(scripts/postgres.sh)" to run the PostgreSQL tests')
    name = 'rb_migrate_test_%s' % uuid.uuid4().hex[:12]
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute('CREATE DATABASE %s' % name)
    params = conninfo_to_dict(dsn)
    params['dbname'] = name
    password = params.pop('password', None)
    yield Database('postgresql', make_conninfo(**params), password)
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute('DROP DATABASE IF EXISTS %s WITH (FORCE)' % name)


def deploy(site, releases, version, db, *extra, rc=0, **settings):
    config = dict(db.settings(), **settings)
    return expect(rc, site.playbook('redbutton.deploy.rollout', '-e', 'redbutton_release=%s' % version,
                                    '-e', 'redbutton_artifact=%s' % releases[version],
                                    *site.vars_file('migrations', {'redbutton_migrations': config}), *extra, rc=None))


def roll_back(site, database, *extra, rc=0):
    return expect(rc, site.rollback(*site.vars_file('migrations', {'redbutton_migrations': database.settings()}), *extra, rc=None))


def expect(rc, run):
    """Assert the exit code, showing the failures (pytest cuts long messages short)."""
    failures = '\n'.join(line for line in run.output.splitlines() if line.startswith(('fatal:', '[ERROR]')))
    assert run.rc == rc, '%s -> rc %s\n%s' % (' '.join(run.args[:1] + run.args[-4:]), run.rc, failures)
    return run


def schema_versions(site):
    return dict((rid, entry.get('metadata', {}).get('schema_version')) for rid, entry in site.ledger()['releases'].items())


def story(site, releases, db):
    deploy(site, releases, 'v1', db)
    site.assert_state('v1', {'v1': 'ok'})
    assert db.version() == 1
    assert db.columns('users') == ['id', 'name']
    assert schema_versions(site) == {'v1': 1}
    db.add_user('Dora')  # a row the app wrote: it must survive everything below

    deploy(site, releases, 'v2', db)
    site.assert_state('v2', {'v1': 'ok', 'v2': 'ok'})
    assert db.version() == 2
    assert db.columns('users') == ['email', 'id', 'name']
    assert db.query("SELECT count(*) FROM users WHERE email LIKE '%@example.com'")[0][0] == 4, 'the backfill ran'
    assert schema_versions(site) == {'v1': 1, 'v2': 2}

    run = roll_back(site, db)
    site.assert_state('v1', {'v1': 'ok', 'v2': 'rolled_back'})
    assert db.version() == 1
    assert db.columns('users') == ['id', 'name']
    assert db.rows() == 4, 'no rows lost'
    # The down script dropped a column holding data: the migrate module backed it up first.
    backups = os.listdir(os.path.join(site.root, '.redbutton', 'backups'))
    assert len(backups) == 1 and 'v2-to-v1' in backups[0], run
    assert schema_versions(site) == {'v1': 1, 'v2': 2}, 'a rollback keeps what each release ran with'

    deploy(site, releases, 'v2', db)
    site.assert_state('v2', {'v1': 'ok', 'v2': 'ok'})
    assert db.version() == 2
    assert db.rows() == 4
    assert db.query('SELECT count(*) FROM users WHERE email IS NOT NULL')[0][0] == 4, 'the backfill ran again'

    run = deploy(site, releases, 'v3', db, rc=2)
    assert '3_audit.up.sql' in run.output and 'no_such_table' in run.output
    assert 'stopped before the switch' in run.output
    site.assert_state('v2', {'v1': 'ok', 'v2': 'ok'})
    assert db.version() == 2
    assert 'audit' not in db.tables(), 'the failed migration left nothing behind'
    assert site.release_dirs() == ['v1', 'v2']

    run = deploy(site, releases, 'v2', db)
    assert run.recap['changed'] == 0, run
    assert db.version() == 2


def test_story_on_sqlite(site, releases, sqlite_db):
    story(site, releases, sqlite_db)


def test_story_on_postgresql(site, releases, pg_db):
    story(site, releases, pg_db)


def test_rehearse_playbook_rehearses_the_migrations(site, releases, sqlite_db, tmp_path):
    """QA sign-off: the rehearse playbook with redbutton_migrations runs each pending migration
    up, down and up before keeping it, then rolls back and out again, database included."""
    deploy(site, releases, 'v1', sqlite_db)
    # v5's down script forgets to drop the column its up script adds: the rehearsal must catch it.
    broken = build_release(tmp_path / 'broken', 'v5', upto='v1')
    with open(os.path.join(broken, 'migrations', '2_email.up.sql'), 'w', encoding='utf-8') as handle:
        handle.write('ALTER TABLE users ADD COLUMN email TEXT;\n')
    with open(os.path.join(broken, 'migrations', '2_email.down.sql'), 'w', encoding='utf-8') as handle:
        handle.write('SELECT 1;\n')
    settings = site.vars_file('migrations', {'redbutton_migrations': sqlite_db.settings()})
    run = expect(2, site.playbook('redbutton.deploy.rehearse', '-e', 'redbutton_release=v5', '-e', 'redbutton_artifact=%s' % broken,
                                  *settings, rc=None))
    assert '2_email' in run.output and 'email' in run.output and 'rehears' in run.output
    site.assert_state('v1', {'v1': 'ok'})
    assert sqlite_db.version() == 1 and sqlite_db.columns('users') == ['id', 'name']

    run = expect(0, site.playbook('redbutton.deploy.rehearse', '-e', 'redbutton_release=v2', '-e', 'redbutton_artifact=%s' % releases['v2'],
                                  *settings, rc=None))
    assert 'Rehearsal passed' in run.output
    site.assert_state('v2', {'v1': 'ok', 'v2': 'ok'})
    assert sqlite_db.version() == 2 and sqlite_db.rows() == 3


def test_failure_after_the_switch_migrates_back_down(site, releases, sqlite_db):
    """v2 migrates, switches and then fails its health check: the automatic rollback
    switches to v1 and takes the schema back to 1."""
    deploy(site, releases, 'v1', sqlite_db)
    checks = [{'name': 'serves v1', 'url': 'http://127.0.0.1:%d/' % site.port, 'body_regex': '^v1', 'retries': 1, 'delay': 1}]
    run = deploy(site, releases, 'v2', sqlite_db, *site.vars_file('checks', {'redbutton_health_checks': checks}), rc=2)
    assert 'Rolled back automatically' in run.output
    site.assert_state('v1', {'v1': 'ok', 'v2': 'failed'})
    assert sqlite_db.version() == 1
    assert sqlite_db.columns('users') == ['id', 'name']
    assert sqlite_db.rows() == 3


def test_after_switch_records_the_schema_version(site, releases, sqlite_db):
    deploy(site, releases, 'v1', sqlite_db, '-e', 'redbutton_migrate_when=after_switch')
    deploy(site, releases, 'v2', sqlite_db, '-e', 'redbutton_migrate_when=after_switch')
    site.assert_state('v2', {'v1': 'ok', 'v2': 'ok'})
    assert sqlite_db.version() == 2
    assert schema_versions(site) == {'v1': 1, 'v2': 2}


def test_first_migrating_rollout_records_the_old_schema_then_rollback_needs_it(site, releases, sqlite_db):
    # v1 and v2 ran without migrations: the ledger knows no schema version for them.
    site.rollout('v1')
    site.rollout('v2')
    before = site.ledger_bytes()
    run = roll_back(site, sqlite_db, rc=2)
    assert 'no schema version for the target release v1' in run.output
    assert site.ledger_bytes() == before, 'refused before changing anything'
    site.assert_state('v2', {'v1': 'ok', 'v2': 'ok'})
    assert not os.path.exists(sqlite_db.database)

    # The first rollout with migrations records the version v2 ran with: 0, no migrations.
    deploy(site, releases, 'v4', sqlite_db)
    site.assert_state('v4', {'v1': 'ok', 'v2': 'ok', 'v4': 'ok'})
    assert schema_versions(site) == {'v1': None, 'v2': 0, 'v4': 2}
    assert sqlite_db.version() == 2

    # So a rollback to v2 takes the schema back to 0 (after backing up the rows it drops).
    roll_back(site, sqlite_db)
    site.assert_state('v2', {'v1': 'ok', 'v2': 'ok', 'v4': 'rolled_back'})
    assert sqlite_db.version() == 0
    assert 'users' not in sqlite_db.tables()
    assert len(os.listdir(os.path.join(site.root, '.redbutton', 'backups'))) == 1


def test_bad_settings_are_refused_before_anything_changes(site, releases, sqlite_db):
    run = deploy(site, releases, 'v1', sqlite_db, rc=2, path='/etc')
    assert 'redbutton_migrations.path /etc must be relative' in run.output
    run = deploy(site, releases, 'v1', sqlite_db, rc=2, database='')
    assert 'redbutton_migrations needs database' in run.output
    assert not os.path.exists(site.root)


PROBES_PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.include_vars: %(vars)s
    - redbutton.deploy.baseline:
        root: %(root)s
        name: db
        state: "{{ state }}"
        probes: "{{ db_probes if state == 'captured' else omit }}"
        fail_on_difference: false
      register: result
    - ansible.builtin.copy:
        content: "{{ result | to_json }}"
        dest: %(out)s
"""


def test_baseline_probes_see_a_lost_row_and_a_schema_change(site, tmp_path, sqlite_db):
    """The database probes a rollout records with baseline_tables (the transition engine's
    migration_probes): a schema fingerprint that ignores column order and the history table, and
    row counts that may grow but not shrink."""
    sys.path.insert(0, COLLECTIONS)
    from ansible_collections.redbutton.deploy.plugins.module_utils._transition import migration_probes
    os.makedirs(site.root)
    with sqlite3.connect(sqlite_db.database) as conn:
        conn.executescript("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users VALUES (1, 'a'), (2, 'b');"
                           "CREATE TABLE redbutton_schema_history (version INTEGER PRIMARY KEY);")
    out = str(tmp_path / 'result.json')
    probes = str(tmp_path / 'probes.json')
    with open(probes, 'w', encoding='utf-8') as handle:
        json.dump({'db_probes': migration_probes({'database': sqlite_db.database, 'path': 'migrations', 'baseline_tables': ['users']})},
                  handle)
    play = tmp_path / 'probes.yml'
    play.write_text(PROBES_PLAY % {'root': site.root, 'out': out, 'vars': probes})

    def run(state):
        site.playbook(str(play), '-i', site.inventory, '-e', 'state=%s' % state, plain=True)
        with open(out, encoding='utf-8') as handle:
            return json.load(handle)

    run('captured')
    # Growth, a history row, and a column dropped and added back (now last) are no difference.
    with sqlite3.connect(sqlite_db.database) as conn:
        conn.executescript("INSERT INTO users VALUES (3, 'c'); INSERT INTO redbutton_schema_history VALUES (7);"
                           'ALTER TABLE users DROP COLUMN name; ALTER TABLE users ADD COLUMN name TEXT;')
    assert run('compared')['differences'] == []
    with sqlite3.connect(sqlite_db.database) as conn:
        conn.executescript('DELETE FROM users WHERE id < 3; ALTER TABLE users ADD COLUMN email TEXT;')
    names = sorted(item['probe'] for item in run('compared')['differences'])
    assert names == ['db-rows-users', 'db-schema']


def test_a_rollout_killed_between_two_migrations_is_migrated_back_down(site, releases, sqlite_db, tmp_path):
    """Killed after its first migration committed and before the second (REDBUTTON_KILL_AT, inside the engine):
    the rollback that follows takes the database back to v1's schema, and a re-run of the rollout finishes it
    with the schema it had before (so its own rollback goes back to 1, not to 2)."""
    v5 = build_release(tmp_path / 'more', 'v5', upto='v2')
    with open(os.path.join(v5, 'migrations', '3_tags.up.sql'), 'w', encoding='utf-8') as handle:
        handle.write('CREATE TABLE tags (id INTEGER PRIMARY KEY, tag TEXT);\n')
    with open(os.path.join(v5, 'migrations', '3_tags.down.sql'), 'w', encoding='utf-8') as handle:
        handle.write('DROP TABLE tags;\n')
    releases = dict(releases, v5=v5)
    deploy(site, releases, 'v1', sqlite_db)

    def killed():
        site.env['REDBUTTON_KILL_AT'] = 'rollout:during:migrate'
        try:
            run = site.playbook('redbutton.deploy.rollout', '-e', 'redbutton_release=v5', '-e', 'redbutton_artifact=%s' % v5,
                                *site.vars_file('migrations', {'redbutton_migrations': sqlite_db.settings()}), rc=None)
        finally:
            del site.env['REDBUTTON_KILL_AT']
        assert run.rc != 0 and 'A worker was found in a dead state' in run.output, run
        assert sqlite_db.version() == 2 and site.current() == 'v1', 'not killed between the two migrations'

    killed()
    roll_back(site, sqlite_db)
    site.assert_state('v1', {'v1': 'ok'})
    assert sqlite_db.version() == 1 and sqlite_db.columns('users') == ['id', 'name'] and 'tags' not in sqlite_db.tables()
    assert site.ledger()['transition'] is None

    killed()
    deploy(site, releases, 'v5', sqlite_db)
    site.assert_state('v5', {'v1': 'ok', 'v5': 'ok'})
    assert sqlite_db.version() == 3 and schema_versions(site) == {'v1': 1, 'v5': 3}
    roll_back(site, sqlite_db)
    site.assert_state('v1', {'v1': 'ok', 'v5': 'rolled_back'})
    assert sqlite_db.version() == 1 and sqlite_db.columns('users') == ['id', 'name'] and sqlite_db.rows() == 3
