#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: release
short_description: Stage, activate, mark and prune immutable releases, recorded in a ledger
description:
  - Manages the releases of one application root on the target host
    (C(<root>/releases/<id>), the C(<root>/current) symlink and the ledger
    C(<root>/.redbutton/ledger.json)).
  - C(state=staged) creates C(<root>/releases/<id>) from a tar (C(.tar), C(.tar.gz), C(.tgz),
    C(.tar.xz), C(.tar.bz2)) or zip archive, or from a directory. Every member is checked before
    anything is written; the artifact is extracted into C(<root>/releases/.staging-<id>-<random>)
    and renamed into place, so a half-extracted release never appears under its real name. The
    archive's root becomes the release root; a single top-level directory is B(not) stripped
    (build archives with C(tar -C dir -czf app.tgz .)).
  - Safe extraction refuses, naming the member, anything absolute, containing C(..), a symlink or
    hardlink that would resolve outside the release, a member whose path passes through a symlink
    of the same artifact, a member that appears twice, device files, fifos and sockets. On any
    error the staging directory is removed, nothing is activated and the ledger is unchanged.
  - Every archive is read to the end of its stream before anything is kept - a damaged member, a
    damaged tar header (which other tools take for the end of the archive), damaged compressed data,
    a missing or wrong gzip, bzip2 or xz trailer, a truncated zip or a zip CRC error refuses the release
    with an error naming the artifact and the offset or member, and nothing is left staged.
  - Releases are immutable, and identified by their content. The ledger records for each release the
    sha256 of the artifact's bytes (C(checksum)) and the digest of its content (C(content) - sorted
    relative paths with their type, file modes, file sha256s and symlink targets; not times, owners or
    compression). Staging an id again with the same content is a no-op, even from an archive rebuilt
    with other bytes (a new gzip time stamp). An artifact with the recorded bytes is recognised
    without reading its members (nothing is extracted or uploaded). Different content fails unless
    O(force=true), and never replaces the current release.
  - C(state=active) switches C(<root>/current) atomically (a new relative symlink under a temporary
    name, then rename(2) over C(current)). With O(src) it stages first, in the same call.
  - C(state=absent) and O(keep) never remove the current release, the rollback target
    (C(previous)) or a C(.staging-*) directory.
  - Every change is recorded in the ledger (written atomically). The ledger keeps the last 500 events;
    older ones are dropped. A ledger that does not parse, or has an unknown schema, is an error and
    is never overwritten.
  - Optionally takes the deploy lock (the one M(redbutton.deploy.lock) manages) before acting and
    releases it afterwards, so a rollout step costs one task.
  - When O(src) is on the controller (O(remote_src=false)), the action plugin computes its checksum
    there and asks the host first; the archive is uploaded only when the host does not already have
    those bytes (or, for a directory, that content) staged, and the host verifies the checksum and
    computes the content digest while extracting. With a C(local)
    connection and no become, the module reads the controller path itself in a single call.
  - A tar archive is decompressed once. Regular files and directories are written into the staging
    directory as they are read (no link exists there meanwhile), and symlinks and hardlinks are
    created last, after the complete member list passed every check.
extends_documentation_fragment:
  - redbutton.deploy.root
  - redbutton.deploy.root.attributes
attributes:
  idempotent:
    support: full
    description: Running the task again with the same options changes nothing.
options:
  release:
    description:
      - The release id, matching C([A-Za-z0-9][A-Za-z0-9._+-]{0,127}), or C(previous) for the rollback
        target read from the ledger (the most recently activated release other than the current one
        that is still present and not C(failed) or C(rolled_back); never by directory mtime or name).
      - When omitted and O(src) is given, the id is C(sha256-) followed by the first 12 hex digits of
        the content digest, so every host and every batch agrees on it, and an archive rebuilt from the
        same files gets the same id.
    type: str
  src:
    description:
      - The artifact to stage, a tar or zip archive or a directory.
      - On the controller by default (found like M(ansible.builtin.copy) finds files); on the target
        host with O(remote_src=true).
      - A controller directory is packed into a temporary tar for the upload; its checksum is its content
        digest.
    type: str
  remote_src:
    description:
      - V(true) when O(src) is already on the target host.
    type: bool
    default: false
  checksum:
    description:
      - Expected checksum as C(sha256:<hex>). For an archive it is the sha256 of the file, verified
        before the release gets its name; for a directory it is the content digest (sorted relative
        paths with their type, file modes, file sha256s and symlink targets).
      - A mismatch is an error that names the expected and the actual checksum.
    type: str
  shared_paths:
    description:
      - Paths relative to the release (no C(..), not absolute) that are replaced by a relative symlink
        to C(<root>/shared/<path>) while staging.
      - When C(<root>/shared/<path>) does not exist it is seeded from the release's own C(<path>) if
        the artifact has one (moved there), otherwise created as an empty directory. Nothing under
        C(shared/) is ever overwritten or deleted.
      - Applied only when a release is staged; an already staged release is not changed.
    type: list
    elements: str
    default: []
  state:
    description:
      - V(staged) makes sure the release exists under C(releases/).
      - V(active) makes it current (staging it first when O(src) is given); no-op when C(current)
        already points to it. A release marked C(failed) is activated only with O(force=true);
        a C(rolled_back) release can be activated again (roll out again).
      - V(absent) removes it (directory and ledger entry), refusing the current release and the
        rollback target.
      - When omitted, V(staged) if O(src) is given; otherwise the module only applies O(status),
        O(metadata), O(keep) and the lock options.
    type: str
    choices: [staged, active, absent]
  keep:
    description:
      - After acting, remove the oldest releases so that at most this many remain (ordered by the
        ledger sequence of their last activation or staging). The current release, the rollback
        target and the release named in this call are always kept, even beyond this number.
    type: int
  force:
    description:
      - Replace a staged release whose content differs (never the current one), replace a release
        directory the ledger does not know, or activate a release marked C(failed).
    type: bool
    default: false
  status:
    description:
      - Record this status on O(release), after O(state) is applied. V(ok) after verification,
        V(failed) or V(rolled_back) when it was undone.
    type: str
    choices: [ok, failed, rolled_back]
  previous_status:
    description:
      - With O(state=active), the status given to the release that was current before the switch
        (V(rolled_back) for a rollback, V(failed) for an automatic rollback). Ignored when nothing
        is switched.
    type: str
    choices: [ok, failed, rolled_back]
  reason:
    description:
      - A free word stored on the events and on C(last_switch), for example C(rollout), C(rollback)
        or C(auto_rollback).
    type: str
  actor:
    description:
      - Who does it (a user, a job id); stored on the release and the events.
    type: str
  metadata:
    description:
      - A dict merged into the release's C(metadata) in the ledger (for example the schema version the
        roles need for later rollbacks).
    type: dict
  lock_owner:
    description:
      - Acquire (or re-enter) the deploy lock C(<root>/.redbutton/lock) for this owner before acting.
        See M(redbutton.deploy.lock) for the semantics.
      - The lock makes the task changed only when its holder differs after the call from before it; taking a
        free lock and releasing it again in the same call (O(unlock), O(unlock_if_current)) is not a change.
    type: str
  lock_timeout:
    description:
      - Seconds to wait for a lock held by another owner before failing with a message naming it.
    type: float
    default: 0
  lock_ttl:
    description:
      - Seconds after which the lock taken here may be taken over by others.
    type: int
    default: 3600
  unlock:
    description:
      - Release the lock held by O(lock_owner) after acting (also when the call fails).
    type: bool
    default: false
  unlock_if_current:
    description:
      - Release the lock held by O(lock_owner) after acting if the release was already current, C(ok)
        and of identical content before this call (nothing to roll out).
    type: bool
    default: false
  once:
    description:
      - With O(release=previous), do not go further back than one rollback. When the last switch recorded in
        the ledger (C(last_switch)) was a rollback (reason C(rollback) or C(auto_rollback)) to the release that
        is current now, C(previous) resolves to the current release itself, so O(state=active) has nothing
        to do and the task reports no change (RV(up_to_date) when that release is C(ok)).
      - Without it, every call with O(release=previous) moves one release further back.
      - Ignored when O(release) names a release.
    type: bool
    default: false
  run_id:
    description:
      - An id of the whole run (for example a fleet rollout or an AWX job), decided once on the controller and
        recorded on every ledger event this call writes, so a later play can find the hosts a run moved.
    type: str
  _probe:
    description:
      - Internal, set by the action plugin; do not set it. Without O(src), answer RV(needs_src=true) instead of
        failing when the release still has to be staged, and change nothing in that case.
    type: bool
    default: false
  _checksum_of:
    description:
      - Internal, set by the action plugin; do not set it. What O(checksum) covers, the archive file or the
        extracted tree (a controller directory packed for upload).
    type: str
    choices: [archive, tree]
    default: archive
  _source:
    description:
      - Internal, set by the action plugin; do not set it. The controller path recorded as the release's source.
    type: str
  _controller:
    description:
      - Internal, set by the action plugin when O(lock_owner) is set; do not set it. The run taking the
        lock (C(host), C(pid) and C(started) of the ansible-playbook process), recorded in the lock so
        that a later run from the same controller can tell a dead holder from a live one.
    type: dict
  _content:
    description:
      - Internal, set by the action plugin in check mode; do not set it. The content digest of the
        controller artifact.
    type: str
notes:
  - The ledger keeps at most 500 events; the oldest are dropped first. Releases keep their own
    status and timestamps whatever the event history holds.
  - A C(.staging-*) or C(.trash-*) directory under C(releases/) is never a release (ids cannot start
    with a dot) and is never pruned.
seealso:
  - module: redbutton.deploy.release_info
  - module: redbutton.deploy.lock
author:
  - redbutton.deploy contributors (@redbutton)
'''

EXAMPLES = r'''
- name: Stage a release from an archive on the controller (uploaded only when not already staged)
  redbutton.deploy.release:
    root: /srv/app
    release: v2
    src: dist/app-v2.tar.gz
    checksum: sha256:3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a
    shared_paths:
      - data
      - log

- name: Take the lock, stage and switch in one task
  redbutton.deploy.release:
    root: /srv/app
    release: v2
    src: dist/app-v2.tar.gz
    state: active
    lock_owner: "rollout-{{ awx_job_id | default('manual') }}"
    lock_timeout: 60
    reason: rollout
    actor: alice
  register: rollout

- name: Mark it verified, prune to five releases and unlock
  redbutton.deploy.release:
    root: /srv/app
    release: v2
    status: ok
    keep: 5
    lock_owner: "rollout-{{ awx_job_id | default('manual') }}"
    unlock: true

- name: Roll back to the previous good release and mark the undone one
  redbutton.deploy.release:
    root: /srv/app
    release: previous
    state: active
    previous_status: rolled_back
    reason: rollback

- name: Roll back unless the last switch already was a rollback (running it twice changes nothing)
  redbutton.deploy.release:
    root: /srv/app
    release: previous
    once: true
    state: active
    previous_status: rolled_back
    reason: rollback

- name: Stage an archive already on the host, with the id derived from its checksum
  redbutton.deploy.release:
    root: /srv/app
    src: /tmp/app.zip
    remote_src: true

- name: Remove an old release
  redbutton.deploy.release:
    root: /srv/app
    release: v1
    state: absent
'''

RETURN = r'''
release:
  description: The resolved release id (after C(previous) or checksum derivation).
  returned: always
  type: str
  sample: v2
path:
  description: The release directory.
  returned: always
  type: str
  sample: /srv/app/releases/v2
current:
  description: The release C(current) points to after the call (null when none).
  returned: always
  type: str
  sample: v2
current_before:
  description: The release C(current) pointed to before the call.
  returned: always
  type: str
  sample: v1
previous:
  description: The rollback target after the call, or null when there is none.
  returned: always
  type: str
  sample: v1
status:
  description: The status of O(release) after the call (V(staged), V(active), V(ok), V(failed), V(rolled_back)).
  returned: always
  type: str
  sample: active
checksum:
  description: The sha256 of the artifact O(release) was staged from (of its content, for a directory).
  returned: always
  type: str
  sample: sha256:3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a
content:
  description: The content digest of O(release), its identity (see the description).
  returned: always
  type: str
  sample: sha256:0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9
created:
  description: Whether the release was extracted in this call (would be, in check mode).
  returned: always
  type: bool
up_to_date:
  description: Whether the release was already current, C(ok) and of identical content before the call.
  returned: always
  type: bool
locked:
  description: Whether the deploy lock is held by O(lock_owner) after the call.
  returned: always
  type: bool
pruned:
  description: Release ids removed by O(keep).
  returned: always
  type: list
  elements: str
  sample: [v0]
releases:
  description: Every release in the ledger, oldest first.
  returned: always
  type: list
  elements: dict
  sample:
    - id: v1
      status: ok
      checksum: sha256:0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9
      path: /srv/app/releases/v1
      present: true
      current: false
      activated_seq: 3
last_switch:
  description: The ledger's record of the last switch of C(current) after the call, or null when there was none.
  returned: always
  type: dict
  sample:
    from: v2
    to: v1
    reason: rollback
    time: '2026-11-26T05:00:00Z'
    by: alice
needs_src:
  description: Internal answer to the action plugin's first question; true when the release must be uploaded.
  returned: when the action plugin asks before uploading
  type: bool
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.redbutton.deploy.plugins.module_utils._common import ROOT_ARGUMENT_SPEC
from ansible_collections.redbutton.deploy.plugins.module_utils._hosts import run_module
from ansible_collections.redbutton.deploy.plugins.module_utils._release import RELEASE_ARGUMENT_SPEC, ReleaseManager


def main():
    argument_spec = dict(ROOT_ARGUMENT_SPEC)
    argument_spec.update(RELEASE_ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    manager = ReleaseManager(module.params, check_mode=module.check_mode, diff=module._diff, warn=module.warn)
    run_module(module, manager.run)


if __name__ == '__main__':
    main()
