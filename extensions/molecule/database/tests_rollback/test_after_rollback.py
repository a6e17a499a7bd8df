# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""After the rollback: v1 serves on schema 1 again, no row lost, the dropped column backed up."""


def test_v1_serves_again(app):
    app.assert_serves('v1')
    assert app.statuses() == {'v1': 'ok', 'v2': 'rolled_back'}
    app.assert_unlocked()


def test_schema_back_to_1(db, app):
    assert db.version() == 1
    assert db.columns('users') == ['id', 'name']
    assert db.schema_versions(app) == {'v1': 1, 'v2': 2}, 'each release keeps the schema version it ran with'


def test_no_rows_lost(db):
    assert db.names() == ['Ada', 'Grace', 'Margaret', 'Katherine']


def test_the_dropped_column_was_backed_up(host):
    backups = host.file('/srv/sample/.redbutton/backups').listdir()
    assert len(backups) == 1 and '-v2-to-v1-' in backups[0], backups
