# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""After `rollout v1`: v1 serves on schema 1, with its three users and the one the app added."""


def test_v1_serves(app):
    app.assert_serves('v1')
    app.assert_unlocked()


def test_schema_1(db, app):
    assert db.version() == 1
    assert db.columns('users') == ['id', 'name']
    assert db.schema_versions(app) == {'v1': 1}


def test_rows(db):
    assert db.names() == ['Ada', 'Grace', 'Margaret', 'Katherine']
