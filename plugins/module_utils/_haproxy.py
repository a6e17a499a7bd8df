# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read an HAProxy backend through the admin socket, before a rollout drains its servers.

The drain and the enable themselves are community.general.haproxy's; this only answers, without
changing anything, whether the socket answers, which HAProxy it is, and whether the backend and
the servers the roles will drain are there (a typo in a server name would otherwise make every
drain a silent no-op). It speaks HAProxy's runtime API: one command per connection, `show info`
and `show stat` (CSV).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import csv
import socket

from ansible_collections.redbutton.deploy.plugins.module_utils._common import RedbuttonError

DEFAULT_SOCKET = '/run/haproxy/admin.sock'
_RECV = 65536


def ask(path, command, timeout=5.0):
    """Send one runtime API command to the UNIX socket at path; return the answer as text."""
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(timeout)
    try:
        client.connect(path)
        client.sendall(command.encode('ascii') + b'\n')
        chunks = []
        while True:
            chunk = client.recv(_RECV)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        client.close()
    return b''.join(chunks).decode('utf-8', 'replace')


def parse_info(text):
    """`show info` (Name: value lines) as a dict."""
    info = {}
    for line in text.splitlines():
        name, sep, value = line.partition(':')
        if sep:
            info[name.strip()] = value.strip()
    return info


def parse_stat(text):
    """`show stat` (CSV whose header line starts with '# ') as a list of dicts."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or not lines[0].startswith('# '):
        raise ValueError('not the CSV of "show stat": %r' % (text[:200],))
    return list(csv.DictReader([lines[0][2:]] + lines[1:]))


def _refuse(problem, msg):
    """A RedbuttonError whose result names the option at fault (socket, backend or server)."""
    error = RedbuttonError(msg)
    error.result = {'problem': problem}
    return error


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


class HAProxyInfo(object):
    """What redbutton.deploy.haproxy_info reports: one backend's servers, checked against names."""

    def __init__(self, socket_path, backend, servers=None, timeout=5.0):
        self.socket_path = socket_path
        self.backend = backend
        self.wanted = list(servers or [])
        self.timeout = timeout

    def _ask(self, command):
        try:
            return ask(self.socket_path, command, self.timeout)
        except (OSError, socket.error) as exc:
            raise _refuse(
                'socket', "cannot reach HAProxy's admin socket %s: %s. Point the socket setting at the path of the `stats socket ... "
                "level admin` line in haproxy.cfg (Debian's package uses %s), and check that HAProxy runs and that the "
                "user Ansible runs as may write to the socket" % (self.socket_path, exc, DEFAULT_SOCKET))

    def run(self):
        info = parse_info(self._ask('show info'))
        if 'Version' not in info:
            raise _refuse('socket', '%s answered "show info" without a version: is it an HAProxy admin socket? It said: %s'
                          % (self.socket_path, ' '.join(info) or 'nothing'))
        try:
            rows = parse_stat(self._ask('show stat'))
        except ValueError as exc:
            raise _refuse('socket', '%s did not answer "show stat" as HAProxy does: %s' % (self.socket_path, exc))
        backends = sorted(set(row.get('pxname', '') for row in rows if row.get('svname') == 'BACKEND'))
        if self.backend not in backends:
            raise _refuse('backend', 'HAProxy at %s has no backend %s; its backends: %s' % (
                self.socket_path, self.backend, ', '.join(backends) or 'none'))
        servers = [{'name': row['svname'], 'status': row.get('status', ''), 'sessions': _int(row.get('scur')),
                    'weight': _int(row.get('weight')), 'address': row.get('addr', '')}
                   for row in rows
                   if row.get('pxname') == self.backend and row.get('svname') not in ('BACKEND', 'FRONTEND')]
        names = [server['name'] for server in servers]
        missing = [name for name in self.wanted if name not in names]
        if missing:
            raise _refuse('server', 'backend %s of HAProxy at %s has no server %s; its servers: %s' % (
                self.backend, self.socket_path, ', '.join(missing), ', '.join(names) or 'none'))
        return {'changed': False, 'version': info['Version'], 'backend': self.backend, 'servers': servers}
