# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build the `database` scenario's releases as directories: the sample app plus migrations/.

    python3 build_db_releases.py OUTDIR

OUTDIR/v1: migration 1 creates users with three rows (schema 1).
OUTDIR/v2: adds migration 2, a new email column and its backfill (schema 2).
Files are rewritten only when their content differs, so a rerun changes nothing.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', '..', 'examples'))

import build_releases  # noqa: E402  (examples/ is not a package)

MIGRATIONS = {
    'v1': {
        '1_users.up.sql': "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n"
                          "INSERT INTO users (id, name) VALUES (1, 'Ada'), (2, 'Grace'), (3, 'Margaret');\n",
        '1_users.down.sql': 'DROP TABLE users;\n',
    },
    'v2': {
        '2_email.up.sql': 'ALTER TABLE users ADD COLUMN email TEXT;\n'
                          "UPDATE users SET email = lower(name) || '@example.com';\n",
        '2_email.down.sql': 'ALTER TABLE users DROP COLUMN email;\n',
    },
}


def build(outdir):
    for version in ('v1', 'v2'):
        files = dict((name, data) for name, (data, _mode) in build_releases.release_files(version).items())
        for earlier in ('v1', 'v2')[:('v1', 'v2').index(version) + 1]:
            for name, sql in MIGRATIONS[earlier].items():
                files['migrations/' + name] = sql.encode()
        for name, data in sorted(files.items()):
            path = os.path.join(outdir, version, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if os.path.exists(path):
                with open(path, 'rb') as handle:
                    if handle.read() == data:
                        continue
            with open(path, 'wb') as handle:
                handle.write(data)


if __name__ == '__main__':
    build(sys.argv[1])
