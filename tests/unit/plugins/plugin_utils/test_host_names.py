# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The takeover command a module words on the host, named as the controller knows the host."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.redbutton.deploy.plugins.plugin_utils._host_names import name_the_host

HELD = ("deploy lock /srv/shop/.redbutton/lock is held by owner 'alice'; waited 0 s for it. Wait for that run to finish, or, "
        "if it is dead, take the lock over with: ansible vm -m redbutton.deploy.lock -a 'root=/srv/shop state=absent force=true'")


def test_the_command_names_each_inventory_and_the_inventory_host():
    result = name_the_host({'failed': True, 'msg': HELD},
                           {'inventory_hostname': 'web1', 'ansible_inventory_sources': ['/etc/ansible/hosts', '/my inv/prod.yml']})
    assert result['msg'].endswith("take the lock over with: ansible -i /etc/ansible/hosts -i '/my inv/prod.yml' web1 "
                                  "-m redbutton.deploy.lock -a 'root=/srv/shop state=absent force=true'")


def test_other_messages_and_results_are_left_alone():
    assert name_the_host({'msg': 'v2 serves'}, {'inventory_hostname': 'web1'}) == {'msg': 'v2 serves'}
    assert name_the_host({'msg': HELD}, {}) == {'msg': HELD}
    assert name_the_host({'changed': False}, None) == {'changed': False}
