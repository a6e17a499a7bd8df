# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Crash safety: a run killed at any point is finished by a plain re-run.

Each case brings its own root to the state it needs (v1 current, or v1 then v2) through the engine
itself, in this process (no ansible-playbook start-up), then runs ansible-playbook and kills it:
- at a kill point: REDBUTTON_KILL_AT=<direction>:<before|after|during>:<step> makes the engine SIGKILL its
  process group inside the module, at that point (during:switch: current renamed, the ledger not yet written;
  during:finish: the release marked ok, before the prune and the close of the transition). Ansible runs each task in a worker of its own
  session, so that is the worker and the module; ansible-playbook then stops at once ("A worker was
  found in a dead state"): no rescue, no always, exactly as if the controller had died there;
- at a wall-clock moment: the playbook's process group and every process under it are killed.
Then the same playbook runs again, and the test checks what a user relies on: the version served
over HTTP (so the restart really happened), `current`, the ledger's statuses, no open transition,
no lock, and a file written into shared/ before the crash.

Also: ENOSPC in the middle of a rollout (a small tmpfs), and the two lock races.

The cases run a few at a time (CRASH_WORKERS, default 3) in one module-scoped campaign, each on
its own root and port; each test then reports its own case.
"""

import concurrent.futures
import json
import os
import signal
import subprocess
import sys
import threading
import time

import jinja2
import pytest
import yaml

from ansible_collections.redbutton.deploy.plugins.module_utils._hosts import LocalHost
from ansible_collections.redbutton.deploy.plugins.module_utils._transition import Transition

import build_releases  # examples/ is put on sys.path by this directory's conftest.py

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(HERE)), 'examples')
PLAYBOOK = os.path.join(HERE, 'crash_transition.yml')
# The rollout and rollback roles run the transition engine once roles/steps exists; until then the
# small playbook above calls the module the way they will.
ROLES = os.path.isdir(os.path.join(os.path.dirname(os.path.dirname(HERE)), 'roles', 'steps'))
WORKERS = int(os.environ.get('CRASH_WORKERS', '3'))
PRECIOUS = ('data', 'precious.txt')
PRECIOUS_TEXT = 'written before the crash\n'
ROLLOUT_STEPS = ('stage', 'switch', 'restart', 'verify', 'finish')
ROLLBACK_STEPS = ('switch', 'restart', 'verify', 'compare', 'finish')
DEAD_WORKER = 'A worker was found in a dead state'
ROLLED_OUT = ('v2', {'v1': 'ok', 'v2': 'ok'})
ROLLED_BACK = ('v1', {'v1': 'ok', 'v2': 'rolled_back'})


class Result(object):
    """One ansible-playbook run: its exit code and output."""

    def __init__(self, args, rc, output):
        self.args = args
        self.rc = rc
        self.output = output

    def __repr__(self):
        return 'ansible-playbook %s -> rc %s\n%s' % (' '.join(self.args), self.rc, self.output[-6000:])


class Crash(object):
    """A site plus the means to bring it to a state, kill a run in it and run it again."""

    def __init__(self, site):
        self.site = site
        with open(os.path.join(EXAMPLES, 'sample-app.yml'), encoding='utf-8') as handle:
            raw = yaml.safe_load(handle)
        values = dict(raw, redbutton_root=site.root, app_port=site.port, app_python=sys.executable)
        self.vars = self._render(raw, values)
        self.after_kill = None
        # The small playbook calls the stage step and the others separately (as the roles do when a hook sits
        # between them); a case that needs that keeps it after the roles run the engine.
        self.split_calls = False

    def _render(self, value, values):
        if isinstance(value, str):
            return jinja2.Template(value).render(values) if '{{' in value else value
        if isinstance(value, dict):
            return dict((k, self._render(v, values)) for k, v in value.items())
        if isinstance(value, list):
            return [self._render(v, values) for v in value]
        return value

    # bringing the host to a state, through the engine in this process -----------------------------
    def engine(self, direction, **params):
        v = self.vars
        base = dict(root=self.site.root, direction=direction, service=v['redbutton_service'],
                    health_checks=v['redbutton_health_checks'], shared_paths=v['redbutton_shared_paths'],
                    baseline_shared_exclude=v['redbutton_baseline_shared_exclude'], keep=v['redbutton_keep_releases'],
                    actor='pytest-setup', lock_owner='pytest-setup')
        base.update(params)
        with open(os.devnull, 'w', encoding='utf-8') as devnull:
            return Transition(base, LocalHost(out=devnull)).run()

    def roll_out(self, *versions):
        for version in versions:
            path, checksum = self.site.artifacts[version]
            result = self.engine('rollout', release=version, src=path, remote_src=True, checksum=checksum)
            assert result['outcome'] == 'rolled_out', result
            assert self.site.served() == version
        self.write_precious()

    def write_precious(self):
        with open(os.path.join(self.site.root, 'shared', *PRECIOUS), 'w', encoding='utf-8') as handle:
            handle.write(PRECIOUS_TEXT)

    # running ansible-playbook ---------------------------------------------------------------------
    def args(self, direction, version=None, extra=()):
        if ROLES and not self.split_calls:
            args = ['redbutton.deploy.%s' % direction] + self.site.base_args()
        else:
            args = [PLAYBOOK] + self.site.base_args() + ['-e', 'crash_direction=%s' % direction]
        if version:
            args += ['-e', 'redbutton_release=%s' % version, '-e', 'redbutton_artifact=%s' % self.site.artifacts[version][0]]
        return args + list(extra)

    def start(self, args, env=None):
        """ansible-playbook in a session of its own, so that killing its process group spares pytest."""
        full_env = dict(self.site.env)
        full_env.update(env or {})
        return subprocess.Popen([os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')] + args,
                                env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)

    @staticmethod
    def wait(args, proc, timeout=300):
        out, err = proc.communicate(timeout=timeout)
        return Result(args, proc.returncode, out + err)

    def play(self, direction, *extra, version=None, env=None, rc=0):
        args = self.args(direction, version, extra)
        run = self.wait(args, self.start(args, env))
        if rc is not None:
            assert run.rc == rc, run
        return run

    def kill_at(self, direction, point, *extra, version=None):
        """Run with the kill point set; check that the kill point is what ended the run."""
        run = self.play(direction, *extra, version=version, env={'REDBUTTON_KILL_AT': '%s:%s' % (direction, point)}, rc=None)
        assert run.rc != 0 and DEAD_WORKER in run.output, run
        self.after_kill = self.state()
        return run

    def kill_after(self, seconds, direction, *extra, version=None, since='start'):
        """Start the playbook; `seconds` after its start (since='start') or after the deploy lock appeared
        (since='lock'), kill it and every process under it (the module too)."""
        args = self.args(direction, version, extra)
        proc = self.start(args)
        if since == 'lock':
            lock = os.path.join(self.site.root, '.redbutton', 'lock')
            while proc.poll() is None and not os.path.exists(lock):
                time.sleep(0.005)
        try:
            proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            kill_tree(proc.pid)
        run = self.wait(args, proc)
        self.after_kill = self.state()
        return run

    # what is left ---------------------------------------------------------------------------------
    def state(self):
        """What a user would look at right after a crash (for the messages and the kill-point table)."""
        try:
            ledger = self.site.ledger()
        except (OSError, ValueError) as exc:
            return {'ledger': 'unreadable: %s' % exc}
        record = ledger.get('transition')
        # The migrate step has nothing to do here (no migrations); whether it is listed depends on the caller.
        return {'served': self.site.served(), 'current': self.site.current(), 'statuses': self.site.statuses(),
                'done': None if record is None else [step for step in record.get('done') or [] if step != 'migrate'],
                'locked': self.site.locked()}

    def assert_consistent(self, expected, what=''):
        served, statuses = expected
        site = self.site
        ledger = site.ledger()
        state = self.state()
        where = '%s; right after the kill: %s; now: %s' % (what, self.after_kill, state)
        assert (site.served(), site.current(), ledger['current']) == (served, served, served), where
        # The switch is recorded, not only the symlink: the next rollback's target depends on it.
        assert ledger['last_switch']['to'] == served and ledger['releases'][served].get('activated_seq'), where
        assert site.statuses() == statuses, where
        assert ledger.get('transition') is None, where
        assert not site.locked(), 'the deploy lock was left behind: ' + where
        with open(os.path.join(site.root, 'shared', *PRECIOUS), encoding='utf-8') as handle:
            assert handle.read() == PRECIOUS_TEXT, where
        assert os.path.realpath(os.path.join(site.root, 'releases', served, PRECIOUS[0])) == \
            os.path.join(os.path.realpath(site.root), 'shared', PRECIOUS[0]), 'shared data not linked into ' + served
        assert sorted(site.release_dirs()) == sorted(statuses), 'releases/ does not match the ledger: ' + where


def descendants(pid):
    """Every process under pid, from /proc."""
    children = {}
    for name in os.listdir('/proc'):
        if not name.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % name, encoding='ascii', errors='replace') as handle:
                ppid = int(handle.read().rsplit(')', 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(pid):
    """A controller crash: freeze the playbook's process group and every process under it (Ansible's
    workers run in sessions of their own, the module under them), then SIGKILL them all."""
    frozen = set()
    os.killpg(pid, signal.SIGSTOP)
    while True:
        found = set(descendants(pid)) - frozen
        if not found:
            break
        for child in found:
            try:
                os.kill(child, signal.SIGSTOP)
            except ProcessLookupError:
                pass
        frozen |= found
    for child in frozen:
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass
    os.killpg(pid, signal.SIGKILL)


def done_before(steps, point):
    """The steps the open transition records as done when a run is killed at point."""
    when, step = point.split(':')
    return list(steps[:steps.index(step) + (1 if when == 'after' else 0)])


def assert_took_over(crash, rerun):
    """A lock the killed run left is taken over by the re-run, with a warning naming the dead holder."""
    if crash.after_kill['locked']:
        assert 'taking over the deploy lock' in ' '.join(rerun.output.split()), rerun


# -- the cases: name -> function(crash) that runs the scenario and asserts --------------------------
def rollout_at(point):
    def scenario(crash):
        crash.roll_out('v1')
        crash.kill_at('rollout', point, version='v2')
        killed = crash.after_kill
        if point == 'before:stage':
            assert killed['done'] is None and killed['current'] == 'v1', killed
        elif point == 'after:finish':
            assert killed['done'] is None and killed['statuses'] == {'v1': 'ok', 'v2': 'ok'}, killed
        else:
            assert killed['done'] == done_before(ROLLOUT_STEPS, point), killed
        rerun = crash.play('rollout', version='v2')
        assert_took_over(crash, rerun)
        crash.assert_consistent(ROLLED_OUT, 'rollout killed %s, then run again' % point)
    return scenario


def rollback_at(point):
    def scenario(crash):
        crash.roll_out('v1', 'v2')
        crash.kill_at('rollback', point)
        killed = crash.after_kill
        if point == 'after:finish':
            assert killed['done'] is None and killed['statuses'] == ROLLED_BACK[1], killed
        else:
            assert killed['done'] == done_before(ROLLBACK_STEPS, point), killed
        rerun = crash.play('rollback')
        assert_took_over(crash, rerun)
        crash.assert_consistent(ROLLED_BACK, 'rollback killed %s, then run again' % point)
    return scenario


def rollout_then_rollback(point):
    """A rollout killed at point, then the other direction: the rollback undoes it."""
    def scenario(crash):
        crash.roll_out('v1')
        crash.kill_at('rollout', point, version='v2')
        crash.play('rollback')
        site = crash.site
        # The interrupted v2 never proved itself: it ends rolled back (or failed), never active or ok.
        statuses = site.statuses()
        assert statuses.get('v2') in ('rolled_back', 'failed', None), crash.state()
        crash.assert_consistent(('v1', dict(statuses, v1='ok')), 'rollout killed %s, then a rollback' % point)
    return scenario


def rollback_then_rollout(point):
    """A rollback killed at point, then a rollout of the release it was undoing (stage and switch in two calls)."""
    def scenario(crash):
        crash.split_calls = True
        crash.roll_out('v1', 'v2')
        crash.kill_at('rollback', point)
        crash.play('rollout', version='v2')
        crash.assert_consistent(ROLLED_OUT, 'rollback killed %s, then a rollout of v2' % point)
    return scenario


def rollout_killed_after(seconds, since):
    """A rollout killed `seconds` after its start ('start'), or after its stage step took the lock ('lock':
    a moment inside the engine's work, whatever the machine's load makes of ansible-playbook's start-up)."""
    def scenario(crash):
        crash.roll_out('v1')
        crash.kill_after(seconds, 'rollout', version='v2', since=since)
        crash.play('rollout', version='v2')
        crash.assert_consistent(ROLLED_OUT, 'rollout killed %s s after its %s, then run again' % (seconds, since))
    return scenario


def full_disk_at(direction, label):
    """Every write labelled `label` fails with ENOSPC (REDBUTTON_FAULT, in every engine call of the run, the
    automatic rollback's too): the run fails, the host is old or new, never half; the same playbook, run
    again once there is space, finishes."""
    def scenario(crash):
        crash.roll_out(*(('v1',) if direction == 'rollout' else ('v1', 'v2')))
        version = 'v2' if direction == 'rollout' else None
        failed = crash.play(direction, version=version, env={'REDBUTTON_FAULT': 'enospc:' + label}, rc=None)
        assert failed.rc != 0 and 'No space left on device' in failed.output, failed
        crash.after_kill = crash.state()
        assert_old_or_new(crash, failed)
        crash.play(direction, version=version)
        crash.assert_consistent(ROLLED_OUT if direction == 'rollout' else ROLLED_BACK,
                                '%s with the disk full from its %s write on, then run again' % (direction, label))
    return scenario


def assert_old_or_new(crash, failed):
    """After a failed run: the ledger reads, current and the ledger agree, the current release is whole,
    and no release but the current one is active."""
    site = crash.site
    ledger = site.ledger()
    current = site.current()
    assert current in ('v1', 'v2') and ledger['current'] == current, (failed, crash.state())
    with open(os.path.join(site.root, 'releases', current, 'VERSION'), encoding='utf-8') as handle:
        assert handle.read().strip() == current, crash.state()
    assert [rid for rid, status in site.statuses().items() if status == 'active' and rid != current] == [], crash.state()


CASES = {}
for _point in ['%s:%s' % (w, s) for s in ROLLOUT_STEPS for w in ('before', 'after')]:
    CASES['rollout-' + _point.replace(':', '-')] = rollout_at(_point)
for _point in ['%s:%s' % (w, s) for s in ROLLBACK_STEPS for w in ('before', 'after')]:
    CASES['rollback-' + _point.replace(':', '-')] = rollback_at(_point)
for _point in ('during:switch', 'during:finish'):
    CASES['rollout-' + _point.replace(':', '-')] = rollout_at(_point)
CASES['rollback-during-switch'] = rollback_at('during:switch')
for _point in ('after:stage', 'during:switch', 'after:switch'):
    CASES['rollout-%s-then-rollback' % _point.replace(':', '-')] = rollout_then_rollback(_point)
for _point in ('after:switch',):
    CASES['rollback-%s-then-rollout' % _point.replace(':', '-')] = rollback_then_rollout(_point)
for _since, _seconds in (('start', 2.0), ('lock', 0.0), ('lock', 0.5), ('lock', 1.5)):
    CASES['rollout-killed-%gs-after-%s' % (_seconds, _since)] = rollout_killed_after(_seconds, _since)

for _label in ('lock', 'staging', 'extract', 'shared', 'release', 'ledger', 'baseline', 'current'):
    CASES['rollout-disk-full-at-%s' % _label] = full_disk_at('rollout', _label)
for _label in ('lock', 'ledger', 'current'):
    CASES['rollback-disk-full-at-%s' % _label] = full_disk_at('rollback', _label)

# Known engine bugs, each marked xfail with its reason until its fix lands: {case: (strict, reason)}.
# Strict where the case always reaches the bug, so the test turns red the day the fix lands.
KNOWN = {}


def case_params():
    params = []
    for name in CASES:
        marks = [pytest.mark.xfail(strict=KNOWN[name][0], reason=KNOWN[name][1])] if name in KNOWN else []
        params.append(pytest.param(name, marks=marks, id=name))
    return params


@pytest.fixture(scope='module')
def campaign(request, tmp_path_factory, artifacts):
    """Run every selected case, a few at a time; {name: (Crash, exc_info or None, seconds)}."""
    site_class = _site_class(request)
    selected = [item.callspec.params['case'] for item in request.session.items
                if item.module is request.module and hasattr(item, 'callspec') and 'case' in item.callspec.params]
    crashes, outcomes, lock = {}, {}, threading.Lock()
    ports = set()
    for name in selected:
        crash = Crash(site_class(tmp_path_factory.mktemp('crash-' + name), artifacts))
        while crash.site.port in ports:
            crash.site.port += 1
            crash = Crash(crash.site)
        ports.add(crash.site.port)
        crashes[name] = crash

    def run(name):
        started = time.time()
        try:
            CASES[name](crashes[name])
            exc = None
        except BaseException:  # pylint: disable=broad-except
            exc = sys.exc_info()
        with lock:
            outcomes[name] = (crashes[name], exc, round(time.time() - started, 1))

    try:
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=WORKERS)
        try:
            list(pool.map(run, selected))
        finally:  # interrupted: do not start the cases still queued
            pool.shutdown(wait=True, cancel_futures=True)
        yield outcomes
        table = os.environ.get('CRASH_TABLE')
        if table:  # the kill-point table: where each case was killed, what it left, whether the re-run finished it
            with open(table, 'w', encoding='utf-8') as handle:
                json.dump(dict((name, {'after_kill': crash.after_kill, 'finished': exc is None, 'seconds': seconds,
                                       'error': None if exc is None else str(exc[1])[:1500]})
                               for name, (crash, exc, seconds) in sorted(outcomes.items())), handle, indent=1)
    finally:
        for crash in crashes.values():
            crash.site.stop_app()


def _site_class(request):
    """The Site class of this directory's conftest.py (loaded by pytest, not importable by name)."""
    for plugin in request.config.pluginmanager.get_plugins():
        if getattr(plugin, '__file__', None) == os.path.join(HERE, 'conftest.py'):
            return plugin.Site
    raise RuntimeError('tests/integration/conftest.py is not loaded')


@pytest.mark.parametrize('case', case_params())
def test_crash(campaign, case):
    """Killed at a step of a rollout or a rollback (or at a moment), then run again: consistent."""
    crash, exc, dummy = campaign[case]
    if exc is not None:
        raise exc[1].with_traceback(exc[2])
    assert crash.after_kill is not None


# -- 2. ENOSPC in the middle of a rollout ------------------------------------------------------------
@pytest.fixture
def small_disk(site):
    """The site's root on a 1 MiB tmpfs (needs root, as `make test` runs here); unmounted afterwards."""
    os.makedirs(site.root)
    mounted = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=1m,mode=0755', 'tmpfs', site.root],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip('cannot mount a tmpfs for the ENOSPC test (%s): run the integration tests as root'
                    % (mounted.stderr.strip() or mounted.returncode))
    try:
        yield site
    finally:
        site.stop_app()
        subprocess.run(['umount', '-l', site.root], check=False)


def fill(path, leave):
    """Fill the file system of path, leaving `leave` bytes free; returns the filler file."""
    filler = os.path.join(path, 'filler')
    stat = os.statvfs(path)
    size = max(stat.f_bavail * stat.f_frsize - leave, 0)
    with open(filler, 'wb') as handle:
        try:
            handle.write(b'\0' * size)
        except OSError:
            pass
    return filler


@pytest.mark.parametrize('leave_kib', [0, 20])
def test_disk_full_during_a_rollout_leaves_old_or_new_and_a_rerun_finishes(small_disk, leave_kib):
    """A real full disk (the fault cases above inject the error): 0 KiB free, the first write of the stage
    step fails; 20 KiB, extracting the release fits but recording it in the ledger does not."""
    crash = Crash(small_disk)
    site = crash.site
    crash.roll_out('v1')
    filler = fill(site.root, leave_kib * 1024)
    failed = crash.play('rollout', version='v2', rc=None)
    assert failed.rc != 0 and 'No space left on device' in failed.output, failed
    assert_old_or_new(crash, failed)
    if site.current() == 'v1':
        assert site.statuses()['v1'] == 'ok', crash.state()
    os.unlink(filler)
    crash.after_kill = crash.state()
    crash.play('rollout', version='v2')
    crash.assert_consistent(ROLLED_OUT, 'a rollout that ran out of space (%d KiB free), then run again' % leave_kib)


# -- 3. the two races ------------------------------------------------------------------------------
def race(crash, tmp_path, *extra):
    """v1 serves; v2 and v4 are rolled out at the same time. Each holds the lock for more than 8 s
    (a slow health check), so the two runs overlap whatever their start-up times."""
    site = crash.site
    site.artifacts = dict(site.artifacts, v4=build_releases.build_release(str(tmp_path), 'v4'))
    crash.roll_out('v1')
    # No baseline: the slow command check would also run as a baseline probe (8 s more per run).
    slow = site.vars_file('slow', {'redbutton_baseline': False, 'redbutton_health_checks': crash.vars['redbutton_health_checks'] + [
        {'name': 'slow', 'command': 'sleep 8', 'timeout': 60}]})
    runs = {}
    for version in ('v2', 'v4'):
        args = crash.args('rollout', version, slow + list(extra))
        runs[version] = (args, crash.start(args))
    return dict((version, crash.wait(args, proc)) for version, (args, proc) in runs.items())


def assert_one_won(crash, runs):
    site = crash.site
    winners = [version for version, run in runs.items() if run.rc == 0]
    assert len(winners) == 1, runs
    winner = winners[0]
    loser = [version for version in runs if version != winner][0]
    holder = site.ledger()['last_transition']['owner']
    assert 'is held by' in runs[loser].output and repr(holder) in runs[loser].output, runs[loser]
    crash.after_kill = crash.state()
    crash.assert_consistent((winner, {'v1': 'ok', winner: 'ok'}), 'two rollouts at once')
    assert not os.path.exists(os.path.join(site.root, 'releases', loser)), 'the refused %s was staged' % loser


def test_two_rollouts_at_once_one_proceeds(site, tmp_path):
    crash = Crash(site)
    assert_one_won(crash, race(crash, tmp_path))


def test_two_rollouts_forced_to_one_owner_do_not_both_get_through(site, tmp_path):
    crash = Crash(site)
    assert_one_won(crash, race(crash, tmp_path, '-e', 'redbutton_lock_owner=same'))
