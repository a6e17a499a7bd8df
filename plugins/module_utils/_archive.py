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
import tarfile
import zipfile

from ansible_collections.redbutton.deploy.plugins.module_utils._common import RedbuttonError

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


def tree_checksum(path):
    """Digest of a directory tree: what it contains, not when or by whom it was written.

    Sorted relative paths, each with its type; regular files with the owner execute bit and
    the sha256 of their content; symlinks with their target. Directory modes, owners and
    times do not count, so the same tree packed, uploaded and extracted elsewhere has the
    same digest.
    """
    entries = []
    for dirpath, dirnames, filenames in os.walk(path):
        rel_dir = os.path.relpath(dirpath, path)
        rel_dir = '' if rel_dir == '.' else rel_dir.replace(os.sep, '/')
        for name in dirnames + filenames:
            rel = rel_dir + '/' + name if rel_dir else name
            full = os.path.join(dirpath, name)
            info = os.lstat(full)
            if stat.S_ISLNK(info.st_mode):
                entries.append((rel, 'l', os.readlink(full)))
            elif stat.S_ISDIR(info.st_mode):
                entries.append((rel, 'd', ''))
            elif stat.S_ISREG(info.st_mode):
                flag = 'x' if info.st_mode & stat.S_IXUSR else '-'
                entries.append((rel, 'f', flag + file_checksum(full)[7:]))
            else:
                entries.append((rel, 'o', '%o' % stat.S_IFMT(info.st_mode)))
    digest = hashlib.sha256()
    for rel, kind, extra in sorted(entries):
        digest.update(('%s\0%s\0%s\n' % (kind, rel, extra)).encode('utf-8', 'surrogateescape'))
    return 'sha256:' + digest.hexdigest()


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


class TarSource(Source):
    """tar, tar.gz/tgz, tar.xz, tar.bz2 (tarfile 'r:*')."""

    kind = 'tar'

    def _open(self):
        try:
            return tarfile.open(self.path, 'r:*')
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise RedbuttonError('src %s is not a readable tar archive: %s' % (self.path, exc))

    def _members_of(self, tar):
        try:
            infos = tar.getmembers()
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise RedbuttonError('src %s is a damaged tar archive: %s' % (self.path, exc))
        return [_tar_member(info) for info in infos]

    def members(self):
        tar = self._open()
        try:
            return self._members_of(tar)
        finally:
            tar.close()

    def extract(self, dest, checksum=None):
        """Extract into the empty directory dest in one pass over the archive (decompressed once).

        Regular files and directories are written as they stream by, checked member by member
        (no absolute path, no '..', no device, fifo or duplicate); no symlink or hardlink exists
        on disk while they are written, so nothing can land outside dest. Links are recorded and
        created last, after every rule of MemberChecker passed on the complete list. When
        ``checksum`` is given, the sha256 of the archive bytes read is compared with it at the end.
        On any error dest is emptied again before the error is raised.
        """
        if os.listdir(dest):
            raise RedbuttonError('extracting %s: the destination %s is not empty' % (self.path, dest))
        try:
            with open(self.path, 'rb') as raw:
                reader = HashingReader(raw) if checksum is not None else raw
                members = self._extract_stream(reader, dest)
                if checksum is not None:
                    reader.drain()
            MemberChecker(members).check()
            _create_links(members, dest)
            if checksum is not None and reader.checksum() != checksum:
                raise RedbuttonError(
                    'checksum mismatch for src %s: expected %s, got %s; nothing was staged. Check that the '
                    'artifact is the one you meant, or fix checksum' % (self.path, checksum, reader.checksum()))
        except BaseException:
            _empty_dir(dest)
            raise

    def _extract_stream(self, reader, dest):
        """Write files and directories while reading; return every member, links included."""
        members = []
        seen = {}
        dirs = []
        try:
            tar = tarfile.open(fileobj=reader, mode='r|*')
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise RedbuttonError('src %s is not a readable tar archive: %s' % (self.path, exc))
        try:
            for info in tar:
                member = _tar_member(info)
                members.append(member)
                if not admit_member(member, seen):
                    continue
                target = os.path.join(dest, *member.parts)
                if member.kind == DIR:
                    if not os.path.isdir(target):
                        os.makedirs(target)
                    dirs.append((target, info))
                elif member.kind == FILE:
                    try:
                        _write_member(tar, info, target)
                    except OSError as exc:
                        raise RedbuttonError('extracting member %r of %s failed: %s' % (member.name, self.path, exc))
        except (tarfile.TarError, EOFError) as exc:  # tarfile wraps zlib, bz2 and lzma errors
            raise RedbuttonError('src %s is a damaged tar archive: %s' % (self.path, exc))
        finally:
            tar.close()
        # Directory modes and times last: writing into them changed their mtimes.
        for target, info in reversed(dirs):
            os.chmod(target, _safe_mode(info.mode, DIR))
            os.utime(target, (info.mtime, info.mtime))
        return members


class HashingReader(object):
    """A read-only file wrapper that hashes every byte read through it (tarfile's stream mode
    reads the archive sequentially, so the checksum comes for free)."""

    def __init__(self, handle):
        self.handle = handle
        self.digest = hashlib.sha256()

    def read(self, size=-1):
        data = self.handle.read(size)
        self.digest.update(data)
        return data

    def drain(self):
        """Hash what tarfile did not need to read (the padding after the end-of-archive)."""
        for block in iter(lambda: self.read(CHUNK), b''):
            pass

    def checksum(self):
        return 'sha256:' + self.digest.hexdigest()


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


def _write_member(tar, info, target):
    """Write a regular file member: never through a link, never over an existing file."""
    parent = os.path.dirname(target)
    if not os.path.isdir(parent):
        os.makedirs(parent)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_NOFOLLOW', 0) | getattr(os, 'O_CLOEXEC', 0)
    mode = _safe_mode(info.mode, FILE)
    fd = os.open(target, flags, mode)
    with os.fdopen(fd, 'wb') as handle:
        source = tar.extractfile(info)
        shutil.copyfileobj(source, handle, CHUNK)
        os.fchmod(fd, mode)  # not narrowed by the umask: the same modes as the other sources
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
        try:
            return zipfile.ZipFile(self.path)
        except (zipfile.BadZipfile, OSError) as exc:
            raise RedbuttonError('src %s is not a readable zip archive: %s' % (self.path, exc))

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
                link = archive.read(info).decode('utf-8', 'surrogateescape')
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

    def members(self):
        archive = self._open()
        try:
            return self._members_of(archive)
        finally:
            archive.close()

    def extract(self, dest):
        archive = self._open()
        try:
            members = MemberChecker(self._members_of(archive)).check()
            for member in members:
                target = os.path.join(dest, *member.parts) if member.parts else dest
                if member.kind == DIR:
                    if not os.path.isdir(target):
                        os.makedirs(target)
                    os.chmod(target, _safe_mode(member.mode, DIR))
                    continue
                parent = os.path.dirname(target)
                if not os.path.isdir(parent):
                    os.makedirs(parent)
                if member.kind == SYMLINK:
                    os.symlink(member.link, target)
                    continue
                with archive.open(member.raw) as source:
                    with open(target, 'wb') as handle:
                        shutil.copyfileobj(source, handle, CHUNK)
                os.chmod(target, _safe_mode(member.mode, FILE))
        except (zipfile.BadZipfile, zipfile.LargeZipFile) as exc:
            raise RedbuttonError('extracting %s failed: %s' % (self.path, exc))
        finally:
            archive.close()


class DirectorySource(Source):
    """A directory: copied with symlinks preserved (and checked like an archive's)."""

    kind = 'directory'

    def checksum(self):
        return tree_checksum(self.path)

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

    def extract(self, dest):
        self.validate()
        shutil.copytree(self.path, dest, symlinks=True, dirs_exist_ok=True)
        for dirpath, dirnames, filenames in os.walk(dest):
            for name in dirnames + filenames:
                full = os.path.join(dirpath, name)
                info = os.lstat(full)
                if stat.S_ISLNK(info.st_mode):
                    continue
                kind = DIR if stat.S_ISDIR(info.st_mode) else FILE
                os.chmod(full, _safe_mode(stat.S_IMODE(info.st_mode), kind))


def open_source(path):
    """The Source for path: a directory, a zip or a tar archive (any compression)."""
    if os.path.isdir(path):
        return DirectorySource(path)
    if not os.path.exists(path):
        raise RedbuttonError('src %s does not exist on the target host' % path)
    if path.lower().endswith('.zip'):
        return ZipSource(path)
    if tarfile.is_tarfile(path):
        return TarSource(path)
    if zipfile.is_zipfile(path):
        return ZipSource(path)
    raise RedbuttonError(
        'src %s is neither a directory nor a tar (.tar, .tar.gz, .tgz, .tar.xz, .tar.bz2) or zip archive' % path)
