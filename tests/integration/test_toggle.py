# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The toggle playbook on two hosts (two application roots and two apps on localhost): a flip in
waves, a flip that fails its health check in the second wave and puts both hosts back by itself,
previous, bad settings, and a code rollback that leaves the toggles alone."""

import json
import os
import sys
import urllib.error
import urllib.request

import pytest

from conftest import EXAMPLES, Site


def get(port, path):
    try:
        with urllib.request.urlopen('http://127.0.0.1:%d%s' % (port, path), timeout=5) as response:
            return response.status, response.read().decode().strip()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode().strip()


class Fleet(object):
    """web1 and web2: two roots with v1 rolled out, one inventory naming both."""

    def __init__(self, tmp_path, artifacts):
        self.sites = {}
        for name in ('web1', 'web2'):
            (tmp_path / name).mkdir()
            self.sites[name] = Site(tmp_path / name, artifacts)
        self.inventory = str(tmp_path / 'fleet.json')
        with open(os.path.join(EXAMPLES, 'sample-app.yml')) as handle:
            shared_vars = handle.read()
        hosts = {}
        for name, site in self.sites.items():
            hosts[name] = {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
                           'redbutton_root': site.root, 'app_port': site.port}
        # web1's check only looks at the port: it passes even while /health says 500, so the
        # failure comes in the second wave, after web1 was changed.
        hosts['web1']['redbutton_health_checks'] = [{'name': 'port', 'port': self.sites['web1'].port}]
        with open(self.inventory, 'w') as handle:
            json.dump({'all': {'hosts': hosts}}, handle)
        # The sample app's variables as group vars next to the inventory, so each host's root and port win.
        (tmp_path / 'group_vars').mkdir()
        (tmp_path / 'group_vars' / 'all.yml').write_text(shared_vars)

    def toggle(self, *extra, rc=0):
        site = self.sites['web1']
        return site.playbook('redbutton.deploy.toggle', '-i', self.inventory, '-e', 'app_python=%s' % sys.executable,
                             '-e', 'redbutton_actor=pytest', '-e', '{"redbutton_waves": [1, 1]}', *extra,
                             rc=rc, plain=True)

    def toggles(self, name):
        path = os.path.join(self.sites[name].root, 'shared', 'features.json')
        with open(path) as handle:
            return json.load(handle)

    def events(self, name):
        return [e for e in self.sites[name].ledger()['events'] if e['event'] == 'feature']


@pytest.fixture
def bare_fleet(tmp_path, artifacts):
    fleet = Fleet(tmp_path, artifacts)
    yield fleet
    for site in fleet.sites.values():
        site.stop_app()


@pytest.fixture
def fleet(bare_fleet):
    for site in bare_fleet.sites.values():
        site.rollout('v1')
    return bare_fleet


def test_flip_bad_flip_reverts_everywhere_previous(fleet):
    web1, web2 = fleet.sites['web1'], fleet.sites['web2']
    flip = fleet.toggle('-e', 'redbutton_feature=new_checkout', '-e', 'redbutton_feature_state=on')
    assert flip.recap['changed'] > 0, flip
    for name, site in fleet.sites.items():
        assert fleet.toggles(name) == {'new_checkout': 'on'}
        assert get(site.port, '/features') == (200, 'new_checkout=on')
    run_ids = set(fleet.events(name)[-1]['run_id'] for name in fleet.sites)
    assert len(run_ids) == 1 and None not in run_ids, 'one run id, decided on the controller, on every host'
    assert fleet.events('web1')[-1]['by'] == 'pytest'

    again = fleet.toggle('-e', 'redbutton_feature=new_checkout', '-e', 'redbutton_feature_state=on')
    assert again.recap['changed'] == 0, again
    assert len(fleet.events('web1')) == 1

    # web1 (wave 1) passes its port check; web2 (wave 2) fails /health: both are put back.
    bad = fleet.toggle('-e', 'redbutton_feature=break_health', '-e', 'redbutton_feature_state=on', rc=2)
    assert 'failed on web2' in bad.output and 'Reverted automatically' in bad.output, bad
    assert 'web1, web2' in bad.output.split('Reverted automatically', 1)[1], bad
    for name, site in fleet.sites.items():
        assert fleet.toggles(name) == {'new_checkout': 'on'}, name
        assert get(site.port, '/health') == (200, 'ok')
        bad_run = [e for e in fleet.events(name) if e['name'] == 'break_health']
        assert [(e['from'], e['to'], e.get('reason')) for e in bad_run] == [(None, 'on', None), ('on', None, 'revert')]
        assert bad_run[0]['run_id'] == bad_run[1]['run_id']
    assert web1.served() == web2.served() == 'v1'

    fleet.toggle('-e', 'redbutton_feature=new_checkout', '-e', 'redbutton_feature_state=25%')
    assert fleet.toggles('web2') == {'new_checkout': 25}
    fleet.toggle('-e', 'redbutton_feature=new_checkout', '-e', 'redbutton_feature_state=previous')
    for name in fleet.sites:
        assert fleet.toggles(name) == {'new_checkout': 'on'}
        assert fleet.events(name)[-1]['undoes'] == fleet.events(name)[-2]['seq']


@pytest.mark.parametrize('extra, message', [
    (['-e', 'redbutton_feature=new_checkout', '-e', 'redbutton_feature_state=150'], 'redbutton_feature_state "150" is not valid'),
    (['-e', 'redbutton_feature=New-Checkout', '-e', 'redbutton_feature_state=on'], 'redbutton_feature "New-Checkout" is not valid'),
    (['-e', 'redbutton_feature=new_checkout', '-e', 'redbutton_feature_state=on', '-e', '{"redbutton_waves": [0]}'],
     'redbutton_waves item 0 is not valid'),
    (['-e', 'redbutton_feature=new_checkout', '-e', 'redbutton_feature_state=on', '-e', 'redbutton_feature_reload=true',
      '-e', '{"redbutton_service": {"manager": "systemd"}}'], 'redbutton_feature_reload needs redbutton_service.name'),
])
def test_bad_settings_change_no_host(bare_fleet, extra, message):
    run = bare_fleet.toggle(*extra, rc=2)
    assert message in run.output and 'Nothing was changed' in run.output, run
    for site in bare_fleet.sites.values():
        assert not os.path.exists(site.root), 'a host was changed'


def test_code_rollback_leaves_toggles_alone(fleet):
    fleet.toggle('-e', 'redbutton_feature=new_checkout', '-e', 'redbutton_feature_state=on',
                 '-e', 'redbutton_feature_reload=true')
    web1 = fleet.sites['web1']
    before = open(os.path.join(web1.root, 'shared', 'features.json'), 'rb').read()
    web1.rollout('v2')
    web1.rollback()
    web1.assert_state('v1', {'v1': 'ok', 'v2': 'rolled_back'})
    assert open(os.path.join(web1.root, 'shared', 'features.json'), 'rb').read() == before
    assert get(web1.port, '/features') == (200, 'new_checkout=on')
