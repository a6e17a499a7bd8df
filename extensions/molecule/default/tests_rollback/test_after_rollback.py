# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""After `rollout v1, rollout v2, rollback`: v1 serves again, v2 is kept and marked rolled_back."""

import json


def test_v1_serves_again(app):
    app.assert_serves('v1')


def test_ledger_records_the_rollback(app):
    ledger = app.ledger()
    assert ledger['current'] == 'v1'
    assert app.statuses() == {'v1': 'ok', 'v2': 'rolled_back'}
    switch = ledger['last_switch']
    assert (switch['from'], switch['to'], switch['reason']) == ('v2', 'v1', 'rollback')


def test_undone_release_is_kept_for_a_later_rollout(app):
    assert app.releases() == ['v1', 'v2']
    assert app.release_file('v2', 'VERSION') == 'v2\n'


def test_shared_data_survived_rollout_and_rollback(app):
    app.assert_shared_data_intact('v1')
    app.assert_shared_data_intact('v2')


def test_lock_released(app):
    app.assert_unlocked()


def test_rollback_was_compared_with_the_baseline(app):
    """The rollout of v2 recorded before-v2 (v1's state); the rollback proved the host is back there."""
    baseline = app.host.file('/srv/sample/.redbutton/baselines/before-v2.json')
    assert baseline.is_file and baseline.mode == 0o600
    recorded = json.loads(baseline.content_string)
    probes = {probe['name']: probe for probe in recorded['probes']}
    assert probes['release']['result']['link'] == 'releases/v1'
    assert probes['service']['result']['state']['ActiveState'] == 'active'
    releases = app.ledger()['releases']
    assert releases['v2']['metadata']['baseline'] == 'before-v2'
    assert releases['v1']['metadata']['baseline_checked'] == 'before-v2'
