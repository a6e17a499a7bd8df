# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: cut_steps
short_description: The engine calls of one transition, cut where a hook or a load balancer step sits
version_added: 0.1.0
description:
  - Takes a transition (C(direction), and optionally C(steps), C(hooks) and C(skip_hooks)) and returns its steps as the
    fewest calls of C(redbutton.deploy.transition) the hooks allow, in the order the engine runs them.
  - A rollout's stage step is a call of its own (it uploads the artifact; a re-run of the current release ends there).
    A hook C(redbutton_before_<step>) starts a call with that step; C(redbutton_after_<step>) ends the call after it.
  - With a load balancer, the switch starts a call (the host is drained right before it) and the call with the verify
    step puts the host back when its checks pass.
  - The internal role C(redbutton.deploy.steps) calls it once per transition.
options:
  _input:
    description:
      - The transition - C(direction) (rollout, rollback or auto_rollback), C(steps) (default every step of the
        direction), C(hooks) (default true; false runs none) and C(skip_hooks) (the hook names not to run, for example
        C(before_switch)).
    type: dict
    required: true
  hooks:
    description: Each hook's variable name without C(redbutton_) (C(before_switch)) mapped to the tasks file it names, empty for none.
    type: dict
    required: true
  migrations:
    description: Whether the transition migrates (C(redbutton_migrations) is set).
    type: bool
    default: false
  migrate_when:
    description: Where a rollout migrates, C(before_switch) or C(after_switch).
    type: str
    default: before_switch
  load_balancer:
    description: Whether the host is behind a load balancer (C(redbutton_load_balancer) is set).
    type: bool
    default: false
author:
  - redbutton.deploy contributors (@redbutton)
'''

EXAMPLES = r'''
- name: Show the calls of a rollout with a hook after the switch
  ansible.builtin.debug:
    msg: "{{ {'direction': 'rollout'} | redbutton.deploy.cut_steps(hooks={'after_switch': 'notify.yml'}) | map(attribute='steps') }}"
  # [['stage'], ['switch'], ['restart', 'verify', 'finish']]
'''

RETURN = r'''
_value:
  description: One entry per call, in order.
  type: list
  elements: dict
  contains:
    steps:
      description: The engine steps of the call.
      type: list
      elements: str
    before:
      description: The hook tasks file to run before the call, empty for none.
      type: str
    after:
      description: The hook tasks file to run after the call, empty for none.
      type: str
    first:
      description: Whether it is the transition's first call.
      type: bool
    drain:
      description: Whether the host is drained from its load balancer right before the call.
      type: bool
    enable:
      description: Whether the host is put back into its load balancer after the call.
      type: bool
    file:
      description: The task file of the role that runs the call, C(call.yml) alone, or C(segment.yml) with a hook or a load balancer step around it.
      type: str
'''

from ansible.errors import AnsibleFilterError

# Every step a transition can have, in the engine's order (docs/architecture.md).
STEPS = ('stage', 'migrate', 'switch', 'restart', 'verify', 'compare', 'finish')
DIRECTIONS = ('rollout', 'rollback', 'auto_rollback')


def default_steps(direction, migrations=False, migrate_when='before_switch'):
    """Each direction's steps; migrate only with migrations, in a rollout where migrate_when puts it."""
    migrate = ['migrate'] if migrations else []
    if direction != 'rollout':
        return ['switch'] + migrate + ['restart', 'verify', 'compare', 'finish']
    before = migrate_when == 'before_switch'
    return ['stage'] + (migrate if before else []) + ['switch'] + ([] if before else migrate) + ['restart', 'verify', 'finish']


def cut_steps(transition, hooks, migrations=False, migrate_when='before_switch', load_balancer=False):
    if not isinstance(transition, dict) or transition.get('direction') not in DIRECTIONS:
        raise AnsibleFilterError('cut_steps needs a transition with a direction (%s), not %r' % (', '.join(DIRECTIONS), transition))
    if not isinstance(hooks, dict):
        raise AnsibleFilterError('cut_steps needs hooks, a mapping of before_<step> and after_<step> to tasks files')
    steps = transition.get('steps') or default_steps(transition['direction'], migrations, migrate_when or 'before_switch')
    unknown = [step for step in steps if step not in STEPS]
    if unknown:
        raise AnsibleFilterError('cut_steps: unknown step %s; the steps are %s' % (', '.join(unknown), ', '.join(STEPS)))
    skip = transition.get('skip_hooks') or []
    runs = transition.get('hooks', True)
    runs = runs if isinstance(runs, bool) else str(runs).strip().lower() in ('true', 'yes', 'on', '1')

    def hook(name):
        return (hooks.get(name) or '') if runs and name not in skip else ''

    segments = []
    for index, step in enumerate(steps):
        previous = steps[index - 1] if index else None
        if (not index or previous == 'stage' or hook('after_' + previous) or hook('before_' + step)
                or (load_balancer and step == 'switch')):
            segments.append({'steps': [], 'before': hook('before_' + step), 'first': not index, 'drain': False, 'enable': False})
        segment = segments[-1]
        segment['steps'].append(step)
        segment['after'] = hook('after_' + step)
        # With a load balancer: drained right before the call that switches, put back after the call that verified.
        if load_balancer and step == 'switch':
            segment['drain'] = True
        if load_balancer and step == 'verify':
            segment['enable'] = True
    for segment in segments:
        # A call with neither hook nor load balancer step is call.yml alone, without the includes around it.
        around = segment['before'] or segment['after'] or segment['drain'] or segment['enable']
        segment['file'] = 'segment.yml' if around else 'call.yml'
    return segments


class FilterModule(object):

    def filters(self):
        return {'cut_steps': cut_steps}
