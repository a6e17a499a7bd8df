# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every migrate backend (one per database engine) provides to the Migrator.

A backend owns the connection and knows its engine's SQL: the history table, locking,
transactions, the schema dump used by rehearsals, row checks for the data-loss guard
and backups. The Migrator decides what runs; the backend runs it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.redbutton.deploy.plugins.module_utils._common import RedbuttonError

HISTORY_TABLE_RE = re.compile(r'^[a-z_][a-z0-9_]{0,62}$')
DEFAULT_HISTORY_TABLE = 'redbutton_schema_history'
HISTORY_COLUMNS = ('version', 'title', 'up_checksum', 'down_checksum', 'down_script', 'no_transaction', 'applied_at')


def validate_history_table(name):
    if not isinstance(name, str) or not HISTORY_TABLE_RE.match(name):
        raise RedbuttonError(
            'history_table %r is not valid: use 1 to 63 lower-case letters, digits and _ '
            '(starting with a letter or _), for example %s' % (name, DEFAULT_HISTORY_TABLE))
    return name


def quote_ident(name):
    """Quote an identifier the SQL-standard way (both engines accept it)."""
    return '"%s"' % name.replace('"', '""')


class Backend(object):
    """Base class; subclasses implement the engine specifics.

    Life cycle: connect(read_only) -> [lock(timeout)] -> ... -> close(). In read-only
    mode (check mode) the backend must not create or change anything, not even the
    database file or the history table.
    """

    engine = None
    errors = ()

    def __init__(self, database, history_table, run_command, password=None):
        self.database = database
        self.history_table = validate_history_table(history_table)
        self.run_command = run_command
        self.password = password
        self.conn = None
        self.read_only = True

    @property
    def table(self):
        return quote_ident(self.history_table)

    # -- identity ------------------------------------------------------------
    def display_name(self):
        """The database as it may appear in messages (never with a password)."""
        return self.database

    def backup_label(self):
        """A short name for the database, used in backup file names."""
        raise NotImplementedError

    # -- connection, lock, transactions --------------------------------------
    def connect(self, read_only):
        raise NotImplementedError

    def close(self):
        raise NotImplementedError

    def lock(self, timeout):
        raise NotImplementedError

    def begin(self):
        raise NotImplementedError

    def commit(self):
        self.execute('COMMIT')

    def rollback(self):
        """Roll back the open transaction, if any (also one a script opened itself)."""
        raise NotImplementedError

    def execute(self, sql):
        raise NotImplementedError

    def error_text(self, exc):
        """(message, offset) of a database error; offset is the 1-based character in the
        statement where the server located the error, or None."""
        return (str(exc).strip() or exc.__class__.__name__), None

    # -- history ---------------------------------------------------------------
    def history_exists(self):
        raise NotImplementedError

    def create_history(self):
        raise NotImplementedError

    def read_history(self):
        """{version: row dict with HISTORY_COLUMNS}; empty when the table does not exist."""
        raise NotImplementedError

    def insert_history(self, version, title, up_checksum, down_checksum, down_script, no_transaction):
        raise NotImplementedError

    def delete_history(self, version):
        raise NotImplementedError

    def _check_history_columns(self, columns):
        missing = [c for c in HISTORY_COLUMNS if c not in columns]
        if missing:
            raise RedbuttonError(
                'table %s in %s exists but is not a redbutton migration history table (it has no column %s): '
                'choose another history_table, or rename that table' % (self.history_table, self.display_name(), ', '.join(missing)))

    # -- data-loss guard, rehearsal, backup -------------------------------------
    def table_has_rows(self, schema, table):
        """True/False, or None when the table does not exist."""
        raise NotImplementedError

    def column_has_data(self, schema, table, column):
        """True when a row has a non-NULL value in the column; None when it does not exist."""
        raise NotImplementedError

    def schema_dump(self):
        """Sorted list of lines describing the schema, without the history table."""
        raise NotImplementedError

    def check_backup(self):
        """Raise RedbuttonError, before anything runs, when backup() cannot work."""

    def backup(self, path):
        """Write a full backup of the database to path (atomically); return path."""
        raise NotImplementedError

    @staticmethod
    def backup_suffix():
        raise NotImplementedError
