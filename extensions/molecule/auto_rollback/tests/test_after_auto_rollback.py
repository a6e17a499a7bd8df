# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""After `rollout v1, rollout v3` where v3's /health answers 500: v1 serves, v3 is marked failed."""


def test_v1_serves_again(app):
    app.assert_serves('v1')


def test_ledger_marks_v3_failed(app):
    ledger = app.ledger()
    assert ledger['current'] == 'v1'
    assert app.statuses() == {'v1': 'ok', 'v3': 'failed'}
    switch = ledger['last_switch']
    assert (switch['from'], switch['to'], switch['reason']) == ('v3', 'v1', 'auto_rollback')


def test_v3_was_live_before_it_was_undone(app):
    """v3 really was switched to and failed its checks: the rollback is not a refusal to deploy."""
    switches = [(e.get('from'), e['release'], e['reason']) for e in app.ledger()['events'] if e['event'] == 'activated']
    assert switches == [(None, 'v1', 'rollout'), ('v1', 'v3', 'rollout'), ('v3', 'v1', 'auto_rollback')]


def test_failed_release_is_kept_for_inspection(app):
    """v3's tree stays (for a post-mortem), complete, and no half-extracted staging directory is left."""
    assert app.releases() == ['v1', 'v3']
    assert app.release_file('v3', 'VERSION') == 'v3\n'


def test_shared_data_survived(app):
    app.assert_shared_data_intact('v1')


def test_lock_released(app):
    app.assert_unlocked()
