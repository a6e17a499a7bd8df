# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The runbook inside the transition engine: the stage step's plan (hidden option _plan), the next
call writing the rendered files on the host before it changes anything, a runbook that cannot be
written (a warning; the rollout goes on), check mode, pruning; and the controller helpers
(host_facts, merge_hosts, write_on_host)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import sqlite3

from ansible_collections.redbutton.deploy.plugins.module_utils._common import state_dir
from ansible_collections.redbutton.deploy.plugins.module_utils._runbook import (
    build_runbook,
    host_facts,
    merge_hosts,
    runbook_paths,
    write_on_host,
)
from ansible_collections.redbutton.deploy.plugins.module_utils._transition import Transition

from .test_transition import SCHEMA_1, SCHEMA_2, current_of, env, ledger_bytes, schema_columns, statuses  # noqa: F401 pylint: disable=unused-import

CONTEXT = dict(inventory=['inv.ini'], extra={'redbutton_app': 'shop'}, generated_at='2026-11-30T05:00:00Z')


def files_for(release, text='# runbook of %s\n'):
    return dict(release=release, markdown=text % release, json=json.dumps({'release': release}) + '\n')


def count_users(database):
    conn = sqlite3.connect(database)
    try:
        return conn.execute('SELECT count(*) FROM users').fetchone()[0]
    finally:
        conn.close()


def read(path):
    with open(path) as handle:
        return handle.read()


def test_the_stage_step_returns_its_plan_and_the_next_call_writes_the_runbook_before_it_migrates(env, monkeypatch):
    migrations = env.migrations(baseline_tables=['users'])
    env.rollout('v1', files=SCHEMA_1, migrations=migrations)
    stage = env.run(direction='rollout', steps=['stage'], release='v2', src=env.archive('v2', files=SCHEMA_2),
                    migrations=migrations, _plan=True)
    plan = stage['plan']
    assert plan['root'] == env.root and plan['info']['current'] == 'v1' and plan['info']['lock'] is None  # its own lock
    assert [r['id'] for r in plan['info']['releases']] == ['v1']  # as before staging
    assert plan['info']['releases'][0]['metadata']['schema_version'] == 1
    assert plan['stage'] == dict(release='v2', created=True, up_to_date=False, checksum=stage['checksum'])
    assert (plan['migrate']['version_before'], plan['migrate']['version_after']) == (1, 2)
    step = plan['migrate']['applied'][0]
    assert step['file'] == os.path.join(env.root, 'releases', 'v2', 'migrations', '2_add_email.up.sql') and 'sql' not in step
    assert plan['baseline']['baseline']['name'] == 'before-v2'
    rows = [p for p in plan['baseline']['baseline']['probes'] if p['name'] == 'db-rows-users'][0]
    assert rows['result']['value'] == count_users(env.db()) == 3
    assert plan['health_checks'] == [{'name': 'web', 'url': env.app.url}]
    assert 'login_password' not in plan['migrations'] and plan['auto_rollback'] is True
    # The runbook's facts come from it as they come from the runbook playbook.
    facts = build_runbook([host_facts(plan, 'web1', app='shop', artifact='dist/shop-v2.tgz')], CONTEXT)
    host = facts['hosts']['web1']
    assert host['rollback_target'] == 'v1' and host['database']['version_now'] == 1 and host['database']['version_after'] == 2
    assert host['commands']['rollback'].endswith('-e redbutton_rollback_to=v1 --limit web1')

    seen = {}
    original = Transition._migrate

    def migrate(self):
        seen['runbook'] = os.path.exists(runbook_paths(env.root, 'v2')[0])
        seen['columns'] = schema_columns(env.db())
        return original(self)
    monkeypatch.setattr(Transition, '_migrate', migrate)
    done = env.run(direction='rollout', steps=['migrate', 'switch', 'restart', 'verify', 'finish'], release='v2',
                   migrations=migrations, runbook={'files': files_for('v2')})
    assert seen == {'runbook': True, 'columns': ['id', 'name']}  # written before the first change
    assert done['outcome'] == 'rolled_out' and current_of(env.root) == 'v2'
    assert done['runbook'] == dict(path=runbook_paths(env.root, 'v2')[0], json=runbook_paths(env.root, 'v2')[1], changed=True)
    assert read(runbook_paths(env.root, 'v2')[0]) == '# runbook of v2\n'
    assert json.loads(read(runbook_paths(env.root, 'v2')[1])) == {'release': 'v2'}


def test_a_runbook_that_cannot_be_written_is_a_warning_and_the_rollout_goes_on(env):
    env.rollout('v1')
    env.run(direction='rollout', steps=['stage'], release='v2', src=env.archive('v2'))
    with open(os.path.join(state_dir(env.root), 'runbooks'), 'w') as handle:
        handle.write('a file where the directory goes\n')
    done = env.run(direction='rollout', steps=['switch', 'restart', 'verify', 'finish'], release='v2',
                   runbook={'files': files_for('v2')})
    assert done['outcome'] == 'rolled_out' and statuses(env.root) == {'v1': 'ok', 'v2': 'ok'}
    assert done['runbook'] is None
    assert [w for w in env.host.warnings if w.startswith('the runbook of v2 could not be written on the host')
            and w.endswith('the rollout goes on')], env.host.warnings


def test_check_mode_and_files_of_another_release_write_nothing(env):
    env.rollout('v1')
    env.run(direction='rollout', steps=['stage'], release='v2', src=env.archive('v2'))
    before = ledger_bytes(env.root)
    checked = env.run(check_mode=True, direction='rollout', steps=['switch', 'restart', 'verify', 'finish'], release='v2',
                      runbook={'files': files_for('v2')})
    assert checked['runbook'] is None and ledger_bytes(env.root) == before
    stale = env.run(direction='rollout', steps=['switch', 'restart', 'verify', 'finish'], release='v2',
                    runbook={'files': files_for('v1')})
    assert stale['outcome'] == 'rolled_out' and stale['runbook'] is None
    assert not os.path.exists(os.path.join(state_dir(env.root), 'runbooks'))


def test_the_check_mode_plan_reads_a_scratch_copy_and_changes_nothing(env, tmp_path):
    migrations = env.migrations(baseline_tables=['users'])
    env.rollout('v1', files=SCHEMA_1, migrations=migrations)
    before = ledger_bytes(env.root)
    params = env.params(direction='rollout', steps=['stage'], release='v2', src=env.archive('v2', files=SCHEMA_2),
                        migrations=migrations, _plan=True)
    del params['lock_owner']  # the runbook playbook takes no lock: it reports who holds it
    with open(os.path.join(state_dir(env.root), 'lock'), 'w') as handle:
        json.dump({'owner': 'someone-else', 'expires_at': '2999-01-01T00:00:00Z', 'acquired_at': '2026-11-30T04:00:00Z'}, handle)
    result = Transition(params, env.host, check_mode=True).run()
    plan = result['plan']
    assert plan['info']['lock']['owner'] == 'someone-else'
    assert (plan['migrate']['version_before'], plan['migrate']['version_after']) == (1, 2)
    # named where the rollout will run it, not in the scratch copy it was read from
    facts = build_runbook([host_facts(plan, 'web1')], CONTEXT)
    assert facts['hosts']['web1']['database']['migrations'][0]['up'] == os.path.join(
        env.root, 'releases', 'v2', 'migrations', '2_add_email.up.sql')
    assert plan['baseline']['baseline']['name'] == 'before-v2'  # measured, not written
    assert ledger_bytes(env.root) == before and sorted(os.listdir(os.path.join(env.root, 'releases'))) == ['v1']
    assert not os.path.exists(os.path.join(state_dir(env.root), 'baselines', 'before-v2.json'))
    assert schema_columns(env.db()) == ['id', 'name']
    assert not [name for name in os.listdir(str(tmp_path)) if name.startswith('redbutton-runbook-')]


def test_a_pruned_release_takes_its_runbook_along(env):
    for version in ('v1', 'v2', 'v3'):
        env.rollout(version, keep=2)
        write_on_host(env.root, version, files_for(version))
    assert sorted(os.listdir(os.path.join(env.root, 'releases'))) == ['v2', 'v3']
    env.rollout('v4', keep=2)
    assert sorted(os.listdir(os.path.join(env.root, 'releases'))) == ['v3', 'v4']
    # v1 went with its release at v3's finish, v2 at v4's; v3 (the rollback target) keeps its runbook
    assert sorted(os.listdir(os.path.join(state_dir(env.root), 'runbooks'))) == ['v3.json', 'v3.md']


def test_write_on_host_leaves_the_same_content_alone_and_check_mode_writes_nothing(tmp_path):
    root = str(tmp_path)
    assert write_on_host(root, 'v1', files_for('v1'), check_mode=True)['changed']
    assert not os.path.exists(runbook_paths(root, 'v1')[0])
    assert write_on_host(root, 'v1', files_for('v1'))['changed']
    mtime = os.stat(runbook_paths(root, 'v1')[0]).st_mtime_ns
    assert not write_on_host(root, 'v1', files_for('v1'))['changed']
    assert os.stat(runbook_paths(root, 'v1')[0]).st_mtime_ns == mtime
    assert write_on_host(root, 'v1', files_for('v1', '# new %s\n'))['changed'] and read(runbook_paths(root, 'v1')[0]) == '# new v1\n'


def test_host_facts_keep_no_credentials_of_a_url():
    raw = host_facts({'root': '/srv/shop'}, 'web1', app='shop', artifact='https://bob:secret@a.example/shop-v2.tgz')
    assert raw['artifact'] == 'https://a.example/shop-v2.tgz' and raw['host'] == 'web1' and raw['checksum'] == ''
    assert host_facts({}, 'web1', artifact='dist/a@b.tgz')['artifact'] == 'dist/a@b.tgz'


def test_the_controller_copy_keeps_the_hosts_of_its_run_only():
    first = merge_hosts(None, {'host': 'web1'}, 'run-1')
    both = merge_hosts(json.loads(json.dumps(first)), {'host': 'web2'}, 'run-1')
    assert sorted(both['hosts']) == ['web1', 'web2'] and both['run'] == 'run-1'
    again = merge_hosts(both, {'host': 'web1', 'new': True}, 'run-1')
    assert again['hosts']['web1'] == {'host': 'web1', 'new': True}
    assert sorted(merge_hosts(both, {'host': 'web3'}, 'run-2')['hosts']) == ['web3']
