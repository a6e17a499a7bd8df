# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""After `rollout v2` (twice, the second a no-op): v2 serves on schema 2, email backfilled."""


def test_v2_serves(app):
    app.assert_serves('v2')
    app.assert_unlocked()


def test_schema_2_with_the_backfill(db, app):
    assert db.version() == 2
    assert db.columns('users') == ['email', 'id', 'name']
    assert db.query('SELECT name, email FROM users ORDER BY id')[-1] == ['Katherine', 'katherine@example.com']
    assert db.query('SELECT count(*) FROM users WHERE email IS NULL') == [[0]]
    assert db.schema_versions(app) == {'v1': 1, 'v2': 2}


def test_no_rows_lost(db):
    assert db.names() == ['Ada', 'Grace', 'Margaret', 'Katherine']


def test_down_scripts_kept_for_the_rollback(host):
    kept = host.file('/srv/sample/.redbutton/migrations').listdir()
    assert sorted(kept) == ['1_users.down.sql', '2_email.down.sql']
