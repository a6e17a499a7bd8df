# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The red button on the host: after two playbook rollouts of the sample app (command
service, HTTP health check), `<root>/.redbutton/bin/redbutton rollback --yes` run with a
plain python3 (no Ansible, no controller) rolls back like the playbook, and the next
playbook runs see it: the status playbook shows the event, a default rollback is a no-op,
and rolling v2 out again works."""

import json
import os
import pwd
import re
import socket
import subprocess

import pytest

# The command's #!/usr/bin/env python3 finds the system's python3 here, not the virtualenv's.
PLAIN_ENV = {'PATH': '/usr/bin:/bin', 'HOME': '/nonexistent', 'LANG': 'C.UTF-8'}


def press(site, *args):
    command = os.path.join(site.root, '.redbutton', 'bin', 'redbutton')
    return subprocess.run([command] + list(args), env=PLAIN_ENV, capture_output=True, text=True, check=False,
                          stdin=subprocess.DEVNULL)


@pytest.fixture
def pressed(site):
    """v1 and v2 rolled out with the playbook, then the red button pressed: the site and the run."""
    site.rollout('v1')
    site.rollout('v2')
    site.assert_state('v2', {'v1': 'ok', 'v2': 'ok'})
    probe = subprocess.run(['python3', '-c', 'import ansible'], env=PLAIN_ENV, capture_output=True, check=False)
    assert probe.returncode != 0, 'the python3 on PATH can import Ansible: this test would not show the command needs none'
    return site, press(site, 'rollback', '--yes')


def test_red_button_rolls_back_like_the_playbook(pressed):
    site, proc = pressed
    assert proc.returncode == 0, proc.stdout + proc.stderr
    site.assert_state('v1', {'v1': 'ok', 'v2': 'rolled_back'})
    assert re.search(r'^v1 serves again and passed 1 health check; host matches baseline before-v2 \(\d+ files, shared data '
                     r'intact, \d+ probes\); v2 is marked rolled_back$', proc.stdout, re.M), proc.stdout
    who = '%s@%s' % (pwd.getpwuid(os.getuid()).pw_name, socket.gethostname())
    ledger = site.ledger()
    switch = ledger['last_switch']
    assert (switch['from'], switch['to'], switch['reason'], switch['by']) == ('v2', 'v1', 'rollback', who)
    activated = [event for event in ledger['events'] if event['event'] == 'activated'][-1]
    assert (activated['release'], activated['from'], activated['by']) == ('v1', 'v2', who)
    assert ledger['releases']['v1']['metadata']['baseline_checked'] == 'before-v2'


def test_the_next_playbook_runs_see_it(pressed):
    site, proc = pressed
    assert proc.returncode == 0, proc.stdout + proc.stderr
    who = '%s@%s' % (pwd.getpwuid(os.getuid()).pw_name, socket.gethostname())
    # The status playbook shows the event.
    status = site.playbook('redbutton.deploy.status')
    assert 'activated v1 (from v2), rollback by %s' % who in status.output
    assert 'last switch: v2 -> v1 (rollback)' in status.output
    # A default rollback right after it changes nothing.
    before = site.ledger_bytes()
    run = site.rollback()
    assert run.recap['changed'] == 0, run
    site.assert_state('v1', {'v1': 'ok', 'v2': 'rolled_back'})
    assert json.loads(site.ledger_bytes())['seq'] == json.loads(before)['seq']
    # Rolling the undone release out again works as after a playbook rollback.
    site.rollout('v2')
    site.assert_state('v2', {'v1': 'ok', 'v2': 'ok'})


def test_verify_and_status_after_it(pressed):
    site, proc = pressed
    assert proc.returncode == 0, proc.stdout + proc.stderr
    before = site.ledger_bytes()
    verify = press(site, 'verify', '--json')
    assert verify.returncode == 0, verify.stdout + verify.stderr
    answer = json.loads(verify.stdout)
    assert answer['exit'] == 0
    assert [check['passed'] for check in answer['checks']] == [True]
    assert answer['compare']['name'] == 'before-v2' and answer['compare']['matched'] is True
    status = press(site, 'status', '--json')
    assert status.returncode == 0, status.stderr
    document = json.loads(status.stdout)
    assert (document['current'], document['previous'], document['lock']) == ('v1', None, None)
    assert site.ledger_bytes() == before
    # A second press right after the first stays put (exit 0, nothing recorded).
    again = press(site, 'rollback', '--yes', '--json')
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads(again.stdout)['moved'] is False
    assert site.ledger_bytes() == before
    site.assert_state('v1', {'v1': 'ok', 'v2': 'rolled_back'})


def test_a_failing_restored_release_exits_1_and_says_where_the_host_stands(site):
    site.rollout('v1')
    site.rollout('v2')
    # Break v1's health on the host (the app answers 500 when its config says it is unhealthy).
    config = os.path.join(site.root, 'releases', 'v1', 'config', 'app.json')
    with open(config, encoding='utf-8') as handle:
        data = json.load(handle)
    data['healthy'] = False
    with open(config, 'w', encoding='utf-8') as handle:
        json.dump(data, handle)
    proc = press(site, 'rollback', '--yes')
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert site.current() == 'v1'
    assert site.statuses() == {'v1': 'active', 'v2': 'rolled_back'}
    assert 'rollback failed at verify after switching current to v1' in proc.stderr
    assert 'redbutton rollback --to v1' in proc.stderr
    assert not site.locked()
