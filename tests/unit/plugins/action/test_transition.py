# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The transition action plugin: a rollout's stage call uploads a controller artifact only when
the host lacks that content (the probe does every step when it has it); every other call goes
straight to the module. The "remote host" is the real engine run in-process on a temporary root."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

import pytest

from ansible.module_utils import _internal as module_utils_internal

MODULE_SIDE = module_utils_internal.is_controller

# Controller imports flip a process-wide flag (see test_release.py in this folder): restore it.
from ansible_collections.redbutton.deploy.plugins.action.transition import ActionModule  # noqa: E402 pylint: disable=wrong-import-position
from ansible_collections.redbutton.deploy.plugins.module_utils._archive import file_checksum
from ansible_collections.redbutton.deploy.plugins.module_utils._common import RedbuttonError
from ansible_collections.redbutton.deploy.plugins.module_utils._runbook import build_runbook
from ansible_collections.redbutton.deploy.plugins.module_utils._transition import Transition

from . import test_release
from ..module_utils.test_archive import make_tar  # noqa: E402 pylint: disable=wrong-import-position
from ..module_utils.test_runbook import CONTEXT, raw
from ..module_utils.test_transition import FakeHost, current_of, statuses

module_utils_internal.is_controller = MODULE_SIDE


@pytest.fixture(autouse=True)
def controller_side():
    module_utils_internal.is_controller = True
    yield
    module_utils_internal.is_controller = MODULE_SIDE


class Remote(test_release.FakeHost):
    """The connection: a remote tmp dir, transfers, and the transition module run in-process."""

    def execute_module(self, action, module_name=None, module_args=None, task_vars=None, **kwargs):
        assert module_name == 'redbutton.deploy.transition'
        self.calls.append(dict(module_args))
        engine_host = FakeHost(module_args['root'])
        try:
            return Transition(dict(module_args), engine_host, check_mode=action._task.check_mode).run()
        except RedbuttonError as exc:
            return dict(getattr(exc, 'result', None) or {}, failed=True, msg=str(exc))


def run_action(remote, args, check_mode=False, **connection):
    action = test_release.make_action(remote, dict(args), check_mode=check_mode, **connection)
    action.__class__ = ActionModule  # the same wiring, the transition plugin's behaviour
    return action.run(task_vars={})


@pytest.fixture
def remote(tmp_path):
    base = tmp_path / 'remote-tmp'
    base.mkdir()
    return Remote(str(base))


def rollout_args(tmp_path, version, **args):
    src = make_tar(tmp_path / ('%s.tar' % version), [('file', 'VERSION', version)])
    return dict(root=str(tmp_path / 'app'), direction='rollout', release=version, src=src, lock_owner='play-1', **args)


def test_rollout_uploads_once_and_the_rerun_is_one_probe(tmp_path, remote):
    args = rollout_args(tmp_path, 'v1')
    first = run_action(remote, args)
    assert not first.get('failed'), first
    assert first['outcome'] == 'rolled_out' and first['created'] and 'needs_src' not in first
    assert remote.transfers == [args['src']]
    probe, real = remote.calls
    assert 'src' not in probe and probe['_probe'] and probe['checksum'] == file_checksum(args['src'])
    assert real['src'].startswith(remote.tmpdirs[0]) and real['remote_src'] is True
    assert current_of(args['root']) == 'v1' and statuses(args['root']) == {'v1': 'ok'}
    assert not os.listdir(remote.base)
    again = run_action(remote, args)
    assert not again['changed'] and again['outcome'] == 'up_to_date'
    assert remote.transfers == [args['src']] and len(remote.calls) == 3  # the probe did it all


def test_check_mode_never_uploads(tmp_path, remote):
    args = rollout_args(tmp_path, 'v1')
    result = run_action(remote, args, check_mode=True)
    assert result['changed'] and remote.transfers == [] and not os.path.exists(args['root'])


def test_a_call_without_the_stage_step_goes_straight_to_the_module(tmp_path, remote):
    args = rollout_args(tmp_path, 'v1', steps=['stage'])
    run_action(remote, args)
    calls = len(remote.calls)
    result = run_action(remote, dict(args, steps=['switch', 'restart', 'verify', 'finish']))
    assert result['outcome'] == 'rolled_out' and len(remote.calls) == calls + 1
    sent = dict(remote.calls[-1])
    sent.pop('_controller', None)  # who runs the play, for the lock
    assert sent == dict(args, steps=['switch', 'restart', 'verify', 'finish'])
    assert len(remote.transfers) == 1


@pytest.mark.parametrize('args, stages', [
    ({'direction': 'rollout', 'src': 'a.tar'}, True),
    ({'direction': 'rollout', 'src': 'a.tar', 'steps': ['stage', 'switch']}, True),
    ({'direction': 'rollout', 'src': 'a.tar', 'steps': ['switch']}, False),
    ({'direction': 'rollout', 'src': 'a.tar', 'remote_src': 'yes'}, False),
    ({'direction': 'rollout'}, False),
    ({'direction': 'rollback', 'src': 'a.tar'}, False),
])
def test_which_calls_upload(args, stages):
    assert ActionModule._stages(None, args) is stages


def test_a_missing_controller_artifact_fails_naming_it(tmp_path, remote):
    missing = str(tmp_path / 'nope.tar')
    result = run_action(remote, dict(rollout_args(tmp_path, 'v1'), src=missing))
    assert result['failed'] and missing in result['msg'] and remote.calls == []


def test_the_controller_copy_reuses_the_hosts_rendering_only_while_it_is_the_only_host(tmp_path):
    """A rendering costs a tenth of a second: the controller copy of a one-host run is the host's own
    copy; once a second host of the run writes, the copy is rendered again with both."""
    rendered = []

    class Plugin(ActionModule):
        def __init__(self):  # pylint: disable=super-init-not-called
            pass

        def _render(self, facts, task_vars):
            rendered.append(sorted(facts['hosts']))
            return 'hosts: %s\n' % ', '.join(sorted(facts['hosts']))

    plugin = Plugin()
    out = str(tmp_path)
    web1 = build_runbook([raw('web1')], CONTEXT)
    markdown, twin = plugin._write_controller(out, 'shop', 'v2', raw('web1'), CONTEXT, 'run-1', {}, (web1, 'the host copy of web1\n'))
    with open(markdown, encoding='utf-8') as handle:
        assert rendered == [] and handle.read() == 'the host copy of web1\n'
    plugin._write_controller(out, 'shop', 'v2', raw('web2'), CONTEXT, 'run-1', {}, (build_runbook([raw('web2')], CONTEXT), 'web2\n'))
    with open(markdown, encoding='utf-8') as handle:
        assert rendered == [['web1', 'web2']] and handle.read() == 'hosts: web1, web2\n'
    with open(twin, encoding='utf-8') as handle:
        assert sorted(json.load(handle)['hosts']) == ['web1', 'web2']
