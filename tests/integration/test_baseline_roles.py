# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The roles prove a rollback with baselines: the rollout records `before-<id>` of the release
it replaces, the rollback compares the host with it and fails naming what differs, and the
verify playbook runs the same comparison on demand."""

import json
import os


def baseline(site, name):
    path = os.path.join(site.root, '.redbutton', 'baselines', '%s.json' % name)
    if not os.path.exists(path):
        return None
    with open(path, encoding='utf-8') as handle:
        return json.load(handle)


def metadata(site, release):
    return site.ledger()['releases'][release].get('metadata', {})


def roll_out_v1_v2(site, *extra):
    site.rollout('v1', *extra)
    assert baseline(site, 'before-v1') is None, 'a first rollout has no release to record'
    site.rollout('v2', *extra)
    site.assert_state('v2', {'v1': 'ok', 'v2': 'ok'})


def test_rollback_matches_the_baseline_and_verify_compares_on_demand(site):
    roll_out_v1_v2(site)
    recorded = baseline(site, 'before-v2')
    probes = dict((probe['name'], probe) for probe in recorded['probes'])
    assert probes['release']['result']['link'] == 'releases/v1', 'the baseline describes v1, which served before v2'
    assert probes['shared']['compare'] == 'no_loss'
    assert metadata(site, 'v2') == {'baseline': 'before-v2', 'baseline_of': 'v1'}

    rerun = site.rollout('v2')
    assert rerun.recap['changed'] == 0, rerun

    run = site.rollback()
    expected = 'v1 serves again and passed 1 health check; host matches baseline before-v2 (%d files, shared data intact' % (
        probes['release']['result']['count'])
    assert expected in run.output, run
    site.assert_state('v1', {'v1': 'ok', 'v2': 'rolled_back'})
    assert metadata(site, 'v1')['baseline_checked'] == 'before-v2'

    # After an incident: the verify playbook compares the host with the baseline describing v1.
    verify = site.playbook('redbutton.deploy.verify')
    assert 'host matches baseline before-v2' in verify.output, verify
    app_json = os.path.join(site.root, 'releases', 'v1', 'config', 'app.json')
    with open(app_json, 'a', encoding='utf-8') as handle:
        handle.write(' ')
    tampered = site.playbook('redbutton.deploy.verify', rc=2)
    assert "probe 'release'" in tampered.output and 'changed: config/app.json: sha256' in tampered.output, tampered
    # A named baseline works too, and a missing one is an error that says what to do.
    missing = site.playbook('redbutton.deploy.verify', '-e', 'redbutton_verify_baseline=before-v9', rc=2)
    assert "baseline 'before-v9' not found" in missing.output, missing


def test_rollback_fails_naming_the_file_that_differs_in_the_restored_release(site):
    roll_out_v1_v2(site)
    # Still valid JSON (v1 passes its health checks), but not the file that was recorded.
    with open(os.path.join(site.root, 'releases', 'v1', 'config', 'app.json'), 'a', encoding='utf-8') as handle:
        handle.write('\n')
    run = site.rollback(rc=2)
    assert 'the code is rolled back (v1 is current' in run.output, run
    assert 'changed: config/app.json: sha256' in run.output and 'size' in run.output, run
    # The code stays rolled back; the target is not marked ok, and the lock is free.
    assert site.current() == 'v1' and site.served() == 'v1'
    assert site.statuses() == {'v1': 'active', 'v2': 'rolled_back'}
    assert not site.locked()


def test_rollback_fails_when_shared_data_was_lost(site):
    site.rollout('v1')
    orders = os.path.join(site.root, 'shared', 'data', 'orders.csv')
    with open(orders, 'w', encoding='utf-8') as handle:
        handle.write('id,total\n1,20\n')
    site.rollout('v2')
    # New shared data is fine (no_loss); a recorded file that is gone is not.
    with open(os.path.join(site.root, 'shared', 'data', 'new.csv'), 'w', encoding='utf-8') as handle:
        handle.write('new\n')
    os.remove(orders)
    run = site.rollback(rc=2)
    assert "probe 'shared'" in run.output and 'removed: data/orders.csv' in run.output, run
    assert 'new.csv' not in run.output
    assert site.current() == 'v1'


def test_release_without_a_baseline_is_rolled_back_with_a_warning(site):
    roll_out_v1_v2(site, '-e', 'redbutton_baseline=false')
    assert not os.path.exists(os.path.join(site.root, '.redbutton', 'baselines'))
    run = site.rollback()
    assert 'WARNING: no baseline was recorded before v2 was rolled out' in run.output, run
    site.assert_state('v1', {'v1': 'ok', 'v2': 'rolled_back'})


def test_baseline_of_another_release_is_not_compared(site):
    roll_out_v1_v2(site)
    path, _checksum = site.artifacts['v1']
    site.playbook('redbutton.deploy.rollout', '-e', 'redbutton_release=v1b', '-e', 'redbutton_artifact=%s' % path)
    assert metadata(site, 'v1b')['baseline_of'] == 'v2'
    # before-v1b describes v2; going back to v1 cannot be compared with it.
    run = site.rollback('-e', 'redbutton_rollback_to=v1')
    assert 'Baseline before-v1b describes v2, not the rollback target v1: not compared.' in run.output, run
    assert site.current() == 'v1'
