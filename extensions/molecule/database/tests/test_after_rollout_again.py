# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""After `rollout v1, rollout v2, rollback, rollout v2 again`: v2 serves on schema 2 again."""


def test_v2_serves_again(app):
    app.assert_serves('v2')
    assert app.statuses() == {'v1': 'ok', 'v2': 'ok'}
    app.assert_unlocked()


def test_schema_2_again(db, app):
    assert db.version() == 2
    assert db.columns('users') == ['email', 'id', 'name']
    assert db.query('SELECT count(*) FROM users WHERE email IS NULL') == [[0]], 'the backfill ran again'
    assert db.schema_versions(app) == {'v1': 1, 'v2': 2}


def test_no_rows_lost_in_the_whole_drill(db):
    assert db.names() == ['Ada', 'Grace', 'Margaret', 'Katherine']


def test_shared_data_survived(app):
    app.assert_shared_data_intact('v2')


def test_switch_history(app):
    switches = [(e.get('from'), e['release'], e['reason']) for e in app.ledger()['events'] if e['event'] == 'activated']
    assert switches == [(None, 'v1', 'rollout'), ('v1', 'v2', 'rollout'), ('v2', 'v1', 'rollback'), ('v1', 'v2', 'rollout')]
