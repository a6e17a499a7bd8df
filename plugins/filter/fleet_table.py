# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: fleet_table
short_description: The per-host table of a run in waves - host, wave, release before, release now, what happened
version_added: 0.1.0
description:
  - One line per host, columns aligned, with a header line, from each host's C(redbutton_fleet) fact (docs/fleet.md).
options:
  _input:
    description:
      - Each host's C(redbutton_fleet) by host name - C(wave), C(outcome) (pending, done, failed or skipped), C(msg),
        C(moved), C(before), C(now), C(back) (what the fleet-wide rollback did, if it ran). Sorted by wave, then name.
    type: dict
    required: true
  fleet_rollback:
    description: Whether the fleet-wide rollback was on (a moved host left on the new release says why).
    type: bool
    default: true
author:
  - redbutton.deploy contributors (@redbutton)
'''

EXAMPLES = r'''
- name: Show where every host stands
  ansible.builtin.debug:
    msg: "{{ dict(ansible_play_hosts_all | zip(ansible_play_hosts_all | map('extract', hostvars, 'redbutton_fleet')))
             | redbutton.deploy.fleet_table }}"
'''

RETURN = r'''
_value:
  description: The lines of the table.
  type: list
  elements: str
'''

from ansible_collections.redbutton.deploy.plugins.module_utils._fleet import fleet_report


def fleet_table(hosts, fleet_rollback=True):
    return fleet_report(hosts, fleet_rollback)


class FilterModule(object):

    def filters(self):
        return {'fleet_table': fleet_table}
