# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Content checksums and safe extraction of release artifacts.

One source class per kind of artifact (tar, zip, directory), chosen once by open_source().
Each one validates every member before anything is written: absolute paths, '..',
symlinks or hardlinks that would resolve outside the release, members whose path passes
through a symlink of the artifact, duplicates, devices, fifos and sockets are refused with
an error naming the member. Extraction goes into a directory the caller created (the
staging directory); the caller renames it into place or removes it.

Private to the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import re
import shutil
import stat
import zlib

from ansible_collections.redbutton.deploy.plugins.module_utils._common import (
    RedbuttonError,
    describe_os_error,
    fault_point,
)

CHUNK = 1024 * 1024
CHECKSUM_RE = re.compile(r'^sha256:[0-9a-f]{64}$')
MAX_SYMLINK_HOPS = 40

# Member kinds, shared by every source.
DIR = 'directory'
FILE = 'file'
SYMLINK = 'symlink'
HARDLINK = 'hardlink'


def normalize_checksum(value, what='checksum'):
    """Return a checksum as 'sha256:<lowercase hex>' or raise naming the input."""
    if value is None:
        return None
    text = str(value).strip()
    if ':' not in text:
        text = 'sha256:' + text
    algo, digest = text.split(':', 1)
    text = '%s:%s' % (algo.lower(), digest.lower())
    if not CHECKSUM_RE.match(text):
        raise RedbuttonError(
            "%s %r is not valid: give it as sha256:<64 hex digits>, for example the output of "
            "'sha256sum FILE' prefixed with 'sha256:'" % (what, value))
    return text


def file_checksum(path):
    """sha256 of a file's bytes, as 'sha256:<hex>'."""
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(CHUNK), b''):
            digest.update(block)
    return 'sha256:' + digest.hexdigest()


def release_id_from_checksum(checksum):
    """The deterministic release id used when the caller gives none: sha256-<12 hex>."""
    return 'sha256-' + checksum.split(':', 1)[1][:12]


class ContentDigest(object):
    """The digest of a release's content, whatever carried it (tar, zip or a directory).

    Sorted relative paths, each with its type; directories with nothing else; regular files
    with the mode the release gets (see _safe_mode) and the sha256 of their bytes; symlinks
    with their target. Times, owners and directory modes do not count, and neither does the
    compression or the order of members, so the same tree packed twice (a new gzip time stamp),
    packed as a zip, or copied as a directory has the same digest.
    """

    def __init__(self):
        self.entries = {}

    def add_dir(self, path):
        self.entries[path] = ('d', '')

    def add_parents(self, parts):
        for depth in range(1, len(parts)):
            self.entries.setdefault('/'.join(parts[:depth]), ('d', ''))

    def add_file(self, path, mode, hexdigest):
        self.entries[path] = ('f', '%o:%s' % (_safe_mode(mode, FILE), hexdigest))

    def add_link(self, path, target):
        self.entries[path] = ('l', target)

    def add_other(self, path, fmt):
        self.entries[path] = ('o', '%o' % fmt)

    def copy_entry(self, path, source):
        """A hardlink: on disk it is the same file as source."""
        self.entries[path] = self.entries[source]

    def checksum(self):
        digest = hashlib.sha256()
        for rel in sorted(self.entries):
            kind, extra = self.entries[rel]
            digest.update(('%s\0%s\0%s\n' % (kind, rel, extra)).encode('utf-8', 'surrogateescape'))
        return 'sha256:' + digest.hexdigest()


def tree_checksum(path):
    """The content digest (ContentDigest) of a directory tree, read from disk."""
    content = ContentDigest()
    for dirpath, dirnames, filenames in os.walk(path):
        rel_dir = os.path.relpath(dirpath, path)
        rel_dir = '' if rel_dir == '.' else rel_dir.replace(os.sep, '/')
        for name in dirnames + filenames:
            rel = rel_dir + '/' + name if rel_dir else name
            full = os.path.join(dirpath, name)
            info = os.lstat(full)
            if stat.S_ISLNK(info.st_mode):
                content.add_link(rel, os.readlink(full))
            elif stat.S_ISDIR(info.st_mode):
                content.add_dir(rel)
            elif stat.S_ISREG(info.st_mode):
                content.add_file(rel, stat.S_IMODE(info.st_mode), file_checksum(full)[7:])
            else:
                content.add_other(rel, stat.S_IFMT(info.st_mode))
    return content.checksum()


def member_parts(name, what='member'):
    """Split an artifact member name into safe relative parts, or raise naming it.

    Leading './' is allowed (tar -C dir . writes it); '' and '.' mean the root itself and
    give an empty list.
    """
    if name.startswith('/'):
        raise RedbuttonError('%s %r has an absolute path; refusing to extract it' % (what, name))
    parts = [part for part in name.split('/') if part not in ('', '.')]
    if '..' in parts:
        raise RedbuttonError("%s %r contains '..'; refusing to extract it" % (what, name))
    if '\0' in name:
        raise RedbuttonError('%s %r contains a NUL byte; refusing to extract it' % (what, name))
    return parts


class Member(object):
    """One entry of an artifact, as the checks see it."""

    def __init__(self, name, parts, kind, link=None, mode=None, raw=None):
        self.name = name
        self.parts = parts
        self.path = '/'.join(parts)
        self.kind = kind
        self.link = link
        self.mode = mode
        self.raw = raw


class MemberChecker(object):
    """The safety rules, applied to the whole member list before anything is written."""

    def __init__(self, members):
        self.members = members
        self.symlinks = dict((m.path, m) for m in members if m.kind == SYMLINK)

    def check(self):
        seen = {}
        for member in self.members:
            if not admit_member(member, seen):
                continue
            self._check_not_through_symlink(member)
            if member.kind == SYMLINK:
                self._check_symlink(member)
            elif member.kind == HARDLINK:
                self._check_hardlink(member, seen)
        return self.members

    def _check_not_through_symlink(self, member):
        for depth in range(1, len(member.parts)):
            prefix = '/'.join(member.parts[:depth])
            if prefix in self.symlinks:
                raise RedbuttonError(
                    'member %r passes through the symlink %r of the same artifact; refusing to '
                    'extract through a link' % (member.name, prefix))

    def _check_symlink(self, member):
        target = member.link or ''
        if not target:
            raise RedbuttonError('symlink member %r has an empty target; refusing it' % member.name)
        if target.startswith('/'):
            raise RedbuttonError(
                'symlink member %r points to the absolute path %r, outside the release; use a '
                'relative link inside the release' % (member.name, target))
        if self.resolve(member.parts[:-1] + target.split('/')) is None:
            raise RedbuttonError(
                'symlink member %r -> %r resolves outside the release; refusing it' % (member.name, target))

    def _check_hardlink(self, member, seen):
        target = member.link or ''
        parts = member_parts(target, what='hardlink target of %r:' % member.name)
        path = '/'.join(parts)
        for depth in range(1, len(parts) + 1):
            if '/'.join(parts[:depth]) in self.symlinks:
                raise RedbuttonError(
                    'hardlink member %r -> %r goes through a symlink of the artifact; refusing it'
                    % (member.name, target))
        source = seen.get(path)
        if source is None or source is member or source.kind != FILE:
            raise RedbuttonError(
                'hardlink member %r -> %r does not point to a regular file earlier in the '
                'artifact; refusing it' % (member.name, target))

    def resolve(self, parts):
        """Resolve a path inside the artifact, following its symlinks; None if it escapes."""
        pending = list(parts)
        current = []
        hops = 0
        while pending:
            part = pending.pop(0)
            if part in ('', '.'):
                continue
            if part == '..':
                if not current:
                    return None
                current.pop()
                continue
            current.append(part)
            link = self.symlinks.get('/'.join(current))
            if link is not None:
                hops += 1
                if hops > MAX_SYMLINK_HOPS or link.link.startswith('/'):
                    return None
                current.pop()
                pending = link.link.split('/') + pending
        return '/'.join(current)


def _safe_mode(mode, kind):
    """Permission bits the release gets: no setuid/setgid/sticky, no group/other write;
    owner can read and write files (the same result as tarfile's 'data' filter)."""
    if kind == DIR:
        return (mode & 0o755) | 0o700 if mode else 0o755
    if not mode:
        return 0o644
    if not mode & stat.S_IXUSR:
        mode &= ~0o111
    return (mode & 0o755) | 0o600


class Source(object):
    """An artifact to stage; subclasses know one format."""

    kind = None

    def __init__(self, path):
        self.path = path

    def checksum(self):
        return file_checksum(self.path)

    def members(self):
        raise NotImplementedError

    def validate(self):
        """Check every member; return them. Nothing is written."""
        return MemberChecker(self.members()).check()

    def extract(self, dest):
        raise NotImplementedError


class ArchiveDamaged(RedbuttonError):
    """The bytes of an artifact are damaged or cut short (raised by ArchiveStream)."""


GZIP_MAGIC = b'\x1f\x8b'
BZIP2_MAGIC = b'BZh'
XZ_MAGIC = b'\xfd7zXZ\x00'
LZMA_ALONE_MAGIC = b'\x5d\x00\x00'


def _decompressor(kind):
    if kind == 'gzip':
        return zlib.decompressobj(16 + zlib.MAX_WBITS)  # verifies the trailer: CRC32 and size
    if kind == 'bzip2':
        import bz2
        return bz2.BZ2Decompressor()
    if kind in ('xz', 'lzma'):
        import lzma
        return lzma.LZMADecompressor(lzma.FORMAT_AUTO)  # verifies the stream's check
    return None


class ArchiveStream(object):
    """The uncompressed bytes of a tar archive, read once, for tarfile's stream mode.

    Hashes every raw byte (the archive checksum) and decompresses with zlib, bz2 or lzma
    itself, so that the end of each compressed stream is reached and its trailer verified
    (tarfile's stream mode never reads the gzip CRC). finish() reads everything after the
    tar end-of-archive blocks to EOF: only zero padding may follow.
    """

    OUT = 4 * CHUNK  # at most this much decompressed data at once (no decompression bomb in memory)

    def __init__(self, handle, path):
        self.handle = handle
        self.path = path
        self.digest = hashlib.sha256()
        self.raw_offset = 0
        self.offset = 0  # uncompressed bytes handed out
        head = self._raw(6)
        if head.startswith(GZIP_MAGIC):
            self.kind = 'gzip'
        elif head.startswith(BZIP2_MAGIC):
            self.kind = 'bzip2'
        elif head.startswith(XZ_MAGIC):
            self.kind = 'xz'
        elif head.startswith(LZMA_ALONE_MAGIC):
            self.kind = 'lzma'
        else:
            self.kind = 'tar'
        self.decomp = _decompressor(self.kind)
        self.pending = head  # raw bytes not yet fed to the decompressor
        self.buffer = b''
        self.pos = 0
        self.raw_eof = False

    def _raw(self, size):
        data = self.handle.read(size)
        self.digest.update(data)
        self.raw_offset += len(data)
        return data

    def _damaged(self, what):
        return ArchiveDamaged('src %s is damaged: %s (byte %d of the file); nothing was staged' % (self.path, what, self.raw_offset))

    def _more(self):
        """The next piece of uncompressed data; b'' at the end of the file."""
        while True:
            if self.decomp is None:
                if self.pending:
                    data, self.pending = self.pending, b''
                    return data
                return self._raw(CHUNK)
            if self.decomp.eof:
                rest = self.decomp.unused_data + self.pending
                self.pending = b''
                rest = rest.lstrip(b'\0')  # zero padding after a compressed stream is allowed
                while not rest and not self.raw_eof:
                    chunk = self._raw(CHUNK)
                    if not chunk:
                        self.raw_eof = True
                    rest = chunk.lstrip(b'\0')
                if not rest:
                    return b''
                if not _same_magic(self.kind, rest):
                    raise self._damaged('unexpected data after the end of the %s stream' % self.kind)
                self.decomp = _decompressor(self.kind)  # a concatenated stream (gzip members, bzip2 -c a b)
                self.pending = rest
                continue
            if not self.pending and getattr(self.decomp, 'needs_input', True) and not getattr(self.decomp, 'unconsumed_tail', b''):
                self.pending = self._raw(CHUNK)
                if not self.pending:
                    raise self._damaged('the %s stream ends before its end marker and trailer (the file is cut short)' % self.kind)
            data, self.pending = self.pending, b''
            try:
                if self.kind == 'gzip':
                    out = self.decomp.decompress(self.decomp.unconsumed_tail + data, self.OUT)
                else:
                    out = self.decomp.decompress(data, max_length=self.OUT)
            except (zlib.error, EOFError, OSError, ValueError, LookupError) as exc:
                raise self._damaged('%s data error (%s)' % (self.kind, exc))
            except Exception as exc:  # lzma.LZMAError is not an OSError on every Python
                if type(exc).__name__ != 'LZMAError':
                    raise
                raise self._damaged('%s data error (%s)' % (self.kind, exc))
            if out:
                return out

    def read(self, size=-1):
        if size is None or size < 0:
            size = 1 << 62
        pieces = []
        wanted = size
        while wanted > 0:
            if self.pos >= len(self.buffer):
                self.buffer = self._more()
                self.pos = 0
                if not self.buffer:
                    break
            piece = self.buffer[self.pos:self.pos + wanted]
            self.pos += len(piece)
            wanted -= len(piece)
            pieces.append(piece)
        data = b''.join(pieces)
        self.offset += len(data)
        return data

    def finish(self):
        """Read to EOF: only zero blocks may follow the tar end-of-archive; every compressed
        stream must end with a valid trailer."""
        while True:
            start = self.offset
            data = self.read(CHUNK)
            if not data:
                break
            stripped = data.lstrip(b'\0')
            if stripped:
                raise self._damaged('data follows the end-of-archive blocks at uncompressed offset %d '
                                    '(a damaged tar header ends the archive early)' % (start + len(data) - len(stripped)))
        for block in iter(lambda: self._raw(CHUNK), b''):
            pass  # a plain tar: nothing left; kept for the checksum of the whole file

    def checksum(self):
        return 'sha256:' + self.digest.hexdigest()


def _same_magic(kind, data):
    return data.startswith({'gzip': GZIP_MAGIC, 'bzip2': BZIP2_MAGIC, 'xz': XZ_MAGIC}.get(kind, b'\xff\xff'))


def _recording_tarinfo():
    """A TarInfo class that keeps the last header block tarfile read: tarfile takes a damaged
    header for the end of the archive, and this is how we tell one from the zero blocks."""
    import tarfile

    class RecordingTarInfo(tarfile.TarInfo):
        last_block = None

        @classmethod
        def frombuf(cls, buf, encoding, errors):
            cls.last_block = buf
            return super(RecordingTarInfo, cls).frombuf(buf, encoding, errors)

    return RecordingTarInfo


class TarSource(Source):
    """tar, tar.gz/tgz, tar.xz, tar.bz2: read in one pass, every byte to the end of the file."""

    kind = 'tar'

    def members(self):
        return self._walk(None)[0]

    def validate(self):
        """Read every member to the end (nothing written); check the whole list. Returns it."""
        members, content, dummy = self._walk(None)
        MemberChecker(members).check()
        self.content = content
        return members

    def scan(self, checksum=None):
        """The content digest, reading the archive once to the end without writing anything;
        every member is checked and, with ``checksum``, the archive bytes verified."""
        members, content, actual = self._walk(None)
        MemberChecker(members).check()
        _verify(self.path, checksum, actual)
        return content

    def extract(self, dest, checksum=None):
        """Extract into the empty directory dest in one pass over the archive (decompressed once);
        return the content digest.

        Regular files and directories are written as they stream by, checked member by member
        (no absolute path, no '..', no device, fifo or duplicate); no symlink or hardlink exists
        on disk while they are written, so nothing can land outside dest. Links are recorded and
        created last, after every rule of MemberChecker passed on the complete list. The archive is
        read to its end: a damaged header, damaged compressed data or a missing trailer refuses it.
        When ``checksum`` is given, the sha256 of the archive bytes read is compared with it at the end.
        On any error dest is emptied again before the error is raised.
        """
        if os.listdir(dest):
            raise RedbuttonError('extracting %s: the destination %s is not empty' % (self.path, dest))
        try:
            members, content, actual = self._walk(dest)
            MemberChecker(members).check()
            _verify(self.path, checksum, actual)
            _create_links(members, dest)
        except BaseException:
            _empty_dir(dest)
            raise
        return content

    def _walk(self, dest):
        """One pass: every member (written under dest when dest is given), the content digest,
        the checksum of the archive bytes."""
        import tarfile
        members = []
        seen = {}
        dirs = []
        parents = set()  # directories made or checked under dest
        content = ContentDigest()
        info_class = _recording_tarinfo()
        current = None
        try:
            with open(self.path, 'rb') as raw:
                stream = ArchiveStream(raw, self.path)
                try:
                    tar = tarfile.open(fileobj=stream, mode='r|', tarinfo=info_class)
                except tarfile.TarError as exc:
                    raise RedbuttonError('src %s is not a readable tar archive: %s' % (self.path, exc))
                try:
                    for info in tar:
                        current = info.name
                        member = _tar_member(info)
                        members.append(member)
                        if not admit_member(member, seen):
                            continue
                        content.add_parents(member.parts)
                        if member.kind == DIR:
                            content.add_dir(member.path)
                            if dest is not None:
                                target = os.path.join(dest, *member.parts)
                                if not os.path.isdir(target):
                                    fault_point('extract', target)
                                    os.makedirs(target)
                                parents.add(target)
                                dirs.append((target, info))
                        elif member.kind == FILE:
                            target = os.path.join(dest, *member.parts) if dest is not None else None
                            content.add_file(member.path, info.mode, self._file(tar, info, target, parents))
                        elif member.kind == SYMLINK:
                            content.add_link(member.path, member.link)
                        else:
                            link = '/'.join(part for part in (member.link or '').split('/') if part not in ('', '.'))
                            if link in content.entries:  # else MemberChecker refuses it below
                                content.copy_entry(member.path, link)
                        current = None
                    end = tar.offset
                finally:
                    tar.close()
                last = info_class.last_block
                if last is not None and last != tarfile.NUL * tarfile.BLOCKSIZE:
                    if not last:
                        raise ArchiveDamaged(
                            'src %s is damaged: it ends at uncompressed offset %d without the tar end-of-archive '
                            'blocks (the file is cut short); nothing was staged' % (self.path, end))
                    raise ArchiveDamaged(
                        'src %s is damaged: the tar header at uncompressed offset %d%s is not valid (%s); '
                        'nothing was staged' % (self.path, end, ' (after member %r)' % members[-1].name if members else '',
                                                'cut short' if len(last) < tarfile.BLOCKSIZE else 'bad checksum'))
                stream.finish()
        except ArchiveDamaged as exc:
            if current is not None:
                raise ArchiveDamaged('%s, while reading member %r' % (str(exc).replace('; nothing was staged', ''), current)
                                     + '; nothing was staged')
            raise
        except (tarfile.TarError, EOFError) as exc:
            where = ' in member %r' % current if current is not None else ''
            raise ArchiveDamaged('src %s is a damaged tar archive%s: %s; nothing was staged' % (self.path, where, exc))
        # Directory modes and times last: writing into them changed their mtimes.
        for target, info in reversed(dirs):
            os.chmod(target, _safe_mode(info.mode, DIR))
            os.utime(target, (info.mtime, info.mtime))
        return members, content.checksum(), stream.checksum()

    def _file(self, tar, info, target, parents=None):
        """Read a regular file member to its end (written to target when given); its sha256."""
        digest = hashlib.sha256()
        source = tar.extractfile(info)
        if target is None:
            for block in iter(lambda: source.read(CHUNK), b''):
                digest.update(block)
            return digest.hexdigest()
        try:
            _write_member(source, info, target, digest, parents)
        except OSError as exc:
            raise _write_error('staging the artifact %s: writing member %r' % (self.path, info.name), target, exc)
        return digest.hexdigest()


_UTIME_FD = os.utime in getattr(os, 'supports_fd', ())


def _verify(path, checksum, actual):
    if checksum is not None and actual != checksum:
        raise RedbuttonError(
            'checksum mismatch for src %s: expected %s, got %s; nothing was staged. Check that the '
            'artifact is the one you meant, or fix checksum' % (path, checksum, actual))


def _write_error(step, path, exc):
    """The RedbuttonError for an OSError while writing: the step, the path and what to do."""
    return RedbuttonError(describe_os_error(step, path, exc))


def admit_member(member, seen):
    """Record member in seen (path -> Member); False for the release root's own directory entry.

    Refuses a member that would replace the release root and a path that appears twice (only a
    directory may be repeated), the checks every archive kind and the streaming tar path share.
    """
    if not member.parts:
        if member.kind != DIR:
            raise RedbuttonError('member %r would replace the release root itself; refusing it' % member.name)
        return False
    earlier = seen.get(member.path)
    if earlier is not None and not (earlier.kind == DIR and member.kind == DIR):
        raise RedbuttonError(
            'member %r appears more than once in the artifact; refusing an ambiguous archive' % member.name)
    seen[member.path] = member
    return True


def _tar_member(info):
    """The Member for a TarInfo, refusing unsafe names and special files at once."""
    parts = member_parts(info.name)
    if info.isdir():
        kind = DIR
    elif info.issym():
        kind = SYMLINK
    elif info.islnk():
        kind = HARDLINK
    elif info.isreg():
        kind = FILE
    elif info.ischr() or info.isblk():
        raise RedbuttonError('member %r is a device file; refusing to extract it' % info.name)
    elif info.isfifo():
        raise RedbuttonError('member %r is a fifo; refusing to extract it' % info.name)
    else:
        raise RedbuttonError('member %r has an unsupported type %r; refusing to extract it' % (info.name, info.type))
    return Member(info.name, parts, kind, link=info.linkname or None, mode=info.mode, raw=info)


def _write_member(source, info, target, digest, parents=None):
    """Write a regular file member: never through a link, never over an existing file.

    parents: the directories this extraction already made or checked (one stat each, not one per
    file). Mode and times are set through the file's descriptor, not by its path again.
    """
    parent = os.path.dirname(target)
    if parents is None or parent not in parents:
        if not os.path.isdir(parent):
            os.makedirs(parent)
        if parents is not None:
            parents.add(parent)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_NOFOLLOW', 0) | getattr(os, 'O_CLOEXEC', 0)
    mode = _safe_mode(info.mode, FILE)
    fault_point('extract', target)
    fd = os.open(target, flags, mode)
    with os.fdopen(fd, 'wb') as handle:
        for block in iter(lambda: source.read(CHUNK), b''):
            digest.update(block)
            handle.write(block)
        handle.flush()  # nothing is written after the times are set
        os.fchmod(fd, mode)  # not narrowed by the umask: the same modes as the other sources
        if _UTIME_FD:
            os.utime(fd, (info.mtime, info.mtime))
    if not _UTIME_FD:
        os.utime(target, (info.mtime, info.mtime))


def _create_links(members, dest):
    """Create the symlinks and hardlinks of an archive whose member list passed MemberChecker."""
    for member in members:
        if member.kind not in (SYMLINK, HARDLINK):
            continue
        target = os.path.join(dest, *member.parts)
        parent = os.path.dirname(target)
        if not os.path.isdir(parent):
            os.makedirs(parent)
        if member.kind == SYMLINK:
            os.symlink(member.link, target)
        else:
            os.link(os.path.join(dest, *member_parts(member.link)), target, follow_symlinks=False)


def _empty_dir(path):
    """Remove everything inside path (not path itself)."""
    for name in os.listdir(path):
        full = os.path.join(path, name)
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full, ignore_errors=True)
        else:
            try:
                os.unlink(full)
            except OSError:
                pass


class ZipSource(Source):
    """zip; symlinks stored by Info-ZIP in external_attr are recreated as symlinks."""

    kind = 'zip'

    def _open(self):
        import zipfile
        try:
            return zipfile.ZipFile(self.path)
        except (zipfile.BadZipfile, zipfile.LargeZipFile, OSError, EOFError) as exc:
            raise ArchiveDamaged('src %s is not a readable zip archive (damaged or cut short: %s); nothing was staged'
                                 % (self.path, exc))

    def _members_of(self, archive):
        result = []
        for info in archive.infolist():
            parts = member_parts(info.filename)
            mode = (info.external_attr >> 16) & 0xFFFF
            fmt = stat.S_IFMT(mode)
            link = None
            if info.filename.endswith('/') or fmt == stat.S_IFDIR:
                kind = DIR
            elif fmt == stat.S_IFLNK:
                kind = SYMLINK
                link = self._read(archive, info).decode('utf-8', 'surrogateescape')
            elif fmt in (stat.S_IFCHR, stat.S_IFBLK):
                raise RedbuttonError('member %r is a device file; refusing to extract it' % info.filename)
            elif fmt == stat.S_IFIFO:
                raise RedbuttonError('member %r is a fifo; refusing to extract it' % info.filename)
            elif fmt == stat.S_IFSOCK:
                raise RedbuttonError('member %r is a socket; refusing to extract it' % info.filename)
            else:
                kind = FILE
            result.append(Member(info.filename, parts, kind, link=link, mode=mode & 0o7777, raw=info))
        return result

    def _damaged(self, info, exc):
        return ArchiveDamaged('src %s is damaged: member %r (header at byte %d) cannot be read to its end: %s; '
                              'nothing was staged' % (self.path, info.filename, info.header_offset, exc))

    def _read(self, archive, info):
        import zipfile
        try:
            return archive.read(info)
        except (zipfile.BadZipfile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
            raise self._damaged(info, exc)

    def members(self):
        archive = self._open()
        try:
            return self._members_of(archive)
        finally:
            archive.close()

    def validate(self):
        self.scan()
        return self.members()

    def scan(self, checksum=None):
        """Read every member to its end (CRC checked), write nothing; the content digest."""
        if checksum is not None:
            _verify(self.path, checksum, file_checksum(self.path))
        return self._walk(None)

    def extract(self, dest, checksum=None):
        if checksum is not None:
            _verify(self.path, checksum, file_checksum(self.path))
        try:
            return self._walk(dest)
        except BaseException:
            _empty_dir(dest)
            raise

    def _walk(self, dest):
        archive = self._open()
        content = ContentDigest()
        try:
            members = MemberChecker(self._members_of(archive)).check()
            seen = {}
            for member in members:
                if not admit_member(member, seen):
                    continue
                content.add_parents(member.parts)
                target = os.path.join(dest, *member.parts) if dest is not None else None
                if member.kind == DIR:
                    content.add_dir(member.path)
                    if target is not None:
                        if not os.path.isdir(target):
                            fault_point('extract')
                            os.makedirs(target)
                        os.chmod(target, _safe_mode(member.mode, DIR))
                    continue
                if member.kind == SYMLINK:
                    content.add_link(member.path, member.link)
                    if target is not None:
                        _makedirs_for(target)
                        fault_point('extract')
                        os.symlink(member.link, target)
                    continue
                content.add_file(member.path, member.mode, self._file(archive, member, target))
        finally:
            archive.close()
        return content.checksum()

    def _file(self, archive, member, target):
        import zipfile
        digest = hashlib.sha256()
        try:
            with archive.open(member.raw) as source:
                if target is None:
                    for block in iter(lambda: source.read(CHUNK), b''):
                        digest.update(block)
                    return digest.hexdigest()
                _makedirs_for(target)
                try:
                    fault_point('extract', target)
                    with open(target, 'wb') as handle:
                        for block in iter(lambda: source.read(CHUNK), b''):
                            digest.update(block)
                            handle.write(block)
                    os.chmod(target, _safe_mode(member.mode, FILE))
                except OSError as exc:
                    raise _write_error('staging the artifact %s: writing member %r' % (self.path, member.name), target, exc)
        except (zipfile.BadZipfile, zipfile.LargeZipFile, zlib.error, EOFError, ValueError) as exc:
            raise self._damaged(member.raw, exc)
        return digest.hexdigest()


def _makedirs_for(target):
    parent = os.path.dirname(target)
    if not os.path.isdir(parent):
        os.makedirs(parent)


class DirectorySource(Source):
    """A directory: copied with symlinks preserved (and checked like an archive's)."""

    kind = 'directory'

    def checksum(self):
        return tree_checksum(self.path)

    def scan(self, checksum=None):
        self.validate()
        content = tree_checksum(self.path)
        _verify(self.path, checksum, content)
        return content

    def members(self):
        result = []
        for dirpath, dirnames, filenames in os.walk(self.path):
            dirnames.sort()
            for name in dirnames + sorted(filenames):
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, self.path).replace(os.sep, '/')
                info = os.lstat(full)
                mode = info.st_mode
                link = None
                if stat.S_ISLNK(mode):
                    kind = SYMLINK
                    link = os.readlink(full)
                elif stat.S_ISDIR(mode):
                    kind = DIR
                elif stat.S_ISREG(mode):
                    kind = FILE
                elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                    raise RedbuttonError('member %r of directory %s is a device file; refusing to copy it' % (rel, self.path))
                elif stat.S_ISFIFO(mode):
                    raise RedbuttonError('member %r of directory %s is a fifo; refusing to copy it' % (rel, self.path))
                else:
                    raise RedbuttonError('member %r of directory %s is a socket or other special file; refusing to copy it' % (rel, self.path))
                result.append(Member(rel, rel.split('/'), kind, link=link, mode=stat.S_IMODE(mode)))
        return result

    def extract(self, dest, checksum=None):
        """Copy the tree into dest. Returns None: the content digest is checksum()."""
        self.validate()
        fault_point('extract')
        shutil.copytree(self.path, dest, symlinks=True, dirs_exist_ok=True)
        for dirpath, dirnames, filenames in os.walk(dest):
            for name in dirnames + filenames:
                full = os.path.join(dirpath, name)
                info = os.lstat(full)
                if stat.S_ISLNK(info.st_mode):
                    continue
                kind = DIR if stat.S_ISDIR(info.st_mode) else FILE
                os.chmod(full, _safe_mode(stat.S_IMODE(info.st_mode), kind))
        return None  # the caller digested the source tree already (DirectorySource.checksum)


def open_source(path):
    """The Source for path: a directory, a zip or a tar archive (any compression)."""
    if os.path.isdir(path):
        return DirectorySource(path)
    if not os.path.exists(path):
        raise RedbuttonError('src %s does not exist on the target host' % path)
    if path.lower().endswith('.zip'):
        return ZipSource(path)
    # Imported here and where the archives are read: the on-host command and the calls that
    # stage nothing never need them.
    import tarfile
    import zipfile
    if tarfile.is_tarfile(path):
        return TarSource(path)
    if zipfile.is_zipfile(path):
        return ZipSource(path)
    raise RedbuttonError(
        'src %s is neither a directory nor a tar (.tar, .tar.gz, .tgz, .tar.xz, .tar.bz2) or zip archive' % path)
