# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a module said on the host, worded as the controller knows the host.

A module that finds the deploy lock held tells how to take it over: ``ansible <host> -m
redbutton.deploy.lock -a '...'``. On the host it only knows the machine's own name, which is often
not the inventory's, and not the inventory. The controller puts in ``-i`` with each inventory source
of the run and the host's inventory name, so the command runs as written.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import shlex

TAKEOVER = re.compile(r"ansible \S+ -m redbutton\.deploy\.lock -a ")


def name_the_host(result, task_vars):
    """result, with the takeover command of its msg naming the inventory and the host's inventory name."""
    msg = result.get('msg') if isinstance(result, dict) else None
    host = (task_vars or {}).get('inventory_hostname')
    if not isinstance(msg, str) or not host or not TAKEOVER.search(msg):
        return result
    words = ['ansible']
    for source in task_vars.get('ansible_inventory_sources') or []:
        words += ['-i', str(source)]
    command = ' '.join(shlex.quote(word) for word in words + [host]) + ' -m redbutton.deploy.lock -a '
    result['msg'] = TAKEOVER.sub(lambda match: command, msg)
    return result
