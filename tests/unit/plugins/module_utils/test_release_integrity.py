# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The release engine's integrity: damaged archives never stage, identity by content, ids of any
valid length with their baselines, baselines pruned with their releases, errors that name the step
and the path, and every write interrupted by ENOSPC leaves the old state or the new one."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import tarfile

import pytest

from ansible_collections.redbutton.deploy.plugins.module_utils import _common
from ansible_collections.redbutton.deploy.plugins.module_utils._archive import file_checksum, tree_checksum
from ansible_collections.redbutton.deploy.plugins.module_utils._baseline import Baseline, baseline_path
from ansible_collections.redbutton.deploy.plugins.module_utils._common import RedbuttonError
from ansible_collections.redbutton.deploy.plugins.module_utils._ledger import ledger_path
from ansible_collections.redbutton.deploy.plugins.module_utils._release import ReleaseManager

from .test_archive_integrity import cut, damage, make_app_tree, pack, zip_tree
from .test_release import params, snapshot


def run(root, check_mode=False, **kwargs):
    return ReleaseManager(params(root, **kwargs), check_mode=check_mode).run()


def ledger_bytes(root):
    path = ledger_path(str(root))
    return open(path, 'rb').read() if os.path.exists(path) else None


@pytest.fixture
def app(tmp_path):
    return tmp_path / 'app'


@pytest.fixture
def tree(tmp_path):
    return make_app_tree(tmp_path / 'tree')


@pytest.fixture
def deployed(app, tmp_path):
    """v0 current and ok, so a refusal has a ledger and a releases/ to leave alone."""
    v0 = make_app_tree(tmp_path / 'v0tree', files=3)
    run(app, release='v0', src=pack(v0, tmp_path / 'v0.tar.gz'), state='active', status='ok')
    return app


# damaged archives never stage ---------------------------------------------------------------
def damaged_artifacts(tmp_path, tree):
    good_gz = pack(tree, tmp_path / 'good.tar.gz')
    good_tar = pack(tree, tmp_path / 'good.tar', mode='w')
    with tarfile.open(good_tar) as tar:
        middle = tar.getmembers()[len(tar.getmembers()) // 2]
    good_zip = zip_tree(tree, tmp_path / 'good.zip')
    return [
        ('flipped-64-bytes', damage(good_gz, tmp_path / 'flipped.tar.gz', os.path.getsize(good_gz) // 2), 'damaged'),
        ('no-gzip-trailer', cut(good_gz, tmp_path / 'cut.tar.gz', 8), 'cut short'),
        ('bad-header', damage(good_tar, tmp_path / 'header.tar', middle.offset + 100, 8), 'offset %d' % middle.offset),
        ('truncated-zip', cut(good_zip, tmp_path / 'cut.zip', os.path.getsize(good_zip) // 3), 'zip'),
    ]


@pytest.mark.parametrize('case', ['flipped-64-bytes', 'no-gzip-trailer', 'bad-header', 'truncated-zip'])
@pytest.mark.parametrize('release', ['v1', None])
def test_a_damaged_archive_is_refused_and_nothing_is_left(deployed, tmp_path, tree, case, release):
    path, fragment = [(p, f) for name, p, f in damaged_artifacts(tmp_path, tree) if name == case][0]
    before = snapshot(deployed)
    ledger_before = ledger_bytes(deployed)
    with pytest.raises(RedbuttonError) as caught:
        run(deployed, release=release, src=path, state='active')
    assert path in str(caught.value) and fragment in str(caught.value)
    assert sorted(os.listdir(str(deployed / 'releases'))) == ['v0']
    assert ledger_bytes(deployed) == ledger_before and snapshot(deployed) == before
    assert os.readlink(str(deployed / 'current')) == 'releases/v0'


def test_a_damaged_archive_is_refused_in_check_mode_too(deployed, tmp_path, tree):
    path = [p for name, p, f in damaged_artifacts(tmp_path, tree) if name == 'no-gzip-trailer'][0]
    with pytest.raises(RedbuttonError, match='cut short'):
        run(deployed, release='v1', src=path, state='active', check_mode=True)


# identity by content ------------------------------------------------------------------------
def test_the_ledger_records_the_content_beside_the_checksum(app, tmp_path, tree):
    src = pack(tree, tmp_path / 'a.tar.gz')
    result = run(app, release='v1', src=src, state='staged')
    entry = json.load(open(ledger_path(str(app))))['releases']['v1']
    assert entry['checksum'] == file_checksum(src) and entry['content'] == tree_checksum(tree)
    assert result['content'] == tree_checksum(tree) and result['checksum'] == file_checksum(src)


def test_a_rebuilt_archive_of_the_same_files_is_a_noop(app, tmp_path, tree):
    first = pack(tree, tmp_path / 'first.tar.gz', mtime=1000)
    rebuilt = pack(tree, tmp_path / 'rebuilt.tar.gz', mtime=2000)
    assert file_checksum(first) != file_checksum(rebuilt)
    run(app, release='v1', src=first, state='active', status='ok')
    before = snapshot(app)
    result = run(app, release='v1', src=rebuilt, state='active', status='ok')
    assert not result['changed'] and not result['created'] and result['up_to_date']
    assert snapshot(app) == before


def test_different_content_under_the_same_id_is_still_refused(app, tmp_path, tree):
    run(app, release='v1', src=pack(tree, tmp_path / 'first.tar.gz'), state='staged')
    with open(os.path.join(tree, 'VERSION'), 'w') as handle:
        handle.write('v2\n')
    before = snapshot(app)
    with pytest.raises(RedbuttonError, match='immutable'):
        run(app, release='v1', src=pack(tree, tmp_path / 'second.tar.gz'), state='staged')
    assert snapshot(app) == before


def test_force_replaces_by_content(app, tmp_path, tree):
    run(app, release='v1', src=pack(tree, tmp_path / 'first.tar.gz'), state='staged')
    with open(os.path.join(tree, 'VERSION'), 'w') as handle:
        handle.write('v2\n')
    result = run(app, release='v1', src=pack(tree, tmp_path / 'second.tar.gz'), state='staged', force=True)
    assert result['created'] and (app / 'releases' / 'v1' / 'VERSION').read_text() == 'v2\n'
    assert result['content'] == tree_checksum(tree)


def test_the_default_id_comes_from_the_content(app, tmp_path, tree):
    one = run(app, src=pack(tree, tmp_path / 'one.tar.gz', mtime=1), state='staged')
    assert one['release'] == 'sha256-' + tree_checksum(tree)[7:19] and one['created']
    two = run(app, src=pack(tree, tmp_path / 'two.tar.gz', mtime=2), state='staged')
    assert two['release'] == one['release'] and not two['changed'] and not two['created']
    three = run(app, src=zip_tree(tree, tmp_path / 'three.zip'), state='staged')
    four = run(app, src=tree, state='staged')
    assert three['release'] == four['release'] == one['release'] and not three['changed'] and not four['changed']
    assert os.listdir(str(app / 'releases')) == [one['release']]


def test_the_fast_path_does_not_read_the_members(app, tmp_path, tree, monkeypatch):
    src = pack(tree, tmp_path / 'a.tar.gz')
    run(app, src=src, state='staged')
    from ansible_collections.redbutton.deploy.plugins.module_utils import _archive

    def never(*args, **kwargs):
        raise AssertionError('members read on the fast path')

    monkeypatch.setattr(_archive.TarSource, '_walk', never)
    result = run(app, src=src, state='active')
    assert result['changed'] and result['current'] == result['release'] == 'sha256-' + tree_checksum(tree)[7:19]


def test_a_rebuilt_archive_under_a_known_id_is_read_once_without_writing(app, tmp_path, tree, monkeypatch):
    run(app, release='v1', src=pack(tree, tmp_path / 'a.tar.gz', mtime=1), state='staged')
    from ansible_collections.redbutton.deploy.plugins.module_utils import _archive

    def never(*args, **kwargs):
        raise AssertionError('extracted although the content is already staged')

    monkeypatch.setattr(_archive.TarSource, 'extract', never)
    result = run(app, release='v1', src=pack(tree, tmp_path / 'b.tar.gz', mtime=2), state='staged')
    assert not result['changed']


# ids of any valid length, baselines pruned with releases --------------------------------------
def test_the_longest_id_gets_its_baseline(app, tmp_path, tree):
    long_id = 'r' * 128
    run(app, release='v0', src=pack(tree, tmp_path / 'a.tar.gz'), state='active')
    path = baseline_path(str(app), 'before-' + long_id)
    Baseline(str(app), 'before-' + long_id).capture([{'name': 'app', 'path': str(app / 'current')}])
    assert os.path.exists(path)
    with open(os.path.join(tree, 'VERSION'), 'w') as handle:
        handle.write('v2\n')
    result = run(app, release=long_id, src=pack(tree, tmp_path / 'b.tar.gz'), state='active')
    assert result['current'] == long_id


@pytest.mark.parametrize('bad', ['../x', 'before-' + 'x' * 200, '.hidden', ''])
def test_bad_baseline_names_are_still_refused(app, bad):
    with pytest.raises(RedbuttonError, match='is not valid'):
        baseline_path(str(app), bad)


def test_fifteen_rollouts_with_keep_3_leave_only_the_baselines_of_kept_releases(app, tmp_path):
    tree = make_app_tree(tmp_path / 'small', files=2)
    directory = app / '.redbutton' / 'baselines'
    for number in range(1, 16):
        release = 'v%d' % number
        with open(os.path.join(tree, 'VERSION'), 'w') as handle:
            handle.write(release + '\n')
        src = pack(tree, tmp_path / (release + '.tar.gz'))
        run(app, release=release, src=src, state='staged')
        if number > 1:
            Baseline(str(app), 'before-' + release).capture([{'name': 'app', 'path': str(app / 'current')}])
            run(app, release=release, metadata={'baseline': 'before-' + release})
        run(app, release=release, state='active', status='ok', keep=3)
    kept = sorted(os.listdir(str(app / 'releases')))
    assert kept == ['v13', 'v14', 'v15']
    assert sorted(os.listdir(str(directory))) == ['before-v13.json', 'before-v14.json', 'before-v15.json']


def test_removing_a_release_removes_its_named_baseline_and_nothing_else(app, tmp_path):
    tree = make_app_tree(tmp_path / 'small', files=2)
    for release in ('v1', 'v2', 'v3', 'v4'):
        with open(os.path.join(tree, 'VERSION'), 'w') as handle:
            handle.write(release + '\n')
        run(app, release=release, src=pack(tree, tmp_path / (release + '.tar.gz')), state='active', status='ok')
    probes = [{'name': 'app', 'path': str(app / 'current')}]
    for name in ('custom-for-v1', 'before-v1', 'before-v1x', 'keep-me'):
        Baseline(str(app), name).capture(probes)
    run(app, release='v1', metadata={'baseline': 'custom-for-v1'})
    run(app, release='v1', state='absent')
    left = sorted(os.listdir(str(app / '.redbutton' / 'baselines')))
    assert left == ['before-v1x.json', 'keep-me.json']


# messages ------------------------------------------------------------------------------------
def test_previous_with_nothing_to_roll_back_to_says_so(app, tmp_path, tree):
    run(app, release='v1', src=pack(tree, tmp_path / 'a.tar.gz'), state='active', status='ok')
    with pytest.raises(RedbuttonError) as caught:
        run(app, release='previous', state='active')
    message = str(caught.value)
    assert message.startswith('nothing to roll back to') and 'v1 (current) is the only release' in message


def test_previous_on_an_empty_root_says_so(app):
    with pytest.raises(RedbuttonError) as caught:
        run(app, release='previous', state='active')
    assert 'nothing to roll back to' in str(caught.value) and 'no release is current' in str(caught.value)


@pytest.mark.skipif(os.geteuid() == 0, reason='root writes through permissions')
def test_a_read_only_root_names_the_step_the_path_and_the_fix(app, tmp_path, tree):
    app.mkdir()
    os.chmod(str(app), 0o555)
    try:
        with pytest.raises(RedbuttonError) as caught:
            run(app, release='v1', src=pack(tree, tmp_path / 'a.tar.gz'), state='active')
    finally:
        os.chmod(str(app), 0o755)
    message = str(caught.value)
    assert 'Errno' not in message and 'writable by' in message and str(app) in message


@pytest.mark.parametrize('error, point, fragment', [
    ('enospc', 'ledger', 'writing the ledger failed'),
    ('enospc', 'extract', 'staging the artifact'),
    ('eacces', 'current', 'switching current to release v1'),
    ('erofs', 'shared', 'linking shared paths'),
])
def test_an_os_error_names_the_step_and_what_to_do(app, tmp_path, tree, monkeypatch, error, point, fragment):
    monkeypatch.setenv('REDBUTTON_FAULT', '%s:%s' % (error, point))
    _common.reset_faults()
    with pytest.raises(RedbuttonError) as caught:
        run(app, release='v1', src=pack(tree, tmp_path / 'a.tar.gz'), state='active', shared_paths=['lib'])
    message = str(caught.value)
    assert fragment in message
    assert {'enospc': 'free space', 'eacces': 'writable by', 'erofs': 'read-only'}[error] in message
    assert '.tmp' not in message.split(' failed at ')[1].split(':')[0]


# ENOSPC at every write of a stage + activate ----------------------------------------------------
def state_of(root):
    """(current target, {release: status}, sorted releases/ entries): what a user depends on."""
    current = os.readlink(str(root / 'current')) if os.path.lexists(str(root / 'current')) else None
    data = json.load(open(ledger_path(str(root)))) if os.path.exists(ledger_path(str(root))) else {'releases': {}}
    statuses = dict((name, entry['status']) for name, entry in data['releases'].items())
    present = sorted(os.listdir(str(root / 'releases'))) if os.path.isdir(str(root / 'releases')) else []
    return current, statuses, present


def artifacts(tmp_path, tree):
    """v1 and v2 archives of the tree (with a data/ directory that seeds shared/data)."""
    os.makedirs(os.path.join(tree, 'data'))
    with open(os.path.join(tree, 'data', 'seed'), 'w') as handle:
        handle.write('seed\n')
    result = {}
    for version in ('v1', 'v2'):
        with open(os.path.join(tree, 'VERSION'), 'w') as handle:
            handle.write(version + '\n')
        result[version] = pack(tree, tmp_path / (version + '.tar.gz'))
    return result


def rollout(root, src, release='v2'):
    return run(root, release=release, src=src, state='active', previous_status='rolled_back', shared_paths=['data'],
               lock_owner='run-1', unlock=True, keep=1)


def test_enospc_at_every_write_leaves_the_old_state_or_the_new_one(tmp_path, monkeypatch):
    srcs = artifacts(tmp_path, make_app_tree(tmp_path / 'small', files=4))
    # Count the writes of one stage + activate + prune (labels in order).
    rollout(tmp_path / 'probe', srcs['v1'], release='v1')
    monkeypatch.setenv('REDBUTTON_FAULT', 'trace')
    _common.reset_faults()
    rollout(tmp_path / 'probe', srcs['v2'])
    points = list(_common.FAULT_TRACE)
    assert {'staging', 'extract', 'shared', 'release', 'ledger', 'current', 'remove', 'lock'} <= set(points), points
    old_state = ('releases/v1', {'v1': 'ok'}, ['v1'])
    staged_only = ('releases/v1', {'v1': 'ok', 'v2': 'staged'}, ['v1', 'v2'])
    switched = ('releases/v2', {'v1': 'rolled_back', 'v2': 'active'}, ['v1', 'v2'])  # not pruned yet
    new_state = ('releases/v2', {'v2': 'active'}, ['v2'])
    for number in range(1, len(points) + 1):
        root = tmp_path / ('root%d' % number)
        monkeypatch.delenv('REDBUTTON_FAULT', raising=False)
        rollout(root, srcs['v1'], release='v1')
        run(root, release='v1', status='ok')
        monkeypatch.setenv('REDBUTTON_FAULT', 'enospc:%d' % number)
        _common.reset_faults()
        where = (number, points[number - 1])
        with pytest.raises(RedbuttonError) as caught:
            rollout(root, srcs['v2'])
        assert 'free space' in str(caught.value) and 'Errno' not in str(caught.value), (where, str(caught.value))
        monkeypatch.delenv('REDBUTTON_FAULT', raising=False)
        assert state_of(root) in (old_state, staged_only, switched, new_state), where
        assert not [name for name in os.listdir(str(root / 'releases')) if name.startswith('.')], where
        assert (root / 'shared' / 'data' / 'seed').read_text() == 'seed\n', where
        assert (root / 'current' / 'VERSION').read_text() in ('v1\n', 'v2\n'), where
        # The same call, run again once there is space, finishes the job.
        result = rollout(root, srcs['v2'])
        assert state_of(root) == new_state and result['current'] == 'v2', where
        assert (root / 'current' / 'VERSION').read_text() == 'v2\n'
        assert os.readlink(str(root / 'current' / 'data')) == '../../shared/data'
        assert not os.path.exists(str(root / '.redbutton' / 'lock')), where


# a run killed between moving a release into place and recording it ------------------------
def test_an_unrecorded_release_left_by_a_killed_run_is_replaced_by_the_next_run(deployed, tmp_path, tree):
    src = pack(tree, tmp_path / 'v1.tar.gz')
    scratch = tmp_path / 'scratch'
    run(scratch, release='v1', src=src, state='staged')
    # What a SIGKILL right after the rename leaves: releases/v1 in place with its pending marker, and a
    # ledger that does not know v1 (the kill came before the ledger write).
    os.rename(str(scratch / 'releases' / 'v1'), str(deployed / 'releases' / 'v1'))
    open(str(deployed / 'releases' / '.pending-v1'), 'w').close()
    result = run(deployed, release='v1', src=src, state='staged')
    assert result['created'] and result['status'] == 'staged'
    entry = json.load(open(ledger_path(str(deployed))))['releases']['v1']
    assert entry['content'] == tree_checksum(tree)
    assert not os.path.exists(str(deployed / 'releases' / '.pending-v1'))
    assert sorted(n for n in os.listdir(str(deployed / 'releases')) if not n.startswith('.')) == ['v0', 'v1']


def test_an_unrecorded_release_without_the_marker_is_still_refused(deployed, tmp_path, tree):
    src = pack(tree, tmp_path / 'v1.tar.gz')
    os.makedirs(str(deployed / 'releases' / 'v1'))
    before = ledger_bytes(deployed)
    with pytest.raises(RedbuttonError, match='exists but the ledger does not know it'):
        run(deployed, release='v1', src=src, state='staged')
    assert ledger_bytes(deployed) == before and os.listdir(str(deployed / 'releases' / 'v1')) == []
