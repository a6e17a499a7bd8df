# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures of the integration tests: a real application root, the sample app on a free
port, and ansible-playbook run as a subprocess against localhost.

Each test gets its own root (under tmp_path) and port, and the app is stopped afterwards.
"""

import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(REPO, 'examples')
COLLECTIONS = os.path.join(REPO, '.build', 'collections')
sys.path.insert(0, EXAMPLES)

import build_releases  # noqa: E402  (examples/ is not a package)

# The collections of the `ansible` package in the venv, after this one: community.general, which the
# load balancer tasks use (galaxy.yml's dependency; a user gets it with the collection).
BUNDLED = os.path.dirname(os.path.dirname(os.path.dirname(
    importlib.util.find_spec('ansible_collections.community.general').submodule_search_locations[0])))

# The header of a redbutton.deploy.transition call of the roles (roles/steps/tasks/call.yml).
ENGINE_CALL = re.compile(r'TASK \[redbutton\.deploy\.steps : Call redbutton\.deploy\.transition (rollout|rollback|auto_rollback): ([a-z, ]+)\] \*+')
RECAP = re.compile(r'^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+skipped=(\d+)\s+rescued=(\d+)', re.M)


@pytest.fixture(scope='session')
def artifacts(tmp_path_factory):
    """app-v1/v2/v3.tar.gz, built once per session: {version: (path, checksum)}."""
    return build_releases.build_all(str(tmp_path_factory.mktemp('artifacts')))


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class Run(object):
    """One ansible-playbook run: its exit code, output and PLAY RECAP."""

    def __init__(self, args, proc):
        self.args = args
        self.rc = proc.returncode
        self.output = proc.stdout + proc.stderr
        match = RECAP.search(proc.stdout)
        keys = ('ok', 'changed', 'unreachable', 'failed', 'skipped', 'rescued')
        self.recap = dict(zip(keys, (int(v) for v in match.groups()[1:]))) if match else {}

    def engine_calls(self):
        """The transition module calls the run made, in order: [(direction, [steps])]; skipped ones left out."""
        calls = []
        for block in re.split(r'\n(?=TASK \[)', self.output):
            match = ENGINE_CALL.match(block)
            if match and re.search(r'^(ok|changed|fatal): \[', block, re.M):
                calls.append((match.group(1), match.group(2).split(', ')))
        return calls

    def __repr__(self):
        return 'ansible-playbook %s -> rc %s\n%s' % (' '.join(self.args), self.rc, self.output[-6000:])


class Site(object):
    """An application root on localhost and the means to deploy into it and look at it."""

    def __init__(self, tmp_path, artifacts):
        self.tmp = tmp_path
        self.root = str(tmp_path / 'root')
        self.port = free_port()
        self.artifacts = artifacts
        self.inventory = str(tmp_path / 'inventory.ini')
        with open(self.inventory, 'w', encoding='utf-8') as handle:
            handle.write('localhost ansible_connection=local ansible_python_interpreter=%s\n' % sys.executable)
        self.env = dict(os.environ)
        self.env.update(
            ANSIBLE_COLLECTIONS_PATH=COLLECTIONS + os.pathsep + BUNDLED, ANSIBLE_COLLECTIONS_SCAN_SYS_PATH='false',
            ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0', ANSIBLE_RETRY_FILES_ENABLED='false')
        self.extra = []

    def base_args(self):
        return ['-i', self.inventory, '-e', '@' + os.path.join(EXAMPLES, 'sample-app.yml'),
                '-e', 'redbutton_root=%s' % self.root, '-e', 'app_port=%d' % self.port,
                '-e', 'app_python=%s' % sys.executable, '-e', 'redbutton_actor=pytest'] + self.extra

    def vars_file(self, name, data):
        """Write data as an extra-vars file (for structured values) and return ['-e', '@file']."""
        path = str(self.tmp / ('%s.json' % name))
        with open(path, 'w', encoding='utf-8') as handle:
            json.dump(data, handle)
        return ['-e', '@' + path]

    def playbook(self, name, *extra, rc=0, plain=False, cwd=None):
        """Run a playbook with the sample app's variables, or with plain=True only with the arguments given.
        It runs in the test's directory (a rollout's runbook goes into ./runbooks there) unless cwd says otherwise."""
        args = [name] + ([] if plain else self.base_args()) + list(extra)
        proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')] + args,
                              env=self.env, capture_output=True, text=True, check=False, cwd=cwd or str(self.tmp))
        run = Run(args, proc)
        if rc is not None:
            assert run.rc == rc, run
        return run

    def rollout(self, version, *extra, rc=0):
        path, _checksum = self.artifacts[version]
        return self.playbook('redbutton.deploy.rollout', '-e', 'redbutton_release=%s' % version,
                             '-e', 'redbutton_artifact=%s' % path, *extra, rc=rc)

    def rollback(self, *extra, rc=0):
        return self.playbook('redbutton.deploy.rollback', *extra, rc=rc)

    # what a user would look at ----------------------------------------------------------
    def served(self):
        try:
            with urllib.request.urlopen('http://127.0.0.1:%d/' % self.port, timeout=5) as response:
                return response.read().decode('utf-8').strip()
        except (urllib.error.URLError, OSError):
            return None

    def current(self):
        link = os.path.join(self.root, 'current')
        if not os.path.islink(link):
            return None
        target = os.readlink(link)
        assert target == os.path.join('releases', os.path.basename(target)), 'current is not a relative link into releases/'
        return os.path.basename(target)

    def ledger_bytes(self):
        with open(os.path.join(self.root, '.redbutton', 'ledger.json'), 'rb') as handle:
            return handle.read()

    def ledger(self):
        return json.loads(self.ledger_bytes().decode('utf-8'))

    def statuses(self):
        return dict((rid, entry['status']) for rid, entry in self.ledger()['releases'].items())

    def release_dirs(self):
        return sorted(name for name in os.listdir(os.path.join(self.root, 'releases')) if not name.startswith('.'))

    def locked(self):
        return os.path.exists(os.path.join(self.root, '.redbutton', 'lock'))

    def assert_state(self, served, statuses):
        """The three things a user relies on, after every step: HTTP, the symlink, the ledger."""
        assert self.served() == served
        assert self.current() == served
        assert self.ledger()['current'] == served
        assert self.statuses() == statuses
        assert not self.locked(), 'the deploy lock was left behind'

    def stop_app(self):
        pidfile = os.path.join(self.root, 'shared', 'app.pid')
        subprocess.run([sys.executable, os.path.join(EXAMPLES, 'app', 'server.py'), '--stop', '--pidfile', pidfile],
                       check=False)


@pytest.fixture
def site(tmp_path, artifacts):
    """A fresh application root and port; the app is stopped when the test ends."""
    site = Site(tmp_path, artifacts)
    yield site
    site.stop_app()


def content_id(path):
    """The default release id of an artifact: 'sha256-' and 12 hex digits of its content digest
    (paths, types, modes, bytes, link targets), not of the archive's bytes."""
    if COLLECTIONS not in sys.path:
        sys.path.insert(0, COLLECTIONS)
    from ansible_collections.redbutton.deploy.plugins.module_utils._archive import open_source  # pylint: disable=import-error
    return 'sha256-' + open_source(path).scan().split(':', 1)[1][:12]


class Fleet(object):
    """Hosts web1, web2, ... on localhost: one application root and one app (port) each, one inventory naming
    them all, the sample app's variables as group vars (so each host's root and port win).

    web1's health check only looks at the port: it passes even while /health says 500 (the broken v3, or the
    break_health toggle), so a failure comes in the second wave, after web1 was changed."""

    def __init__(self, tmp_path, artifacts, names=('web1', 'web2'), app=True):
        """app=False: the group vars name no redbutton_app, each host only its redbutton_root."""
        self.tmp = tmp_path
        self.sites = {}
        for name in names:
            (tmp_path / name).mkdir()
            self.sites[name] = Site(tmp_path / name, artifacts)
        self.inventory = str(tmp_path / 'fleet.json')
        with open(os.path.join(EXAMPLES, 'sample-app.yml'), encoding='utf-8') as handle:
            shared_vars = handle.read()
        if not app:
            shared_vars = re.sub(r'^redbutton_app:.*\n', '', shared_vars, flags=re.M)
        hosts = {}
        for name, site in self.sites.items():
            hosts[name] = {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
                           'redbutton_root': site.root, 'app_port': site.port}
        hosts['web1']['redbutton_health_checks'] = [{'name': 'port', 'port': self.sites['web1'].port}]
        with open(self.inventory, 'w', encoding='utf-8') as handle:
            json.dump({'all': {'hosts': hosts}}, handle)
        (tmp_path / 'group_vars').mkdir()
        (tmp_path / 'group_vars' / 'all.yml').write_text(shared_vars)

    def playbook(self, name, *extra, rc=0):
        """Run a collection playbook against the whole inventory (-e redbutton_hosts=... narrows it)."""
        return self.sites['web1'].playbook(name, '-i', self.inventory, '-e', 'app_python=%s' % sys.executable,
                                           '-e', 'redbutton_actor=pytest', *extra, rc=rc, plain=True)

    def vars_file(self, name, data):
        return self.sites['web1'].vars_file(name, data)

    def stop(self):
        for site in self.sites.values():
            site.stop_app()


@pytest.fixture
def bare_fleet(tmp_path, artifacts):
    """web1 and web2, nothing rolled out yet."""
    fleet = Fleet(tmp_path, artifacts)
    yield fleet
    fleet.stop()
