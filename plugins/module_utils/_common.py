# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared helpers of redbutton.deploy: the on-host layout, atomic state writes, ids.

Private to the collection (leading underscore): other collections must not import it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import os
import re
import tempfile

STATE_DIR = '.redbutton'
RELEASE_ID_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$')

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


def atomic_write_bytes(path, data, mode=0o644):
    """Write data to path atomically: temp file in the same directory, fsync, rename.

    A reader sees either the old content or the new one, never a partial file.
    """
    directory = os.path.dirname(os.path.abspath(path))
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


def atomic_write_json(path, data, mode=0o644):
    """Serialise data as stable, readable JSON and write it atomically."""
    text = json.dumps(data, indent=2, sort_keys=True) + '\n'
    atomic_write_bytes(path, text.encode('utf-8'), mode=mode)


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
