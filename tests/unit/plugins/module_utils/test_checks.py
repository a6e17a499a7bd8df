# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Service restarts and health checks (_checks): what each check kind sees and reports, the
attempts a retry makes, and the message for each bad service or check setting."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import io
import socket
import threading
import time

import pytest

from http.server import BaseHTTPRequestHandler, HTTPServer

from ansible_collections.redbutton.deploy.plugins.module_utils._checks import (
    HealthChecks,
    Service,
    report_failures,
    validate_checks,
    validate_service,
)
from ansible_collections.redbutton.deploy.plugins.module_utils._common import RedbuttonError
from ansible_collections.redbutton.deploy.plugins.module_utils._hosts import LocalHost


class Host(object):
    """A host adapter: commands answered from a list of canned results (the last one repeats),
    HTTP through the standard library to a real server; `bins` are the programs get_bin_path
    finds (none by default: a host without coreutils' timeout)."""

    def __init__(self, results=None, bins=None):
        self.results = list(results or [(0, '', '')])
        self.bins = bins or {}
        self.calls = []
        self.warnings = []

    def run_command(self, args, cwd=None, use_unsafe_shell=False, environ_update=None, expand_user_and_vars=True,
                    handle_exceptions=True):
        self.calls.append({'args': args, 'cwd': cwd, 'shell': use_unsafe_shell})
        return self.results.pop(0) if len(self.results) > 1 else self.results[0]

    def get_bin_path(self, name, required=False):
        return self.bins.get(name)

    def http_get(self, url, timeout, validate_certs=True):
        return LocalHost().http_get(url, timeout, validate_certs)

    def warn(self, msg):
        self.warnings.append(msg)


class Server(object):
    """A real HTTP server on 127.0.0.1 answering each path from `pages` ({path: (status, body)}),
    or from a list of answers for that path, one per request (the last one repeats)."""

    def __init__(self, pages):
        self.pages = pages
        self.hits = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                server.hits.append(self.path)
                answer = server.pages.get(self.path, (404, 'no such page'))
                if isinstance(answer, list):
                    answer = answer.pop(0) if len(answer) > 1 else answer[0]
                status, body = answer
                self.send_response(status)
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args):
                pass

        self.httpd = HTTPServer(('127.0.0.1', 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={'poll_interval': 0.02})
        self.thread.daemon = True
        self.thread.start()

    def url(self, path='/'):
        return 'http://127.0.0.1:%d%s' % (self.httpd.server_port, path)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = Server({'/health': (200, 'status: healthy v2'), '/down': (503, 'maintenance'), '/created': (201, 'made')})
    yield srv
    srv.close()


def closed_port():
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def run(checks, host=None, sleeps=None, **kwargs):
    kwargs.setdefault('retries', 0)
    kwargs.setdefault('delay', 0)
    kwargs.setdefault('timeout', 2)
    checks = HealthChecks(checks, host or Host(), '/srv/app/current',
                          sleep=sleeps.append if sleeps is not None else (lambda seconds: None), **kwargs)
    return checks.run()


# HTTP -------------------------------------------------------------------------------------------
def test_http_check_passes_on_the_default_status_200(server):
    passed, results = run([{'name': 'web', 'url': server.url('/health')}])
    assert passed
    assert results == [{'name': 'web', 'kind': 'http', 'target': server.url('/health'), 'passed': True, 'attempts': 1,
                        'msg': '%s answered 200' % server.url('/health')}]


def test_http_check_fails_on_another_status_and_says_what_it_got(server):
    passed, results = run([{'name': 'web', 'url': server.url('/down')}])
    assert not passed
    assert results[0]['msg'] == '%s answered 503' % server.url('/down')


@pytest.mark.parametrize('status, passes', [([200, 201], True), ([200, 204], False), (201, True), ('201', True)])
def test_http_status_list_or_single(server, status, passes):
    passed, results = run([{'name': 'made', 'url': server.url('/created'), 'status': status}])
    assert passed is passes
    assert results[0]['passed'] is passes


def test_http_expected_non_2xx_status_passes(server):
    passed, dummy = run([{'name': 'gone', 'url': server.url('/missing'), 'status': 404}])
    assert passed


def test_http_body_regex_must_match(server):
    passed, dummy = run([{'name': 'web', 'url': server.url('/health'), 'body_regex': r'healthy v\d'}])
    assert passed
    passed, results = run([{'name': 'web', 'url': server.url('/health'), 'body_regex': 'healthy v3'}])
    assert not passed
    assert results[0]['msg'] == '%s answered 200, body must match healthy v3' % server.url('/health')


def test_http_nothing_listening_says_so():
    url = 'http://127.0.0.1:%d/' % closed_port()
    passed, results = run([{'name': 'web', 'url': url}], timeout=1)
    assert not passed
    assert results[0]['msg'].startswith('%s answered nothing: ' % url)


def test_retries_count_the_attempts_and_sleep_the_delay_between_them(server):
    server.pages['/warming'] = [(503, 'starting'), (503, 'starting'), (200, 'up')]
    sleeps = []
    passed, results = run([{'name': 'web', 'url': server.url('/warming')}], sleeps=sleeps, retries=5, delay=3)
    assert passed and results[0]['attempts'] == 3
    assert sleeps == [3.0, 3.0]
    assert server.hits.count('/warming') == 3


def test_retries_exhausted_report_every_attempt(server):
    sleeps = []
    passed, results = run([{'name': 'web', 'url': server.url('/down')}], sleeps=sleeps, retries=2, delay=1)
    assert not passed and results[0]['attempts'] == 3
    assert sleeps == [1.0, 1.0]  # no sleep after the last attempt
    assert report_failures(results) == 'web (%s answered 503) after 3 attempts' % server.url('/down')


def test_a_check_own_retries_and_delay_win_over_the_defaults(server):
    sleeps = []
    passed, results = run([{'name': 'web', 'url': server.url('/down'), 'retries': 1, 'delay': 7}], sleeps=sleeps, retries=9, delay=1)
    assert not passed and results[0]['attempts'] == 2 and sleeps == [7.0]


def test_retries_zero_means_one_attempt(server):
    sleeps = []
    dummy, results = run([{'name': 'web', 'url': server.url('/down'), 'retries': 0}], sleeps=sleeps, retries=9)
    assert results[0]['attempts'] == 1 and sleeps == []


# TCP --------------------------------------------------------------------------------------------
def test_tcp_check_open_port():
    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    try:
        passed, results = run([{'name': 'db', 'port': port}])
    finally:
        listener.close()
    assert passed
    assert results[0]['kind'] == 'tcp' and results[0]['target'] == '127.0.0.1:%d' % port
    assert results[0]['msg'] == 'port 127.0.0.1:%d open' % port


def test_tcp_check_closed_port():
    port = closed_port()
    sleeps = []
    passed, results = run([{'name': 'db', 'port': port, 'host': '127.0.0.1'}], sleeps=sleeps, retries=1, delay=2)
    assert not passed and results[0]['attempts'] == 2 and sleeps == [2.0]
    assert results[0]['msg'].startswith('port 127.0.0.1:%d closed (' % port)


# command ----------------------------------------------------------------------------------------
def test_command_check_runs_split_arguments_in_the_current_release():
    host = Host([(0, 'ok\n', '')])
    passed, results = run([{'name': 'smoke', 'command': "bin/smoke --quiet 'a b'"}], host=host)
    assert passed
    assert host.calls == [{'args': ['bin/smoke', '--quiet', 'a b'], 'cwd': '/srv/app/current', 'shell': False}]
    assert results[0]['kind'] == 'command' and results[0]['target'] == "bin/smoke --quiet 'a b'"


def test_command_check_runs_under_timeout_when_the_host_has_it():
    host = Host([(0, '', '')], bins={'timeout': '/usr/bin/timeout'})
    run([{'name': 'smoke', 'command': 'bin/smoke --quick', 'timeout': 7}], host=host)
    run([{'name': 'smoke', 'command': 'bin/smoke'}], host=host, timeout=3)
    assert [c['args'] for c in host.calls] == [['/usr/bin/timeout', '--kill-after=5', '7', 'bin/smoke', '--quick'],
                                               ['/usr/bin/timeout', '--kill-after=5', '3', 'bin/smoke']]


def test_command_check_that_timed_out_says_so():
    host = Host([(124, '', '')], bins={'timeout': '/usr/bin/timeout'})
    passed, results = run([{'name': 'smoke', 'command': 'bin/smoke', 'timeout': 2}], host=host)
    assert not passed and results[0]['msg'] == 'timed out after 2 s'


def test_command_check_fails_on_a_wrong_rc_and_shows_the_output():
    passed, results = run([{'name': 'smoke', 'command': 'bin/smoke'}], host=Host([(3, 'out', 'boom')]))
    assert not passed
    assert results[0]['msg'] == 'rc 3: out boom'


def test_command_check_expected_rc():
    passed, dummy = run([{'name': 'smoke', 'command': 'bin/smoke', 'rc': 3}], host=Host([(3, '', '')]))
    assert passed
    passed, dummy = run([{'name': 'smoke', 'command': 'bin/smoke', 'rc': 3}], host=Host([(0, '', '')]))
    assert not passed


def test_command_check_stdout_regex_is_multiline():
    host = Host([(0, 'version: 2\nstate: ready\n', '')])
    passed, dummy = run([{'name': 'smoke', 'command': 'bin/smoke', 'stdout_regex': '^state: ready$'}], host=host)
    assert passed
    passed, results = run([{'name': 'smoke', 'command': 'bin/smoke', 'stdout_regex': '^state: done$'}], host=host)
    assert not passed
    assert results[0]['msg'].endswith('; stdout must match ^state: done$')


def test_command_check_retries_until_it_passes():
    host = Host([(1, '', 'not yet'), (0, 'ready', '')])
    sleeps = []
    passed, results = run([{'name': 'smoke', 'command': 'bin/smoke'}], host=host, sleeps=sleeps, retries=3, delay=2)
    assert passed and results[0]['attempts'] == 2 and len(host.calls) == 2 and sleeps == [2.0]


def test_a_command_check_that_hangs_fails_after_its_timeout(tmp_path):
    started = time.time()
    checks = HealthChecks([{'name': 'hangs', 'command': 'sleep 3', 'timeout': 1}], LocalHost(out=io.StringIO()), str(tmp_path),
                          retries=0, delay=0, timeout=5)
    passed, results = checks.run()
    elapsed = time.time() - started
    assert not passed and elapsed < 2.5, (passed, elapsed, results)


def test_every_check_runs_and_reports_even_after_one_failed(server):
    passed, results = run([{'name': 'down', 'url': server.url('/down')}, {'name': 'up', 'url': server.url('/health')}])
    assert not passed
    assert [(r['name'], r['passed']) for r in results] == [('down', False), ('up', True)]
    assert report_failures(results) == 'down (%s answered 503) after 1 attempt' % server.url('/down')


# service ----------------------------------------------------------------------------------------
def test_systemd_restart_and_user_scope_reload():
    host = Host()
    assert Service({'manager': 'systemd', 'name': 'shop'}, host, '/srv/app/current').restart()
    assert Service({'manager': 'systemd', 'name': 'shop', 'scope': 'user', 'action': 'reload'}, host, '/x').restart()
    assert [c['args'] for c in host.calls] == [['systemctl', 'restart', 'shop'], ['systemctl', '--user', 'reload', 'shop']]


def test_command_service_runs_stop_then_start_in_one_shell_that_stops_on_error():
    host = Host()
    Service({'manager': 'command', 'stop_command': 'bin/stop', 'start_command': 'bin/start &'}, host, '/srv/app/current').restart()
    assert host.calls == [{'args': 'set -e\nbin/stop\nbin/start &', 'cwd': '/srv/app/current', 'shell': True}]


def test_command_service_prefers_restart_command_and_reload_command():
    host = Host()
    Service({'manager': 'command', 'restart_command': 'bin/restart', 'stop_command': 'x', 'start_command': 'y'}, host, '/a').restart()
    Service({'manager': 'command', 'action': 'reload', 'reload_command': 'kill -HUP 1'}, host, '/a').restart()
    assert [c['args'] for c in host.calls] == ['set -e\nbin/restart', 'set -e\nkill -HUP 1']


def test_a_service_command_that_does_not_return_is_stopped_at_its_timeout(tmp_path):
    service = Service({'manager': 'command', 'restart_command': 'sleep 3', 'timeout': 1}, LocalHost(out=io.StringIO()), str(tmp_path))
    started = time.time()
    with pytest.raises(RedbuttonError) as caught:
        service.restart()
    assert time.time() - started < 2.5
    assert str(caught.value).startswith('restart with the service commands did not end within 1 s (redbutton_service.timeout)')


def test_no_service_runs_nothing():
    host = Host()
    service = Service({'manager': 'none'}, host, '/a')
    assert not service.managed and service.restart() is False and host.calls == []


def test_failing_restart_names_what_failed_with_its_output():
    host = Host([(1, '', 'Unit shop.service not found.')])
    with pytest.raises(RedbuttonError) as caught:
        Service({'manager': 'systemd', 'name': 'shop'}, host, '/a').restart()
    assert str(caught.value) == 'restart the systemd unit shop failed (rc 1): Unit shop.service not found.'


# bad settings -----------------------------------------------------------------------------------
@pytest.mark.parametrize('service, message', [
    ('shop', "redbutton_service 'shop' is not valid: give a mapping"),
    ({'manager': 'docker'}, 'manager must be systemd, command or none'),
    ({'manager': 'systemd', 'name': 'x', 'action': 'stop'}, 'action restart or reload'),
    ({'manager': 'systemd'}, 'redbutton_service with manager systemd needs name: the unit to restart.'),
    ({'manager': 'systemd', 'action': 'reload'}, 'needs name: the unit to reload.'),
    ({'manager': 'command', 'start_command': 'bin/start'}, 'needs start_command and stop_command (or restart_command)'),
    ({'manager': 'command', 'stop_command': 'bin/stop'}, 'needs start_command and stop_command (or restart_command)'),
    ({'manager': 'command', 'action': 'reload', 'restart_command': 'x'}, 'action reload needs reload_command'),
])
def test_bad_service_settings_are_refused_with_their_name(service, message):
    with pytest.raises(RedbuttonError) as caught:
        validate_service(service)
    assert message in str(caught.value)


def test_service_defaults_are_filled_in():
    assert validate_service(None) == {'manager': 'none', 'action': 'restart'}
    assert validate_service({'manager': 'systemd', 'name': 'shop'}) == {'manager': 'systemd', 'name': 'shop', 'action': 'restart'}


@pytest.mark.parametrize('check', [
    {'url': 'http://127.0.0.1/'},
    {'name': '', 'url': 'http://127.0.0.1/'},
    {'name': 'two', 'url': 'http://127.0.0.1/', 'port': 80},
    {'name': 'three', 'url': 'http://127.0.0.1/', 'port': 80, 'command': 'true'},
    {'name': 'none'},
    {'name': 'empty', 'command': ''},
    'http://127.0.0.1/',
])
def test_bad_checks_are_refused_naming_the_item(check):
    with pytest.raises(RedbuttonError) as caught:
        validate_checks([{'name': 'good', 'port': 80}, check])
    text = str(caught.value)
    assert text.startswith('redbutton_health_checks items [%r] are not valid' % (check,))
    assert 'exactly one of url (HTTP check), port (TCP check) or command (command check)' in text


def test_bad_check_is_refused_before_any_check_runs():
    host = Host()
    with pytest.raises(RedbuttonError):
        HealthChecks([{'name': 'ok', 'command': 'true'}, {'name': 'bad'}], host, '/a')
    assert host.calls == []


def test_no_checks_pass():
    assert validate_checks(None) == []
    assert run([]) == (True, [])
