#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: transition
short_description: Move a host from one release to another - rollout, rollback, automatic rollback - and prove where it stands
description:
  - The transition engine of redbutton.deploy. One engine performs every transition of a host, in one ordered
    list of steps per direction; the C(redbutton.deploy.rollout) and C(redbutton.deploy.rollback) roles, the
    automatic rollback and the command left on each host (C(<root>/.redbutton/bin/redbutton)) all run it.
  - "O(direction=rollout): C(stage) (lock, stage the artifact as with M(redbutton.deploy.release), record baseline
    C(before-<id>) of the release that serves now), C(migrate) (before the switch, or after it with
    O(migrate_when=after_switch)), C(switch) (C(<root>/current) replaced atomically), C(restart), C(verify) (the health
    checks), C(finish) (mark C(ok), prune to O(keep) releases, unlock)."
  - "O(direction=rollback): C(switch) to O(release) (default the previous good release from the ledger, marking the
    undone one C(rolled_back)), C(migrate) down to the schema version recorded for the target, C(restart), C(verify),
    C(compare) (the host against the baseline the undone rollout recorded), C(finish) (mark the target C(ok), unlock)."
  - "O(direction=auto_rollback): undoes the rollout in progress on the host after one of its steps failed. After the
    switch: back to the release it replaced, marking the new one C(failed), then migrate down, restart, verify,
    compare and finish like a rollback. Before the switch: migrate down what it applied, remove the release if the
    rollout created it, unlock. With O(revert=false), or without an earlier release, the new release stays current
    and is marked C(failed)."
  - "O(direction=verify): the health checks and the comparison with a baseline, read-only (no lock, no change)."
  - A call runs the steps listed in O(steps) (by default all of its direction); the roles cut the list only where a
    user hook sits. Between calls the transition is recorded on the host (the ledger's open transition), so a later
    call, or the next run after a killed one, goes on from where the host really is. A release that is current but
    not C(ok) is always restarted and verified again; it is never just marked C(ok).
  - Every setting is checked before anything changes (service, health checks, migrations, the rollback target and
    its recorded schema version); a refusal names the setting and changes nothing.
  - Messages name settings by the roles' variable names (for example C(redbutton_service)), the way most users set them.
extends_documentation_fragment:
  - redbutton.deploy.root
  - redbutton.deploy.root.attributes
attributes:
  idempotent:
    support: full
    description: A rollout of the release that is current and C(ok), or a rollback right after a rollback, changes nothing.
options:
  direction:
    description: Which transition to run, see the description.
    type: str
    required: true
    choices: [rollout, rollback, auto_rollback, verify]
  steps:
    description:
      - The steps to run in this call, a subset of the direction's steps, run in the direction's order. Default all.
      - A call without C(stage) (rollout) or C(switch) (rollback) goes on with the transition already open on the host.
    type: list
    elements: str
    choices: [stage, switch, migrate, restart, verify, compare, finish]
  release:
    description:
      - Rollout - the release id (empty derives C(sha256-<12 hex>) from the artifact, as M(redbutton.deploy.release) does).
      - Rollback - the target, or C(previous) (the default) for the most recent release that was C(ok) before the current one.
      - Verify - the release that must be current (empty for any good one).
    type: str
  once:
    description: Rollback to C(previous) right after a rollback stays put instead of going one release further back.
    type: bool
    default: false
  src:
    description: Stage step - the artifact, as O(redbutton.deploy.release#module:src).
    type: str
  remote_src:
    description: Stage step - O(src) is on the host.
    type: bool
    default: false
  checksum:
    description: Stage step - the expected checksum of O(src), C(sha256:<hex>).
    type: str
  shared_paths:
    description: Stage step - paths of the release linked into C(<root>/shared/); also what the baseline records as shared data.
    type: list
    elements: str
    default: []
  metadata:
    description: Stage step - free data recorded on the release in the ledger.
    type: dict
  force:
    description: Stage step - as O(redbutton.deploy.release#module:force).
    type: bool
    default: false
  keep:
    description: Finish of a rollout - how many releases to keep; the current one and the rollback target are always kept.
    type: int
    default: 5
  service:
    description: How to restart or reload the application when the current release is not C(ok) yet (it just became current).
    type: dict
    default: {manager: none}
    suboptions:
      manager:
        description:
          - V(systemd) (C(systemctl restart|reload) the unit O(service.name)), V(command) (the shell commands below, run
            from C(<root>/current)) or V(none).
        type: str
        choices: [systemd, command, none]
        default: none
      name:
        description: The systemd unit; required with O(service.manager=systemd).
        type: str
      scope:
        description: The systemd scope (C(--user), C(--global)).
        type: str
        choices: [system, user, global]
      action:
        description: Restart, or reload.
        type: str
        choices: [restart, reload]
        default: restart
      start_command:
        description: Command manager - shell command that starts the app in the background and returns.
        type: str
      stop_command:
        description: Command manager - shell command that stops the app; must succeed when it does not run.
        type: str
      restart_command:
        description: Command manager - used instead of O(service.stop_command) then O(service.start_command).
        type: str
      reload_command:
        description: Command manager - for O(service.action=reload).
        type: str
      timeout:
        description:
          - Command manager - seconds the commands may take; then they are stopped and the step fails (a start command
            must start the app in the background and return).
        type: int
        default: 300
  health_checks:
    description:
      - The checks that prove the current release works, each a name and exactly one of O(health_checks[].url),
        O(health_checks[].port) or O(health_checks[].command).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Short name used in messages.
        type: str
        required: true
      url:
        description: HTTP check - the URL to GET from the host.
        type: str
      status:
        description: HTTP check - the expected status, or a list of them.
        type: raw
        default: 200
      body_regex:
        description: HTTP check - a regular expression the body must contain.
        type: str
      validate_certs:
        description: HTTP check - verify the TLS certificate.
        type: bool
        default: true
      port:
        description: TCP check - the port that must accept connections.
        type: int
      host:
        description: TCP check - the address to connect to.
        type: str
        default: 127.0.0.1
      command:
        description: Command check - run from C(<root>/current) without a shell.
        type: str
      rc:
        description: Command check - the expected exit code.
        type: int
        default: 0
      stdout_regex:
        description: Command check - a regular expression its standard output must contain.
        type: str
      retries:
        description: Attempts after the first; default O(health_retries).
        type: int
      delay:
        description: Seconds between attempts; default O(health_delay).
        type: int
      timeout:
        description: Seconds one attempt may take; default O(health_timeout).
        type: int
  health_retries:
    description: Default retries of a health check after its first attempt.
    type: int
    default: 10
  health_delay:
    description: Default seconds between attempts.
    type: int
    default: 1
  health_timeout:
    description: Default seconds one HTTP or TCP attempt may take.
    type: int
    default: 5
  migrations:
    description:
      - SQL migrations shipped in each release, run with the engine of M(redbutton.deploy.migrate) - keys C(engine)
        (sqlite, postgresql), C(database), C(login_password), C(path) (relative to the release), C(target), C(allow_data_loss),
        C(backup), C(rehearse), C(baseline_tables). Empty means the engine never touches a database.
    type: dict
    default: {}
  migrate_when:
    description: When a rollout migrates, V(before_switch) or V(after_switch).
    type: str
    choices: [before_switch, after_switch]
    default: before_switch
  baseline:
    description: Record the baseline before a rollout switches, and compare with it after a rollback.
    type: bool
    default: true
  baseline_name:
    description: Verify - the baseline to compare with; V(auto) for the latest one describing the current release, empty for none.
    type: str
    default: auto
  baseline_exclude:
    description: Globs of release files the baseline does not record.
    type: list
    elements: str
    default: ['__pycache__', '*.pyc']
  baseline_shared:
    description: Also record C(<root>/shared/) (compare C(no_loss)) when O(shared_paths) is not empty.
    type: bool
    default: true
  baseline_shared_exclude:
    description: Globs of shared files that change in normal operation.
    type: list
    elements: str
    default: ['*.pid', '*.log', '*.sock']
  baseline_probes:
    description: Extra probes, in the format of M(redbutton.deploy.baseline)'s O(redbutton.deploy.baseline#module:probes).
    type: list
    elements: dict
    default: []
  baseline_verify_content:
    description: V(auto) reuses recorded hashes of files whose inode, size and times are unchanged; V(always) reads every file again.
    type: str
    choices: [auto, always]
    default: auto
  verify_ledger:
    description: Verify - also check that the ledger's current release is good (and is O(release) when given).
    type: bool
    default: true
  revert:
    description: Automatic rollback - go back to the release the rollout replaced; V(false) keeps the new release current, marked C(failed).
    type: bool
    default: true
  failure_task:
    description: Automatic rollback - the task that failed (a user hook), when the engine did not record the failure itself.
    type: str
  failure_msg:
    description: Automatic rollback - that task's message.
    type: str
  actor:
    description: Who runs this; recorded on the ledger's events.
    type: str
  lock_owner:
    description: Hold the deploy lock under this name from the stage (or switch) step to the finish step. Without it no lock is taken.
    type: str
  lock_timeout:
    description: Seconds to wait for a lock held by someone else.
    type: float
    default: 0
  lock_ttl:
    description: Seconds after which the lock may be taken over.
    type: int
    default: 3600
  run_id:
    description: An id of the whole run, decided once on the controller; recorded on every ledger event and on the transition.
    type: str
  runbook:
    description:
      - The runbook of a rollout (see docs/runbook.md), written with no module call of its own. With it, the stage step of a
        rollout returns its plan; the controller side of this module renders the runbook from O(runbook.template), writes the
        controller copy C(<app>-<release>.md) and its JSON twin into O(runbook.dir), and returns the rendered files as
        RV(runbook.files). Give them to the next call of the rollout as O(runbook.files) - its engine writes them into
        C(<root>/.redbutton/runbooks/<release>.md) and C(.json), atomically, before its first step (migrate or switch).
      - The C(redbutton.deploy.rollout) role and the C(redbutton.deploy.runbook) playbook set it.
    type: dict
    suboptions:
      dir:
        description:
          - The directory on the controller for the copy and its JSON twin (every host of the run in one file). A relative
            path starts where ansible-playbook runs. Empty writes no controller copy.
        type: str
      template:
        description: A Jinja2 template on the controller; it gets C(runbook), the facts of the JSON twin. Empty is the collection's.
        type: str
      app:
        description: The application's name, the start of the controller copy's file name.
        type: str
      extra:
        description: The C(-e) values every command of the runbook repeats, for example C(redbutton_app).
        type: dict
        default: {}
      on_error:
        description:
          - What a missing template, a template that fails to render or a directory that cannot be written does.
          - V(warn) (a rollout) - a warning, and the call goes on (what could be written is).
          - V(fail) - the task fails, before the host is read when it can tell then, and before anything is written.
        type: str
        choices: [warn, fail]
        default: warn
      in_check_mode:
        description: V(write) renders and writes the controller copy also in check mode (the runbook playbook); V(skip) writes nothing then.
        type: str
        choices: [skip, write]
        default: skip
      files:
        description: The rendered files the stage call returned (RV(runbook.files)), for the next call to write on the host.
        type: dict
  _plan:
    description: Internal, set by the action plugin (the stage step returns the plan the runbook is written from).
    type: bool
    default: false
  _probe:
    description: Internal, set by the action plugin.
    type: bool
    default: false
  _checksum_of:
    description: Internal, set by the action plugin.
    type: str
    choices: [archive, tree]
    default: archive
  _source:
    description: Internal, set by the action plugin.
    type: str
  _content:
    description: Internal, set by the action plugin (the content digest of a controller artifact).
    type: str
  _controller:
    description: Internal, set by the action plugin (the ansible-playbook process holding the lock, for lock liveness).
    type: dict
author:
  - redbutton.deploy developers (@redbutton)
seealso:
  - module: redbutton.deploy.release
  - module: redbutton.deploy.baseline
  - module: redbutton.deploy.migrate
'''

EXAMPLES = r'''
- name: Stage v2 and record the baseline of what serves now
  redbutton.deploy.transition:
    root: /srv/shop
    direction: rollout
    steps: [stage]
    release: v2
    src: dist/shop-v2.tar.gz
    lock_owner: "rollout:{{ ansible_user_id | default('me') }}"
  register: staged

- name: Switch, restart, verify and finish (an automatic rollback is a second call with direction auto_rollback)
  redbutton.deploy.transition:
    root: /srv/shop
    direction: rollout
    release: "{{ staged.release }}"
    steps: [switch, migrate, restart, verify, finish]
    service: {manager: systemd, name: shop}
    health_checks:
      - {name: home page, url: "http://127.0.0.1:8080/", body_regex: shop}
    lock_owner: "rollout:{{ ansible_user_id | default('me') }}"

- name: Roll back to the previous good release and prove it
  redbutton.deploy.transition:
    root: /srv/shop
    direction: rollback
    once: true
    service: {manager: systemd, name: shop}
    health_checks:
      - {name: home page, url: "http://127.0.0.1:8080/"}
    lock_owner: rollback-by-me
'''

RETURN = r'''
direction:
  description: The direction of this call.
  returned: always
  type: str
release:
  description: The release this transition moves the host to (rollout - the new one; rollback - the target).
  returned: always
  type: str
from:
  description: The release the transition started from (null on a first rollout).
  returned: always
  type: str
to:
  description: The release the transition goes to.
  returned: always
  type: str
moved:
  description: Whether the transition moved C(current).
  returned: always
  type: bool
current:
  description: The release C(current) points to after the call.
  returned: always
  type: str
up_to_date:
  description: Rollout - the release was already current, C(ok) and identical; nothing was done but the checks.
  returned: always
  type: bool
created:
  description: The stage step extracted a new release.
  returned: always
  type: bool
open:
  description: The transition is not finished (more steps to come, or it failed part-way).
  returned: always
  type: bool
outcome:
  description: >-
    rolled_out, up_to_date, rolled_back, already_back, auto_rolled_back, stopped_before_switch, failed_kept,
    finished_then_failed, in_progress or verified.
  returned: always
  type: str
steps:
  description: Each step of this call with its outcome (changed, ok, skipped, failed), seconds and a message.
  returned: always
  type: list
  elements: dict
checks:
  description: Each health check with name, kind, target, passed, attempts and msg.
  returned: always
  type: list
  elements: dict
compare:
  description: The baseline comparison (name, matched, differences, msg), or null.
  returned: always
  type: dict
migrate:
  description: The migration this call ran (version_before, version_after, applied), or null.
  returned: always
  type: dict
statuses:
  description: Release id to status, after the call.
  returned: always
  type: dict
failed_step:
  description: The step that failed, or null.
  returned: always
  type: str
msg:
  description: One sentence that says where the host stands, for example "v1 serves again and passed 2 health checks; v2 is marked rolled_back".
  returned: always
  type: str
summary:
  description: Same as RV(msg).
  returned: always
  type: str
releases:
  description: The releases, oldest first, as M(redbutton.deploy.release_info) returns them.
  returned: always
  type: list
  elements: dict
previous:
  description: The rollback target after the call.
  returned: always
  type: str
pruned:
  description: Releases removed by the finish step of a rollout.
  returned: always
  type: list
  elements: str
locked:
  description: Whether this call's owner still holds the deploy lock.
  returned: always
  type: bool
runbook:
  description:
    - With O(runbook) - after the stage call, where the runbook is and the rendered files for the next call; after the call
      that wrote it on the host, where it is and whether it changed.
    - V(null) when this call neither rendered nor wrote one (no O(runbook), another step, check mode), or when a template or
      directory failed (see the warning).
  returned: always
  type: dict
  contains:
    path:
      description: The markdown on the host, C(<root>/.redbutton/runbooks/<release>.md).
      type: str
    json:
      description: Its JSON twin on the host.
      type: str
    controller:
      description: The controller copy (stage call only), or V(null) without O(runbook.dir) or when it could not be written.
      type: str
    controller_json:
      description: Its JSON twin on the controller (stage call only).
      type: str
    files:
      description: The rendered files (C(release), C(markdown), C(json)) for the next call (stage call only).
      type: dict
    changed:
      description: Whether the host's files were written (the call that wrote them).
      type: bool
button:
  description:
    - The on-host command C(<root>/.redbutton/bin/redbutton), installed or updated by the finish step of a rollout.
    - V(null) when this call did not run the finish step of a rollout.
  returned: always
  type: dict
  contains:
    changed:
      description: Whether the command was written (it is rewritten only when the collection's code changed).
      type: bool
    path:
      description: Where the command is.
      type: str
    version:
      description: The version of the collection it was built from.
      type: str
    checksum:
      description: The sha256 of the command.
      type: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.redbutton.deploy.plugins.module_utils._common import ROOT_ARGUMENT_SPEC
from ansible_collections.redbutton.deploy.plugins.module_utils._hosts import ModuleHost, run_module
from ansible_collections.redbutton.deploy.plugins.module_utils._transition import TRANSITION_ARGUMENT_SPEC, Transition


def main():
    argument_spec = dict(ROOT_ARGUMENT_SPEC)
    argument_spec.update(TRANSITION_ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    engine = Transition(module.params, ModuleHost(module), check_mode=module.check_mode, diff=module._diff)
    run_module(module, engine.run)


if __name__ == '__main__':
    main()
