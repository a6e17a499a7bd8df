# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""redbutton.deploy.transition as Ansible runs it: the argument spec, the documented result,
failures with their result, check mode, diff mode and bad input. Restarts are real shell
commands (they append to a log); health checks ask a real HTTP server that serves the VERSION
of <root>/current, and real commands run in the current release."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

import pytest
import yaml

from ansible.module_utils.testing import patch_module_args

from ansible_collections.redbutton.deploy.plugins.modules import transition as transition_module

from ..module_utils.test_release import snapshot
from ..module_utils.test_transition import App, current_of, ledger, lock_holder, statuses
from ..module_utils.test_archive import make_tar


def call(capsys, args, check_mode=False, diff=False):
    """Run the module's main(); return (exit code, result dict)."""
    args = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
    with patch_module_args(args):
        with pytest.raises(SystemExit) as caught:
            transition_module.main()
    return caught.value.code, json.loads(capsys.readouterr().out)


class Site(object):
    def __init__(self, tmp_path, app):
        self.tmp = tmp_path
        self.root = str(tmp_path / 'app')
        self.app = app
        self.log = str(tmp_path / 'restarts.log')
        self.archives = {}

    def archive(self, version, body=None):
        if (version, body) not in self.archives:
            path = self.tmp / ('%s-%d.tar.gz' % (version, len(self.archives)))
            self.archives[(version, body)] = make_tar(path, [('file', 'VERSION', (body or version) + '\n')], mode='w:gz')
        return self.archives[(version, body)]

    def args(self, **args):
        merged = dict(root=self.root, lock_owner='play-1',
                      service={'manager': 'command', 'restart_command': 'basename "$(pwd -P)" >> %s' % self.log},
                      health_checks=[{'name': 'web', 'url': self.app.url}], health_retries=0, health_delay=0)
        merged.update(args)
        return merged

    def rollout(self, version, body=None, **args):
        return self.args(direction='rollout', release=version, src=self.archive(version, body), **args)

    def restarts(self):
        if not os.path.exists(self.log):
            return []
        with open(self.log) as handle:
            return handle.read().split()


@pytest.fixture
def site(tmp_path):
    app = App(str(tmp_path / 'app'))
    yield Site(tmp_path, app)
    app.close()


def test_rollout_returns_every_documented_key(capsys, site):
    rc, result = call(capsys, site.rollout('v1'))
    assert rc == 0, result
    documented = yaml.safe_load(transition_module.RETURN)
    missing = [key for key in documented if key not in result and key != 'diff']
    assert missing == []
    assert result['changed'] and result['outcome'] == 'rolled_out' and result['current'] == 'v1'
    assert result['msg'] == 'v1 serves and passed 1 health check'
    assert current_of(site.root) == 'v1' and statuses(site.root) == {'v1': 'ok'}
    assert site.restarts() == ['v1']  # the restart command ran in <root>/current


def test_rollout_then_rerun_is_idempotent(capsys, site):
    call(capsys, site.rollout('v1'))
    rc, result = call(capsys, site.rollout('v2'))
    assert rc == 0 and result['outcome'] == 'rolled_out' and (result['from'], result['to']) == ('v1', 'v2')
    before = snapshot(site.root)
    rc, again = call(capsys, site.rollout('v2'))
    assert rc == 0 and not again['changed'] and again['outcome'] == 'up_to_date'
    assert snapshot(site.root) == before and site.restarts() == ['v1', 'v2']


def test_failure_fails_the_module_with_the_result_then_auto_rollback_succeeds(capsys, site):
    call(capsys, site.rollout('v1'))
    rc, failed = call(capsys, site.rollout('v2', 'v2 broken'))
    assert rc == 1 and failed['failed'] is True
    assert failed['failed_step'] == 'verify' and failed['current'] == 'v2'
    assert failed['msg'] == 'Rollout of v2 failed at verify: health checks failed: web (%s answered 500) after 1 attempt.' % site.app.url
    assert failed['statuses'] == {'v1': 'ok', 'v2': 'active'}
    assert lock_holder(site.root) == 'play-1'
    rc, result = call(capsys, site.args(direction='auto_rollback'))
    assert rc == 0 and result['outcome'] == 'auto_rolled_back' and result['changed']
    assert 'Rolled back automatically: v1 serves again' in result['msg']
    assert current_of(site.root) == 'v1' and statuses(site.root) == {'v1': 'ok', 'v2': 'failed'}
    assert lock_holder(site.root) is None and site.restarts() == ['v1', 'v2', 'v1']


def test_rollback_and_its_refusal(capsys, site):
    call(capsys, site.rollout('v1'))
    call(capsys, site.rollout('v2'))
    rc, result = call(capsys, site.args(direction='rollback'))
    assert rc == 0 and result['outcome'] == 'rolled_back' and result['compare']['matched'] is True
    assert current_of(site.root) == 'v1' and statuses(site.root) == {'v1': 'ok', 'v2': 'rolled_back'}
    before = snapshot(site.root)
    rc, refused = call(capsys, site.args(direction='rollback'))
    assert rc == 1 and refused['msg'].endswith('Rollback refused: current was not changed.')
    assert snapshot(site.root) == before


def test_check_mode_and_diff_change_nothing(capsys, site):
    call(capsys, site.rollout('v1'))
    before = snapshot(site.root)
    rc, result = call(capsys, site.rollout('v2'), check_mode=True, diff=True)
    assert rc == 0 and result['changed']
    assert result['diff'] == {'before': {'current': 'v1', 'releases': {'v1': 'ok'}},
                              'after': {'current': 'v2', 'releases': {'v1': 'ok', 'v2': 'ok'}}}
    assert snapshot(site.root) == before and site.restarts() == ['v1']


def test_check_mode_first_rollout_with_a_command_check(capsys, site):
    checks = [{'name': 'version file', 'command': 'grep -q v1 VERSION'}]
    rc, result = call(capsys, site.rollout('v1', health_checks=checks), check_mode=True)
    assert rc == 0, result['msg']
    assert not os.path.exists(site.root)


def test_verify_direction_reads_only(capsys, site):
    call(capsys, site.rollout('v1'))
    before = snapshot(site.root)
    checks = [{'name': 'version file', 'command': 'grep -q v1 VERSION'}, {'name': 'web', 'url': site.app.url, 'body_regex': '^v1$'}]
    rc, result = call(capsys, site.args(direction='verify', health_checks=checks))
    assert rc == 0 and not result['changed'] and result['outcome'] == 'verified'
    assert [c['passed'] for c in result['checks']] == [True, True]
    rc, failed = call(capsys, site.args(direction='verify', health_checks=[{'name': 'version file', 'command': 'grep -q v2 VERSION'}]))
    assert rc == 1 and failed['failed_step'] == 'verify' and 'version file (rc 1' in failed['msg']
    assert snapshot(site.root) == before


@pytest.mark.parametrize('args, named', [
    ({'service': {'manager': 'command', 'start_command': 'bin/start'}}, 'needs start_command and stop_command'),
    ({'service': {'manager': 'systemd'}}, 'redbutton_service with manager systemd needs name'),
    ({'health_checks': [{'name': 'both', 'url': 'http://127.0.0.1/', 'command': 'true'}]}, 'redbutton_health_checks items'),
    ({'health_checks': [{'name': 'typo', 'uri': 'http://127.0.0.1/'}]}, 'uri'),
    ({'migrations': {'database': 'app.db', 'path': '/abs/migrations'}}, 'redbutton_migrations.path /abs/migrations must be relative'),
    ({'steps': ['stage', 'deploy']}, 'deploy'),
    ({'direction': 'sideways'}, 'sideways'),
    ({'service': {'manager': 'command', 'restart_command': 'x', 'action': 'bounce'}}, 'bounce'),
])
def test_bad_input_fails_naming_it_and_changes_nothing(capsys, site, args, named):
    call(capsys, site.rollout('v1'))
    before = snapshot(site.root)
    rc, result = call(capsys, dict(site.rollout('v2'), **args))
    assert rc == 1 and result['failed'] is True
    assert named in result['msg']
    assert snapshot(site.root) == before and current_of(site.root) == 'v1'
    assert ledger(site.root)['transition'] is None and lock_holder(site.root) is None
