# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The runbook playbook: the runbook of a release with a SQLite migration, written from the real
plan of the host before anything changes, in markdown and JSON, on the host and the controller;
and its bad input (a runbook directory that cannot be written, a template that does not render)
refused before anything is written."""

import json
import os

# The fixtures releases and sqlite_db are used as test arguments.
from test_migrate_roles import deploy, releases, sqlite_db  # noqa: F401 pylint: disable=unused-import


def runbook(site, releases, db, version, *extra, rc=0, cwd=None):
    settings = dict(db.settings(), baseline_tables=['users'])
    return site.playbook('redbutton.deploy.runbook', '-e', 'redbutton_release=%s' % version,
                         '-e', 'redbutton_artifact=%s' % releases[version],
                         *site.vars_file('migrations', {'redbutton_migrations': settings}), *extra, rc=rc, cwd=cwd)


def test_runbook_of_a_release_with_a_migration(site, releases, sqlite_db, tmp_path):
    deploy(site, releases, 'v1', sqlite_db)
    sqlite_db.add_user('Dora')  # 4 rows now: the baseline's row count must say so
    ledger_before = site.ledger_bytes()
    out = tmp_path / 'books'
    run = runbook(site, releases, sqlite_db, 'v2', '-e', 'redbutton_runbook_dir=%s' % out)

    # nothing changed on the host but the runbook itself
    assert site.ledger_bytes() == ledger_before
    assert site.release_dirs() == ['v1'] and site.current() == 'v1' and not site.locked()
    assert sqlite_db.version() == 1 and sqlite_db.columns('users') == ['id', 'name']
    assert not os.path.exists(os.path.join(site.root, '.redbutton', 'baselines', 'before-v2.json'))

    markdown = (out / 'sample-v2.md').read_text()
    on_host = open(os.path.join(site.root, '.redbutton', 'runbooks', 'v2.md')).read()
    assert on_host == markdown, run
    facts = json.loads((out / 'sample-v2.json').read_text())
    plan = facts['hosts']['localhost']
    assert facts['release'] == 'v2' and facts['groups'][0]['hosts'] == ['localhost']

    # releases now and to come, the rollback target
    assert (plan['release_now'], plan['status_now'], plan['release'], plan['rollback_target']) == ('v1', 'ok', 'v2', 'v1')
    assert '| release now | `v1` (ok) |' in markdown and '| release to come | `v2` |' in markdown
    # the exact rollback commands
    rollback = plan['commands']['rollback']
    assert rollback.startswith('ansible-playbook -i %s redbutton.deploy.rollback' % site.inventory)
    assert '-e redbutton_rollback_to=v1' in rollback and '-e redbutton_app=sample' in rollback
    assert '-e redbutton_root=%s' % site.root in rollback and rollback.endswith('--limit localhost')
    assert rollback in markdown
    assert '%s/.redbutton/bin/redbutton rollback' % site.root in markdown
    # what the rollback checks: the health check by name and URL, the baseline with its row count
    assert plan['checks'] == [{'name': 'health endpoint', 'kind': 'http', 'target': 'http://127.0.0.1:%d/health' % site.port}]
    assert '**health endpoint** (http): `http://127.0.0.1:%d/health`' % site.port in markdown
    probes = dict((p['name'], p) for p in plan['baseline']['probes'])
    assert probes['db-rows-users']['rows'] == 4 and probes['db-rows-users']['value'] == '4'
    assert 'probe **db-rows-users** (sql, no_loss): SELECT count(*) FROM users on %s = 4' % sqlite_db.database in markdown
    entries = 1 + sum(len(dirs) + len(files) for dummy, dirs, files in os.walk(os.path.join(site.root, 'releases', 'v1')))
    assert plan['baseline']['entries'] == entries and plan['baseline']['shared_paths'] == ['data']
    assert '- release tree: %d entries' % entries in markdown
    # the database: versions, each migration with up and down, the lossy one and its backup
    db = plan['database']
    assert (db['version_now'], db['version_after'], db['rollback_version']) == (1, 2, 1)
    assert [m['version'] for m in db['migrations']] == [2]
    migration = db['migrations'][0]
    assert migration['up'] == os.path.join(site.root, 'releases', 'v2', 'migrations', '2_email.up.sql')
    assert migration['down'] == os.path.join(site.root, 'releases', 'v2', 'migrations', '2_email.down.sql')
    assert migration['drops'] == ['column users.email'] and db['lossy'] == [2] and db['backup'] is True
    assert 'schema version now: **1**; after the rollout: **2**' in markdown
    assert '| 2 | `%s` | `%s` | column users.email | yes |' % (migration['up'], migration['down']) in markdown
    assert 'A backup is taken into `%s/.redbutton/backups`' % site.root in markdown
    # what to do when a step fails, from the plan
    failing = [f for f in plan['failures'] if f['step'] == 'migrate']
    assert len(failing) == 1 and failing[0]['version'] == 2
    assert 'the database stays at version 1' in failing[0]['stands'] and 'v1 keeps serving' in failing[0]['stands']
    assert any('"target": 1' in line and 'redbutton.deploy.migrate' in line for line in failing[0]['do'])
    assert '`SELECT max(version) FROM redbutton_schema_history` gives 1' in markdown
    assert '#### Migration 2 (email) fails' in markdown
    assert '#### The deploy lock is held by another run' in markdown and 'redbutton.deploy.lock' in markdown

    # a second run writes the same facts (idempotent apart from the time it was written)
    runbook(site, releases, sqlite_db, 'v2', '-e', 'redbutton_runbook_dir=%s' % out)
    again = json.loads((out / 'sample-v2.json').read_text())
    again['generated_at'] = facts['generated_at']
    assert differences(again, facts) == []

    # Once v2 is rolled out, its runbook written again says what the rollout's said: roll back to v1.
    deploy(site, releases, 'v2', sqlite_db)
    runbook(site, releases, sqlite_db, 'v2', '-e', 'redbutton_runbook_dir=%s' % out)
    current = json.loads(open(os.path.join(site.root, '.redbutton', 'runbooks', 'v2.json')).read())['hosts']['localhost']
    assert (current['release_now'], current['rollback_target'], current['release']) == ('v1', 'v1', 'v2'), (current, site.ledger())
    assert '-e redbutton_rollback_to=v1' in current['commands']['rollback']
    assert current['database']['rollback_version'] == 1
    assert 'Nothing to roll back to' not in (out / 'sample-v2.md').read_text()


def differences(a, b, path=''):
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in differences(a.get(k), b.get(k), path + '/' + str(k))]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, path + '/%d' % i)]
    return [] if a == b else ['%s: %r != %r' % (path, a, b)]


def test_first_rollout_runbook_and_default_directory(site, releases, sqlite_db, tmp_path):
    """No release yet: nothing to roll back to, every migration pending; ./runbooks by default."""
    work = tmp_path / 'work'
    work.mkdir()
    # --check: read and rendered, no file written anywhere (the playbook plans in check mode on purpose, not so the user's).
    checked = runbook(site, releases, sqlite_db, 'v2', '--check', cwd=str(work))
    assert 'not written on the controller (check mode)' in checked.output, checked
    assert os.listdir(str(work)) == [] and not os.path.exists(site.root)
    runbook(site, releases, sqlite_db, 'v2', cwd=str(work))
    facts = json.loads((work / 'runbooks' / 'sample-v2.json').read_text())
    plan = facts['hosts']['localhost']
    assert plan['release_now'] is None and plan['rollback_target'] is None and plan['commands']['rollback'] is None
    assert plan['baseline'] is None
    assert [m['version'] for m in plan['database']['migrations']] == [1, 2]
    assert plan['database']['migrations'][0]['drops'] == ['table users']
    markdown = (work / 'runbooks' / 'sample-v2.md').read_text()
    assert 'Nothing to roll back to: `v2` is the first release' in markdown
    assert not os.path.exists(os.path.join(site.root, 'releases')) and not os.path.exists(sqlite_db.database)


def test_runbook_dir_that_cannot_be_written_is_refused_before_anything(site, releases, sqlite_db, tmp_path):
    blocker = tmp_path / 'a-file'
    blocker.write_text('not a directory\n')
    run = runbook(site, releases, sqlite_db, 'v1', '-e', 'redbutton_runbook_dir=%s/books' % blocker, rc=2)
    assert 'redbutton_runbook_dir %s/books cannot be written' % blocker in run.output, run
    assert not os.path.exists(site.root)


def test_template_that_fails_to_render_is_refused_before_anything_is_written(site, releases, sqlite_db, tmp_path):
    template = tmp_path / 'broken.md.j2'
    template.write_text('# {{ runbook.release }}\n{{ runbook.no_such_fact.deeper }}\n')
    out = tmp_path / 'books'
    run = runbook(site, releases, sqlite_db, 'v1', '-e', 'redbutton_runbook_dir=%s' % out,
                  '-e', 'redbutton_runbook_template=%s' % template, rc=2)
    assert 'redbutton_runbook_template %s failed to render' % template in run.output, run
    assert 'no_such_fact' in run.output
    assert os.listdir(str(out)) == []
    assert not os.path.exists(os.path.join(site.root, '.redbutton', 'runbooks'))


def test_a_custom_template_gets_the_facts(site, releases, sqlite_db, tmp_path):
    template = tmp_path / 'mine.md.j2'
    template.write_text('{% for g in runbook.groups %}{{ g.hosts | join(",") }}: {{ g.plan.release_now }} -> {{ g.plan.release }}'
                        ' (schema {{ g.plan.database.version_now }} -> {{ g.plan.database.version_after }})\n{% endfor %}')
    out = tmp_path / 'books'
    runbook(site, releases, sqlite_db, 'v1', '-e', 'redbutton_runbook_dir=%s' % out, '-e', 'redbutton_runbook_template=%s' % template)
    assert (out / 'sample-v1.md').read_text() == 'localhost:  -> v1 (schema 0 -> 1)\n'
