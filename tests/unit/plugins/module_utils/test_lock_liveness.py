# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Lock liveness: the lock names the run that holds it, a dead run's lock is taken over with a
warning, a live one is refused with the command that takes it over, two runs sharing an owner
do not both get through, and the heartbeat keeps a live run's lock from expiring."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import socket
import subprocess

import pytest

from ansible_collections.redbutton.deploy.plugins.module_utils._common import RedbuttonError
from ansible_collections.redbutton.deploy.plugins.module_utils._lock import (
    DeployLock,
    controller_identity,
    format_time,
    lock_path,
    process_alive,
)

from .test_lock import FakeClock


HOST = socket.gethostname()


def dead_pid():
    """The pid of a process that ran and was reaped."""
    child = subprocess.Popen(['true'])
    child.wait()
    return child.pid


def make_lock(root, clock, warnings=None, pid=100):
    return DeployLock(str(root), clock=clock, sleep=clock.sleep, host=HOST, pid=pid,
                      warn=(warnings.append if warnings is not None else None))


def on_disk(root):
    return json.load(open(lock_path(str(root))))


def test_controller_identity_names_this_host_and_process():
    me = controller_identity()
    assert me['host'] == HOST and me['pid'] == os.getpid()
    if os.path.exists('/proc/self/stat'):
        assert isinstance(me['started'], int) and process_alive(me['pid'], me['started'])
        assert not process_alive(me['pid'], me['started'] + 1)  # same pid, another start: a reused pid
    assert not process_alive(dead_pid())


def test_the_record_names_the_run_and_its_heartbeat(tmp_path):
    clock = FakeClock()
    me = controller_identity()
    changed, holder, dummy = make_lock(tmp_path, clock).acquire('run-1', ttl=120, controller=me)
    record = on_disk(tmp_path)
    assert changed and record == holder
    assert record['controller'] == me and record['heartbeat'] == format_time(clock.now)
    assert record['expires_at'] == format_time(clock.now + 120)


def test_a_dead_runs_lock_is_taken_over_with_a_warning(tmp_path):
    clock = FakeClock()
    gone = controller_identity()
    gone['pid'] = dead_pid()
    make_lock(tmp_path, clock).acquire('run-1', ttl=3600, controller=gone)
    warnings = []
    changed, holder, before = make_lock(tmp_path, clock, warnings).acquire('run-2', controller=controller_identity())
    assert changed and before['owner'] == 'run-1' and on_disk(tmp_path)['owner'] == 'run-2'
    assert len(warnings) == 1 and "'run-1'" in warnings[0] and 'pid %d' % gone['pid'] in warnings[0] and 'gone' in warnings[0]


def test_a_reused_pid_is_not_mistaken_for_the_holder(tmp_path):
    if not os.path.exists('/proc/self/stat'):
        pytest.skip('no /proc')
    clock = FakeClock()
    reused = controller_identity()
    reused['started'] -= 1  # this pid now belongs to another process than the one that took the lock
    make_lock(tmp_path, clock).acquire('run-1', controller=reused)
    changed, dummy, dummy2 = make_lock(tmp_path, clock, []).acquire('run-2', controller=controller_identity())
    assert changed and on_disk(tmp_path)['owner'] == 'run-2'


def test_a_live_holder_is_refused_naming_it_and_the_takeover_command(tmp_path):
    clock = FakeClock()
    live = controller_identity()
    make_lock(tmp_path, clock).acquire('run-1', ttl=3600, controller=live)
    with pytest.raises(RedbuttonError) as caught:
        make_lock(tmp_path, clock).acquire('run-2', controller=controller_identity(os.getppid()))
    message = str(caught.value)
    assert "'run-1'" in message and 'pid %d on %s' % (live['pid'], HOST) in message
    assert format_time(clock.now + 3600) in message
    assert "ansible %s -m redbutton.deploy.lock -a 'root=%s state=absent force=true'" % (HOST, tmp_path) in message
    assert on_disk(tmp_path)['owner'] == 'run-1'


def test_a_holder_on_another_controller_is_alive_until_its_heartbeat_expires(tmp_path):
    clock = FakeClock()
    elsewhere = {'host': 'controller.example', 'pid': dead_pid(), 'started': 1}
    make_lock(tmp_path, clock).acquire('run-1', ttl=60, controller=elsewhere)
    with pytest.raises(RedbuttonError, match='run-1'):
        make_lock(tmp_path, clock).acquire('run-2', controller=controller_identity())
    clock.now += 61
    warnings = []
    changed, dummy, dummy2 = make_lock(tmp_path, clock, warnings).acquire('run-2', controller=controller_identity())
    assert changed and 'no heartbeat since' in warnings[0]


def test_two_live_runs_with_the_same_owner_do_not_both_get_through(tmp_path):
    clock = FakeClock()
    first = controller_identity()
    make_lock(tmp_path, clock).acquire('alice-1700000000-7', controller=first)
    other = controller_identity(os.getppid())  # another live process: another run
    with pytest.raises(RedbuttonError) as caught:
        make_lock(tmp_path, clock).acquire('alice-1700000000-7', controller=other)
    assert 'same owner' in str(caught.value) and 'force=true' in str(caught.value)
    assert on_disk(tmp_path)['controller'] == first
    # The same run re-enters, and a call without run information (an older task) still does.
    assert not make_lock(tmp_path, clock).acquire('alice-1700000000-7', controller=first)[0]
    assert not make_lock(tmp_path, clock).acquire('alice-1700000000-7')[0]
    assert on_disk(tmp_path)['controller'] == first


def test_the_same_owner_from_a_dead_run_is_re_entered_with_a_warning(tmp_path):
    clock = FakeClock()
    gone = dict(controller_identity(), pid=dead_pid())
    make_lock(tmp_path, clock).acquire('run-1', controller=gone)
    warnings = []
    me = controller_identity()
    changed, holder, dummy = make_lock(tmp_path, clock, warnings).acquire('run-1', controller=me)
    assert not changed and holder['controller'] == me and 'gone' in warnings[0]


def test_heartbeat_pushes_the_expiry_and_keeps_the_lock(tmp_path):
    clock = FakeClock()
    lock = make_lock(tmp_path, clock)
    lock.acquire('run-1', ttl=60, controller={'host': 'controller.example', 'pid': 1, 'started': 1})
    for dummy in range(5):
        clock.now += 50
        record = lock.refresh('run-1')
        assert record['expires_at'] == format_time(clock.now + 60) and record['heartbeat'] == format_time(clock.now)
    assert on_disk(tmp_path) == record
    with pytest.raises(RedbuttonError, match='run-1'):
        make_lock(tmp_path, clock).acquire('run-2')  # 250 s after it was taken, still held
    clock.now += 61
    make_lock(tmp_path, clock, []).acquire('run-2')
    with pytest.raises(RedbuttonError) as caught:
        lock.refresh('run-1')
    assert 'no longer held' in str(caught.value) and "'run-2'" in str(caught.value)


def test_refresh_of_a_released_lock_is_an_error(tmp_path):
    clock = FakeClock()
    lock = make_lock(tmp_path, clock)
    lock.acquire('run-1')
    lock.release('run-1')
    with pytest.raises(RedbuttonError, match='nobody holds it'):
        lock.refresh('run-1')
    assert not os.path.exists(lock_path(str(tmp_path)))
