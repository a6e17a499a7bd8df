# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of redbutton.deploy.transition: the stage step of a rollout uploads a
controller artifact exactly as redbutton.deploy.release does (checksum here, ask the host,
upload only when it lacks that content; one call on a local connection). Every other call
goes straight to the module."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.redbutton.deploy.plugins.action.release import ActionModule as ReleaseAction


class ActionModule(ReleaseAction):

    MODULE = 'redbutton.deploy.transition'

    def _stages(self, args):
        steps = args.get('steps') or ['stage']
        return (args.get('direction') == 'rollout' and 'stage' in steps and bool(args.get('src'))
                and not boolean(args.get('remote_src', False), strict=False))

    @staticmethod
    def _probe_defaults(args):
        """The probe is the whole call without src: when the host has the content it does all the steps."""
