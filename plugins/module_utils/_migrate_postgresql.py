# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The PostgreSQL backend of the migrate module: psycopg 3 on the target host,
pg_dump (postgresql-client) for backups."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import shutil
import tempfile
import time
import traceback

from ansible_collections.redbutton.deploy.plugins.module_utils._common import RedbuttonError
from ansible_collections.redbutton.deploy.plugins.module_utils._migrate_backend import Backend, HISTORY_COLUMNS, quote_ident

try:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo
    from psycopg.pq import TransactionStatus
    HAS_PSYCOPG = True
    PSYCOPG_IMPORT_ERROR = None
    _ERRORS = (psycopg.Error,)
except ImportError:
    HAS_PSYCOPG = False
    PSYCOPG_IMPORT_ERROR = traceback.format_exc()
    _ERRORS = ()

POLL_SECONDS = 0.2
SYSTEM_SCHEMAS = "('pg_catalog', 'information_schema')"
_USER_NAMESPACE = ("n.nspname NOT IN %s AND n.nspname NOT LIKE 'pg_toast%%' AND n.nspname NOT LIKE 'pg_temp_%%'"
                   % SYSTEM_SCHEMAS)
_NOT_EXTENSION_MEMBER = ("NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '%s'::regclass "
                         "AND d.objid = %s AND d.deptype = 'e')")


def advisory_lock_key(history_table):
    """The fixed 64-bit advisory lock key of a history table (same for every run)."""
    digest = hashlib.sha256(('redbutton.deploy.migrate:%s' % history_table).encode('utf-8')).digest()
    key = int.from_bytes(digest[:8], 'big')
    return key - (1 << 64) if key >= (1 << 63) else key


class PostgresBackend(Backend):
    """A PostgreSQL database reached with a libpq connection string or URI.

    One autocommit connection: the Migrator sends BEGIN/COMMIT itself, so files that
    manage their own transaction or must run outside one can run as they are. The
    session-level advisory lock survives those commits."""

    engine = 'postgresql'
    errors = _ERRORS

    def __init__(self, database, history_table, run_command, password=None):
        super(PostgresBackend, self).__init__(database, history_table, run_command, password)
        self._locked = False

    # -- identity -----------------------------------------------------------------
    def _params(self):
        try:
            return conninfo_to_dict(self.database or '')
        except psycopg.ProgrammingError as exc:
            raise RedbuttonError('database is not a valid PostgreSQL connection string (%s): use a libpq '
                                 'key=value string or a postgresql:// URI, for example '
                                 'postgresql://app@db.example.com/app' % str(exc).split('\n', maxsplit=1)[0])

    def display_name(self):
        params = self._params()
        params.pop('password', None)
        return make_conninfo(**params) or '(libpq defaults)'

    def backup_label(self):
        return self.conn.info.dbname if self.conn is not None else 'postgresql'

    @staticmethod
    def backup_suffix():
        return '.dump'

    # -- connection -------------------------------------------------------------------
    def connect(self, read_only):
        params = self._params()
        kwargs = dict(autocommit=True)
        if self.password:
            kwargs['password'] = self.password
        if 'application_name' not in params:
            kwargs['application_name'] = 'redbutton.deploy migrate'
        if 'connect_timeout' not in params:
            kwargs['connect_timeout'] = 10
        try:
            self.conn = psycopg.connect(self.database or '', **kwargs)
        except psycopg.Error as exc:
            raise RedbuttonError('cannot connect to PostgreSQL database %s: %s: check database (connection string), '
                                 'login_password and that the server accepts this client'
                                 % (self.display_name(), str(exc).strip()))
        self.read_only = read_only
        if read_only:
            # Check mode: the server itself refuses any write this run could attempt.
            self.conn.execute('SET default_transaction_read_only = on')

    def close(self):
        if self.conn is not None:
            try:
                self.rollback()
                if self._locked:
                    self.conn.execute('SELECT pg_advisory_unlock(%s)', (advisory_lock_key(self.history_table),))
            except psycopg.Error:
                pass
            self._locked = False
            self.conn.close()
            self.conn = None

    def lock(self, timeout):
        """pg_try_advisory_lock on the history table's key, polled until timeout."""
        key = advisory_lock_key(self.history_table)
        deadline = time.time() + timeout
        while True:
            if self.conn.execute('SELECT pg_try_advisory_lock(%s)', (key,)).fetchone()[0]:
                self._locked = True
                return
            if time.time() >= deadline:
                raise RedbuttonError(
                    'another migrate run holds the advisory lock of %s in %s (%s; waited %s s): wait for it to '
                    'finish and retry, or raise lock_timeout' % (self.history_table, self.display_name(), self._holder(key), timeout))
            time.sleep(POLL_SECONDS)

    def _holder(self, key):
        unsigned = key & 0xffffffffffffffff
        row = self.conn.execute(
            "SELECT a.pid, a.application_name, a.client_addr::text, a.backend_start::text FROM pg_locks l "
            "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
            "AND l.classid::bigint = %s AND l.objid::bigint = %s AND l.objsubid = 1 AND l.database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database())",
            (unsigned >> 32, unsigned & 0xffffffff)).fetchone()
        if row is None:
            return 'holder unknown'
        return 'held by backend pid %s, application %r, client %s, connected since %s' % (row[0], row[1], row[2] or 'local socket', row[3])

    def begin(self):
        self.conn.execute('BEGIN')

    def rollback(self):
        if self.conn is not None and self.conn.info.transaction_status != TransactionStatus.IDLE:
            self.conn.execute('ROLLBACK')

    def execute(self, sql):
        self.conn.execute(sql)

    def error_text(self, exc):
        message = (getattr(exc.diag, 'message_primary', None) or str(exc)).strip()
        sqlstate = getattr(exc, 'sqlstate', None)
        detail = getattr(exc.diag, 'message_detail', None)
        hint = getattr(exc.diag, 'message_hint', None)
        if sqlstate:
            message = '%s (SQLSTATE %s)' % (message, sqlstate)
        if detail:
            message += '; detail: %s' % detail.strip()
        if hint:
            message += '; hint: %s' % hint.strip()
        position = getattr(exc.diag, 'statement_position', None)
        return message, int(position) if position else None

    # -- history ------------------------------------------------------------------------
    def history_exists(self):
        return self.conn.execute('SELECT to_regclass(%s)', (self.table,)).fetchone()[0] is not None

    def create_history(self):
        self.conn.execute(
            'CREATE TABLE IF NOT EXISTS %s ('
            'version BIGINT PRIMARY KEY, '
            'title TEXT NOT NULL, '
            'up_checksum TEXT NOT NULL, '
            'down_checksum TEXT, '
            'down_script TEXT, '
            'no_transaction BOOLEAN NOT NULL DEFAULT FALSE, '
            'applied_at TIMESTAMPTZ NOT NULL DEFAULT now())' % self.table)

    def read_history(self):
        if not self.history_exists():
            return {}
        columns = [row[0] for row in self.conn.execute(
            'SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped', (self.table,))]
        self._check_history_columns(columns)
        select = ', '.join(HISTORY_COLUMNS[:-1]) + ", to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
        history = {}
        for row in self.conn.execute('SELECT %s FROM %s ORDER BY version' % (select, self.table)):
            entry = dict(zip(HISTORY_COLUMNS, row))
            history[int(entry['version'])] = entry
        return history

    def insert_history(self, version, title, up_checksum, down_checksum, down_script, no_transaction):
        self.conn.execute(
            'INSERT INTO %s (%s) VALUES (%%s, %%s, %%s, %%s, %%s, %%s)' % (self.table, ', '.join(HISTORY_COLUMNS[:-1])),
            (version, title, up_checksum, down_checksum, down_script, bool(no_transaction)))

    def delete_history(self, version):
        self.conn.execute('DELETE FROM %s WHERE version = %%s' % self.table, (version,))

    # -- data-loss guard -------------------------------------------------------------------
    def _regclass(self, schema, table):
        name = '%s.%s' % (quote_ident(schema), quote_ident(table)) if schema else quote_ident(table)
        row = self.conn.execute("SELECT to_regclass(%s)::text, (SELECT relkind FROM pg_class WHERE oid = to_regclass(%s))",
                                (name, name)).fetchone()
        if row[0] is None or row[1] not in ('r', 'p'):
            return None
        return name

    def table_has_rows(self, schema, table):
        name = self._regclass(schema, table)
        if name is None:
            return None
        return bool(self.conn.execute('SELECT EXISTS (SELECT 1 FROM %s)' % name).fetchone()[0])

    def column_has_data(self, schema, table, column):
        name = self._regclass(schema, table)
        if name is None:
            return None
        exists = self.conn.execute('SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attname = %s '
                                   'AND attnum > 0 AND NOT attisdropped', (name, column)).fetchone()
        if exists is None:
            return None
        return bool(self.conn.execute('SELECT EXISTS (SELECT 1 FROM %s WHERE %s IS NOT NULL)' % (name, quote_ident(column))).fetchone()[0])

    # -- rehearsal --------------------------------------------------------------------------
    def schema_dump(self):
        """The schema from pg_catalog, one line per object, sorted; column order, OIDs and
        the history table are left out so equal schemas give equal dumps."""
        history = self.conn.execute('SELECT to_regclass(%s)::oid', (self.table,)).fetchone()[0] or 0
        queries = [
            ("SELECT 'schema ' || n.nspname FROM pg_namespace n WHERE %s AND %s"
             % (_USER_NAMESPACE, _NOT_EXTENSION_MEMBER % ('pg_namespace', 'n.oid'))),
            "SELECT 'extension ' || extname || ' ' || extversion FROM pg_extension",
            ("SELECT 'relation ' || n.nspname || '.' || c.relname || ' kind=' || c.relkind::text || "
             "' persistence=' || c.relpersistence::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
             "WHERE %s AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'c') AND c.oid <> %d AND %s"
             % (_USER_NAMESPACE, history, _NOT_EXTENSION_MEMBER % ('pg_class', 'c.oid'))),
            ("SELECT 'column ' || n.nspname || '.' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) "
             "|| CASE WHEN a.attnotnull THEN ' not null' ELSE '' END "
             "|| coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '') "
             "|| CASE WHEN a.attidentity <> '' THEN ' identity ' || a.attidentity::text ELSE '' END "
             "|| CASE WHEN a.attgenerated <> '' THEN ' generated ' || a.attgenerated::text ELSE '' END "
             "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
             "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
             "WHERE %s AND a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'c') "
             "AND c.oid <> %d AND %s" % (_USER_NAMESPACE, history, _NOT_EXTENSION_MEMBER % ('pg_class', 'c.oid'))),
            ("SELECT 'constraint ' || n.nspname || '.' || coalesce(c.relname, t.typname) || '.' || k.conname || ' ' || "
             "pg_get_constraintdef(k.oid) FROM pg_constraint k JOIN pg_namespace n ON n.oid = k.connamespace "
             "LEFT JOIN pg_class c ON c.oid = k.conrelid LEFT JOIN pg_type t ON t.oid = k.contypid "
             "WHERE %s AND k.conrelid <> %d" % (_USER_NAMESPACE, history)),
            ("SELECT 'index ' || n.nspname || '.' || i.relname || ' ' || pg_get_indexdef(i.oid) FROM pg_index x "
             "JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_namespace n ON n.oid = i.relnamespace "
             "WHERE %s AND x.indrelid <> %d" % (_USER_NAMESPACE, history)),
            ("SELECT 'view ' || n.nspname || '.' || c.relname || ' ' || pg_get_viewdef(c.oid) FROM pg_class c "
             "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE %s AND c.relkind IN ('v', 'm')" % _USER_NAMESPACE),
            ("SELECT 'sequence ' || n.nspname || '.' || c.relname || ' ' || format_type(s.seqtypid, NULL) || ' start ' || s.seqstart "
             "|| ' increment ' || s.seqincrement FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid "
             "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE %s" % _USER_NAMESPACE),
            ("SELECT 'type ' || n.nspname || '.' || t.typname || ' ' || t.typtype::text || coalesce(' ' || (SELECT string_agg(e.enumlabel, ',' "
             "ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid), '') || CASE WHEN t.typtype = 'd' THEN ' ' || "
             "format_type(t.typbasetype, t.typtypmod) ELSE '' END FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
             "WHERE %s AND t.typtype IN ('e', 'd', 'r', 'm') AND %s" % (_USER_NAMESPACE, _NOT_EXTENSION_MEMBER % ('pg_type', 't.oid'))),
            ("SELECT 'function ' || n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ') ' || "
             "md5(CASE WHEN p.prokind IN ('f', 'p') THEN pg_get_functiondef(p.oid) ELSE p.prokind::text END) FROM pg_proc p "
             "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE %s AND %s" % (_USER_NAMESPACE, _NOT_EXTENSION_MEMBER % ('pg_proc', 'p.oid'))),
            ("SELECT 'trigger ' || c.relname || '.' || g.tgname || ' ' || pg_get_triggerdef(g.oid) FROM pg_trigger g "
             "JOIN pg_class c ON c.oid = g.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
             "WHERE NOT g.tgisinternal AND %s" % _USER_NAMESPACE),
        ]
        lines = []
        for query in queries:
            lines.extend(row[0] for row in self.conn.execute(query) if row[0] is not None)
        return sorted(lines)

    # -- backup ---------------------------------------------------------------------------------
    def check_backup(self):
        if shutil.which('pg_dump') is None:
            raise RedbuttonError('a backup is needed before the lossy down scripts, but pg_dump is not installed on the target '
                                 'host: install postgresql-client (pg_dump of the same or a newer major version than the server), '
                                 'or set allow_data_loss: true and backup: false to go on without a backup; nothing was run')

    def backup(self, path):
        """pg_dump --format=custom (restore with pg_restore), written to a temporary file
        in the backups directory and renamed into place when complete."""
        directory = os.path.dirname(path)
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o700)
        params = self._params()
        password = self.password or params.pop('password', None)
        params.pop('password', None)
        env = {'PGPASSWORD': password} if password else {}
        fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), suffix='.tmp', dir=directory)
        os.close(fd)
        try:
            argv = ['pg_dump', '--format=custom', '--file', tmp]
            if params:
                argv.append('--dbname=%s' % make_conninfo(**params))
            rc, out, err = self.run_command(argv, environ_update=env)
            if rc != 0:
                raise RedbuttonError('pg_dump of %s failed (exit %s): %s: nothing was run. Install postgresql-client '
                                     '(pg_dump of the same or a newer major version than the server), or set '
                                     'allow_data_loss: true and backup: false to go on without a backup'
                                     % (self.display_name(), rc, (err or out).strip()))
            os.chmod(tmp, 0o600)
            os.rename(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return path
