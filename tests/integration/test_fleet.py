# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A fleet in waves on localhost (several application roots and apps, one inventory): a second wave
that fails puts the first wave's hosts back too (the fleet-wide rollback, by the run id on the
ledgers), a gate that fails does the same, redbutton_fleet_rollback: false leaves the canary and says
so, a passing gate, a rollback wave by wave, and each bad wave or gate setting refused before any
host changes."""

import json
import os
import re
import sys
import threading

from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from conftest import EXAMPLES, Fleet

sys.path.insert(0, EXAMPLES)
import build_releases  # noqa: E402  (examples/ is not a package)


@pytest.fixture
def fleet3(tmp_path, artifacts):
    """web1, web2, web3 with v1 rolled out; v4 built beside v1-v3 (a good release, like v2)."""
    fleet = Fleet(tmp_path, artifacts, names=('web1', 'web2', 'web3'))
    fleet.artifacts = dict(artifacts)
    fleet.artifacts['v4'] = build_releases.build_release(str(tmp_path), 'v4')
    yield fleet
    fleet.stop()


def rollout(fleet, version, *extra, rc=0):
    path, dummy = fleet.artifacts[version]
    return fleet.playbook('redbutton.deploy.rollout', '-e', 'redbutton_release=%s' % version,
                          '-e', 'redbutton_artifact=%s' % path, *extra, rc=rc)


def run_events(site, run_id):
    return [(e['event'], e['release'], e.get('reason'), e.get('from')) for e in site.ledger()['events'] if e.get('run_id') == run_id]


def toggles(fleet, name):
    path = os.path.join(fleet.sites[name].root, 'shared', 'features.json')
    if not os.path.exists(path):
        return {}
    with open(path) as handle:
        return json.load(handle)


def table(run):
    """The per-host table's rows as {host: line}, from the debug output of the last play."""
    rows = re.findall(r'^\s+"(web\d|ghost)\s+(\d|-)\s+(\S+)\s+(\S+)\s+(.*)",?$', run.output, re.M)
    return dict((host, (wave, before, now, what)) for host, wave, before, now, what in rows)


class Metrics(object):
    """A Prometheus-style query API on localhost answering an error rate the test sets."""

    def __init__(self):
        metrics = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (the standard library's name)
                body = json.dumps({'status': 'success', 'data': {'resultType': 'vector', 'result': [
                    {'metric': {}, 'value': [1764490000.5, metrics.value]}]}}).encode()
                self.send_response(200)
                self.send_header('Content-Type', 'application/json')
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.value = '0'
        self.server = HTTPServer(('127.0.0.1', 0), Handler)
        self.url = 'http://127.0.0.1:%d/api/v1/query?query=error_rate' % self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def gate(self):
        return {'name': 'errors', 'kind': 'metric', 'url': self.url, 'json_path': 'data.result.0.value.1', 'max': 0.05}

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def metrics():
    server = Metrics()
    yield server
    server.close()


def test_a_failed_wave_puts_back_every_host_the_run_moved(fleet3):
    web1, web2, web3 = (fleet3.sites[name] for name in ('web1', 'web2', 'web3'))
    rollout(fleet3, 'v1')
    web3_ledger = web3.ledger_bytes()

    # v3 is broken: web1 (the canary, whose check only looks at the port) passes wave 1, web2 fails
    # wave 2 and rolls itself back, web3 (wave 3) is never touched; the fleet-wide rollback puts web1 back.
    run = rollout(fleet3, 'v3', '-e', '{"redbutton_waves": [1, 1, 1]}', rc=2)
    web1.assert_state('v1', {'v1': 'ok', 'v3': 'rolled_back'})
    web2.assert_state('v1', {'v1': 'ok', 'v3': 'failed'})
    assert web3.ledger_bytes() == web3_ledger and web3.served() == 'v1', 'a host the run never reached was touched'
    run_id = web1.ledger()['last_transition']['run_id']
    assert run_id and web2.ledger()['last_transition']['run_id'] == run_id
    assert [e for e in run_events(web1, run_id) if e[0] == 'activated'] == [
        ('activated', 'v3', 'rollout', 'v1'), ('activated', 'v1', 'rollback', 'v3')], run_events(web1, run_id)
    assert [e for e in run_events(web2, run_id) if e[0] == 'activated'] == [
        ('activated', 'v3', 'rollout', 'v1'), ('activated', 'v1', 'auto_rollback', 'v3')], run_events(web2, run_id)
    rows = table(run)
    assert rows['web1'][:3] == ('1', 'v1', 'v1') and rows['web1'][3].endswith('; put back on v1 by the fleet-wide rollback'), run
    assert rows['web2'][:3] == ('2', 'v1', 'v1') and rows['web2'][3].startswith('failed: Rollout of v3 failed at verify'), run
    assert rows['web3'] == ('3', 'v1', 'v1', 'not touched: an earlier wave failed'), run
    assert 'Wave 2 failed on web2: Rollout of v3 failed at verify' in run.output, run
    assert 'Fleet-wide rollback of run %s: put back web1 (v1).' % run_id in run.output, run
    assert re.search(r'^web2\s+:.* failed=1 ', run.output, re.M) and re.search(r'^web1\s+:.* failed=0 ', run.output, re.M), run


def test_a_hook_failing_after_a_verified_release_puts_no_host_back(fleet3, tmp_path):
    """A failure after the release was verified and finished (a notification hook) keeps that healthy
    release on its host, as on a single host: it stops the later waves, and puts back no host."""
    web1, web2, web3 = (fleet3.sites[name] for name in ('web1', 'web2', 'web3'))
    rollout(fleet3, 'v1')
    hook = tmp_path / 'notify.yml'
    hook.write_text("- name: Notify a chat that is down\n  ansible.builtin.fail:\n    msg: chat unreachable\n"
                    "  when: inventory_hostname == 'web2'\n")
    run = rollout(fleet3, 'v2', '-e', '{"redbutton_waves": [1, 1, 1]}', '-e', 'redbutton_after_finish=%s' % hook, rc=2)
    web1.assert_state('v2', {'v1': 'ok', 'v2': 'ok'})
    web2.assert_state('v2', {'v1': 'ok', 'v2': 'ok'})
    assert web3.current() == 'v1' and web3.statuses() == {'v1': 'ok'}, 'the wave after the failure must not run'
    run_id = web1.ledger()['last_transition']['run_id']
    assert [e for e in run_events(web1, run_id) if e[0] == 'activated'] == [('activated', 'v2', 'rollout', 'v1')]
    rows = table(run)
    assert rows['web1'][0] == '1' and 'put back' not in rows['web1'][3], run
    assert rows['web2'][3].startswith('failed: ') and 'chat unreachable' in rows['web2'][3], run
    # No host is put back, so the ledgers are not read: before and now stay unknown (-) in the table.
    assert rows['web3'] == ('3', '-', '-', 'not touched: an earlier wave failed'), run
    assert re.search(r'^web2\s+:.* failed=1 ', run.output, re.M), run


def test_gates_between_waves(fleet3, metrics):
    web1, web2, web3 = (fleet3.sites[name] for name in ('web1', 'web2', 'web3'))
    rollout(fleet3, 'v1')
    waves = fleet3.vars_file('waves', {'redbutton_waves': [1, '100%'], 'redbutton_gates': [metrics.gate()]})

    # The error rate is above the gate's max after the canary's wave: the canary goes back, the rest is never touched.
    metrics.value = '0.2'
    run = rollout(fleet3, 'v2', *waves, rc=2)
    for site in (web1, web2, web3):
        assert site.current() == 'v1' and site.served() == 'v1'
    assert web1.statuses() == {'v1': 'ok', 'v2': 'rolled_back'} and web2.statuses() == {'v1': 'ok'}
    rows = table(run)
    assert rows['web1'][:3] == ('1', 'v1', 'v1'), run
    assert 'failed: gate errors failed: 0.2 > max 0.05 (%s); put back on v1 by the fleet-wide rollback' % metrics.url in rows['web1'][3], run
    assert rows['web2'][3] == rows['web3'][3] == 'not touched: an earlier wave failed', run
    assert len(fleet3.sites['web1'].ledger()['events']) > 0

    # redbutton_fleet_rollback: false leaves the canary on the new release and says so.
    run = rollout(fleet3, 'v2', *waves, '-e', 'redbutton_fleet_rollback=false', rc=2)
    assert web1.current() == 'v2' and web1.served() == 'v2' and web2.current() == web3.current() == 'v1'
    assert 'redbutton_fleet_rollback is false: the hosts this run moved stay where they are. Left on the new release: web1 (v2).' \
        in run.output, run
    assert table(run)['web1'][:3] == ('1', 'v1', 'v2') and table(run)['web1'][3].endswith('left on v2: redbutton_fleet_rollback is false')
    left_run = web1.ledger()['last_transition']['run_id']

    # A run id and a target release at once are refused before any host changes.
    refused = fleet3.playbook('redbutton.deploy.rollback', '-e', 'redbutton_rollback_run=%s' % left_run, '-e', 'redbutton_rollback_to=v1',
                              rc=2)
    assert 'Nothing was changed: redbutton_rollback_run and redbutton_rollback_to are both set' in refused.output, refused
    assert web1.current() == 'v2' and web1.statuses()['v2'] == 'ok' and refused.engine_calls() == [], refused

    # Later, that run's fleet-wide rollback by its id (as after a denied approval in AWX): web1 back, the others left alone.
    back = fleet3.playbook('redbutton.deploy.rollback', '-e', 'redbutton_rollback_run=%s' % left_run)
    web1.assert_state('v1', {'v1': 'ok', 'v2': 'rolled_back'})
    assert web2.current() == web3.current() == 'v1' and web2.statuses() == {'v1': 'ok'}
    assert 'run %s never moved this host: left alone' % left_run in back.output, back
    assert back.engine_calls() == [('rollback', ['switch', 'restart', 'verify', 'compare', 'finish'])], back

    # The error rate is fine: every wave passes its gate, and the rehearsal runs in waves too.
    metrics.value = '0.01'
    path, dummy = fleet3.artifacts['v4']
    run = fleet3.playbook('redbutton.deploy.rehearse', '-e', 'redbutton_release=v4', '-e', 'redbutton_artifact=%s' % path, *waves)
    for site in (web1, web2, web3):
        site.assert_state('v4', {'v1': 'ok', 'v4': 'ok'} if site is not web1 else {'v1': 'ok', 'v2': 'rolled_back', 'v4': 'ok'})
    assert run.output.count('gate errors passed: 0.01 <= max 0.05 (%s)' % metrics.url) == 2, run

    # A plain rollback in waves goes back one wave after the other (one engine call per wave, in order).
    back = fleet3.playbook('redbutton.deploy.rollback', '-e', '{"redbutton_waves": [1, 1, 1]}')
    for site in (web1, web2, web3):
        assert site.current() == 'v1' and site.served() == 'v1'
    calls = re.findall(r'TASK \[redbutton\.deploy\.steps : Call redbutton\.deploy\.transition rollback: [a-z, ]+\] \*+\n(?:changed|ok): \[(web\d)\]',
                       back.output)
    assert calls == ['web1', 'web2', 'web3'], back


@pytest.mark.parametrize('settings, message', [
    ({'redbutton_waves': [1, 0]}, 'redbutton_waves item 0 is not valid: give a number of hosts greater than 0'),
    ({'redbutton_waves': ['150%']}, 'redbutton_waves item "150%" is not valid'),
    ({'redbutton_waves': [1], 'redbutton_serial': 1}, 'redbutton_waves and redbutton_serial are both set'),
    ({'redbutton_gates': [{'name': 'errors', 'kind': 'metric', 'command': 'echo 0'}]},
     'redbutton_gates item 1 (errors): a metric gate needs a threshold: max'),
    ({'redbutton_gates': [{'name': 'errors', 'kind': 'prometheus', 'url': 'http://x/', 'max': 1}]},
     'redbutton_gates item 1 (errors): kind "prometheus" is not valid: give http, command or metric.'),
    ({'redbutton_gates': [{'name': 'smoke', 'kind': 'command', 'command': 'true', 'run_on': 'web9'}]},
     'redbutton_gates item 1 (smoke): run_on "web9" is not a host of the inventory'),
])
def test_bad_wave_and_gate_settings_change_no_host(bare_fleet, settings, message):
    path, dummy = bare_fleet.sites['web1'].artifacts['v1']
    run = bare_fleet.playbook('redbutton.deploy.rollout', '-e', 'redbutton_release=v1', '-e', 'redbutton_artifact=%s' % path,
                              *bare_fleet.vars_file('bad', settings), rc=2)
    assert 'Nothing was changed: ' in run.output and message in run.output, run
    for site in bare_fleet.sites.values():
        assert not os.path.exists(site.root), 'a host was changed'


@pytest.mark.parametrize('playbook', ['redbutton.deploy.rollout', 'redbutton.deploy.rehearse'])
def test_a_target_release_as_an_extra_var_of_a_rollout_changes_no_host(bare_fleet, playbook):
    """An extra var wins over the put-back's own target: a rollout or a rehearsal refuses it."""
    path, dummy = bare_fleet.sites['web1'].artifacts['v1']
    run = bare_fleet.playbook(playbook, '-e', 'redbutton_release=v1', '-e', 'redbutton_artifact=%s' % path,
                              '-e', 'redbutton_rollback_to=v0', rc=2)
    assert 'Nothing was changed: redbutton_rollback_to v0 is an extra var of the %s playbook' % playbook.split('.')[-1] in run.output, run
    for site in bare_fleet.sites.values():
        assert not os.path.exists(site.root), 'a host was changed'


def test_a_toggle_gate_that_fails_reverts_the_wave(bare_fleet):
    bare_fleet.playbook('redbutton.deploy.rollout', '-e', 'redbutton_release=v1',
                        '-e', 'redbutton_artifact=%s' % bare_fleet.sites['web1'].artifacts['v1'][0])
    marker = os.path.join(str(bare_fleet.tmp), 'smoke-ok')
    gate = {'redbutton_gates': [{'name': 'smoke', 'kind': 'command', 'command': 'test -f %s' % marker, 'run_on': 'web2'}]}
    run = bare_fleet.playbook('redbutton.deploy.toggle', '-e', 'redbutton_feature=new_checkout', '-e', 'redbutton_feature_state=on',
                              '-e', '{"redbutton_waves": [1, 1]}', *bare_fleet.vars_file('gate', gate), rc=2)
    assert 'failed on web1' in run.output and 'gate smoke failed: rc 1' in run.output, run
    for name in bare_fleet.sites:
        assert 'new_checkout' not in toggles(bare_fleet, name), name
    assert 'put back' in table(run)['web1'][3] and table(run)['web2'][3] == 'not touched: an earlier wave failed', run
    open(marker, 'w').close()
    run = bare_fleet.playbook('redbutton.deploy.toggle', '-e', 'redbutton_feature=new_checkout', '-e', 'redbutton_feature_state=on',
                              '-e', '{"redbutton_waves": [1, 1]}', *bare_fleet.vars_file('gate', gate))
    assert run.output.count('gate smoke passed') == 2, run
    for name in bare_fleet.sites:
        assert toggles(bare_fleet, name).get('new_checkout') == 'on', name


def test_an_unreachable_host_stops_the_waves_and_the_run_goes_back(bare_fleet, tmp_path):
    """ghost (nothing listens on its SSH port) shares wave 2 with web2: web1 and web2 are put back."""
    web1, web2 = bare_fleet.sites['web1'], bare_fleet.sites['web2']
    with open(bare_fleet.inventory) as handle:
        inventory = json.load(handle)
    inventory['all']['hosts']['ghost'] = {'ansible_connection': 'ssh', 'ansible_host': '127.0.0.1', 'ansible_port': 9,
                                          'ansible_ssh_common_args': '-o ConnectTimeout=3', 'redbutton_root': str(tmp_path / 'ghost')}
    with open(bare_fleet.inventory, 'w') as handle:
        json.dump(inventory, handle)
    path = web1.artifacts['v1'][0]
    bare_fleet.playbook('redbutton.deploy.rollout', '-e', 'redbutton_release=v1', '-e', 'redbutton_artifact=%s' % path,
                        '-e', 'redbutton_hosts=web1:web2')
    path = web1.artifacts['v2'][0]
    run = bare_fleet.playbook('redbutton.deploy.rollout', '-e', 'redbutton_release=v2', '-e', 'redbutton_artifact=%s' % path,
                              '-e', '{"redbutton_waves": [1, 2]}', rc=4)
    web1.assert_state('v1', {'v1': 'ok', 'v2': 'rolled_back'})
    web2.assert_state('v1', {'v1': 'ok', 'v2': 'rolled_back'})
    rows = table(run)
    assert rows['web1'][3].endswith('put back on v1 by the fleet-wide rollback') and rows['web2'][3].endswith(
        'put back on v1 by the fleet-wide rollback'), run
    assert re.search(r'"ghost\s+2\s+-\s+-\s+unreachable, or failed outside its rollout"', run.output), run


def test_a_fleet_named_by_its_roots_alone_is_put_back(tmp_path, artifacts):
    """redbutton_root without redbutton_app (the user guide: the app is "required unless redbutton_root is set"): the
    fleet-wide put-back after a failed wave, a rollback by run id and the runbook read each host's root."""
    fleet = Fleet(tmp_path, artifacts, app=False)
    fleet.artifacts = artifacts
    web1, web2 = fleet.sites['web1'], fleet.sites['web2']
    try:
        rollout(fleet, 'v1')
        run = rollout(fleet, 'v3', '-e', '{"redbutton_waves": [1, 1]}', rc=2)
        web1.assert_state('v1', {'v1': 'ok', 'v3': 'rolled_back'})
        web2.assert_state('v1', {'v1': 'ok', 'v3': 'failed'})
        assert 'Fleet-wide rollback of run %s: put back web1 (v1).' % web1.ledger()['last_transition']['run_id'] in run.output, run
        assert table(run)['web1'][3].endswith('; put back on v1 by the fleet-wide rollback'), run

        rollout(fleet, 'v2')
        run_id = web1.ledger()['last_transition']['run_id']
        fleet.playbook('redbutton.deploy.rollback', '-e', 'redbutton_rollback_run=%s' % run_id)
        web1.assert_state('v1', {'v1': 'ok', 'v2': 'rolled_back', 'v3': 'rolled_back'})
        web2.assert_state('v1', {'v1': 'ok', 'v2': 'rolled_back', 'v3': 'failed'})

        fleet.playbook('redbutton.deploy.runbook', '-e', 'redbutton_release=v2', '-e', 'redbutton_artifact=%s' % fleet.artifacts['v2'][0])
        assert os.path.isfile(os.path.join(web2.root, '.redbutton', 'runbooks', 'v2.md'))
    finally:
        fleet.stop()
