# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""After a serial rollout of v2 that failed on the second of three hosts.

rb-fleet-1 (first batch) got v2 and keeps it; rb-fleet-2 failed v2's checks and rolled back
to v1 by itself; rb-fleet-3 (the batch after the failure) was never touched.
"""
import pytest

# host: (release that serves, ledger statuses, entries of releases/)
EXPECTED = {
    'rb-fleet-1': ('v2', {'v1': 'ok', 'v2': 'ok'}, ['v1', 'v2']),
    'rb-fleet-2': ('v1', {'v1': 'ok', 'v2': 'failed'}, ['v1', 'v2']),
    'rb-fleet-3': ('v1', {'v1': 'ok'}, ['v1']),
}


@pytest.fixture
def expected(app):
    return EXPECTED[app.name]


def test_serves_the_expected_release(app, expected):
    app.assert_serves(expected[0])


def test_ledger_statuses(app, expected):
    assert app.ledger()['current'] == expected[0]
    assert app.statuses() == expected[1]


def test_release_directories(app, expected):
    """rb-fleet-3 never received v2: no releases/v2, and no upload or staging left anywhere."""
    assert app.releases() == expected[2]


def test_last_switch(app):
    switch = app.ledger()['last_switch']
    assert {
        'rb-fleet-1': ('v1', 'v2', 'rollout'),
        'rb-fleet-2': ('v2', 'v1', 'auto_rollback'),
        'rb-fleet-3': (None, 'v1', 'rollout'),
    }[app.name] == (switch['from'], switch['to'], switch['reason'])


def test_v2_never_reached_the_last_batch(app):
    """The ledger of rb-fleet-3 never heard of v2; the hosts before it did."""
    v2_events = [e['event'] for e in app.ledger()['events'] if e['release'] == 'v2']
    if app.name == 'rb-fleet-3':
        assert v2_events == []
    else:
        assert v2_events[:2] == ['staged', 'activated']


def test_shared_data_survived(app, expected):
    app.assert_shared_data_intact(expected[0])


def test_lock_released(app):
    app.assert_unlocked()
