# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of redbutton.deploy.gate: ansible-core's own, with the module's payload kept
between runs (plugins/plugin_utils/_payload_cache.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.redbutton.deploy.plugins.plugin_utils._payload_cache import KeptAction


class ActionModule(KeptAction):
    pass
