# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sample app and the release builder that the demo, the integration tests and the
Molecule scenarios rely on."""

import os
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request

import build_releases  # examples/ is put on sys.path by this directory's conftest.py

SERVER = os.path.join(os.path.dirname(build_releases.__file__), 'app', 'server.py')


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_builds_are_byte_for_byte_reproducible(tmp_path):
    first = build_releases.build_all(str(tmp_path / 'a'))
    second = build_releases.build_all(str(tmp_path / 'b'))
    assert dict((v, c) for v, (_p, c) in first.items()) == dict((v, c) for v, (_p, c) in second.items())
    assert len(set(c for _p, c in first.values())) == 3


def test_archive_root_is_the_release_root(tmp_path):
    path, _checksum = build_releases.build_release(str(tmp_path), 'v2', filler_files=3, filler_bytes=10)
    with tarfile.open(path) as tar:
        names = tar.getnames()
        assert set(m.mtime for m in tar.getmembers()) == {build_releases.FIXED_MTIME}
    assert names == sorted(names)
    assert {'./VERSION', './server.py', './config/app.json', './assets/00/file00000.bin'} <= set(names)
    assert all(name == '.' or name.startswith('./') for name in names)


def get(port, path):
    try:
        with urllib.request.urlopen('http://127.0.0.1:%d%s' % (port, path), timeout=5) as response:
            return response.status, response.read().decode().strip()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode().strip()


def extract(tmp_path, version, data=True):
    path, _checksum = build_releases.build_release(str(tmp_path / 'art'), version)
    release = tmp_path / version
    release.mkdir()
    with tarfile.open(path) as tar:
        tar.extractall(str(release), filter='data')
    if data:
        (tmp_path / 'shared').mkdir(exist_ok=True)
        os.symlink('../shared', str(release / 'data'))
    return release


def run_server(release, tmp_path):
    port = free_port()
    pidfile = str(tmp_path / ('%s.pid' % release.name))
    subprocess.run([sys.executable, 'server.py', '--daemon', '--port', str(port), '--pidfile', pidfile],
                   cwd=str(release), check=True, timeout=10)
    return port, pidfile


def stop(pidfile):
    return subprocess.run([sys.executable, SERVER, '--stop', '--pidfile', pidfile], check=False, timeout=15).returncode


def test_app_serves_its_version_and_health(tmp_path):
    release = extract(tmp_path, 'v2')
    before = sorted(os.listdir(str(release)))
    port, pidfile = run_server(release, tmp_path)
    try:
        assert get(port, '/') == (200, 'v2')
        assert get(port, '/health') == (200, 'ok')
        assert get(port, '/hits') == (200, '1')
    finally:
        assert stop(pidfile) == 0
    assert not os.path.exists(pidfile)
    assert get_refused(port)
    # Hits went to the shared directory, nothing was written into the release.
    with open(str(tmp_path / 'shared' / 'hits.txt')) as handle:
        assert handle.read().split()[1] == 'v2'
    assert sorted(os.listdir(str(release))) == before


def get_refused(port):
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            get(port, '/')
        except (urllib.error.URLError, OSError):
            return True
        time.sleep(0.1)
    return False


def test_v3_is_broken(tmp_path):
    release = extract(tmp_path, 'v3', data=False)
    port, pidfile = run_server(release, tmp_path)
    try:
        assert get(port, '/') == (200, 'v3')
        status, text = get(port, '/health')
        assert status == 500 and 'config/app.json' in text
    finally:
        stop(pidfile)
    assert sorted(os.listdir(str(release))) == ['VERSION', 'config', 'server.py']


def test_stop_without_a_server_succeeds(tmp_path):
    assert stop(str(tmp_path / 'none.pid')) == 0


def test_app_rereads_its_toggles_file_on_change(tmp_path):
    release = extract(tmp_path, 'v2', data=False)
    toggles = tmp_path / 'features.json'
    port = free_port()
    pidfile = str(tmp_path / 'toggles.pid')
    subprocess.run([sys.executable, 'server.py', '--daemon', '--port', str(port), '--pidfile', pidfile,
                    '--features', str(toggles)], cwd=str(release), check=True, timeout=10)
    try:
        assert get(port, '/features') == (200, '')
        toggles.write_text('{"new_checkout": "on", "search": 25}')
        assert get(port, '/features') == (200, 'new_checkout=on\nsearch=25')
        with urllib.request.urlopen('http://127.0.0.1:%d/' % port, timeout=5) as response:
            assert response.headers['X-Features'] == 'new_checkout=on, search=25'
        toggles.write_text('{"break_health": "on"}')
        assert get(port, '/health') == (500, 'feature toggle break_health is on')
        # A file that does not parse keeps the last good toggles, and says so.
        toggles.write_text('{"break_health": ')
        status, text = get(port, '/features')
        assert status == 200 and text.startswith('break_health=on\n# ') and 'keeping the last good toggles' in text
        toggles.write_text('{"break_health": "off"}')
        assert get(port, '/health') == (200, 'ok')
    finally:
        assert stop(pidfile) == 0


def test_app_finds_the_shared_toggles_file_of_its_root(tmp_path):
    """Started from <root>/current, the app reads <root>/shared/features.json."""
    root = tmp_path / 'root'
    (root / 'releases').mkdir(parents=True)
    (root / 'shared').mkdir()
    path, _checksum = build_releases.build_release(str(tmp_path / 'art'), 'v1')
    with tarfile.open(path) as tar:
        tar.extractall(str(root / 'releases' / 'v1'), filter='data')
    os.symlink('releases/v1', str(root / 'current'))
    (root / 'shared' / 'features.json').write_text('{"new_checkout": "on"}')
    port = free_port()
    pidfile = str(tmp_path / 'root.pid')
    subprocess.run([sys.executable, str(root / 'current' / 'server.py'), '--daemon', '--port', str(port),
                    '--pidfile', pidfile], cwd=str(root / 'current'), check=True, timeout=10)
    try:
        assert get(port, '/features') == (200, 'new_checkout=on')
    finally:
        assert stop(pidfile) == 0
