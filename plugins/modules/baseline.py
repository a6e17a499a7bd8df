#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: baseline
short_description: Record the state of a host and prove later that it is back there
description:
  - Records named probes of the target host (file trees, command output, SQL scalars,
    systemd unit state, package versions) into C(<root>/.redbutton/baselines/<name>.json),
    and compares the live host against such a baseline.
  - The rollout role captures a baseline before it switches releases; the rollback and
    verify roles compare against it and fail with a report naming exactly what differs.
  - A comparison always measures what the baseline recorded (the probe definitions are
    stored with their results). Probes given with O(state=compared) can only adjust
    recorded probes of the same name, namely O(probes[].compare), O(probes[].include) and
    O(probes[].exclude) (new globs filter the recorded files too); any other option they
    give must equal the recorded one, and a name that was not recorded is an error.
  - See C(docs/baselines.md) in the collection for the file format, glob rules and the
    trade-offs of O(verify_content).
author:
  - redbutton.deploy contributors (@redbutton)
extends_documentation_fragment:
  - redbutton.deploy.root
  - redbutton.deploy.root.attributes
attributes:
  idempotent:
    support: full
    description:
      - Capturing again with identical results reports no change and leaves the file
        (and its C(captured_at)) alone. Comparing never changes anything.
options:
  name:
    description:
      - Name of the baseline, for example C(before-v2). Validated like a release id
        (letters, digits, C(.), C(_), C(+), C(-); no C(/)).
    type: str
    required: true
  state:
    description:
      - V(captured) measures O(probes) and records them; recording again with identical
        results changes nothing.
      - V(compared) measures the probes stored in the baseline and returns RV(differences);
        it never writes anything.
      - V(absent) removes the baseline file.
    type: str
    choices: [captured, compared, absent]
    default: compared
  probes:
    description:
      - What to measure. Required with O(state=captured).
      - Each probe has a unique O(probes[].name) and exactly one of O(probes[].path),
        O(probes[].command), O(probes[].sql), O(probes[].service), O(probes[].packages).
      - Optional with O(state=compared), where entries adjust recorded probes of the same name
        (see the description above).
    type: list
    elements: dict
    suboptions:
      name:
        description: Name of the probe, unique within the baseline; reports and RV(differences) use it.
        type: str
        required: true
      compare:
        description:
          - V(exact) (the default) reports any difference.
          - V(no_loss) asserts nothing was lost and allows growth. For a path, every recorded
            file is still present with the same content (type, sha256, size, link target);
            added files and mode or owner changes are allowed. For sql and command probes, the
            value is a number not lower than the recorded one (an rc is still compared exactly).
          - Not available for service and packages probes.
        type: str
        choices: [exact, no_loss]
      path:
        description:
          - Absolute path of a file or a directory tree to record.
          - Per entry it records the type, and for files sha256, size, mode, owner and group (names),
            for directories mode, owner and group, for symlinks the link target.
          - The path itself is followed when it is a symlink (so C(<root>/current) records the
            release it points to) and its link target is recorded too; symlinks inside the
            tree are recorded as links and not followed unless O(probes[].follow=true).
          - A path that does not exist is recorded as absent.
        type: path
      include:
        description:
          - Globs, relative to the tree root, of the entries to record; by default everything.
          - V(*) and V(?) do not cross V(/); V(**) matches any number of directories; a glob
            without V(/) matches at any depth (V(*.py)); a leading V(/) anchors it to the tree root.
          - Every directory is still searched; the tree root itself is always recorded.
        type: list
        elements: str
      exclude:
        description:
          - Globs, as for O(probes[].include), of entries not to record, such as V(logs),
            V(cache/**) or V(*.pyc). An excluded directory is not descended.
          - Use it for what is expected to change (logs, caches, data the application writes).
        type: list
        elements: str
      follow:
        description:
          - For path probes, follow symlinks inside the tree (hash the file a link points to,
            descend into linked directories, with loop protection). Defaults to V(false).
        type: bool
      command:
        description:
          - A command to run; its return code and stripped standard output are recorded.
          - A list is the argv. A string is split like a shell would split words, but no shell
            runs it and no C(~) or C($VAR) is expanded, unless O(probes[].shell=true).
        type: raw
      shell:
        description:
          - For command probes given as a string, run it through C(/bin/sh) (pipes, redirections,
            variables). Defaults to V(false).
        type: bool
      regex:
        description:
          - For command probes, record only the first group of this Python regular expression
            searched in the output (the whole match when it has no group), as C(value).
          - A regex that does not match at capture time is an error.
        type: str
      record:
        description:
          - For command probes, what to record and compare, V(rc) and/or V(stdout) (the output,
            or the regex value). Defaults to both.
        type: list
        elements: str
        choices: [rc, stdout]
      chdir:
        description: For command probes, the absolute directory to run the command in.
        type: path
      sql:
        description:
          - A query returning a single value (one row, one column), for example
            C(SELECT count(*) FROM orders). Runs read-only.
        type: str
      engine:
        description: For sql probes, the database engine.
        type: str
        choices: [sqlite, postgresql]
      database:
        description:
          - For sql probes, the absolute path of the SQLite file (opened read-only), or a
            PostgreSQL connection string such as V(dbname=app user=app host=/run/postgresql).
          - The string is stored in the baseline; do not put a password in it, use
            C(~/.pgpass) or C(PGPASSWORD) in the task's C(environment).
          - PostgreSQL needs the Python library psycopg 3 on the target host.
        type: str
      service:
        description:
          - A systemd unit; its C(LoadState), C(ActiveState), C(SubState) and C(UnitFileState)
            are recorded (C(systemctl show)).
        type: str
      packages:
        description:
          - Package names whose installed versions are recorded (dpkg-query, or rpm where dpkg
            is absent). A package that is not installed is recorded as null.
        type: list
        elements: str
  fail_on_difference:
    description:
      - With O(state=compared), fail when anything differs, with a readable report in C(msg)
        (which probe, what was expected, what was found, which files).
      - When V(false), the task succeeds and RV(differences) says what differs.
    type: bool
    default: true
  verify_content:
    description:
      - V(auto) reuses the recorded sha256 of a file whose device, inode, size, mtime and ctime
        are all unchanged and older than the capture by two seconds (ctime cannot be set by
        programs, any write changes it); every other file is read and hashed again. This makes
        comparing an unchanged tree several times faster than capturing it.
      - V(always) reads and hashes every file again, to catch changes that bypass the
        filesystem (disk corruption, raw device writes, a clock set back). Use it when auditing
        a host after an incident.
      - With O(state=captured), V(auto) also reuses, under the same rules, hashes recorded for the
        same path by the baseline being replaced or by one of the three most recently written
        other baselines, so a capture before each rollout re-reads only what changed.
    type: str
    choices: [auto, always]
    default: auto
notes:
  - Baseline files are written atomically with mode C(0600).
  - Tree capture hashes files on up to four threads, in 1 MiB reads.
seealso:
  - module: redbutton.deploy.release
'''

EXAMPLES = r'''
- name: Record the state before switching releases
  redbutton.deploy.baseline:
    root: /srv/myapp
    name: before-v2
    state: captured
    probes:
      - name: release_tree
        path: /srv/myapp/current
        exclude: ['*.pyc', '__pycache__']
      - name: uploads
        path: /srv/myapp/shared/uploads
        compare: no_loss
      - name: orders
        sql: SELECT count(*) FROM orders
        engine: sqlite
        database: /srv/myapp/shared/app.db
        compare: no_loss
      - name: health
        command: [curl, -fsS, http://127.0.0.1:8080/health]
      - name: app_version
        command: /srv/myapp/current/bin/app --version
        regex: 'version (\S+)'
      - name: service
        service: myapp.service
      - name: runtime
        packages: [python3, nginx]

- name: Prove the rollback put everything back
  redbutton.deploy.baseline:
    root: /srv/myapp
    name: before-v2
    state: compared

- name: Compare without failing, ignoring a log file found noisy afterwards
  redbutton.deploy.baseline:
    root: /srv/myapp
    name: before-v2
    state: compared
    fail_on_difference: false
    verify_content: always
    probes:
      - name: release_tree
        exclude: ['*.pyc', '__pycache__', 'var/log/**']
  register: check

- name: Show what differs
  ansible.builtin.debug:
    msg: "{{ check.differences | map(attribute='probe') | list }}"

- name: Remove an old baseline
  redbutton.deploy.baseline:
    root: /srv/myapp
    name: before-v1
    state: absent
'''

RETURN = r'''
path:
  description: The baseline file.
  returned: always
  type: str
  sample: /srv/myapp/.redbutton/baselines/before-v2.json
name:
  description: The baseline name.
  returned: always
  type: str
  sample: before-v2
captured_at:
  description: When the baseline was recorded (UTC, ISO 8601). An identical re-capture keeps the earlier time.
  returned: when state is captured or compared
  type: str
  sample: '2026-11-26T05:00:00Z'
baseline:
  description:
    - The recorded baseline; with O(state=compared) the stored one.
    - Each probe is its definition plus C(result). For path probes the result is a summary
      (C(exists), C(type), C(link), C(count), C(bytes), C(digest)); the per-file list is only
      in the file at RV(path).
  returned: when state is captured or compared
  type: dict
  sample:
    schema: 1
    name: before-v2
    captured_at: '2026-11-26T05:00:00Z'
    captured_at_ns: 1795496400000000000
    probes:
      - name: orders
        sql: SELECT count(*) FROM orders
        engine: sqlite
        database: /srv/myapp/shared/app.db
        compare: no_loss
        result: {value: 42}
found:
  description: The live result of every probe, by probe name (path probes summarised as in RV(baseline)).
  returned: when state is compared
  type: dict
  sample: {orders: {value: 41}}
differences:
  description: One entry per probe that differs; empty when the host matches the baseline.
  returned: always
  type: list
  elements: dict
  contains:
    probe:
      description: The probe name.
      type: str
      sample: release_tree
    kind:
      description: The probe kind, C(path), C(command), C(sql), C(service) or C(packages).
      type: str
      sample: path
    compare:
      description: How it was compared, C(exact) or C(no_loss).
      type: str
      sample: exact
    description:
      description: What the probe measures, for reports.
      type: str
      sample: path /srv/myapp/current
    expected:
      description: The recorded result (path probes summarised).
      type: dict
    found:
      description: The live result (path probes summarised), or a dict with only C(error) when the probe could not be measured.
      type: dict
    added:
      description: Files (path probes) or packages newly present. Empty for no_loss.
      type: list
      elements: str
      sample: [lib/new.py]
    removed:
      description: Recorded files or packages that are gone.
      type: list
      elements: str
      sample: [lib/old.py]
    changed:
      description:
        - What changed, each C({item, attributes, expected, found}). For path probes C(item) is
          the file relative to the tree root (C(.) is the path itself) and C(attributes) lists
          which of C(type), C(sha256), C(size), C(target), C(mode), C(owner), C(group), C(link)
          differ; for packages C(item) is the package (C(version)); for services the unit; for
          sql and command probes the probe name (C(value), C(rc), C(stdout)).
      type: list
      elements: dict
      sample:
        - item: lib/app.py
          attributes: [sha256, size]
          expected: {sha256: 3a4b..., size: 120}
          found: {sha256: 9f8e..., size: 121}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.redbutton.deploy.plugins.module_utils._common import ROOT_ARGUMENT_SPEC
from ansible_collections.redbutton.deploy.plugins.module_utils._baseline import BaselineModule
from ansible_collections.redbutton.deploy.plugins.module_utils._hosts import run_module

PROBE_OPTIONS = dict(
    name=dict(type='str', required=True),
    compare=dict(type='str', choices=['exact', 'no_loss']),
    path=dict(type='path'),
    include=dict(type='list', elements='str'),
    exclude=dict(type='list', elements='str'),
    follow=dict(type='bool'),
    command=dict(type='raw'),
    shell=dict(type='bool'),
    regex=dict(type='str'),
    record=dict(type='list', elements='str', choices=['rc', 'stdout']),
    chdir=dict(type='path'),
    sql=dict(type='str'),
    engine=dict(type='str', choices=['sqlite', 'postgresql']),
    database=dict(type='str'),
    service=dict(type='str'),
    packages=dict(type='list', elements='str'),
)


def argument_spec():
    spec = dict(ROOT_ARGUMENT_SPEC)
    spec.update(
        name=dict(type='str', required=True),
        state=dict(type='str', choices=['captured', 'compared', 'absent'], default='compared'),
        probes=dict(type='list', elements='dict', options=PROBE_OPTIONS),
        fail_on_difference=dict(type='bool', default=True),
        verify_content=dict(type='str', choices=['auto', 'always'], default='auto'),
    )
    return spec


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        required_if=[('state', 'captured', ['probes'])],
        supports_check_mode=True,
    )
    run_module(module, BaselineModule(module).execute)


if __name__ == '__main__':
    main()
