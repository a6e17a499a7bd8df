# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""File trees of the baseline module: globs, what a scan records, compare, hash reuse."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import grp
import hashlib
import os
import pwd
import re
import time

import pytest

from ansible_collections.redbutton.deploy.plugins.module_utils._baseline_tree import (
    CHUNK_SIZE, FileHasher, TreeError, TreeFilter, TreeScanner, compare_trees, glob_to_regex,
)


def write(path, data=b'x', mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as handle:
        handle.write(data)
    os.chmod(path, mode)
    return path


def sha(data):
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / 'releases' / 'v1'
    write(str(root / 'app.py'), b'print(1)\n')
    write(str(root / 'bin' / 'run'), b'#!/bin/sh\n', mode=0o755)
    write(str(root / 'lib' / 'util.py'), b'x = 1\n')
    write(str(root / 'lib' / 'deep' / 'mod.py'), b'y = 2\n')
    write(str(root / 'logs' / 'app.log'), b'started\n')
    write(str(tmp_path / 'shared' / 'data' / 'f.txt'), b'data\n')
    os.symlink('../../shared/data', str(root / 'data'))
    os.symlink('releases/v1', str(tmp_path / 'current'))
    return tmp_path


def scan(path, **kwargs):
    return TreeScanner(str(path), **kwargs).scan()


def matches(glob, path):
    return re.match(r'\A(?:%s)\Z' % glob_to_regex(glob), path) is not None


@pytest.mark.parametrize('glob, path, expected', [
    ('*.py', 'app.py', True),
    ('*.py', 'lib/deep/mod.py', True),          # no '/': any depth
    ('lib/*.py', 'lib/util.py', True),
    ('lib/*.py', 'lib/deep/mod.py', False),     # '*' does not cross '/'
    ('lib/**/*.py', 'lib/util.py', True),       # '**/' matches zero directories
    ('lib/**/*.py', 'lib/deep/mod.py', True),
    ('cache/**', 'cache/a/b', True),
    ('cache/**', 'cache', False),               # trailing '/**' is what is inside
    ('/app.py', 'app.py', True),
    ('/app.py', 'lib/app.py', False),           # leading '/' anchors
    ('?.py', 'a.py', True),
    ('?.py', 'ab.py', False),
    ('[!a]*.py', 'b.py', True),
    ('[!a]*.py', 'a.py', False),
    ('log[s]', 'logs', True),
])
def test_glob_semantics(glob, path, expected):
    assert matches(glob, path) is expected


@pytest.mark.parametrize('glob', ['', '/', '../etc', 'a/../b'])
def test_bad_globs_are_refused(glob):
    with pytest.raises(ValueError):
        glob_to_regex(glob)


def test_filter_keeps_applies_excludes_of_parents():
    tree_filter = TreeFilter(include=['*.py'], exclude=['lib/deep'])
    assert tree_filter.keeps('.')
    assert tree_filter.keeps('lib/util.py')
    assert not tree_filter.keeps('lib/deep/mod.py')
    assert not tree_filter.keeps('bin/run')


def test_scan_records_files_dirs_and_links(tree):
    result = scan(tree / 'current')
    files = result['files']
    assert result['exists'] is True and result['link'] == 'releases/v1'
    assert files['.']['type'] == 'dir' and files['.']['link'] == 'releases/v1'
    assert files['app.py']['sha256'] == sha(b'print(1)\n')
    assert files['app.py']['size'] == len(b'print(1)\n')
    assert files['app.py']['mode'] == '0644'
    assert files['bin/run']['mode'] == '0755'
    me = pwd.getpwuid(os.getuid()).pw_name
    assert files['app.py']['owner'] == me
    assert files['app.py']['group'] == grp.getgrgid(os.getgid()).gr_name
    # the link into shared/ is recorded as a link and not descended
    assert files['data'] == {'type': 'link', 'target': '../../shared/data'}
    assert not any(rel.startswith('data/') for rel in files)
    assert files['lib/deep']['type'] == 'dir'
    assert result['count'] == len(files)
    assert result['bytes'] == sum(entry.get('size', 0) for entry in files.values())


def test_scan_follow_hashes_link_targets(tree):
    files = scan(tree / 'current', follow=True)['files']
    assert files['data']['type'] == 'dir'
    assert files['data/f.txt']['sha256'] == sha(b'data\n')


def test_follow_does_not_loop(tmp_path):
    write(str(tmp_path / 't' / 'sub' / 'a'))
    os.symlink('..', str(tmp_path / 't' / 'sub' / 'up'))
    files = scan(tmp_path / 't', follow=True)['files']
    assert files['sub/up'] == {'type': 'link', 'target': '..'}
    assert sorted(files) == ['.', 'sub', 'sub/a', 'sub/up']


def test_missing_path_is_recorded_absent(tmp_path):
    result = scan(tmp_path / 'nope')
    assert result['exists'] is False and result['files'] == {} and result['count'] == 0


def test_dangling_root_link_is_absent_with_its_target(tmp_path):
    os.symlink('releases/v9', str(tmp_path / 'current'))
    result = scan(tmp_path / 'current')
    assert result['exists'] is False and result['link'] == 'releases/v9'


def test_single_file_probe(tmp_path):
    path = write(str(tmp_path / 'app.conf'), b'port=80\n', mode=0o640)
    result = scan(path)
    assert result['type'] == 'file'
    assert list(result['files']) == ['.']
    assert result['files']['.']['sha256'] == sha(b'port=80\n')
    assert result['files']['.']['mode'] == '0640'


def test_include_and_exclude(tree):
    files = scan(tree / 'current', exclude=['logs', '*.pyc'])['files']
    assert 'logs' not in files and 'logs/app.log' not in files
    files = scan(tree / 'current', include=['*.py'])['files']
    assert sorted(files) == ['.', 'app.py', 'lib/deep/mod.py', 'lib/util.py']
    files = scan(tree / 'current', include=['lib/**'], exclude=['deep'])['files']
    assert sorted(files) == ['.', 'lib/util.py']


def test_large_file_hashed_in_chunks(tmp_path):
    data = os.urandom(CHUNK_SIZE * 3 + 12345)
    path = write(str(tmp_path / 'big'), data)
    assert scan(path)['files']['.']['sha256'] == sha(data)


def test_threads_hash_like_hashlib(tmp_path):
    blobs = [os.urandom(n) for n in (0, 1, 2047, 2048, 70000, CHUNK_SIZE + 1)] * 5
    paths = [write(str(tmp_path / ('f%d' % i)), blob) for i, blob in enumerate(blobs)]
    results = FileHasher(workers=3).hash_many(paths, [len(b) for b in blobs])
    assert [r[0] for r in results] == [sha(b) for b in blobs]
    assert all(r[2] for r in results)


def test_compare_exact_reports_each_attribute(tree):
    current = tree / 'current'
    before = scan(current)['files']
    write(str(current / 'app.py'), b'print(2)\n')          # content
    os.chmod(str(current / 'bin' / 'run'), 0o700)         # mode
    os.unlink(str(current / 'data'))
    os.symlink('/elsewhere', str(current / 'data'))       # link target
    write(str(current / 'lib' / 'new.py'))                # added
    os.unlink(str(current / 'lib' / 'util.py'))           # removed
    added, removed, changed = compare_trees(before, scan(current)['files'], 'exact')
    assert added == ['lib/new.py']
    assert removed == ['lib/util.py']
    by_item = dict((c['item'], c) for c in changed)
    assert sorted(by_item) == ['app.py', 'bin/run', 'data']
    assert by_item['app.py']['attributes'] == ['sha256']
    assert by_item['app.py']['expected']['sha256'] == sha(b'print(1)\n')
    assert by_item['app.py']['found']['sha256'] == sha(b'print(2)\n')
    assert by_item['bin/run']['attributes'] == ['mode']
    assert by_item['bin/run']['expected'] == {'mode': '0755'} and by_item['bin/run']['found'] == {'mode': '0700'}
    assert by_item['data']['attributes'] == ['target']
    assert by_item['data']['found'] == {'target': '/elsewhere'}


def test_compare_no_loss_allows_growth_but_not_loss(tree):
    shared = tree / 'shared'
    before = scan(shared)['files']
    write(str(shared / 'data' / 'upload-2.bin'))                  # added: allowed
    os.chmod(str(shared / 'data' / 'f.txt'), 0o600)               # mode: allowed
    added, removed, changed = compare_trees(before, scan(shared)['files'], 'no_loss')
    assert (added, removed, changed) == ([], [], [])
    write(str(shared / 'data' / 'f.txt'), b'overwritten\n')      # content: loss
    added, removed, changed = compare_trees(before, scan(shared)['files'], 'no_loss')
    assert [c['item'] for c in changed] == ['data/f.txt']
    assert changed[0]['attributes'] == ['sha256', 'size']
    os.unlink(str(shared / 'data' / 'f.txt'))                     # removed: loss
    added, removed, changed = compare_trees(before, scan(shared)['files'], 'no_loss')
    assert removed == ['data/f.txt']


def test_unchanged_tree_reuses_recorded_hashes(tree):
    current = tree / 'current'
    first = scan(current)
    trusted = time.time_ns() + 10 ** 9          # as if captured well after the last write
    again = TreeScanner(str(current)).scan(reuse=first['files'], trusted_before_ns=trusted)
    assert again['hashed'] == 0
    assert again['digest'] == first['digest']


def test_reuse_never_hides_a_rewrite_with_restored_mtime(tree):
    current = tree / 'current'
    first = scan(current)
    path = str(current / 'app.py')
    st = os.stat(path)
    with open(path, 'r+b') as handle:               # same size, new content
        handle.write(b'PRINT')
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))   # mtime put back: ctime still moves
    trusted = time.time_ns() + 10 ** 9
    again = TreeScanner(str(current)).scan(reuse=first['files'], trusted_before_ns=trusted)
    assert again['hashed'] == 1
    assert again['files']['app.py']['sha256'] == sha(b'PRINT(1)\n')


def test_recent_files_are_hashed_again(tree):
    """The racy rule: a file changed near or after the capture start is never trusted."""
    current = tree / 'current'
    first = scan(current)
    again = TreeScanner(str(current)).scan(reuse=first['files'], trusted_before_ns=time.time_ns() - 3600 * 10 ** 9)
    assert again['hashed'] == len([e for e in first['files'].values() if e['type'] == 'file'])


def test_replaced_file_with_new_inode_is_hashed_again(tree):
    current = tree / 'current'
    first = scan(current)
    path = str(current / 'lib' / 'util.py')
    write(path + '.tmp', b'x = 1\n')
    os.rename(path + '.tmp', path)
    again = TreeScanner(str(current)).scan(reuse=first['files'], trusted_before_ns=time.time_ns() + 10 ** 9)
    assert again['hashed'] == 1
    assert again['files']['lib/util.py']['sha256'] == first['files']['lib/util.py']['sha256']


def test_a_failing_worker_fails_the_scan_instead_of_dropping_files(tree, monkeypatch):
    def broken(self, path, buf, flags):
        raise MemoryError('simulated')

    monkeypatch.setattr(FileHasher, 'hash_one', broken)
    with pytest.raises(TreeError) as info:
        scan(tree / 'current')
    assert 'MemoryError' in str(info.value)


def test_a_file_replaced_by_a_link_during_the_scan_is_recorded_as_a_link(tree, monkeypatch):
    current = str(tree / 'current')
    original = FileHasher.hash_one

    def swap_then_hash(self, path, buf, flags):
        if path.endswith('app.py'):
            os.unlink(path)
            os.symlink('elsewhere', path)
        return original(self, path, buf, flags)

    monkeypatch.setattr(FileHasher, 'hash_one', swap_then_hash)
    files = scan(current)['files']
    assert files['app.py'] == {'type': 'link', 'target': 'elsewhere'}
