# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""File trees for redbutton.deploy.baseline: walk, filter, hash and compare.

Private to the collection (leading underscore): other collections must not import it.

A tree is recorded as a dict {relative path: entry}; the key '.' is the probe's path
itself. Entries:

    file   {"type": "file", "size", "sha256", "mode", "owner", "group", "cache"}
    dir    {"type": "dir", "mode", "owner", "group"}
    link   {"type": "link", "target"}
    other  {"type": "fifo"|"socket"|"char"|"block", "mode", "owner", "group"}

'.' also carries "link" when the probe path is a symlink (it is always followed).
"cache" is [st_dev, st_ino, st_mtime_ns, st_ctime_ns] of the file whose content was
hashed, or null when the file changed while it was read; it is never compared, it
only lets a later scan reuse the hash (see TreeScanner.scan).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import grp
import hashlib
import itertools
import os
import pwd
import re
import stat
import threading

CHUNK_SIZE = 1 << 20
# A recorded hash is reused only for files whose ctime and mtime are older than the
# start of the capture by this margin (git's "racy clean" rule): a write in the same
# clock tick as the capture could otherwise leave the inode metadata unchanged.
RACY_MARGIN_NS = 2 * 10 ** 9
MAX_WORKERS = 4

CONTENT_ATTRIBUTES = ('type', 'sha256', 'size', 'target')
ATTRIBUTES = ('type', 'sha256', 'size', 'target', 'mode', 'owner', 'group', 'link')

_TYPES = (
    (stat.S_ISDIR, 'dir'),
    (stat.S_ISREG, 'file'),
    (stat.S_ISLNK, 'link'),
    (stat.S_ISFIFO, 'fifo'),
    (stat.S_ISSOCK, 'socket'),
    (stat.S_ISCHR, 'char'),
    (stat.S_ISBLK, 'block'),
)


def default_workers():
    """Hashing threads: the CPUs this process may use, at most MAX_WORKERS."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(MAX_WORKERS, cpus))


def _cached_name(cache, lookup, ident):
    """The user or group name of ident (pwd.getpwuid / grp.getgrgid), or the number when it has none."""
    name = cache.get(ident)
    if name is None:
        try:
            name = lookup(ident)[0]  # pw_name and gr_name are both the first field
        except KeyError:
            name = str(ident)
        cache[ident] = name
    return name


class TreeError(Exception):
    """The tree could not be read (permission denied, I/O error ...)."""


def file_type(mode):
    for test, name in _TYPES:
        if test(mode):
            return name
    return 'unknown'


def glob_to_regex(pattern):
    """Translate one include/exclude glob into a regular expression source.

    Globs are matched against paths relative to the tree root, with '/' separators:
    '*' and '?' never cross a '/', '[...]' is a character class ('[!...]' negates),
    '**' matches any number of directories ('**/x', 'a/**/b'; a trailing '/**' matches
    everything inside a directory). A glob without '/' matches at any depth, like a
    .gitignore line; a leading '/' anchors it to the tree root.
    """
    if not isinstance(pattern, str) or not pattern.strip('/'):
        raise ValueError('glob %r is empty: give a pattern such as "*.log" or "cache/**"' % (pattern,))
    anchored = pattern.startswith('/')
    glob = pattern.strip('/')
    if '..' in glob.split('/'):
        raise ValueError("glob %r contains '..': globs are relative to the tree root and cannot leave it" % (pattern,))
    out = []
    i = 0
    n = len(glob)
    while i < n:
        c = glob[i]
        if glob.startswith('**/', i):
            out.append('(?:.*/)?')
            i += 3
        elif glob.startswith('/**', i) and i + 3 == n:
            out.append('/.*')
            i += 3
        elif glob.startswith('**', i):
            out.append('.*')
            i += 2
        elif c == '*':
            out.append('[^/]*')
            i += 1
        elif c == '?':
            out.append('[^/]')
            i += 1
        elif c == '[':
            end = glob.find(']', i + 2 if glob.startswith('[!', i) or glob.startswith('[]', i) else i + 1)
            if end < 0:
                out.append(re.escape(c))
                i += 1
                continue
            body = glob[i + 1:end]
            if body.startswith('!'):
                body = '^' + body[1:]
            out.append('[%s]' % body.replace('\\', '\\\\').replace('/', ''))
            i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    regex = ''.join(out)
    if not anchored and '/' not in glob:
        regex = '(?:.*/)?' + regex
    return regex


def compile_globs(patterns, what):
    """One compiled regex matching any of the globs, or None for an empty list."""
    if not patterns:
        return None
    parts = []
    for pattern in patterns:
        try:
            parts.append(glob_to_regex(pattern))
        except ValueError as exc:
            raise ValueError('%s: %s' % (what, exc))
    return re.compile(r'\A(?:%s)\Z' % '|'.join(parts), re.DOTALL)


class TreeFilter(object):
    """include/exclude globs; the root '.' is always kept.

    An excluded directory is not descended. With include globs, only entries matching
    one of them are recorded, but every directory is still searched.
    """

    def __init__(self, include=None, exclude=None):
        self.include = list(include or [])
        self.exclude = list(exclude or [])
        self._include_re = None
        self._exclude_re = None
        self._compiled = False

    def _compile(self):
        if not self._compiled:
            self._include_re = compile_globs(self.include, 'include')
            self._exclude_re = compile_globs(self.exclude, 'exclude')
            self._compiled = True

    def validate(self):
        """Raise ValueError naming a bad glob."""
        self._compile()

    def excluded(self, rel):
        """rel itself matches an exclude glob (the walk then skips it and what is below)."""
        self._compile()
        return self._exclude_re is not None and self._exclude_re.match(rel) is not None

    def recorded(self, rel):
        """An entry the walk reached (not excluded) is recorded."""
        self._compile()
        return rel == '.' or self._include_re is None or self._include_re.match(rel) is not None

    def keeps(self, rel):
        """Apply the filter to an already recorded path: excluded if it or a parent is."""
        if rel == '.':
            return True
        parts = rel.split('/')
        for i in range(1, len(parts) + 1):
            if self.excluded('/'.join(parts[:i])):
                return False
        return self.recorded(rel)


class FileHasher(object):
    """sha256 of regular files with hashlib, read in large chunks on a few threads.

    hashlib and os.readv release the GIL, so two threads keep two cores busy on large
    files; for small files the per-file Python work dominates and threads cost little.
    """

    def __init__(self, workers=None, follow=False):
        self.workers = workers
        self.follow = follow

    def _flags(self):
        flags = os.O_RDONLY | getattr(os, 'O_CLOEXEC', 0) | getattr(os, 'O_NONBLOCK', 0)
        if not self.follow:
            flags |= getattr(os, 'O_NOFOLLOW', 0)
        return flags

    @staticmethod
    def _digest(fd, buf):
        view = memoryview(buf)
        digest = hashlib.sha256()
        size = len(buf)
        while True:
            got = os.readv(fd, [buf])
            if not got:
                break
            digest.update(buf if got == size else view[:got])
        return digest.hexdigest()

    def hash_one(self, path, buf, flags):
        """Return (sha256, stat, stable) for one file, or None if it vanished.

        The stat is the fstat of the descriptor that was read, so metadata and content
        belong to the same inode. A file whose size, mtime or ctime moved while it was
        read is read again (up to three times) and reported not stable.
        """
        result = None
        for dummy in range(3):
            try:
                fd = os.open(path, flags)
            except OSError as exc:
                if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                    return None
                if exc.errno == errno.ELOOP:
                    return 'link'
                raise TreeError('cannot read %s: %s' % (path, exc.strerror))
            try:
                before = os.fstat(fd)
                if not stat.S_ISREG(before.st_mode):
                    return 'changed-type'
                digest = self._digest(fd, buf)
                after = os.fstat(fd)
            except OSError as exc:
                raise TreeError('cannot read %s: %s' % (path, exc.strerror))
            finally:
                os.close(fd)
            stable = (before.st_size == after.st_size and before.st_mtime_ns == after.st_mtime_ns
                      and before.st_ctime_ns == after.st_ctime_ns)
            result = (digest, after, stable)
            if stable:
                break
        return result

    def hash_many(self, paths, sizes):
        """Hash every path; returns a list aligned with paths (see hash_one)."""
        results = [None] * len(paths)
        if not paths:
            return results
        order = sorted(range(len(paths)), key=lambda i: -sizes[i])
        workers = self.workers or default_workers()
        workers = max(1, min(workers, len(paths)))
        flags = self._flags()
        counter = itertools.count()
        errors = []

        def work():
            buf = bytearray(CHUNK_SIZE)
            try:
                for position in counter:
                    if position >= len(order) or errors:
                        return
                    index = order[position]
                    results[index] = self.hash_one(paths[index], buf, flags)
            except TreeError as exc:
                errors.append(exc)
            except Exception as exc:  # pylint: disable=broad-except
                # never lose a file silently because a worker thread died
                errors.append(TreeError('hashing failed: %s: %s' % (type(exc).__name__, exc)))

        if workers == 1:
            work()
        else:
            threads = [threading.Thread(target=work, name='redbutton-hash-%d' % i) for i in range(workers)]
            for thread in threads:
                thread.daemon = True
                thread.start()
            for thread in threads:
                thread.join()
        if errors:
            raise errors[0]
        return results


class TreeScanner(object):
    """Record a file or a directory tree (see the module docstring for the format)."""

    def __init__(self, path, include=None, exclude=None, follow=False, workers=None):
        self.path = path
        self.filter = TreeFilter(include, exclude)
        self.follow = follow
        self.workers = workers
        self._users = {}
        self._groups = {}

    def _owner(self, uid):
        return _cached_name(self._users, pwd.getpwuid, uid)

    def _group(self, gid):
        return _cached_name(self._groups, grp.getgrgid, gid)

    def _meta(self, st, kind):
        entry = {'type': kind, 'mode': '%04o' % stat.S_IMODE(st.st_mode),
                 'owner': self._owner(st.st_uid), 'group': self._group(st.st_gid)}
        if kind == 'file':
            entry['size'] = st.st_size
        return entry

    @staticmethod
    def fingerprint(st):
        return [st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns]

    @staticmethod
    def _reusable(recorded, st, trusted_before_ns):
        if not recorded or trusted_before_ns is None or recorded.get('type') != 'file':
            return False
        return (recorded.get('cache') == [st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns]
                and recorded.get('size') == st.st_size and 'sha256' in recorded
                and st.st_mtime_ns < trusted_before_ns and st.st_ctime_ns < trusted_before_ns)

    def _link_entry(self, abspath):
        try:
            return {'type': 'link', 'target': os.readlink(abspath)}
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise TreeError('cannot read link %s: %s' % (abspath, exc.strerror))

    def _stat_entry(self, dirent):
        """(stat, is_link) of a directory entry honouring follow; None if it vanished."""
        try:
            if dirent.is_symlink():
                if not self.follow:
                    return None, True
                try:
                    return dirent.stat(follow_symlinks=True), True
                except OSError:
                    return None, True  # broken link: recorded as a link
            return dirent.stat(follow_symlinks=False), False
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return None, False
            raise TreeError('cannot stat %s: %s' % (dirent.path, exc.strerror))

    def _walk(self, top, top_stat, files, pending):
        """Walk the directory top, filling files and the (rel, abspath, stat) to hash."""
        stack = [('', top, ((top_stat.st_dev, top_stat.st_ino),))]
        while stack:
            rel_dir, abs_dir, ancestors = stack.pop()
            try:
                iterator = os.scandir(abs_dir)
            except OSError as exc:
                if exc.errno == errno.ENOENT and rel_dir:
                    continue
                raise TreeError('cannot list %s: %s' % (abs_dir, exc.strerror))
            with iterator:
                for dirent in iterator:
                    rel = rel_dir + '/' + dirent.name if rel_dir else dirent.name
                    if self.filter.excluded(rel):
                        continue
                    st, is_link = self._stat_entry(dirent)
                    if st is None:
                        if is_link:
                            entry = self._link_entry(dirent.path)
                            if entry is not None and self.filter.recorded(rel):
                                files[rel] = entry
                        continue
                    kind = file_type(st.st_mode)
                    if kind == 'dir':
                        key = (st.st_dev, st.st_ino)
                        if key in ancestors:
                            # a followed link back up the tree: recorded, not descended
                            entry = self._link_entry(dirent.path) if is_link else self._meta(st, kind)
                            if entry is not None and self.filter.recorded(rel):
                                files[rel] = entry
                            continue
                        stack.append((rel, dirent.path, ancestors + (key,)))
                    if not self.filter.recorded(rel):
                        continue
                    if kind == 'file':
                        pending.append((rel, dirent.path, st))
                    else:
                        files[rel] = self._meta(st, kind)

    def _hash_pending(self, files, pending, reuse, trusted_before_ns):
        to_hash = []
        for rel, abspath, st in pending:
            recorded = reuse.get(rel) if reuse else None
            if self._reusable(recorded, st, trusted_before_ns):
                entry = self._meta(st, 'file')
                entry['sha256'] = recorded['sha256']
                entry['cache'] = recorded['cache']
                files[rel] = entry
            else:
                to_hash.append((rel, abspath, st))
        hasher = FileHasher(self.workers, self.follow)
        results = hasher.hash_many([item[1] for item in to_hash], [item[2].st_size for item in to_hash])
        for (rel, abspath, st), result in zip(to_hash, results):
            if result is None:
                continue  # removed while we looked
            if result in ('link', 'changed-type'):
                # replaced by something else between the listing and the read
                try:
                    fresh = os.lstat(abspath)
                except OSError:
                    continue
                if stat.S_ISLNK(fresh.st_mode):
                    entry = self._link_entry(abspath)
                    if entry is not None:
                        files[rel] = entry
                else:
                    files[rel] = self._meta(fresh, file_type(fresh.st_mode))
                continue
            digest, fst, stable = result
            entry = self._meta(fst, 'file')
            entry['sha256'] = digest
            entry['cache'] = self.fingerprint(fst) if stable else None
            files[rel] = entry
        return len(to_hash)

    def scan(self, reuse=None, trusted_before_ns=None):
        """Record the tree.

        reuse: recorded files of an earlier scan of the same path; a file whose
        (dev, inode, size, mtime, ctime) equal the recorded ones and whose mtime and
        ctime are older than trusted_before_ns keeps the recorded sha256 instead of
        being read again. Pass None to hash every file.

        Returns {"exists", "type", "link", "files", "count", "bytes", "digest",
        "hashed"} ("hashed" counts the files actually read; it is not stored).
        """
        self.filter.validate()
        path = self.path
        files = {}
        link = None
        try:
            lst = os.lstat(path)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
                raise TreeError('cannot stat %s: %s' % (path, exc.strerror))
            lst = None
        st = lst
        if lst is not None and stat.S_ISLNK(lst.st_mode):
            link = os.readlink(path)
            try:
                st = os.stat(path)
            except OSError:
                st = None
        hashed = 0
        if st is not None:
            kind = file_type(st.st_mode)
            pending = []
            if kind == 'file':
                pending.append(('.', path, st))
            else:
                files['.'] = self._meta(st, kind)
            if kind == 'dir':
                self._walk(path, st, files, pending)
            hashed = self._hash_pending(files, pending, reuse, trusted_before_ns)
            if link is not None and '.' in files:
                files['.']['link'] = link
        return summarise({'exists': st is not None, 'link': link, 'files': files}, hashed=hashed)


def summarise(result, hashed=None):
    """Add type/count/bytes/digest to a tree result (in place) and return it."""
    files = result['files']
    root = files.get('.')
    result['type'] = root['type'] if root else None
    result['count'] = len(files)
    result['bytes'] = sum(entry.get('size', 0) for entry in files.values())
    digest = hashlib.sha256()
    for rel in sorted(files):
        entry = files[rel]
        line = '\0'.join([rel] + ['%s=%s' % (key, entry[key]) for key in ATTRIBUTES if key in entry])
        digest.update(line.encode('utf-8', 'surrogateescape') + b'\n')
    result['digest'] = 'sha256:' + digest.hexdigest()
    if hashed is not None:
        result['hashed'] = hashed
    return result


def filter_files(files, tree_filter):
    """The recorded files that tree_filter keeps (to compare with new globs)."""
    return dict((rel, entry) for rel, entry in files.items() if tree_filter.keeps(rel))


def compare_trees(expected, found, mode='exact'):
    """(added, removed, changed) between two recorded file dicts.

    exact: every attribute counts. no_loss: additions and mode/owner/link changes are
    allowed; every recorded entry must still be there with the same content.
    """
    attributes = ATTRIBUTES if mode == 'exact' else CONTENT_ATTRIBUTES
    added = sorted(rel for rel in found if rel not in expected) if mode == 'exact' else []
    removed = sorted(rel for rel in expected if rel not in found)
    changed = []
    for rel in sorted(rel for rel in expected if rel in found):
        old = expected[rel]
        new = found[rel]
        names = [key for key in attributes if old.get(key) != new.get(key)]
        if names:
            changed.append({
                'item': rel, 'attributes': names,
                'expected': dict((key, old.get(key)) for key in names),
                'found': dict((key, new.get(key)) for key in names),
            })
    return added, removed, changed
