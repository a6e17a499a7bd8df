#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: lock
short_description: Acquire or release the deploy lock of an application root
description:
  - Manages C(<root>/.redbutton/lock), a JSON record of who is deploying now
    (C(owner), C(host), C(pid), C(acquired_at), C(ttl), C(expires_at), C(heartbeat), and C(controller),
    the run that holds it - host, pid and start time of its ansible-playbook process - when the
    caller knows it, as the release action plugin does).
  - The lock is created exclusively and atomically (a complete temporary file is hard-linked to the
    lock path, which fails when the lock exists, like C(O_EXCL); file systems without hard links
    fall back to C(O_EXCL)).
  - The same O(owner) acquiring again re-enters the lock and refreshes its expiry; that is not a
    change (RV(ignore:changed=false)). Another owner waits up to O(timeout) seconds (polling every
    0.2 s) and then fails with a message naming the holder (owner, host, pid, since when).
  - A lock past its TTL is taken over, with a warning naming the previous holder; so is a lock whose
    C(controller) is this host and whose process is gone. A live holder is refused with a message that
    names it and the command that takes the lock over.
  - Releasing is idempotent - no lock means no change. Releasing another owner's lock fails unless
    O(force=true).
extends_documentation_fragment:
  - redbutton.deploy.root
  - redbutton.deploy.root.attributes
attributes:
  diff_mode:
    support: full
    details: The diff shows the lock holder before and after.
  idempotent:
    support: full
    description: Acquiring a lock one already holds, or releasing a lock nobody holds, changes nothing.
options:
  state:
    description:
      - V(present) acquires the lock for O(owner), V(absent) releases it.
    type: str
    choices: [present, absent]
    default: present
  owner:
    description:
      - Who holds the lock, for example the run id shared by every host and batch of one run.
      - Required unless O(state=absent) with O(force=true).
    type: str
  timeout:
    description:
      - Seconds to wait for a lock held by another owner before failing. V(0) fails at once.
    type: float
    default: 0
  ttl:
    description:
      - Seconds after which the lock may be taken over by another owner (refreshed on re-entry).
    type: int
    default: 3600
  force:
    description:
      - With O(state=present), take the lock over from another live owner (with a warning).
      - With O(state=absent), release the lock whoever holds it (also a corrupt lock file).
    type: bool
    default: false
seealso:
  - module: redbutton.deploy.release
author:
  - redbutton.deploy contributors (@redbutton)
'''

EXAMPLES = r'''
- name: Take the deploy lock, waiting up to a minute for another run
  redbutton.deploy.lock:
    root: /srv/app
    owner: "rollout-{{ awx_job_id | default(ansible_date_time.epoch) }}"
    timeout: 60
    ttl: 1800

- name: Release it (idempotent)
  redbutton.deploy.lock:
    root: /srv/app
    owner: "rollout-{{ awx_job_id | default(ansible_date_time.epoch) }}"
    state: absent

- name: Remove the lock of a run that died
  redbutton.deploy.lock:
    root: /srv/app
    state: absent
    force: true
'''

RETURN = r'''
holder:
  description: The lock record after the call (null once released).
  returned: always
  type: dict
  sample: {owner: rollout-42, host: web1, pid: 4242, acquired_at: '2026-11-26T05:00:00Z', ttl: 3600,
           expires_at: '2026-11-26T06:00:00Z'}
previous_holder:
  description: The lock record before the call, or null.
  returned: always
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.redbutton.deploy.plugins.module_utils._common import ROOT_ARGUMENT_SPEC
from ansible_collections.redbutton.deploy.plugins.module_utils._hosts import run_module
from ansible_collections.redbutton.deploy.plugins.module_utils._lock import DEFAULT_TTL, LockRunner


def main():
    argument_spec = dict(ROOT_ARGUMENT_SPEC)
    argument_spec.update(
        state=dict(type='str', choices=['present', 'absent'], default='present'),
        owner=dict(type='str'),
        timeout=dict(type='float', default=0),
        ttl=dict(type='int', default=DEFAULT_TTL),
        force=dict(type='bool', default=False),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    runner = LockRunner(module.params, check_mode=module.check_mode, diff=module._diff, warn=module.warn)
    run_module(module, runner.run)


if __name__ == '__main__':
    main()
