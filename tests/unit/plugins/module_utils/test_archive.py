# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Safe extraction and content checksums (_archive). The archive builders here are reused
by the release tests."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import io
import os
import stat
import tarfile
import zipfile

import pytest

from ansible_collections.redbutton.deploy.plugins.module_utils._archive import (
    DirectorySource,
    MemberChecker,
    TarSource,
    ZipSource,
    file_checksum,
    normalize_checksum,
    open_source,
    release_id_from_checksum,
    tree_checksum,
)
from ansible_collections.redbutton.deploy.plugins.module_utils._common import RedbuttonError


# builders ---------------------------------------------------------------------------------
def make_tar(path, entries, mode='w'):
    """entries: (kind, name, payload) with kind file/dir/symlink/hardlink/chr/blk/fifo."""
    with tarfile.open(str(path), mode) as tar:
        for kind, name, payload in entries:
            info = tarfile.TarInfo(name)
            data = None
            if kind == 'file':
                data = payload if isinstance(payload, bytes) else (payload or '').encode()
                info.size = len(data)
                info.mode = 0o644
            elif kind == 'exec':
                data = payload.encode()
                info.size = len(data)
                info.mode = 0o755
            elif kind == 'dir':
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
            elif kind == 'symlink':
                info.type = tarfile.SYMTYPE
                info.linkname = payload
            elif kind == 'hardlink':
                info.type = tarfile.LNKTYPE
                info.linkname = payload
            elif kind == 'chr':
                info.type = tarfile.CHRTYPE
                info.devmajor, info.devminor = 1, 3
            elif kind == 'blk':
                info.type = tarfile.BLKTYPE
                info.devmajor, info.devminor = 7, 0
            elif kind == 'fifo':
                info.type = tarfile.FIFOTYPE
            else:
                raise ValueError(kind)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return str(path)


def make_zip(path, entries):
    """entries: (kind, name, payload) with kind file/dir/symlink/fifo/chr."""
    with zipfile.ZipFile(str(path), 'w') as archive:
        for kind, name, payload in entries:
            info = zipfile.ZipInfo(name)
            info.create_system = 3  # unix: external_attr carries the mode
            if kind == 'file':
                info.external_attr = (stat.S_IFREG | 0o644) << 16
                archive.writestr(info, payload or '')
            elif kind == 'dir':
                info.external_attr = ((stat.S_IFDIR | 0o755) << 16) | 0x10
                archive.writestr(info, '')
            elif kind == 'symlink':
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
                archive.writestr(info, payload)
            elif kind == 'fifo':
                info.external_attr = (stat.S_IFIFO | 0o644) << 16
                archive.writestr(info, '')
            elif kind == 'chr':
                info.external_attr = (stat.S_IFCHR | 0o644) << 16
                archive.writestr(info, '')
            else:
                raise ValueError(kind)
    return str(path)


def make_tree(base, files):
    """files: {relative path: content, or ('symlink', target)}; returns base."""
    os.makedirs(str(base), exist_ok=True)
    for rel, content in files.items():
        full = os.path.join(str(base), rel)
        parent = os.path.dirname(full)
        if not os.path.isdir(parent):
            os.makedirs(parent)
        if isinstance(content, tuple):
            os.symlink(content[1], full)
        elif content is None:
            os.makedirs(full)
        else:
            with open(full, 'w') as handle:
                handle.write(content)
    return str(base)


GOOD = [('file', 'VERSION', 'v1\n'), ('dir', 'bin', None), ('exec', 'bin/run', '#!/bin/sh\necho hi\n'),
        ('symlink', 'latest', 'VERSION'), ('hardlink', 'VERSION.copy', 'VERSION')]

# Each: (id, builder, entries, the member name the error must mention)
MALICIOUS_TARS = [
    ('absolute', [('file', '/tmp/redbutton-evil-absolute', 'x')], '/tmp/redbutton-evil-absolute'),
    ('dotdot', [('file', '../evil-dotdot', 'x')], '../evil-dotdot'),
    ('dotdot-nested', [('dir', 'a', None), ('file', 'a/../../evil', 'x')], 'a/../../evil'),
    ('symlink-absolute', [('symlink', 'etc', '/etc')], 'etc'),
    ('symlink-relative-escape', [('dir', 'sub', None), ('symlink', 'sub/up', '../../outside')], 'sub/up'),
    # Lexically inside ('sub/y/../..' is '.'), really outside because sub/y points to the root.
    ('symlink-chain-escape', [('dir', 'sub', None), ('symlink', 'sub/y', '..'), ('symlink', 'x', 'sub/y/../..')], 'x'),
    ('through-symlink-dir', [('dir', 'real', None), ('symlink', 'link', 'real'), ('file', 'link/evil', 'x')], 'link/evil'),
    ('hardlink-escape', [('hardlink', 'passwd', '../../etc/passwd')], 'passwd'),
    ('hardlink-absolute', [('hardlink', 'shadow', '/etc/shadow')], 'shadow'),
    ('hardlink-via-symlink', [('file', 'f', 'x'), ('symlink', 'l', 'f'), ('hardlink', 'h', 'l')], 'h'),
    ('char-device', [('chr', 'null', None)], 'null'),
    ('block-device', [('blk', 'loop0', None)], 'loop0'),
    ('fifo', [('fifo', 'pipe', None)], 'pipe'),
    ('duplicate-over-symlink', [('file', 'b', 'x'), ('symlink', 'a', 'b'), ('file', 'a', 'y')], 'a'),
    # The symlink comes after the member that goes through it (files stream out before links exist).
    ('through-later-symlink', [('dir', 'c', None), ('file', 'a/evil', 'x'), ('symlink', 'a', 'c')], 'a/evil'),
]

MALICIOUS_ZIPS = [
    ('zip-dotdot', [('file', '../evil-zip', 'x')], '../evil-zip'),
    ('zip-absolute', [('file', '/tmp/redbutton-evil-zip', 'x')], '/tmp/redbutton-evil-zip'),
    ('zip-symlink-escape', [('symlink', 'up', '../../etc')], 'up'),
    ('zip-symlink-absolute', [('symlink', 'root', '/')], 'root'),
    ('zip-through-symlink', [('dir', 'real/', None), ('symlink', 'l', 'real'), ('file', 'l/x', 'x')], 'l/x'),
    ('zip-fifo', [('fifo', 'pipe', None)], 'pipe'),
    ('zip-device', [('chr', 'tty', None)], 'tty'),
]


def malicious_artifacts(tmp_path):
    """Every malicious artifact kind as (id, path, member) built under tmp_path."""
    result = []
    for name, entries, member in MALICIOUS_TARS:
        result.append((name, make_tar(tmp_path / (name + '.tar'), entries), member))
    for name, entries, member in MALICIOUS_ZIPS:
        result.append((name, make_zip(tmp_path / (name + '.zip'), entries), member))
    return result


MALICIOUS_IDS = [case[0] for case in MALICIOUS_TARS] + [case[0] for case in MALICIOUS_ZIPS]


# checksums --------------------------------------------------------------------------------
def test_file_checksum_is_sha256_of_bytes(tmp_path):
    path = tmp_path / 'a.bin'
    path.write_bytes(b'hello')
    assert file_checksum(str(path)) == 'sha256:' + hashlib.sha256(b'hello').hexdigest()


def test_release_id_from_checksum_is_prefix_of_digest():
    digest = 'ab' * 32
    assert release_id_from_checksum('sha256:' + digest) == 'sha256-' + digest[:12]


@pytest.mark.parametrize('value, expected', [
    ('sha256:' + 'A' * 64, 'sha256:' + 'a' * 64),
    ('b' * 64, 'sha256:' + 'b' * 64),
])
def test_normalize_checksum_accepts(value, expected):
    assert normalize_checksum(value) == expected


@pytest.mark.parametrize('value', ['sha256:abc', 'md5:' + 'a' * 32, 'sha256:' + 'g' * 64, ''])
def test_normalize_checksum_refuses_naming_input(value):
    with pytest.raises(RedbuttonError, match='checksum .* is not valid'):
        normalize_checksum(value)


def test_tree_checksum_ignores_times_and_dir_modes_but_not_content(tmp_path):
    one = make_tree(tmp_path / 'one', {'a': 'x', 'd/b': 'y', 'l': ('symlink', 'a')})
    two = make_tree(tmp_path / 'two', {'a': 'x', 'd/b': 'y', 'l': ('symlink', 'a')})
    os.utime(os.path.join(two, 'a'), (1, 1))
    os.chmod(os.path.join(two, 'd'), 0o700)
    assert tree_checksum(one) == tree_checksum(two)
    with open(os.path.join(two, 'd/b'), 'w') as handle:
        handle.write('z')
    assert tree_checksum(one) != tree_checksum(two)


def test_tree_checksum_sees_exec_bit_symlink_target_and_renames(tmp_path):
    base = make_tree(tmp_path / 'base', {'a': 'x', 'l': ('symlink', 'a')})
    before = tree_checksum(base)
    os.chmod(os.path.join(base, 'a'), 0o755)
    after_exec = tree_checksum(base)
    assert after_exec != before
    os.unlink(os.path.join(base, 'l'))
    os.symlink('b', os.path.join(base, 'l'))
    after_link = tree_checksum(base)
    assert after_link != after_exec
    os.rename(os.path.join(base, 'a'), os.path.join(base, 'c'))
    assert tree_checksum(base) != after_link


def test_tree_checksum_survives_tar_round_trip(tmp_path):
    src = make_tree(tmp_path / 'src', {'VERSION': 'v1', 'bin/run': '#!/bin/sh', 'l': ('symlink', 'VERSION'), 'empty': None})
    os.chmod(os.path.join(src, 'bin/run'), 0o755)
    archive = tmp_path / 'src.tgz'
    with tarfile.open(str(archive), 'w:gz') as tar:
        tar.add(src, arcname='.')
    dest = tmp_path / 'dest'
    dest.mkdir()
    TarSource(str(archive)).extract(str(dest))
    assert tree_checksum(str(dest)) == tree_checksum(src)


# opening ----------------------------------------------------------------------------------
@pytest.mark.parametrize('mode, suffix', [('w', '.tar'), ('w:gz', '.tar.gz'), ('w:gz', '.tgz'), ('w:xz', '.tar.xz'), ('w:bz2', '.tar.bz2')])
def test_open_source_detects_every_tar_flavour(tmp_path, mode, suffix):
    path = make_tar(tmp_path / ('a' + suffix), GOOD, mode=mode)
    source = open_source(path)
    assert isinstance(source, TarSource)
    dest = tmp_path / 'out'
    dest.mkdir()
    source.extract(str(dest))
    assert (dest / 'VERSION').read_text() == 'v1\n'
    assert os.readlink(str(dest / 'latest')) == 'VERSION'
    assert os.stat(str(dest / 'VERSION.copy')).st_ino == os.stat(str(dest / 'VERSION')).st_ino
    assert os.stat(str(dest / 'bin/run')).st_mode & 0o100


def test_open_source_detects_zip_and_directory(tmp_path):
    assert isinstance(open_source(make_zip(tmp_path / 'a.zip', [('file', 'a', 'x')])), ZipSource)
    assert isinstance(open_source(make_tree(tmp_path / 'd', {'a': 'x'})), DirectorySource)


def test_open_source_refuses_missing_and_unknown(tmp_path):
    with pytest.raises(RedbuttonError, match='does not exist'):
        open_source(str(tmp_path / 'missing.tgz'))
    junk = tmp_path / 'junk.bin'
    junk.write_bytes(b'not an archive at all' * 100)
    with pytest.raises(RedbuttonError, match='neither a directory nor a tar'):
        open_source(str(junk))


def test_damaged_zip_is_refused_with_its_name(tmp_path):
    bad = tmp_path / 'bad.zip'
    bad.write_bytes(b'PK\x03\x04 broken')
    with pytest.raises(RedbuttonError, match='bad.zip is not a readable zip'):
        ZipSource(str(bad)).validate()


# extraction -------------------------------------------------------------------------------
def test_single_top_level_directory_is_not_stripped(tmp_path):
    path = make_tar(tmp_path / 'app.tar', [('dir', 'app', None), ('file', 'app/VERSION', 'v1')])
    dest = tmp_path / 'out'
    dest.mkdir()
    TarSource(path).extract(str(dest))
    assert sorted(os.listdir(str(dest))) == ['app']
    assert (dest / 'app' / 'VERSION').read_text() == 'v1'


def test_dot_slash_prefixed_members_land_at_the_root(tmp_path):
    path = make_tar(tmp_path / 'a.tar', [('dir', '.', None), ('file', './VERSION', 'v1'), ('dir', './d', None)])
    dest = tmp_path / 'out'
    dest.mkdir()
    TarSource(path).extract(str(dest))
    assert sorted(os.listdir(str(dest))) == ['VERSION', 'd']


def test_setuid_and_world_write_bits_are_dropped(tmp_path):
    archive = tmp_path / 'modes.tar'
    with tarfile.open(str(archive), 'w') as tar:
        info = tarfile.TarInfo('suid')
        info.mode = 0o4777
        info.size = 1
        tar.addfile(info, io.BytesIO(b'x'))
    dest = tmp_path / 'out'
    dest.mkdir()
    TarSource(str(archive)).extract(str(dest))
    assert stat.S_IMODE(os.stat(str(dest / 'suid')).st_mode) == 0o755


def test_zip_symlinks_are_recreated_as_symlinks(tmp_path):
    path = make_zip(tmp_path / 'a.zip', [('dir', 'conf/', None), ('file', 'conf/app.ini', 'x=1'), ('symlink', 'app.ini', 'conf/app.ini')])
    dest = tmp_path / 'out'
    dest.mkdir()
    ZipSource(path).extract(str(dest))
    assert os.path.islink(str(dest / 'app.ini'))
    assert os.readlink(str(dest / 'app.ini')) == 'conf/app.ini'
    assert (dest / 'app.ini').read_text() == 'x=1'


def test_directory_copy_keeps_symlinks(tmp_path):
    src = make_tree(tmp_path / 'src', {'a': 'x', 'sub/b': 'y', 'link': ('symlink', 'sub/b')})
    dest = tmp_path / 'out'
    dest.mkdir()
    DirectorySource(src).extract(str(dest))
    assert os.readlink(str(dest / 'link')) == 'sub/b'
    assert (dest / 'sub' / 'b').read_text() == 'y'


def test_symlink_inside_the_release_is_allowed(tmp_path):
    path = make_tar(tmp_path / 'ok.tar', [('dir', 'a', None), ('dir', 'a/b', None), ('symlink', 'a/b/up', '../../VERSION'),
                                          ('file', 'VERSION', 'v')])
    assert len(TarSource(path).validate()) == 4


@pytest.fixture(params=['data-filter', 'no-data-filter'])
def tar_filter(request, monkeypatch):
    """Run with tarfile's 'data' filter, and as on Python < 3.11.4 / 3.8.17 without it."""
    if request.param == 'no-data-filter':
        monkeypatch.delattr(tarfile, 'data_filter', raising=False)
    return request.param


def test_good_tar_extracts_the_same_with_or_without_data_filter(tmp_path, tar_filter):
    path = make_tar(tmp_path / 'good.tar', GOOD)
    dest = tmp_path / 'out'
    dest.mkdir()
    TarSource(path).extract(str(dest))
    assert sorted(os.listdir(str(dest))) == ['VERSION', 'VERSION.copy', 'bin', 'latest']
    assert stat.S_IMODE(os.stat(str(dest / 'bin' / 'run')).st_mode) == 0o755
    assert stat.S_IMODE(os.stat(str(dest / 'VERSION')).st_mode) == 0o644


@pytest.mark.parametrize('name, entries, member', MALICIOUS_TARS, ids=[case[0] for case in MALICIOUS_TARS])
def test_malicious_tar_is_refused_naming_the_member_and_writes_nothing(tmp_path, tar_filter, name, entries, member):
    path = make_tar(tmp_path / (name + '.tar'), entries)
    with pytest.raises(RedbuttonError) as caught:
        TarSource(path).validate()
    assert repr(member) in str(caught.value)
    dest = tmp_path / 'out'
    dest.mkdir()
    with pytest.raises(RedbuttonError):
        TarSource(path).extract(str(dest))
    assert os.listdir(str(dest)) == []


@pytest.mark.parametrize('name, entries, member', MALICIOUS_ZIPS, ids=[case[0] for case in MALICIOUS_ZIPS])
def test_malicious_zip_is_refused_naming_the_member_and_writes_nothing(tmp_path, name, entries, member):
    path = make_zip(tmp_path / (name + '.zip'), entries)
    with pytest.raises(RedbuttonError) as caught:
        ZipSource(path).validate()
    assert repr(member) in str(caught.value)
    dest = tmp_path / 'out'
    dest.mkdir()
    with pytest.raises(RedbuttonError):
        ZipSource(path).extract(str(dest))
    assert os.listdir(str(dest)) == []


def test_directory_with_escaping_symlink_is_refused(tmp_path):
    src = make_tree(tmp_path / 'src', {'a': 'x', 'sub/evil': ('symlink', '../../../etc')})
    with pytest.raises(RedbuttonError, match="'sub/evil'"):
        DirectorySource(src).validate()


def test_directory_with_absolute_symlink_is_refused(tmp_path):
    src = make_tree(tmp_path / 'src', {'passwd': ('symlink', '/etc/passwd')})
    with pytest.raises(RedbuttonError, match="'passwd' points to the absolute path"):
        DirectorySource(src).validate()


def test_directory_with_fifo_is_refused(tmp_path):
    src = make_tree(tmp_path / 'src', {'a': 'x'})
    os.mkfifo(os.path.join(src, 'pipe'))
    with pytest.raises(RedbuttonError, match="'pipe' of directory .* is a fifo"):
        DirectorySource(src).validate()


def test_symlink_loops_are_refused(tmp_path):
    path = make_tar(tmp_path / 'loop.tar', [('symlink', 'a', 'b'), ('symlink', 'b', 'a/x')])
    with pytest.raises(RedbuttonError, match='resolves outside'):
        TarSource(path).validate()


def test_checker_resolve_follows_archive_symlinks():
    class M(object):
        def __init__(self, path, link):
            self.path, self.link, self.kind, self.parts, self.name = path, link, 'symlink', path.split('/'), path

    checker = MemberChecker([M('a', 'b/c'), M('b/c/d', '../../e')])
    assert checker.resolve(['a', 'x']) == 'b/c/x'
    assert checker.resolve(['a', 'd', 'f']) == 'e/f'
    assert checker.resolve(['a', '..', '..', '..']) is None


# one-pass extraction ------------------------------------------------------------------------
def test_extract_verifies_the_checksum_of_the_bytes_it_read(tmp_path):
    path = make_tar(tmp_path / 'good.tar.gz', GOOD, mode='w:gz')
    dest = tmp_path / 'out'
    dest.mkdir()
    TarSource(path).extract(str(dest), checksum=file_checksum(path))
    assert (dest / 'VERSION').read_text() == 'v1\n' and os.readlink(str(dest / 'latest')) == 'VERSION'
    assert os.stat(str(dest / 'VERSION.copy')).st_ino == os.stat(str(dest / 'VERSION')).st_ino
    other = tmp_path / 'other'
    other.mkdir()
    wrong = 'sha256:' + '0' * 64
    with pytest.raises(RedbuttonError) as caught:
        TarSource(path).extract(str(other), checksum=wrong)
    assert wrong in str(caught.value) and file_checksum(path) in str(caught.value)
    assert os.listdir(str(other)) == []


def test_extract_keeps_member_times(tmp_path):
    archive = tmp_path / 'times.tar'
    with tarfile.open(str(archive), 'w') as tar:
        for name, kind in (('dir', tarfile.DIRTYPE), ('dir/file', tarfile.REGTYPE)):
            info = tarfile.TarInfo(name)
            info.type = kind
            info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
            info.mtime = 1000000000
            tar.addfile(info, io.BytesIO(b'') if kind == tarfile.REGTYPE else None)
    dest = tmp_path / 'out'
    dest.mkdir()
    TarSource(str(archive)).extract(str(dest))
    assert os.stat(str(dest / 'dir' / 'file')).st_mtime == 1000000000
    assert os.stat(str(dest / 'dir')).st_mtime == 1000000000


def test_truncated_archive_is_refused_and_leaves_nothing(tmp_path):
    path = make_tar(tmp_path / 'big.tar.gz', [('file', 'f%d' % i, os.urandom(2000)) for i in range(20)], mode='w:gz')
    data = open(path, 'rb').read()
    with open(path, 'wb') as handle:
        handle.write(data[:len(data) // 2])
    dest = tmp_path / 'out'
    dest.mkdir()
    with pytest.raises(RedbuttonError, match='damaged'):
        TarSource(path).extract(str(dest))
    assert os.listdir(str(dest)) == []


def test_extract_refuses_a_destination_that_is_not_empty(tmp_path):
    path = make_tar(tmp_path / 'good.tar', GOOD)
    dest = tmp_path / 'out'
    dest.mkdir()
    (dest / 'keep').write_text('mine')
    with pytest.raises(RedbuttonError, match='not empty'):
        TarSource(path).extract(str(dest))
    assert os.listdir(str(dest)) == ['keep']
