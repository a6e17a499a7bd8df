# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading an HAProxy backend through the admin socket (_haproxy): what redbutton.deploy.haproxy_info
answers, and the message for each thing that is wrong (no socket, not HAProxy, no backend, a
missing server). The socket is a real UNIX socket answering like HAProxy 2.6's runtime API."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import socket
import threading

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.redbutton.deploy.plugins.module_utils._common import RedbuttonError
from ansible_collections.redbutton.deploy.plugins.module_utils._haproxy import HAProxyInfo, ask, parse_info, parse_stat
from ansible_collections.redbutton.deploy.plugins.modules import haproxy_info

# The first columns of HAProxy 2.6's `show stat` (it has ~100; the reader uses these by name).
HEADER = '# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,addr,'
STAT = '\n'.join([
    HEADER,
    'www,FRONTEND,,,3,9,262120,200,1,2,0,0,0,,,,,OPEN,,,,,',
    'app,web1,0,0,2,5,,100,1,2,,0,,0,0,0,0,UP,1,1,0,10.0.0.11:8080,',
    'app,web2,0,0,0,5,,100,1,2,,0,,0,0,0,0,MAINT,1,1,0,10.0.0.12:8080,',
    'app,BACKEND,0,0,2,9,26212,200,1,2,0,0,,0,0,0,0,UP,1,1,0,,',
    'other,web9,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,1,1,0,10.0.0.19:80,',
    'other,BACKEND,0,0,0,0,26212,0,0,0,0,0,,0,0,0,0,DOWN,0,0,0,,',
    '',
])
INFO = 'Name: HAProxy\nVersion: 2.6.12-1+deb12u1\nRelease_date: 2023/12/16\nNbthread: 2\n'


class FakeHAProxy(object):
    """A UNIX socket that answers one runtime API command per connection, as HAProxy does."""

    def __init__(self, path, answers):
        self.path = path
        self.answers = answers
        self.commands = []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(8)
        self.thread = threading.Thread(target=self._serve)
        self.thread.daemon = True
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _addr = self.server.accept()
            except OSError:
                return
            with conn:
                command = conn.makefile('rb').readline().decode('ascii').strip()
                self.commands.append(command)
                conn.sendall(self.answers.get(command, 'Unknown command.\n').encode('utf-8'))

    def close(self):
        self.server.close()


@pytest.fixture
def haproxy(tmp_path):
    fake = FakeHAProxy(str(tmp_path / 'admin.sock'), {'show info': INFO, 'show stat': STAT})
    yield fake
    fake.close()


def test_reports_the_servers_of_the_backend(haproxy):
    result = HAProxyInfo(haproxy.path, 'app', ['web1', 'web2']).run()
    assert result == {
        'changed': False, 'version': '2.6.12-1+deb12u1', 'backend': 'app',
        'servers': [
            {'name': 'web1', 'status': 'UP', 'sessions': 2, 'weight': 1, 'address': '10.0.0.11:8080'},
            {'name': 'web2', 'status': 'MAINT', 'sessions': 0, 'weight': 1, 'address': '10.0.0.12:8080'},
        ]}
    assert haproxy.commands == ['show info', 'show stat']


def test_a_missing_server_is_named_with_the_servers_there(haproxy):
    with pytest.raises(RedbuttonError) as caught:
        HAProxyInfo(haproxy.path, 'app', ['web1', 'web3']).run()
    assert str(caught.value) == 'backend app of HAProxy at %s has no server web3; its servers: web1, web2' % haproxy.path
    assert caught.value.result == {'problem': 'server'}


def test_a_missing_backend_is_named_with_the_backends_there(haproxy):
    with pytest.raises(RedbuttonError) as caught:
        HAProxyInfo(haproxy.path, 'shop', []).run()
    assert str(caught.value) == 'HAProxy at %s has no backend shop; its backends: app, other' % haproxy.path
    assert caught.value.result == {'problem': 'backend'}


def test_no_socket_names_the_path_and_the_debian_default(tmp_path):
    path = str(tmp_path / 'nothing-here.sock')
    with pytest.raises(RedbuttonError) as caught:
        HAProxyInfo(path, 'app').run()
    message = str(caught.value)
    assert message.startswith("cannot reach HAProxy's admin socket %s: " % path)
    assert 'level admin' in message and '/run/haproxy/admin.sock' in message
    assert caught.value.result == {'problem': 'socket'}


def test_a_socket_that_is_not_haproxy_is_refused(tmp_path):
    fake = FakeHAProxy(str(tmp_path / 'other.sock'), {'show info': 'hello\n'})
    try:
        with pytest.raises(RedbuttonError) as caught:
            HAProxyInfo(fake.path, 'app').run()
    finally:
        fake.close()
    assert 'answered "show info" without a version' in str(caught.value)


def test_a_stat_answer_that_is_not_csv_is_refused(tmp_path):
    fake = FakeHAProxy(str(tmp_path / 'old.sock'), {'show info': INFO, 'show stat': 'Permission denied.\n'})
    try:
        with pytest.raises(RedbuttonError) as caught:
            HAProxyInfo(fake.path, 'app').run()
    finally:
        fake.close()
    assert 'did not answer "show stat" as HAProxy does' in str(caught.value)
    assert caught.value.result == {'problem': 'socket'}


def test_parsers():
    assert parse_info(INFO)['Version'] == '2.6.12-1+deb12u1'
    rows = parse_stat(STAT)
    assert [(r['pxname'], r['svname'], r['status']) for r in rows][1:3] == [('app', 'web1', 'UP'), ('app', 'web2', 'MAINT')]
    with pytest.raises(ValueError):
        parse_stat('')


def test_ask_reads_the_whole_answer(tmp_path):
    long_answer = 'x' * 200000 + '\n'
    fake = FakeHAProxy(str(tmp_path / 'long.sock'), {'show stat': long_answer})
    try:
        assert ask(fake.path, 'show stat') == long_answer
    finally:
        fake.close()


def call(capsys, args, check_mode=False):
    with patch_module_args(dict(args, _ansible_check_mode=check_mode)):
        with pytest.raises(SystemExit) as caught:
            haproxy_info.main()
    return caught.value.code, json.loads(capsys.readouterr().out)


def test_module_in_check_mode_reads_the_same(capsys, haproxy):
    rc, result = call(capsys, dict(socket=haproxy.path, backend='app', servers=['web2']), check_mode=True)
    assert rc == 0 and result['changed'] is False
    assert [s['name'] for s in result['servers']] == ['web1', 'web2']


def test_module_failure_says_which_option(capsys, haproxy):
    rc, result = call(capsys, dict(socket=haproxy.path, backend='app', servers=['web7']))
    assert rc == 1 and result['failed']
    assert result['problem'] == 'server' and 'no server web7' in result['msg']
