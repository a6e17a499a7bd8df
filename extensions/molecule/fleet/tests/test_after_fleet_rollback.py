# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""After the fleet story of converge.yml: rollout v2, rollback, rollout v2 again, then a rollout of
v4 in waves [1, 2] that failed its checks on rb-fleet-2 (second wave).

rb-fleet-2 rolled itself back to v2; the run then sent back every host it had moved: the canary
rb-fleet-1 (first wave) and rb-fleet-3 (second wave, where v4 had passed). Every host serves v2,
the release it had before the run, and each ledger tells the same run id for the v4 rollout and
for the rollback that undid it.
"""
import pytest
import testinfra

# host: (ledger statuses, last switch (from, to, reason))
EXPECTED = {
    'rb-fleet-1': ({'v1': 'ok', 'v2': 'ok', 'v4': 'rolled_back'}, ('v4', 'v2', 'rollback')),
    'rb-fleet-2': ({'v1': 'ok', 'v2': 'ok', 'v4': 'failed'}, ('v4', 'v2', 'auto_rollback')),
    'rb-fleet-3': ({'v1': 'ok', 'v2': 'ok', 'v4': 'rolled_back'}, ('v4', 'v2', 'rollback')),
}


def v4_run_ids(app):
    return set(e.get('run_id') for e in app.ledger()['events'] if e['release'] == 'v4')


@pytest.fixture
def expected(app):
    return EXPECTED[app.name]


def test_serves_the_release_it_had_before_the_run(app):
    """HTTP, /health, current and the service's working directory all say v2, the canary included."""
    app.assert_serves('v2')


def test_ledger_statuses(app, expected):
    assert app.ledger()['current'] == 'v2'
    assert app.statuses() == expected[0]


def test_release_directories(app):
    """Nothing staged or half-extracted left behind; v4 is kept for the post-mortem."""
    assert app.releases() == ['v1', 'v2', 'v4']


def test_last_switch(app, expected):
    switch = app.ledger()['last_switch']
    assert (switch['from'], switch['to'], switch['reason']) == expected[1]


def test_the_v4_run_and_its_rollback_share_one_run_id(app):
    """The run id decided once on the controller is on every event of v4's rollout and of the switch
    back to v2 (the automatic rollback on rb-fleet-2, the fleet's rollback elsewhere)."""
    events = app.ledger()['events']
    v4 = [e for e in events if e['release'] == 'v4']
    assert [e['event'] for e in v4][:2] == ['staged', 'activated']
    run_ids = v4_run_ids(app)
    assert len(run_ids) == 1 and None not in run_ids, v4
    back = [e for e in events if e['event'] == 'activated' and e['release'] == 'v2'][-1]
    assert back.get('run_id') in run_ids, back


def test_every_host_names_the_same_run(app):
    """The run id of v4 on this host is the one on rb-fleet-1 (the canary's): one run moved all three."""
    canary = type(app)(testinfra.get_host('podman://rb-fleet-1'))
    assert v4_run_ids(app) == v4_run_ids(canary)


def test_shared_data_survived(app):
    app.assert_shared_data_intact('v2')


def test_lock_released(app):
    app.assert_unlocked()
