#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: feature
short_description: Turn a feature toggle of an application on, off or to a percentage, and undo it
description:
  - Sets a named toggle of the application under O(root) to V(on), V(off) or a whole percentage from 0 to 100
    (for gradual exposure; the application decides how to bucket users), with an optional O(note).
  - The recorded toggles live in C(<root>/.redbutton/features.json); the file the application reads (O(file))
    is rendered from them. Both are written atomically (a temporary file in the same directory, then a rename),
    so the application sees the old file or the new one, never a partial one.
  - Every change is an event C(feature) in the host's ledger (C(<root>/.redbutton/ledger.json)) with the toggle
    name, C(from), C(to), O(note), who (O(actor)) and O(run_id). O(state=previous) undoes the last change of the
    toggle that was not undone already, from that history.
  - Setting the value a toggle already has changes nothing and records nothing.
  - The deploy lock (M(redbutton.deploy.lock)) is held while writing, so a flip never races a rollout.
  - When the file the application reads does not parse (a hand edit gone wrong), the module refuses to overwrite
    it and changes nothing, naming the file; O(force=true) overwrites it with the recorded toggles. A file that
    parses but holds other values than recorded (a hand edit) is taken as the truth, with a warning.
  - A release can declare its toggles and their defaults in C(features.json) or C(features.yml) at its root;
    see the collection's C(docs/toggles.md).
extends_documentation_fragment:
  - redbutton.deploy.root
  - redbutton.deploy.root.attributes
attributes:
  idempotent:
    support: full
    description: Setting a toggle to the value it has changes nothing and records no event.
options:
  name:
    description:
      - The toggle, a plain identifier matching C([a-z][a-z0-9_]{0,62}), for example C(new_checkout).
      - Required unless O(state=query), which without O(name) returns every toggle.
    type: str
  state:
    description:
      - V(on), V(off), a percentage from 0 to 100 (V(25) or V("25%")).
      - V(previous) undoes the last change of the toggle recorded in the ledger (the value goes back to what it
        was before it; a toggle that did not exist before is removed). Undoing twice goes one more step back.
      - V(query) changes nothing and returns the toggles.
      - YAML reads an unquoted C(on)/C(off) as a boolean; V(true) and V(false) are taken as V(on) and V(off).
    type: raw
    required: true
  note:
    description: Why, recorded with the change in the ledger and the toggle state.
    type: str
  file:
    description:
      - The file the application reads.
      - Defaults to the file recorded by the last call, else C(<root>/shared/features.json) (C(features.env),
        C(features.yml) with O(format=env) or O(format=yaml)).
    type: path
  format:
    description:
      - 'V(json) writes an object of names and values (C({"new_checkout": "on", "search_v2": 25})).'
      - V(env) writes C(FEATURE_<NAME>=on|off|<n>) lines (an C(EnvironmentFile) for systemd).
      - 'V(yaml) writes C(name: value) lines (C(on) and C(off) quoted).'
      - Defaults to the recorded format, else from the extension of O(file) (C(.env), C(.yml)/C(.yaml)), else V(json).
    type: str
    choices: [json, env, yaml]
  actor:
    description: Who makes the change, recorded in the ledger (for example the AWX user).
    type: str
  run_id:
    description:
      - The id of the run making the change, recorded on the ledger event, so that a later play can find (and
        undo with O(only_run_id)) exactly the changes of this run.
    type: str
  only_run_id:
    description:
      - With O(state=previous), revert the latest change of the toggle only when this run id made it (and it is not
        already this run's revert); otherwise change nothing and say so. Running it again changes nothing.
      - The toggle playbook uses it to put back every host it changed when a wave fails its checks.
    type: str
  force:
    description:
      - Overwrite a toggles file that does not parse (it is replaced by the recorded toggles, with a warning).
    type: bool
    default: false
  lock_owner:
    description: The owner of the deploy lock while writing. Defaults to O(run_id), else a per-process name.
    type: str
  lock_timeout:
    description: Seconds to wait for a deploy lock held by another run (a rollout) before failing.
    type: float
    default: 30
  _controller:
    description:
      - Internal, set by the action plugin; do not set it. The run taking the lock (C(host), C(pid) and C(started) of
        the ansible-playbook process), recorded in the lock so that a later run from the same controller can take over
        the lock of a run that died, as it does after a rollout.
    type: dict
seealso:
  - module: redbutton.deploy.release_info
  - module: redbutton.deploy.lock
author:
  - redbutton.deploy contributors (@redbutton)
'''

EXAMPLES = r'''
- name: Turn on the new checkout for everyone
  redbutton.deploy.feature:
    root: /srv/shop
    name: new_checkout
    state: "on"
    note: launch day

- name: Show the new search to a quarter of the users
  redbutton.deploy.feature:
    root: /srv/shop
    name: search_v2
    state: 25%

- name: Undo the last change of new_checkout
  redbutton.deploy.feature:
    root: /srv/shop
    name: new_checkout
    state: previous

- name: Write the toggles as an environment file for systemd
  redbutton.deploy.feature:
    root: /srv/shop
    name: new_checkout
    state: "off"
    file: /etc/shop/features.env
    format: env

- name: Read every toggle
  redbutton.deploy.feature:
    root: /srv/shop
    state: query
  register: shop_toggles
'''

RETURN = r'''
name:
  description: The toggle (null for O(state=query) without O(name)).
  returned: always
  type: str
  sample: new_checkout
value:
  description: The toggle's value after the call (V(on), V(off) or a percentage), null when it does not exist.
  returned: when O(name) is given
  type: raw
  sample: 'on'
previous_value:
  description: The toggle's value before the call, null when it did not exist.
  returned: when the state is not query
  type: raw
  sample: 'off'
file:
  description: The file the application reads.
  returned: always
  type: str
  sample: /srv/shop/shared/features.json
format:
  description: Its format.
  returned: always
  type: str
  sample: json
toggles:
  description: Every toggle after the call, by name.
  returned: always
  type: list
  elements: dict
  sample:
    - name: new_checkout
      value: 'on'
      updated_at: '2026-11-30T06:00:00Z'
      by: alice
      note: launch day
      run_id: toggle-20261130T060000-1234
      source: set
      declared_by: v2
      description: The new checkout flow
event_seq:
  description: The ledger seq of the change event, null when nothing was recorded (or in check mode).
  returned: when the state is not query
  type: int
  sample: 42
undid:
  description: With O(state=previous), the ledger seq of the change that was undone.
  returned: when the state is not query
  type: int
  sample: 41
file_warnings:
  description: What was found in the toggles file (hand edits taken over, a damaged file overwritten with O(force)).
  returned: when the state is not query
  type: list
  elements: str
msg:
  description: One sentence saying what happened.
  returned: always
  type: str
  sample: toggle new_checkout set from off to on
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.redbutton.deploy.plugins.module_utils._common import ROOT_ARGUMENT_SPEC
from ansible_collections.redbutton.deploy.plugins.module_utils._feature import (
    DEFAULT_LOCK_TIMEOUT,
    FORMATS,
    FeatureRunner,
)
from ansible_collections.redbutton.deploy.plugins.module_utils._hosts import run_module


def main():
    argument_spec = dict(ROOT_ARGUMENT_SPEC)
    argument_spec.update(
        name=dict(type='str'),
        state=dict(type='raw', required=True),
        note=dict(type='str'),
        file=dict(type='path'),
        format=dict(type='str', choices=list(FORMATS)),
        actor=dict(type='str'),
        run_id=dict(type='str'),
        only_run_id=dict(type='str'),
        force=dict(type='bool', default=False),
        lock_owner=dict(type='str'),
        lock_timeout=dict(type='float', default=DEFAULT_LOCK_TIMEOUT),
        _controller=dict(type='dict'),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    runner = FeatureRunner(module.params, check_mode=module.check_mode, diff=module._diff, warn=module.warn)
    run_module(module, runner.run)


if __name__ == '__main__':
    main()
