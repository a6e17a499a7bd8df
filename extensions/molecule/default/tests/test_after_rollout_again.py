# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""After `rollout v1, rollout v2, rollback, rollout v2 again`: v2 serves, reused, both releases ok."""


def test_v2_serves_again(app):
    app.assert_serves('v2')


def test_ledger_after_rollout_again(app):
    ledger = app.ledger()
    assert ledger['current'] == 'v2'
    assert app.statuses() == {'v1': 'ok', 'v2': 'ok'}
    switch = ledger['last_switch']
    assert (switch['from'], switch['to'], switch['reason']) == ('v1', 'v2', 'rollout')


def test_rollout_again_reused_the_staged_release(app):
    """v2 was extracted once: the second rollout switched to the directory staged the first time."""
    staging = [(e['event'], e['release']) for e in app.ledger()['events'] if e['event'] in ('staged', 'restaged')]
    assert staging == [('staged', 'v1'), ('staged', 'v2')]
    assert app.releases() == ['v1', 'v2']


def test_switch_history(app):
    """Every switch of the drill is in the ledger, in order, with its reason."""
    switches = [(e.get('from'), e['release'], e['reason']) for e in app.ledger()['events'] if e['event'] == 'activated']
    assert switches == [(None, 'v1', 'rollout'), ('v1', 'v2', 'rollout'), ('v2', 'v1', 'rollback'), ('v1', 'v2', 'rollout')]


def test_shared_data_survived_the_whole_drill(app):
    app.assert_shared_data_intact('v2')


def test_lock_released(app):
    app.assert_unlocked()
