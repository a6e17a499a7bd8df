# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Damaged archives are refused after reading to the end of the stream, and the content digest
is the same whatever carried the tree (tar.gz rebuilt later, tar.xz, zip, a directory)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import gzip
import io
import os
import tarfile
import zipfile

import pytest

from ansible_collections.redbutton.deploy.plugins.module_utils._archive import (
    DirectorySource,
    TarSource,
    ZipSource,
    file_checksum,
    open_source,
    tree_checksum,
)
from ansible_collections.redbutton.deploy.plugins.module_utils._common import RedbuttonError

from .test_archive import make_tree


def make_app_tree(base, files=60):
    """A tree with many members, a symlink, an executable and a nested directory."""
    layout = {'VERSION': 'v1\n', 'bin/run': ('exec', '#!/bin/sh\necho run\n'), 'link': ('symlink', 'VERSION')}
    for index in range(files):
        layout['lib/mod%03d.py' % index] = ('# module %d\n' % index) * (20 + index)
    return make_tree(base, layout)


def pack(tree, path, mode='w:gz', mtime=None):
    """tar -C tree . into path; with mtime, the gzip header time is set (as a rebuild does)."""
    if mode == 'w:gz' and mtime is not None:
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode='w') as tar:
            for name in sorted(os.listdir(tree)):
                tar.add(os.path.join(tree, name), arcname=name)
        with open(str(path), 'wb') as handle:
            with gzip.GzipFile(fileobj=handle, mode='wb', mtime=mtime) as gz:
                gz.write(raw.getvalue())
        return str(path)
    with tarfile.open(str(path), mode) as tar:
        for name in sorted(os.listdir(tree)):
            tar.add(os.path.join(tree, name), arcname=name)
    return str(path)


def zip_tree(tree, path):
    with zipfile.ZipFile(str(path), 'w', zipfile.ZIP_DEFLATED) as archive:
        for dirpath, dirnames, filenames in os.walk(tree):
            for name in sorted(dirnames + filenames):
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, tree)
                info = zipfile.ZipInfo(rel + ('/' if os.path.isdir(full) and not os.path.islink(full) else ''))
                info.create_system = 3
                info.external_attr = os.lstat(full).st_mode << 16
                if os.path.islink(full):
                    archive.writestr(info, os.readlink(full))
                elif os.path.isdir(full):
                    archive.writestr(info, '')
                else:
                    info.compress_type = zipfile.ZIP_DEFLATED
                    archive.writestr(info, open(full, 'rb').read())
    return str(path)


def damage(path, out, offset, length=64):
    data = bytearray(open(path, 'rb').read())
    for index in range(offset, offset + length):
        data[index] ^= 0xFF
    open(str(out), 'wb').write(bytes(data))
    return str(out)


def cut(path, out, drop):
    data = open(path, 'rb').read()
    open(str(out), 'wb').write(data[:len(data) - drop])
    return str(out)


@pytest.fixture
def tree(tmp_path):
    return make_app_tree(tmp_path / 'tree')


# damaged archives ----------------------------------------------------------------------------
def test_flipped_bytes_in_the_middle_of_a_tar_gz_are_refused(tmp_path, tree):
    good = pack(tree, tmp_path / 'good.tar.gz')
    bad = damage(good, tmp_path / 'bad.tar.gz', os.path.getsize(good) // 2)
    dest = tmp_path / 'dest'
    dest.mkdir()
    with pytest.raises(RedbuttonError) as caught:
        TarSource(bad).extract(str(dest))
    assert bad in str(caught.value) and 'damaged' in str(caught.value)
    assert os.listdir(str(dest)) == []


def test_a_tar_gz_without_its_gzip_trailer_is_refused(tmp_path, tree):
    good = pack(tree, tmp_path / 'good.tar.gz')
    bad = cut(good, tmp_path / 'notrailer.tar.gz', 8)
    tarfile.open(bad, 'r|gz').getmembers()  # what the standard library accepts without complaint
    dest = tmp_path / 'dest'
    dest.mkdir()
    with pytest.raises(RedbuttonError) as caught:
        TarSource(bad).extract(str(dest))
    assert bad in str(caught.value) and 'cut short' in str(caught.value)
    assert 'byte %d' % os.path.getsize(bad) in str(caught.value)
    assert os.listdir(str(dest)) == []


def test_a_gzip_crc_mismatch_is_refused(tmp_path, tree):
    good = pack(tree, tmp_path / 'good.tar.gz')
    data = bytearray(open(good, 'rb').read())
    data[-8] ^= 0x01  # the CRC32 of the trailer
    bad = tmp_path / 'crc.tar.gz'
    bad.write_bytes(bytes(data))
    with pytest.raises(RedbuttonError) as caught:
        TarSource(str(bad)).scan()
    assert str(bad) in str(caught.value) and 'incorrect data check' in str(caught.value)


def test_a_bad_header_in_the_middle_of_a_plain_tar_is_refused_naming_the_offset(tmp_path, tree):
    good = pack(tree, tmp_path / 'good.tar', mode='w')
    with tarfile.open(good) as tar:
        infos = tar.getmembers()
    victim = infos[len(infos) // 2]
    bad = damage(good, tmp_path / 'bad.tar', victim.offset + 100, 8)  # inside the header: bad checksum
    with tarfile.open(bad) as tar:
        assert len(tar.getmembers()) < len(infos)  # tarfile takes it for the end of the archive
    dest = tmp_path / 'dest'
    dest.mkdir()
    with pytest.raises(RedbuttonError) as caught:
        TarSource(bad).extract(str(dest))
    message = str(caught.value)
    assert bad in message and 'offset %d' % victim.offset in message and 'not valid' in message
    assert os.listdir(str(dest)) == []


def test_a_tar_cut_at_a_member_boundary_is_refused(tmp_path, tree):
    good = pack(tree, tmp_path / 'good.tar', mode='w')
    with tarfile.open(good) as tar:
        last = tar.getmembers()[-1]
    data = open(good, 'rb').read()
    bad = tmp_path / 'cut.tar'
    bad.write_bytes(data[:last.offset])
    with pytest.raises(RedbuttonError) as caught:
        TarSource(str(bad)).scan()
    assert 'without the tar end-of-archive blocks' in str(caught.value)


@pytest.mark.parametrize('mode', ['w:bz2', 'w:xz'])
def test_truncated_bz2_and_xz_are_refused(tmp_path, tree, mode):
    good = pack(tree, tmp_path / ('good.tar.' + mode[2:]), mode=mode)
    bad = cut(good, tmp_path / ('bad.tar.' + mode[2:]), 12)
    with pytest.raises(RedbuttonError) as caught:
        TarSource(bad).scan()
    assert bad in str(caught.value) and 'damaged' in str(caught.value)


def test_a_truncated_zip_is_refused(tmp_path, tree):
    good = zip_tree(tree, tmp_path / 'good.zip')
    bad = cut(good, tmp_path / 'bad.zip', os.path.getsize(good) // 3)
    dest = tmp_path / 'dest'
    dest.mkdir()
    with pytest.raises(RedbuttonError) as caught:
        open_source(bad).extract(str(dest))
    assert bad in str(caught.value)
    assert os.listdir(str(dest)) == []


def test_a_zip_crc_error_names_the_member(tmp_path):
    path = tmp_path / 'crc.zip'
    payload = b'0123456789abcdef' * 64
    with zipfile.ZipFile(str(path), 'w', zipfile.ZIP_STORED) as archive:
        archive.writestr('a.txt', b'first')
        archive.writestr('b.txt', payload)
    data = bytearray(path.read_bytes())
    where = bytes(data).index(payload) + 500
    data[where] ^= 0xFF
    path.write_bytes(bytes(data))
    dest = tmp_path / 'dest'
    dest.mkdir()
    with pytest.raises(RedbuttonError) as caught:
        ZipSource(str(path)).extract(str(dest))
    assert "member 'b.txt'" in str(caught.value) and 'CRC' in str(caught.value)
    assert os.listdir(str(dest)) == []


def test_trailing_garbage_after_the_gzip_stream_is_refused_but_zero_padding_is_not(tmp_path, tree):
    good = pack(tree, tmp_path / 'good.tar.gz')
    padded = tmp_path / 'padded.tar.gz'
    padded.write_bytes(open(good, 'rb').read() + b'\0' * 1024)
    assert TarSource(str(padded)).scan() == tree_checksum(tree)
    garbage = tmp_path / 'garbage.tar.gz'
    garbage.write_bytes(open(good, 'rb').read() + b'junk')
    with pytest.raises(RedbuttonError) as caught:
        TarSource(str(garbage)).scan()
    assert 'unexpected data after the end of the gzip stream' in str(caught.value)


def test_concatenated_gzip_members_are_read_whole(tmp_path, tree):
    plain = pack(tree, tmp_path / 'plain.tar', mode='w')
    data = open(plain, 'rb').read()
    half = len(data) // 2
    path = tmp_path / 'multi.tar.gz'
    path.write_bytes(gzip.compress(data[:half]) + gzip.compress(data[half:]))
    assert TarSource(str(path)).scan() == tree_checksum(tree)


def test_the_extracted_checksum_covers_every_byte_of_the_file(tmp_path, tree):
    good = pack(tree, tmp_path / 'good.tar.gz')
    dest = tmp_path / 'dest'
    dest.mkdir()
    TarSource(good).extract(str(dest), checksum=file_checksum(good))
    with pytest.raises(RedbuttonError) as caught:
        TarSource(good).scan(checksum='sha256:' + '0' * 64)
    assert 'checksum mismatch' in str(caught.value)


# content digest ----------------------------------------------------------------------------
def test_the_content_digest_is_the_same_for_every_carrier_of_the_same_tree(tmp_path, tree):
    expected = tree_checksum(tree)
    one = pack(tree, tmp_path / 'one.tar.gz', mtime=1000)
    two = pack(tree, tmp_path / 'two.tar.gz', mtime=2000)
    assert file_checksum(one) != file_checksum(two)
    carriers = [one, two, pack(tree, tmp_path / 'x.tar.xz', mode='w:xz'), pack(tree, tmp_path / 'p.tar', mode='w'),
                zip_tree(tree, tmp_path / 'z.zip')]
    for index, path in enumerate(carriers):
        source = open_source(path)
        assert source.scan() == expected, path
        dest = tmp_path / ('dest%d' % index)
        dest.mkdir()
        assert source.extract(str(dest)) == expected, path
        assert tree_checksum(str(dest)) == expected, path
    assert DirectorySource(tree).scan() == expected


def test_the_content_digest_sees_modes_bytes_link_targets_and_paths(tmp_path, tree):
    base = tree_checksum(tree)
    os.chmod(os.path.join(tree, 'VERSION'), 0o600)
    assert tree_checksum(tree) != base
    os.chmod(os.path.join(tree, 'VERSION'), 0o644)
    assert tree_checksum(tree) == base
    os.unlink(os.path.join(tree, 'link'))
    os.symlink('bin/run', os.path.join(tree, 'link'))
    assert tree_checksum(tree) != base
