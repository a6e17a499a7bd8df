# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: rollout_probes
short_description: The baseline probes a rollout records before it switches, from the rollout's settings
version_added: 0.1.0
description:
  - The same list the transition engine records as C(before-<release>) (the release tree, shared data, the
    systemd service, the command health checks, the database's schema fingerprint and row counts, your own probes),
    for playbooks that show or preview it, such as C(redbutton.deploy.runbook).
options:
  _input:
    description:
      - The rollout's settings, with the transition module's names - C(root) (required), C(shared_paths), C(service),
        C(health_checks), C(migrations), C(baseline_exclude), C(baseline_shared), C(baseline_shared_exclude),
        C(baseline_probes). Missing ones take the module's defaults.
    type: dict
    required: true
author:
  - redbutton.deploy contributors (@redbutton)
'''

EXAMPLES = r'''
- name: Show what the rollout would record
  ansible.builtin.debug:
    msg: "{{ {'root': '/srv/shop', 'shared_paths': ['data'], 'health_checks': redbutton_health_checks} | redbutton.deploy.rollout_probes }}"
'''

RETURN = r'''
_value:
  description: The probes, in the format of the baseline module's O(redbutton.deploy.baseline#module:probes).
  type: list
  elements: dict
'''

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text

from ansible_collections.redbutton.deploy.plugins.module_utils._checks import validate_checks, validate_service
from ansible_collections.redbutton.deploy.plugins.module_utils._common import RedbuttonError
from ansible_collections.redbutton.deploy.plugins.module_utils._transition import defaults, rollout_probes as _probes
from ansible_collections.redbutton.deploy.plugins.module_utils._transition import validate_migrations


def rollout_probes(settings):
    params = defaults()
    params.update(dict((key, value) for key, value in dict(settings or {}).items() if value is not None))
    try:
        if not params.get('root'):
            raise RedbuttonError('rollout_probes needs root: the application root')
        params['migrations'] = validate_migrations(params.get('migrations'), params.get('migrate_when') or 'before_switch')
        return _probes(params, validate_service(params.get('service')), validate_checks(params.get('health_checks')))
    except RedbuttonError as exc:
        raise AnsibleFilterError(to_text(exc))


class FilterModule(object):

    def filters(self):
        return {'rollout_probes': rollout_probes}
