# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Probe definitions (validation, adjustment) and the SQL probes of the baseline module."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import sqlite3
import sys
import uuid

import pytest

from ansible_collections.redbutton.deploy.plugins.module_utils._common import RedbuttonError
from ansible_collections.redbutton.deploy.plugins.module_utils._baseline_probes import (
    ProbeError, adjust_probe, as_number, build_probe, mask_conninfo, normalize_probe,
)


def refused(raw, *fragments):
    with pytest.raises(RedbuttonError) as info:
        normalize_probe(raw, 'probes[0]')
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_path_probe_gets_defaults():
    probe = normalize_probe({'name': 'app', 'path': '/srv/app/current/', 'include': None}, 'probes[0]')
    assert probe == {'name': 'app', 'path': '/srv/app/current', 'include': [], 'exclude': [],
                     'follow': False, 'compare': 'exact'}


def test_command_probe_gets_defaults():
    probe = normalize_probe({'name': 'v', 'command': ['app', '--version'], 'record': ['stdout', 'rc']}, 'p')
    assert probe['record'] == ['rc', 'stdout'] and probe['shell'] is False


@pytest.mark.parametrize('raw, fragments', [
    ('not a dict', ['probes[0] must be a dictionary']),
    ({'path': '/x'}, ['probes[0] has no name']),
    ({'name': '../x', 'path': '/x'}, ["probe id '../x' is not valid"]),
    ({'name': 'a', 'path': '/x', 'colour': 'red'}, ["probe 'a'", 'unknown option(s) colour']),
    ({'name': 'a', 'path': '/x', 'command': 'true'}, ["probe 'a'", 'exactly one of', 'found path and command']),
    ({'name': 'a'}, ["probe 'a'", 'exactly one of', 'found none']),
    ({'name': 'a', 'path': '/x', 'regex': 'x'}, ['option regex applies to command probes only, not to a path probe']),
    ({'name': 'a', 'service': 'app', 'compare': 'no_loss'}, ['no_loss applies to path, sql and command probes']),
    ({'name': 'a', 'packages': ['bash'], 'compare': 'sometimes'}, ['compare must be exact or no_loss']),
    ({'name': 'a', 'path': 'relative/dir'}, ["path 'relative/dir' must be an absolute path"]),
    ({'name': 'a', 'path': '/x', 'exclude': ['../etc']}, ['exclude', "contains '..'"]),
    ({'name': 'a', 'command': 'x', 'regex': '('}, ["regex '(' is not a valid regular expression"]),
    ({'name': 'a', 'command': ['a', 'b'], 'shell': True}, ['shell: true needs command as one string']),
    ({'name': 'a', 'command': 'x', 'record': ['stderr']}, ['record accepts rc and stdout, not stderr']),
    ({'name': 'a', 'command': 'x', 'record': ['rc'], 'compare': 'no_loss'}, ['keep stdout in record']),
    ({'name': 'a', 'command': ''}, ['command must be a non-empty string']),
    ({'name': 'a', 'sql': 'select 1', 'database': '/x.db'}, ['engine must be sqlite or postgresql']),
    ({'name': 'a', 'sql': 'select 1', 'engine': 'sqlite'}, ['database is required']),
    ({'name': 'a', 'sql': 'select 1', 'engine': 'sqlite', 'database': 'app.db'}, ['must be an absolute path']),
    ({'name': 'a', 'service': '-x'}, ["service '-x' is not a systemd unit name"]),
    ({'name': 'a', 'packages': []}, ['packages must name at least one entry']),
    ({'name': 'a', 'packages': ['bash', 'rm -rf']}, ['not a package name: rm -rf']),
])
def test_bad_probes_are_refused_with_a_clear_message(raw, fragments):
    refused(raw, *fragments)


def test_adjust_allows_compare_and_globs():
    recorded = normalize_probe({'name': 'app', 'path': '/srv/app/current'}, 'p')
    adjusted = adjust_probe(recorded, {'name': 'app', 'exclude': ['logs'], 'compare': 'no_loss', 'path': None})
    assert adjusted['exclude'] == ['logs'] and adjusted['compare'] == 'no_loss'
    assert adjusted['path'] == '/srv/app/current'


def test_adjust_accepts_the_same_definition_again():
    recorded = normalize_probe({'name': 'app', 'path': '/srv/app/current'}, 'p')
    assert adjust_probe(recorded, {'name': 'app', 'path': '/srv/app/current/'}) == recorded


def test_adjust_refuses_to_measure_something_else():
    recorded = normalize_probe({'name': 'app', 'path': '/srv/app/current'}, 'p')
    with pytest.raises(RedbuttonError) as info:
        adjust_probe(recorded, {'name': 'app', 'path': '/srv/other'})
    assert 'path differs from the baseline' in str(info.value)
    assert 'capture a new baseline' in str(info.value)


def test_as_number():
    assert as_number('42') == 42 and as_number(' 4.5 ') > 4 and as_number(7) == 7
    assert as_number('abc') is None and as_number(None) is None and as_number(True) is None
    assert as_number('nan') is None


def test_mask_conninfo_hides_passwords():
    assert mask_conninfo('postgresql://app:s3cret@db/app') == 'postgresql://app:***@db/app'
    assert mask_conninfo("dbname=app password='a b' host=x") == 'dbname=app password=*** host=x'
    assert 's3cret' not in mask_conninfo('host=db password=s3cret')


@pytest.fixture
def sqlite_db(tmp_path):
    path = str(tmp_path / 'app.db')
    connection = sqlite3.connect(path)
    connection.execute('CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price NUMERIC)')
    connection.executemany('INSERT INTO items (name, price) VALUES (?, ?)', [('a', 1.5), ('b', 2), ('c', 3)])
    connection.commit()
    connection.close()
    return path


def sql_probe(database, query, **extra):
    return build_probe(normalize_probe(dict(name='q', sql=query, engine='sqlite', database=database, **extra), 'p'))


def test_sqlite_scalar(sqlite_db):
    assert sql_probe(sqlite_db, 'SELECT count(*) FROM items').measure(None) == {'value': 3}
    assert sql_probe(sqlite_db, "SELECT name FROM items WHERE id = 2").measure(None) == {'value': 'b'}


@pytest.mark.parametrize('query, fragment', [
    ('SELECT id, name FROM items WHERE id = 1', 'got 1 row(s) of 2 column(s)'),
    ('SELECT id FROM items', 'got more than one row(s)'),
    ('SELECT id FROM items WHERE id = 99', 'got 0 row(s)'),
    ('SELECT nope FROM items', 'query failed'),
    ("SELECT x'00ff'", 'binary data'),
])
def test_sqlite_query_must_return_one_value(sqlite_db, query, fragment):
    with pytest.raises(ProbeError) as info:
        sql_probe(sqlite_db, query).measure(None)
    assert fragment in str(info.value) and "probe 'q'" in str(info.value)


def test_sqlite_is_opened_read_only(sqlite_db):
    with pytest.raises(ProbeError) as info:
        sql_probe(sqlite_db, 'DELETE FROM items RETURNING 1').measure(None)
    assert 'readonly' in str(info.value)
    assert sql_probe(sqlite_db, 'SELECT count(*) FROM items').measure(None) == {'value': 3}


def test_sqlite_missing_database(tmp_path):
    missing = str(tmp_path / 'missing.db')
    with pytest.raises(ProbeError) as info:
        sql_probe(missing, 'SELECT 1').measure(None)
    assert 'does not exist' in str(info.value)
    assert not os.path.exists(missing)


def test_sql_compare_exact_and_no_loss(sqlite_db):
    exact = sql_probe(sqlite_db, 'SELECT count(*) FROM items')
    assert exact.compare({'value': 3}, {'value': 3}) == ([], [], [])
    assert exact.compare({'value': 3}, {'value': 4})[2][0]['found'] == {'value': 4}
    no_loss = sql_probe(sqlite_db, 'SELECT count(*) FROM items', compare='no_loss')
    assert no_loss.compare({'value': 3}, {'value': 4}) == ([], [], [])
    changed = no_loss.compare({'value': 3}, {'value': 2})[2]
    assert changed[0]['expected'] == {'value': 3} and 'lower' in changed[0]['note']


def test_sql_no_loss_refuses_text_at_capture(sqlite_db):
    probe = sql_probe(sqlite_db, "SELECT 'abc'", compare='no_loss')
    with pytest.raises(ProbeError) as info:
        probe.validate_result(probe.measure(None))
    assert 'no_loss needs a number' in str(info.value)


def test_postgresql_without_psycopg_says_what_to_install(monkeypatch):
    # None in sys.modules makes `import psycopg` fail as on a host without it.
    monkeypatch.setitem(sys.modules, 'psycopg', None)
    probe = build_probe(normalize_probe({'name': 'pg', 'sql': 'SELECT 1', 'engine': 'postgresql', 'database': 'dbname=x'}, 'p'))
    with pytest.raises(ProbeError) as info:
        probe.measure(None)
    assert 'psycopg' in str(info.value) and 'install' in str(info.value)


PG_DSN = os.environ.get('REDBUTTON_PG_DSN')
needs_pg = pytest.mark.skipif(not PG_DSN and not os.environ.get('REDBUTTON_REQUIRE_PG'),
                              reason='set REDBUTTON_PG_DSN (eval "$(scripts/postgres.sh)") to run PostgreSQL probes')


@pytest.fixture
def pg_table():
    psycopg = pytest.importorskip('psycopg')
    assert PG_DSN, 'REDBUTTON_REQUIRE_PG is set but REDBUTTON_PG_DSN is not'
    table = 'rb_baseline_%s' % uuid.uuid4().hex[:12]
    with psycopg.connect(PG_DSN, autocommit=True) as connection:
        connection.execute('CREATE TABLE %s (id serial PRIMARY KEY, amount numeric)' % table)
        connection.execute('INSERT INTO %s (amount) VALUES (1.25), (2), (3)' % table)
    yield table
    with psycopg.connect(PG_DSN, autocommit=True) as connection:
        connection.execute('DROP TABLE IF EXISTS %s' % table)


def pg_probe(query, **extra):
    return build_probe(normalize_probe(dict(name='pg', sql=query, engine='postgresql', database=PG_DSN, **extra), 'p'))


@pytest.mark.postgresql
@needs_pg
def test_postgresql_scalar_and_row_loss(pg_table):
    import psycopg
    probe = pg_probe('SELECT count(*) FROM %s' % pg_table, compare='no_loss')
    recorded = probe.measure(None)
    assert recorded == {'value': 3}
    assert pg_probe('SELECT sum(amount) FROM %s' % pg_table).measure(None) == {'value': '6.25'}
    with psycopg.connect(PG_DSN, autocommit=True) as connection:
        connection.execute('DELETE FROM %s WHERE id = 1' % pg_table)
    found = probe.measure(None)
    assert found == {'value': 2}
    assert probe.compare(recorded, found)[2][0]['attributes'] == ['value']


@pytest.mark.postgresql
@needs_pg
def test_postgresql_runs_read_only(pg_table):
    with pytest.raises(ProbeError) as info:
        pg_probe('DELETE FROM %s RETURNING 1' % pg_table).measure(None)
    assert 'read-only transaction' in str(info.value)
    assert pg_probe('SELECT count(*) FROM %s' % pg_table).measure(None) == {'value': 3}
