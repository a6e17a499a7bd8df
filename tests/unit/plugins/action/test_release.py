# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The release action plugin: checksum on the controller, upload only when the host lacks
the content, check mode never uploads, local directories are packed, temp files cleaned.

The "remote host" is the real release engine run in-process on a temporary root, so the
tests assert what ends up staged, not only which calls were made."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import gzip
import io
import json
import os
import shutil
import tarfile
import tempfile
from unittest import mock

import pytest

from ansible.module_utils import _internal as module_utils_internal

MODULE_SIDE = module_utils_internal.is_controller

# Importing controller code flips a process-wide flag that makes AnsibleModule.warn() print
# to the controller display instead of returning warnings; module tests collected in the same
# pytest process rely on the module-side behaviour, so the flag is restored right after these
# imports and set only while the tests below run.
from ansible.errors import AnsibleError  # noqa: E402 pylint: disable=wrong-import-position

from ansible_collections.redbutton.deploy.plugins.action.release import ActionModule  # noqa: E402 pylint: disable=wrong-import-position
from ansible_collections.redbutton.deploy.plugins.module_utils._archive import file_checksum, tree_checksum
from ansible_collections.redbutton.deploy.plugins.module_utils._common import RedbuttonError
from ansible_collections.redbutton.deploy.plugins.module_utils._release import RELEASE_ARGUMENT_SPEC, ReleaseManager

from ..module_utils.test_archive import make_tar, make_tree  # noqa: E402 pylint: disable=wrong-import-position

module_utils_internal.is_controller = MODULE_SIDE


@pytest.fixture(autouse=True)
def controller_side():
    module_utils_internal.is_controller = True
    yield
    module_utils_internal.is_controller = MODULE_SIDE


class FakeHost(object):
    """Stands in for the connection: a remote tmp dir, transfers, and module runs."""

    def __init__(self, base):
        self.base = base
        self.calls = []
        self.transfers = []
        self.removed = []
        self.tmpdirs = []

    def execute_module(self, action, module_name=None, module_args=None, task_vars=None, **kwargs):
        self.calls.append(dict(module_args))
        params = dict((name, spec.get('default')) for name, spec in RELEASE_ARGUMENT_SPEC.items())
        params['shared_paths'] = []
        params.update(module_args)
        try:
            return ReleaseManager(params, check_mode=action._task.check_mode).run()
        except RedbuttonError as exc:
            return {'failed': True, 'msg': str(exc)}

    def make_tmp(self, action):
        path = tempfile.mkdtemp(dir=self.base)
        self.tmpdirs.append(path)
        action._connection._shell.tmpdir = path
        return path

    def transfer(self, local, remote):
        self.transfers.append(local)
        shutil.copyfile(local, remote)
        return remote

    def remove_tmp(self, path):
        self.removed.append(path)
        if path:
            shutil.rmtree(path, ignore_errors=True)


def make_action(host, args, check_mode=False, transport='ssh', become=None):
    task = mock.MagicMock()
    task.args = args
    task.check_mode = check_mode
    task.async_val = 0
    connection = mock.MagicMock()
    connection.transport = transport
    connection.become = become
    connection._shell.tmpdir = None
    connection._shell.join_path = os.path.join
    loader = mock.MagicMock()
    loader.get_real_file.side_effect = lambda path, decrypt=True: path
    action = ActionModule(task, connection, mock.MagicMock(), loader, mock.MagicMock(), None)

    def find_needle(dirname, needle):
        if not os.path.exists(needle):
            raise AnsibleError('Could not find or access %r' % needle)
        return needle

    action._find_needle = find_needle
    action._execute_module = lambda **kwargs: host.execute_module(action, **kwargs)
    action._make_tmp_path = lambda *a, **k: host.make_tmp(action)
    action._transfer_file = host.transfer
    action._fixup_perms2 = lambda *a, **k: None
    action._remove_tmp_path = host.remove_tmp
    return action


@pytest.fixture
def host(tmp_path):
    base = tmp_path / 'remote-tmp'
    base.mkdir()
    return FakeHost(str(base))


def run_action(host, args, check_mode=False, **connection):
    return make_action(host, dict(args), check_mode=check_mode, **connection).run(task_vars={})


def test_first_run_uploads_second_run_does_not(tmp_path, host):
    src = make_tar(tmp_path / 'v1.tar', [('file', 'VERSION', 'v1')])
    root = tmp_path / 'app'
    args = dict(root=str(root), release='v1', src=src, state='active')
    first = run_action(host, args)
    assert not first.get('failed'), first
    assert first['created'] and first['current'] == 'v1' and 'needs_src' not in first
    assert host.transfers == [src]
    assert (root / 'releases' / 'v1' / 'VERSION').read_text() == 'v1'
    assert 'src' not in host.calls[0] and host.calls[0]['_probe'] and host.calls[0]['checksum'] == file_checksum(src)
    assert host.calls[1]['src'].startswith(host.tmpdirs[0]) and host.calls[1]['remote_src'] is True
    assert not os.listdir(host.base)  # the remote tmp dir was cleaned
    second = run_action(host, args)
    assert not second['changed'] and host.transfers == [src] and len(host.calls) == 3


def test_ledger_source_is_the_controller_path_not_the_tmp_copy(tmp_path, host):
    src = make_tar(tmp_path / 'v1.tar', [('file', 'VERSION', 'v1')])
    result = run_action(host, dict(root=str(tmp_path / 'app'), release='v1', src=src))
    assert [item['source'] for item in result['releases']] == [src]


def test_check_mode_never_uploads_and_changes_nothing(tmp_path, host):
    src = make_tar(tmp_path / 'v1.tar', [('file', 'VERSION', 'v1')])
    root = tmp_path / 'app'
    result = run_action(host, dict(root=str(root), release='v1', src=src, state='active'), check_mode=True)
    assert result['changed'] and result['current'] == 'v1' and result['created']
    assert host.transfers == [] and not root.exists()


def test_local_directory_is_packed_and_keeps_its_tree_checksum(tmp_path, host):
    src = make_tree(tmp_path / 'build', {'VERSION': 'v1', 'bin/run': '#!/bin/sh', 'link': ('symlink', 'VERSION')})
    os.chmod(os.path.join(src, 'bin/run'), 0o755)
    root = tmp_path / 'app'
    result = run_action(host, dict(root=str(root), src=src, state='active'))
    assert not result.get('failed'), result
    digest = tree_checksum(src)
    assert result['checksum'] == digest and result['release'] == 'sha256-' + digest[7:19]
    staged = root / 'releases' / result['release']
    assert tree_checksum(str(staged)) == digest
    assert os.readlink(str(staged / 'link')) == 'VERSION'
    assert len(host.transfers) == 1 and host.transfers[0].endswith('.tar.gz')
    assert not os.path.exists(host.transfers[0])  # the controller-side temporary tar is gone
    again = run_action(host, dict(root=str(root), src=src, state='active'))
    assert not again['changed'] and len(host.transfers) == 1


def test_missing_local_src_fails_naming_it(tmp_path, host):
    missing = str(tmp_path / 'nope.tgz')
    result = run_action(host, dict(root=str(tmp_path / 'app'), release='v1', src=missing))
    assert result['failed'] and missing in result['msg'] and 'not found on the controller' in result['msg']
    assert host.calls == [] and host.transfers == []


def test_checksum_mismatch_is_caught_on_the_controller(tmp_path, host):
    src = make_tar(tmp_path / 'v1.tar', [('file', 'VERSION', 'v1')])
    wrong = 'sha256:' + '0' * 64
    result = run_action(host, dict(root=str(tmp_path / 'app'), release='v1', src=src, checksum=wrong))
    assert result['failed'] and wrong in result['msg'] and file_checksum(src) in result['msg']
    assert host.calls == [] and host.transfers == []


def test_malicious_local_archive_is_refused_by_the_host_leaving_nothing(tmp_path, host, monkeypatch):
    from ansible_collections.redbutton.deploy.plugins.module_utils import _archive

    def no_listing(self):
        raise AssertionError('the controller listed the archive; only check mode needs that')

    src = make_tar(tmp_path / 'evil.tar', [('file', 'ok', 'x'), ('symlink', 'etc', '/etc')])
    monkeypatch.setattr(_archive.TarSource, 'members', no_listing)
    result = run_action(host, dict(root=str(tmp_path / 'app'), release='v1', src=src, state='active'))
    assert result['failed'] and "'etc'" in result['msg']
    assert len(host.transfers) == 1 and os.listdir(str(tmp_path / 'app' / 'releases')) == []
    assert not os.path.lexists(str(tmp_path / 'app' / 'current'))
    assert host.removed == host.tmpdirs and not any(os.path.exists(path) for path in host.tmpdirs)


def test_malicious_local_archive_is_refused_in_check_mode(tmp_path, host):
    src = make_tar(tmp_path / 'evil.tar', [('file', '../../escape', 'x')])
    result = run_action(host, dict(root=str(tmp_path / 'app'), release='v1', src=src), check_mode=True)
    assert result['failed'] and "'../../escape'" in result['msg'] and host.calls == []


def test_rerun_does_not_read_the_archive_members_again(tmp_path, host, monkeypatch):
    src = make_tar(tmp_path / 'v1.tar', [('file', 'VERSION', 'v1')])
    args = dict(root=str(tmp_path / 'app'), release='v1', src=src, state='active')
    run_action(host, args)
    from ansible_collections.redbutton.deploy.plugins.module_utils import _archive

    def no_listing(self):
        raise AssertionError('members listed on the fast path')

    monkeypatch.setattr(_archive.TarSource, 'members', no_listing)
    monkeypatch.setattr(_archive.TarSource, '_walk', no_listing)
    result = run_action(host, args)
    assert not result.get('failed') and not result['changed'] and len(host.transfers) == 1


def test_conflicting_content_is_refused_before_upload(tmp_path, host):
    root = str(tmp_path / 'app')
    run_action(host, dict(root=root, release='v1', src=make_tar(tmp_path / 'a.tar', [('file', 'VERSION', 'a')])))
    result = run_action(host, dict(root=root, release='v1', src=make_tar(tmp_path / 'b.tar', [('file', 'VERSION', 'b')])))
    assert result['failed'] and 'immutable' in result['msg']
    assert len(host.transfers) == 1


def test_remote_src_is_passed_through_in_one_call(tmp_path, host):
    src = make_tar(tmp_path / 'v1.tar', [('file', 'VERSION', 'v1')])
    result = run_action(host, dict(root=str(tmp_path / 'app'), release='v1', src=src, remote_src=True))
    assert result['created'] and host.transfers == [] and len(host.calls) == 1
    assert host.calls[0]['src'] == src and '_probe' not in host.calls[0]


def test_no_src_is_passed_through(tmp_path, host):
    src = make_tar(tmp_path / 'v1.tar', [('file', 'VERSION', 'v1')])
    run_action(host, dict(root=str(tmp_path / 'app'), release='v1', src=src))
    result = run_action(host, dict(root=str(tmp_path / 'app'), release='v1', state='active', status='ok'))
    assert result['current'] == 'v1' and result['status'] == 'ok' and len(host.calls) == 3


def test_upload_damaged_in_transit_is_refused_while_extracting(tmp_path, host):
    src = make_tar(tmp_path / 'v1.tar', [('file', 'VERSION', 'v1'), ('file', 'README', 'r' * 600)])
    root = tmp_path / 'app'

    def damaging(local, remote):
        host.transfers.append(local)
        data = bytearray(open(local, 'rb').read())
        data[600] ^= 0xFF  # inside README's data: the archive still reads, its bytes differ
        open(remote, 'wb').write(bytes(data))
        return remote

    host.transfer = damaging
    result = run_action(host, dict(root=str(root), release='v1', src=src, state='active'))
    assert result['failed'] and 'checksum mismatch' in result['msg'] and file_checksum(src) in result['msg']
    assert os.listdir(str(root / 'releases')) == [] and not os.path.lexists(str(root / 'current'))
    assert not (root / '.redbutton' / 'ledger.json').exists()  # nothing recorded


def test_local_connection_stages_in_one_call_without_hashing_or_copying(tmp_path, host, monkeypatch):
    from ansible_collections.redbutton.deploy.plugins.action import release as action_release

    def no_controller_hash(path):
        raise AssertionError('hashed on the controller although the module reads the file itself')

    monkeypatch.setattr(action_release, 'file_checksum', no_controller_hash)
    src = make_tar(tmp_path / 'v1.tar', [('file', 'VERSION', 'v1')])
    root = tmp_path / 'app'
    args = dict(root=str(root), release='v1', src=src, state='active', status='ok')
    first = run_action(host, args, transport='local')
    assert not first.get('failed'), first
    assert first['created'] and first['current'] == 'v1' and first['checksum'] == file_checksum(src)
    assert (root / 'releases' / 'v1' / 'VERSION').read_text() == 'v1'
    assert host.transfers == [] and host.tmpdirs == [] and len(host.calls) == 1
    assert host.calls[0]['src'] == src and host.calls[0]['remote_src'] is True and host.calls[0]['_source'] == src
    assert [item['source'] for item in first['releases']] == [src]
    second = run_action(host, args, transport='local')
    assert not second['changed'] and second['up_to_date'] and not second['created'] and len(host.calls) == 2


def test_local_connection_stages_a_directory_with_its_tree_checksum(tmp_path, host):
    src = make_tree(tmp_path / 'build', {'VERSION': 'v1', 'link': ('symlink', 'VERSION')})
    result = run_action(host, dict(root=str(tmp_path / 'app'), src=src, state='active'), transport='local')
    digest = tree_checksum(src)
    assert result['checksum'] == digest and result['release'] == 'sha256-' + digest[7:19]
    assert tree_checksum(str(tmp_path / 'app' / 'releases' / result['release'])) == digest
    assert host.transfers == [] and len(host.calls) == 1


def test_local_connection_with_become_still_uploads(tmp_path, host):
    src = make_tar(tmp_path / 'v1.tar', [('file', 'VERSION', 'v1')])
    result = run_action(host, dict(root=str(tmp_path / 'app'), release='v1', src=src), transport='local', become=object())
    assert result['created'] and host.transfers == [src] and host.calls[0]['_probe']


def test_a_rebuilt_archive_under_the_same_id_is_a_noop_without_upload(tmp_path, host):
    tree = make_tree(tmp_path / 'tree', {'VERSION': 'v1', 'bin/run': 'run'})

    def build(name, mtime):
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode='w') as tar:
            tar.add(tree, arcname='.')
        path = tmp_path / name
        with open(str(path), 'wb') as handle:
            with gzip.GzipFile(fileobj=handle, mode='wb', mtime=mtime) as packed:
                packed.write(raw.getvalue())
        return str(path)

    first, rebuilt = build('first.tar.gz', 1), build('rebuilt.tar.gz', 2)
    assert file_checksum(first) != file_checksum(rebuilt)
    args = dict(root=str(tmp_path / 'app'), release='v1', state='active', lock_owner='run-1', unlock=True)
    assert run_action(host, dict(args, src=first))['created']
    result = run_action(host, dict(args, src=rebuilt))
    assert not result.get('failed'), result
    assert not result['changed'] and result['current'] == 'v1' and host.transfers == [first]
    assert result['content'] == tree_checksum(tree) and 'needs_content' not in result


def test_the_lock_records_the_controller_run(tmp_path, host):
    src = make_tar(tmp_path / 'v1.tar', [('file', 'VERSION', 'v1')])
    run_action(host, dict(root=str(tmp_path / 'app'), release='v1', src=src, state='active', lock_owner='run-1'))
    holder = json.load(open(str(tmp_path / 'app' / '.redbutton' / 'lock')))
    assert holder['owner'] == 'run-1' and holder['controller']['pid'] == os.getppid()


def test_a_subclass_runs_its_own_module(tmp_path, host):
    class Other(ActionModule):
        MODULE = 'redbutton.deploy.other'

    names = []
    action = make_action(host, dict(root=str(tmp_path / 'app'), release='v1', state='active'))
    action.__class__ = Other
    action._execute_module = lambda **kwargs: names.append(kwargs['module_name']) or {'changed': False}
    action.run(task_vars={})
    assert names == ['redbutton.deploy.other']
