# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Testinfra helpers of the database scenario: ask the SQLite database on the host, with the
image's python3, what an operator would ask: schema version, columns, rows."""
import json
import os

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, 'molecule.yml'), encoding='utf-8') as _handle:
    MIGRATIONS = yaml.safe_load(_handle)['provisioner']['inventory']['group_vars']['all']['redbutton_migrations']
DATABASE = MIGRATIONS['database']

_QUERY = r'''
import json, sqlite3, sys
conn = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
print(json.dumps(conn.execute(sys.argv[2]).fetchall()))
'''


class Database:
    def __init__(self, host):
        self.host = host
        self.path = DATABASE

    def query(self, sql):
        return json.loads(self.host.check_output('python3 -c %s %s %s', _QUERY, DATABASE, sql))

    def version(self):
        """The schema version: the highest version in the migrate module's history table."""
        return self.query('SELECT coalesce(max(version), 0) FROM redbutton_schema_history')[0][0]

    def columns(self, table):
        return sorted(row[1] for row in self.query('PRAGMA table_info(%s)' % table))

    def names(self):
        return [row[0] for row in self.query('SELECT name FROM users ORDER BY id')]

    @staticmethod
    def schema_versions(app):
        """{release id: schema_version recorded in the ledger}."""
        return {rid: rel.get('metadata', {}).get('schema_version') for rid, rel in app.ledger()['releases'].items()}


@pytest.fixture
def db(host):
    return Database(host)
