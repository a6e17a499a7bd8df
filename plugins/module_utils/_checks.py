# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restart or reload a service, and run health checks (HTTP, TCP, command) with retries.

Both run on the host through a small adapter (``host``): ``run_command(args, cwd=None,
use_unsafe_shell=False, environ_update=None, expand_user_and_vars=True, handle_exceptions=True)``
returning ``(rc, stdout, stderr)`` with AnsibleModule's semantics, ``get_bin_path(name)``,
``http_get(url, timeout, validate_certs)`` returning ``(status, body)`` (status None when
nothing answered, with the reason as body), and ``warn(msg)``. AnsibleModule-backed and
stand-alone adapters live in _hosts.py.

Private to the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import shlex
import socket
import time

from ansible_collections.redbutton.deploy.plugins.module_utils._common import RedbuttonError

MANAGERS = ('systemd', 'command', 'none')
ACTIONS = ('restart', 'reload')
CHECK_KINDS = ('url', 'port', 'command')
KIND_NAMES = {'url': 'http', 'port': 'tcp', 'command': 'command'}


def validate_service(service):
    """Refuse an incoherent service setting; return it normalised (manager, action filled in)."""
    if service is None:
        service = {}
    if not isinstance(service, dict):
        raise RedbuttonError('redbutton_service %r is not valid: give a mapping with manager systemd, command or none' % (service,))
    service = dict(service)
    manager = service.get('manager') or 'none'
    action = service.get('action') or 'restart'
    if manager not in MANAGERS or action not in ACTIONS:
        raise RedbuttonError('redbutton_service %s is not valid: manager must be systemd, command or none, action restart or reload.'
                             % (service,))
    if manager == 'systemd' and not service.get('name'):
        raise RedbuttonError('redbutton_service with manager systemd needs name: the unit to %s.' % action)
    if manager == 'command':
        if action == 'reload' and not service.get('reload_command'):
            raise RedbuttonError('redbutton_service with manager command and action reload needs reload_command.')
        if action == 'restart' and not service.get('restart_command') and not (
                service.get('start_command') and service.get('stop_command')):
            raise RedbuttonError('redbutton_service with manager command needs start_command and stop_command (or restart_command).')
    service['manager'] = manager
    service['action'] = action
    return service


def validate_checks(checks):
    """Every health check has a name and exactly one of url, port or command."""
    bad = []
    for check in checks or []:
        if not isinstance(check, dict) or not check.get('name') or len([k for k in CHECK_KINDS if check.get(k) not in (None, '')]) != 1:
            bad.append(check)
    if bad:
        raise RedbuttonError('redbutton_health_checks items %s are not valid: give each a name and exactly one of url (HTTP check), '
                             'port (TCP check) or command (command check).' % (bad,))
    for check in checks or []:
        problem = _check_problem(check)
        if problem:
            raise RedbuttonError('redbutton_health_checks item %r: %s. Fix the check; nothing was changed.' % (check['name'], problem))
    return list(checks or [])


def _check_problem(check):
    """What is wrong with the values of one check (a regex that does not compile, a status that is not a number, a command
    with an open quote), found before any change: the same check would otherwise fail only after the switch."""
    for key in ('body_regex', 'stdout_regex'):
        if check.get(key) not in (None, ''):
            try:
                re.compile(check[key])
            except (re.error, TypeError) as exc:
                return '%s %r is not a regular expression (%s)' % (key, check[key], exc)
    status = check.get('status')
    if status is not None:
        for value in status if isinstance(status, list) else [status]:
            try:
                if not 100 <= int(value) <= 599 or isinstance(value, bool):
                    raise ValueError(value)
            except (TypeError, ValueError):
                return 'status %r is not an HTTP status: give a number from 100 to 599, or a list of them' % (status,)
    if check.get('port') not in (None, ''):
        try:
            if not 1 <= int(check['port']) <= 65535 or isinstance(check['port'], bool):
                raise ValueError(check['port'])
        except (TypeError, ValueError):
            return 'port %r is not a TCP port: give a number from 1 to 65535' % (check['port'],)
    if check.get('command') not in (None, ''):
        try:
            if not shlex.split(str(check['command'])):
                raise ValueError('it is empty')
        except ValueError as exc:
            return 'command %r cannot be split into words (%s): close its quotes' % (check['command'], exc)
    return None


class Service(object):
    """Restart or reload the application, as redbutton_service says."""

    def __init__(self, service, host, cwd):
        self.service = validate_service(service)
        self.host = host
        self.cwd = cwd
        self.timeout = int(self.service.get('timeout') or 300)

    @property
    def managed(self):
        return self.service['manager'] != 'none'

    def describe(self):
        s = self.service
        if s['manager'] == 'systemd':
            return '%s the systemd unit %s' % (s['action'], s['name'])
        if s['manager'] == 'command':
            return '%s with the service commands' % s['action']
        return 'nothing to restart'

    def restart(self):
        """Run the restart or reload; raise RedbuttonError with its output when it fails."""
        s = self.service
        if s['manager'] == 'systemd':
            args = ['systemctl']
            if s.get('scope') in ('user', 'global'):
                args.append('--%s' % s['scope'])
            args += ['reload' if s['action'] == 'reload' else 'restart', s['name']]
            rc, out, err = self.host.run_command(args)
        elif s['manager'] == 'command':
            if s['action'] == 'reload':
                lines = [s['reload_command']]
            elif s.get('restart_command'):
                lines = [s['restart_command']]
            else:
                lines = [s['stop_command'], s['start_command']]
            # The commands are the user's shell commands: pipes, && and redirections are theirs.
            script = 'set -e\n' + '\n'.join(lines)
            argv = with_timeout(self.host, self.timeout, ['/bin/sh', '-c', script])
            if argv[0] == '/bin/sh':
                rc, out, err = self.host.run_command(script, cwd=self.cwd, use_unsafe_shell=True)
            else:
                rc, out, err = self.host.run_command(argv, cwd=self.cwd)
        else:
            return False
        if rc == 124:
            raise RedbuttonError('%s did not end within %d s (redbutton_service.timeout): it was stopped. A start command must '
                                 'start the app in the background and return' % (self.describe(), self.timeout))
        if rc != 0:
            raise RedbuttonError('%s failed (rc %s): %s' % (self.describe(), rc, ((out or '') + ' ' + (err or '')).strip()[:600]))
        return True


class HealthChecks(object):
    """Run each check until it passes or its attempts run out; report every one."""

    def __init__(self, checks, host, cwd, retries=10, delay=1, timeout=5, sleep=time.sleep):
        self.checks = validate_checks(checks)
        self.host = host
        self.cwd = cwd
        self.defaults = {'retries': retries, 'delay': delay, 'timeout': timeout}
        self.sleep = sleep

    def _setting(self, check, key):
        value = check.get(key)
        return self.defaults[key] if value is None else value

    @staticmethod
    def kind(check):
        return [KIND_NAMES[k] for k in CHECK_KINDS if check.get(k) not in (None, '')][0]

    @staticmethod
    def target(check):
        if check.get('url'):
            return check['url']
        if check.get('port') not in (None, ''):
            return '%s:%s' % (check.get('host') or '127.0.0.1', check['port'])
        return check['command']

    def run(self):
        """Returns (passed, results); results are dicts: name, kind, target, passed, attempts, msg."""
        results = [self._run_one(check) for check in self.checks]
        return all(r['passed'] for r in results), results

    def _run_one(self, check):
        attempts = int(self._setting(check, 'retries')) + 1
        delay = float(self._setting(check, 'delay'))
        kind = self.kind(check)
        probe = getattr(self, '_' + kind)
        msg = ''
        for attempt in range(1, attempts + 1):
            passed, msg = probe(check)
            if passed:
                break
            if attempt < attempts:
                self.sleep(delay)
        return {'name': check['name'], 'kind': kind, 'target': self.target(check), 'passed': passed,
                'attempts': attempt, 'msg': msg}

    def _http(self, check):
        expected = check.get('status', 200)
        expected = [int(v) for v in (expected if isinstance(expected, list) else [expected])]
        status, body = self.host.http_get(check['url'], float(self._setting(check, 'timeout')),
                                          check.get('validate_certs', True) is not False)
        if status is None:
            return False, '%s answered nothing: %s' % (check['url'], body)
        if status not in expected:
            return False, '%s answered %s' % (check['url'], status)
        if check.get('body_regex') and not re.search(check['body_regex'], body or ''):
            return False, '%s answered %s, body must match %s' % (check['url'], status, check['body_regex'])
        return True, '%s answered %s' % (check['url'], status)

    def _tcp(self, check):
        address = (check.get('host') or '127.0.0.1', int(check['port']))
        try:
            with socket.create_connection(address, timeout=float(self._setting(check, 'timeout'))):
                return True, 'port %s:%s open' % address
        except (OSError, socket.error) as exc:
            return False, 'port %s:%s closed (%s)' % (address[0], address[1], exc)

    def _command(self, check):
        timeout = int(self._setting(check, 'timeout'))
        rc, out, err = self.host.run_command(with_timeout(self.host, timeout, shlex.split(check['command'])), cwd=self.cwd)
        want = int(check.get('rc', 0) if check.get('rc') is not None else 0)
        if rc == 124 and want != 124:
            return False, 'timed out after %d s' % timeout
        detail = 'rc %s: %s' % (rc, ((out or '').strip() + ' ' + (err or '').strip()).strip()[:200])
        if rc != want:
            return False, detail
        if check.get('stdout_regex') and not re.search(check['stdout_regex'], out or '', re.M):
            return False, detail + '; stdout must match %s' % check['stdout_regex']
        return True, detail


def with_timeout(host, seconds, argv):
    """argv under coreutils' timeout (rc 124 when it ran out), or as it is where there is no timeout."""
    timeout = host.get_bin_path('timeout')
    if not timeout or not seconds:
        return argv
    return [timeout, '--kill-after=5', str(seconds)] + list(argv)


def report_failures(results):
    """One line naming each failed check, what it saw and how often it tried."""
    failed = [r for r in results if not r['passed']]
    return '; '.join('%s (%s) after %d attempt%s' % (r['name'], r['msg'], r['attempts'], '' if r['attempts'] == 1 else 's')
                     for r in failed)
