# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The release engine (_release.ReleaseManager): staging, switching, previous, pruning,
immutability, shared paths, the lock options, check mode and diff mode."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import time

import pytest

from ansible_collections.redbutton.deploy.plugins.module_utils import _archive
from ansible_collections.redbutton.deploy.plugins.module_utils._archive import file_checksum, tree_checksum
from ansible_collections.redbutton.deploy.plugins.module_utils._common import RedbuttonError
from ansible_collections.redbutton.deploy.plugins.module_utils._ledger import ledger_path
from ansible_collections.redbutton.deploy.plugins.module_utils._lock import DeployLock, lock_path
from ansible_collections.redbutton.deploy.plugins.module_utils._release import (
    RELEASE_ARGUMENT_SPEC,
    ReleaseInfo,
    ReleaseManager,
)

from .test_archive import MALICIOUS_IDS, make_tar, make_tree, make_zip, malicious_artifacts


def params(root, **kwargs):
    result = dict((name, spec.get('default')) for name, spec in RELEASE_ARGUMENT_SPEC.items())
    result['shared_paths'] = []
    result['root'] = str(root)
    result.update(kwargs)
    return result


def run(root, check_mode=False, diff=False, warnings=None, **kwargs):
    manager = ReleaseManager(params(root, **kwargs), check_mode=check_mode, diff=diff,
                             warn=warnings.append if warnings is not None else None)
    return manager.run()


def version_tar(tmp_path, version, extra=None):
    entries = [('file', 'VERSION', version + '\n')] + list(extra or [])
    return make_tar(tmp_path / ('%s.tar.gz' % version), entries, mode='w:gz')


def ledger(root):
    return json.load(open(ledger_path(str(root))))


def snapshot(root):
    """Everything under root: paths, link targets and file contents (the ledger included)."""
    result = {}
    for dirpath, dirnames, filenames in os.walk(str(root)):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, str(root))
            if os.path.islink(full):
                result[rel] = ('link', os.readlink(full))
            elif os.path.isdir(full):
                result[rel] = ('dir',)
            else:
                result[rel] = ('file', open(full, 'rb').read())
    return result


@pytest.fixture
def app(tmp_path):
    return tmp_path / 'app'


def deploy(app, tmp_path, version, **kwargs):
    kwargs.setdefault('state', 'active')
    return run(app, release=version, src=version_tar(tmp_path, version), **kwargs)


# staging ----------------------------------------------------------------------------------
@pytest.mark.parametrize('mode, suffix', [('w', '.tar'), ('w:gz', '.tar.gz'), ('w:gz', '.tgz'), ('w:xz', '.tar.xz'), ('w:bz2', '.tar.bz2')])
def test_stage_tar_flavours_record_checksum_and_status(app, tmp_path, mode, suffix):
    src = make_tar(tmp_path / ('v1' + suffix), [('file', 'VERSION', 'v1')], mode=mode)
    result = run(app, release='v1', src=src, state='staged', actor='alice')
    assert result['changed'] and result['created']
    assert (app / 'releases' / 'v1' / 'VERSION').read_text() == 'v1'
    entry = ledger(app)['releases']['v1']
    assert entry['status'] == 'staged' and entry['checksum'] == file_checksum(src)
    assert entry['by'] == 'alice' and entry['source'] == src
    assert result['checksum'] == file_checksum(src) and result['status'] == 'staged'
    assert result['current'] is None
    assert sorted(os.listdir(str(app / 'releases'))) == ['v1']


def test_stage_zip_and_directory(app, tmp_path):
    src_zip = make_zip(tmp_path / 'v1.zip', [('file', 'VERSION', 'v1'), ('symlink', 'V', 'VERSION')])
    run(app, release='v1', src=src_zip, state='staged')
    assert os.readlink(str(app / 'releases' / 'v1' / 'V')) == 'VERSION'
    src_dir = make_tree(tmp_path / 'v2', {'VERSION': 'v2', 'L': ('symlink', 'VERSION')})
    result = run(app, release='v2', src=src_dir, state='staged')
    assert (app / 'releases' / 'v2' / 'VERSION').read_text() == 'v2'
    assert os.readlink(str(app / 'releases' / 'v2' / 'L')) == 'VERSION'
    assert result['checksum'] == tree_checksum(src_dir)


def test_state_defaults_to_staged_with_src(app, tmp_path):
    result = run(app, release='v1', src=version_tar(tmp_path, 'v1'))
    assert result['created'] and result['current'] is None and result['status'] == 'staged'


def test_release_id_derived_from_checksum_is_the_same_everywhere(tmp_path):
    src = version_tar(tmp_path, 'v1')
    one = run(tmp_path / 'host1', src=src, state='staged')
    two = run(tmp_path / 'host2', src=src, state='staged')
    expected = 'sha256-' + tree_checksum(str(tmp_path / 'host1' / 'releases' / one['release']))[7:19]
    assert one['release'] == two['release'] == expected
    assert (tmp_path / 'host1' / 'releases' / expected / 'VERSION').exists()


@pytest.mark.parametrize('bad', ['../x', 'a/b', '', 'x' * 129, '.hidden', '-dash', 'sp ace'])
def test_bad_release_ids_are_refused_before_anything_happens(app, tmp_path, bad):
    with pytest.raises(RedbuttonError, match='release id .* is not valid'):
        run(app, release=bad, src=version_tar(tmp_path, 'v1'), state='staged')
    assert not app.exists()


def test_longest_valid_id_is_accepted(app, tmp_path):
    rid = 'a' * 128
    assert run(app, release=rid, src=version_tar(tmp_path, 'v1'), state='staged')['release'] == rid


def test_checksum_verified_before_extraction(app, tmp_path):
    src = version_tar(tmp_path, 'v1')
    good = file_checksum(src)
    assert run(app, release='v1', src=src, checksum=good, state='staged')['created']
    wrong = 'sha256:' + '0' * 64
    with pytest.raises(RedbuttonError) as caught:
        run(app, release='v2', src=src, checksum=wrong, state='staged')
    assert wrong in str(caught.value) and good in str(caught.value) and 'mismatch' in str(caught.value)
    assert sorted(os.listdir(str(app / 'releases'))) == ['v1']
    assert 'v2' not in ledger(app)['releases']


def test_tree_checksum_of_an_uploaded_archive_is_verified_after_extraction(app, tmp_path):
    src_dir = make_tree(tmp_path / 'tree', {'VERSION': 'v1'})
    packed = make_tar(tmp_path / 'packed.tar', [('file', 'VERSION', 'v1')])
    result = run(app, src=packed, checksum=tree_checksum(src_dir), _checksum_of='tree', state='staged', _source='/ctl/tree')
    assert result['checksum'] == tree_checksum(src_dir)
    assert result['release'] == 'sha256-' + tree_checksum(src_dir)[7:19]
    assert ledger(app)['releases'][result['release']]['source'] == '/ctl/tree'
    with pytest.raises(RedbuttonError, match='checksum mismatch'):
        run(app, release='other', src=packed, checksum='sha256:' + '1' * 64, _checksum_of='tree', state='staged')
    assert sorted(os.listdir(str(app / 'releases'))) == [result['release']]


@pytest.mark.parametrize('case', MALICIOUS_IDS)
def test_malicious_artifact_leaves_nothing_and_ledger_unchanged(app, tmp_path, case):
    deploy(app, tmp_path, 'v1', status='ok')
    before = snapshot(app)
    (tmp_path / 'evil').mkdir()
    artifacts = dict((name, (path, member)) for name, path, member in malicious_artifacts(tmp_path / 'evil'))
    path, member = artifacts[case]
    with pytest.raises(RedbuttonError) as caught:
        run(app, release='v2', src=path, state='active')
    assert repr(member) in str(caught.value)
    assert snapshot(app) == before  # no staging leftovers, ledger byte-identical, current unchanged
    assert not os.path.exists('/tmp/redbutton-evil-absolute') and not os.path.exists('/tmp/redbutton-evil-zip')
    assert not (tmp_path / 'evil-dotdot').exists()


def test_malicious_directory_src_leaves_nothing(app, tmp_path):
    deploy(app, tmp_path, 'v1')
    before = snapshot(app)
    src = make_tree(tmp_path / 'evil', {'ok': 'x', 'escape': ('symlink', '../../../../etc/passwd')})
    with pytest.raises(RedbuttonError, match="'escape'"):
        run(app, release='v2', src=src, state='staged')
    assert snapshot(app) == before


def test_failure_during_extraction_removes_the_staging_dir(app, tmp_path, monkeypatch):
    deploy(app, tmp_path, 'v1')
    before = snapshot(app)

    def broken(self, dest):
        with open(os.path.join(dest, 'half'), 'w') as handle:
            handle.write('half written')
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(_archive.TarSource, 'extract', broken)
    with pytest.raises(RedbuttonError, match='No space left on device'):
        run(app, release='v2', src=version_tar(tmp_path, 'v2'), state='staged')
    assert snapshot(app) == before


# immutability -----------------------------------------------------------------------------
def test_restaging_identical_content_is_a_noop_without_extraction(app, tmp_path, monkeypatch):
    src = version_tar(tmp_path, 'v1')
    run(app, release='v1', src=src, state='staged')
    before = snapshot(app)

    def never(self, dest):
        raise AssertionError('extracted again')

    monkeypatch.setattr(_archive.TarSource, 'extract', never)
    result = run(app, release='v1', src=src, state='staged')
    assert not result['changed'] and not result['created']
    assert snapshot(app) == before


def test_restaging_different_content_fails_naming_both_checksums(app, tmp_path):
    first = version_tar(tmp_path, 'v1')
    run(app, release='v1', src=first, state='staged')
    before = snapshot(app)
    other = make_tar(tmp_path / 'other.tar', [('file', 'VERSION', 'changed')])
    with pytest.raises(RedbuttonError) as caught:
        run(app, release='v1', src=other, state='staged')
    assert file_checksum(first) in str(caught.value) and file_checksum(other) in str(caught.value)
    assert 'immutable' in str(caught.value)
    assert snapshot(app) == before


def test_force_replaces_a_non_current_release(app, tmp_path):
    run(app, release='v1', src=version_tar(tmp_path, 'v1'), state='staged')
    other = make_tar(tmp_path / 'other.tar', [('file', 'VERSION', 'changed')])
    result = run(app, release='v1', src=other, state='staged', force=True)
    assert result['changed'] and result['created']
    assert (app / 'releases' / 'v1' / 'VERSION').read_text() == 'changed'
    assert ledger(app)['releases']['v1']['checksum'] == file_checksum(other)
    assert sorted(os.listdir(str(app / 'releases'))) == ['v1']


def test_force_never_replaces_the_current_release(app, tmp_path):
    deploy(app, tmp_path, 'v1')
    before = snapshot(app)
    other = make_tar(tmp_path / 'other.tar', [('file', 'VERSION', 'changed')])
    with pytest.raises(RedbuttonError, match='while it is current'):
        run(app, release='v1', src=other, state='staged', force=True)
    assert snapshot(app) == before


def test_unknown_directory_under_releases_needs_force(app, tmp_path):
    (app / 'releases' / 'v1').mkdir(parents=True)
    (app / 'releases' / 'v1' / 'junk').write_text('hand made')
    with pytest.raises(RedbuttonError, match='ledger does not know it'):
        run(app, release='v1', src=version_tar(tmp_path, 'v1'), state='staged')
    assert (app / 'releases' / 'v1' / 'junk').exists()
    run(app, release='v1', src=version_tar(tmp_path, 'v1'), state='staged', force=True)
    assert sorted(os.listdir(str(app / 'releases' / 'v1'))) == ['VERSION']


def test_staging_without_src_names_the_missing_release(app):
    with pytest.raises(RedbuttonError, match='release v7 is not staged .* give src'):
        run(app, release='v7', state='active')


# shared paths -----------------------------------------------------------------------------
def test_shared_path_seeded_from_the_artifact_then_linked(app, tmp_path):
    src = version_tar(tmp_path, 'v1', extra=[('dir', 'data', None), ('file', 'data/seed.db', 'seed')])
    run(app, release='v1', src=src, state='active', shared_paths=['data', 'var/log'])
    link = app / 'releases' / 'v1' / 'data'
    assert os.readlink(str(link)) == '../../shared/data'
    assert (app / 'shared' / 'data' / 'seed.db').read_text() == 'seed'
    assert (app / 'current' / 'data' / 'seed.db').read_text() == 'seed'
    log = app / 'releases' / 'v1' / 'var' / 'log'
    assert os.readlink(str(log)) == '../../../shared/var/log'
    assert (app / 'shared' / 'var' / 'log').is_dir() and os.listdir(str(app / 'shared' / 'var' / 'log')) == []


def test_shared_data_is_never_overwritten(app, tmp_path):
    (app / 'shared' / 'data').mkdir(parents=True)
    (app / 'shared' / 'data' / 'seed.db').write_text('production rows')
    src = version_tar(tmp_path, 'v2', extra=[('dir', 'data', None), ('file', 'data/seed.db', 'empty seed'),
                                             ('file', 'data/new', 'n')])
    run(app, release='v2', src=src, state='staged', shared_paths=['data'])
    assert (app / 'shared' / 'data' / 'seed.db').read_text() == 'production rows'
    assert not (app / 'shared' / 'data' / 'new').exists()
    assert (app / 'releases' / 'v2' / 'data' / 'seed.db').read_text() == 'production rows'


def test_removing_a_release_never_touches_shared(app, tmp_path):
    deploy(app, tmp_path, 'v1', shared_paths=['data'])
    (app / 'shared' / 'data' / 'rows').write_text('keep me')
    deploy(app, tmp_path, 'v2', shared_paths=['data'])
    deploy(app, tmp_path, 'v3', shared_paths=['data'])
    run(app, release='v1', state='absent')
    assert not (app / 'releases' / 'v1').exists()
    assert (app / 'shared' / 'data' / 'rows').read_text() == 'keep me'


@pytest.mark.parametrize('bad', ['/abs', '../up', 'a/../../b', '', '.'])
def test_bad_shared_paths_are_refused(app, tmp_path, bad):
    with pytest.raises(RedbuttonError, match='shared_paths entry'):
        run(app, release='v1', src=version_tar(tmp_path, 'v1'), state='staged', shared_paths=[bad])
    assert not app.exists()


def test_shared_path_through_an_artifact_symlink_is_refused(app, tmp_path):
    src = version_tar(tmp_path, 'v1', extra=[('dir', 'real', None), ('symlink', 'var', 'real')])
    with pytest.raises(RedbuttonError, match="shared path 'var/log' cannot be linked"):
        run(app, release='v1', src=src, state='staged', shared_paths=['var/log'])
    assert os.listdir(str(app / 'releases')) == []
    assert not os.path.exists(ledger_path(str(app)))


# switching --------------------------------------------------------------------------------
def test_activate_switches_current_with_a_relative_symlink(app, tmp_path):
    result = deploy(app, tmp_path, 'v1', actor='alice', reason='rollout')
    assert os.readlink(str(app / 'current')) == 'releases/v1'
    assert (app / 'current' / 'VERSION').read_text() == 'v1\n'
    assert result['current'] == 'v1' and result['current_before'] is None and result['status'] == 'active'
    data = ledger(app)
    assert data['current'] == 'v1' and data['releases']['v1']['activated_seq'] == data['seq']
    assert data['last_switch']['to'] == 'v1' and data['last_switch']['reason'] == 'rollout'
    assert [name for name in os.listdir(str(app)) if name.startswith('current.tmp')] == []


def test_activating_the_current_release_is_a_noop(app, tmp_path):
    deploy(app, tmp_path, 'v1', status='ok')
    before = snapshot(app)
    result = run(app, release='v1', state='active')
    assert not result['changed'] and result['up_to_date']
    assert snapshot(app) == before


def test_previous_status_marks_the_release_switched_away_from(app, tmp_path):
    deploy(app, tmp_path, 'v1', status='ok')
    deploy(app, tmp_path, 'v2')
    result = run(app, release='previous', state='active', previous_status='rolled_back', reason='rollback')
    assert result['release'] == 'v1' and result['current'] == 'v1' and result['current_before'] == 'v2'
    data = ledger(app)
    assert data['releases']['v2']['status'] == 'rolled_back'
    assert data['last_switch'] == dict(data['last_switch'], **{'from': 'v2', 'to': 'v1', 'reason': 'rollback'})
    assert result['previous'] is None  # v2 is rolled_back, nothing else was active


def test_failed_release_is_not_activated_without_force(app, tmp_path):
    deploy(app, tmp_path, 'v1', status='ok')
    deploy(app, tmp_path, 'v2')
    run(app, release='v1', state='active', previous_status='failed')
    with pytest.raises(RedbuttonError, match='release v2 is marked failed'):
        run(app, release='v2', state='active')
    assert os.readlink(str(app / 'current')) == 'releases/v1'
    assert run(app, release='v2', state='active', force=True)['current'] == 'v2'


def test_rolled_back_release_can_be_rolled_out_again(app, tmp_path):
    deploy(app, tmp_path, 'v1', status='ok')
    deploy(app, tmp_path, 'v2')
    run(app, release='previous', state='active', previous_status='rolled_back')
    result = deploy(app, tmp_path, 'v2')
    assert result['current'] == 'v2' and not result['created'] and result['previous'] == 'v1'


def test_current_that_is_a_directory_is_refused(app, tmp_path):
    (app / 'current').mkdir(parents=True)
    with pytest.raises(RedbuttonError, match='current exists and is not a symlink'):
        deploy(app, tmp_path, 'v1')
    assert (app / 'current').is_dir() and not (app / 'releases').exists()


# previous ---------------------------------------------------------------------------------
def test_previous_follows_the_ledger_not_names_or_mtimes(app, tmp_path):
    for name in ('a', 'b', 'c', 'd'):
        run(app, release=name, src=version_tar(tmp_path, name), state='staged')
    for name in ('a', 'd', 'b', 'c'):
        run(app, release=name, state='active', status='ok')
    # mtimes and names both point elsewhere: 'a' newest on disk, 'd' last by name.
    for age, name in enumerate(('b', 'c', 'd', 'a')):
        os.utime(str(app / 'releases' / name), (1000000 + age * 1000, 1000000 + age * 1000))
    result = run(app, release='previous', state='active')
    assert result['release'] == 'b'
    info = ReleaseInfo(str(app)).run()
    assert info['current'] == 'b' and info['previous'] == 'c'


def test_previous_skips_failed_rolled_back_and_missing(app, tmp_path):
    for name in ('v1', 'v2', 'v3', 'v4'):
        deploy(app, tmp_path, name, status='ok')
    run(app, release='v3', status='failed')
    run(app, release='v2', status='rolled_back')
    assert run(app)['previous'] == 'v1'


def test_previous_without_target_lists_the_releases(app, tmp_path):
    deploy(app, tmp_path, 'v1', status='ok')
    run(app, release='v2', src=version_tar(tmp_path, 'v2'), state='staged')
    with pytest.raises(RedbuttonError) as caught:
        run(app, release='previous', state='active')
    assert 'v1 (ok)' in str(caught.value) and 'v2 (staged)' in str(caught.value)
    assert os.readlink(str(app / 'current')) == 'releases/v1'


def three_releases_rolled_back_once(app, tmp_path):
    """v1, v2, v3 all ok, then one rollback (v3 -> v2, v2 verified ok) as the rollback role does it."""
    for name in ('v1', 'v2', 'v3'):
        deploy(app, tmp_path, name, status='ok')
    return run(app, release='previous', once=True, state='active', previous_status='rolled_back', reason='rollback',
               status='ok')


def test_once_rolls_back_when_the_last_switch_was_a_rollout(app, tmp_path):
    first = three_releases_rolled_back_once(app, tmp_path)
    assert first['changed'] and first['release'] == 'v2' and first['current_before'] == 'v3'
    assert first['last_switch'] == dict(first['last_switch'], **{'from': 'v3', 'to': 'v2', 'reason': 'rollback'})


@pytest.mark.parametrize('check_mode', [False, True])
def test_once_stays_after_a_rollback(app, tmp_path, check_mode):
    three_releases_rolled_back_once(app, tmp_path)
    before = snapshot(app)
    again = run(app, check_mode=check_mode, release='previous', once=True, state='active',
                previous_status='rolled_back', reason='rollback', status='ok')
    assert not again['changed'] and again['up_to_date']
    assert again['release'] == 'v2' and again['current'] == again['current_before'] == 'v2'
    assert again['previous'] == 'v1'
    assert snapshot(app) == before  # no ledger event, v2 not marked rolled_back


def test_once_stays_after_an_automatic_rollback_even_when_not_ok(app, tmp_path):
    deploy(app, tmp_path, 'v1', status='ok')
    deploy(app, tmp_path, 'v2')
    run(app, release='v1', state='active', previous_status='failed', reason='auto_rollback')
    run(app, release='v1', status='failed')  # say its verification failed afterwards: still no further back
    deploy(app, tmp_path, 'v0', state='staged')
    result = run(app, release='previous', once=True, state='active', previous_status='rolled_back', reason='rollback')
    assert result['release'] == 'v1' and not result['up_to_date'] and result['current'] == 'v1'


def test_without_once_previous_goes_further_back(app, tmp_path):
    three_releases_rolled_back_once(app, tmp_path)
    result = run(app, release='previous', state='active', previous_status='rolled_back', reason='rollback')
    assert result['changed'] and result['release'] == 'v1' and result['current'] == 'v1'
    assert ledger(app)['releases']['v2']['status'] == 'rolled_back'


def test_once_ignores_a_rollback_that_is_no_longer_current(app, tmp_path):
    three_releases_rolled_back_once(app, tmp_path)
    run(app, release='v3', state='active', reason='rollout', status='ok')  # rolled out again by hand
    result = run(app, release='previous', once=True, state='active', previous_status='rolled_back', reason='rollback')
    assert result['changed'] and result['release'] == 'v2' and result['current'] == 'v2'


def test_once_follows_the_current_symlink_not_the_ledger_record(app, tmp_path):
    three_releases_rolled_back_once(app, tmp_path)
    os.unlink(str(app / 'current'))
    os.symlink('releases/v3', str(app / 'current'))  # someone switched by hand, the ledger still says v2
    result = run(app, release='previous', once=True, state='active', reason='rollback')
    assert result['changed'] and result['current_before'] == 'v3' and result['release'] == 'v2'


def test_once_is_ignored_for_a_named_release(app, tmp_path):
    three_releases_rolled_back_once(app, tmp_path)
    result = run(app, release='v1', once=True, state='active', reason='rollback')
    assert result['changed'] and result['current'] == 'v1'


# removal and pruning ----------------------------------------------------------------------
def test_absent_refuses_current_and_previous_and_removes_others(app, tmp_path):
    for name in ('v1', 'v2', 'v3'):
        deploy(app, tmp_path, name, status='ok')
    with pytest.raises(RedbuttonError, match='refusing to remove release v3: it is the current release'):
        run(app, release='v3', state='absent')
    with pytest.raises(RedbuttonError, match='refusing to remove release v2: it is the rollback target'):
        run(app, release='v2', state='absent')
    result = run(app, release='v1', state='absent')
    assert result['changed'] and not (app / 'releases' / 'v1').exists()
    assert 'v1' not in ledger(app)['releases']
    assert not run(app, release='v1', state='absent')['changed']


def test_keep_prunes_oldest_but_never_current_previous_or_staging(app, tmp_path):
    for name in ('v1', 'v2', 'v3', 'v4', 'v5'):
        deploy(app, tmp_path, name, status='ok')
    run(app, release='v4', status='failed')  # previous becomes v3
    staging = app / 'releases' / '.staging-v6-abc123'
    staging.mkdir()
    result = run(app, keep=1)
    assert sorted(result['pruned']) == ['v1', 'v2', 'v4']
    assert sorted(os.listdir(str(app / 'releases'))) == ['.staging-v6-abc123', 'v3', 'v5']
    assert sorted(ledger(app)['releases']) == ['v3', 'v5']
    assert result['previous'] == 'v3' and result['current'] == 'v5'


def test_keep_counts_by_ledger_recency_and_keeps_the_release_of_the_call(app, tmp_path):
    for name in ('v1', 'v2', 'v3'):
        deploy(app, tmp_path, name, status='ok')
    result = run(app, release='v9', src=version_tar(tmp_path, 'v9'), state='staged', keep=2)
    assert result['pruned'] == ['v1']
    assert sorted(os.listdir(str(app / 'releases'))) == ['v2', 'v3', 'v9']


# status, metadata, up_to_date --------------------------------------------------------------
def test_status_is_applied_after_state(app, tmp_path):
    result = deploy(app, tmp_path, 'v1', status='ok')
    assert result['status'] == 'ok' and ledger(app)['releases']['v1']['status'] == 'ok'
    again = run(app, release='v1', status='ok')
    assert not again['changed']


def test_status_of_unknown_release_is_an_error(app, tmp_path):
    deploy(app, tmp_path, 'v1')
    with pytest.raises(RedbuttonError, match='cannot mark release v9 ok'):
        run(app, release='v9', status='ok')


def test_metadata_is_merged(app, tmp_path):
    deploy(app, tmp_path, 'v1', metadata={'schema_version': 2})
    run(app, release='v1', metadata={'migrations': ['001']})
    assert ledger(app)['releases']['v1']['metadata'] == {'schema_version': 2, 'migrations': ['001']}
    assert not run(app, release='v1', metadata={'schema_version': 2})['changed']


def test_up_to_date_only_when_current_ok_and_identical(app, tmp_path):
    src = version_tar(tmp_path, 'v1')
    first = run(app, release='v1', src=src, state='active')
    assert not first['up_to_date']
    assert not run(app, release='v1', src=src, state='active')['up_to_date']  # active, not yet ok
    run(app, release='v1', status='ok')
    assert run(app, release='v1', src=src, state='active')['up_to_date']


def test_ledger_follows_a_hand_switched_current(app, tmp_path):
    deploy(app, tmp_path, 'v1')
    deploy(app, tmp_path, 'v2')
    os.unlink(str(app / 'current'))
    os.symlink('releases/v1', str(app / 'current'))
    result = run(app)
    assert result['current'] == 'v1' and ledger(app)['current'] == 'v1'


# corrupt ledger ----------------------------------------------------------------------------
@pytest.mark.parametrize('content', [b'{"schema": 1,', json.dumps({'schema': 99, 'seq': 0, 'releases': {}, 'events': []}).encode()])
def test_corrupt_or_unknown_ledger_stops_everything(app, tmp_path, content):
    os.makedirs(os.path.dirname(ledger_path(str(app))))
    with open(ledger_path(str(app)), 'wb') as handle:
        handle.write(content)
    with pytest.raises(RedbuttonError, match='left untouched'):
        deploy(app, tmp_path, 'v1', lock_owner='run')
    assert open(ledger_path(str(app)), 'rb').read() == content
    assert not (app / 'releases').exists() and not (app / 'current').exists()
    assert not os.path.exists(lock_path(str(app)))


# lock options -------------------------------------------------------------------------------
def test_lock_taken_and_released_in_the_same_call(app, tmp_path):
    result = deploy(app, tmp_path, 'v1', lock_owner='run-1')
    assert result['locked'] and json.load(open(lock_path(str(app))))['owner'] == 'run-1'
    result = run(app, release='v1', status='ok', lock_owner='run-1', unlock=True)
    assert not result['locked'] and not os.path.exists(lock_path(str(app)))


def test_lock_held_by_another_owner_stops_the_call(app, tmp_path):
    DeployLock(str(app)).acquire('someone-else')
    with pytest.raises(RedbuttonError, match="held by owner 'someone-else'"):
        deploy(app, tmp_path, 'v1', lock_owner='run-1', lock_timeout=0.3)
    assert not (app / 'releases').exists() and not os.path.exists(ledger_path(str(app)))


def test_unlock_if_current_releases_only_when_up_to_date(app, tmp_path):
    src = version_tar(tmp_path, 'v1')
    result = run(app, release='v1', src=src, state='staged', lock_owner='run-1', unlock_if_current=True)
    assert result['locked'] and os.path.exists(lock_path(str(app)))
    run(app, release='v1', state='active', status='ok', lock_owner='run-1', unlock=True)
    result = run(app, release='v1', src=src, state='staged', lock_owner='run-2', unlock_if_current=True)
    assert result['up_to_date'] and not result['locked'] and not os.path.exists(lock_path(str(app)))
    assert not result['changed']  # took a free lock and let it go: the host is as it was


def test_lock_counts_as_a_change_only_when_the_holder_changes(app, tmp_path):
    deploy(app, tmp_path, 'v1', status='ok')
    assert run(app, lock_owner='run-1')['changed']  # taken
    assert not run(app, lock_owner='run-1')['changed']  # re-entered
    assert run(app, lock_owner='run-1', unlock=True)['changed']  # released
    assert not run(app, lock_owner='run-1', unlock=True)['changed']  # free before and after
    assert not run(app, lock_owner='run-1', unlock=True, check_mode=True)['changed']


def test_unlock_happens_even_when_the_call_fails(app, tmp_path):
    deploy(app, tmp_path, 'v1')
    with pytest.raises(RedbuttonError):
        run(app, release='v1', state='absent', lock_owner='run-1', unlock=True)
    assert not os.path.exists(lock_path(str(app)))


def test_unlock_needs_lock_owner(app):
    with pytest.raises(RedbuttonError, match='need lock_owner'):
        run(app, unlock=True)


# check mode and diff -------------------------------------------------------------------------
KEYS = ('changed', 'release', 'current', 'current_before', 'previous', 'status', 'checksum', 'created', 'up_to_date', 'pruned')


def answer(result):
    summary = dict((key, result[key]) for key in KEYS)
    summary['releases'] = [(item['id'], item['status'], item['present']) for item in result['releases']]
    return summary


def test_check_mode_predicts_the_real_run_and_changes_nothing(app, tmp_path):
    deploy(app, tmp_path, 'v1', status='ok')
    deploy(app, tmp_path, 'v2', status='ok')
    before = snapshot(app)
    kwargs = dict(release='v3', src=version_tar(tmp_path, 'v3'), state='active', previous_status='ok', keep=2,
                  lock_owner='run-1', shared_paths=['data'])
    predicted = run(app, check_mode=True, **kwargs)
    assert snapshot(app) == before
    real = run(app, **kwargs)
    assert answer(predicted) == answer(real)
    assert predicted['changed'] and predicted['created'] and predicted['pruned'] == ['v1']
    assert predicted['current'] == 'v3' and predicted['previous'] == 'v2'
    # and the second pass of the four-run pattern: nothing to do, in check mode and for real
    again_check = run(app, check_mode=True, **kwargs)
    again = run(app, **kwargs)
    assert not again_check['changed'] and not again['changed']


def test_check_mode_on_an_empty_host_creates_nothing(tmp_path):
    app = tmp_path / 'fresh'
    result = run(app, check_mode=True, release='v1', src=version_tar(tmp_path, 'v1'), state='active', lock_owner='x')
    assert result['changed'] and result['current'] == 'v1'
    assert not app.exists()


def test_check_mode_still_refuses_malicious_archives(app, tmp_path):
    path = make_tar(tmp_path / 'evil.tar', [('file', '../x', 'x')])
    with pytest.raises(RedbuttonError, match="'../x'"):
        run(app, check_mode=True, release='v1', src=path, state='staged')


def test_diff_shows_current_and_release_statuses(app, tmp_path):
    deploy(app, tmp_path, 'v1', status='ok')
    result = run(app, diff=True, release='v2', src=version_tar(tmp_path, 'v2'), state='active')
    assert result['diff']['before'] == {'current': 'v1', 'releases': {'v1': 'ok'}}
    assert result['diff']['after'] == {'current': 'v2', 'releases': {'v1': 'ok', 'v2': 'active'}}
    assert 'diff' not in run(app, release='v2', state='active')


# probe (the action plugin's first question) -----------------------------------------------
def test_probe_answers_needs_src_without_side_effects(app, tmp_path):
    src = version_tar(tmp_path, 'v1')
    result = run(app, release='v1', checksum=file_checksum(src), state='active', _probe=True, lock_owner='run-1')
    assert result['needs_src'] and not result['changed']
    assert not app.exists()


def test_probe_does_the_work_when_content_is_already_staged(app, tmp_path):
    src = version_tar(tmp_path, 'v1')
    run(app, release='v1', src=src, state='staged')
    result = run(app, release='v1', checksum=file_checksum(src), state='active', _probe=True)
    assert 'needs_src' not in result and result['current'] == 'v1' and result['changed']


def test_probe_with_other_content_under_the_same_id_fails(app, tmp_path):
    run(app, release='v1', src=version_tar(tmp_path, 'v1'), state='staged')
    # Other bytes under the same id: only the content digest can tell, so the probe asks for it.
    answer = run(app, release='v1', checksum='sha256:' + '2' * 64, state='staged', _probe=True)
    assert answer['needs_src'] and answer['needs_content'] and not answer['changed']
    with pytest.raises(RedbuttonError, match='immutable'):
        run(app, release='v1', checksum='sha256:' + '2' * 64, _content='sha256:' + '3' * 64, state='staged', _probe=True)


# release_info ------------------------------------------------------------------------------
def test_release_info_on_a_bare_host_is_empty(tmp_path):
    info = ReleaseInfo(str(tmp_path / 'nothing')).run()
    assert info == dict(info, current=None, previous=None, releases=[], events=[], last_switch=None, lock=None, exists=False)


def test_release_info_reports_releases_events_and_lock(app, tmp_path):
    deploy(app, tmp_path, 'v1', status='ok')
    deploy(app, tmp_path, 'v2', lock_owner='run-9')
    info = ReleaseInfo(str(app), events=2).run()
    assert info['current'] == 'v2' and info['previous'] == 'v1'
    assert [(item['id'], item['status'], item['current']) for item in info['releases']] == [('v1', 'ok', False), ('v2', 'active', True)]
    assert len(info['events']) == 2 and info['events'][-1]['event'] == 'activated'
    assert info['lock']['owner'] == 'run-9'
    assert info['last_switch']['to'] == 'v2'
    assert ReleaseInfo(str(app), events=0).run()['events'] == []
    with pytest.raises(RedbuttonError, match='events -1 is not valid'):
        ReleaseInfo(str(app), events=-1).run()


def test_release_info_reports_a_damaged_lock_instead_of_failing(app, tmp_path):
    deploy(app, tmp_path, 'v1')
    with open(lock_path(str(app)), 'w') as handle:
        handle.write('garbage')
    info = ReleaseInfo(str(app)).run()
    assert info['current'] == 'v1' and 'is not a redbutton lock' in info['lock']['error']


def test_leftovers_of_killed_runs_are_swept_under_the_lock(app, tmp_path):
    """A .staging- directory (killed while extracting) and a .trash- one (killed while pruning), an hour old, are removed
    by the next call that holds the deploy lock; newer ones (a call extracting without the lock) and other names stay."""
    run(app, release='v1', src=version_tar(tmp_path, 'v1'), state='active', lock_owner='run-1', unlock=True)
    releases = app / 'releases'
    names = ['.staging-v2-abc', '.trash-v0-1234', '.staging-v3-new', 'notes']
    for name in names:
        (releases / name).mkdir()
        (releases / name / 'file').write_text('x' * 4096)
    for name in names[:2] + names[3:]:
        os.utime(str(releases / name), (time.time() - 7200, time.time() - 7200))
    run(app, release='v2', src=version_tar(tmp_path, 'v2'), state='active')  # no lock: nothing swept
    assert all((releases / name).exists() for name in names)
    run(app, release='v3', src=version_tar(tmp_path, 'v3'), state='active', lock_owner='run-2', unlock=True)
    assert sorted(os.listdir(str(releases))) == ['.staging-v3-new', 'notes', 'v1', 'v2', 'v3']
