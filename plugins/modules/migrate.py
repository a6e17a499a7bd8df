#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: migrate
short_description: Database migrations that roll back with the code (SQLite and PostgreSQL)
description:
  - Runs the SQL migrations of a folder written in golang-migrate's naming, C({version}_{title}.up.sql) and
    C({version}_{title}.down.sql), plus an optional C({version}_{title}.verify.sql) (as in sqitch) that must succeed
    after the up script. Versions are integers or timestamps compared as numbers (C(1), C(2), C(10)); up and down
    files are paired by version, their titles may differ. Files that do not match the pattern are ignored and
    returned in RV(ignored); a warning names those ending in C(.sql).
  - Goes up or down to O(target). Every applied migration has a row in the history table O(history_table) with
    its version, title, the checksums of its up and down scripts, the down script itself and the time it was
    applied. A rollback runs the down scripts stored there, so it works from an older release whose folder does
    not contain the newer migrations. With O(root), the down scripts are also kept in
    C(<root>/.redbutton/migrations/<version>_<title>.down.sql).
  - An applied migration whose up file changed since is drift; the module then fails, naming the file and both
    checksums, and runs nothing. So it does when a rollback needs a down script that exists nowhere, when an
    unapplied migration is older than the database's version, and when the data-loss guard refuses.
  - Each migration and its history row commit in one transaction; a failing migration leaves the database at the
    previous version and the error names the file, the line and the statement. Files that manage their own
    transaction (C(BEGIN)/C(COMMIT) and the like, C(PRAGMA foreign_keys) in SQLite), statements that cannot run in a
    transaction (C(CREATE INDEX CONCURRENTLY), C(VACUUM), C(ALTER TYPE ... ADD VALUE), C(CREATE DATABASE), ...) and
    files with the marker line C(-- redbutton:no-transaction) run as they are, statement by statement, and their
    history row is written right after. docs/migrations.md lists exactly what is detected.
  - Data-loss guard, for down scripts only. A C(DROP TABLE) of a table that holds rows, or an
    C(ALTER TABLE ... DROP [COLUMN]) of a column that holds a non-NULL value, runs only with O(allow_data_loss=true)
    or after an automatic backup into C(<root>/.redbutton/backups/) (needs O(root) and O(backup=true)), made with
    C(pg_dump --format=custom) for PostgreSQL and with the online backup API of SQLite.
  - With PostgreSQL, a session advisory lock whose key derives from O(history_table) is held while migrating, so
    two runs never interleave. With SQLite, an exclusive C(flock) on C(<database>.redbutton-lock) does the same.
author:
  - redbutton.deploy contributors (@redbutton)
requirements:
  - psycopg 3 (Python package C(psycopg)) on the target host for O(engine=postgresql).
  - C(pg_dump) (Debian package C(postgresql-client), same or newer major version than the server) on the target
    host for PostgreSQL backups.
extends_documentation_fragment:
  - redbutton.deploy.root.attributes
attributes:
  idempotent:
    support: full
    description: Once the database is at O(target), running the module again changes nothing.
options:
  engine:
    description:
      - The database engine. C(sqlite) uses Python's sqlite3, C(postgresql) uses psycopg 3.
    type: str
    choices: [sqlite, postgresql]
    default: sqlite
  database:
    description:
      - For C(sqlite), the absolute path of the database file; it is created when missing (its directory must
        exist).
      - For C(postgresql), a libpq connection string or URI, for example C(postgresql://app@db.example.com/app) or
        C(host=/run/postgresql dbname=app). An empty string uses the libpq defaults and C(PG*) environment variables.
      - Do not put a password here (it would show in logs); use O(login_password), a C(~/.pgpass) file or the
        C(PGPASSWORD) environment.
    type: str
    required: true
  login_password:
    description:
      - PostgreSQL password, used instead of one in O(database). Never logged.
    type: str
  path:
    description:
      - The migrations folder, on the target host. In a release, C(<root>/releases/<id>/<folder>).
    type: path
    required: true
  target:
    description:
      - C(latest) migrates up to the highest version in O(path). It never goes down; if the database is newer than
        the folder, the module fails and says which version to give.
      - A version (an integer, or a string of digits) migrates up or down to exactly that version. C(0) rolls back
        every migration. The version must exist in O(path) or in the history table.
    type: raw
    default: latest
  allow_data_loss:
    description:
      - Let down scripts drop tables or columns that hold data. Without it, such a down script runs only after
        an automatic backup (O(root) and O(backup)), and the module refuses before changing anything when no
        backup can be taken.
    type: bool
    default: false
  backup:
    description:
      - Before a down script that drops data, write a full backup of the database to
        C(<root>/.redbutton/backups/<name>-v<from>-to-v<to>-<time>.sqlite) (SQLite) or C(.dump)
        (PostgreSQL custom format, restore with C(pg_restore)). Needs O(root).
      - The backup is taken even with O(allow_data_loss=true); set O(backup=false) to skip it.
    type: bool
    default: true
  root:
    description:
      - The application root on the target host, for example C(/srv/myapp). Optional.
      - When given, down scripts are kept in C(<root>/.redbutton/migrations/) and backups go to
        C(<root>/.redbutton/backups/).
    type: path
  rehearse:
    description:
      - Rehearse each pending migration before keeping it, like Liquibase's update-testing-rollback. For each one,
        dump the schema, run up (and verify), run down, dump the schema again, compare, and run up again. A
        difference fails the module with the migration's name and the diff of the two dumps.
      - When the up and down scripts can run in a transaction, the whole rehearsal of a migration is one
        transaction, so a failed rehearsal leaves the database as it was.
      - Every pending migration needs a down script. Meant for staging and QA copies of the database.
    type: bool
    default: false
  history_table:
    description:
      - The table that records applied migrations (created on the first real run, never in check mode). Lower
        case letters, digits and C(_). With PostgreSQL it is created in the first schema of the C(search_path).
    type: str
    default: redbutton_schema_history
  lock_timeout:
    description:
      - Seconds to wait for another run of this module on the same database to finish.
    type: int
    default: 60
notes:
  - Check mode connects read-only (PostgreSQL sessions get C(default_transaction_read_only)), runs nothing and
    creates nothing, not even the history table or a missing SQLite file; it returns the plan with the SQL of each
    migration in RV(applied) and the statements in RV(queries).
  - Diff mode shows the schema version and the pending migrations before and after.
seealso:
  - name: golang-migrate file format
    description: The naming convention of the migrations folder.
    link: https://github.com/golang-migrate/migrate/blob/master/MIGRATIONS.md
  - name: Liquibase update-testing-rollback
    description: The idea behind O(rehearse).
    link: https://docs.liquibase.com/commands/update/update-testing-rollback.html
'''

EXAMPLES = r'''
- name: Migrate the SQLite database of the new release up to its latest migration
  redbutton.deploy.migrate:
    engine: sqlite
    database: /srv/shop/shared/shop.db
    path: /srv/shop/releases/v2/migrations
    root: /srv/shop
  register: shop_schema

- name: Record the schema version on the release in the ledger
  redbutton.deploy.release:
    root: /srv/shop
    release: v2
    metadata:
      schema_version: "{{ shop_schema.version_after }}"

- name: Roll PostgreSQL back to the schema version recorded for release v1
  redbutton.deploy.migrate:
    engine: postgresql
    database: postgresql://shop@db.example.com/shop
    login_password: "{{ vault_shop_db_password }}"
    path: /srv/shop/releases/v1/migrations
    target: 1
    root: /srv/shop

- name: QA sign-off - every pending migration must survive up, down, up
  redbutton.deploy.migrate:
    engine: postgresql
    database: host=/run/postgresql dbname=shop_staging
    path: /srv/shop/releases/v3/migrations
    rehearse: true

- name: Show the SQL that would run, without running it
  redbutton.deploy.migrate:
    database: /srv/shop/shared/shop.db
    path: /srv/shop/releases/v3/migrations
  check_mode: true
  register: plan
'''

RETURN = r'''
version_before:
  description: Schema version before the run (the highest applied version, 0 when none).
  returned: success, and on failure once the history table was read
  type: int
  sample: 1
version_after:
  description:
    - Schema version after the run (in check mode, the version it would reach).
    - When a migration fails, the version the database is at (the previous one).
  returned: success, and on failure once the history table was read
  type: int
  sample: 3
target:
  description: The resolved target version (C(latest) resolved to the folder's highest version).
  returned: success
  type: int
  sample: 3
latest:
  description: The highest version in O(path) (0 for an empty folder).
  returned: success
  type: int
  sample: 3
direction:
  description: C(up), C(down) or C(none).
  returned: success
  type: str
  sample: up
applied:
  description: The migrations run in this call (in check mode, those that would run), in order.
  returned: always
  type: list
  elements: dict
  contains:
    version:
      description: Migration version.
      type: int
    title:
      description: Migration title (from the up file name).
      type: str
    direction:
      description: C(up) or C(down).
      type: str
    file:
      description: The script run; a down script taken from the history table says so.
      type: str
    transaction:
      description: Whether the script and its history row ran in one transaction.
      type: bool
    no_transaction_reason:
      description: Why the script ran as-is without a wrapping transaction (null when it had one).
      type: str
    statements:
      description: Number of statements in the script.
      type: int
    sql:
      description: The script's SQL.
      type: str
    verify_file:
      description: The verify script run after the up script, when there is one.
      type: str
    down_copy:
      description: Where the down script was kept under C(<root>/.redbutton/migrations/).
      type: str
    down_file:
      description: For an up migration with a down script, the down script that would undo it.
      type: str
    down_drops:
      description:
        - For an up migration with a down script, the tables and columns that down script drops (whether they hold
          data is only known when it runs; see RV(data_loss)), each C({drops, line, statement}).
      type: list
      elements: dict
    down_error:
      description: For an up migration, why its down script could not be read or split into statements.
      type: str
  sample:
    - version: 2
      title: add_email
      direction: up
      file: /srv/shop/releases/v2/migrations/2_add_email.up.sql
      transaction: true
      no_transaction_reason: null
      statements: 2
      sql: "ALTER TABLE users ADD COLUMN email TEXT;\nUPDATE users SET email = name || '@example.com';\n"
pending:
  description: The migrations of O(path) that were not applied before this call (all of them, whatever the target).
  returned: success
  type: list
  elements: dict
  sample: [{version: 2, title: add_email, file: 2_add_email.up.sql}]
pending_after:
  description: The migrations of O(path) not applied after this call (in check mode, as predicted).
  returned: success
  type: list
  elements: dict
  sample: []
queries:
  description: The SQL statements run, in order (in check mode, the statements of the scripts that would run).
  returned: always
  type: list
  elements: str
  sample: ["ALTER TABLE users ADD COLUMN email TEXT", "UPDATE users SET email = name || '@example.com'"]
rehearsal:
  description: With O(rehearse=true), one entry per rehearsed migration.
  returned: success
  type: list
  elements: dict
  sample: [{version: 2, title: add_email, schema_equal: true, objects: 7, one_transaction: true}]
data_loss:
  description: Down statements that drop a table or column holding data (see O(allow_data_loss)).
  returned: success and when the data-loss guard refuses
  type: list
  elements: dict
  sample: [{version: 2, file: 2_add_email.down.sql, line: 1, statement: ALTER TABLE users DROP COLUMN email, drops: column users.email}]
backup:
  description: Path of the backup taken before lossy down scripts, or null.
  returned: success
  type: str
  sample: /srv/shop/.redbutton/backups/shop-v2-to-v1-20260126T050000Z.sqlite
ignored:
  description: Files of O(path) that are not migrations and were ignored (hidden files excepted).
  returned: success
  type: list
  elements: str
  sample: [README.md]
drift:
  description: On drift, the changed files with the recorded and current checksums.
  returned: failure (drift)
  type: list
  elements: dict
  sample: [{version: 1, file: 1_users.up.sql, recorded: "sha256:...", found: "sha256:...", applied_at: "2026-01-26T05:00:00Z"}]
failure:
  description: When a migration fails, the file, line, statement and database error.
  returned: failure (a migration failed)
  type: dict
  sample: {version: 3, title: add_index, direction: up, file: 3_add_index.up.sql, line: 2, statement: CREATE INDEX ..., error: ...}
engine:
  description: The engine used.
  returned: success
  type: str
  sample: sqlite
database:
  description: The database, without any password.
  returned: success
  type: str
  sample: user=shop dbname=shop host=db.example.com
history_table:
  description: The history table used.
  returned: success
  type: str
  sample: redbutton_schema_history
path:
  description: The migrations folder used.
  returned: success
  type: str
  sample: /srv/shop/releases/v2/migrations
'''

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.redbutton.deploy.plugins.module_utils._common import RedbuttonError
from ansible_collections.redbutton.deploy.plugins.module_utils._hosts import run_module
from ansible_collections.redbutton.deploy.plugins.module_utils._migrate import ENGINES, Migrator, diff_of, new_backend
from ansible_collections.redbutton.deploy.plugins.module_utils._migrate_backend import DEFAULT_HISTORY_TABLE

ARGUMENT_SPEC = dict(
    engine=dict(type='str', choices=list(ENGINES), default='sqlite'),
    database=dict(type='str', required=True),
    login_password=dict(type='str', no_log=True),
    path=dict(type='path', required=True),
    target=dict(type='raw', default='latest'),
    allow_data_loss=dict(type='bool', default=False),
    backup=dict(type='bool', default=True),
    root=dict(type='path'),
    rehearse=dict(type='bool', default=False),
    history_table=dict(type='str', default=DEFAULT_HISTORY_TABLE),
    lock_timeout=dict(type='int', default=60),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    if params['engine'] == 'postgresql':
        # Imported here: psycopg takes a third of a second to import, and SQLite does not need it.
        from ansible_collections.redbutton.deploy.plugins.module_utils._migrate_postgresql import HAS_PSYCOPG, PSYCOPG_IMPORT_ERROR
        if not HAS_PSYCOPG:
            module.fail_json(msg=missing_required_lib('psycopg (version 3)'), exception=PSYCOPG_IMPORT_ERROR)
    run_module(module, lambda: migrate(module))


def migrate(module):
    """Plan and run the migrations; on failure the error carries what was applied before it."""
    params = module.params
    migrator = None
    try:
        backend = new_backend(params['engine'], params['database'], params['history_table'],
                              run_command=module.run_command, password=params['login_password'])
        migrator = Migrator(backend, params['path'], target=params['target'], root=params['root'],
                            allow_data_loss=params['allow_data_loss'], backup=params['backup'],
                            rehearse=params['rehearse'], lock_timeout=params['lock_timeout'],
                            check_mode=module.check_mode)
        result = migrator.run()
    except RedbuttonError as exc:
        details = dict(getattr(exc, 'result', {}))
        details.setdefault('applied', [])
        details.setdefault('queries', [])
        details['changed'] = bool(details['applied'])
        exc.result = details
        for warning in migrator.warnings if migrator else []:
            module.warn(warning)
        raise
    for warning in result.pop('warnings'):
        module.warn(warning)
    if module._diff:
        result['diff'] = diff_of(result)
    return result


if __name__ == '__main__':
    main()
