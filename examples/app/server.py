#!/usr/bin/env python3
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sample web app that redbutton.deploy's demo and tests roll out and back.

Python 3 standard library only. Run it from inside a release directory:

    python3 server.py --port 8080 [--bind 127.0.0.1]

GET /        -> the release's version string (the VERSION file next to this script)
GET /health  -> 200 "ok" when the release's config/app.json parses and has
                "healthy": true, otherwise 500 with the reason
GET /hits    -> how many requests were counted in the shared data file
GET /features -> the feature toggles the app sees, one "name=value" line each

Feature toggles come from a JSON file (--features, default <root>/shared/features.json
seen from <root>/releases/<id>/server.py), as redbutton.deploy.feature renders it:
{"name": "on" | "off" | 0-100}. The app rereads it whenever its mtime or size changes, so
a flip needs no restart; a file that does not parse keeps the last good toggles. Every
response carries an X-Features header with the toggles; while the toggle break_health is
on, /health answers 500 (the demo's bad flip).

The app never writes into its release: each request to / appends a line to
data/hits.txt, and `data` is the shared directory that the release module links
into every release (redbutton_shared_paths: [data]); without that link nothing is
counted. --daemon/--pidfile/--log and --stop let a plain shell command manage it
(the `command` service manager of the roles).
"""

import argparse
import errno
import http.server
import json
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def read_version():
    with open(os.path.join(HERE, 'VERSION'), encoding='utf-8') as handle:
        return handle.read().strip()


def health():
    """(http status, text): what /health answers for this release."""
    path = os.path.join(HERE, 'config', 'app.json')
    try:
        with open(path, encoding='utf-8') as handle:
            config = json.load(handle)
    except (OSError, ValueError) as exc:
        return 500, 'config/app.json unusable: %s' % exc
    if not config.get('healthy', False):
        return 500, 'config/app.json says healthy=false'
    if TOGGLES.enabled('break_health'):
        return 500, 'feature toggle break_health is on'
    return 200, 'ok'


class Toggles(object):
    """The toggles file, reread when its mtime or size changes; the last good values otherwise."""

    def __init__(self, path):
        self.path = path
        self.stamp = None
        self.values = {}
        self.error = None

    def current(self):
        try:
            info = os.stat(self.path)
        except OSError:
            self.stamp, self.values, self.error = None, {}, None
            return self.values
        stamp = (info.st_mtime_ns, info.st_size, info.st_ino)
        if stamp != self.stamp:
            try:
                with open(self.path, encoding='utf-8') as handle:
                    loaded = json.load(handle)
                if not isinstance(loaded, dict):
                    raise ValueError('not a JSON object')
                self.values, self.error = loaded, None
            except (OSError, ValueError) as exc:
                self.error = '%s unusable, keeping the last good toggles: %s' % (self.path, exc)
            self.stamp = stamp
        return self.values

    def enabled(self, name):
        value = self.current().get(name, 'off')
        return value == 'on' or (isinstance(value, int) and not isinstance(value, bool) and value > 0)

    def describe(self):
        values = self.current()
        return ', '.join('%s=%s' % (name, values[name]) for name in sorted(values)) or 'none'


# Through the real path of the release, also when started as <root>/current/server.py.
TOGGLES = Toggles(os.path.normpath(os.path.join(os.path.dirname(os.path.realpath(__file__)), '..', '..', 'shared',
                                                'features.json')))


def data_dir():
    """The shared data directory (a symlink in the release), or None."""
    path = os.path.join(HERE, 'data')
    return path if os.path.isdir(path) else None


def count_hit():
    directory = data_dir()
    if directory is None:
        return
    with open(os.path.join(directory, 'hits.txt'), 'a', encoding='utf-8') as handle:
        handle.write('%s %s\n' % (time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()), read_version()))


def count_hits():
    directory = data_dir()
    if directory is None:
        return 0
    try:
        with open(os.path.join(directory, 'hits.txt'), encoding='utf-8') as handle:
            return sum(1 for _line in handle)
    except FileNotFoundError:
        return 0


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True  # stopping must not wait for idle client connections


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = 'redbutton-sample'

    def _send(self, status, text):
        body = (text + '\n').encode('utf-8')
        self.send_response(status)
        self.send_header('Content-Type', 'text/plain; charset=utf-8')
        self.send_header('Content-Length', str(len(body)))
        self.send_header('X-Features', TOGGLES.describe())
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802 (http.server's naming)
        if self.path == '/':
            count_hit()
            self._send(200, read_version())
        elif self.path == '/health':
            self._send(*health())
        elif self.path == '/hits':
            self._send(200, str(count_hits()))
        elif self.path == '/features':
            values = TOGGLES.current()
            lines = ['%s=%s' % (name, values[name]) for name in sorted(values)]
            if TOGGLES.error:
                lines.append('# ' + TOGGLES.error)
            self._send(200, '\n'.join(lines))
        else:
            self._send(404, 'not found')

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        sys.stderr.write('%s %s\n' % (self.log_date_time_string(), format % args))


def write_pidfile(path):
    tmp = '%s.%d.tmp' % (path, os.getpid())
    with open(tmp, 'w', encoding='utf-8') as handle:
        handle.write('%d\n' % os.getpid())
    os.replace(tmp, path)


def daemonize(log):
    """Classic double fork: the caller (a shell command of Ansible) returns at once."""
    if os.fork() > 0:
        os._exit(0)  # pylint: disable=protected-access
    os.setsid()
    if os.fork() > 0:
        os._exit(0)  # pylint: disable=protected-access
    sys.stdout.flush()
    sys.stderr.flush()
    with open(os.devnull, 'rb') as devnull:
        os.dup2(devnull.fileno(), 0)
    out = os.open(log or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(out)


def remove(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def alive(pid):
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        with open('/proc/%d/stat' % pid, encoding='ascii') as handle:
            return handle.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except (OSError, IndexError):
        return True


def stop(pidfile, timeout):
    """SIGTERM the process named in pidfile and wait until it is gone. 0 if none ran."""
    try:
        with open(pidfile, encoding='utf-8') as handle:
            pid = int(handle.read().strip())
    except FileNotFoundError:
        return 0
    except ValueError:
        sys.stderr.write('pidfile %s does not hold a pid; remove it if no server runs\n' % pidfile)
        return 1
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError as exc:
        if exc.errno != errno.ESRCH:
            raise
    # The server closes its socket, then removes the pid file: either sign means it is done
    # (a reaped-late zombie still answers kill(pid, 0), so that alone is not enough).
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not os.path.exists(pidfile) or not alive(pid):
            break
        time.sleep(0.02)
    else:
        sys.stderr.write('process %d still runs %s s after SIGTERM\n' % (pid, timeout))
        return 1
    remove(pidfile)
    return 0


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--port', type=int, default=8080, help='TCP port to listen on (default 8080)')
    parser.add_argument('--bind', default='127.0.0.1', help='address to listen on (default 127.0.0.1)')
    parser.add_argument('--pidfile', help='write the server pid here (outside the release)')
    parser.add_argument('--log', help='with --daemon: append the request log here (default: discard)')
    parser.add_argument('--daemon', action='store_true', help='detach and run in the background')
    parser.add_argument('--stop', action='store_true', help='stop the server named by --pidfile and exit')
    parser.add_argument('--features', help='the toggles file (default: ../../shared/features.json from this script)')
    parser.add_argument('--stop-timeout', type=float, default=10.0, help='seconds --stop waits (default 10)')
    args = parser.parse_args(argv)
    if (args.stop or args.daemon) and not args.pidfile:
        parser.error('--stop and --daemon need --pidfile')
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.stop:
        return stop(args.pidfile, args.stop_timeout)
    if args.features:
        TOGGLES.path = os.path.abspath(args.features)
    # Bind before detaching, so a port already in use fails the start command.
    httpd = Server((args.bind, args.port), Handler)
    if args.daemon:
        daemonize(args.log)
    if args.pidfile:
        write_pidfile(args.pidfile)

    def terminate(_signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
        if args.pidfile:
            remove(args.pidfile)
    return 0


if __name__ == '__main__':
    sys.exit(main())
