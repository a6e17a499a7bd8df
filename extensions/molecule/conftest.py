# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Testinfra helpers shared by the Molecule scenarios.

Each scenario's tests ask a host the questions an operator would: which version does the
app serve over HTTP, where does `current` point, which release does the systemd service
run from, what does the ledger say, is the data in shared/ untouched. The expected values
come from the same group variables the roles were given (config.yml), so a test and the
run it checks cannot drift apart.
"""
import hashlib
import json
import os

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))


def _group_vars():
    with open(os.path.join(HERE, 'config.yml'), encoding='utf-8') as handle:
        return yaml.safe_load(handle)['provisioner']['inventory']['group_vars']['all']


VARS = _group_vars()
ROOT = VARS['redbutton_root']
PORT = VARS['sample_port']
SERVICE = VARS['redbutton_service']['name']
DATA_FILE = '%s/shared/data/%s' % (ROOT, VARS['sample_data_file'])
DATA_SHA256 = hashlib.sha256(VARS['sample_data_content'].encode('utf-8')).hexdigest()

# GET a URL inside the container with the image's python3: [status, body].
_GET = r'''
import json, sys, urllib.error, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=5) as response:
        status, body = response.status, response.read()
except urllib.error.HTTPError as error:
    status, body = error.code, error.read()
print(json.dumps([status, body.decode("utf-8").strip()]))
'''


class App:
    """The sample app on one testinfra host, seen from inside the container."""

    def __init__(self, host):
        self.host = host
        self.name = host.backend.get_hostname()

    def get(self, path='/'):
        """(HTTP status, body) of GET http://127.0.0.1:PORT/path inside the container."""
        out = self.host.check_output('python3 -c %s %s', _GET, 'http://127.0.0.1:%d%s' % (PORT, path))
        status, body = json.loads(out)
        return status, body

    def current(self):
        """The release id that `current` resolves to (None when there is no `current`)."""
        link = self.host.file('%s/current' % ROOT)
        if not link.is_symlink:
            return None
        target = link.linked_to
        assert os.path.dirname(target) == '%s/releases' % ROOT, 'current -> %s is outside releases/' % target
        return os.path.basename(target)

    def service_release(self):
        """The release directory the running service was started in (its working directory)."""
        pid = self.host.check_output('systemctl show --property MainPID --value %s', SERVICE)
        assert pid not in ('', '0'), '%s is not running on %s' % (SERVICE, self.name)
        return os.path.basename(self.host.check_output('readlink /proc/%s/cwd', pid))

    def ledger(self):
        ledger = self.host.file('%s/.redbutton/ledger.json' % ROOT)
        assert ledger.is_file, 'no ledger on %s' % self.name
        return json.loads(ledger.content_string)

    def statuses(self):
        """{release id: status} from the ledger."""
        return {rid: rel['status'] for rid, rel in self.ledger()['releases'].items()}

    def releases(self):
        """The entries of releases/ (release trees and anything left behind)."""
        return sorted(self.host.file('%s/releases' % ROOT).listdir())

    def release_file(self, release, path):
        """Text of a file inside releases/<release>/."""
        return self.host.file('%s/releases/%s/%s' % (ROOT, release, path)).content_string

    def data_sha256(self):
        return self.host.file(DATA_FILE).sha256sum

    def assert_serves(self, version):
        """The whole chain agrees on one release: HTTP, health, current, the service."""
        assert self.get('/') == (200, version), 'GET / on %s' % self.name
        assert self.get('/health') == (200, 'ok'), 'GET /health on %s' % self.name
        assert self.current() == version
        assert self.service_release() == version

    def assert_shared_data_intact(self, release):
        """shared/ survived byte for byte and is linked into the release."""
        assert self.data_sha256() == DATA_SHA256, '%s changed on %s' % (DATA_FILE, self.name)
        link = self.host.file('%s/releases/%s/data' % (ROOT, release))
        assert link.is_symlink and link.linked_to == '%s/shared/data' % ROOT

    def assert_unlocked(self):
        assert not self.host.file('%s/.redbutton/lock' % ROOT).exists, 'deploy lock left on %s' % self.name


@pytest.fixture
def app(host):
    return App(host)
