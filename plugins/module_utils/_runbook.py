# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The runbook of one release: the plan facts the transition engine gathered on each host,
turned into a plan per host and groups of hosts whose plan is identical.

On the host (the engine, hidden option _plan of a rollout's stage step): ``plan_facts`` gathers
  root, info (the ledger before staging: current, releases, lock), stage (the release and whether
  this call staged it), migrate (the migrations planned in check mode, or None), migrations (the
  settings, no password), migrate_when, baseline (the baseline recorded before the switch, or
  measured in check mode), health_checks, service, shared_paths, auto_rollback;
  ``write_on_host`` writes the rendered runbook under <root>/.redbutton/runbooks atomically.
On the controller (the transition action plugin) the facts get host, app, artifact and checksum
(given), and ``build_runbook`` makes the runbook's facts for the template and the JSON twin;
``merge_runbooks`` adds a host to the controller copy of the same run.
Shared context: inventory (list of sources), cli_extra (the run's own -e words, which every command repeats), extra
(the -e values the commands set themselves), generated_at.

Every sentence a template needs is derived here, from the plan, so the markdown and its JSON
twin say the same thing. Stdlib only.

Private to the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import shutil
import tempfile

from ansible_collections.redbutton.deploy.plugins.module_utils._common import RedbuttonError, atomic_write_bytes, state_dir

SCHEMA = 1
RUNBOOK_DIR = '.redbutton/runbooks'
RUNBOOKS = 'runbooks'  # under <root>/.redbutton
# Keys of a host's facts that only the controller knows (the rest comes from the engine's plan).
CONTROLLER_KEYS = ('host', 'app', 'artifact', 'checksum')
ON_HOST_COMMAND = '.redbutton/bin/redbutton'
# Replaced by the hosts a plan applies to (one host, or a group of identical hosts).
HOSTS = '@HOSTS@'
LIMIT = ['--limit', HOSTS]


def shell_quote(value):
    """Quote a word for a POSIX shell only when it needs it."""
    text = str(value)
    if text and all(c.isalnum() or c in '@%+=:,./_-' for c in text):
        return text
    return "'" + text.replace("'", "'\"'\"'") + "'"


def command(words):
    return ' '.join(shell_quote(word) for word in words)


def check_target(check):
    """What a health check looks at: its URL, host:port or command."""
    if check.get('url'):
        return check['url']
    if check.get('port'):
        return '%s:%s' % (check.get('host') or '127.0.0.1', check['port'])
    cmd = check.get('command')
    if isinstance(cmd, list):
        return command(cmd)
    return cmd or ''


def check_kind(check):
    if check.get('url'):
        return 'http'
    if check.get('port'):
        return 'tcp'
    return 'command'


def _probe_value(probe):
    """A baseline probe's recorded result, as one short string."""
    result = probe.get('result') or {}
    if 'error' in result:
        return 'cannot be measured now: %s' % result['error']
    if probe.get('path') is not None:
        if not result.get('exists', True):
            return 'absent'
        return '%s files, %s bytes' % (result.get('count', 0), result.get('bytes', 0))
    if probe.get('sql') is not None:
        return str(result.get('value'))
    if probe.get('command') is not None:
        parts = []
        for key in ('rc', 'stdout'):
            if key in result:
                parts.append('%s=%s' % (key, result[key]))
        return ', '.join(parts) or json.dumps(result, sort_keys=True)
    if probe.get('service') is not None:
        return ', '.join('%s=%s' % (k, result[k]) for k in sorted(result)) or 'unknown'
    if probe.get('packages') is not None:
        return ', '.join('%s %s' % (k, v) for k, v in sorted((result.get('packages') or result).items()))
    return json.dumps(result, sort_keys=True)


def _probe_kind(probe):
    for kind in ('path', 'command', 'sql', 'service', 'packages'):
        if probe.get(kind) is not None:
            return kind
    return 'unknown'


def _probe_what(probe):
    kind = _probe_kind(probe)
    if kind == 'path':
        return probe['path']
    if kind == 'sql':
        return '%s on %s' % (probe['sql'], probe.get('database') or '')
    if kind == 'command':
        return check_target(probe)
    if kind == 'service':
        return 'unit %s' % probe['service']
    if kind == 'packages':
        return 'packages %s' % ', '.join(probe['packages'])
    return ''


class HostPlan(object):
    """The plan of one host, built from what its read-only calls returned."""

    def __init__(self, raw, context):
        self.raw = raw
        self.context = context
        self.host = raw['host']
        self.root = raw['root']
        self.info = raw.get('info') or {}
        self.stage = raw.get('stage') or {}

    # pieces --------------------------------------------------------------------------------
    def _statuses(self):
        return dict((r['id'], r.get('status')) for r in self.info.get('releases') or [])

    def _recorded_schema(self, release_id):
        for entry in self.info.get('releases') or []:
            if entry['id'] == release_id:
                return (entry.get('metadata') or {}).get('schema_version')
        return None

    def _base_args(self):
        words = []
        for source in self.context.get('inventory') or []:
            words += ['-i', source]
        return words

    def _extra(self, **more):
        # The run's own -e values first (its vars files, its service and checks): the commands repeat the run, and the
        # values each command sets itself come after them, so they win.
        words = []
        for word in self.context.get('cli_extra') or []:
            words += ['-e', word]
        values = dict(self.context.get('extra') or {})
        values.update(more)
        for name in sorted(values):
            if values[name] not in (None, ''):
                words += ['-e', '%s=%s' % (name, values[name])]
        return words

    def commands(self, release, release_now):
        base = ['ansible-playbook'] + self._base_args()
        rollout_extra = dict(redbutton_release=release, redbutton_artifact=self.raw.get('artifact'))
        if self.raw.get('checksum'):
            rollout_extra['redbutton_artifact_checksum'] = self.raw['checksum']
        result = {
            'rollout': command(base + ['redbutton.deploy.rollout'] + self._extra(**rollout_extra) + LIMIT),
            'status': command(base + ['redbutton.deploy.status'] + self._extra() + LIMIT),
            'verify': command(base + ['redbutton.deploy.verify'] + self._extra() + LIMIT),
            'rollback': None,
            'rollback_on_host': None,
            'unlock_stale': command(['ansible'] + self._base_args()
                                    + [HOSTS, '-m', 'redbutton.deploy.lock', '-a', 'root=%s state=absent force=true' % self.root]),
        }
        if release_now and release_now != release:
            result['rollback'] = command(base + ['redbutton.deploy.rollback'] + self._extra(redbutton_rollback_to=release_now) + LIMIT)
            result['rollback_on_host'] = command(['%s/%s' % (self.root.rstrip('/'), ON_HOST_COMMAND), 'rollback'])
        return result

    def checks(self):
        return [dict(name=c.get('name'), kind=check_kind(c), target=check_target(c))
                for c in self.raw.get('health_checks') or []]

    def baseline(self):
        result = self.raw.get('baseline')
        if not result or not result.get('baseline'):
            return None
        document = result['baseline']
        probes = []
        entries = None
        for probe in document.get('probes') or []:
            item = dict(name=probe.get('name'), kind=_probe_kind(probe), what=_probe_what(probe),
                        compare=probe.get('compare') or ('no_loss' if probe.get('name') == 'shared' else 'exact'),
                        value=_probe_value(probe))
            if item['kind'] == 'path' and probe.get('name') == 'release':
                entries = (probe.get('result') or {}).get('count')
            if item['kind'] == 'sql':
                item['rows'] = (probe.get('result') or {}).get('value')
            probes.append(item)
        return dict(name=document.get('name'), file='%s/.redbutton/baselines/%s.json' % (self.root.rstrip('/'), document.get('name')),
                    entries=entries, shared_paths=list(self.raw.get('shared_paths') or []), probes=probes)

    def database(self, release, release_now):
        migrate = self.raw.get('migrate')
        settings = self.raw.get('migrations') or {}
        if not settings:
            return None
        if not migrate:
            raise RedbuttonError('host %s: redbutton_migrations is set but the migration plan is missing' % self.host)
        applied = migrate.get('applied') or []
        backup = bool(settings.get('backup', True))
        migrations = []
        before = migrate.get('version_before', 0)
        # The plan may have read a scratch copy of the release: name the files where the rollout runs them.
        read_from = (migrate.get('path') or '').rstrip('/')
        real = '%s/releases/%s/%s' % (self.root.rstrip('/'), release, str(settings.get('path') or '').strip('/'))

        def where(path):
            if path and read_from and path.startswith(read_from + '/'):
                return real + path[len(read_from):]
            return path

        for step in applied:
            drops = [d['drops'] for d in step.get('down_drops') or []]
            migrations.append(dict(
                version=step['version'], title=step.get('title'), up=where(step.get('file')), down=where(step.get('down_file')),
                drops=drops, lossy=bool(drops), down_error=step.get('down_error'),
                transaction=step.get('transaction', True), no_transaction_reason=step.get('no_transaction_reason'),
                verify=where(step.get('verify_file')), before=before))
            before = step['version']
        recorded = self._recorded_schema(release_now) if release_now else None
        rollback_to = recorded if recorded is not None else migrate.get('version_before')
        lossy = [m for m in migrations if m['lossy']]
        return dict(
            engine=migrate.get('engine') or settings.get('engine', 'sqlite'),
            database=migrate.get('database') or settings.get('database'),
            history_table=migrate.get('history_table') or 'redbutton_schema_history',
            migrate_when=self.raw.get('migrate_when') or 'before_switch',
            version_now=migrate.get('version_before'),
            version_after=migrate.get('version_after'),
            rollback_version=rollback_to,
            rollback_version_recorded=recorded is not None,
            migrations=migrations,
            lossy=[m['version'] for m in lossy],
            backup=bool(lossy) and backup,
            backup_dir='%s/.redbutton/backups' % self.root.rstrip('/'),
            allow_data_loss=bool(settings.get('allow_data_loss', False)),
            path=settings.get('path'),
        )

    def lock(self):
        lock = self.info.get('lock')
        if not lock:
            return None
        return dict(owner=lock.get('owner'), since=lock.get('acquired_at'), expires=lock.get('expires_at'),
                    error=lock.get('error'))

    # failures ------------------------------------------------------------------------------
    def failures(self, plan):
        """What to do when each step fails, from this plan."""
        now = plan['release_now']
        release = plan['release']
        cmds = plan['commands']
        result = []
        lock = plan['lock']
        held = (' It is held right now by %s (since %s, expires %s).' % (lock['owner'], lock['since'], lock['expires'])
                if lock and lock.get('owner') else '')
        result.append(dict(
            step='lock', title='The deploy lock is held by another run',
            stands='Nothing changed: %s still serves.%s' % (now or 'no release', held),
            do=['See who holds it: `%s`' % cmds['status'],
                'If that run is alive, wait for it (or give -e redbutton_lock_timeout=300) and run the rollout again: `%s`' % cmds['rollout'],
                'If that run died (its job is gone, the lock names it), remove its lock, then run again: `%s`' % cmds['unlock_stale']],
            check=['`%s/.redbutton/lock` names the owner, when it took the lock and when it expires' % self.root.rstrip('/')]))
        what = self.raw.get('artifact')
        result.append(dict(
            step='stage', title='The artifact does not match its checksum, cannot be fetched, or is refused',
            stands='Nothing was staged and %s still serves; no staging directory is left under %s/releases.' % (now or 'no release', self.root.rstrip('/')),
            do=['Compare the artifact with the checksum: `sha256sum %s` (expected %s)' % (what, plan['checksum'] or 'none given')
                if not str(what).startswith(('http://', 'https://')) else
                'Fetch %s from a host (`curl -fsSLo /tmp/a %s && sha256sum /tmp/a`): a 404 means it was not published; compare with %s'
                % (what, what, plan['checksum'] or 'the checksum you expect'),
                'Rebuild or republish the artifact, or correct redbutton_artifact_checksum, then run: `%s`' % cmds['rollout']],
            check=['The error names the expected and the actual checksum, or the URL and the HTTP status']))
        database = plan['database']
        if database and database['migrations']:
            for migration in database['migrations']:
                result.append(self._migration_failure(plan, migration))
        result.append(dict(
            step='verify', title='A health check fails after the switch',
            stands=('The rollout rolls back by itself: %s serves again%s and %s is marked failed.'
                    % (now, (', the database goes back to version %s' % database['version_now']) if database and database['migrations'] else '', release))
            if now and self.raw.get('auto_rollback', True) else
            ('%s stays current and is not marked ok (automatic rollback is off or there is no earlier release).' % release),
            do=['Look at each check by hand: %s' % '; '.join('%s (%s)' % (c['name'], c['target']) for c in plan['checks'])
                if plan['checks'] else 'There are no health checks: verify the service by hand',
                ('If the automatic rollback did not finish, roll back: `%s`' % cmds['rollback']) if cmds['rollback'] else
                'There is no earlier release to roll back to on this host: fix forward with a new release id'],
            check=['Then verify: `%s`' % cmds['verify']]))
        if cmds['rollback'] and plan['baseline']:
            result.append(dict(
                step='compare', title='The rollback finds differences from the baseline',
                stands='%s serves, but the host differs from baseline %s recorded before this rollout.' % (now, plan['baseline']['name']),
                do=['Read the differences the rollback printed (each file, row count or probe by name)',
                    'Compare with %s' % plan['baseline']['file']],
                check=['%s: %s' % (p['name'], p['value']) for p in plan['baseline']['probes']]))
        return result

    def _migration_failure(self, plan, migration):
        database = plan['database']
        cmds = plan['commands']
        before = migration['before']
        if migration['transaction']:
            stands = ('Migration %s (%s) runs in one transaction: the database stays at version %s, with the migrations up to %s applied'
                      % (migration['version'], migration['up'], before, before)) if before else (
                'Migration %s (%s) runs in one transaction: the database stays at version 0, nothing applied'
                % (migration['version'], migration['up']))
        else:
            stands = ('Migration %s (%s) runs WITHOUT a transaction (%s): the database is at version %s in the history table, '
                      'but statements of %s before the failing one may have run'
                      % (migration['version'], migration['up'], migration['no_transaction_reason'], before, migration['version']))
        back = database['version_now']
        if plan['release_now'] and self.raw.get('auto_rollback', True):
            stands += ('. The rollout then undoes its own migrations down to version %s%s and %s keeps serving'
                       % (back, ' (after switching back)' if database['migrate_when'] == 'after_switch' else '', plan['release_now']))
        # JSON arguments: a PostgreSQL connection string has spaces that key=value arguments would split.
        arguments = json.dumps(dict(engine=database['engine'], database=database['database'],
                                    path='%s/current/%s' % (self.root.rstrip('/'), database['path']), target=back,
                                    root=self.root.rstrip('/')), sort_keys=True)
        migrate_down = command(['ansible'] + self._base_args() + [HOSTS, '-m', 'redbutton.deploy.migrate', '-a', arguments])
        return dict(
            step='migrate', version=migration['version'],
            title='Migration %s (%s) fails' % (migration['version'], migration['title']),
            stands=stands,
            do=['Go back (if the database is not at version %s yet): `%s`' % (back, migrate_down),
                'Go on: fix %s in a new release (a new release id) and roll that out; or, if the cause was outside the script '
                '(the database was down, a lock timed out), run the same rollout again: `%s`' % (migration['up'], cmds['rollout'])],
            check=['`SELECT max(version) FROM %s` gives %s' % (database['history_table'], before),
                   'nothing %s creates exists yet' % migration['up']] + self._lossy_note(database, migration))

    @staticmethod
    def _lossy_note(database, migration):
        if not migration['lossy']:
            return []
        if database['backup']:
            return ['going back past version %s runs %s, which drops %s: a backup is written into %s first'
                    % (migration['version'], migration['down'], ', '.join(migration['drops']), database['backup_dir'])]
        if database['allow_data_loss']:
            return ['going back past version %s runs %s, which drops %s: NO backup is taken (backup: false, allow_data_loss: true)'
                    % (migration['version'], migration['down'], ', '.join(migration['drops']))]
        return ['going back past version %s runs %s, which drops %s: refused while that holds data (backup: false and '
                'allow_data_loss: false)' % (migration['version'], migration['down'], ', '.join(migration['drops']))]

    # the whole plan --------------------------------------------------------------------------
    def build(self):
        stage = self.stage
        release = stage.get('release')
        if not release:
            raise RedbuttonError('host %s: the release id could not be resolved (%s)' % (self.host, stage.get('msg') or 'no answer'))
        release_now = self.info.get('current')
        statuses = self._statuses()
        plan = dict(
            app=self.raw.get('app'),
            root=self.root,
            release=release,
            release_now=release_now,
            status_now=statuses.get(release_now) if release_now else None,
            up_to_date=bool(stage.get('up_to_date')),
            staged_already=not stage.get('created') and release in statuses,
            checksum=stage.get('checksum') or self.raw.get('checksum') or None,
            artifact=self.raw.get('artifact'),
            statuses=statuses,
            rollback_target=release_now if release_now and release_now != release else None,
            service=dict((k, v) for k, v in (self.raw.get('service') or {}).items() if k in ('manager', 'name', 'scope', 'action')),
            checks=self.checks(),
            baseline=self.baseline(),
            database=self.database(release, release_now),
            lock=self.lock(),
            runbook='%s/%s/%s.md' % (self.root.rstrip('/'), RUNBOOK_DIR, release),
            auto_rollback=bool(self.raw.get('auto_rollback', True)),
        )
        plan['commands'] = self.commands(release, release_now)
        plan['failures'] = self.failures(plan)
        return plan


def build_runbook(raw_hosts, context):
    """The runbook's facts: {schema, app, release, generated_at, hosts: {host: plan}, groups: [{hosts, plan}]}."""
    if not raw_hosts:
        raise RedbuttonError('no host answered: the runbook has nothing to describe')
    plans = {}
    for raw in raw_hosts:
        plans[raw['host']] = HostPlan(raw, context).build()
    groups = []
    index = {}
    for host in sorted(plans):
        key = json.dumps(plans[host], sort_keys=True)
        if key not in index:
            index[key] = len(groups)
            groups.append(dict(hosts=[], plan=plans[host]))
        groups[index[key]]['hosts'].append(host)
    for group in groups:
        group['plan'] = _with_hosts(group['plan'], group['hosts'])
    for host in plans:
        plans[host] = _with_hosts(plans[host], [host])
    releases = sorted(set(p['release'] for p in plans.values()))
    apps = sorted(set(str(p['app']) for p in plans.values() if p['app']))
    return dict(schema=SCHEMA, app=apps[0] if len(apps) == 1 else ', '.join(apps) or None,
                release=releases[0] if len(releases) == 1 else ', '.join(releases),
                generated_at=context.get('generated_at'), inventory=list(context.get('inventory') or []),
                hosts=plans, groups=groups)


def _with_hosts(plan, hosts):
    """The plan with HOSTS in its commands replaced by the hosts it applies to."""
    return json.loads(json.dumps(plan).replace(HOSTS, ','.join(hosts)))


# -- on the host: the plan facts (stage step with _plan) and the files ------------------------------
def runbook_paths(root, release):
    """Where a release's runbook lives on the host: <root>/.redbutton/runbooks/<release>.md and .json."""
    directory = os.path.join(state_dir(root), RUNBOOKS)
    return os.path.join(directory, release + '.md'), os.path.join(directory, release + '.json')


def plan_facts(engine):
    """What a runbook is written from, read on the host by a rollout's stage step: the ledger before
    staging, the release, the migrations planned in check mode, the baseline recorded before the switch
    (measured, not written, in check mode) and the settings. ``engine`` is the Transition after staging."""
    p = engine.p
    stage = engine.stage or {}
    release = engine.release
    created = bool(stage.get('created'))
    releases = [dict(id=entry['id'], status=entry.get('status'), metadata=entry.get('metadata') or {})
                for entry in engine.ledger.ordered() if not (created and entry['id'] == release)]
    migrations = dict(engine.migrations or {})
    migrations.pop('login_password', None)
    now = stage.get('current_before')
    if stage.get('up_to_date') and now == release:
        # The release is current already: its runbook is the rollout's that made it current, whose rollback target is the
        # release a default rollback goes back to (not "nothing to roll back to").
        now = engine.ledger.previous(now, present=engine.rm.present)
    return dict(
        root=engine.root,
        info=dict(exists=os.path.isdir(state_dir(engine.root)), current=now, releases=releases,
                  lock=_foreign_lock(engine)),
        stage=dict(release=release, created=created, up_to_date=bool(stage.get('up_to_date')), checksum=stage.get('checksum')),
        migrate=plan_migrations(engine, release) if engine.migrations else None,
        migrations=migrations,
        migrate_when=p.get('migrate_when') or 'before_switch',
        baseline=_baseline_facts(engine),
        health_checks=[dict((k, v) for k, v in check.items() if k in ('name', 'url', 'port', 'host', 'command') and v is not None)
                       for check in engine.checks],
        service=dict(engine.service or {}),
        shared_paths=list(p.get('shared_paths') or []),
        auto_rollback=bool(p.get('revert', True)),
    )


def _foreign_lock(engine):
    """The lock as an operator must know it: None when this call holds it (a rollout) or nobody does."""
    if engine.p.get('lock_owner'):
        return None
    from ansible_collections.redbutton.deploy.plugins.module_utils._lock import DeployLock
    try:
        return DeployLock(engine.root).read()
    except RedbuttonError as exc:
        return dict(error=str(exc))


def _baseline_facts(engine):
    """The baseline the rollout records before it switches: captured by this call (or measured in check
    mode), or recorded by the interrupted run this one goes on with."""
    if getattr(engine, 'captured', None):
        return dict(baseline=engine.captured['baseline'])
    name = (engine.record or {}).get('baseline')
    if not name:
        return None
    from ansible_collections.redbutton.deploy.plugins.module_utils._baseline import Baseline, summarise_document
    return dict(baseline=summarise_document(Baseline(engine.root, name).load()))


def plan_migrations(engine, release):
    """The migrations of ``release`` planned in check mode (nothing is applied). A release not staged yet
    (check mode) is unpacked into a scratch root first: the real root is not touched."""
    from ansible_collections.redbutton.deploy.plugins.module_utils._migrate import Migrator, new_backend
    from ansible_collections.redbutton.deploy.plugins.module_utils._release import ReleaseManager, release_path
    settings = engine.migrations
    base = engine.root
    scratch = None
    try:
        if not os.path.isdir(release_path(engine.root, release)):
            if not engine.p.get('src'):
                raise RedbuttonError('the migrations of %s cannot be planned: the release is not staged in %s and no src was '
                                     'given' % (release, engine.root))
            scratch = tempfile.mkdtemp(prefix='redbutton-runbook-')
            params = engine._rm_params(with_stage=True)  # pylint: disable=protected-access
            params.update(root=scratch, release=release, lock_owner=None, unlock_if_current=False, _probe=False,
                          _content=None, _controller=None, metadata={}, shared_paths=[], actor=None, run_id=None)
            ReleaseManager(params, check_mode=False, warn=engine.host.warn).run()
            base = scratch
        folder = os.path.join(release_path(base, release), settings['path'])
        backend = new_backend(settings.get('engine') or 'sqlite', settings['database'], run_command=engine.host.run_command,
                              password=settings.get('login_password'))
        migrator = Migrator(backend, folder, target=settings.get('target') or 'latest',
                            root=engine.root if os.path.isdir(state_dir(engine.root)) else None,
                            allow_data_loss=settings.get('allow_data_loss'), backup=settings.get('backup', True), check_mode=True)
        result = migrator.run()
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    keep = ('engine', 'database', 'history_table', 'path', 'version_before', 'version_after', 'target', 'latest')
    planned = dict((key, result.get(key)) for key in keep)
    planned['applied'] = [dict((k, v) for k, v in step.items() if k != 'sql') for step in result.get('applied') or []]
    return planned


def write_on_host(root, release, files, check_mode=False):
    """Write a rendered runbook ({markdown, json}) under <root>/.redbutton/runbooks, each file atomically;
    a file with the same content is left alone. Returns {path, json, changed}."""
    markdown, twin = runbook_paths(root, release)
    changed = False
    for path, text in ((markdown, files.get('markdown')), (twin, files.get('json'))):
        if text is None:
            continue
        data = text.encode('utf-8')
        try:
            with open(path, 'rb') as handle:
                same = handle.read() == data
        except (IOError, OSError):
            same = False
        if not same:
            changed = True
            if not check_mode:
                atomic_write_bytes(path, data, label='runbook')
    return dict(path=markdown, json=twin, changed=changed)


# -- on the controller: one host's facts, and the copy of a whole run ----------------------------------
def host_facts(plan, host, app=None, artifact=None, checksum=None):
    """The engine's plan of one host with what only the controller knows (a URL's credentials removed)."""
    raw = dict(plan)
    text = str(artifact or '')
    lowered = text.lower()
    if lowered.startswith(('http://', 'https://')) and '@' in text.split('://', 1)[1].split('/', 1)[0]:
        scheme, rest = text.split('://', 1)
        text = '%s://%s' % (scheme, rest.split('@', 1)[1])
    raw.update(host=host, app=app, artifact=text, checksum=checksum or '')
    return raw


def merge_hosts(kept, raw, run_id):
    """The hosts of the controller copy after ``raw``: those this run wrote before (its other hosts and
    batches), then this one. A copy from another run is replaced."""
    hosts = {}
    if isinstance(kept, dict) and kept.get('run') == run_id and isinstance(kept.get('hosts'), dict):
        hosts.update(kept['hosts'])
    hosts[raw['host']] = raw
    return dict(run=run_id, hosts=hosts)
