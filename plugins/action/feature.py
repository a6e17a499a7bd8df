# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of redbutton.deploy.feature: ansible-core's own, with the module's payload kept
between runs (plugins/plugin_utils/_payload_cache.py), and the run that takes the deploy lock named in
it (the ansible-playbook process, this worker's parent), so the next run from this controller can tell a
dead holder from a live one and take its lock over, as after a rollout."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.redbutton.deploy.plugins.module_utils._lock import controller_identity
from ansible_collections.redbutton.deploy.plugins.plugin_utils._payload_cache import KeptAction


class ActionModule(KeptAction):

    def run(self, tmp=None, task_vars=None):
        if '_controller' not in self._task.args:
            self._task.args = dict(self._task.args, _controller=controller_identity(os.getppid()))
        return super(ActionModule, self).run(tmp, task_vars)
