# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""redbutton_load_balancer on localhost.

Refused before any host changes, each naming the setting: a load balancer host that is not in the
inventory, an unknown kind, an admin socket that does not answer, a backend or server that is not
there. Then the order of the drain and the enable around each transition, against an admin socket
that answers as HAProxy's does (haproxy_socket.py). The drain under real load, with Debian's
haproxy and three app hosts, is the Molecule scenario extensions/molecule/fleet.
"""

import os

import pytest

from haproxy_socket import FakeHAProxy


def lb(site, **settings):
    return site.vars_file('lb', {'redbutton_load_balancer': dict({'kind': 'haproxy', 'host': 'localhost', 'backend': 'app'},
                                                                 **settings)})


def test_load_balancer_host_not_in_the_inventory_is_refused_before_anything_changes(site):
    run = site.rollout('v1', *lb(site, host='lb1.example.com'), rc=2)
    assert "redbutton_load_balancer.host is 'lb1.example.com' (for localhost), which is not a host of the inventory" in run.output
    assert not os.path.exists(site.root)
    assert run.engine_calls() == []


def test_unknown_kind_is_refused_by_the_argument_spec(site):
    run = site.rollout('v1', *lb(site, kind='nginx'), rc=2)
    assert 'redbutton_load_balancer' in run.output and 'nginx' in run.output and 'haproxy' in run.output
    assert not os.path.exists(site.root)


def test_incomplete_setting_is_refused_by_the_argument_spec(site):
    extra = site.vars_file('lb', {'redbutton_load_balancer': {'kind': 'haproxy', 'host': 'localhost'}})
    run = site.rollout('v1', *extra, rc=2)
    assert 'redbutton_load_balancer' in run.output and 'backend' in run.output
    assert not os.path.exists(site.root)


def test_unreachable_admin_socket_is_refused_before_anything_changes(site, tmp_path):
    socket_path = str(tmp_path / 'no-haproxy' / 'admin.sock')
    run = site.rollout('v1', *lb(site, socket=socket_path), rc=2)
    assert "redbutton_load_balancer.socket: cannot reach HAProxy's admin socket %s" % socket_path in run.output
    assert 'Nothing was changed' in run.output
    assert not os.path.exists(site.root)
    assert run.engine_calls() == []


def test_rollback_with_an_unreachable_socket_changes_nothing(site, tmp_path):
    site.rollout('v1')
    site.rollout('v2')
    before = site.ledger_bytes()
    run = site.rollback(*lb(site, socket=str(tmp_path / 'admin.sock')), rc=2)
    assert 'redbutton_load_balancer.socket' in run.output
    assert run.engine_calls() == []
    assert site.ledger_bytes() == before
    site.assert_state('v2', {'v1': 'ok', 'v2': 'ok'})


# The drain and the enable around each transition, against an admin socket that answers as HAProxy
# does (haproxy_socket.FakeHAProxy) and records what the host served when each command came.

@pytest.fixture
def haproxy(site, tmp_path):
    fake = FakeHAProxy(str(tmp_path / 'admin.sock'), ['localhost'], site.current)
    yield fake
    fake.close()


def with_lb(site, haproxy, **settings):
    return lb(site, socket=haproxy.path, **settings)


def test_rollout_drains_before_the_switch_and_puts_back_after_the_checks(site, haproxy):
    site.rollout('v1')
    run = site.rollout('v2', *with_lb(site, haproxy))
    # drained (no new connections, then maintenance) while v1 still served; back once v2 served and passed its checks
    assert haproxy.changes() == [
        ('set server app/localhost state drain', 'v1'),
        ('disable server app/localhost', 'v1'),
        ('enable server app/localhost', 'v2'),
    ]
    assert haproxy.status('localhost') == 'UP'
    # the switch starts a call of its own anyway (stage, then the rest): no extra engine call
    assert run.engine_calls() == [('rollout', ['stage']), ('rollout', ['switch', 'restart', 'verify', 'finish'])]
    site.assert_state('v2', {'v1': 'ok', 'v2': 'ok'})


def test_a_rerun_of_the_current_release_does_not_drain(site, haproxy):
    site.rollout('v1')
    site.rollout('v1', *with_lb(site, haproxy))
    assert haproxy.changes() == []
    assert haproxy.status('localhost') == 'UP'


def test_failed_rollout_is_put_back_once_the_automatic_rollback_passed_its_checks(site, haproxy):
    site.rollout('v1')
    run = site.rollout('v3', *with_lb(site, haproxy), rc=2)
    assert 'Rolled back automatically: v1 serves again' in run.output
    # drained once, before the switch to v3; not given traffic while v3 was current; back on v1
    assert haproxy.changes() == [
        ('set server app/localhost state drain', 'v1'),
        ('disable server app/localhost', 'v1'),
        ('enable server app/localhost', 'v1'),
    ]
    assert haproxy.status('localhost') == 'UP'
    site.assert_state('v1', {'v1': 'ok', 'v3': 'failed'})


def test_a_host_whose_restored_release_fails_too_stays_drained(site, haproxy, tmp_path):
    """Both releases fail a check of the host itself (a full disk, a dead dependency): no traffic for it."""
    marker = tmp_path / 'dependency-down'
    checks = site.vars_file('checks', {'redbutton_health_checks': [
        {'name': 'the dependency is up', 'command': 'test ! -e %s' % marker, 'retries': 0}]})
    site.rollout('v1', *checks)
    marker.write_text('down\n')
    run = site.rollout('v2', *checks, *with_lb(site, haproxy), rc=2)
    assert haproxy.changes() == [
        ('set server app/localhost state drain', 'v1'),
        ('disable server app/localhost', 'v1'),
    ]
    assert haproxy.status('localhost') == 'MAINT'
    assert 'localhost stays drained in haproxy backend app on localhost' in run.output
    assert 'enable it there once it serves again' in run.output


def test_rollback_drains_and_puts_back_and_nothing_to_undo_drains_nothing(site, haproxy):
    site.rollout('v1')
    site.rollout('v2')
    site.rollback(*with_lb(site, haproxy))
    assert haproxy.changes() == [
        ('set server app/localhost state drain', 'v2'),
        ('disable server app/localhost', 'v2'),
        ('enable server app/localhost', 'v1'),
    ]
    site.assert_state('v1', {'v1': 'ok', 'v2': 'rolled_back'})
    # a second rollback stays on v1 (nothing to undo): the host is not taken out for it
    site.rollback(*with_lb(site, haproxy))
    assert len(haproxy.changes()) == 3
    assert haproxy.status('localhost') == 'UP'


def test_sessions_that_do_not_end_are_cut_after_the_drain_timeout(site, tmp_path):
    site.rollout('v1')
    busy = FakeHAProxy(str(tmp_path / 'busy.sock'), ['localhost'], site.current, sessions=3)
    try:
        site.rollout('v2', *lb(site, socket=busy.path, drain_timeout=1))
    finally:
        busy.close()
    assert busy.changes() == [
        ('set server app/localhost state drain', 'v1'),
        ('disable server app/localhost', 'v1'),      # after the timeout: maintenance anyway
        ('enable server app/localhost', 'v2'),
    ]
    site.assert_state('v2', {'v1': 'ok', 'v2': 'ok'})


def test_a_server_missing_from_the_backend_is_refused_before_anything_changes(site, haproxy):
    site.rollout('v1')
    before = site.ledger_bytes()
    run = site.rollout('v2', *with_lb(site, haproxy, server='web9'), rc=2)
    assert 'redbutton_load_balancer.server: backend app of HAProxy at %s has no server web9; its servers: localhost' \
        % haproxy.path in run.output
    assert haproxy.changes() == []
    assert site.ledger_bytes() == before
    assert site.release_dirs() == ['v1']


def test_a_backend_that_does_not_exist_is_refused(site, haproxy):
    run = site.rollout('v1', *with_lb(site, haproxy, backend='shop'), rc=2)
    assert 'redbutton_load_balancer.backend: HAProxy at %s has no backend shop; its backends: app' % haproxy.path in run.output
    assert not os.path.exists(site.root)
