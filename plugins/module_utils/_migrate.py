# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Database migrations that roll back with the code: the logic of redbutton.deploy.migrate.

MigrationFolder reads a golang-migrate style folder; Migrator plans (drift, target,
missing down scripts, data-loss guard: all before anything changes) and then runs the
plan through one backend (SQLite or PostgreSQL, chosen once by new_backend()).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import re

from ansible_collections.redbutton.deploy.plugins.module_utils._common import RedbuttonError, atomic_write_bytes, state_dir, utcnow
from ansible_collections.redbutton.deploy.plugins.module_utils._migrate_backend import DEFAULT_HISTORY_TABLE
from ansible_collections.redbutton.deploy.plugins.module_utils._migrate_sql import (
    SqlSyntaxError, find_drops, no_transaction_reason, split_statements)

FILE_RE = re.compile(r'^(?P<version>[0-9]+)_(?P<title>.*)\.(?P<kind>up|down|verify)\.sql$')
TARGET_RE = re.compile(r'^[0-9]+$')
ENGINES = ('postgresql', 'sqlite')
UP, DOWN = 'up', 'down'


def new_backend(engine, database, history_table=DEFAULT_HISTORY_TABLE, run_command=None, password=None):
    """The backend object of an engine; the only place that looks at `engine`. Each backend is
    imported here, when it is used: a SQLite migration never loads psycopg (a third of a second)."""
    if engine == 'sqlite':
        from ansible_collections.redbutton.deploy.plugins.module_utils._migrate_sqlite import SqliteBackend as backend
    elif engine == 'postgresql':
        from ansible_collections.redbutton.deploy.plugins.module_utils._migrate_postgresql import PostgresBackend as backend
    else:
        raise RedbuttonError('engine %r is not supported: use one of %s' % (engine, ', '.join(ENGINES)))
    return backend(database, history_table, run_command, password=password)


def checksum(data):
    return 'sha256:' + hashlib.sha256(data).hexdigest()


def parse_target(value):
    """None for latest, else the version as an int (0 = before the first migration)."""
    if value is None or value == 'latest':
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        version = value
    elif isinstance(value, str) and TARGET_RE.match(value.strip()):
        version = int(value.strip())
    else:
        version = -1
    if version < 0:
        raise RedbuttonError('target %r is not valid: use latest, a migration version (an integer such as 3 or '
                             '20240101120000), or 0 to roll back every migration' % (value,))
    return version


class MigrateError(RedbuttonError):
    """A refusal or failure; `result` carries what the module returns with the error."""

    def __init__(self, msg, **result):
        super(MigrateError, self).__init__(msg)
        self.result = result


class Script(object):
    """One SQL script: a file of the folder, or a down script stored in the history table."""

    def __init__(self, name, version, title, kind, path=None, data=None):
        self.name = name
        self.version = version
        self.title = title
        self.kind = kind
        self.path = path
        self.data = data
        self.statements = None
        self.no_transaction = None

    @property
    def where(self):
        """How messages name the script."""
        return self.path or self.name

    @property
    def checksum(self):
        return checksum(self.data)

    def load(self):
        if self.data is None:
            try:
                with open(self.path, 'rb') as handle:
                    self.data = handle.read()
            except (IOError, OSError) as exc:
                raise RedbuttonError('cannot read migration file %s: %s' % (self.path, exc))
        return self

    @property
    def text(self):
        try:
            return self.data.decode('utf-8-sig')
        except UnicodeDecodeError as exc:
            raise RedbuttonError('migration file %s is not UTF-8 text (%s): save it as UTF-8' % (self.where, exc))

    def parse(self, dialect):
        """Split into statements and decide how it must run; errors name the file and line."""
        if self.statements is None:
            text = self.text
            try:
                self.statements = split_statements(text, dialect)
            except SqlSyntaxError as exc:
                raise RedbuttonError('cannot split migration file %s into statements: %s; nothing was run' % (self.where, exc))
            self.no_transaction = no_transaction_reason(text, self.statements, dialect)
        return self


class Migration(object):
    """The files of one version: up (required), down and verify (optional)."""

    def __init__(self, version, up, down=None, verify=None):
        self.version = version
        self.up = up
        self.down = down
        self.verify = verify

    @property
    def title(self):
        return self.up.title

    @property
    def name(self):
        return '%d_%s' % (self.version, self.title)

    def summary(self):
        return dict(version=self.version, title=self.title, file=self.up.name)


class MigrationFolder(object):
    """A golang-migrate folder: {version}_{title}.up.sql, .down.sql and .verify.sql files.

    Versions are integers compared numerically (1, 2, 10; leading zeros allowed); up and
    down are paired by version, titles may differ. Other files are ignored; those ending
    in .sql are also reported in `suspicious` (a misnamed migration would silently not run).
    """

    def __init__(self, path):
        self.path = path
        self.migrations = {}
        self.ignored = []
        self.suspicious = []

    @property
    def latest(self):
        return max(self.migrations) if self.migrations else 0

    def load(self):
        if not isinstance(self.path, str) or not os.path.isdir(self.path):
            raise RedbuttonError('path %r is not a directory: give the folder that holds the {version}_{title}.up.sql '
                                 'files (in a release: <root>/releases/<id>/<folder>)' % (self.path,))
        found = {}
        for name in sorted(os.listdir(self.path)):
            full = os.path.join(self.path, name)
            if name.startswith('.'):
                continue
            match = FILE_RE.match(name)
            if not match or not os.path.isfile(full):
                self.ignored.append(name)
                if name.lower().endswith('.sql'):
                    self.suspicious.append(name)
                continue
            version = int(match.group('version'))
            if version == 0:
                raise RedbuttonError('migration file %s has version 0, which means "no migration applied" here: '
                                     'number migrations from 1' % full)
            script = Script(name, version, match.group('title'), match.group('kind'), path=full)
            found.setdefault((version, script.kind), []).append(script)
        duplicates = ['version %d: %s' % (version, ', '.join(s.name for s in scripts))
                      for (version, kind), scripts in sorted(found.items()) if len(scripts) > 1]
        if duplicates:
            raise RedbuttonError('migrations folder %s has more than one %s file for the same version (%s): '
                                 'versions compare as numbers, so renumber or remove one of them'
                                 % (self.path, '/'.join(sorted({k for (v, k), s in found.items() if len(s) > 1})), '; '.join(duplicates)))
        orphans = [scripts[0].name for (version, kind), scripts in sorted(found.items()) if kind != UP and (version, UP) not in found]
        if orphans:
            raise RedbuttonError('migrations folder %s has %s without a matching {version}_{title}.up.sql: add the up '
                                 'script or remove the file' % (self.path, ', '.join(orphans)))
        for (version, kind), scripts in found.items():
            if kind == UP:
                self.migrations[version] = Migration(
                    version, scripts[0].load(),
                    down=found[(version, DOWN)][0].load() if (version, DOWN) in found else None,
                    verify=found[(version, 'verify')][0].load() if (version, 'verify') in found else None)
        return self


class Step(object):
    """One migration to run in one direction."""

    def __init__(self, direction, version, title, script, verify=None, down=None):
        self.direction = direction
        self.version = version
        self.title = title
        self.script = script
        self.verify = verify
        self.down = down
        self.rehearsal = None
        self.down_copy = None
        self.dialect = None

    @property
    def name(self):
        return '%d_%s' % (self.version, self.title)

    @property
    def no_transaction(self):
        """Why this step runs without a wrapping transaction, or None."""
        return self.script.no_transaction or (self.verify.no_transaction if self.verify else None)

    def prepare(self, dialect):
        self.dialect = dialect
        for script in (self.script, self.verify):
            if script is not None:
                script.parse(dialect)
        return self

    def report(self):
        entry = dict(
            version=self.version, title=self.title, direction=self.direction, file=self.script.where,
            transaction=self.no_transaction is None, no_transaction_reason=self.no_transaction,
            statements=len(self.script.statements), sql=self.script.text)
        if self.verify is not None:
            entry['verify_file'] = self.verify.where
        if self.down_copy:
            entry['down_copy'] = self.down_copy
        if self.direction == UP and self.down is not None:
            entry.update(self._down_report())
        return entry

    def _down_report(self):
        """The down script that would undo this up step, and what it drops (tables, columns): what a
        rollback past this version costs, for runbooks and reviews."""
        entry = dict(down_file=self.down.where)
        try:
            self.down.parse(self.dialect)
        except RedbuttonError as exc:
            entry['down_error'] = str(exc)
            return entry
        entry['down_drops'] = [dict(drops=drop.describe(), line=drop.statement.line, statement=drop.statement.short())
                               for drop in find_drops(self.down.statements, self.dialect)]
        return entry


class Plan(object):
    def __init__(self, history, current, target, latest, steps, pending):
        self.history = history
        self.current = current
        self.target = target
        self.latest = latest
        self.steps = steps
        self.pending = pending
        self.data_loss = []
        self.backup_path = None

    @property
    def direction(self):
        if not self.steps:
            return 'none'
        return self.steps[0].direction

    def applied_after(self):
        versions = set(self.history)
        for step in self.steps:
            if step.direction == UP:
                versions.add(step.version)
            else:
                versions.discard(step.version)
        return versions


class _StatementFailed(Exception):
    def __init__(self, script, index, statement, message, offset=None):
        super(_StatementFailed, self).__init__(message)
        self.script = script
        self.index = index
        self.statement = statement
        self.message = message
        self.offset = offset

    @property
    def line(self):
        if self.statement is None:
            return None
        line = self.statement.line
        if self.offset:
            line += self.statement.text.count('\n', 0, max(self.offset - 1, 0))
        return line


class Migrator(object):
    """Plans and runs the migrations of one folder against one database."""

    def __init__(self, backend, path, target='latest', root=None, allow_data_loss=False, backup=True,
                 rehearse=False, lock_timeout=60, check_mode=False, before_change=None, after_step=None):
        self.backend = backend
        # before_change(plan): once planned, before the first change (the caller writes down what will run);
        # after_step(): after each migration is committed.
        self.before_change = before_change
        self.after_step = after_step
        self.path = path
        self.target = target
        self.root = root
        self.allow_data_loss = allow_data_loss
        self.backup = backup
        self.rehearse = rehearse
        self.lock_timeout = lock_timeout
        self.check_mode = check_mode
        self.folder = None
        self.warnings = []
        self.queries = []
        self.applied = []
        self.version = None
        self.plan = None

    @property
    def dialect(self):
        return self.backend.engine

    # -- entry point -------------------------------------------------------------------
    def run(self):
        """Plan, then (unless check mode) run; returns the module result."""
        target = parse_target(self.target)
        if self.root is not None and not os.path.isdir(self.root):
            raise RedbuttonError('root %s does not exist: give the application root (it holds .redbutton/), '
                                 'or leave root unset' % self.root)
        if not isinstance(self.lock_timeout, int) or self.lock_timeout < 0:
            raise RedbuttonError('lock_timeout %r is not valid: give a number of seconds, 0 or more' % (self.lock_timeout,))
        self.folder = MigrationFolder(self.path).load()
        for name in self.folder.suspicious:
            self.warnings.append('%s in %s does not match {version}_{title}.up.sql / .down.sql / .verify.sql and was '
                                 'ignored: rename it if it is a migration' % (name, self.path))
        self.backend.connect(read_only=self.check_mode)
        try:
            if not self.check_mode:
                self.backend.lock(self.lock_timeout)
            history_exists = self.backend.history_exists()
            plan = self.plan = self._plan(self.backend.read_history(), target)
            self.version = plan.current
            if not self.check_mode and plan.steps:
                if self.before_change is not None:
                    self.before_change(plan)
                self._execute(plan, history_exists)
            return self._result(plan)
        except self.backend.errors as exc:
            raise MigrateError('database error on %s outside the migration scripts (while locking, reading or creating '
                               'history table %s, or checking tables for the data-loss guard): %s%s'
                               % (self.backend.display_name(), self.backend.history_table, self.backend.error_text(exc)[0],
                                  self._earlier()),
                               version_after=self.version, applied=list(self.applied), queries=list(self.queries))
        finally:
            self.backend.close()

    # -- planning: everything that can refuse does so here, before any change ----------------
    def _plan(self, history, target):
        self._check_drift(history)
        current = max(history) if history else 0
        pending = [m for v, m in sorted(self.folder.migrations.items()) if v not in history]
        late = [m.up.name for m in pending if m.version < current]
        if late:
            raise MigrateError(
                'migration %s in %s was never applied, but the database is already at version %d: renumber it above %d '
                '(migrations run in version order), or roll back below it first; nothing was run'
                % (', '.join(late), self.path, current, current), version_before=current, version_after=current)
        latest = self.folder.latest
        if target is None:
            if current > latest:
                raise MigrateError(
                    'the database is at version %d, newer than the latest migration in %s (%d); target latest never rolls '
                    'back: set target: %d to roll back to it (the down scripts are kept in the history table), or use '
                    'the newer release\'s migrations; nothing was run' % (current, self.path, latest, latest),
                    version_before=current, version_after=current)
            target = latest
        elif target != 0 and target not in self.folder.migrations and target not in history:
            known = sorted(set(self.folder.migrations) | set(history))
            raise MigrateError('target %d is not a known migration version (in %s or applied: %s); use one of them, latest, '
                               'or 0; nothing was run' % (target, self.path, ', '.join(str(v) for v in known) or 'none'),
                               version_before=current, version_after=current)
        if target >= current:
            steps = [Step(UP, m.version, m.title, m.up, verify=m.verify, down=m.down) for m in pending if m.version <= target]
        else:
            steps = [self._down_step(version, history[version]) for version in sorted(history, reverse=True) if version > target]
        plan = Plan(history, current, target, latest, [s.prepare(self.dialect) for s in steps], pending)
        self._check_down_scripts(plan)
        self._guard_data_loss(plan)
        return plan

    def _check_drift(self, history):
        drift = []
        for version, row in sorted(history.items()):
            migration = self.folder.migrations.get(version)
            if migration is not None and migration.up.checksum != row['up_checksum']:
                drift.append(dict(version=version, file=migration.up.path, recorded=row['up_checksum'],
                                  found=migration.up.checksum, applied_at=row['applied_at']))
        if drift:
            current = max(history)
            lines = ['%s (recorded %s when applied at %s, file now %s)' % (d['file'], d['recorded'], d['applied_at'], d['found'])
                     for d in drift]
            raise MigrateError(
                'drift: applied migration%s changed since %s applied: %s. Nothing was run. Restore the file as it was '
                'applied (from the release that applied it) and put the change in a new migration'
                % ('s' if len(drift) > 1 else '', 'they were' if len(drift) > 1 else 'it was', '; '.join(lines)),
                drift=drift, version_before=current, version_after=current)

    def _down_step(self, version, row):
        migration = self.folder.migrations.get(version)
        if migration is not None and migration.down is not None:
            script = migration.down
            if row.get('down_checksum') and row['down_checksum'] != script.checksum:
                self.warnings.append('%s differs from the down script stored when version %d was applied; the file in %s is used'
                                     % (script.name, version, self.path))
        elif row.get('down_script') is not None:
            name = '%d_%s.down.sql' % (version, row['title'])
            script = Script(name, version, row['title'], DOWN, data=row['down_script'].encode('utf-8'))
            script.path = '%s (stored in history table %s)' % (name, self.backend.history_table)
        else:
            script = None
        return Step(DOWN, version, row['title'], script)

    def _check_down_scripts(self, plan):
        missing = [s.name for s in plan.steps if s.script is None]
        if missing:
            raise MigrateError(
                'cannot roll back to version %d: migration %s has no down script (none in %s and none stored in history '
                'table %s); nothing was run. Write the down script into a copy of the migrations folder and run with '
                'that path, or choose a target at or above version %s'
                % (plan.target, ', '.join(missing), self.path, self.backend.history_table, missing[-1].split('_')[0]),
                version_before=plan.current, version_after=plan.current)
        if self.rehearse:
            missing = [s.script.name for s in plan.steps if s.direction == UP and s.down is None]
            if missing:
                raise MigrateError('rehearse needs a down script for every pending migration; %s has none: add it; nothing was run'
                                   % ', '.join(missing), version_before=plan.current, version_after=plan.current)
            for step in plan.steps:
                if step.down is not None:
                    step.down.parse(self.dialect)

    def _guard_data_loss(self, plan):
        for step in plan.steps:
            if step.direction != DOWN:
                continue
            for drop in find_drops(step.script.statements, self.dialect):
                if drop.column:
                    holds = self.backend.column_has_data(drop.schema, drop.table, drop.column)
                else:
                    holds = self.backend.table_has_rows(drop.schema, drop.table)
                if holds:
                    plan.data_loss.append(dict(version=step.version, file=step.script.where, line=drop.statement.line,
                                               statement=drop.statement.short(), drops=drop.describe()))
        if not plan.data_loss:
            return
        if self.backup and self.root:
            stamp = utcnow().replace('-', '').replace(':', '')
            name = '%s-v%d-to-v%d-%s%s' % (self.backend.backup_label(), plan.current, plan.target, stamp, self.backend.backup_suffix())
            plan.backup_path = os.path.join(state_dir(self.root), 'backups', name)
            self.backend.check_backup()
        elif not self.allow_data_loss:
            what = '; '.join('%s line %d drops %s, which holds data' % (d['file'], d['line'], d['drops']) for d in plan.data_loss)
            raise MigrateError(
                'refusing to lose data: %s. Nothing was run. Set root (with backup: true, the default) so a backup is '
                'written to <root>/.redbutton/backups first, or set allow_data_loss: true if losing it is intended'
                % what, data_loss=plan.data_loss, version_before=plan.current, version_after=plan.current)

    # -- execution ------------------------------------------------------------------------
    def _execute(self, plan, history_exists):
        if not history_exists:
            self.backend.create_history()
        if plan.backup_path:
            self.backend.backup(plan.backup_path)
        for step in plan.steps:
            try:
                if step.direction == DOWN:
                    self._down(step)
                elif self.rehearse:
                    self._rehearse(step)
                else:
                    self._up(step)
            except _StatementFailed as failure:
                raise self._failed(plan, step, failure)
            self.version = step.version if step.direction == UP else max([v for v in plan.history if v < step.version] or [0])
            self.applied.append(step.report())
            if self.after_step is not None:
                self.after_step()

    def _run(self, script):
        for index, statement in enumerate(script.statements):
            try:
                self.backend.execute(statement.text)
            except self.backend.errors as exc:
                message, offset = self.backend.error_text(exc)
                raise _StatementFailed(script, index, statement, message, offset)
            self.queries.append(statement.text)

    def _internal(self, script, action, *args):
        """History writes and COMMIT: a failure there is reported against the script."""
        try:
            action(*args)
        except self.backend.errors as exc:
            message = '%s (while recording it in %s)' % (self.backend.error_text(exc)[0], self.backend.history_table)
            raise _StatementFailed(script, None, None, message)

    def _forward(self, step):
        """Run the up script and its verify script (inside whatever transaction is open)."""
        self._run(step.script)
        if step.verify is not None:
            self._run(step.verify)

    def _record_up(self, step):
        down = step.down
        self._internal(step.script, self.backend.insert_history, step.version, step.title, step.script.checksum,
                       down.checksum if down else None, down.text if down else None, step.no_transaction is not None)

    def _in_transaction(self, script, work):
        self._internal(script, self.backend.begin)
        try:
            work()
            self._internal(script, self.backend.commit)
        except BaseException:
            self.backend.rollback()
            raise

    def _up(self, step):
        if step.no_transaction is None:
            self._in_transaction(step.script, lambda: (self._forward(step), self._record_up(step)))
        else:
            try:
                self._forward(step)
            except _StatementFailed:
                self.backend.rollback()
                raise
            self._in_transaction(step.script, lambda: self._record_up(step))
        self._keep_down(step)

    def _down(self, step):
        def record():
            self._internal(step.script, self.backend.delete_history, step.version)
        if step.script.no_transaction is None:
            self._in_transaction(step.script, lambda: (self._run(step.script), record()))
        else:
            try:
                self._run(step.script)
            except _StatementFailed:
                self.backend.rollback()
                raise
            self._in_transaction(step.script, record)

    def _run_alone(self, script, runner):
        """Run a script in its own transaction unless it must run without one."""
        if script.no_transaction is None:
            self._in_transaction(script, runner)
        else:
            try:
                runner()
            except _StatementFailed:
                self.backend.rollback()
                raise

    def _rehearse(self, step):
        """up, down, compare the schema with the one before the up, up again (Liquibase's
        update-testing-rollback). All in one transaction when every script allows it, so
        a failed rehearsal leaves the database exactly as it was."""
        one_transaction = step.no_transaction is None and step.down.no_transaction is None
        if one_transaction:
            self._internal(step.script, self.backend.begin)
        try:
            before = self.backend.schema_dump()
            if one_transaction:
                self._forward(step)
                self._run(step.down)
            else:
                self._run_alone(step.script, lambda: self._forward(step))
                self._run_alone(step.down, lambda: self._run(step.down))
            after = self.backend.schema_dump()
            if before != after:
                raise self._rehearsal_failed(step, before, after, one_transaction)
            if one_transaction:
                self._forward(step)
                self._record_up(step)
                self._internal(step.script, self.backend.commit)
        except BaseException:
            if one_transaction:
                self.backend.rollback()
            raise
        if not one_transaction:
            self._up(step)
        else:
            self._keep_down(step)
        step.rehearsal = dict(version=step.version, title=step.title, schema_equal=True, objects=len(before),
                              one_transaction=one_transaction)

    def _rehearsal_failed(self, step, before, after, one_transaction):
        import difflib  # only a failed rehearsal shows a diff
        diff = '\n'.join(difflib.unified_diff(before, after, 'schema before %s' % step.script.name,
                                              'schema after %s' % step.down.name, lineterm='', n=0))
        if one_transaction:
            state = 'The rehearsal was rolled back: the database is at version %d, unchanged.' % self.version
        else:
            state = ('These scripts run without a transaction, so the database is left as the down script left it '
                     '(history says version %d): remove the leftovers by hand before running again.' % self.version)
        return MigrateError(
            'rehearsal of migration %s failed: the schema after %s differs from the schema before %s:\n%s\n%s '
            'Make the down script undo everything the up script does.%s'
            % (step.name, step.down.where, step.script.where, diff, state, self._earlier()),
            rehearsal=dict(version=step.version, title=step.title, schema_equal=False, diff=diff),
            version_before=self.plan.current, version_after=self.version, applied=list(self.applied), queries=list(self.queries))

    def _keep_down(self, step):
        """Keep the down script next to the ledger too, for operators and later rollbacks."""
        if self.root and step.down is not None:
            path = os.path.join(state_dir(self.root), 'migrations', '%s.down.sql' % step.name)
            atomic_write_bytes(path, step.down.data)
            step.down_copy = path

    def _earlier(self):
        if not self.applied:
            return ''
        return ' Migrations run before it in this run stay applied: %s.' % ', '.join(
            '%d_%s (%s)' % (a['version'], a['title'], a['direction']) for a in self.applied)

    def _failed(self, plan, step, failure):
        script = failure.script
        if failure.statement is not None:
            where = '%s line %d (statement %d of %d: %s)' % (script.where, failure.line, failure.index + 1,
                                                             len(script.statements), failure.statement.short())
        else:
            where = script.where
        if script.no_transaction is None:
            state = ('Its transaction was rolled back: the database is at version %d.' % self.version)
        elif failure.statement is None:
            state = ('This file runs without a transaction (%s): its statements took effect but its history row could not '
                     'be written, so the database reports version %d. Record or undo it by hand (see docs/migrations.md).'
                     % (script.no_transaction, self.version))
        else:
            done = failure.index
            state = ('This file runs without a transaction (%s): %s took effect and %s not undone; its history row was '
                     'not written, so the database reports version %d but is partly changed. Repair it by hand, then run '
                     'again (see the runbook in docs/migrations.md).'
                     % (script.no_transaction, 'statements 1 to %d' % done if done > 1 else ('statement 1' if done == 1 else 'no statement'),
                        'were' if done > 1 else 'was', self.version))
        phase = ' during the rehearsal' if self.rehearse and step.direction == UP else ''
        return MigrateError(
            'migration %s (%s) failed%s at %s: %s. %s%s' % (step.name, step.direction, phase, where, failure.message.rstrip('.'), state, self._earlier()),
            failure=dict(version=step.version, title=step.title, direction=step.direction, file=script.where,
                         line=failure.line, statement=failure.statement.text if failure.statement else None, error=failure.message,
                         up_checksum=step.script.checksum if step.direction == UP else None,
                         no_transaction_reason=script.no_transaction),
            version_before=plan.current, version_after=self.version, applied=list(self.applied), queries=list(self.queries))

    # -- result ----------------------------------------------------------------------------
    def _result(self, plan):
        if self.check_mode:
            self.applied = [s.report() for s in plan.steps]
            self.queries = [st.text for s in plan.steps for sc in (s.script, s.verify) if sc is not None for st in sc.statements]
            version_after = plan.target if plan.steps else plan.current
        else:
            version_after = self.version
        after = plan.applied_after()
        return dict(
            changed=bool(plan.steps),
            engine=self.backend.engine,
            database=self.backend.display_name(),
            history_table=self.backend.history_table,
            path=self.path,
            version_before=plan.current,
            version_after=version_after,
            target=plan.target,
            latest=plan.latest,
            direction=plan.direction,
            applied=self.applied,
            pending=[m.summary() for m in plan.pending],
            pending_after=[m.summary() for v, m in sorted(self.folder.migrations.items()) if v not in after],
            queries=self.queries,
            rehearsal=[s.rehearsal for s in plan.steps if s.rehearsal],
            data_loss=plan.data_loss,
            backup=plan.backup_path,
            ignored=self.folder.ignored,
            warnings=self.warnings,
        )


def diff_of(result):
    """Diff mode: the schema version and the pending migrations, before and after."""
    def state(version, pending):
        return 'schema_version: %d\npending: [%s]\n' % (version, ', '.join(str(p['version']) for p in pending))
    return dict(before=state(result['version_before'], result['pending']),
                after=state(result['version_after'], result['pending_after']),
                before_header='schema version', after_header='schema version')
