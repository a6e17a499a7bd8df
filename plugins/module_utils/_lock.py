# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The deploy lock: <root>/.redbutton/lock, who is deploying now.

The lock file is JSON {owner, host, pid, acquired_at, ttl, expires_at, heartbeat, controller}.
`controller` ({host, pid, started}) names the run that holds it: the ansible-playbook process
on the controller, or the on-host command (see controller_identity); `heartbeat` is the last
time the holder refreshed it (refresh() pushes expires_at by the TTL at each step).

The lock is created exclusively: a complete temporary file is hard-linked to the lock path,
which fails when the lock exists (the same exclusivity as O_EXCL, without a moment where
another process could read a half-written lock). The same owner acquiring again from the same
run re-enters it and refreshes its expiry; the same owner from another live run is refused
(two runs that picked the same owner must not both get through). Another owner waits up to a
timeout, then fails naming the holder and the command that takes the lock over. A lock whose
heartbeat expired, or whose run is gone (its controller is this host and its process is dead or
is another process under a reused pid), is taken over with a warning. Releasing is idempotent.

Private to the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import errno
import json
import os
import socket
import tempfile
import time

from ansible_collections.redbutton.deploy.plugins.module_utils._common import (
    RedbuttonError,
    atomic_write_json,
    describe_os_error,
    fault_point,
    state_dir,
)

LOCK_FILE = 'lock'
POLL_INTERVAL = 0.2
DEFAULT_TTL = 3600
TIME_FORMAT = '%Y-%m-%dT%H:%M:%SZ'


def lock_path(root):
    return os.path.join(state_dir(root), LOCK_FILE)


def format_time(timestamp):
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).strftime(TIME_FORMAT)


def parse_time(text):
    parsed = datetime.datetime.strptime(text, TIME_FORMAT).replace(tzinfo=datetime.timezone.utc)
    return (parsed - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)).total_seconds()


def _start_ticks(pid):
    """The start time of process pid in clock ticks since boot (/proc/<pid>/stat field 22), and
    whether it is a zombie; (None, False) where /proc is not there."""
    try:
        with open('/proc/%d/stat' % int(pid), 'rb') as handle:
            raw = handle.read().decode('ascii', 'replace')
    except (IOError, OSError, ValueError):
        return None, False
    fields = raw[raw.rfind(')') + 2:].split()  # after "pid (comm) ": state is field 3, starttime 22
    try:
        return int(fields[19]), fields[0] == 'Z'
    except (IndexError, ValueError):
        return None, False


def controller_identity(pid=None):
    """{host, pid, started} of a process of this machine (default: this one). `started` is the
    process start time in clock ticks since boot where /proc has it (it tells a reused pid from
    the original process), else None. The transition action plugin computes it on the controller
    for the ansible-playbook process (the worker's parent); the on-host command for itself."""
    pid = int(pid or os.getpid())
    ticks, dummy = _start_ticks(pid)
    return {'host': socket.gethostname(), 'pid': pid, 'started': ticks}


def process_alive(pid, started=None):
    """Whether process pid runs (and, when started is known, is the process that started then)."""
    try:
        pid = int(pid)
    except (TypeError, ValueError):
        return True  # cannot tell: assume it runs
    if pid <= 0:
        return True
    ticks, zombie = _start_ticks(pid)
    if ticks is not None:
        if zombie:
            return False
        return started is None or ticks == started
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True


def describe_controller(controller):
    if not isinstance(controller, dict):
        return 'an unknown run'
    return 'the run of pid %s on %s' % (controller.get('pid'), controller.get('host'))


def describe_holder(holder):
    text = 'owner %r on host %s (pid %s) since %s, expires %s' % (
        holder.get('owner'), holder.get('host'), holder.get('pid'), holder.get('acquired_at'), holder.get('expires_at'))
    if isinstance(holder.get('controller'), dict):
        text += ', held by %s' % describe_controller(holder['controller'])
    return text


class DeployLock(object):
    """The lock of one root. Clock, sleep, host name and pid are injectable for tests."""

    def __init__(self, root, clock=None, sleep=None, host=None, pid=None, warn=None):
        self.root = root
        self.path = lock_path(root)
        self.clock = clock or time.time
        self.sleep = sleep or time.sleep
        self.host = host or socket.gethostname()
        self.pid = pid or os.getpid()
        self.warn = warn or (lambda message: None)
        self._last_raw = None
        self.predicted_owner = None  # check mode: the owner a takeover would have written

    # reading -----------------------------------------------------------------------------
    def read(self):
        """The holder record, or None when nobody holds the lock."""
        try:
            with open(self.path, 'rb') as handle:
                raw = handle.read()
        except (IOError, OSError) as exc:
            if exc.errno == errno.ENOENT:
                self._last_raw = None
                return None
            raise RedbuttonError('cannot read lock file %s: %s' % (self.path, exc))
        self._last_raw = raw
        try:
            holder = json.loads(raw.decode('utf-8'))
        except ValueError:
            holder = None
        if not isinstance(holder, dict) or 'owner' not in holder or 'expires_at' not in holder:
            raise RedbuttonError(
                'lock file %s is not a redbutton lock (unreadable, or no owner/expires_at); remove it after '
                'checking that nobody is deploying, or take or release it with force: true' % self.path)
        return holder

    def expired(self, holder, now=None):
        now = self.clock() if now is None else now
        try:
            return parse_time(holder['expires_at']) <= now
        except (TypeError, ValueError):
            return True

    def _record(self, owner, ttl, acquired_at=None, controller=None):
        now = self.clock()
        return {
            'owner': owner,
            'host': self.host,
            'pid': self.pid,
            'acquired_at': acquired_at or format_time(now),
            'ttl': ttl,
            'expires_at': format_time(now + ttl),
            'heartbeat': format_time(now),
            'controller': controller,
        }

    def gone(self, holder):
        """Why the run holding the lock is known to be gone, or None (alive, or cannot tell: its
        controller is another machine, whose processes this host cannot see)."""
        controller = holder.get('controller')
        if not isinstance(controller, dict) or controller.get('host') != self.host:
            return None
        if process_alive(controller.get('pid'), controller.get('started')):
            return None
        return '%s is gone' % describe_controller(controller)

    @staticmethod
    def _same_run(one, two):
        return (isinstance(one, dict) and isinstance(two, dict) and one.get('host') == two.get('host')
                and one.get('pid') == two.get('pid') and one.get('started') == two.get('started'))

    def takeover_command(self):
        return "ansible %s -m redbutton.deploy.lock -a 'root=%s state=absent force=true'" % (self.host, self.root)

    # acquiring ---------------------------------------------------------------------------
    def acquire(self, owner, ttl=DEFAULT_TTL, timeout=0, force=False, check_mode=False, controller=None):
        """Take the lock for owner. Returns (changed, holder after, holder before).

        Re-entering one's own lock (same owner, same run or no run recorded) refreshes its expiry
        and is not a change. ``controller`` ({host, pid, started}, see controller_identity) names
        the run taking it; without it only the TTL tells a dead holder.
        """
        if not owner:
            raise RedbuttonError('lock owner must be a non-empty string naming who deploys (for example the run id)')
        if ttl is None or ttl <= 0:
            raise RedbuttonError('lock ttl %r is not valid: give a number of seconds greater than 0' % (ttl,))
        if timeout is None or timeout < 0:
            raise RedbuttonError('lock timeout %r is not valid: give 0 or more seconds' % (timeout,))
        deadline = self.clock() + timeout
        while True:
            try:
                holder = self.read()
            except RedbuttonError:
                if not force:
                    raise
                holder = {'owner': None, 'expires_at': None}
            if holder is None:
                record = self._record(owner, ttl, controller=controller)
                if check_mode or self._create(record):
                    return True, record, None
                continue
            theirs = holder.get('controller')
            gone = self.gone(holder)
            if holder.get('owner') == owner:
                if controller and isinstance(theirs, dict) and not self._same_run(controller, theirs) \
                        and not gone and not self.expired(holder) and not force:
                    raise RedbuttonError(
                        'deploy lock %s is held by %s: another run that uses the same owner %r. Two runs must '
                        'not share an owner; wait for that run to finish, or, if it is dead, take the lock over '
                        'with: %s' % (self.path, describe_holder(holder), owner, self.takeover_command()))
                if gone:
                    self.warn('re-entering the deploy lock %s of owner %r: %s' % (self.path, owner, gone))
                record = self._record(owner, ttl, acquired_at=holder.get('acquired_at'), controller=controller or theirs)
                if not check_mode:
                    atomic_write_json(self.path, record, label='lock')
                return False, record, holder
            if force or gone or self.expired(holder):
                why = 'force: true' if force else gone or 'its TTL passed: no heartbeat since %s' % holder.get('heartbeat', holder.get('acquired_at'))
                self.warn('taking over the deploy lock %s held by %s (%s)' % (self.path, describe_holder(holder), why))
                record = self._record(owner, ttl, controller=controller)
                if check_mode:
                    self.predicted_owner = owner  # so this run's predicted release of it does not refuse
                    return True, record, holder
                if self._take_over(self._last_raw, record):
                    return True, record, holder
                continue
            now = self.clock()
            if now >= deadline:
                raise RedbuttonError(
                    'deploy lock %s is held by %s; waited %s s for it. Wait for that run to finish, or, if it '
                    'is dead, take the lock over with: %s' % (self.path, describe_holder(holder), timeout, self.takeover_command()))
            self.sleep(min(POLL_INTERVAL, deadline - now))

    def refresh(self, owner, ttl=None):
        """The heartbeat: push expires_at by ttl (default: the lock's own) for the lock owner holds.
        Returns the new record. A lock that is gone or held by another owner is an error: this
        run lost it (taken over after its heartbeat expired) and must stop."""
        holder = self.read()
        if holder is None or holder.get('owner') != owner:
            raise RedbuttonError(
                'deploy lock %s is no longer held by %r (%s): it was released or taken over, so this run '
                'stops here. Check what the other run did, then run again'
                % (self.path, owner, describe_holder(holder) if holder else 'nobody holds it'))
        ttl = ttl or holder.get('ttl') or DEFAULT_TTL
        record = dict(holder)
        now = self.clock()
        record.update(ttl=ttl, expires_at=format_time(now + ttl), heartbeat=format_time(now))
        if record != holder:
            # Times are whole seconds: the steps of one call mostly beat within the same second, and
            # rewriting the same record (with two fsyncs) would change nothing.
            atomic_write_json(self.path, record, label='lock')
        return record

    def _create(self, record):
        """Create the lock exclusively from a complete temp file; False if it exists."""
        fault_point('lock', self.path)
        directory = os.path.dirname(self.path)
        if not os.path.isdir(directory):
            os.makedirs(directory, mode=0o755)
        fd, tmp = tempfile.mkstemp(prefix='.lock.', suffix='.tmp', dir=directory)
        try:
            with os.fdopen(fd, 'w') as handle:
                json.dump(record, handle, indent=2, sort_keys=True)
                handle.write('\n')
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)
            try:
                os.link(tmp, self.path)
            except OSError as exc:
                if exc.errno == errno.EEXIST:
                    return False
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                    raise
                return self._create_excl(record)
            return True
        finally:
            os.unlink(tmp)

    def _create_excl(self, record):
        """Fallback for file systems without hard links: O_CREAT | O_EXCL."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError as exc:
            if exc.errno == errno.EEXIST:
                return False
            raise
        with os.fdopen(fd, 'w') as handle:
            json.dump(record, handle, indent=2, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        return True

    def _take_over(self, stale_raw, record):
        """Move the stale lock aside, check it is the one we judged stale, create ours."""
        aside = '%s.stale-%s-%d' % (self.path, self.host, self.pid)
        try:
            os.rename(self.path, aside)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return False  # someone else moved it; look again
            raise
        with open(aside, 'rb') as handle:
            moved = handle.read()
        if moved != stale_raw:
            # A fresh lock replaced the stale one between our read and our rename: put it back.
            try:
                os.link(aside, self.path)
            except OSError:
                pass
            os.unlink(aside)
            return False
        os.unlink(aside)
        return self._create(record)

    # releasing ---------------------------------------------------------------------------
    def release(self, owner, force=False, check_mode=False):
        """Release the lock. Returns (changed, holder before). No lock: no change."""
        try:
            holder = self.read()
        except RedbuttonError:
            if not force:
                raise
            holder = {'owner': None}
        if holder is None:
            return False, None
        if holder.get('owner') != owner and not force and not (check_mode and self.predicted_owner == owner):
            raise RedbuttonError(
                'deploy lock %s is held by %s, not by %r; it was left in place. Release it as its '
                'owner, or with force: true if that run is dead' % (self.path, describe_holder(holder), owner))
        if not check_mode:
            fault_point('lock', self.path)
            try:
                os.unlink(self.path)
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    raise
        return True, holder


class LockRunner(object):
    """One call of redbutton.deploy.lock."""

    def __init__(self, params, check_mode=False, diff=False, warn=None, lock=None):
        self.params = params
        self.check_mode = check_mode
        self.diff = diff
        self.warn = warn
        self.lock = lock

    def run(self):
        try:
            return self._run()
        except (IOError, OSError) as exc:
            raise RedbuttonError(describe_os_error('deploy lock under %s' % self.params['root'], lock_path(self.params['root']), exc))

    def _run(self):
        p = self.params
        lock = self.lock or DeployLock(p['root'], warn=self.warn)
        owner = p.get('owner')
        if p.get('state', 'present') == 'present':
            changed, holder, before = lock.acquire(
                owner, ttl=p.get('ttl', DEFAULT_TTL), timeout=p.get('timeout') or 0,
                force=p.get('force', False), check_mode=self.check_mode)
        else:
            if not owner and not p.get('force'):
                raise RedbuttonError('owner is required to release the lock (or force: true to release whoever holds it)')
            changed, before = lock.release(owner, force=p.get('force', False), check_mode=self.check_mode)
            holder = None
        result = {'changed': changed, 'holder': holder, 'previous_holder': before}
        if self.diff:
            result['diff'] = {'before': {'holder': before}, 'after': {'holder': holder}}
        return result
