# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SQL text handling for the migrate module: splitting a migration file into statements
(so a failure can name the statement and its line), and the detections that decide how
a file runs (inside one transaction or as-is) and whether a down script can lose data.

Neither sqlite3 nor psycopg splits a script into statements and says where each one
starts, so this is the small part written by hand. It knows the lexical rules that
matter for finding a statement's end: '...' strings (E'...' with backslash escapes in
PostgreSQL), "..." identifiers (and `...`, [...] in SQLite), -- and /* */ comments
(nested in PostgreSQL), PostgreSQL $tag$ dollar quoting, PostgreSQL's
CREATE FUNCTION/PROCEDURE ... BEGIN ATOMIC ... END bodies (the rule psql uses) and,
for SQLite, whatever sqlite3.complete_statement says (trigger bodies).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import sqlite3

SQLITE = 'sqlite'
POSTGRESQL = 'postgresql'
DIALECTS = (SQLITE, POSTGRESQL)

# The documented marker: a comment line that makes the whole file run without a transaction.
NO_TRANSACTION_MARKER = 'redbutton:no-transaction'
_MARKER_RE = re.compile(r'^[ \t]*--[ \t]*redbutton:no-transaction[ \t]*$', re.IGNORECASE | re.MULTILINE)

_IDENT_CHARS = re.compile(r'[A-Za-z0-9_$\u0080-\uffff]')
_DOLLAR_TAG_RE = re.compile(r'\$(?:[A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$')
_QUOTED_IDENT_RE = re.compile(r'"(?:[^"]|"")*"')
_ATOMIC_BODY_START_RE = re.compile(r'^CREATE\s+(?:OR\s+REPLACE\s+)?(?:FUNCTION|PROCEDURE)\b', re.IGNORECASE)
_BLOCK_WORD_RE = re.compile(r'\b(BEGIN|CASE|END)\b', re.IGNORECASE)


class SqlSyntaxError(Exception):
    """The file cannot be split: an unterminated string, identifier, comment or dollar quote."""

    def __init__(self, what, line):
        super(SqlSyntaxError, self).__init__('%s starting at line %d is never closed' % (what, line))
        self.line = line


class Statement(object):
    """One statement of a migration file.

    text: the statement as written (from its first token to before its ';').
    line: the line of the file where it starts (1-based).
    code: the statement with comments removed, string literals and dollar-quoted
          bodies replaced by '' and whitespace collapsed: what detections look at.
    """

    __slots__ = ('text', 'line', 'code')

    def __init__(self, text, line, code):
        self.text = text
        self.line = line
        self.code = code

    @property
    def upper(self):
        return self.code.upper()

    def short(self, width=120):
        """The statement on one line, shortened for error messages."""
        flat = ' '.join(self.text.split())
        return flat if len(flat) <= width else flat[:width - 3] + '...'

    def __repr__(self):
        return 'Statement(line=%d, %r)' % (self.line, self.short(60))


class _Splitter(object):
    """A single pass over the text; split() returns the statements."""

    def __init__(self, sql, dialect):
        if dialect not in DIALECTS:
            raise ValueError('unknown SQL dialect %r' % (dialect,))
        self.sql = sql
        self.dialect = dialect
        self.statements = []
        self.line = 1
        self._start = None
        self._start_line = None
        self._code = []

    def split(self):
        sql = self.sql
        n = len(sql)
        i = 0
        while i < n:
            c = sql[i]
            if c == '\n':
                self.line += 1
                self._code.append(' ')
                i += 1
            elif c.isspace():
                self._code.append(' ')
                i += 1
            elif c == '-' and sql.startswith('--', i):
                end = sql.find('\n', i)
                i = n if end < 0 else end
                self._code.append(' ')
            elif c == '/' and sql.startswith('/*', i):
                i = self._skip_block_comment(i)
                self._code.append(' ')
            else:
                if self._start is None:
                    self._start = i
                    self._start_line = self.line
                if c == ';':
                    if self._ends_here(i):
                        self._emit(i)
                    else:
                        self._code.append(';')
                    i += 1
                elif c == "'":
                    i = self._skip_string(i)
                    self._code.append("''")
                elif c == '"':
                    i = self._skip_quoted(i, '"', '"', 'quoted identifier', keep=True)
                elif c in '`[' and self.dialect == SQLITE:
                    i = self._skip_quoted(i, c, '`' if c == '`' else ']', 'quoted identifier', keep=True)
                elif c == '$' and self.dialect == POSTGRESQL and self._dollar_tag(i):
                    i = self._skip_dollar(i)
                    self._code.append("''")
                else:
                    self._code.append(c)
                    i += 1
        if self._start is not None:
            self._emit(n)
        return self.statements

    def _emit(self, end):
        text = self.sql[self._start:end].strip()
        code = ' '.join(''.join(self._code).split())
        if code:
            self.statements.append(Statement(text, self._start_line, code))
        self._start = None
        self._start_line = None
        self._code = []

    def _ends_here(self, i):
        if self.dialect == SQLITE:
            # sqlite3 knows where a trigger body ends (BEGIN ... END;).
            return sqlite3.complete_statement(self.sql[self._start:i + 1])
        code = _QUOTED_IDENT_RE.sub(' ', ''.join(self._code))
        if code.count('(') > code.count(')'):
            # psql does not split inside parentheses: CREATE RULE ... DO ALSO (a; b).
            return False
        if not _ATOMIC_BODY_START_RE.match(code.lstrip()):
            return True
        # psql's rule for SQL-standard bodies: BEGIN and CASE open, END closes.
        depth = 0
        for word in _BLOCK_WORD_RE.findall(code):
            depth += -1 if word.upper() == 'END' else 1
        return depth <= 0

    def _skip_block_comment(self, i):
        sql = self.sql
        start_line = self.line
        depth = 0
        j = i
        while j < len(sql):
            if sql.startswith('/*', j):
                depth = depth + 1 if self.dialect == POSTGRESQL else 1
                j += 2
            elif sql.startswith('*/', j):
                depth -= 1
                j += 2
                if depth == 0:
                    return j
            else:
                if sql[j] == '\n':
                    self.line += 1
                j += 1
        raise SqlSyntaxError('a /* comment', start_line)

    def _skip_string(self, i):
        sql = self.sql
        start_line = self.line
        backslash = (self.dialect == POSTGRESQL and i > 0 and sql[i - 1] in 'eE'
                     and (i < 2 or not _IDENT_CHARS.match(sql[i - 2])))
        j = i + 1
        while j < len(sql):
            ch = sql[j]
            if ch == '\n':
                self.line += 1
            if backslash and ch == '\\':
                if j + 1 < len(sql) and sql[j + 1] == '\n':
                    self.line += 1
                j += 2
                continue
            if ch == "'":
                if sql.startswith("''", j):
                    j += 2
                    continue
                return j + 1
            j += 1
        raise SqlSyntaxError("a ' string", start_line)

    def _skip_quoted(self, i, opening, closing, what, keep):
        sql = self.sql
        start_line = self.line
        j = i + 1
        while j < len(sql):
            ch = sql[j]
            if ch == '\n':
                self.line += 1
            if ch == closing:
                if closing != ']' and sql.startswith(closing * 2, j):
                    j += 2
                    continue
                if keep:
                    self._code.append(sql[i:j + 1])
                return j + 1
            j += 1
        raise SqlSyntaxError('a %s %s' % (opening, what), start_line)

    def _dollar_tag(self, i):
        if i > 0 and _IDENT_CHARS.match(self.sql[i - 1]):
            return None
        match = _DOLLAR_TAG_RE.match(self.sql, i)
        return match.group(0) if match else None

    def _skip_dollar(self, i):
        tag = self._dollar_tag(i)
        end = self.sql.find(tag, i + len(tag))
        if end < 0:
            raise SqlSyntaxError('a %s dollar quote' % tag, self.line)
        self.line += self.sql.count('\n', i, end)
        return end + len(tag)


def split_statements(sql, dialect):
    """Split a script into Statement objects (empty statements and comments dropped).

    Raises SqlSyntaxError for an unterminated string, identifier, comment or dollar quote.
    """
    return _Splitter(sql, dialect).split()


# ---------------------------------------------------------------------------
# How a file must run
# ---------------------------------------------------------------------------

# Statements that start, end or abandon a transaction: the file manages its own.
_TX_CONTROL_RE = re.compile(
    r'^(?:BEGIN(?:\s+(?:WORK|TRANSACTION|DEFERRED|IMMEDIATE|EXCLUSIVE|ISOLATION|READ|NOT|DEFERRABLE)\b.*)?'
    r'|START\s+TRANSACTION\b.*|COMMIT\b.*|END(?:\s+(?:WORK|TRANSACTION))?|ROLLBACK(?!\s+(?:WORK\s+|TRANSACTION\s+)?TO\b).*'
    r'|ABORT\b.*|PREPARE\s+TRANSACTION\b.*)$')

# Statements that cannot run inside a transaction block.
_NO_TX_RULES = {
    SQLITE: [
        (re.compile(r'^PRAGMA\s+(?:\w+\.)?(?:FOREIGN_KEYS|JOURNAL_MODE)\b'), 'has no effect inside a transaction'),
        (re.compile(r'^VACUUM\b'), 'cannot run inside a transaction'),
        (re.compile(r'^(?:ATTACH|DETACH)\b'), 'cannot run inside a transaction'),
    ],
    POSTGRESQL: [
        (re.compile(r'^(?:CREATE\s+(?:UNIQUE\s+)?INDEX|DROP\s+INDEX)\s+CONCURRENTLY\b'), 'cannot run inside a transaction'),
        (re.compile(r'^REINDEX\b.*\b(?:CONCURRENTLY|DATABASE|SYSTEM|SCHEMA)\b'), 'cannot run inside a transaction'),
        (re.compile(r'^ALTER\s+TABLE\b.*\bDETACH\s+PARTITION\b.*\bCONCURRENTLY\b'), 'cannot run inside a transaction'),
        (re.compile(r'^(?:CREATE|DROP)\s+(?:DATABASE|TABLESPACE|SUBSCRIPTION)\b'), 'cannot run inside a transaction'),
        (re.compile(r'^ALTER\s+SYSTEM\b'), 'cannot run inside a transaction'),
        (re.compile(r'^VACUUM\b'), 'cannot run inside a transaction'),
        (re.compile(r'^CLUSTER$'), 'cannot run inside a transaction'),
        (re.compile(r'^ALTER\s+TYPE\s+\S+\s+ADD\s+VALUE\b'),
         'cannot run inside a transaction before PostgreSQL 12, and the new value cannot be used in the same transaction after'),
    ],
}


def no_transaction_reason(text, statements, dialect):
    """Why this file must run as-is, statement by statement in autocommit; None if it can
    run inside one transaction. The reason names the line, for the module's output."""
    if _MARKER_RE.search(text):
        return 'marker comment "-- %s"' % NO_TRANSACTION_MARKER
    for statement in statements:
        upper = statement.upper
        if _TX_CONTROL_RE.match(upper):
            return 'line %d: %s manages its own transaction' % (statement.line, upper.split()[0])
        for pattern, why in _NO_TX_RULES[dialect]:
            if pattern.match(upper):
                return 'line %d: %s %s' % (statement.line, statement.short(60), why)
    return None


# ---------------------------------------------------------------------------
# Data-loss detection in down scripts
# ---------------------------------------------------------------------------

_IDENT = r'(?:"(?:[^"]|"")+"|`[^`]+`|\[[^\]]+\]|[A-Za-z_\u0080-\uffff][A-Za-z0-9_$\u0080-\uffff]*)'
_NAME = r'%s(?:\s*\.\s*%s)?' % (_IDENT, _IDENT)
_DROP_TABLE_RE = re.compile(r'^DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?(%s(?:\s*,\s*%s)*)(?:\s+(?:CASCADE|RESTRICT))?$' % (_NAME, _NAME),
                            re.IGNORECASE)
_ALTER_TABLE_RE = re.compile(r'^ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?(%s)\s*\*?\s+(.*)$' % _NAME, re.IGNORECASE)
_DROP_COLUMN_RE = re.compile(r'^DROP\s+(?:(COLUMN)\s+)?(?:IF\s+EXISTS\s+)?(%s)(?:\s+(?:CASCADE|RESTRICT))?$' % _IDENT,
                             re.IGNORECASE)
_NOT_COLUMNS = ('CONSTRAINT', 'DEFAULT', 'NOT', 'IDENTITY', 'EXPRESSION')


def _unquote(ident, dialect):
    if ident[0] == '"':
        return ident[1:-1].replace('""', '"')
    if ident[0] in '`[':
        return ident[1:-1]
    # PostgreSQL folds unquoted names to lower case; SQLite compares them case-insensitively.
    return ident.lower() if dialect == POSTGRESQL else ident


def _split_name(name, dialect):
    parts = re.findall(_IDENT, name)
    parts = [_unquote(p, dialect) for p in parts]
    return (None, parts[0]) if len(parts) == 1 else (parts[0], parts[1])


def _split_top_level(text, sep=','):
    parts, depth, current = [], 0, []
    for ch in text:
        if ch == '(':
            depth += 1
        elif ch == ')':
            depth -= 1
        if ch == sep and depth == 0:
            parts.append(''.join(current).strip())
            current = []
        else:
            current.append(ch)
    parts.append(''.join(current).strip())
    return parts


class Drop(object):
    """A DROP TABLE or ALTER TABLE ... DROP COLUMN found in a script."""

    __slots__ = ('schema', 'table', 'column', 'statement')

    def __init__(self, schema, table, column, statement):
        self.schema = schema
        self.table = table
        self.column = column
        self.statement = statement

    def describe(self):
        table = '%s.%s' % (self.schema, self.table) if self.schema else self.table
        return 'column %s.%s' % (table, self.column) if self.column else 'table %s' % table


def find_drops(statements, dialect):
    """The tables and columns the statements drop (DROP TABLE, ALTER TABLE ... DROP [COLUMN])."""
    drops = []
    for statement in statements:
        code = statement.code
        match = _DROP_TABLE_RE.match(code)
        if match:
            for name in _split_top_level(match.group(1)):
                schema, table = _split_name(name, dialect)
                drops.append(Drop(schema, table, None, statement))
            continue
        match = _ALTER_TABLE_RE.match(code)
        if not match:
            continue
        schema, table = _split_name(match.group(1), dialect)
        for action in _split_top_level(match.group(2)):
            drop = _DROP_COLUMN_RE.match(action)
            if drop and (drop.group(1) or drop.group(2).upper() not in _NOT_COLUMNS):
                drops.append(Drop(schema, table, _unquote(drop.group(2), dialect), statement))
    return drops
