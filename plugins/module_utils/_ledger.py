# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The release ledger: <root>/.redbutton/ledger.json (schema 1, see docs/architecture.md).

Releases with their status and content checksum, the current release, the last switch and
a bounded, append-only event list. Written atomically; a ledger that does not parse or has
an unknown schema is an error and is never overwritten.

Private to the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

from ansible_collections.redbutton.deploy.plugins.module_utils._common import (
    RedbuttonError,
    atomic_write_json,
    read_json,
    state_dir,
    utcnow,
)

SCHEMA = 1
MAX_EVENTS = 500
LEDGER_FILE = 'ledger.json'
STATUSES = ('staged', 'active', 'ok', 'failed', 'rolled_back')
MARKABLE_STATUSES = ('ok', 'failed', 'rolled_back')
# Releases in these states are never a rollback target.
BAD_STATUSES = ('failed', 'rolled_back')


def ledger_path(root):
    return os.path.join(state_dir(root), LEDGER_FILE)


def empty_ledger():
    return {'schema': SCHEMA, 'seq': 0, 'current': None, 'releases': {}, 'last_switch': None, 'events': []}


class Ledger(object):
    """The ledger of one root. load() reads it; mutations stay in memory until save()."""

    def __init__(self, root, now=None):
        self.root = root
        self.path = ledger_path(root)
        self.now = now or utcnow
        self.data = None
        self.exists = False
        self._saved = None
        self._loaded = None
        # Added to every event this ledger records (for example the run id of a fleet rollout).
        self.context = {}

    # reading -----------------------------------------------------------------------------
    def load(self):
        data = read_json(self.path, what='ledger')
        self.exists = data is not None
        if data is None:
            data = empty_ledger()
        self._validate(data)
        self.data = data
        self._saved = self._loaded = self._serialise()
        return self

    def _validate(self, data):
        if not isinstance(data, dict):
            raise RedbuttonError(
                'ledger %s does not hold a JSON object; it was left untouched: restore it from a '
                'backup or move it aside after inspecting it' % self.path)
        schema = data.get('schema')
        if schema != SCHEMA:
            raise RedbuttonError(
                'ledger %s has schema %r but this version of redbutton.deploy understands schema %d; '
                'it was left untouched: use the redbutton.deploy version that wrote it' % (self.path, schema, SCHEMA))
        if not isinstance(data.get('releases'), dict) or not isinstance(data.get('events'), list) \
                or not isinstance(data.get('seq'), int):
            raise RedbuttonError(
                'ledger %s is malformed (releases, events or seq missing or of the wrong type); it was '
                'left untouched: restore it from a backup or move it aside after inspecting it' % self.path)
        data.setdefault('current', None)
        data.setdefault('last_switch', None)

    def _serialise(self):
        return json.dumps(self.data, sort_keys=True)

    @property
    def dirty(self):
        return self._serialise() != self._saved

    @property
    def modified(self):
        """Whether anything changed since load(), saved or not."""
        return self._serialise() != self._loaded

    @property
    def current(self):
        return self.data.get('current')

    @property
    def releases(self):
        return self.data['releases']

    def get(self, release_id):
        return self.releases.get(release_id)

    def ordered(self):
        """Release entries oldest first, by the ledger sequence they were staged at."""
        return sorted(self.releases.values(), key=lambda entry: (entry.get('staged_seq') or 0, entry['id']))

    def previous(self, current, present=None):
        """The rollback target: among releases other than current (whose directory exists,
        when ``present`` is given), activated at least once and not failed or rolled_back,
        the one with the highest activated_seq. Never mtimes, never names."""
        best = None
        for entry in self.releases.values():
            if entry['id'] == current or not entry.get('activated_seq'):
                continue
            if entry.get('status') in BAD_STATUSES:
                continue
            if present is not None and not present(entry['id']):
                continue
            if best is None or entry['activated_seq'] > best['activated_seq']:
                best = entry
        return best['id'] if best else None

    def summary(self):
        """id: status of every release, for diffs and messages."""
        return dict((entry['id'], entry.get('status')) for entry in self.ordered())

    def describe(self):
        """A human list of releases and statuses, oldest first."""
        items = ['%s (%s)' % (entry['id'], entry.get('status')) for entry in self.ordered()]
        return ', '.join(items) if items else 'none'

    # writing -----------------------------------------------------------------------------
    def _next_seq(self):
        self.data['seq'] += 1
        return self.data['seq']

    def event(self, event, release, actor=None, reason=None, **extra):
        seq = self._next_seq()
        record = {'seq': seq, 'time': self.now(), 'event': event, 'release': release, 'by': actor}
        if reason is not None:
            record['reason'] = reason
        record.update(self.context)
        record.update(extra)
        events = self.data['events']
        events.append(record)
        if len(events) > MAX_EVENTS:
            del events[:len(events) - MAX_EVENTS]
        return seq

    def add(self, release_id, checksum, source, actor=None, reason=None, metadata=None, content=None):
        """Record a freshly staged release (or a forced re-stage of an existing id).

        ``checksum`` is the sha256 of the artifact's bytes (of the tree for a directory), ``content``
        the digest of what the release holds (see _archive.ContentDigest): its identity."""
        now = self.now()
        old = self.get(release_id)
        seq = self.event('restaged' if old else 'staged', release_id, actor=actor, reason=reason,
                         status='staged', checksum=checksum, content=content or checksum)
        entry = {
            'id': release_id,
            'status': 'staged',
            'checksum': checksum,
            'content': content or checksum,
            'source': source,
            'created_at': now,
            'updated_at': now,
            'activated_at': None,
            'activated_seq': None,
            'staged_seq': seq,
            'by': actor,
            'metadata': dict(metadata or {}),
        }
        if old:
            # A forced re-stage keeps the history that orders rollbacks.
            entry['activated_at'] = old.get('activated_at')
            entry['activated_seq'] = old.get('activated_seq')
            merged = dict(old.get('metadata') or {})
            merged.update(entry['metadata'])
            entry['metadata'] = merged
        self.releases[release_id] = entry
        return entry

    def set_status(self, release_id, status, actor=None, reason=None):
        entry = self.get(release_id)
        if entry is None:
            raise RedbuttonError('release %s is not in the ledger %s; stage it first' % (release_id, self.path))
        if entry.get('status') == status:
            return False
        old = entry.get('status')
        entry['status'] = status
        entry['updated_at'] = self.now()
        if actor is not None:
            entry['by'] = actor
        self.event('status', release_id, actor=actor, reason=reason, status=status, old_status=old)
        return True

    def merge_metadata(self, release_id, metadata):
        entry = self.get(release_id)
        merged = dict(entry.get('metadata') or {})
        merged.update(metadata)
        if merged == entry.get('metadata'):
            return False
        entry['metadata'] = merged
        entry['updated_at'] = self.now()
        return True

    def activate(self, release_id, previous_id, actor=None, reason=None):
        """Record that current now points to release_id (switched from previous_id)."""
        entry = self.get(release_id)
        now = self.now()
        seq = self.event('activated', release_id, actor=actor, reason=reason, status='active', **{'from': previous_id})
        entry['status'] = 'active'
        entry['activated_at'] = now
        entry['activated_seq'] = seq
        entry['updated_at'] = now
        if actor is not None:
            entry['by'] = actor
        self.data['current'] = release_id
        self.data['last_switch'] = {'from': previous_id, 'to': release_id, 'reason': reason, 'time': now, 'by': actor}

    def sync_current(self, current):
        """Make the ledger agree with the current symlink (the symlink is the truth)."""
        self.data['current'] = current

    def remove(self, release_id, actor=None, reason=None, event='removed'):
        entry = self.releases.pop(release_id, None)
        if entry is not None:
            self.event(event, release_id, actor=actor, reason=reason, status=entry.get('status'))

    def save(self):
        """Write the ledger atomically, only when it changed."""
        if not self.dirty:
            return False
        atomic_write_json(self.path, self.data)
        self._saved = self._serialise()
        self.exists = True
        return True
