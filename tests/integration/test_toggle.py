# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The toggle playbook on two hosts (two application roots and two apps on localhost): a flip in
waves, a flip that fails its health check in the second wave and puts both hosts back by itself,
previous, bad settings, and a code rollback that leaves the toggles alone."""

import json
import os
import urllib.error
import urllib.request

import pytest


def get(port, path):
    try:
        with urllib.request.urlopen('http://127.0.0.1:%d%s' % (port, path), timeout=5) as response:
            return response.status, response.read().decode().strip()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode().strip()


def toggle(fleet, *extra, rc=0):
    return fleet.playbook('redbutton.deploy.toggle', '-e', '{"redbutton_waves": [1, 1]}', *extra, rc=rc)


def toggles(fleet, name):
    path = os.path.join(fleet.sites[name].root, 'shared', 'features.json')
    with open(path) as handle:
        return json.load(handle)


def events(fleet, name):
    return [e for e in fleet.sites[name].ledger()['events'] if e['event'] == 'feature']


@pytest.fixture
def fleet(bare_fleet):
    for site in bare_fleet.sites.values():
        site.rollout('v1')
    return bare_fleet


def test_flip_bad_flip_reverts_everywhere_previous(fleet):
    web1, web2 = fleet.sites['web1'], fleet.sites['web2']
    flip = toggle(fleet, '-e', 'redbutton_feature=new_checkout', '-e', 'redbutton_feature_state=on')
    assert flip.recap['changed'] > 0, flip
    for name, site in fleet.sites.items():
        assert toggles(fleet, name) == {'new_checkout': 'on'}
        assert get(site.port, '/features') == (200, 'new_checkout=on')
    run_ids = set(events(fleet, name)[-1]['run_id'] for name in fleet.sites)
    assert len(run_ids) == 1 and None not in run_ids, 'one run id, decided on the controller, on every host'
    assert events(fleet, 'web1')[-1]['by'] == 'pytest'

    again = toggle(fleet, '-e', 'redbutton_feature=new_checkout', '-e', 'redbutton_feature_state=on')
    assert again.recap['changed'] == 0, again
    assert len(events(fleet, 'web1')) == 1

    # web1 (wave 1) passes its port check; web2 (wave 2) fails /health: both are put back.
    bad = toggle(fleet, '-e', 'redbutton_feature=break_health', '-e', 'redbutton_feature_state=on', rc=2)
    assert 'failed on web2' in bad.output and 'Reverted automatically' in bad.output, bad
    assert 'web1, web2' in bad.output.split('Reverted automatically', 1)[1], bad
    for name, site in fleet.sites.items():
        assert toggles(fleet, name) == {'new_checkout': 'on'}, name
        assert get(site.port, '/health') == (200, 'ok')
        bad_run = [e for e in events(fleet, name) if e['name'] == 'break_health']
        assert [(e['from'], e['to'], e.get('reason')) for e in bad_run] == [(None, 'on', None), ('on', None, 'revert')]
        assert bad_run[0]['run_id'] == bad_run[1]['run_id']
    assert web1.served() == web2.served() == 'v1'

    toggle(fleet, '-e', 'redbutton_feature=new_checkout', '-e', 'redbutton_feature_state=25%')
    assert toggles(fleet, 'web2') == {'new_checkout': 25}
    toggle(fleet, '-e', 'redbutton_feature=new_checkout', '-e', 'redbutton_feature_state=previous')
    for name in fleet.sites:
        assert toggles(fleet, name) == {'new_checkout': 'on'}
        assert events(fleet, name)[-1]['undoes'] == events(fleet, name)[-2]['seq']


@pytest.mark.parametrize('extra, message', [
    (['-e', 'redbutton_feature=new_checkout', '-e', 'redbutton_feature_state=150'], 'redbutton_feature_state "150" is not valid'),
    (['-e', 'redbutton_feature=New-Checkout', '-e', 'redbutton_feature_state=on'], 'redbutton_feature "New-Checkout" is not valid'),
    (['-e', 'redbutton_feature=new_checkout', '-e', 'redbutton_feature_state=on', '-e', '{"redbutton_waves": [0]}'],
     'redbutton_waves item 0 is not valid'),
    (['-e', 'redbutton_feature=new_checkout', '-e', 'redbutton_feature_state=on', '-e', 'redbutton_feature_reload=true',
      '-e', '{"redbutton_service": {"manager": "systemd"}}'], 'redbutton_feature_reload needs redbutton_service.name'),
    (['-e', 'redbutton_feature=new_checkout', '-e', 'redbutton_feature_state=on', '-e', 'redbutton_feature_reload=true',
      '-e', '{"redbutton_service": {"manager": "command", "action": "reload", "reload_command": "true", "timeout": "soon"}}'],
     'redbutton_service.timeout "soon" is not valid'),
    (['-e', 'redbutton_feature=new_checkout', '-e', 'redbutton_feature_state=on', '-e', 'redbutton_feature_file=conf/features.json'],
     'file conf/features.json is a relative path: give the absolute path'),
])
def test_bad_settings_change_no_host(bare_fleet, extra, message):
    run = toggle(bare_fleet, *extra, rc=2)
    assert message in run.output and 'Nothing was changed' in run.output, run
    for site in bare_fleet.sites.values():
        assert not os.path.exists(site.root), 'a host was changed'


def test_code_rollback_leaves_toggles_alone(fleet):
    toggle(fleet, '-e', 'redbutton_feature=new_checkout', '-e', 'redbutton_feature_state=on',
           '-e', 'redbutton_feature_reload=true')
    web1 = fleet.sites['web1']
    before = open(os.path.join(web1.root, 'shared', 'features.json'), 'rb').read()
    web1.rollout('v2')
    web1.rollback()
    web1.assert_state('v1', {'v1': 'ok', 'v2': 'rolled_back'})
    assert open(os.path.join(web1.root, 'shared', 'features.json'), 'rb').read() == before
    assert get(web1.port, '/features') == (200, 'new_checkout=on')


def test_hanging_reload_is_stopped_and_the_toggle_put_back(fleet):
    # The reload hangs while slow_reload is set (2 minutes), and returns at once when it is not.
    service = {'manager': 'command', 'action': 'reload', 'timeout': 2,
               'reload_command': 'if grep -q slow_reload {{ redbutton_root }}/shared/features.json; then sleep 120; fi'}
    run = toggle(fleet, '-e', 'redbutton_feature=slow_reload', '-e', 'redbutton_feature_state=on',
                 '-e', 'redbutton_feature_reload=true', '-e', json.dumps({'redbutton_service': service}), rc=2)
    assert 'did not end within 2 s (redbutton_service.timeout): they were stopped' in run.output, run
    assert 'failed on web1' in run.output and 'Reverted automatically' in run.output, run
    # web1 was flipped, stopped in its reload and put back (its reload after the revert passed); web2 never changed.
    assert [(e['from'], e['to'], e.get('reason')) for e in events(fleet, 'web1')] == [(None, 'on', None), ('on', None, 'revert')]
    assert events(fleet, 'web2') == []
    # The revert leaves a host the run never changed exactly as it was: no toggles file is written there.
    assert not os.path.exists(os.path.join(fleet.sites['web2'].root, 'shared', 'features.json'))
    assert 'slow_reload' not in toggles(fleet, 'web1')
    for name, site in fleet.sites.items():
        assert get(site.port, '/health') == (200, 'ok')
        assert site.served() == 'v1'


def test_a_toggle_killed_while_it_holds_the_lock_is_taken_over_by_the_next_run(fleet):
    """The feature module killed right after it took the deploy lock (REDBUTTON_KILL_AT): the next run from this
    controller sees that the holder is gone and takes the lock over, as after a rollout, instead of waiting for it and
    failing (and blocking toggles, rollouts and rollbacks) until the lock's TTL of an hour runs out."""
    web1 = fleet.sites['web1']
    web1.env['REDBUTTON_KILL_AT'] = 'feature:after:lock'
    try:
        killed = toggle(fleet, '-e', 'redbutton_feature=new_checkout', '-e', 'redbutton_feature_state=on', rc=None)
    finally:
        del web1.env['REDBUTTON_KILL_AT']
    assert killed.rc != 0 and 'A worker was found in a dead state' in killed.output, killed
    assert web1.locked(), 'the killed run left no lock: the case tests nothing'

    again = toggle(fleet, '-e', 'redbutton_feature=new_checkout', '-e', 'redbutton_feature_state=on', '-e', 'redbutton_lock_timeout=5')
    assert 'taking over the deploy lock' in ' '.join(again.output.split()), again
    for name, site in fleet.sites.items():
        assert toggles(fleet, name) == {'new_checkout': 'on'}
        assert not site.locked()
    fleet.playbook('redbutton.deploy.rollback', '-e', 'redbutton_rollback_to=v1')
