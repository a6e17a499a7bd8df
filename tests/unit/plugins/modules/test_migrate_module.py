# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""redbutton.deploy.migrate as Ansible runs it: argument handling, check and diff mode,
the four-run idempotence pattern, what a failure returns, secrets kept out of output."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import shutil
import sqlite3
import uuid

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.redbutton.deploy.plugins.modules import migrate as migrate_module
from ansible_collections.redbutton.deploy.plugins.module_utils import _migrate_postgresql

try:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo
except ImportError:  # pragma: no cover
    psycopg = None

PORTABLE = os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures', 'migrations', 'portable')


def call(capsys, args, check_mode=False, diff=False):
    with patch_module_args(dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)):
        with pytest.raises(SystemExit) as caught:
            migrate_module.main()
    return caught.value.code, json.loads(capsys.readouterr().out)


def history(database):
    with sqlite3.connect(database) as conn:
        return [r[0] for r in conn.execute('SELECT version FROM redbutton_schema_history ORDER BY version')]


@pytest.fixture
def pg_dsn():
    """A fresh PostgreSQL database (see tests/unit/plugins/module_utils/test_migrate.py)."""
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
    yield make_conninfo(**params)
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute('DROP DATABASE IF EXISTS %s WITH (FORCE)' % name)


def test_four_runs_check_real_check_real(capsys, tmp_path):
    database = str(tmp_path / 'app.db')
    args = dict(database=database, path=PORTABLE, root=str(tmp_path))
    rc, result = call(capsys, args, check_mode=True, diff=True)
    assert rc == 0 and result['changed'] and result['version_after'] == 10 and not os.path.exists(database)
    assert result['diff']['before'] == 'schema_version: 0\npending: [1, 2, 10]\n'
    assert result['diff']['after'] == 'schema_version: 10\npending: []\n'
    rc, result = call(capsys, args)
    assert rc == 0 and result['changed'] and [a['version'] for a in result['applied']] == [1, 2, 10]
    assert 'diff' not in result and history(database) == [1, 2, 10]
    assert sorted(os.listdir(str(tmp_path / '.redbutton' / 'migrations'))) == [
        '10_index_user_names.down.sql', '1_create_users.down.sql', '2_add_email.down.sql']
    rc, result = call(capsys, args, check_mode=True, diff=True)
    assert rc == 0 and not result['changed'] and result['diff']['before'] == result['diff']['after']
    rc, result = call(capsys, args)
    assert rc == 0 and not result['changed'] and result['applied'] == [] and result['version_before'] == 10


@pytest.mark.parametrize('target', [1, '1'])
def test_target_as_integer_or_string_goes_down(capsys, tmp_path, target):
    database = str(tmp_path / 'app.db')
    call(capsys, dict(database=database, path=PORTABLE))
    rc, result = call(capsys, dict(database=database, path=PORTABLE, target=target, allow_data_loss=True, backup=False))
    assert rc == 0 and result['changed'] and result['direction'] == 'down' and result['version_after'] == 1
    assert history(database) == [1]


def test_failure_returns_the_file_statement_and_version(capsys, tmp_path):
    path = tmp_path / 'migrations'
    shutil.copytree(PORTABLE, str(path))
    (path / '11_broken.up.sql').write_text('CREATE TABLE t (id INTEGER);\nINSERT INTO nowhere VALUES (1);\n')
    database = str(tmp_path / 'app.db')
    rc, result = call(capsys, dict(database=database, path=str(path)))
    assert rc == 1 and result['failed'] is True and result['changed'] is True
    assert '11_broken.up.sql line 2 (statement 2 of 2: INSERT INTO nowhere VALUES (1))' in result['msg']
    assert result['failure']['line'] == 2 and result['failure']['file'].endswith('11_broken.up.sql')
    assert result['version_after'] == 10 and [a['version'] for a in result['applied']] == [1, 2, 10]
    assert history(database) == [1, 2, 10]


def test_refusal_changes_nothing_and_says_what_to_set(capsys, tmp_path):
    database = str(tmp_path / 'app.db')
    call(capsys, dict(database=database, path=PORTABLE))
    rc, result = call(capsys, dict(database=database, path=PORTABLE, target=0))
    assert rc == 1 and result['changed'] is False
    assert 'allow_data_loss: true' in result['msg'] and len(result['data_loss']) == 2
    assert history(database) == [1, 2, 10]


def test_misnamed_sql_file_gives_a_warning(capsys, tmp_path):
    path = tmp_path / 'migrations'
    path.mkdir()
    (path / '1-init.up.sql').write_text('CREATE TABLE a (id INTEGER);')
    rc, result = call(capsys, dict(database=str(tmp_path / 'app.db'), path=str(path)))
    assert rc == 0 and not result['changed'] and result['ignored'] == ['1-init.up.sql']
    assert '1-init.up.sql' in json.dumps(result['warnings'])


def test_bad_input_is_refused_by_the_argument_spec_or_with_a_clear_message(capsys, tmp_path):
    rc, result = call(capsys, dict(database=str(tmp_path / 'a.db'), path=PORTABLE, engine='mysql'))
    assert rc == 1 and 'engine' in result['msg'] and 'mysql' in result['msg']
    rc, result = call(capsys, dict(database=str(tmp_path / 'a.db'), path=PORTABLE, target='newest'))
    assert rc == 1 and "target 'newest' is not valid" in result['msg']
    rc, result = call(capsys, dict(database=str(tmp_path / 'a.db'), path=PORTABLE, history_table='Bad Name'))
    assert rc == 1 and 'history_table' in result['msg']
    assert not os.path.exists(str(tmp_path / 'a.db'))


def test_missing_psycopg_is_reported_as_a_missing_library(capsys, monkeypatch):
    monkeypatch.setattr(_migrate_postgresql, 'HAS_PSYCOPG', False)
    rc, result = call(capsys, dict(engine='postgresql', database='dbname=x', path=PORTABLE))
    assert rc == 1 and 'psycopg' in result['msg'] and 'Failed to import the required Python library' in result['msg']


def test_postgresql_with_login_password_keeps_the_password_out_of_the_output(capsys, pg_dsn):
    params = conninfo_to_dict(pg_dsn)
    password = params.pop('password')
    dsn = make_conninfo(**params)
    rc, result = call(capsys, dict(engine='postgresql', database=dsn, login_password=password, path=PORTABLE), diff=True)
    assert rc == 0 and result['changed'] and result['version_after'] == 10
    assert password not in json.dumps(result['database'])
    assert result['diff']['after'] == 'schema_version: 10\npending: []\n'
    rc, result = call(capsys, dict(engine='postgresql', database=dsn, login_password=password, path=PORTABLE))
    assert rc == 0 and not result['changed']
    rc, result = call(capsys, dict(engine='postgresql', database=dsn, login_password='wrong', path=PORTABLE))
    assert rc == 1 and 'cannot connect to PostgreSQL database' in result['msg'] and 'wrong' not in result['msg']
