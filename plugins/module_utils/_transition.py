# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The transition engine: one host from one release to another, in one ordered list of steps.

Directions and their steps (docs/architecture.md):

    rollout        stage, [migrate], switch, [migrate], restart, verify, finish
    rollback       switch, migrate, restart, verify, compare, finish
    auto_rollback  switch, migrate, restart, verify, compare, finish
    verify         verify, compare          (read-only: no lock, no change)

A call runs the steps it is given (the roles cut the list only where a user hook sits).
Between calls, and between a killed run and the next one, the state of the transition lives
on the host, in the ledger's open transition record (``ledger['transition']``), written
before each step that changes the host. What a step does is derived from the host as it is
(the current symlink and the ledger status of the current release), never from a memory of
the run: a release that is current but not ``ok`` is restarted and verified again, whatever
the run that switched to it did or did not do before it was killed.

Every module call imports this file (and compiles it: AnsiballZ ships sources), so what only some
calls need is imported where it is used: the baseline (and its probes) by the steps that capture
or compare one, the migrate engine by a migrate step, feature toggles by stage and switch, the
on-host command's builder by a rollout's finish. A re-run of the current release or a rollback
without a baseline never loads them. Ansible finds such imports inside functions too and ships
them in the module's payload.

Private to the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import re
import time
import uuid

from ansible_collections.redbutton.deploy.plugins.module_utils._checks import (
    HealthChecks,
    Service,
    report_failures,
    validate_checks,
    validate_service,
)
from ansible_collections.redbutton.deploy.plugins.module_utils._common import (
    RedbuttonError,
    atomic_write_json,
    kill_point,
    read_json,
    state_dir,
    utcnow,
)
from ansible_collections.redbutton.deploy.plugins.module_utils._ledger import BAD_STATUSES
from ansible_collections.redbutton.deploy.plugins.module_utils._lock import DEFAULT_TTL, DeployLock
from ansible_collections.redbutton.deploy.plugins.module_utils._release import (
    CURRENT_LINK,
    RELEASE_ARGUMENT_SPEC,
    ReleaseManager,
    read_current,
    release_path,
)

DIRECTIONS = ('rollout', 'rollback', 'auto_rollback', 'verify')
STEPS = ('stage', 'switch', 'migrate', 'restart', 'verify', 'compare', 'finish')
HISTORY_TABLE = 'redbutton_schema_history'
SETTINGS_FILE = 'settings.json'
# Settings a rollout leaves on the host for the on-host command (never a password).
RECORDED_SETTINGS = ('service', 'health_checks', 'health_retries', 'health_delay', 'health_timeout', 'migrations',
                     'migrate_when', 'baseline', 'baseline_verify_content', 'keep', 'shared_paths')

SERVICE_SPEC = dict(
    manager=dict(type='str', choices=['systemd', 'command', 'none'], default='none'),
    name=dict(type='str'),
    scope=dict(type='str', choices=['system', 'user', 'global']),
    action=dict(type='str', choices=['restart', 'reload'], default='restart'),
    start_command=dict(type='str'),
    stop_command=dict(type='str'),
    restart_command=dict(type='str'),
    reload_command=dict(type='str'),
    timeout=dict(type='int', default=300),
)
MIGRATIONS_SPEC = dict(
    engine=dict(type='str', choices=['sqlite', 'postgresql'], default='sqlite'),
    database=dict(type='str'),
    login_password=dict(type='str', no_log=True),
    path=dict(type='str'),
    target=dict(type='raw', default='latest'),
    allow_data_loss=dict(type='bool', default=False),
    backup=dict(type='bool', default=True),
    rehearse=dict(type='bool', default=False),
    baseline_tables=dict(type='list', elements='str', default=[]),
)

CHECK_SPEC = dict(
    name=dict(type='str', required=True),
    url=dict(type='str'),
    status=dict(type='raw', default=200),
    body_regex=dict(type='str'),
    validate_certs=dict(type='bool', default=True),
    port=dict(type='int'),
    host=dict(type='str', default='127.0.0.1'),
    command=dict(type='str'),
    rc=dict(type='int', default=0),
    stdout_regex=dict(type='str'),
    retries=dict(type='int'),
    delay=dict(type='int'),
    timeout=dict(type='int'),
)

_STAGE_KEYS = ('src', 'remote_src', 'checksum', 'shared_paths', 'metadata', 'force', '_probe', '_checksum_of', '_source',
               '_content', '_controller')
TRANSITION_ARGUMENT_SPEC = dict(
    direction=dict(type='str', required=True, choices=list(DIRECTIONS)),
    steps=dict(type='list', elements='str', choices=list(STEPS)),
    release=dict(type='str'),
    once=dict(type='bool', default=False),
    keep=dict(type='int', default=5),
    service=dict(type='dict', options=SERVICE_SPEC, default={'manager': 'none'}),
    health_checks=dict(type='list', elements='dict', default=[], options=CHECK_SPEC),
    health_retries=dict(type='int', default=10),
    health_delay=dict(type='int', default=1),
    health_timeout=dict(type='int', default=5),
    migrations=dict(type='dict', default={}),
    migrate_when=dict(type='str', choices=['before_switch', 'after_switch'], default='before_switch'),
    baseline=dict(type='bool', default=True),
    baseline_name=dict(type='str', default='auto'),
    baseline_exclude=dict(type='list', elements='str', default=['__pycache__', '*.pyc']),
    baseline_shared=dict(type='bool', default=True),
    baseline_shared_exclude=dict(type='list', elements='str', default=['*.pid', '*.log', '*.sock']),
    baseline_probes=dict(type='list', elements='dict', default=[]),
    baseline_verify_content=dict(type='str', choices=['auto', 'always'], default='auto'),
    verify_ledger=dict(type='bool', default=True),
    revert=dict(type='bool', default=True),
    failure_task=dict(type='str'),
    failure_msg=dict(type='str'),
    actor=dict(type='str'),
    lock_owner=dict(type='str'),
    lock_timeout=dict(type='float', default=0),
    lock_ttl=dict(type='int', default=DEFAULT_TTL),
    run_id=dict(type='str'),
    # The runbook (docs/runbook.md): the controller side (action plugin) reads dir, template, app and extra;
    # the engine writes files on the host before the first change of a rollout.
    runbook=dict(type='dict', options=dict(
        dir=dict(type='str'), template=dict(type='str'), app=dict(type='str'), extra=dict(type='dict', default={}),
        on_error=dict(type='str', choices=['warn', 'fail'], default='warn'),
        in_check_mode=dict(type='str', choices=['skip', 'write'], default='skip'), files=dict(type='dict'))),
    _plan=dict(type='bool', default=False),
)
for _key in _STAGE_KEYS:
    TRANSITION_ARGUMENT_SPEC[_key] = RELEASE_ARGUMENT_SPEC[_key]


# What _feature reads (a unit test keeps them equal): a release's toggle declarations, the host's toggle state.
TOGGLE_DECLARATION_FILES = ('features.json', 'features.yml')
TOGGLE_STATE_FILE = 'features.json'


def _has_toggles(release_dir, *others):
    """Whether the release declares toggles (or one of the other files exists). Without any, the
    toggle engine (_feature) has nothing to read or declare and is not imported."""
    paths = [os.path.join(release_dir, name) for name in TOGGLE_DECLARATION_FILES] + list(others)
    return any(os.path.lexists(path) for path in paths)


def step_order(direction, migrate_when='before_switch'):
    """The steps of a direction, in the order the engine runs them."""
    if direction == 'rollout':
        if migrate_when == 'after_switch':
            return ('stage', 'switch', 'migrate', 'restart', 'verify', 'finish')
        return ('stage', 'migrate', 'switch', 'restart', 'verify', 'finish')
    if direction == 'verify':
        return ('verify', 'compare')
    return ('switch', 'migrate', 'restart', 'verify', 'compare', 'finish')


def defaults():
    """Every parameter at its default, for callers that are not AnsibleModule (the CLI, tests)."""
    values = {}
    for key, spec in TRANSITION_ARGUMENT_SPEC.items():
        values[key] = spec.get('default')
    values['root'] = None
    return values


class StepFailed(Exception):
    """A step could not be done; the engine records it and reports where the host stands."""

    def __init__(self, step, msg):
        super(StepFailed, self).__init__(msg)
        self.step = step
        self.msg = msg


class TransitionFailed(RedbuttonError):
    """The transition failed part-way; ``result`` says where the host stands."""

    def __init__(self, msg, result):
        super(TransitionFailed, self).__init__(msg)
        self.result = result


def _applied_names(result):
    """The migrations a Migrator run applied (or undid), named as the migrator names them."""
    return ['%s_%s' % (step.get('version'), step.get('title')) for step in result.get('applied') or []]


def _sentence(text):
    text = (text or 'no message').strip()
    return text if text.endswith(('.', '!', '?')) else text + '.'


def validate_migrations(migrations, when):
    """The migration settings fit together (types are checked by the argument spec)."""
    if not migrations:
        return {}
    if not isinstance(migrations, dict):
        raise RedbuttonError('redbutton_migrations %r is not valid: give a mapping (engine, database, path, ...)' % (migrations,))
    problems = []
    for key, what in (('database', 'the SQLite file or PostgreSQL connection string.'),
                      ('path', 'the migrations folder relative to the release, for example migrations.')):
        if not str(migrations.get(key) or ''):
            problems.append('redbutton_migrations needs %s: %s' % (key, what))
    path = str(migrations.get('path') or '')
    if re.match(r'/|\.\./|\.\.$', path) or '/../' in path:
        problems.append('redbutton_migrations.path %s must be relative to the release and stay inside it.' % path)
    engine = migrations.get('engine') or 'sqlite'
    if engine not in ('sqlite', 'postgresql'):
        problems.append('redbutton_migrations.engine %s is not valid: use sqlite or postgresql.' % engine)
    if when not in ('before_switch', 'after_switch'):
        problems.append('redbutton_migrate_when %s is not valid: use before_switch or after_switch.' % when)
    if problems:
        raise RedbuttonError(' '.join(problems))
    merged = dict((key, spec.get('default')) for key, spec in MIGRATIONS_SPEC.items())
    merged.update(dict((k, v) for k, v in migrations.items() if v is not None))
    return merged


def migration_probes(migrations):
    """Baseline probes for the database: a schema fingerprint and each baseline table's row count."""
    if not migrations or not migrations.get('baseline_tables'):
        return []
    engine = migrations.get('engine') or 'sqlite'
    if engine == 'sqlite':
        # Columns in name order (a down that drops a column and re-adds it puts it last), then the other objects.
        fingerprint = ("SELECT coalesce(group_concat(item, ','), '') FROM (SELECT m.name || '.' || p.name || ' ' || p.type || ' '"
                       " || p.[notnull] || ' ' || p.pk AS item FROM sqlite_master m JOIN pragma_table_info(m.name) p"
                       " WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> '" + HISTORY_TABLE + "'"
                       " UNION ALL SELECT type || ' ' || name FROM sqlite_master WHERE type IN ('index', 'view', 'trigger')"
                       " AND name NOT LIKE 'sqlite_%' AND tbl_name <> '" + HISTORY_TABLE + "' ORDER BY 1)")
    else:
        fingerprint = ("SELECT md5(coalesce(string_agg(table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable, ','"
                       " ORDER BY table_name, column_name), '')) FROM information_schema.columns"
                       " WHERE table_schema = current_schema() AND table_name <> '" + HISTORY_TABLE + "'")
    probes = [{'name': 'db-schema', 'sql': fingerprint, 'engine': engine, 'database': migrations['database']}]
    for table in migrations['baseline_tables']:
        probes.append({'name': 'db-rows-' + table, 'sql': 'SELECT count(*) FROM ' + table, 'compare': 'no_loss',
                       'engine': engine, 'database': migrations['database']})
    return probes


def rollout_probes(p, service, checks):
    """What a rollout records before it switches away from the release that serves now."""
    root = p['root']
    probes = [{'name': 'release', 'path': os.path.join(root, CURRENT_LINK), 'exclude': p['baseline_exclude']}]
    if p['baseline_shared'] and p.get('shared_paths'):
        probes.append({'name': 'shared', 'path': os.path.join(root, 'shared'), 'compare': 'no_loss',
                       'exclude': p['baseline_shared_exclude']})
    if service['manager'] == 'systemd':
        probes.append({'name': 'service', 'service': service['name']})
    names = set(probe['name'] for probe in probes)
    for index, check in enumerate([c for c in checks if c.get('command')], 1):
        # Probe names follow the release id rules: health-<check name with other characters as '-'>.
        name = ('health-' + re.sub(r'[^A-Za-z0-9_+-]+', '-', check['name']))[:100]
        if name in names:
            name = '%s-%d' % (name, index)
        names.add(name)
        probes.append({'name': name, 'command': check['command'], 'chdir': os.path.join(root, CURRENT_LINK), 'record': ['rc']})
    return probes + list(p.get('baseline_probes') or []) + migration_probes(p.get('migrations'))


class _Environ(object):
    """PGPASSWORD for the database probes and migrations, for the duration of a step."""

    def __init__(self, migrations):
        self.password = (migrations or {}).get('login_password')
        self.saved = None

    def __enter__(self):
        if self.password:
            self.saved = os.environ.get('PGPASSWORD')
            os.environ['PGPASSWORD'] = self.password
        return self

    def __exit__(self, *exc):
        if self.password:
            if self.saved is None:
                os.environ.pop('PGPASSWORD', None)
            else:
                os.environ['PGPASSWORD'] = self.saved
        return False


class Transition(object):
    """One call of the engine. Build it, then call run()."""

    def __init__(self, params, host, check_mode=False, diff=False):
        self.p = defaults()
        self.p.update(dict((k, v) for k, v in params.items() if v is not None))
        self.host = host
        self.check_mode = check_mode
        self.diff = diff
        self.root = self.p['root']
        self.direction = self.p['direction']
        self.service = None
        self.checks = []
        self.migrations = {}
        self.rm = None
        self.record = None
        self.lock = None
        self.lock_fresh = False
        self.locked = False
        self.changed = False
        self.steps = []
        self.check_results = []
        self.compare = None
        self.migrate = None
        self.stage = None
        self.before = None
        self.outcome = None
        self.notes = []
        self.pruned = []
        self.release = None
        self.closed = None
        self.auto_failure = None
        self.toggles = None
        self.button = None
        self.captured = None
        self.plan_facts = None
        self.runbook = None

    # -- input ------------------------------------------------------------------------------
    def _validate(self):
        p = self.p
        if not p.get('root'):
            raise RedbuttonError('root is required: the application root on the host, for example /srv/shop')
        if self.direction not in DIRECTIONS:
            raise RedbuttonError('direction %r is not valid: use one of %s' % (self.direction, ', '.join(DIRECTIONS)))
        order = step_order(self.direction, p['migrate_when'])
        wanted = p.get('steps') or list(order)
        unknown = [s for s in wanted if s not in STEPS]
        if unknown:
            raise RedbuttonError('steps %s are not valid: use %s' % (', '.join(unknown), ', '.join(STEPS)))
        self.plan = [s for s in order if s in wanted]
        self.order = order
        self.service = validate_service(p.get('service'))
        self.checks = validate_checks(p.get('health_checks'))
        self.migrations = validate_migrations(p.get('migrations'), p['migrate_when'])
        # A call runs a slice of the steps; steps these settings make no-ops may be left out.
        effective = [s for s in order if s in self.plan or not self._nothing_to_do(s)]
        positions = [effective.index(s) for s in self.plan]
        if positions and positions != list(range(positions[0], positions[0] + len(positions))):
            raise RedbuttonError('steps %s are not consecutive steps of a %s (%s): a call runs a slice of them'
                                 % (', '.join(self.plan), self.direction, ', '.join(order)))
        # (The playbooks' variables in brackets: redbutton_<name>.) A day is more than any check or restart may take.
        for key, var, most in (('health_retries', 'redbutton_health_retries', 1000), ('health_delay', 'redbutton_health_delay', 86400),
                               ('health_timeout', 'redbutton_health_timeout', 86400), ('keep', 'redbutton_keep_releases', 100000),
                               ('lock_ttl', 'redbutton_lock_ttl', 10 * 366 * 86400)):
            if p.get(key) is not None and not 0 <= int(p[key]) <= most:
                raise RedbuttonError('%s %r (%s) is not valid: give a number from 0 to %d' % (key, p[key], var, most))
        if self.direction == 'rollout' and 'stage' in self.plan and not p.get('src') and not p.get('_probe') and not p.get('release'):
            raise RedbuttonError('the stage step needs src (the artifact) or release (an id already staged)')

    def _rm_params(self, with_stage=False):
        params = dict((key, spec.get('default')) for key, spec in RELEASE_ARGUMENT_SPEC.items())
        params.update(root=self.root, actor=self.p.get('actor'), run_id=self.p.get('run_id'),
                      release=self.p.get('release'), shared_paths=self.p.get('shared_paths') or [])
        if with_stage:
            for key in _STAGE_KEYS:
                if self.p.get(key) is not None:
                    params[key] = self.p[key]
            params.update(state='staged', reason='rollout', lock_owner=self.p.get('lock_owner'),
                          lock_timeout=self.p.get('lock_timeout') or 0, lock_ttl=self.p.get('lock_ttl') or DEFAULT_TTL,
                          unlock_if_current=bool(self.p.get('lock_owner')))
        else:
            params['release'] = None
        return params

    # -- the call ---------------------------------------------------------------------------
    def run(self):
        self._validate()
        if self.direction == 'verify':
            return self._verify_only()
        try:
            answer = self._begin()
            if answer is not None:
                return answer
            self._check_continuity()
            self._write_runbook()
            for step in self.plan:
                if self.outcome in ('up_to_date', 'already_back') and step not in ('verify',):
                    continue
                self._run_step(step)
        except _Answer as answer:
            return answer.result
        except StepFailed as exc:
            return self._fail(exc.step, exc.msg)
        except RedbuttonError:
            self._let_go()
            raise
        except (IOError, OSError) as exc:
            self._let_go()
            raise RedbuttonError('%s on %s failed: %s; the ledger records only completed steps, and the next run finishes '
                                 'or undoes this one' % (self.direction, self.root, exc))
        return self._result()

    def _kill_point(self, when, step):
        """REDBUTTON_KILL_AT=<direction>:<before|after|during>:<step> (_common.kill_point; ansible-playbook then stops,
        as it does when a controller dies)."""
        kill_point('%s:%s:%s' % (self.direction, when, step))

    def _check_continuity(self):
        """A call that goes on with an open transition starts right after what it has done: never a
        finish without its switch, restart and checks."""
        if self.record is None or self.check_mode or not self.plan:
            return
        missing = [s for s in self.order[:self.order.index(self.plan[0])]
                   if s not in self.record.get('done', []) and not self._nothing_to_do(s)]
        if missing:
            raise RedbuttonError('the %s to %s has not done %s yet: a call runs the steps that come next (%s)'
                                 % (self.record['direction'], self.record.get('to'), ', '.join(missing), ', '.join(self.order)))

    def _nothing_to_do(self, step):
        """Steps these settings make no-ops (a call may leave them out)."""
        return ((step == 'migrate' and not self.migrations) or (step == 'restart' and self.service['manager'] == 'none')
                or (step == 'verify' and not self.checks) or (step == 'compare' and (not self.p['baseline'] or self.direction == 'rollout')))

    def _heartbeat(self):
        """Each step tells the lock this run is alive (a lock whose heartbeat stopped can be taken over)."""
        if self.locked and self.lock is not None and not self.check_mode:
            self.lock.refresh(self.p['lock_owner'])

    def _run_step(self, step):
        self._kill_point('before', step)
        self._heartbeat()
        started = time.time()
        entry = {'name': step, 'outcome': 'ok', 'seconds': 0.0, 'msg': ''}
        self.steps.append(entry)
        try:
            outcome = getattr(self, '_' + step)()
        except _Answer:
            raise  # not a failure: the stage step's answer to the action plugin (it needs the artifact)
        except StepFailed:
            entry.update(outcome='failed', seconds=round(time.time() - started, 3))
            raise
        except RedbuttonError as exc:
            entry.update(outcome='failed', seconds=round(time.time() - started, 3))
            if self.record is None or step == 'stage':
                raise
            raise StepFailed(step, str(exc))
        except (IOError, OSError) as exc:
            entry.update(outcome='failed', seconds=round(time.time() - started, 3))
            hint = {errno.ENOSPC: 'free space on the file system of %s, then run again: the next run finishes or undoes this one',
                    errno.EDQUOT: 'raise the disk quota on %s, then run again',
                    errno.EACCES: 'make %s writable by the user the deploy runs as, then run again',
                    errno.EROFS: '%s is on a read-only file system: remount it read-write, then run again'}.get(
                        exc.errno, 'fix the cause under %s, then run again')
            raise StepFailed(step, 'the %s step could not write: %s; %s' % (step, exc, hint % self.root))
        except Exception as exc:  # pylint: disable=broad-except
            # A fault nothing foresaw still goes through the bookkeeping: the step is failed in the open transition,
            # and the automatic rollback (or the next run) undoes or finishes it, as for any failed step.
            entry.update(outcome='failed', seconds=round(time.time() - started, 3))
            text = 'the %s step failed: %s: %s' % (step, type(exc).__name__, exc)
            if self.record is None or step == 'stage':
                raise RedbuttonError(text)
            raise StepFailed(step, text)
        if isinstance(outcome, tuple):
            entry['outcome'], entry['msg'] = outcome
        elif outcome:
            entry['outcome'] = outcome
        entry['seconds'] = round(time.time() - started, 3)
        if entry['outcome'] == 'changed':
            self.changed = True
        if self.record is not None and step not in self.record['done']:
            self.record['done'].append(step)
            self._save()
        self._kill_point('after', step)

    # -- the ledger, the record and the lock ------------------------------------------------
    @property
    def ledger(self):
        return self.rm.ledger

    @property
    def current(self):
        return self.rm.current

    def _status(self, release_id):
        entry = self.ledger.get(release_id) if release_id else None
        return entry.get('status') if entry else None

    def _save(self):
        if self.record is not None:
            self.ledger.data['transition'] = self.record
        self.rm.save()

    def _open_record(self, direction, from_id, to_id, **extra):
        record = {'id': uuid.uuid4().hex[:12], 'direction': direction, 'from': from_id, 'to': to_id,
                  'owner': self.p.get('lock_owner'), 'run_id': self.p.get('run_id'), 'actor': self.p.get('actor'),
                  'started': utcnow(), 'done': [], 'created': False, 'baseline': None, 'migrate': None,
                  'failed_step': None, 'failed_msg': None, 'to_status': self._status(to_id)}
        record.update(extra)
        old = self.ledger.data.get('transition')
        if old:
            # Kept in the record: the call that switches away from the old target may be a later one.
            record['superseded'] = {'direction': old.get('direction'), 'to': old.get('to'), 'to_status': old.get('to_status')}
            self.ledger.event('interrupted', old.get('to'), actor=self.p.get('actor'),
                              reason='superseded by a %s to %s' % (direction, to_id), direction=old.get('direction'))
        self.record = record
        return record

    def _close_record(self, outcome):
        record = self.record
        self.closed = record
        self.ledger.data['transition'] = None
        self.ledger.data['last_transition'] = {
            'direction': record['direction'], 'from': record['from'], 'to': record['to'], 'owner': record.get('owner'),
            'run_id': record.get('run_id'), 'outcome': outcome, 'finished': utcnow()}
        self.record = None
        self.rm.save()

    def _acquire(self):
        owner = self.p.get('lock_owner')
        if not owner:
            return
        self.lock = DeployLock(self.root, warn=self.host.warn)
        changed, dummy, before = self.lock.acquire(owner, ttl=self.p.get('lock_ttl') or DEFAULT_TTL,
                                                   timeout=self.p.get('lock_timeout') or 0, check_mode=self.check_mode,
                                                   controller=self.p.get('_controller'))
        self.lock_fresh = before is None or before.get('owner') != owner
        self.locked = True

    def _unlock(self):
        if self.lock is None and self.p.get('lock_owner') and self.locked:
            self.lock = DeployLock(self.root, warn=self.host.warn)
        if self.lock is not None and self.locked:
            self.lock.release(self.p['lock_owner'], check_mode=self.check_mode)
            self.locked = False

    def _let_go(self):
        """A refusal before any change: leave the lock as this call found it."""
        if self.lock is not None and self.locked and self.lock_fresh:
            try:
                self._unlock()
            except RedbuttonError:
                pass

    # -- begin: find or open the transition ---------------------------------------------------
    def _begin(self):
        if self.direction == 'rollout' and 'stage' in self.plan:
            return None  # the stage step reads the host and opens the transition
        self.rm = ReleaseManager(self._rm_params(), check_mode=self.check_mode, warn=self.host.warn).open()
        self.before = self._snapshot()
        self._acquire()
        self.record = self.ledger.data.get('transition')
        return getattr(self, '_begin_' + self.direction)()

    def _begin_rollout(self):
        release = self.p.get('release')
        record = self.record
        if record and record.get('direction') == 'rollout' and (not release or record['to'] == release):
            self.release = record['to']
            return None
        if self.check_mode and release and (record is None or record.get('to') != release):
            # Check mode: the stage call predicted the staging without writing it down.
            if self.ledger.get(release) is None:
                self.ledger.add(release, None, self.p.get('src'), actor=self.p.get('actor'), reason='rollout')
                self.rm.would_exist.add(release)
            self.record = {'direction': 'rollout', 'from': self.current if self.current != release else None,
                           'to': release, 'done': ['stage'], 'migrate': None, 'baseline': None, 'created': True}
            self.release = release
            if self.current == release and self._status(release) == 'ok':
                self.record = None
                self.outcome = 'up_to_date'
            return None
        self.record = None
        if release and self.current == release and self._status(release) == 'ok':
            self.release = release
            self.outcome = 'up_to_date'
            self._unlock()
            return None
        raise RedbuttonError('no rollout of %s is in progress in %s: run the stage step first (the rollout role does)'
                             % (release or 'a release', self.root))

    def _begin_rollback(self):
        record = self.record
        if 'switch' not in self.plan:
            if record and record.get('direction') == 'rollback':
                self.release = record['to']
                return None
            # The switch call found nothing to roll back; the later steps only verify.
            self.record = None
            self.release = self.current
            self.outcome = 'already_back'
            self._unlock()
            return None
        if record and record.get('direction') == 'rollout' and self.current != record.get('to'):
            self._undo_unswitched_rollout(record)
            record = self.record = None
            if not self.p.get('release') or self.p.get('release') == 'previous':
                # Undoing the interrupted rollout is the rollback: the host is where it was before it.
                self.release = self.current
                self.outcome = 'already_back'
                self._unlock()
                return None
        if record and record.get('direction') == 'rollback' and self.p.get('release') in (None, '', 'previous', record.get('to')) \
                and self.rm.present(record.get('to')):
            self.release = record['to']  # an interrupted rollback: finish it, whatever target it resolved to then
            return None
        self.rm.params['release'] = self.p.get('release') or 'previous'
        self.rm.params['once'] = bool(self.p.get('once')) and self.rm.params['release'] == 'previous'
        try:
            target = self.rm._resolve_id('active')
            self._check_target(target)
        except RedbuttonError as exc:
            raise RedbuttonError('%s Rollback refused: current was not changed.' % _sentence(str(exc)))
        self.release = target
        if target == self.current:
            if self._status(target) == 'ok':
                self.record = None
                self.outcome = 'already_back'
                last = self.ledger.data.get('last_switch') or {}
                what = {'rollback': 'a rollback', 'auto_rollback': 'an automatic rollback'}.get(last.get('reason'), 'a switch')
                self.notes.append('The last switch was already %s to %s: nothing to roll back, verifying only. To go further '
                                  'back, run again with -e redbutton_rollback_to=ID (see the status playbook for the ids).'
                                  % (what, target))
                self._unlock()
                return None
            # Current but not ok: a switch whose run was killed. Restart, verify and finish it.
            last = self.ledger.data.get('last_switch') or {}
            undone = last.get('from') if last.get('to') == target else None
            self._open_record('rollback', undone, target)
            self._save()
            return None
        self._open_record('rollback', self.current, target)
        self._save()
        return None

    def _undo_unswitched_rollout(self, record):
        """A rollout that was stopped (killed) before its switch: migrate back what it applied, remove the
        release it created, close it. What an automatic rollback before the switch does."""
        known = record.get('migrate') or {}
        if (known.get('applied') or known.get('pending')) and self.migrations:
            folder = os.path.join(release_path(self.root, record['to']), self.migrations['path'])
            self._run_migrator(folder, known['version_before'])
        if record.get('created') and self.ledger.get(record['to']) is not None and record['to'] != self.current:
            self.rm.params['reason'] = 'interrupted'
            self.rm._remove(record['to'], self.rm.present(record['to']))
        self.ledger.event('interrupted', record['to'], actor=self.p.get('actor'), reason='undone by a rollback',
                          direction='rollout')
        self.ledger.data['transition'] = None
        self.rm.save()
        self.notes.append('The interrupted rollout of %s (stopped before its switch) was undone%s.'
                          % (record['to'], ' and its release removed' if record.get('created') else ''))

    def _check_target(self, target):
        """Refuse, before any change, a target that is not there, is marked failed, or that the database
        could not follow."""
        entry = self.ledger.get(target)
        if entry is None or not self.rm.present(target):
            raise RedbuttonError('release %s is not staged in %s: roll back to one of the releases there: %s'
                                 % (target, os.path.join(self.root, 'releases'), self.ledger.describe()))
        if entry.get('status') == 'failed' and target != self.current:
            raise RedbuttonError('release %s is marked failed: choose another target (releases: %s), or roll out a fixed '
                                 'release' % (target, self.ledger.describe()))
        if not self.migrations or target == self.current:
            return
        if (entry.get('metadata') or {}).get('schema_version') is None:
            raise RedbuttonError(
                'the ledger has no schema version for the target release %s, so the database cannot be taken back to it. '
                'Record the version it runs with (redbutton.deploy.release with release: %s and metadata: {schema_version: N}), '
                'or roll back the code alone without redbutton_migrations' % (target, target))

    def _begin_auto_rollback(self):
        record = self.record
        if record and record.get('direction') == 'auto_rollback':
            # A later call of the same automatic rollback (a hook cut it): it still says what failed.
            self.auto_failure = (record.get('failed_step'), record.get('failed_msg'), bool(record.get('created')))
            self.release = record['to']
            return None
        if record and record.get('direction') == 'rollout':
            rolled_out = record['to']
            switched = self.current == rolled_out and record.get('from') != rolled_out
            failed_step = record.get('failed_step') or self.p.get('failure_task') or 'an unknown step'
            failed_msg = record.get('failed_msg') or self.p.get('failure_msg') or 'no message'
            self.record = None
            self.auto_failure = (failed_step, failed_msg, bool(record.get('created')))
            self._open_record('auto_rollback', rolled_out, record.get('from'), created=record.get('created'),
                              baseline=record.get('baseline'), migrate=record.get('migrate'), switched=switched,
                              failed_step=failed_step, failed_msg=failed_msg,
                              revert=bool(self.p.get('revert')) and record.get('from') is not None)
            self.ledger.data['transition'] = self.record  # replaces the rollout's record (no 'interrupted' event)
            self.release = self.record['to'] if self.record['revert'] and switched else self.current
            self._save()
            return None
        # No rollout in progress: it failed before it opened one (at the stage step), or after it finished.
        self.release = self.current
        last = self.ledger.data.get('last_transition') or {}
        step = self.p.get('failure_task') or 'an unknown step'
        msg = _sentence(self.p.get('failure_msg'))
        if self._finished_by_this_run(last):
            self.outcome = 'finished_then_failed'
            self.notes.append('Rollout of %s switched, restarted and passed its health checks, then failed at %s: %s %s stays current '
                              '(a healthy release is not rolled back for this). Fix the cause and run the rollout again to finish it.'
                              % (last['to'], step, msg, last['to']))
        else:
            self.outcome = 'stopped_before_switch'
            self.notes.append('Rollout stopped before the switch, at %s: %s Nothing else changed: %s still serves.'
                              % (step, msg, self.current or 'no release'))
        self._unlock()
        return self._result()

    def _finished_by_this_run(self, last):
        """Whether the rollout this automatic rollback is called for already finished (only a hook after it
        failed). The run id tells it when there is one; otherwise the lock owner and the release must both
        match, so a fixed owner does not mistake an earlier run's rollout for this one."""
        if last.get('direction') != 'rollout' or last.get('outcome') != 'rolled_out':
            return False
        if self.p.get('run_id'):
            return last.get('run_id') == self.p['run_id']
        return (last.get('owner') == self.p.get('lock_owner') and bool(self.p.get('release'))
                and last.get('to') == self.p['release'])

    # -- steps ------------------------------------------------------------------------------
    def _stage(self):
        self.rm = ReleaseManager(self._rm_params(with_stage=True), check_mode=self.check_mode, warn=self.host.warn)
        result = self.rm.run()
        if result.get('needs_src'):
            raise _Answer(result)
        self.stage = result
        self.release = result['release']
        self.locked = result['locked']
        self.before = {'current': result['current_before'],
                       'releases': dict((item['id'], item['status']) for item in result.get('releases') or []
                                        if not (result['created'] and item['id'] == self.release))}
        self.lock = self.rm.lock
        open_here = self.ledger.data.get('transition') or {}
        if result['up_to_date'] and not (open_here.get('direction') == 'rollout' and open_here.get('to') == self.release):
            # (A rollout of this release still open, killed inside its finish, is finished by the calls that follow.)
            self.outcome = 'up_to_date'
            if self.p.get('_plan') and self.check_mode:
                # The runbook playbook documents the release already current too (a rollout has nothing to write).
                with _Environ(self.migrations):
                    from ansible_collections.redbutton.deploy.plugins.module_utils._runbook import plan_facts  # only a rollout with a runbook
                    self.plan_facts = plan_facts(self)
            return 'ok', '%s is current, ok and identical: nothing to roll out' % self.release
        if not self.check_mode and _has_toggles(release_path(self.root, self.release)):
            from ansible_collections.redbutton.deploy.plugins.module_utils._feature import read_release_toggles
            read_release_toggles(release_path(self.root, self.release))  # a malformed declaration is refused before the switch
        entry = self.ledger.get(self.release) or {}
        if entry.get('status') == 'failed' and not self.p.get('force'):
            self.lock_fresh = result.get('locked') and self.rm.lock_before is None
            raise RedbuttonError('release %s is marked failed (its rollout failed; see the status playbook): stage the fixed '
                                 'code under a new release id, or pass force: true' % self.release)
        record = self.ledger.data.get('transition')
        if record and record.get('direction') == 'rollout' and record.get('to') == self.release:
            self.record = record  # an interrupted rollout of the same release: go on with it
            self.record['owner'] = self.p.get('lock_owner')
        else:
            from_id = self.current
            if record and record.get('direction') == 'rollout' and self.current == record.get('to') \
                    and self._status(self.current) != 'ok':
                from_id = record.get('from')  # the interrupted release never proved itself: go back further
            self._open_record('rollout', from_id if from_id != self.release else None, self.release,
                              created=result['created'])
        self._save()
        note = self._capture()
        self._save()
        if self.p.get('_plan'):
            with _Environ(self.migrations):
                from ansible_collections.redbutton.deploy.plugins.module_utils._runbook import plan_facts  # only a rollout with a runbook
                self.plan_facts = plan_facts(self)
        if result['created'] or self.ledger.modified:
            return 'changed', note
        return 'ok', note

    def _capture(self):
        record = self.record
        source = record.get('from')
        if not self.p['baseline'] or not source or record.get('baseline') or self.current != source:
            return ''
        name = 'before-%s' % self.release
        if self.check_mode and not self.p.get('_plan'):
            return 'would record baseline %s of %s' % (name, source)
        from ansible_collections.redbutton.deploy.plugins.module_utils._baseline import Baseline
        with _Environ(self.migrations):
            # Kept for the runbook's plan; in check mode (the runbook playbook) measured, not written.
            self.captured = Baseline(self.root, name, host=self.host, check_mode=self.check_mode).capture(
                rollout_probes(self.p, self.service, self.checks))
        if self.check_mode:
            return 'would record baseline %s of %s' % (name, source)
        record['baseline'] = name
        self.ledger.merge_metadata(self.release, {'baseline': name, 'baseline_of': source})
        return 'recorded baseline %s of %s' % (name, source)

    def _write_runbook(self):
        """The first call after a rollout's stage step writes the runbook its controller rendered from the stage
        step's plan, before any step that changes what serves (migrate, switch). Documentation never stops a
        rollout: a runbook that cannot be written is a warning."""
        files = (self.p.get('runbook') or {}).get('files')
        if not files or self.direction != 'rollout' or self.record is None or self.check_mode \
                or files.get('release') != self.record.get('to'):
            return
        try:
            from ansible_collections.redbutton.deploy.plugins.module_utils._runbook import write_on_host  # only a rollout with a runbook
            self.runbook = write_on_host(self.root, self.record['to'], files)
        except (RedbuttonError, IOError, OSError) as exc:
            self.host.warn('the runbook of %s could not be written on the host (%s); the rollout goes on'
                           % (self.record['to'], exc))

    def _switch(self):
        record = self.record
        if self.direction == 'auto_rollback':
            if not record.get('switched'):
                return 'skipped', 'the rollout never switched'
            if not record.get('revert'):
                self.rm.params['reason'] = 'rollout'
                self.ledger.set_status(record['from'], 'failed', actor=self.p.get('actor'), reason='rollout')
                return 'changed', '%s stays current, marked failed' % record['from']
        target = record['to']
        # A run killed between the rename of current and the ledger's write left the switch unrecorded: the symlink is
        # the truth. Its switch is written down here, so the restart, the statuses and the next rollback follow it.
        unrecorded = (self.current == target and record.get('from') not in (None, target) and 'switch' not in record['done']
                      and (self.ledger.data.get('last_switch') or {}).get('to') != target)
        if self.current == target and not unrecorded:
            self._declare_toggles(target)  # a run killed right after the switch may not have declared them
            return 'ok', '%s is already current' % target
        old = record['from'] if unrecorded else self.current
        self.rm.params.update(reason=self.direction, force=False, previous_status=self._previous_status(old))
        if unrecorded:
            self.rm.record_switch(target, old)
            self.rm.save()
        else:
            self.rm.after_switch = lambda: self._kill_point('during', 'switch')
            self.rm._activate(target)
        self.rm.params['previous_status'] = None
        toggles = self._declare_toggles(target)
        return 'changed', '%s from %s to %s%s' % (
            'current had been switched by a run stopped before the ledger recorded it, recorded now:' if unrecorded
            else 'current switched', record['from'], target,
            ('; new toggles at their defaults: %s' % ', '.join(toggles['added'])) if toggles['added'] else '')

    def _previous_status(self, old):
        """The status the release switched away from gets."""
        previous_status = {'rollout': None, 'rollback': 'rolled_back', 'auto_rollback': 'failed'}[self.direction]
        if previous_status is None and old and self._status(old) == 'active':
            # Current but never proven (its transition was interrupted): back to the status it had before that
            # transition when it was ok, otherwise it was undone.
            superseded = self.record.get('superseded') or {}
            previous_status = 'ok' if superseded.get('to') == old and superseded.get('to_status') == 'ok' else 'rolled_back'
        return previous_status

    def _declare_toggles(self, target):
        """The feature toggles the release declares and the host does not know yet, at their defaults."""
        if not _has_toggles(release_path(self.root, target), os.path.join(state_dir(self.root), TOGGLE_STATE_FILE)):
            toggles = {'changed': False, 'added': [], 'unknown': [], 'declared': [], 'warnings': []}  # what it would say
        else:
            from ansible_collections.redbutton.deploy.plugins.module_utils._feature import declare_release_toggles
            toggles = declare_release_toggles(self.root, release_path(self.root, target), actor=self.p.get('actor'),
                                              run_id=self.p.get('run_id'), check_mode=self.check_mode, ledger=self.ledger)
        for warning in toggles['warnings']:
            self.host.warn(warning)
        self.toggles = toggles
        self.rm.save()
        return toggles

    def _migrate(self):
        if not self.migrations:
            return 'skipped', ''
        record = self.record
        if self.direction == 'rollout':
            folder = os.path.join(release_path(self.root, record['to']), self.migrations['path'])
            if self.check_mode and not os.path.isdir(folder):
                # The stage step only predicted the release: its migrations are not on the host to plan.
                return 'skipped', ('would run the pending migrations of %s (not staged yet, so not planned in check mode; the '
                                   'runbook playbook plans them)' % record['to'])
            known = record.get('migrate') or {}

            def write_down(plan):
                # On disk before the first migration commits: a run killed half-way is migrated back down by the next.
                record['migrate'] = dict(known, version_before=known.get('version_before', plan.current),
                                         applied=list(known.get('applied') or []), pending=[item.name for item in plan.steps])
                self._save()
            result = self._run_migrator(folder, self.migrations.get('target') or 'latest',
                                        rehearse=self.migrations.get('rehearse'), before_change=write_down)
            applied = list(known.get('applied') or []) + _applied_names(result)
            before = known.get('version_before', result['version_before'])
            record['migrate'] = {'version_before': before, 'version_after': result['version_after'], 'applied': applied}
            if record.get('from') and self.ledger.get(record['from']) is not None and \
                    (self.ledger.get(record['from']).get('metadata') or {}).get('schema_version') is None:
                self.ledger.merge_metadata(record['from'], {'schema_version': before})
            self.ledger.merge_metadata(record['to'], {'schema_version': result['version_after']})
        elif self.direction == 'rollback':
            target = (self.ledger.get(record['to']).get('metadata') or {}).get('schema_version')
            undone = self.ledger.get(record['from']) if record.get('from') else None
            version_from = ((undone or {}).get('metadata') or {}).get('schema_version')
            if target is None or (version_from is not None and version_from == target):
                return 'ok', 'same schema version (%s): nothing to migrate' % target
            folder = os.path.join(release_path(self.root, record['from'] or record['to']), self.migrations['path'])
            result = self._run_migrator(folder, target)
        else:
            known = record.get('migrate') or {}
            started = known.get('applied') or known.get('pending')  # pending: it was stopped while migrating
            if not started or (record.get('switched') and not record.get('revert')):
                return 'skipped', 'the rollout applied no migration' if not started else ''
            folder = os.path.join(release_path(self.root, record['from']), self.migrations['path'])
            try:
                result = self._run_migrator(folder, known['version_before'])
            except RedbuttonError as exc:
                raise StepFailed('migrate', 'Migrating the database back down to version %s failed too: %s The database is at '
                                 'version %s; %s. Follow docs/migrations.md ("A down migration failed").'
                                 % (known['version_before'], _sentence(str(exc)[:600]),
                                    getattr(exc, 'result', {}).get('version_after', 'unknown'),
                                    ('current is %s' % self.current) if record.get('switched') else
                                    ('%s was not switched to and is kept for its down scripts' % record['from'])))
        self.migrate = {'version_before': result['version_before'], 'version_after': result['version_after'],
                        'applied': _applied_names(result)}
        if result.get('changed'):
            return 'changed', 'database from version %s to %s' % (result['version_before'], result['version_after'])
        return 'ok', 'database at version %s' % result['version_after']

    def _run_migrator(self, folder, target, rehearse=False, before_change=None):
        from ansible_collections.redbutton.deploy.plugins.module_utils._migrate import Migrator, new_backend
        m = self.migrations
        backend = new_backend(m.get('engine') or 'sqlite', m['database'], run_command=self.host.run_command,
                              password=m.get('login_password'))
        migrator = Migrator(backend, folder, target=target, root=self.root, allow_data_loss=m.get('allow_data_loss'),
                            backup=m.get('backup', True), rehearse=bool(rehearse), check_mode=self.check_mode,
                            before_change=before_change, after_step=lambda: self._kill_point('during', 'migrate'))
        with _Environ(m):
            result = migrator.run()
        for warning in result.get('warnings') or []:
            self.host.warn(warning)
        return result

    def _restart(self):
        service = Service(self.service, self.host, os.path.join(self.root, CURRENT_LINK))
        if not service.managed:
            return 'skipped', ''
        if self._kept():
            return 'skipped', 'nothing is restored'
        if self._status(self.current) == 'ok':
            return 'ok', '%s is current and ok: not restarted' % self.current
        if self.check_mode:
            return 'changed', 'would %s' % service.describe()
        service.restart()
        return 'changed', service.describe()

    def _kept(self):
        record = self.record or {}
        return self.direction == 'auto_rollback' and (not record.get('switched') or not record.get('revert'))

    def _verify(self):
        if not self.checks:
            return 'skipped', ''
        if self._kept():
            return 'skipped', 'nothing is restored'
        if self.check_mode and self.record and read_current(self.root) != self.record.get('to'):
            # Compare with the link on disk: in check mode self.current is the predicted one.
            return 'skipped', 'not run in check mode: %s is not current yet' % self.record.get('to')
        checks = HealthChecks(self.checks, self.host, os.path.join(self.root, CURRENT_LINK), retries=self.p['health_retries'],
                              delay=self.p['health_delay'], timeout=self.p['health_timeout'])
        passed, self.check_results = checks.run()
        if not passed:
            raise StepFailed('verify', 'health checks failed: %s' % report_failures(self.check_results))
        return 'ok', 'passed %d health check%s' % (len(self.check_results), '' if len(self.check_results) == 1 else 's')

    def _compare(self):
        if not self.p['baseline'] or self.direction == 'rollout':
            return 'skipped', ''
        record = self.record or {}
        if self.direction == 'auto_rollback':
            if self._kept():
                return 'skipped', ''
            name, described = record.get('baseline'), record.get('to')
        else:
            undone = self.ledger.get(record.get('from')) if record.get('from') else None
            meta = (undone or {}).get('metadata') or {}
            name, described = meta.get('baseline'), meta.get('baseline_of')
        if self.check_mode:
            return 'skipped', 'not compared in check mode'
        return self._compare_with(name, described, record.get('from'), self.p['baseline_verify_content'])

    def _compare_with(self, name, described, undone, verify_content):
        current = self.current
        if not name:
            self.compare = {'name': None, 'matched': None, 'differences': [], 'msg': (
                'WARNING: no baseline was recorded before %s was rolled out (it was rolled out before baselines existed, or with '
                'redbutton_baseline false): the rollback is not compared with a recorded state.' % undone)}
            self.host.warn(self.compare['msg'][len('WARNING: '):])
            return 'skipped', self.compare['msg']
        if described != current:
            self.compare = {'name': name, 'matched': None, 'differences': [],
                            'msg': 'Baseline %s describes %s, not the rollback target %s: not compared.' % (name, described, current)}
            return 'skipped', self.compare['msg']
        from ansible_collections.redbutton.deploy.plugins.module_utils._baseline import Baseline
        try:
            with _Environ(self.migrations):
                found = Baseline(self.root, name, host=self.host, verify_content=verify_content).compare()
        except RedbuttonError as exc:
            if 'not found' not in str(exc):
                raise
            self.compare = {'name': name, 'matched': None, 'differences': [], 'msg': (
                'WARNING: baseline %s is named in the ledger but its file is gone (%s): the rollback is not compared with a '
                'recorded state.' % (name, exc))}
            self.host.warn(self.compare['msg'][len('WARNING: '):])
            return 'skipped', self.compare['msg']
        self.compare = {'name': name, 'matched': not found['differences'], 'differences': found['differences'],
                        'found': found.get('found', {}), 'msg': found['msg']}
        if found['differences']:
            raise StepFailed('compare', (
                'the code is rolled back (%s is current and passed its health checks) but the host differs from the state recorded '
                'before %s was rolled out. %s stays current, marked active (not ok). Compare the report with what you expect, '
                'repair or restore what differs (docs/runbook.md, "the host differs from its baseline"), then run '
                'ansible-playbook redbutton.deploy.verify to compare again.\n%s' % (current, undone, current, found['msg'])))
        self.compare['msg'] = 'host matches baseline %s (%s)' % (name, self._found_summary(found.get('found', {})))
        return 'ok', self.compare['msg']

    @staticmethod
    def _found_summary(found, verb=''):
        parts = ['%s files%s' % ((found.get('release') or {}).get('count', '?'), verb)]
        if 'shared' in found:
            parts.append('shared data intact')
        parts.append('%d probes' % len(found))
        return ', '.join(parts)

    def _finish(self):
        record = self.record
        actor = self.p.get('actor')
        if self.direction == 'rollout':
            self.rm.params['reason'] = 'rollout'
            self.ledger.set_status(record['to'], 'ok', actor=actor, reason='rollout')
            self.rm.save()
            self._kill_point('during', 'finish')
            self.rm._prune(int(self.p['keep']), record['to'])
            self.pruned = list(self.rm.pruned)
            self._record_settings()
            from ansible_collections.redbutton.deploy.plugins.module_utils._button import install_button
            try:
                self.button = install_button(self.root, check_mode=self.check_mode)
            except RedbuttonError as exc:
                # The release is verified and ok: a command that cannot be written (a full disk) is a warning.
                self.host.warn('%s; the playbook rollback still works, and the next rollout installs it again' % exc)
            outcome = 'rolled_out'
        elif self.direction == 'rollback':
            self.ledger.set_status(record['to'], 'ok', actor=actor, reason='rollback')
            if self.compare and self.compare.get('matched'):
                self.ledger.merge_metadata(record['to'], {'baseline_checked': self.compare['name'], 'baseline_checked_at': utcnow()})
            outcome = 'rolled_back'
        else:
            if not record.get('switched'):
                if record.get('created') and self.ledger.get(record['from']) is not None:
                    self.rm.params['reason'] = 'auto_rollback'
                    self.rm._remove(record['from'], self.rm.present(record['from']))
                outcome = 'stopped_before_switch'
            elif not record.get('revert'):
                outcome = 'failed_kept'
            else:
                self.ledger.set_status(record['to'], 'ok', actor=actor, reason='auto_rollback')
                outcome = 'auto_rolled_back'
        self.outcome = outcome
        self._close_record(outcome)
        self._unlock()
        return 'changed', outcome.replace('_', ' ')

    def _record_settings(self):
        """What the on-host command needs to roll back like the playbook (no password)."""
        settings = dict((key, self.p.get(key)) for key in RECORDED_SETTINGS)
        settings['service'] = self.service
        migrations = dict(self.migrations)
        if migrations.pop('login_password', None):
            migrations['password_from'] = 'REDBUTTON_DB_PASSWORD or PGPASSWORD'
        settings['migrations'] = migrations
        path = os.path.join(state_dir(self.root), SETTINGS_FILE)
        if self.check_mode:
            return
        try:
            old = read_json(path, what='settings')
        except RedbuttonError:
            old = None
        if old != settings:
            atomic_write_json(path, settings)

    # -- failure ------------------------------------------------------------------------------
    def _fail(self, step, msg):
        record = self.record
        if record is not None and not self.check_mode:
            record['failed_step'] = record.get('failed_step') if self.direction == 'auto_rollback' else step
            record['failed_msg'] = record.get('failed_msg') if self.direction == 'auto_rollback' else msg
            self._save()
        if self.direction != 'rollout':
            try:
                self._unlock()
            except RedbuttonError as exc:
                self.host.warn('could not release the deploy lock: %s' % exc)
        result = self._result()
        result['failed_step'] = step
        result['msg'] = self._failure_sentence(step, msg)
        result['summary'] = result['msg']
        raise TransitionFailed(result['msg'], result)

    def _failure_sentence(self, step, msg):
        record = self.record or {}
        if self.direction == 'rollout':
            return 'Rollout of %s failed at %s: %s' % (self.release, step, _sentence(msg))
        if self.direction == 'rollback':
            if step == 'compare':
                return 'Rollback: %s' % msg
            moved = record.get('from') and self.current == record.get('to')
            where = ('current was switched from %s to %s (%s is marked rolled_back) but it did not pass its checks: choose another '
                     'target with -e redbutton_rollback_to=ID (see the status playbook) or fix forward.'
                     % (record.get('from'), self.current, record.get('from'))) if moved else 'current was not changed.'
            return 'Rollback failed at "%s": %s %s' % (step, _sentence(msg), where)
        head = 'Rollout of %s failed at %s: %s' % (record.get('from'), record.get('failed_step'), _sentence(record.get('failed_msg')))
        if step == 'migrate':
            return '%s %s' % (head, msg)
        if step == 'compare':
            return '%s It was rolled back automatically and marked failed, but %s' % (head, msg)
        what = {'switch': 'switching back to %s failed' % record.get('to'),
                'restart': 'restarting the restored %s failed' % record.get('to')}.get(
                    step, 'the restored %s fails its health checks too' % record.get('to'))
        return ('%s It was rolled back automatically and marked failed, but %s: %s %s is current. Follow docs/runbook.md '
                '("the restored release is unhealthy").' % (head, what, _sentence(msg), self.current))

    # -- verify only (read-only) ----------------------------------------------------------------
    def _verify_only(self):
        self.rm = ReleaseManager(self._rm_params(), check_mode=True, warn=self.host.warn).open()
        self.release = self.current
        self.before = self._snapshot()
        expected = self.p.get('release')
        status = self._status(self.current)
        try:
            if self.p['verify_ledger']:
                if self.current is None or (expected and self.current != expected) or status in BAD_STATUSES:
                    raise StepFailed('verify', 'the ledger of %s says current is %s (status %s), expected %s. See the ledger with the '
                                     'redbutton.deploy.status playbook.' % (self.root, self.current or 'nothing', status or 'none',
                                                                            expected or 'a release that is not failed or rolled_back'))
            for step in self.plan:
                self._run_step(step if step == 'verify' else 'verify_compare')
        except StepFailed as exc:
            result = self._result()
            result.update(failed_step=exc.step, msg='%s: %s' % (self.current, exc.msg))
            result['summary'] = result['msg']
            raise TransitionFailed(result['msg'], result)
        return self._result()

    def _verify_compare(self):
        name = self.p.get('baseline_name')
        if name == 'auto':
            name = ''
            for entry in self.ledger.ordered():
                meta = entry.get('metadata') or {}
                if meta.get('baseline_of') == self.current and meta.get('baseline'):
                    name = meta['baseline']
        if not name or not self.p['baseline']:
            self.compare = {'name': None, 'matched': None, 'differences': [], 'msg': (
                'No baseline describes %s (baselines are recorded by a rollout before it switches away from a release): not '
                'compared. Name one with -e redbutton_verify_baseline=NAME (on the host: redbutton verify --baseline NAME; see %s).'
                % (self.current or 'the current release', os.path.join(state_dir(self.root), 'baselines')))}
            return 'skipped', self.compare['msg']
        from ansible_collections.redbutton.deploy.plugins.module_utils._baseline import Baseline
        with _Environ(self.migrations):
            found = Baseline(self.root, name, host=self.host, verify_content=self.p['baseline_verify_content']).compare()
        self.compare = {'name': name, 'matched': not found['differences'], 'differences': found['differences'],
                        'found': found.get('found', {}), 'msg': found['msg']}
        if found['differences']:
            raise StepFailed('compare', 'differs from baseline %s (current release: %s). Repair or restore what differs, or roll back '
                                        '(docs/runbook.md, "the host differs from its baseline").\n%s' % (name, self.current, found['msg']))
        self.compare['msg'] = 'host matches baseline %s (%s)' % (name, self._found_summary(found.get('found', {}), ' read again'))
        return 'ok', self.compare['msg']

    # -- the answer -----------------------------------------------------------------------------
    def _snapshot(self):
        return {'current': self.current, 'releases': self.ledger.summary()}

    def _summary(self):
        parts = []
        current = self.current
        if self.outcome == 'stopped_before_switch' and self.record is None and self.notes:
            return ' '.join(self.notes)
        if self.outcome == 'finished_then_failed':
            return ' '.join(self.notes)
        if current:
            checks = [r for r in self.check_results if r['passed']]
            text = '%s serves' % current
            if self.direction in ('rollback', 'auto_rollback') and self.outcome in ('rolled_back', 'auto_rolled_back'):
                text += ' again'
            if checks:
                text += ' and passed %d health check%s' % (len(checks), '' if len(checks) == 1 else 's')
            parts.append(text)
        else:
            parts.append('no release is current')
        if self.compare and self.compare.get('msg') and self.compare.get('matched'):
            parts.append(self.compare['msg'])
        record = self.record or self.closed or {}
        if self.outcome == 'up_to_date':
            parts.append('it was already current and ok: nothing changed')
        elif self.outcome == 'rolled_out' and record.get('from'):
            parts.append('%s is the rollback target' % (self.ledger.previous(current, present=self.rm.present) or record['from']))
        elif self.outcome in ('rolled_back', 'auto_rolled_back', 'failed_kept') and record.get('from'):
            parts.append('%s is marked %s' % (record['from'], self._status(record['from']) or 'removed'))
        elif self.outcome == 'stopped_before_switch':
            parts.append('the unfinished %s was removed' % record.get('from') if record.get('created') else 'nothing else changed')
        elif self.record is not None:
            parts.append('the %s to %s is not finished yet (done: %s)' % (self.direction, self.record.get('to'),
                                                                          ', '.join(self.record.get('done') or []) or 'nothing'))
        sentence = '; '.join(parts)
        if self.notes:
            sentence = ' '.join(self.notes) + ' ' + sentence
        return sentence

    def _auto_message(self):
        """What an automatic rollback tells the operator: what failed, and where the host stands now."""
        record = self.closed or self.record or {}
        record_from, record_to = record.get('from'), record.get('to')
        step = self.auto_failure[0]
        msg = _sentence(self.auto_failure[1])
        if self.outcome == 'stopped_before_switch':
            removed = ', and the unfinished %s was removed' % record_from if self.auto_failure[2] else ''
            return ('Rollout of %s stopped before the switch, at %s: %s Nothing else changed: %s still serves%s.'
                    % (record_from, step, msg, self.current or 'the release that was current', removed))
        if self.outcome == 'failed_kept':
            why = 'There is no earlier release to go back to' if record_to is None else \
                'Automatic rollback is off (redbutton_auto_rollback: false)'
            return ('Rollout of %s failed after the switch, at %s: %s %s: %s stays current and is marked failed. Roll back with the '
                    'redbutton.deploy.rollback playbook, or fix it and roll out again.' % (record_from, step, msg, why, record_from))
        checks = len([r for r in self.check_results if r['passed']])
        compared = ''
        if self.compare and self.compare.get('msg'):
            compared = ' ' + _sentence(self.compare['msg'][0].upper() + self.compare['msg'][1:])
        return ('Rollout of %s failed at %s: %s Rolled back automatically: %s serves again and passed its %d health check%s; %s is '
                'marked failed.%s' % (record_from, step, msg, record_to, checks, '' if checks == 1 else 's', record_from, compared))

    def _result(self):
        if self.direction == 'auto_rollback' and self.outcome in ('stopped_before_switch', 'failed_kept', 'auto_rolled_back') \
                and self.auto_failure:
            msg = self._auto_message()
        else:
            msg = self._summary()
        source = self.record or self.closed or {}
        if source.get('direction') == 'auto_rollback':
            moved = bool(source.get('switched') and source.get('revert') and self.current == source.get('to'))
        else:
            moved = bool(source) and source.get('to') == self.current and source.get('from') != self.current
        result = {
            'changed': bool(self.changed or (self.rm is not None and self.rm.ledger is not None and self.ledger.modified
                                             and self.direction != 'verify')),
            'direction': self.direction,
            'release': self.release,
            'from': source.get('from') if source else None,
            'to': source.get('to') if source else self.release,
            'moved': moved,
            'current': self.current,
            'up_to_date': self.outcome == 'up_to_date',
            # This transition's stage step extracted the release (recorded, so later calls say it too).
            'created': bool(self.stage and self.stage.get('created')) or bool(source.get('created')),
            'open': self.record is not None,
            'outcome': self.outcome or ('in_progress' if self.record is not None else 'verified'),
            'steps': self.steps,
            'checks': self.check_results,
            'compare': self.compare,
            'migrate': self.migrate,
            'statuses': self.ledger.summary(),
            'failed_step': None,
            'msg': msg,
            'summary': msg,
            'releases': [dict(item, present=self.rm.present(item['id'])) for item in self._releases()],
            'previous': self.ledger.previous(self.current, present=self.rm.present),
            'pruned': self.pruned,
            'locked': self.locked,
            'checksum': (self.ledger.get(self.release) or {}).get('checksum') if self.release else None,
            'path': release_path(self.root, self.release) if self.release else None,
            'notes': self.notes,
            'toggles': self.toggles,
            'button': self.button,
            'runbook': self.runbook,
        }
        if self.plan_facts is not None:
            result['plan'] = self.plan_facts
        if self.diff:
            result['diff'] = {'before': self.before, 'after': self._snapshot()}
        return result

    def _releases(self):
        from ansible_collections.redbutton.deploy.plugins.module_utils._release import release_view
        return release_view(self.root, self.ledger, self.current)


class _Answer(Exception):
    """The stage step's early answer to the action plugin's probe (upload needed)."""

    def __init__(self, result):
        super(_Answer, self).__init__('needs src')
        self.result = result
