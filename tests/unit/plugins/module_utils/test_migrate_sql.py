# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The hand-written part of the migrate module: splitting SQL files into statements
(with their line numbers) and the detections built on it."""

import sqlite3

import pytest

from ansible_collections.redbutton.deploy.plugins.module_utils._migrate_sql import (
    SqlSyntaxError, find_drops, no_transaction_reason, split_statements)

BOTH = ['sqlite', 'postgresql']


def texts(sql, dialect):
    return [s.text for s in split_statements(sql, dialect)]


@pytest.mark.parametrize('dialect', BOTH)
def test_splits_on_semicolons_and_records_start_lines(dialect):
    sql = "-- header comment\nCREATE TABLE a (id int);\n\n  INSERT INTO a VALUES (1);\nSELECT 1"
    statements = split_statements(sql, dialect)
    assert [s.text for s in statements] == ['CREATE TABLE a (id int)', 'INSERT INTO a VALUES (1)', 'SELECT 1']
    assert [s.line for s in statements] == [2, 4, 5]


@pytest.mark.parametrize('dialect', BOTH)
def test_semicolons_inside_strings_identifiers_and_comments_do_not_split(dialect):
    sql = ("INSERT INTO t VALUES ('a;b', 'it''s; fine');\n"
           'CREATE TABLE "odd;name" (x int); -- trailing; comment\n'
           "/* block; comment\n over lines */ SELECT 2;")
    statements = split_statements(sql, dialect)
    assert [s.text for s in statements] == ["INSERT INTO t VALUES ('a;b', 'it''s; fine')", 'CREATE TABLE "odd;name" (x int)', 'SELECT 2']
    assert [s.line for s in statements] == [1, 2, 4]


@pytest.mark.parametrize('dialect', BOTH)
def test_empty_statements_and_comment_only_files_give_nothing(dialect):
    assert split_statements(';;\n-- only a comment\n/* and this */\n', dialect) == []


def test_postgresql_dollar_quoted_function_bodies_stay_whole():
    sql = ("CREATE FUNCTION touch() RETURNS trigger AS $$\nBEGIN\n  NEW.updated_at := now();\n  RETURN NEW;\nEND;\n$$ LANGUAGE plpgsql;\n"
           "DO $body$ BEGIN PERFORM 1; END $body$;\n"
           "SELECT $1;")
    statements = split_statements(sql, 'postgresql')
    assert len(statements) == 3
    assert statements[0].text.endswith('$$ LANGUAGE plpgsql')
    assert statements[1].line == 7 and statements[1].text == 'DO $body$ BEGIN PERFORM 1; END $body$'
    assert statements[2].line == 8


def test_postgresql_dollar_sign_inside_an_identifier_is_not_a_quote():
    assert texts('SELECT a$b$c FROM t; SELECT 2', 'postgresql') == ['SELECT a$b$c FROM t', 'SELECT 2']


def test_postgresql_escape_strings_and_nested_comments():
    sql = "SELECT E'it\\'s; here';\n/* outer /* inner; */ still comment; */ SELECT 2;"
    statements = split_statements(sql, 'postgresql')
    assert [s.text for s in statements] == ["SELECT E'it\\'s; here'", 'SELECT 2']
    assert statements[1].line == 2


def test_backslash_is_plain_in_standard_strings():
    # 'a\' is a complete string in both engines (standard_conforming_strings).
    for dialect in BOTH:
        assert texts("SELECT 'a\\'; SELECT 2", dialect) == ["SELECT 'a\\'", 'SELECT 2']


def test_postgresql_begin_atomic_body_is_one_statement():
    sql = ("CREATE OR REPLACE FUNCTION add(a int, b int) RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n"
           "  SELECT CASE WHEN a IS NULL THEN 0 ELSE a END + b;\nEND;\nSELECT 1;")
    statements = split_statements(sql, 'postgresql')
    assert len(statements) == 2
    assert statements[0].text.endswith('END')
    assert statements[1].line == 5


def test_postgresql_does_not_split_inside_parentheses():
    sql = 'CREATE RULE r AS ON INSERT TO a DO ALSO (INSERT INTO b VALUES (1); INSERT INTO c VALUES (2));\nSELECT 1;'
    statements = split_statements(sql, 'postgresql')
    assert len(statements) == 2
    assert statements[0].text.endswith('(2))')


def test_sqlite_trigger_body_is_one_statement():
    sql = ("CREATE TRIGGER users_touch AFTER UPDATE ON users\nBEGIN\n"
           "  UPDATE users SET updated_at = CURRENT_TIMESTAMP WHERE id = NEW.id;\n"
           "  INSERT INTO audit (what) VALUES ('touch;');\nEND;\nCREATE INDEX i ON users (name);")
    statements = split_statements(sql, 'sqlite')
    assert len(statements) == 2
    assert statements[0].text.endswith('END')
    assert statements[1].line == 6
    assert all(sqlite3.complete_statement(s.text + ';') for s in statements)


def test_sqlite_bracket_and_backtick_identifiers():
    assert texts('SELECT [a;b], `c;d` FROM t; SELECT 2', 'sqlite') == ['SELECT [a;b], `c;d` FROM t', 'SELECT 2']


@pytest.mark.parametrize('dialect,sql,line', [
    ('sqlite', "SELECT 1;\nSELECT 'never closed;\n", 2),
    ('postgresql', "SELECT 1;\n\nSELECT 'never closed;\n", 3),
    ('postgresql', "SELECT 1;\n/* open comment\n", 2),
    ('postgresql', 'SELECT $$ body;\n', 1),
    ('sqlite', 'SELECT "open ident;\n', 1),
])
def test_unterminated_quotes_and_comments_are_errors_with_their_line(dialect, sql, line):
    with pytest.raises(SqlSyntaxError) as info:
        split_statements(sql, dialect)
    assert info.value.line == line
    assert 'line %d' % line in str(info.value)


def test_code_has_comments_and_string_contents_removed():
    statement = split_statements("UPDATE t SET note = 'DROP TABLE x' -- DROP TABLE y\n WHERE id = 1", 'postgresql')[0]
    assert statement.code == "UPDATE t SET note = '' WHERE id = 1"


# -- how a file must run ---------------------------------------------------------------

def reason(sql, dialect):
    return no_transaction_reason(sql, split_statements(sql, dialect), dialect)


@pytest.mark.parametrize('dialect', BOTH)
def test_plain_ddl_runs_in_a_transaction(dialect):
    assert reason('CREATE TABLE a (id int);\nALTER TABLE a ADD COLUMN b text;\nSAVEPOINT s;\nROLLBACK TO SAVEPOINT s;', dialect) is None


@pytest.mark.parametrize('dialect', BOTH)
@pytest.mark.parametrize('control', ['BEGIN', 'BEGIN TRANSACTION', 'begin work', 'START TRANSACTION', 'COMMIT', 'END', 'ROLLBACK'])
def test_files_with_their_own_transaction_are_detected(dialect, control):
    why = reason('SELECT 1;\n%s;\nSELECT 2;' % control, dialect)
    assert why is not None and why.startswith('line 2:')


def test_sqlite_foreign_keys_pragma_means_self_managed():
    sql = 'PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\nCREATE TABLE n (id int);\nCOMMIT;\nPRAGMA foreign_keys=ON;'
    assert reason(sql, 'sqlite').startswith('line 1: PRAGMA foreign_keys=OFF')
    assert reason('VACUUM;', 'sqlite') is not None
    assert reason("ATTACH DATABASE 'x.db' AS x;", 'sqlite') is not None


@pytest.mark.parametrize('sql', [
    'CREATE INDEX CONCURRENTLY users_email ON users (email)',
    'create unique index concurrently u ON users (email)',
    'DROP INDEX CONCURRENTLY users_email',
    'REINDEX INDEX CONCURRENTLY users_email',
    'ALTER TYPE mood ADD VALUE \'meh\'',
    'CREATE DATABASE other',
    'VACUUM ANALYZE users',
    'ALTER SYSTEM SET work_mem = \'64MB\'',
])
def test_postgresql_statements_that_cannot_run_in_a_transaction(sql):
    why = reason('CREATE TABLE a (id int);\n' + sql + ';', 'postgresql')
    assert why is not None and why.startswith('line 2:')


def test_the_marker_comment_forces_no_transaction():
    for dialect in BOTH:
        assert 'marker' in reason('-- redbutton:no-transaction\nCREATE TABLE a (id int);', dialect)
    # Only as a comment line of its own, not inside a string.
    assert reason("INSERT INTO t VALUES ('-- redbutton:no-transaction');", 'postgresql') is None


def test_keywords_inside_strings_and_bodies_are_not_detected():
    sql = "INSERT INTO log VALUES ('COMMIT');\nDO $$ BEGIN COMMIT; END $$;\nCREATE FUNCTION f() RETURNS int AS 'VACUUM' LANGUAGE sql;"
    assert reason(sql, 'postgresql') is None


# -- data-loss detection ---------------------------------------------------------------------

def drops(sql, dialect='postgresql'):
    return [d.describe() for d in find_drops(split_statements(sql, dialect), dialect)]


def test_drop_table_and_drop_column_are_found():
    sql = ('DROP TABLE IF EXISTS users, "Audit", app.events CASCADE;\n'
           'ALTER TABLE ONLY public.users DROP COLUMN IF EXISTS email, DROP CONSTRAINT users_ck, ADD COLUMN x int, DROP "Nick";\n'
           'ALTER TABLE users DROP CONSTRAINT c;\nALTER TABLE users ALTER COLUMN name DROP NOT NULL;\nDROP INDEX users_name;')
    assert drops(sql) == ['table users', 'table Audit', 'table app.events', 'column public.users.email', 'column public.users.Nick']


def test_postgresql_folds_unquoted_names_sqlite_keeps_them():
    assert drops('DROP TABLE Users', 'postgresql') == ['table users']
    assert drops('DROP TABLE Users', 'sqlite') == ['table Users']
    assert drops('ALTER TABLE [Users] DROP COLUMN `Email`', 'sqlite') == ['column Users.Email']


def test_drop_in_strings_or_comments_is_not_a_drop():
    assert drops("-- DROP TABLE users\nINSERT INTO notes VALUES ('DROP TABLE users');") == []
