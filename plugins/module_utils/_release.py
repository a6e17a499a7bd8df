# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The release engine behind redbutton.deploy.release and release_info.

ReleaseManager does one call's work, in this order: validate the input, read the ledger
and the current symlink, resolve the release id, take the lock, stage, activate or remove,
record status and metadata, prune, release the lock. Check mode computes the same answer on
an in-memory copy of the ledger and touches nothing. The ledger is saved after every step
that changed the file system, so the ledger and the disk never disagree for long.

Private to the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import tempfile
import time
import uuid

from ansible_collections.redbutton.deploy.plugins.module_utils._archive import (
    DirectorySource,
    file_checksum,
    normalize_checksum,
    open_source,
    release_id_from_checksum,
)
from ansible_collections.redbutton.deploy.plugins.module_utils._common import (
    BASELINE_NAME_RE,
    RedbuttonError,
    _fsync_dir,
    describe_os_error,
    fault_point,
    state_dir,
    validate_release_id,
)
from ansible_collections.redbutton.deploy.plugins.module_utils._fetch import (
    FETCH_ARGUMENT_SPEC,
    fetch_artifact,
    is_url,
    redact,
    validate_fetch_params,
)
from ansible_collections.redbutton.deploy.plugins.module_utils._ledger import (
    MARKABLE_STATUSES,
    Ledger,
)
from ansible_collections.redbutton.deploy.plugins.module_utils._lock import DEFAULT_TTL, DeployLock

RELEASES_DIR = 'releases'
SHARED_DIR = 'shared'
CURRENT_LINK = 'current'
STAGING_PREFIX = '.staging-'
TRASH_PREFIX = '.trash-'
LEFTOVER_AGE = 3600  # seconds: a leftover of a killed run, not the work of a call going on now
# releases/.pending-<id>: a staged tree is being moved into place and is not in the ledger yet. A run
# killed in between leaves it; the next run knows the unrecorded releases/<id> is its own and replaces it.
PENDING_PREFIX = '.pending-'
BASELINES_DIR = 'baselines'  # under .redbutton (see _baseline.BASELINE_DIR)
RUNBOOKS_DIR = 'runbooks'  # under .redbutton (see _runbook.RUNBOOKS)
# last_switch reasons that mean "this switch undid a release" (see the `once` option).
ROLLBACK_REASONS = ('rollback', 'auto_rollback')

RELEASE_ARGUMENT_SPEC = dict(
    release=dict(type='str'),
    src=dict(type='str'),
    remote_src=dict(type='bool', default=False),
    checksum=dict(type='str'),
    shared_paths=dict(type='list', elements='str', default=[]),
    state=dict(type='str', choices=['staged', 'active', 'absent']),
    keep=dict(type='int'),
    force=dict(type='bool', default=False),
    status=dict(type='str', choices=list(MARKABLE_STATUSES)),
    previous_status=dict(type='str', choices=list(MARKABLE_STATUSES)),
    reason=dict(type='str'),
    actor=dict(type='str'),
    metadata=dict(type='dict'),
    lock_owner=dict(type='str'),
    lock_timeout=dict(type='float', default=0),
    lock_ttl=dict(type='int', default=DEFAULT_TTL),
    unlock=dict(type='bool', default=False),
    unlock_if_current=dict(type='bool', default=False),
    once=dict(type='bool', default=False),
    run_id=dict(type='str'),
    # Hidden, set by the action plugin: ask before uploading, and what the checksum covers.
    _probe=dict(type='bool', default=False),
    _checksum_of=dict(type='str', choices=['archive', 'tree'], default='archive'),
    _source=dict(type='str'),
    _content=dict(type='str'),
    _controller=dict(type='dict'),
)
# src may be an http(s) URL, fetched by the host (see _fetch): url_timeout, url_retries, ...
RELEASE_ARGUMENT_SPEC.update(FETCH_ARGUMENT_SPEC)


def releases_dir(root):
    return os.path.join(root, RELEASES_DIR)


def release_path(root, release_id):
    return os.path.join(root, RELEASES_DIR, release_id)


def shared_path_parts(path):
    """Validate a shared path: relative, no '..', not empty. Returns its parts."""
    if not isinstance(path, str) or not path.strip():
        raise RedbuttonError('shared_paths entry %r is empty; give a path relative to the release, for example "data"' % (path,))
    if path.startswith('/'):
        raise RedbuttonError('shared_paths entry %r is absolute; give a path relative to the release, for example "data"' % path)
    parts = [part for part in path.split('/') if part not in ('', '.')]
    if not parts or '..' in parts:
        raise RedbuttonError("shared_paths entry %r must name a path inside the release (no '..')" % path)
    return parts


def read_current(root):
    """The release id <root>/current points to, or None. Errors if current is not a symlink."""
    link = os.path.join(root, CURRENT_LINK)
    if not os.path.lexists(link):
        return None
    if not os.path.islink(link):
        raise RedbuttonError(
            '%s exists and is not a symlink; redbutton.deploy switches releases by replacing that '
            'symlink. Move it aside (for example into releases/<id>) and run again' % link)
    target = os.readlink(link)
    if os.path.isabs(target):
        parent = os.path.normpath(os.path.dirname(target))
        if parent != os.path.normpath(releases_dir(root)):
            return None
        return os.path.basename(target)
    norm = os.path.normpath(target)
    head, tail = os.path.split(norm)
    return tail if head == RELEASES_DIR else None


class step(object):
    """Context manager: an OSError inside becomes a RedbuttonError naming the step, the path
    and what to do (free space, fix permissions), instead of a raw errno on a temporary name."""

    def __init__(self, name, path):
        self.name = name
        self.path = path

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, trace):
        if exc is not None and isinstance(exc, (IOError, OSError)):
            raise RedbuttonError(describe_os_error(self.name, self.path, exc))
        return False


def move_aside(root, path, release_id):
    """Rename a release directory to a .trash- name (atomic: it is gone from releases/<id>)."""
    aside = os.path.join(releases_dir(root), '%s%s-%s' % (TRASH_PREFIX, release_id, uuid.uuid4().hex[:8]))
    fault_point('remove', path)
    os.rename(path, aside)
    return aside


def release_view(root, ledger, current):
    """The list of releases users see, oldest first."""
    result = []
    for entry in ledger.ordered():
        item = dict(entry)
        item['path'] = release_path(root, entry['id'])
        item['present'] = os.path.isdir(item['path'])
        item['current'] = entry['id'] == current
        result.append(item)
    return result


class ReleaseManager(object):
    """One call of redbutton.deploy.release. Build it, then call run()."""

    def __init__(self, params, check_mode=False, diff=False, warn=None):
        self.params = params
        self.check_mode = check_mode
        self.diff = diff
        self.warn = warn or (lambda message: None)
        self.root = params['root']
        self.ledger = None
        self.lock = None
        self.after_switch = None  # called right after current is renamed, before the ledger records it
        self.changed = False
        self.created = False
        self.would_exist = set()
        self.would_vanish = set()
        self.current = None
        self.source = None
        self.pruned = []
        self.locked = False
        self.lock_before = None
        self.lock_changed = False
        self.checksum_given = None
        self.verify_while_extracting = False
        self.archive_checksum = None  # sha256 of the artifact's bytes (the fast path)
        self.content = None  # content digest of src, once known
        self.deferred_id = False  # no id given and src must be read to derive it
        self.url = None  # src as an http(s) URL, fetched by the host
        self.fetched = None

    # helpers -----------------------------------------------------------------------------
    def present(self, release_id):
        if release_id in self.would_vanish:
            return False
        return release_id in self.would_exist or os.path.isdir(release_path(self.root, release_id))

    def _save(self):
        if not self.check_mode and self.ledger.dirty:
            with step('writing the ledger', self.ledger.path):
                self.ledger.save()

    # the engine's entry points (plugins/module_utils/_transition.py keeps one manager per call)
    def open(self):
        """Validate the parameters, read the ledger and the current symlink; no lock, no change."""
        self._validate_params()
        self.ledger = Ledger(self.root).load()
        self.ledger.context = self._context()
        self.current = read_current(self.root)
        if self.ledger.current != self.current:
            self.ledger.sync_current(self.current)
        return self

    def save(self):
        self._save()

    def _context(self):
        return {'run_id': self.params['run_id']} if self.params.get('run_id') else {}

    def _actor(self):
        return self.params.get('actor')

    def _reason(self):
        return self.params.get('reason')

    # input -------------------------------------------------------------------------------
    def _validate_params(self):
        p = self.params
        if p.get('release') not in (None, 'previous'):
            validate_release_id(p['release'])
        for path in p.get('shared_paths') or []:
            shared_path_parts(path)
        if p.get('keep') is not None and p['keep'] < 0:
            raise RedbuttonError('keep %r is not valid: give the number of releases to keep (0 or more)' % p['keep'])
        if (p.get('unlock') or p.get('unlock_if_current')) and not p.get('lock_owner'):
            raise RedbuttonError('unlock and unlock_if_current need lock_owner: name the owner whose lock to release')
        self.checksum_given = normalize_checksum(p.get('checksum'))
        if is_url(p.get('src')):
            self.url = p['src']
            validate_fetch_params(p)
        elif p.get('src'):
            self.source = open_source(p['src'])

    def _state(self):
        state = self.params.get('state')
        if state is None and self.params.get('src'):
            state = 'staged'
        return state

    def _identify(self):
        """What is known about src before reading its members: the checksum of its bytes, and
        its content digest when that is cheap (a directory, a controller-computed digest, or a
        ledger entry recorded with the same bytes: the fast path, no member is read)."""
        p = self.params
        given = self.checksum_given
        self.content = normalize_checksum(p.get('_content'), what='_content')
        if self.url and not given:
            # Without a checksum the download is what idempotence compares: fetch it now.
            self.warn('no checksum was given for src %s: it is downloaded on every run to compare it with what is '
                      'staged, and nothing proves it is the artifact you built. Give checksum (sha256:<hex>)' % redact(self.url))
            self._fetch_url()
        if self.source is None:
            self.archive_checksum = given
            if p.get('_checksum_of') == 'tree':
                self.content = given
        elif isinstance(self.source, DirectorySource):
            self.content = self.archive_checksum = self.source.checksum()
            if given and self.content != given:
                raise RedbuttonError(
                    'checksum mismatch for src %s: expected %s, got %s; nothing was extracted. Check that the '
                    'artifact is the one you meant, or fix checksum' % (p['src'], given, self.content))
        elif p.get('_checksum_of') == 'tree':
            self.content = self.archive_checksum = given  # verified against the extracted tree while staging
        elif given and p.get('_source'):
            # Uploaded by the action plugin, which hashed it on the controller: verified on the fly
            # while extracting (one pass over the archive), before the release gets its real name.
            self.verify_while_extracting = True
            self.archive_checksum = given
        elif self.fetched is not None:
            self.archive_checksum = self.fetched.checksum  # verified against checksum by _fetch_url
        else:
            self.archive_checksum = file_checksum(p['src'])
            if given and self.archive_checksum != given:
                raise RedbuttonError(
                    'checksum mismatch for src %s: expected %s, got %s; nothing was extracted. Check that the '
                    'artifact is the one you meant, or fix checksum' % (p['src'], given, self.archive_checksum))
        if self.content is None and self.archive_checksum:
            entry = self._entry_with_bytes(p.get('release'))
            if entry is not None:
                self.content = entry.get('content')  # None for entries recorded before content was

    def _fetch_url(self):
        """Download src into <root>/releases/ (a temporary directory in check mode), verify the checksum."""
        dest = None
        if not self.check_mode:
            dest = releases_dir(self.root)
            if not os.path.isdir(dest):
                os.makedirs(dest, mode=0o755)
        p = self.params
        self.fetched = fetch_artifact(self.url, dest, timeout=p.get('url_timeout') or 30,
                                      retries=p.get('url_retries') if p.get('url_retries') is not None else 3,
                                      validate_certs=p.get('validate_certs') is not False, headers=p.get('url_headers'))
        if self.checksum_given and self.fetched.checksum != self.checksum_given:
            raise RedbuttonError(
                'checksum mismatch for src %s: expected %s, got %s; nothing was staged. Check that the URL serves '
                'the artifact you meant, or fix checksum' % (redact(self.url), self.checksum_given, self.fetched.checksum))
        try:
            self.source = open_source(self.fetched.path)
        except RedbuttonError:
            raise RedbuttonError(
                'src %s did not serve a tar (.tar, .tar.gz, .tgz, .tar.xz, .tar.bz2) or zip archive; nothing was staged'
                % redact(self.url))

    def _src_label(self):
        return redact(self.url) if self.url else (self.params.get('_source') or self.params['src'])

    def _entry_with_bytes(self, requested):
        """The ledger entry recorded with exactly these artifact bytes (the named release's, or any)."""
        if requested == 'previous':
            return None
        if requested:
            entry = self.ledger.get(requested)
            return entry if entry and entry.get('checksum') == self.archive_checksum else None
        for entry in self.ledger.ordered():
            if entry.get('checksum') == self.archive_checksum:
                return entry
        return None

    def _resolve_id(self, state):
        requested = self.params.get('release')
        if requested == 'previous' and self.params.get('once') and self._already_rolled_back():
            return self.current
        if requested == 'previous':
            target = self.ledger.previous(self.current, present=self.present)
            if target is None:
                raise RedbuttonError(self._nothing_to_roll_back())
            return target
        if requested:
            return requested
        if self.content:
            return release_id_from_checksum(self.content)
        if self.source is not None or (self.params.get('_probe') and self.archive_checksum):
            self.deferred_id = True  # derived from the content digest, read while staging
            return None
        if state is not None or self.params.get('status') or self.params.get('metadata'):
            raise RedbuttonError('release is required: give a release id, "previous", or src to derive the id from its checksum')
        return None

    def _nothing_to_roll_back(self):
        releases = self.ledger.describe()
        if self.current:
            return ('nothing to roll back to in %s: %s (current) is the only release that has been active and is not '
                    'failed or rolled_back, with its directory present. Releases: %s. Name the release to activate '
                    'instead of "previous", or roll out a new one' % (self.root, self.current, releases))
        return ('nothing to roll back to in %s: no release is current and none has been active. Releases: %s. '
                'Roll out a release first' % (self.root, releases))

    def _already_rolled_back(self):
        """Whether the last switch was a rollback (manual or automatic) to the release that is
        current now: then a rollback with `once` has nothing left to undo."""
        last = self.ledger.data.get('last_switch') or {}
        return bool(self.current and last.get('reason') in ROLLBACK_REASONS and last.get('to') == self.current
                    and self.ledger.get(self.current) is not None)

    # the call ----------------------------------------------------------------------------
    def run(self):
        try:
            return self._run()
        except (IOError, OSError) as exc:
            raise RedbuttonError(describe_os_error('release operation in %s' % self.root, self.root, exc)
                                 + '; the ledger records only completed steps')
        finally:
            if self.fetched is not None:
                self.fetched.remove()

    def _run(self):
        self._validate_params()
        self.ledger = Ledger(self.root).load()
        self.ledger.context = self._context()
        self.current = read_current(self.root)
        current_before = self.current
        before = {'current': current_before, 'releases': self.ledger.summary()}
        if self.ledger.current != self.current:
            self.ledger.sync_current(self.current)
        state = self._state()
        self._identify()
        release_id = self._resolve_id(state)
        entry = self.ledger.get(release_id) if release_id else None
        was_ok = bool(release_id and entry and current_before == release_id and entry.get('status') == 'ok')

        plan = None
        if state in ('staged', 'active') and self.source is None and not self.url and (
                self.deferred_id or self._staging_plan(release_id) != 'noop'):
            plan = 'new' if self.deferred_id else self._staging_plan(release_id)
            if self.params.get('_probe') and not self.check_mode:
                # needs_content: the id is staged from other bytes; the content digest (computed where
                # src is) decides between a no-op and a refusal, without an upload.
                return {'changed': False, 'needs_src': True, 'needs_content': plan == 'unknown', 'release': release_id,
                        'checksum': self.archive_checksum, 'current': current_before, 'current_before': current_before}
            if not self.check_mode or not self.content:
                raise RedbuttonError(
                    'release %s is not staged in %s and no src was given: give src (an archive or directory) to '
                    'stage it' % (release_id, releases_dir(self.root)))

        self._acquire_lock()
        try:
            self._sweep_leftovers()
            release_id = self._act(state, release_id)
            self._save()
            entry = self.ledger.get(release_id) if release_id else None
            # An id derived from the content is known only now: judge it by its status before this call.
            was_ok = was_ok or bool(release_id and current_before == release_id
                                    and before['releases'].get(release_id) == 'ok')
            up_to_date = bool(was_ok and entry and (self.content is None or self.content == self._content_of(entry)))
            self._release_lock(up_to_date)
        except Exception:
            if self.params.get('unlock') and self.lock is not None and not self.check_mode:
                try:
                    self.lock.release(self.params['lock_owner'])
                except RedbuttonError:
                    pass
            raise
        if self.ledger.modified:
            self.changed = True
        return self._result(release_id, current_before, up_to_date, before)

    @staticmethod
    def _content_of(entry):
        """The content digest of a ledger entry (entries written before it was recorded: the checksum)."""
        return entry.get('content') or entry.get('checksum')

    def _act(self, state, release_id):
        """Do the call's work; returns the release id (derived while staging when none was given)."""
        if state in ('staged', 'active'):
            release_id = self._stage(release_id)
        if state == 'active':
            self._activate(release_id)
        elif state == 'absent':
            self._absent(release_id)
        if self.params.get('status'):
            if self.ledger.get(release_id) is None:
                raise RedbuttonError(
                    'cannot mark release %s %s: it is not in the ledger of %s. Releases: %s'
                    % (release_id, self.params['status'], self.root, self.ledger.describe()))
            self.ledger.set_status(release_id, self.params['status'], actor=self._actor(), reason=self._reason())
        if self.params.get('metadata'):
            if self.ledger.get(release_id) is None:
                raise RedbuttonError('cannot attach metadata to release %s: it is not in the ledger of %s' % (release_id, self.root))
            self.ledger.merge_metadata(release_id, self.params['metadata'])
        if self.params.get('keep') is not None:
            self._save()
            self._prune(self.params['keep'], release_id)
        return release_id

    # staging -----------------------------------------------------------------------------
    def _staging_plan(self, release_id):
        """'noop' (the same content staged), 'new', 'replace' or 'unknown' (staged, and only reading
        src tells whether its content is the same); refusals raise here, before anything is written."""
        entry = self.ledger.get(release_id)
        present = self.present(release_id)
        if entry and self.content is None and self.archive_checksum and entry.get('checksum') != self.archive_checksum:
            if self.source is not None or self.params.get('_probe'):
                return 'unknown'
            known = entry.get('checksum')
            raise RedbuttonError(
                'release %s is already staged with checksum %s, but checksum %s was given without src. Give src, so '
                'that its content can be compared, or use a new release id' % (release_id, known, self.archive_checksum))
        known = self._content_of(entry) if entry else None
        if entry and self.content and known != self.content:
            if not self.params.get('force'):
                raise RedbuttonError(
                    'release %s is already staged with content %s (artifact %s), but src has content %s (artifact %s). '
                    'Releases are immutable: use a new release id, or force: true to replace it'
                    % (release_id, known, entry.get('checksum'), self.content, self.archive_checksum or self.content))
            if release_id == self.current:
                raise RedbuttonError(
                    'refusing to replace release %s with different content while it is current, even with force: '
                    'activate another release first' % release_id)
            return 'replace' if present else 'new'
        if entry and present:
            return 'noop'
        if present:
            if os.path.exists(self._pending_marker(release_id)) and release_id != self.current:
                return 'replace'  # ours: a run was killed after moving it into place, before recording it
            if not self.params.get('force'):
                raise RedbuttonError(
                    '%s exists but the ledger does not know it, so its content cannot be checked: move it aside, '
                    'or use force: true to replace it' % release_path(self.root, release_id))
            if release_id == self.current:
                raise RedbuttonError('refusing to replace release %s while it is current: activate another release first' % release_id)
            return 'replace'
        return 'new'

    def _stage(self, release_id):
        """Stage src as release_id (None: derived from the content). Returns the release id."""
        staging = None
        plan = None if self.deferred_id else self._staging_plan(release_id)
        if plan == 'noop':
            return release_id
        if self.url and self.source is None and not self.check_mode:
            self._fetch_url()
        if self.content is None and self.source is not None:
            if self.check_mode or (plan == 'unknown' and not self.params.get('force')):
                # Read without writing: the same content is a no-op, other content is refused.
                self.content = self.source.scan(checksum=self._checksum_to_verify())
            else:
                staging, self.content = self._extract_to_staging(release_id)
            if self.deferred_id:
                release_id = release_id_from_checksum(self.content)
                self.deferred_id = False
            try:
                plan = self._staging_plan(release_id)
            except BaseException:
                self._discard(staging)
                raise
            if plan == 'noop':
                self._discard(staging)
                return release_id
        elif self.check_mode and self.source is not None:
            self.source.validate()
        aside = None
        if not self.check_mode:
            if staging is None:
                staging, dummy = self._extract_to_staging(release_id)
            aside = self._install(staging, release_id, plan == 'replace')
        source = redact(self.url) if self.url else (self.params.get('_source') or self.params.get('src'))
        self.ledger.add(release_id, self.archive_checksum or self.content, source, actor=self._actor(),
                        reason=self._reason(), content=self.content)
        try:
            self._save()
        except BaseException:
            # The ledger does not know the new tree: take it back out (and the replaced one back in).
            if not self.check_mode:
                shutil.rmtree(move_aside(self.root, release_path(self.root, release_id), release_id), ignore_errors=True)
                if aside is not None:
                    os.rename(aside, release_path(self.root, release_id))
                self._drop_pending(release_id)
            raise
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
        if not self.check_mode:
            self._drop_pending(release_id)
        self.would_exist.add(release_id)
        self.created = True
        self.changed = True
        return release_id

    def _checksum_to_verify(self):
        return self.checksum_given if self.verify_while_extracting else None

    @staticmethod
    def _discard(staging):
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)

    def _extract_to_staging(self, release_id):
        """Extract src into a new staging directory under releases/; returns (staging, content).
        On any error the staging directory is removed before the error is raised."""
        base = releases_dir(self.root)
        with step('creating the releases directory', base):
            if not os.path.isdir(base):
                fault_point('staging', base)
                os.makedirs(base, mode=0o755)
            fault_point('staging', base)
            staging = tempfile.mkdtemp(prefix='%s%s-' % (STAGING_PREFIX, release_id or 'new'), dir=base)
        try:
            verify = self._checksum_to_verify()
            with step('staging the artifact %s' % self._src_label(), staging):
                if verify is None:
                    content = self.source.extract(staging) or self.content
                else:
                    content = self.source.extract(staging, checksum=verify) or self.content
            if self.content is not None and content != self.content:
                raise RedbuttonError(
                    'checksum mismatch for src %s: expected content %s, got %s; nothing was staged'
                    % (self._src_label(), self.content, content))
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return staging, content

    def _sweep_leftovers(self):
        """Remove the .staging- and .trash- directories of releases/ that runs killed while extracting or pruning left
        (no later run reads them; they only take space). Only under the deploy lock, and only those untouched for
        LEFTOVER_AGE seconds, so a call that extracts without the lock is never cut short."""
        base = releases_dir(self.root)
        if not self.locked or self.check_mode or not os.path.isdir(base):
            return
        for name in os.listdir(base):
            if not name.startswith((STAGING_PREFIX, TRASH_PREFIX)):
                continue
            path = os.path.join(base, name)
            try:
                if time.time() - os.lstat(path).st_mtime > LEFTOVER_AGE:
                    shutil.rmtree(path, ignore_errors=True)
            except OSError:
                continue

    def _pending_marker(self, release_id):
        return os.path.join(releases_dir(self.root), PENDING_PREFIX + release_id)

    def _drop_pending(self, release_id):
        try:
            os.unlink(self._pending_marker(release_id))
        except OSError:
            pass

    def _install(self, staging, release_id, replace):
        """Link the shared paths into the staged tree and rename it to releases/<id>. Returns the
        replaced tree, moved aside (the caller removes it once the ledger is saved), or None."""
        base = releases_dir(self.root)
        final = release_path(self.root, release_id)
        try:
            with step('linking shared paths into release %s' % release_id, os.path.join(self.root, SHARED_DIR)):
                self._link_shared(staging, release_id)
            with step('moving the staged release into place', final):
                os.chmod(staging, 0o755)
                fault_point('release', final)
                with open(self._pending_marker(release_id), 'w') as marker:
                    marker.write(os.path.basename(staging) + '\n')
                if replace:
                    aside = os.path.join(base, '%s%s-%s' % (TRASH_PREFIX, release_id, uuid.uuid4().hex[:8]))
                    os.rename(final, aside)
                    try:
                        os.rename(staging, final)
                    except OSError:
                        os.rename(aside, final)
                        raise
                else:
                    aside = None
                    os.rename(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            self._drop_pending(release_id)
            raise
        _fsync_dir(base)
        return aside

    def _link_shared(self, staging, release_id):
        """Replace each shared path of the release with a relative link into <root>/shared."""
        for path in self.params.get('shared_paths') or []:
            parts = shared_path_parts(path)
            for depth in range(1, len(parts)):
                prefix = os.path.join(staging, *parts[:depth])
                if os.path.islink(prefix) or (os.path.lexists(prefix) and not os.path.isdir(prefix)):
                    raise RedbuttonError(
                        'shared path %r cannot be linked: %s in the release is not a plain directory'
                        % (path, '/'.join(parts[:depth])))
            shared = os.path.join(self.root, SHARED_DIR, *parts)
            inside = os.path.join(staging, *parts)
            if not os.path.lexists(shared):
                if not os.path.isdir(os.path.dirname(shared)):
                    os.makedirs(os.path.dirname(shared), mode=0o755)
                fault_point('shared', shared)
                if os.path.lexists(inside) and not os.path.islink(inside):
                    shutil.move(inside, shared)  # seed shared/ from the artifact, once
                else:
                    os.makedirs(shared, mode=0o755)
            if os.path.lexists(inside):
                if os.path.isdir(inside) and not os.path.islink(inside):
                    shutil.rmtree(inside)
                else:
                    os.unlink(inside)
            parent = os.path.dirname(inside)
            if not os.path.isdir(parent):
                os.makedirs(parent, mode=0o755)
            final_parent = os.path.join(release_path(self.root, release_id), *parts[:-1])
            fault_point('shared', inside)
            os.symlink(os.path.relpath(shared, final_parent), inside)

    # switching ---------------------------------------------------------------------------
    def _activate(self, release_id):
        entry = self.ledger.get(release_id)
        if entry is None or not self.present(release_id):
            raise RedbuttonError(
                'release %s is not staged in %s: stage it first (state: staged with src). Releases: %s'
                % (release_id, releases_dir(self.root), self.ledger.describe()))
        if self.current == release_id:
            return False
        if entry.get('status') == 'failed' and not self.params.get('force'):
            raise RedbuttonError(
                'release %s is marked failed; refusing to activate it. Stage a fixed release under a new id, '
                'or use force: true if you are sure' % release_id)
        old = self.current
        if not self.check_mode:
            with step('switching current to release %s' % release_id, os.path.join(self.root, CURRENT_LINK)):
                self._switch(release_id)
            if self.after_switch is not None:
                self.after_switch()  # the transition engine's kill point between the rename and the ledger's write
        self.record_switch(release_id, old)
        try:
            self._save()
        except BaseException:
            if not self.check_mode:
                self._switch_back(old)
            raise
        self.current = release_id
        self.changed = True
        return True

    def record_switch(self, release_id, old):
        """Write down in the ledger (not saved yet) that current went from old to release_id; old gets
        params['previous_status'] when one is set. Also the transition engine's, for a switch whose run was
        killed after the rename, before the ledger's write."""
        self.ledger.activate(release_id, old, actor=self._actor(), reason=self._reason())
        if old and self.params.get('previous_status') and self.ledger.get(old) is not None:
            self.ledger.set_status(old, self.params['previous_status'], actor=self._actor(), reason=self._reason())

    def _switch_back(self, old):
        """The ledger could not record a switch: point current back where the ledger says it is."""
        link = os.path.join(self.root, CURRENT_LINK)
        try:
            if old:
                self._switch(old)
            else:
                os.unlink(link)
        except (OSError, RedbuttonError) as exc:
            self.warn('could not switch %s back to %s after the ledger write failed (%s); the symlink is '
                      'the truth: the next run records what it points to' % (link, old or 'nothing', exc))

    def _switch(self, release_id):
        link = os.path.join(self.root, CURRENT_LINK)
        tmp = os.path.join(self.root, '%s.tmp-%s' % (CURRENT_LINK, uuid.uuid4().hex[:12]))
        fault_point('current', link)
        os.symlink(os.path.join(RELEASES_DIR, release_id), tmp)
        try:
            os.replace(tmp, link)
        except OSError as exc:
            os.unlink(tmp)
            raise RedbuttonError('switching %s to %s failed: %s' % (link, release_id, exc))
        _fsync_dir(self.root)

    # removing ----------------------------------------------------------------------------
    def _protected(self, release_id):
        if release_id == self.current:
            return 'it is the current release'
        if release_id == self.ledger.previous(self.current, present=self.present):
            return 'it is the rollback target (previous)'
        return None

    def _absent(self, release_id):
        why = self._protected(release_id)
        if why:
            raise RedbuttonError('refusing to remove release %s: %s. Activate another release first' % (release_id, why))
        entry = self.ledger.get(release_id)
        present = self.present(release_id)
        if entry is None and not present:
            return False
        self._remove(release_id, present)
        return True

    def _remove(self, release_id, present, event='removed'):
        """Move the release aside, record its removal, then delete it: a failure at any point
        leaves the release and its ledger entry together (both there, or both gone)."""
        path = release_path(self.root, release_id)
        aside = None
        if present and not self.check_mode:
            with step('removing release %s' % release_id, path):
                aside = move_aside(self.root, path, release_id)
        baseline = ((self.ledger.get(release_id) or {}).get('metadata') or {}).get('baseline')
        self.ledger.remove(release_id, actor=self._actor(), reason=self._reason(), event=event)
        try:
            self._save()
        except BaseException:
            if aside is not None:
                os.rename(aside, path)
            raise
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
        self.would_vanish.add(release_id)
        self.would_exist.discard(release_id)
        self.changed = True
        if not self.check_mode:
            self._remove_baselines(release_id, baseline)
            self._remove_runbook(release_id)

    def _remove_runbook(self, release_id):
        """Remove the runbook a rollout wrote for a removed release (.md and its JSON twin); a failure is a
        warning, like a leftover baseline."""
        for ext in ('.md', '.json'):
            path = os.path.join(state_dir(self.root), RUNBOOKS_DIR, release_id + ext)
            try:
                if os.path.lexists(path):
                    os.unlink(path)
            except OSError as exc:
                self.warn(describe_os_error('removing the runbook of the removed release %s' % release_id, path, exc))

    def _remove_baselines(self, release_id, named=None):
        """Remove the baselines that belong to a removed release: before-<id>, and the one its
        ledger entry named (metadata.baseline). Nothing else under baselines/ is touched. A
        failure here is a warning: the release is gone, a leftover baseline harms nothing."""
        names = set(['before-' + release_id])
        if isinstance(named, str) and BASELINE_NAME_RE.match(named):
            names.add(named)
        directory = os.path.join(state_dir(self.root), BASELINES_DIR)
        for name in sorted(names):
            path = os.path.join(directory, name + '.json')
            if not os.path.lexists(path):
                continue
            try:
                fault_point('baseline', path)
                os.unlink(path)
            except OSError as exc:
                self.warn(describe_os_error('removing baseline %s of the removed release %s' % (name, release_id), path, exc))

    def _prune(self, keep, release_id):
        """Keep the `keep` most recent releases; never current, previous or this call's release."""
        protect = set([self.current, self.ledger.previous(self.current, present=self.present), release_id])
        entries = [entry for entry in self.ledger.ordered() if self.present(entry['id'])]
        entries.sort(key=lambda entry: max(entry.get('activated_seq') or 0, entry.get('staged_seq') or 0), reverse=True)
        for entry in entries[keep:]:
            if entry['id'] in protect:
                continue
            self._remove(entry['id'], True, event='pruned')
            self.pruned.append(entry['id'])

    # locking -----------------------------------------------------------------------------
    def _acquire_lock(self):
        owner = self.params.get('lock_owner')
        if not owner:
            return
        self.lock = DeployLock(self.root, warn=self.warn)
        with step('taking the deploy lock', self.lock.path):
            changed, dummy, before = self.lock.acquire(
                owner, ttl=self.params.get('lock_ttl') or DEFAULT_TTL, timeout=self.params.get('lock_timeout') or 0,
                check_mode=self.check_mode, controller=self.params.get('_controller'))
        self.lock_before = before
        self.locked = True
        self.lock_changed = changed

    def _release_lock(self, up_to_date):
        """Release when asked. The lock counts as a change only if its holder differs from
        before the call: taking a free lock and letting it go again in one call is no change."""
        if self.lock is None:
            return
        if self.params.get('unlock') or (self.params.get('unlock_if_current') and up_to_date):
            with step('releasing the deploy lock', self.lock.path):
                self.lock.release(self.params['lock_owner'], check_mode=self.check_mode)
            self.locked = False
            self.lock_changed = self.lock_before is not None
        self.changed = self.changed or self.lock_changed

    # answer ------------------------------------------------------------------------------
    def _result(self, release_id, current_before, up_to_date, before):
        entry = self.ledger.get(release_id) if release_id else None
        result = {
            'changed': self.changed,
            'release': release_id,
            'path': release_path(self.root, release_id) if release_id else None,
            'current': self.current,
            'current_before': current_before,
            'previous': self.ledger.previous(self.current, present=self.present),
            'status': entry.get('status') if entry else None,
            'checksum': entry.get('checksum') if entry else self.archive_checksum or self.content,
            'content': self._content_of(entry) if entry else self.content,
            'created': self.created,
            'up_to_date': up_to_date,
            'locked': self.locked,
            'pruned': self.pruned,
            'releases': release_view(self.root, self.ledger, self.current),
            'last_switch': self.ledger.data.get('last_switch'),
        }
        if self.check_mode:
            for item in result['releases']:
                item['present'] = self.present(item['id'])
        if self.diff:
            result['diff'] = {
                'before': before,
                'after': {'current': self.current, 'releases': self.ledger.summary()},
            }
        return result


class ReleaseInfo(object):
    """What redbutton.deploy.release_info reports; a root without a ledger gives empty values."""

    def __init__(self, root, events=20):
        self.root = root
        self.events = events

    def run(self):
        try:
            return self._run()
        except (IOError, OSError) as exc:
            raise RedbuttonError('cannot read the release state of %s: %s' % (self.root, exc))

    def _run(self):
        if self.events is not None and self.events < 0:
            raise RedbuttonError('events %r is not valid: give the number of recent events to return (0 or more)' % self.events)
        ledger = Ledger(self.root).load()
        current = read_current(self.root) if os.path.isdir(self.root) else None

        def present(release_id):
            return os.path.isdir(release_path(self.root, release_id))

        events = ledger.data['events']
        try:
            lock = DeployLock(self.root).read() if os.path.isdir(self.root) else None
        except RedbuttonError as exc:
            lock = {'error': str(exc)}  # report a damaged lock file, do not fail the report
        result = {
            'changed': False,
            'exists': ledger.exists,
            'current': current,
            'previous': ledger.previous(current, present=present),
            'releases': release_view(self.root, ledger, current),
            'events': events[-self.events:] if self.events else [],
            'last_switch': ledger.data.get('last_switch'),
            'lock': lock,
        }
        from ansible_collections.redbutton.deploy.plugins.module_utils._feature import toggle_view  # the report alone uses it
        try:
            result['features'] = toggle_view(self.root) if os.path.isdir(self.root) else []
        except RedbuttonError as exc:  # report damaged toggle state, do not fail the report
            result['features'] = []
            result['features_error'] = str(exc)
        return result
