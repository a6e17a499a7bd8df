# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The filter lb_checks: the load balancer checks of a run, and the settings it refuses before any
host changes; the kinds it knows are the argument specs' choices, each with its three task files."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest
from ansible.errors import AnsibleFilterError
from ansible.parsing.utils.yaml import from_yaml

from ansible_collections.redbutton.deploy.plugins.filter.lb_checks import FilterModule
from ansible_collections.redbutton.deploy.plugins.module_utils._fleet import LB_KINDS

lb_checks = FilterModule().filters()['lb_checks']
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', '..'))
INVENTORY = ['web1', 'web2', 'web3', 'lb1', 'lb2']


def lb(host='lb1', **more):
    return dict({'kind': 'haproxy', 'host': host, 'backend': 'app'}, **more)


def test_one_check_per_load_balancer_socket_and_backend_with_its_servers_in_order():
    checks = lb_checks({'web1': lb(), 'web2': lb(server='two'), 'web3': lb('lb2', socket='/tmp/admin.sock'), 'lb1': {}}, INVENTORY)
    assert checks == [
        {'kind': 'haproxy', 'host': 'lb1', 'socket': '/run/haproxy/admin.sock', 'backend': 'app', 'servers': ['web1', 'two']},
        {'kind': 'haproxy', 'host': 'lb2', 'socket': '/tmp/admin.sock', 'backend': 'app', 'servers': ['web3']},
    ]


def test_no_load_balancer_no_check():
    assert lb_checks({'web1': {}, 'web2': None}, INVENTORY) == []


@pytest.mark.parametrize('settings, message', [
    ({'web1': lb(), 'web2': lb('lb9')},
     "redbutton_load_balancer.host is 'lb9' (for web2), which is not a host of the inventory: name the inventory host"),
    ({'web1': lb(kind='nginx')}, "redbutton_load_balancer.kind is 'nginx' (for web1); the kinds known are haproxy. Nothing was changed."),
    ({'web1': lb(kind='')}, "redbutton_load_balancer.kind is '' (for web1); the kinds known are haproxy."),
])
def test_a_bad_setting_is_refused_naming_it_and_the_host(settings, message):
    with pytest.raises(AnsibleFilterError) as info:
        lb_checks(settings, INVENTORY)
    assert message in str(info.value)


def test_not_a_mapping():
    with pytest.raises(AnsibleFilterError, match='mapping of each host'):
        lb_checks(['web1'], INVENTORY)


@pytest.mark.parametrize('role', ['rollout', 'rollback'])
def test_the_kinds_known_are_the_argument_specs_choices_each_with_its_three_task_files(role):
    with open(os.path.join(ROOT, 'roles', role, 'meta', 'argument_specs.yml'), encoding='utf-8') as handle:
        spec = from_yaml(handle.read())
    kind = spec['argument_specs']['main']['options']['redbutton_load_balancer']['options']['kind']
    assert tuple(kind['choices']) == LB_KINDS
    for name in LB_KINDS:
        for action in ('check', 'drain', 'enable'):
            assert os.path.isfile(os.path.join(ROOT, 'roles', 'steps', 'tasks', 'lb_%s_%s.yml' % (name, action)))
