# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared helpers of redbutton.deploy: the on-host layout, atomic state writes, ids.

Private to the collection (leading underscore): other collections must not import it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import errno
import json
import os
import re
import signal
import tempfile

STATE_DIR = '.redbutton'
RELEASE_ID_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$')
# Baseline names: a prefix such as "before-" plus any release id (the file name stays under 255 bytes).
BASELINE_NAME_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._+-]{0,199}$')

# Option shared by every module; paired with the doc fragment redbutton.deploy.root.
ROOT_ARGUMENT_SPEC = dict(
    root=dict(type='path', required=True),
)


class RedbuttonError(Exception):
    """An error the user can act on: the message names the input and what to do."""


def state_dir(root):
    """<root>/.redbutton, where the ledger, lock, baselines and migrations live."""
    return os.path.join(root, STATE_DIR)


def utcnow():
    """Current UTC time as an ISO 8601 string with second precision and a Z suffix."""
    return datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def validate_release_id(release_id, what='release'):
    """Refuse ids that could escape releases/ or surprise a shell; return the id."""
    if not isinstance(release_id, str) or not RELEASE_ID_RE.match(release_id):
        raise RedbuttonError(
            "%s id %r is not valid: use 1 to 128 characters from A-Z a-z 0-9 . _ + -, "
            "starting with a letter or digit (no '/', no '..', not empty)" % (what, release_id))
    return release_id


# Test-only fault injection (see DEVELOPERS.md): REDBUTTON_FAULT=<error>:<point>, where <error> is
# enospc, eacces, erofs or eio and <point> a label ("ledger", "lock", "extract", "current", "shared",
# "staging", "release", "baseline") or the number n of the nth write this process makes (1 = first).
# REDBUTTON_FAULT=trace only records the points, in FAULT_TRACE.
FAULT_ENV = 'REDBUTTON_FAULT'
FAULT_ERRORS = {'enospc': errno.ENOSPC, 'eacces': errno.EACCES, 'erofs': errno.EROFS, 'eio': errno.EIO}
FAULT_TRACE = []
_FAULT_STATE = {'count': 0}


def reset_faults():
    """Start counting writes from 1 again (tests run many engine calls in one process)."""
    _FAULT_STATE['count'] = 0
    del FAULT_TRACE[:]


def fault_point(label, path=None):
    """Called before each write the engine makes; raises the OSError REDBUTTON_FAULT asks for."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    _FAULT_STATE['count'] += 1
    FAULT_TRACE.append(label)
    if spec == 'trace':
        return
    name, dummy, point = spec.partition(':')
    code = FAULT_ERRORS.get(name.strip().lower())
    if code is None:
        return
    point = point.strip()
    if point == label or point == str(_FAULT_STATE['count']):
        raise OSError(code, '%s (injected by %s=%s)' % (os.strerror(code), FAULT_ENV, spec), path or label)


def kill_point(point):
    """Test hook (DEVELOPERS.md): REDBUTTON_KILL_AT=<point> SIGKILLs this process's group here (the module and the
    Ansible worker running it), as a dead controller would. Never set in production."""
    if os.environ.get('REDBUTTON_KILL_AT') == point:
        os.killpg(os.getpgid(0), signal.SIGKILL)


def _owner_name(uid):
    try:
        import pwd
        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return 'uid %d' % uid


def _existing_parent(path):
    path = os.path.abspath(path)
    while path and not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def describe_os_error(step, path, exc):
    """One sentence for an OSError in a step: the step, the path, the error and what to do."""
    code = getattr(exc, 'errno', None)
    where = getattr(exc, 'filename', None) or path
    text = '%s failed at %s: %s' % (step, where, getattr(exc, 'strerror', None) or exc)
    if code == errno.ENOSPC or code == errno.EDQUOT:
        place = _existing_parent(path)
        text += ('. The file system holding %s is full (or the quota is reached): free space there '
                 '(df -h %s) and run again' % (place, place))
    elif code in (errno.EACCES, errno.EPERM):
        place = _existing_parent(os.path.dirname(os.path.abspath(path)) or path)
        try:
            user = _owner_name(os.geteuid())
        except AttributeError:
            user = 'the deploying user'
        text += '. Make %s writable by %s (or run with become) and run again' % (place, user)
    elif code == errno.EROFS:
        text += '. %s is on a read-only file system: remount it read-write, or choose a root on a writable one' % _existing_parent(path)
    else:
        text += '. Check the file system and run again'
    return text + '; nothing after this step was done'


def validate_baseline_name(name):
    """Refuse baseline names that could escape the baselines directory; return the name."""
    if not isinstance(name, str) or not BASELINE_NAME_RE.match(name):
        raise RedbuttonError(
            "baseline id %r is not valid: use 1 to 200 characters from A-Z a-z 0-9 . _ + -, starting "
            "with a letter or digit (for example before-<release id>)" % (name,))
    return name


def _fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path, data, mode=0o644, label=None):
    """Write data to path atomically: temp file in the same directory, fsync, rename.

    A reader sees either the old content or the new one, never a partial file. ``label`` names
    the write for REDBUTTON_FAULT (default: the file name without its extension).
    """
    directory = os.path.dirname(os.path.abspath(path))
    fault_point(label or os.path.splitext(os.path.basename(path))[0], path)
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=0o755)
    fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), suffix='.tmp', dir=directory)
    try:
        with os.fdopen(fd, 'wb') as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


def atomic_write_json(path, data, mode=0o644, label=None):
    """Serialise data as stable, readable JSON and write it atomically."""
    text = json.dumps(data, indent=2, sort_keys=True) + '\n'
    atomic_write_bytes(path, text.encode('utf-8'), mode=mode, label=label)


def read_json(path, what='state file'):
    """Load JSON from path; None when the file does not exist.

    A file that exists but does not parse raises RedbuttonError naming the file:
    callers must never overwrite it.
    """
    try:
        with open(path, 'rb') as handle:
            raw = handle.read()
    except (IOError, OSError) as exc:
        if getattr(exc, 'errno', None) == 2:
            return None
        raise RedbuttonError('cannot read %s %s: %s' % (what, path, exc))
    try:
        return json.loads(raw.decode('utf-8'))
    except ValueError as exc:
        raise RedbuttonError(
            '%s %s is corrupt (%s); it was left untouched: restore it from a backup or move it '
            'aside after inspecting it' % (what, path, exc))
