# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The deploy lock (_lock): exclusive creation, re-entry, waiting, TTL takeover, release."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import threading

import pytest

from ansible_collections.redbutton.deploy.plugins.module_utils._common import RedbuttonError
from ansible_collections.redbutton.deploy.plugins.module_utils._lock import DeployLock, LockRunner, format_time, lock_path


class FakeClock(object):
    """Time that only moves when the lock sleeps."""

    def __init__(self, start=1700000000.0):
        self.now = start
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def make_lock(root, clock, host='web1', pid=100, warnings=None):
    return DeployLock(str(root), clock=clock, sleep=clock.sleep, host=host, pid=pid,
                      warn=(warnings.append if warnings is not None else None))


def test_acquire_writes_the_holder_record(tmp_path):
    clock = FakeClock()
    changed, holder, before = make_lock(tmp_path, clock).acquire('run-1', ttl=600)
    assert changed and before is None
    on_disk = json.load(open(lock_path(str(tmp_path))))
    assert on_disk == holder
    assert on_disk['owner'] == 'run-1' and on_disk['host'] == 'web1' and on_disk['pid'] == 100
    assert on_disk['ttl'] == 600
    assert on_disk['acquired_at'] == format_time(clock.now)
    assert on_disk['expires_at'] == format_time(clock.now + 600)
    assert sorted(os.listdir(os.path.dirname(lock_path(str(tmp_path))))) == ['lock']


def test_same_owner_reenters_and_refreshes_expiry_without_change(tmp_path):
    clock = FakeClock()
    lock = make_lock(tmp_path, clock)
    lock.acquire('run-1', ttl=600)
    clock.now += 300
    changed, holder, before = lock.acquire('run-1', ttl=600)
    assert not changed
    assert before['owner'] == 'run-1'
    assert holder['acquired_at'] == before['acquired_at']
    assert json.load(open(lock_path(str(tmp_path))))['expires_at'] == format_time(clock.now + 600)


def test_other_owner_waits_for_timeout_then_fails_naming_the_holder(tmp_path):
    clock = FakeClock()
    make_lock(tmp_path, clock, host='web1', pid=4242).acquire('run-1', ttl=3600)
    acquired_at = format_time(clock.now)
    other = make_lock(tmp_path, clock, host='web2', pid=7)
    with pytest.raises(RedbuttonError) as caught:
        other.acquire('run-2', timeout=2)
    message = str(caught.value)
    for part in ("'run-1'", 'web1', '4242', acquired_at, 'waited 2 s'):
        assert part in message
    assert abs(sum(clock.sleeps) - 2) < 1e-6
    assert all(step <= 0.2 + 1e-9 for step in clock.sleeps) and len(clock.sleeps) >= 10
    assert json.load(open(lock_path(str(tmp_path))))['owner'] == 'run-1'


def test_timeout_zero_fails_at_once(tmp_path):
    clock = FakeClock()
    make_lock(tmp_path, clock).acquire('run-1')
    with pytest.raises(RedbuttonError, match='held by owner'):
        make_lock(tmp_path, clock).acquire('run-2', timeout=0)
    assert clock.sleeps == []


def test_waiter_gets_the_lock_when_the_holder_releases(tmp_path):
    holder = DeployLock(str(tmp_path))
    holder.acquire('run-1')
    timer = threading.Timer(0.3, lambda: holder.release('run-1'))
    timer.start()
    try:
        changed, record, dummy = DeployLock(str(tmp_path)).acquire('run-2', timeout=10)
    finally:
        timer.cancel()
    assert changed and record['owner'] == 'run-2'
    assert json.load(open(lock_path(str(tmp_path))))['owner'] == 'run-2'


def test_expired_lock_is_taken_over_with_a_warning(tmp_path):
    clock = FakeClock()
    make_lock(tmp_path, clock, host='dead-host', pid=1).acquire('run-1', ttl=60)
    clock.now += 61
    warnings = []
    changed, holder, before = make_lock(tmp_path, clock, warnings=warnings).acquire('run-2')
    assert changed and before['owner'] == 'run-1'
    assert json.load(open(lock_path(str(tmp_path))))['owner'] == 'run-2'
    assert len(warnings) == 1 and "'run-1'" in warnings[0] and 'dead-host' in warnings[0] and 'TTL' in warnings[0]
    assert sorted(os.listdir(os.path.dirname(lock_path(str(tmp_path))))) == ['lock']


def test_live_lock_is_not_taken_over_before_its_ttl(tmp_path):
    clock = FakeClock()
    make_lock(tmp_path, clock).acquire('run-1', ttl=60)
    clock.now += 59
    with pytest.raises(RedbuttonError):
        make_lock(tmp_path, clock).acquire('run-2')


def test_force_takes_over_a_live_lock_with_a_warning(tmp_path):
    clock = FakeClock()
    make_lock(tmp_path, clock).acquire('run-1')
    warnings = []
    changed, holder, dummy = make_lock(tmp_path, clock, warnings=warnings).acquire('run-2', force=True)
    assert changed and holder['owner'] == 'run-2' and 'force' in warnings[0]


def test_release_is_idempotent(tmp_path):
    lock = make_lock(tmp_path, FakeClock())
    lock.acquire('run-1')
    changed, before = lock.release('run-1')
    assert changed and before['owner'] == 'run-1'
    assert not os.path.exists(lock_path(str(tmp_path)))
    changed, before = lock.release('run-1')
    assert not changed and before is None


def test_release_of_another_owners_lock_fails_unless_forced(tmp_path):
    lock = make_lock(tmp_path, FakeClock())
    lock.acquire('run-1')
    with pytest.raises(RedbuttonError, match="held by owner 'run-1'.*not by 'run-2'"):
        lock.release('run-2')
    assert os.path.exists(lock_path(str(tmp_path)))
    changed, before = lock.release('run-2', force=True)
    assert changed and before['owner'] == 'run-1'
    assert not os.path.exists(lock_path(str(tmp_path)))


def test_corrupt_lock_is_an_error_and_force_clears_it(tmp_path):
    path = lock_path(str(tmp_path))
    os.makedirs(os.path.dirname(path))
    with open(path, 'w') as handle:
        handle.write('{not json')
    lock = make_lock(tmp_path, FakeClock(), warnings=[])
    with pytest.raises(RedbuttonError, match='is not a redbutton lock'):
        lock.acquire('run-1')
    assert open(path).read() == '{not json'
    changed, holder, dummy = lock.acquire('run-1', force=True)
    assert changed and json.load(open(path))['owner'] == 'run-1'


def test_check_mode_touches_nothing(tmp_path):
    clock = FakeClock()
    lock = make_lock(tmp_path, clock)
    changed, holder, dummy = lock.acquire('run-1', check_mode=True)
    assert changed and holder['owner'] == 'run-1'
    assert not os.path.exists(str(tmp_path / '.redbutton'))
    lock.acquire('run-1')
    raw = open(lock_path(str(tmp_path))).read()
    clock.now += 100
    assert lock.acquire('run-1', check_mode=True)[0] is False
    assert lock.release('run-1', check_mode=True)[0] is True
    assert open(lock_path(str(tmp_path))).read() == raw


@pytest.mark.parametrize('kwargs, message', [
    (dict(owner=''), 'owner must be a non-empty string'),
    (dict(owner='a', ttl=0), 'ttl 0 is not valid'),
    (dict(owner='a', timeout=-1), 'timeout -1 is not valid'),
])
def test_bad_lock_input_is_refused(tmp_path, kwargs, message):
    with pytest.raises(RedbuttonError, match=message):
        make_lock(tmp_path, FakeClock()).acquire(**kwargs)
    assert not os.path.exists(lock_path(str(tmp_path)))


def test_runner_requires_owner_to_release_unless_forced(tmp_path):
    with pytest.raises(RedbuttonError, match='owner is required'):
        LockRunner({'root': str(tmp_path), 'state': 'absent', 'owner': None, 'force': False}).run()
    result = LockRunner({'root': str(tmp_path), 'state': 'absent', 'owner': None, 'force': True}).run()
    assert result['changed'] is False


def test_runner_diff_shows_holders(tmp_path):
    params = {'root': str(tmp_path), 'state': 'present', 'owner': 'run-1', 'ttl': 60, 'timeout': 0, 'force': False}
    result = LockRunner(params, diff=True).run()
    assert result['diff']['before'] == {'holder': None}
    assert result['diff']['after']['holder']['owner'] == 'run-1'
