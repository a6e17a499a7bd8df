# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The SQLite backend of the migrate module: Python's sqlite3, nothing else."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fcntl
import os
import sqlite3
import tempfile
import time

from ansible_collections.redbutton.deploy.plugins.module_utils._common import RedbuttonError, utcnow
from ansible_collections.redbutton.deploy.plugins.module_utils._migrate_backend import Backend, HISTORY_COLUMNS, quote_ident

try:
    from urllib.parse import quote as _url_quote
except ImportError:  # pragma: no cover - Python 2 is not supported on the module side
    _url_quote = None

LOCK_SUFFIX = '.redbutton-lock'
POLL_SECONDS = 0.1


class SqliteBackend(Backend):
    """A SQLite database file. Autocommit connection; the Migrator opens transactions
    with BEGIN IMMEDIATE so a concurrent writer waits instead of interleaving."""

    engine = 'sqlite'
    errors = (sqlite3.Error, sqlite3.Warning)

    def __init__(self, database, history_table, run_command, password=None):
        super(SqliteBackend, self).__init__(database, history_table, run_command, password)
        self._lock_fd = None

    def backup_label(self):
        return os.path.splitext(os.path.basename(self.database))[0] or 'sqlite'

    @staticmethod
    def backup_suffix():
        return '.sqlite'

    # -- connection ---------------------------------------------------------------
    def _check_path(self):
        path = self.database
        if not isinstance(path, str) or not os.path.isabs(path):
            raise RedbuttonError(
                'database %r is not an absolute path: for engine sqlite give the full path of the '
                'database file, for example /srv/myapp/shared/app.db' % (path,))
        if os.path.isdir(path):
            raise RedbuttonError('database %s is a directory: give the path of the SQLite database file' % path)
        if not os.path.isdir(os.path.dirname(path)):
            raise RedbuttonError(
                'the directory of database %s does not exist: create %s first (for example in shared/), '
                'or correct the path' % (path, os.path.dirname(path)))

    def connect(self, read_only):
        self._check_path()
        self.read_only = read_only
        try:
            if read_only and not os.path.exists(self.database):
                # Check mode must not create the file: an empty in-memory database answers
                # every question the same way a new file would.
                self.conn = sqlite3.connect(':memory:', isolation_level=None)
            elif read_only:
                uri = 'file:%s?mode=ro' % _url_quote(self.database)
                self.conn = sqlite3.connect(uri, uri=True, isolation_level=None)
            else:
                self.conn = sqlite3.connect(self.database, isolation_level=None, timeout=30)
            self.conn.execute('SELECT count(*) FROM sqlite_master').fetchone()
        except sqlite3.Error as exc:
            self.close()
            raise RedbuttonError('cannot open SQLite database %s: %s: check that it is a SQLite database file '
                                 'and that the user running the module may %s it'
                                 % (self.database, exc, 'read' if read_only else 'write'))

    def close(self):
        if self.conn is not None:
            try:
                if self.conn.in_transaction:
                    self.conn.execute('ROLLBACK')
            except sqlite3.Error:
                pass
            self.conn.close()
            self.conn = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def lock(self, timeout):
        """An exclusive flock on <database>.redbutton-lock, so two runs never interleave
        (SQLite's own locks only cover one transaction at a time)."""
        path = self.database + LOCK_SUFFIX
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.time() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except (IOError, OSError) as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
                if time.time() >= deadline:
                    os.close(fd)
                    raise RedbuttonError(
                        'another migrate run holds %s (waited %s s): wait for it to finish and retry, '
                        'or raise lock_timeout' % (path, timeout))
                time.sleep(POLL_SECONDS)
        self._lock_fd = fd

    def begin(self):
        self.conn.execute('BEGIN IMMEDIATE')

    def rollback(self):
        if self.conn is not None and self.conn.in_transaction:
            self.conn.execute('ROLLBACK')

    def execute(self, sql):
        # Close the cursor at once: a SELECT left open would hold its statement (and lock) until garbage collection.
        self.conn.execute(sql).close()

    # -- history -------------------------------------------------------------------
    def history_exists(self):
        row = self.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (self.history_table,)).fetchone()
        return row is not None

    def create_history(self):
        self.conn.execute(
            'CREATE TABLE IF NOT EXISTS %s ('
            'version INTEGER PRIMARY KEY, '
            'title TEXT NOT NULL, '
            'up_checksum TEXT NOT NULL, '
            'down_checksum TEXT, '
            'down_script TEXT, '
            'no_transaction INTEGER NOT NULL DEFAULT 0, '
            'applied_at TEXT NOT NULL)' % self.table)

    def read_history(self):
        if not self.history_exists():
            return {}
        columns = [row[1] for row in self.conn.execute('PRAGMA table_info(%s)' % self.table)]
        self._check_history_columns(columns)
        rows = self.conn.execute('SELECT %s FROM %s ORDER BY version' % (', '.join(HISTORY_COLUMNS), self.table)).fetchall()
        history = {}
        for row in rows:
            entry = dict(zip(HISTORY_COLUMNS, row))
            entry['no_transaction'] = bool(entry['no_transaction'])
            history[int(entry['version'])] = entry
        return history

    def insert_history(self, version, title, up_checksum, down_checksum, down_script, no_transaction):
        self.conn.execute(
            'INSERT INTO %s (%s) VALUES (?, ?, ?, ?, ?, ?, ?)' % (self.table, ', '.join(HISTORY_COLUMNS)),
            (version, title, up_checksum, down_checksum, down_script, 1 if no_transaction else 0, utcnow()))

    def delete_history(self, version):
        self.conn.execute('DELETE FROM %s WHERE version = ?' % self.table, (version,))

    # -- data-loss guard ---------------------------------------------------------------
    def _find_table(self, schema, table):
        """(reference to use in SQL, pragma prefix, real name) or None if there is no such table."""
        prefix = quote_ident(schema) + '.' if schema else ''
        try:
            row = self.conn.execute("SELECT name FROM %ssqlite_master WHERE type = 'table' AND name = ? COLLATE NOCASE" % prefix,
                                    (table,)).fetchone()
        except sqlite3.Error:
            return None
        if row is None:
            return None
        return prefix + quote_ident(row[0]), prefix, row[0]

    def table_has_rows(self, schema, table):
        found = self._find_table(schema, table)
        if found is None:
            return None
        return bool(self.conn.execute('SELECT EXISTS (SELECT 1 FROM %s)' % found[0]).fetchone()[0])

    def column_has_data(self, schema, table, column):
        found = self._find_table(schema, table)
        if found is None:
            return None
        ref, prefix, name = found
        names = [row[1] for row in self.conn.execute('PRAGMA %stable_info(%s)' % (prefix, quote_ident(name)))]
        match = [n for n in names if n.lower() == column.lower()]
        if not match:
            return None
        return bool(self.conn.execute('SELECT EXISTS (SELECT 1 FROM %s WHERE %s IS NOT NULL)' % (ref, quote_ident(match[0]))).fetchone()[0])

    # -- rehearsal ---------------------------------------------------------------------
    def schema_dump(self):
        """Tables as their columns, keys and indexes (PRAGMA, column order ignored);
        indexes, views and triggers as their whitespace-normalised SQL."""
        lines = []
        objects = self.conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name").fetchall()
        for kind, name, table, sql in objects:
            if name == self.history_table or table == self.history_table:
                continue
            if kind != 'table':
                lines.append('%s %s on %s: %s' % (kind, name, table, ' '.join((sql or '(automatic)').split())))
                continue
            ref = quote_ident(name)
            lines.append('table %s' % name)
            for row in self.conn.execute('PRAGMA table_xinfo(%s)' % ref):
                lines.append('column %s.%s type=%s notnull=%s default=%s pk=%s hidden=%s' % (name, row[1], row[2], row[3], row[4], row[5], row[6]))
            for row in self.conn.execute('PRAGMA foreign_key_list(%s)' % ref):
                lines.append('foreign key %s.%s -> %s.%s on update %s on delete %s' % (name, row[3], row[2], row[4], row[5], row[6]))
            for row in self.conn.execute('PRAGMA index_list(%s)' % ref):
                cols = [c[2] for c in self.conn.execute('PRAGMA index_info(%s)' % quote_ident(row[1]))]
                index_name = row[1] if row[3] == 'c' else '(%s)' % row[3]
                lines.append('index %s on %s(%s) unique=%s partial=%s' % (index_name, name, ', '.join(str(c) for c in cols), row[2], row[4]))
        return sorted(lines)

    # -- backup --------------------------------------------------------------------------
    def backup(self, path):
        """A consistent copy through SQLite's online backup API, written atomically."""
        directory = os.path.dirname(path)
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o700)
        fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), suffix='.tmp', dir=directory)
        os.close(fd)
        try:
            target = sqlite3.connect(tmp)
            try:
                self.conn.backup(target)
            finally:
                target.close()
            os.chmod(tmp, 0o600)
            os.rename(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return path
