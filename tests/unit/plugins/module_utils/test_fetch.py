# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""src as an http(s) URL: the release engine fetches it itself (a real HTTP server on
127.0.0.1), retries what is worth retrying, fails naming the URL and the status or the
timeout, and stages nothing on failure."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from ansible_collections.redbutton.deploy.plugins.module_utils import _fetch
from ansible_collections.redbutton.deploy.plugins.module_utils._archive import file_checksum
from ansible_collections.redbutton.deploy.plugins.module_utils._common import RedbuttonError
from ansible_collections.redbutton.deploy.plugins.module_utils._fetch import fetch_artifact, is_url, redact
from ansible_collections.redbutton.deploy.plugins.module_utils._ledger import ledger_path

from .test_release import run, version_tar


class ArtifactServer(object):
    """Serves files from a dict path -> bytes; `script` lists status codes to answer first."""

    def __init__(self):
        self.files = {}
        self.script = []
        self.requests = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                outer.requests.append((self.path, dict(self.headers)))
                if outer.script:
                    status = outer.script.pop(0)
                    self.send_response(status)
                    self.send_header('Content-Length', '0')
                    self.end_headers()
                    return
                body = outer.files.get(self.path)
                if body is None:
                    self.send_response(404)
                    self.send_header('Content-Length', '0')
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header('Content-Type', 'application/octet-stream')
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = HTTPServer(('127.0.0.1', 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever)
        self.thread.daemon = True
        self.thread.start()

    def url(self, path):
        return 'http://127.0.0.1:%d%s' % (self.httpd.server_address[1], path)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = ArtifactServer()
    yield srv
    srv.close()


@pytest.fixture
def silent_server():
    """Accepts connections and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(('127.0.0.1', 0))
    sock.listen(8)
    yield 'http://127.0.0.1:%d/app.tar.gz' % sock.getsockname()[1]
    sock.close()


@pytest.fixture
def no_sleep(monkeypatch):
    slept = []
    monkeypatch.setattr(_fetch.time, 'sleep', slept.append)
    return slept


def publish(server, tmp_path, version, path=None):
    archive = version_tar(tmp_path, version)
    path = path or '/shop/%s.tar.gz' % version
    with open(archive, 'rb') as handle:
        server.files[path] = handle.read()
    return server.url(path), file_checksum(archive)


def nothing_staged(root):
    """No release, no temporary download and no ledger entry under root."""
    releases = root / 'releases'
    leftovers = os.listdir(str(releases)) if releases.exists() else []
    entries = json.load(open(ledger_path(str(root))))['releases'] if os.path.exists(ledger_path(str(root))) else {}
    return leftovers == [] and not entries and not (root / 'current').exists()


def test_is_url_and_redact():
    assert is_url('https://example.com/a.tgz') and is_url('HTTP://example.com/a.tgz')
    assert not is_url('dist/app.tgz') and not is_url('/srv/http://x') and not is_url(None)
    assert redact('https://bob:secret@example.com/a.tgz') == 'https://example.com/a.tgz'


def test_url_with_checksum_is_staged_and_a_rerun_downloads_nothing(tmp_path, server):
    url, checksum = publish(server, tmp_path, 'v1')
    root = tmp_path / 'app'
    warnings = []
    result = run(root, release='v1', src=url, checksum=checksum, state='active', warnings=warnings)
    assert result['changed'] and result['created'] and result['current'] == 'v1'
    assert (root / 'releases' / 'v1' / 'VERSION').read_text() == 'v1\n'
    assert result['releases'][0]['source'] == url and result['checksum'] == checksum
    assert os.listdir(str(root / 'releases')) == ['v1']  # the temporary download is gone
    assert len(server.requests) == 1 and warnings == []
    again = run(root, release='v1', src=url, checksum=checksum, state='active')
    assert not again['changed'] and len(server.requests) == 1


def test_url_without_checksum_warns_downloads_and_compares(tmp_path, server):
    url, checksum = publish(server, tmp_path, 'v1')
    root = tmp_path / 'app'
    warnings = []
    result = run(root, src=url, state='active', warnings=warnings)
    # The id derives from the content digest; the ledger keeps the downloaded bytes' checksum too.
    assert result['release'] == 'sha256-' + result['content'][7:19] and result['checksum'] == checksum
    assert any('no checksum was given for src %s' % url in warning for warning in warnings)
    again = run(root, src=url, state='active')
    assert not again['changed'] and len(server.requests) == 2
    # the same id with other content is refused (releases are immutable), after comparing
    other_url, dummy = publish(server, tmp_path, 'v2', path='/shop/v1-rebuilt.tar.gz')
    with pytest.raises(RedbuttonError, match='already staged with content'):
        run(root, release=result['release'], src=other_url, state='staged')
    assert os.listdir(str(root / 'releases')) == [result['release']]


def test_404_names_the_url_and_status_and_stages_nothing(tmp_path, server, no_sleep):
    root = tmp_path / 'app'
    url = server.url('/shop/v9.tar.gz')
    with pytest.raises(RedbuttonError) as info:
        run(root, release='v9', src=url, checksum='sha256:' + 'a' * 64, state='active')
    assert url in str(info.value) and 'HTTP 404' in str(info.value) and 'nothing was staged' in str(info.value)
    assert len(server.requests) == 1 and no_sleep == []  # a 404 is not retried
    assert nothing_staged(root)


def test_500_then_200_is_retried_with_backoff(tmp_path, server, no_sleep):
    url, checksum = publish(server, tmp_path, 'v1')
    server.script = [500, 503]
    root = tmp_path / 'app'
    result = run(root, release='v1', src=url, checksum=checksum, state='active')
    assert result['current'] == 'v1' and len(server.requests) == 3
    assert no_sleep == [1.0, 2.0]
    assert (root / 'releases' / 'v1' / 'VERSION').read_text() == 'v1\n'


def test_5xx_after_the_last_retry_fails_naming_the_status(tmp_path, server, no_sleep):
    url, checksum = publish(server, tmp_path, 'v1')
    server.script = [502, 502, 502]
    root = tmp_path / 'app'
    with pytest.raises(RedbuttonError) as info:
        run(root, release='v1', src=url, checksum=checksum, url_retries=2, state='active')
    assert 'HTTP 502' in str(info.value) and url in str(info.value) and '3 attempts' in str(info.value)
    assert len(server.requests) == 3 and nothing_staged(root)


def test_a_server_that_never_answers_times_out(tmp_path, silent_server, no_sleep):
    root = tmp_path / 'app'
    started = time.time()
    with pytest.raises(RedbuttonError) as info:
        run(root, release='v1', src=silent_server, checksum='sha256:' + 'b' * 64, url_timeout=0.5, url_retries=1,
            state='active')
    message = str(info.value)
    assert silent_server in message and 'did not answer within url_timeout (0.5 seconds)' in message
    assert '2 attempts' in message and time.time() - started < 10
    assert nothing_staged(root)


def test_connection_refused_is_retried_then_named(tmp_path, no_sleep):
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    url = 'http://127.0.0.1:%d/app.tar.gz' % sock.getsockname()[1]
    sock.close()  # nothing listens there now
    root = tmp_path / 'app'
    with pytest.raises(RedbuttonError) as info:
        run(root, release='v1', src=url, url_retries=1, state='staged')
    assert url in str(info.value) and 'could not be fetched' in str(info.value) and no_sleep == [1.0]
    assert nothing_staged(root)


def test_checksum_mismatch_stages_nothing(tmp_path, server):
    url, dummy = publish(server, tmp_path, 'v1')
    wrong = 'sha256:' + '0' * 64
    root = tmp_path / 'app'
    with pytest.raises(RedbuttonError) as info:
        run(root, release='v1', src=url, checksum=wrong, state='active')
    assert 'checksum mismatch for src %s' % url in str(info.value) and wrong in str(info.value)
    assert nothing_staged(root)


def test_not_an_archive_stages_nothing(tmp_path, server):
    server.files['/index.html'] = b'<html>login page</html>'
    url = server.url('/index.html')
    root = tmp_path / 'app'
    with pytest.raises(RedbuttonError, match='did not serve a tar'):
        run(root, release='v1', src=url, state='active')
    assert nothing_staged(root)


def test_check_mode_with_checksum_downloads_nothing_and_changes_nothing(tmp_path, server):
    url, checksum = publish(server, tmp_path, 'v1')
    root = tmp_path / 'app'
    result = run(root, release='v1', src=url, checksum=checksum, state='active', check_mode=True)
    assert result['changed'] and result['current'] == 'v1' and server.requests == [] and not root.exists()


def test_headers_are_sent(tmp_path, server):
    url, checksum = publish(server, tmp_path, 'v1')
    run(tmp_path / 'app', release='v1', src=url, checksum=checksum, url_headers={'Authorization': 'Bearer t0ken'})
    assert server.requests[0][1].get('Authorization') == 'Bearer t0ken'


@pytest.mark.parametrize('options, words', [
    (dict(url_timeout=0), 'url_timeout 0'),
    (dict(url_retries=-1), 'url_retries -1'),
    (dict(url_headers={'X-Token': 3}), 'url_headers entry X-Token'),
])
def test_bad_url_options_are_refused_before_any_request(tmp_path, server, options, words):
    url, checksum = publish(server, tmp_path, 'v1')
    with pytest.raises(RedbuttonError, match=words):
        run(tmp_path / 'app', release='v1', src=url, checksum=checksum, **options)
    assert server.requests == []


def test_fetch_artifact_leaves_no_file_when_the_connection_drops(tmp_path, no_sleep):
    """A response shorter than its Content-Length is an error (and retried), not a truncated artifact."""
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    sock.listen(4)

    def serve():
        for dummy in range(2):
            conn, dummy_addr = sock.accept()
            conn.recv(4096)
            conn.sendall(b'HTTP/1.0 200 OK\r\nContent-Length: 1000\r\n\r\nshort')
            conn.close()

    thread = threading.Thread(target=serve)
    thread.daemon = True
    thread.start()
    url = 'http://127.0.0.1:%d/app.tar' % sock.getsockname()[1]
    with pytest.raises(RedbuttonError) as info:
        fetch_artifact(url, str(tmp_path), timeout=5, retries=1)
    sock.close()
    assert url in str(info.value) and '2 attempts' in str(info.value)
    assert os.listdir(str(tmp_path)) == []
