#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: gate
short_description: Judge one gate between two waves of a rollout - an HTTP check, a command, or a metric against a threshold
description:
  - A gate says whether a fleet may go on to its next wave. The rollout, rollback, rehearse and toggle playbooks judge
    each gate of C(redbutton_gates) once per wave, after the hosts of the wave passed their health checks, on the
    controller or on the host the gate's C(run_on) names (docs/fleet.md).
  - V(http) passes when O(url) answers O(status) (and its body matches O(body_regex)); V(command) passes when
    O(command) exits O(rc) (and its output matches O(stdout_regex)), as the health checks of a rollout do.
  - V(metric) reads a number from O(url) (the body, or the value O(json_path) selects in its JSON, for example the
    value of a Prometheus query) or from O(command) (its output), and passes when it is at most O(max) and at least O(min).
  - The result says the measured value against the threshold. A gate that fails makes the task fail with that message.
  - Retries like a health check - the gate passes as soon as one attempt passes; V(0) retries judges once.
  - Changes nothing.
attributes:
  check_mode:
    support: full
    description: The gate is judged in check mode too (it only reads); a command gate's command runs, so keep it read-only.
  diff_mode:
    support: none
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    details: Nothing is ever changed, so there is nothing to diff.
  idempotent:
    support: full
    description: It only reads.
  platform:
    platforms: posix
    description: Target OS/families that can be operated against.
    support: N/A
options:
  name:
    description: The gate's name, shown in the result and the run's table.
    type: str
    required: true
  kind:
    description: What the gate checks.
    type: str
    choices: [http, command, metric]
    required: true
  url:
    description:
      - V(http) - the URL to check. V(metric) - the URL whose body is the number, or JSON holding it (see O(json_path)).
      - Exactly one of O(url) or O(command) for a metric.
    type: str
  command:
    description:
      - V(command) - the command to run (split into arguments, no shell). V(metric) - a shell command printing the number,
        or JSON holding it.
    type: str
  json_path:
    description:
      - Where the number is in the JSON the O(url) or O(command) of a metric gives - keys and list indexes separated by dots,
        optionally starting with C($.), indexes also as C([N]). For a Prometheus instant query,
        C(data.result.0.value.1). The selected value may be a number or a string holding one.
      - Without it, the whole body or output must be the number.
    type: str
  max:
    description: V(metric) - the gate fails when the value is above this.
    type: float
  min:
    description: V(metric) - the gate fails when the value is below this.
    type: float
  status:
    description: V(http) - the status code, or list of codes, that passes.
    type: raw
    default: 200
  body_regex:
    description: V(http) - a regular expression the body must match.
    type: str
  validate_certs:
    description: Whether to validate HTTPS certificates.
    type: bool
    default: true
  rc:
    description: V(command) - the exit code that passes.
    type: int
    default: 0
  stdout_regex:
    description: V(command) - a regular expression the output must match.
    type: str
  retries:
    description: How many more times to try a gate that did not pass, O(delay) seconds apart.
    type: int
    default: 0
  delay:
    description: Seconds between attempts.
    type: int
    default: 5
  timeout:
    description: Seconds an HTTP request or a command may take.
    type: int
    default: 10
seealso:
  - module: redbutton.deploy.transition
author:
  - redbutton.deploy contributors (@redbutton)
'''

EXAMPLES = r'''
- name: Judge the error rate of the fleet from Prometheus
  redbutton.deploy.gate:
    name: error rate
    kind: metric
    url: "http://prometheus:9090/api/v1/query?query=sum(rate(http_requests_total{code=~'5..'}[2m]))/sum(rate(http_requests_total[2m]))"
    json_path: data.result.0.value.1
    max: 0.01
  delegate_to: localhost

- name: Run the smoke tests from a host of the fleet
  redbutton.deploy.gate:
    name: smoke
    kind: command
    command: /opt/shop/bin/smoke-test
    retries: 2
    delay: 10
'''

RETURN = r'''
name:
  description: The gate's name.
  returned: always
  type: str
kind:
  description: The gate's kind.
  returned: always
  type: str
target:
  description: The URL or command judged.
  returned: always
  type: str
passed:
  description: Whether the gate passed.
  returned: always
  type: bool
value:
  description: The number a metric gate measured (null when there was none, or for other kinds).
  returned: always
  type: float
  sample: 0.002
threshold:
  description: The threshold of a metric gate, as words (null for other kinds).
  returned: always
  type: str
  sample: max 0.01
attempts:
  description: How many attempts were made.
  returned: always
  type: int
msg:
  description: The measured value against the threshold, or what the check saw.
  returned: always
  type: str
  sample: "gate error rate failed: 0.2 > max 0.01 (http://prometheus:9090/api/v1/query?query=...)"
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.redbutton.deploy.plugins.module_utils._common import RedbuttonError
from ansible_collections.redbutton.deploy.plugins.module_utils._fleet import COMMON_KEYS, KIND_KEYS, Gate, gate_problems
from ansible_collections.redbutton.deploy.plugins.module_utils._hosts import ModuleHost, run_module


def judge(module):
    keys = COMMON_KEYS + KIND_KEYS[module.params['kind']]
    gate = dict((key, value) for key, value in module.params.items() if value is not None and key in keys)
    problems = gate_problems([gate])
    if problems:
        raise RedbuttonError(' '.join(problems))
    result = Gate(gate, ModuleHost(module)).run()
    result['changed'] = False
    if not result['passed']:
        raise _Failed(result)
    return result


class _Failed(RedbuttonError):
    """A gate that did not pass: the task fails with its message and the whole result."""

    def __init__(self, result):
        super(_Failed, self).__init__(result['msg'])
        self.result = result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type='str', required=True),
            kind=dict(type='str', required=True, choices=['http', 'command', 'metric']),
            url=dict(type='str'),
            command=dict(type='str'),
            json_path=dict(type='str'),
            max=dict(type='float'),
            min=dict(type='float'),
            status=dict(type='raw', default=200),
            body_regex=dict(type='str'),
            validate_certs=dict(type='bool', default=True),
            rc=dict(type='int', default=0),
            stdout_regex=dict(type='str'),
            retries=dict(type='int', default=0),
            delay=dict(type='int', default=5),
            timeout=dict(type='int', default=10),
        ),
        supports_check_mode=True,
    )
    run_module(module, lambda: judge(module))


if __name__ == '__main__':
    main()
