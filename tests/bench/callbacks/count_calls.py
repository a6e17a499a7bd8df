# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Callback of the benchmarks: count the module calls a run makes on its hosts.

Every task result that ran a module on a host counts once (a loop counts once per item);
tasks the controller answers alone (set_fact, debug, assert, fail, includes, meta, ...) and
skipped tasks do not. Writes {host: {module: count}} as JSON to $REDBUTTON_COUNT_CALLS, and under
"_engine_seconds" the seconds the transition engine reported for its steps (the work on the host;
the rest of a run is Ansible and the roles).
"""

from __future__ import absolute_import, division, print_function

import json
import os

from ansible.plugins.callback import CallbackBase

__metaclass__ = type

DOCUMENTATION = '''
name: count_calls
type: aggregate
short_description: count module calls per host (redbutton.deploy benchmarks)
description: Writes the number of module calls per host and module to the file named by REDBUTTON_COUNT_CALLS.
requirements: []
'''

CONTROLLER_ONLY = frozenset(
    'set_fact debug assert fail include_tasks include_role import_tasks import_role meta set_stats add_host group_by '
    'include_vars pause validate_argument_spec'.split())


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'count_calls'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super(CallbackModule, self).__init__()
        self.calls = {}
        self.engine_seconds = 0.0

    def _count(self, result):
        action = result._task.action.split('.')[-1]
        if action in CONTROLLER_ONLY:
            return
        items = result._result.get('results')
        number = len(items) if isinstance(items, list) and items else 1
        host = self.calls.setdefault(result._host.get_name(), {})
        host[result._task.action] = host.get(result._task.action, 0) + number
        if action == 'transition':
            self.engine_seconds += sum(step.get('seconds') or 0.0 for step in result._result.get('steps') or [])

    def v2_runner_on_ok(self, result):
        self._count(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._count(result)

    def v2_playbook_on_stats(self, stats):
        path = os.environ.get('REDBUTTON_COUNT_CALLS')
        if path:
            with open(path, 'w') as handle:
                json.dump(dict(self.calls, _engine_seconds=round(self.engine_seconds, 3)), handle)
