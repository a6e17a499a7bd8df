# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The runbook's facts (_runbook.build_runbook): hosts with identical plans are grouped, each
command names the hosts it applies to, and the failure advice follows the plan."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.redbutton.deploy.plugins.module_utils._common import RedbuttonError
from ansible_collections.redbutton.deploy.plugins.module_utils._runbook import build_runbook, shell_quote

CONTEXT = dict(inventory=['inv/prod.ini'], extra={'redbutton_app': 'shop'}, generated_at='2026-11-30T05:00:00Z')


def raw(host, current='v1', migrate=None, lock=None, root='/srv/shop'):
    info = dict(current=current, exists=True, lock=lock,
                releases=[dict(id='v1', status='ok', metadata={'schema_version': 3})] if current else [])
    return dict(host=host, app='shop', root=root, artifact='https://a.example/shop-v2.tgz', checksum='sha256:' + 'a' * 64,
                info=info, stage=dict(release='v2', created=True, checksum='sha256:' + 'a' * 64),
                migrate=migrate, migrations=dict(engine='postgresql', database='dbname=shop', path='db') if migrate else {},
                baseline=None, health_checks=[dict(name='web', url='http://localhost/health'), dict(name='port', port=5432)],
                service={'manager': 'systemd', 'name': 'shop'}, shared_paths=[], auto_rollback=True)


def migrate_plan(transaction=True):
    step = dict(version=4, title='orders', file='/tmp/x/releases/v2/db/4_orders.up.sql', down_file='/tmp/x/releases/v2/db/4_orders.down.sql',
                down_drops=[dict(drops='table orders', line=1, statement='DROP TABLE orders')],
                transaction=transaction, no_transaction_reason=None if transaction else 'CREATE INDEX CONCURRENTLY')
    return dict(engine='postgresql', database='dbname=shop', history_table='redbutton_schema_history', path='/tmp/x/releases/v2/db',
                version_before=3, version_after=4, applied=[step])


def test_identical_hosts_are_one_group_and_commands_name_them():
    facts = build_runbook([raw('web2'), raw('web1'), raw('db1', current='v0')], CONTEXT)
    assert [g['hosts'] for g in facts['groups']] == [['db1'], ['web1', 'web2']]
    web = facts['groups'][1]['plan']
    assert web['commands']['rollback'] == ('ansible-playbook -i inv/prod.ini redbutton.deploy.rollback -e redbutton_app=shop '
                                           '-e redbutton_rollback_to=v1 --limit web1,web2')
    assert facts['hosts']['web1']['commands']['rollback'].endswith('--limit web1')
    assert web['commands']['rollback_on_host'] == '/srv/shop/.redbutton/bin/redbutton rollback'
    assert web['checks'] == [dict(name='web', kind='http', target='http://localhost/health'),
                             dict(name='port', kind='tcp', target='127.0.0.1:5432')]
    assert facts['release'] == 'v2' and facts['app'] == 'shop'


def test_migration_failure_advice_follows_the_plan():
    plan = build_runbook([raw('web1', migrate=migrate_plan())], CONTEXT)['hosts']['web1']
    database = plan['database']
    assert database['migrations'][0]['up'] == '/srv/shop/releases/v2/db/4_orders.up.sql'
    assert database['rollback_version'] == 3 and database['rollback_version_recorded'] and database['backup']
    failure = [f for f in plan['failures'] if f['step'] == 'migrate'][0]
    assert 'the database stays at version 3' in failure['stands'] and 'v1 keeps serving' in failure['stands']
    assert any('"target": 3' in line and '"path": "/srv/shop/current/db"' in line and '"database": "dbname=shop"' in line
               for line in failure['do'])
    assert any('drops table orders: a backup is written into /srv/shop/.redbutton/backups' in line for line in failure['check'])


def test_a_migration_without_transaction_says_it_may_be_half_applied():
    plan = build_runbook([raw('web1', migrate=migrate_plan(transaction=False))], CONTEXT)['hosts']['web1']
    failure = [f for f in plan['failures'] if f['step'] == 'migrate'][0]
    assert 'WITHOUT a transaction (CREATE INDEX CONCURRENTLY)' in failure['stands']


def test_a_held_lock_is_named():
    lock = dict(owner='awx-job-42', acquired_at='2026-11-30T04:00:00Z', expires_at='2026-11-30T05:00:00Z')
    plan = build_runbook([raw('web1', lock=lock)], CONTEXT)['hosts']['web1']
    assert plan['lock']['owner'] == 'awx-job-42'
    assert 'held right now by awx-job-42' in plan['failures'][0]['stands']


def test_first_release_has_no_rollback_command():
    plan = build_runbook([raw('web1', current=None)], CONTEXT)['hosts']['web1']
    assert plan['commands']['rollback'] is None and plan['rollback_target'] is None
    assert any('no earlier release' in line for f in plan['failures'] for line in f['do'])


def test_no_hosts_and_no_release_are_errors():
    with pytest.raises(RedbuttonError, match='no host answered'):
        build_runbook([], CONTEXT)
    broken = raw('web1')
    broken['stage'] = dict(msg='checksum mismatch')
    with pytest.raises(RedbuttonError, match='host web1: the release id could not be resolved'):
        build_runbook([broken], CONTEXT)


def test_shell_quote():
    assert shell_quote('v1') == 'v1' and shell_quote("it's") == "'it'\"'\"'s'" and shell_quote('a b') == "'a b'"
