# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Artifacts from an http(s) URL, fetched by the target host.

The release engine calls fetch_artifact() when src is a URL: the response is streamed into a
temporary file in the directory it is given (under <root>/releases/, so the release is staged
from the same file system), hashed while it is written, and retried with a growing delay on
connection errors, timeouts and 5xx answers (never on 404 or other 4xx answers, which do not
get better by asking again). Every failure raises RedbuttonError naming the URL and the HTTP
status, or the timeout, and leaves no file behind.

Private to the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import socket
import tempfile
import time

from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit

from ansible_collections.redbutton.deploy.plugins.module_utils._common import RedbuttonError

FETCH_PREFIX = '.fetch-'
CHUNK = 1024 * 1024
# Answers worth asking again: the server's own trouble, a timeout it reports, throttling.
RETRY_STATUSES = (408, 429, 500, 502, 503, 504)
MAX_DELAY = 30.0

FETCH_ARGUMENT_SPEC = dict(
    url_timeout=dict(type='float', default=30),
    url_retries=dict(type='int', default=3),
    validate_certs=dict(type='bool', default=True),
    url_headers=dict(type='dict', no_log=True),
)


def is_url(src):
    """Whether src names an http(s) URL rather than a path."""
    return isinstance(src, str) and src.split(':', 1)[0].lower() in ('http', 'https') and '://' in src


def redact(url):
    """The URL without user:password, for messages and the ledger."""
    parts = urlsplit(url)
    if '@' not in parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rsplit('@', 1)[1]).geturl()


def _suffix(url):
    """The archive suffix of the URL's path (so a .zip is recognised), or ''."""
    name = os.path.basename(urlsplit(url).path).lower()
    for suffix in ('.tar.gz', '.tar.xz', '.tar.bz2', '.tgz', '.tar', '.zip'):
        if name.endswith(suffix):
            return suffix
    return ''


class Fetched(object):
    """A downloaded artifact: its temporary path, sha256 checksum and size."""

    def __init__(self, path, checksum, size, attempts):
        self.path = path
        self.checksum = checksum
        self.size = size
        self.attempts = attempts

    def remove(self):
        try:
            os.unlink(self.path)
        except OSError:
            pass


def validate_fetch_params(params):
    """Refuse bad URL options before anything is fetched."""
    timeout = params.get('url_timeout')
    if timeout is not None and timeout <= 0:
        raise RedbuttonError('url_timeout %r is not valid: give the seconds to wait for the server, more than 0' % timeout)
    retries = params.get('url_retries')
    if retries is not None and retries < 0:
        raise RedbuttonError('url_retries %r is not valid: give how many times to ask again after a failure (0 or more)' % retries)
    for name, value in (params.get('url_headers') or {}).items():
        if not isinstance(value, str):
            raise RedbuttonError('url_headers entry %s must be a string, got %r' % (name, type(value).__name__))


def fetch_artifact(url, dest_dir, timeout=30, retries=3, validate_certs=True, headers=None, sleep=None):
    """Download url into a new temporary file in dest_dir; return a Fetched.

    Attempts at most retries + 1 times, sleeping 1, 2, 4... seconds (at most MAX_DELAY) between
    them, on connection errors, timeouts and the statuses in RETRY_STATUSES. Raises
    RedbuttonError naming the URL and the status or the timeout; no file is left behind."""
    # Imported here: the on-host command shares this file's module and runs without Ansible.
    from ansible.module_utils.urls import ConnectionError as UrlsConnectionError
    from ansible.module_utils.urls import SSLValidationError, open_url
    shown = redact(url)
    sleep = sleep or time.sleep
    attempts = 0
    delay = 1.0
    while True:
        attempts += 1
        try:
            return _fetch_once(open_url, url, dest_dir, timeout, validate_certs, headers, attempts)
        except HTTPError as exc:
            if exc.code not in RETRY_STATUSES or attempts > retries:
                raise RedbuttonError(_status_message(shown, exc, attempts))
        except SSLValidationError as exc:
            raise RedbuttonError(
                'the TLS certificate of src %s could not be validated: %s; nothing was staged. Fix the server\'s '
                'certificate or the host\'s CA bundle, or set validate_certs: false if you trust the network' % (shown, exc))
        except (socket.timeout, URLError, UrlsConnectionError, IOError, OSError) as exc:
            if attempts > retries:
                raise RedbuttonError(_connection_message(shown, exc, timeout, attempts))
        sleep(delay)
        delay = min(delay * 2, MAX_DELAY)


def _plural(count, word):
    return '%d %s%s' % (count, word, '' if count == 1 else 's')


def _status_message(url, exc, attempts):
    reason = getattr(exc, 'reason', None) or getattr(exc, 'msg', '') or ''
    hint = {
        401: 'give credentials the server accepts (url_headers, for example an Authorization header)',
        403: 'give credentials the server accepts (url_headers, for example an Authorization header)',
        404: 'check the URL and that the artifact was published',
    }.get(exc.code, 'check the URL and the server' if exc.code < 500 else 'the server failed; try again later or check its logs')
    return 'src %s answered HTTP %d %s (after %s); nothing was staged: %s' % (
        url, exc.code, reason, _plural(attempts, 'attempt'), hint)


def _is_timeout(exc):
    if isinstance(exc, socket.timeout):
        return True
    reason = getattr(exc, 'reason', None)
    return isinstance(reason, socket.timeout) or 'timed out' in str(exc)


def _connection_message(url, exc, timeout, attempts):
    if _is_timeout(exc):
        return ('src %s did not answer within url_timeout (%s seconds) (after %s); nothing was staged. Check that '
                'the server is up and reachable from the host, or raise url_timeout' % (url, _seconds(timeout), _plural(attempts, 'attempt')))
    reason = getattr(exc, 'reason', None) or exc
    return ('src %s could not be fetched: %s (after %s); nothing was staged. Check that the server is up and '
            'reachable from the host (DNS, proxy, firewall)' % (url, reason, _plural(attempts, 'attempt')))


def _seconds(value):
    return ('%g' % value) if isinstance(value, float) else str(value)


def _fetch_once(open_url, url, dest_dir, timeout, validate_certs, headers, attempt):
    response = open_url(url, headers=headers or None, timeout=timeout, validate_certs=validate_certs,
                        http_agent='redbutton.deploy', decompress=False, follow_redirects='safe')
    try:
        fd, path = tempfile.mkstemp(prefix=FETCH_PREFIX, suffix=_suffix(url), dir=dest_dir)
        try:
            digest = hashlib.sha256()
            size = 0
            with os.fdopen(fd, 'wb') as out:
                while True:
                    chunk = response.read(CHUNK)
                    if not chunk:
                        break
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
            expected = response.headers.get('Content-Length') if getattr(response, 'headers', None) else None
            if expected and expected.isdigit() and int(expected) != size:
                raise IOError('the connection closed after %d of %s bytes' % (size, expected))
        except BaseException:
            try:
                os.unlink(path)
            except OSError:
                pass
            raise
    finally:
        response.close()
    return Fetched(path, 'sha256:' + digest.hexdigest(), size, attempt)
