# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of redbutton.deploy.transition.

The stage step of a rollout uploads a controller artifact exactly as redbutton.deploy.release does
(checksum here, ask the host, upload only when it lacks that content; one call on a local
connection).

The runbook (option ``runbook``, docs/runbook.md), with no module call of its own: the stage call
asks the engine for its plan (hidden ``_plan``), the runbook is rendered here from the template
(the same renderer for the rollout and the runbook playbook), the controller copy and its JSON twin
are written into ``runbook.dir`` (every host of the run in one file, merged under a lock of the
directory), and the rendered files go back in the result as ``runbook.files``: the next call of the
rollout passes them to the engine, which writes them on the host before its first change. With
``on_error: warn`` (the rollout) a template or directory that fails is a warning and the rollout
goes on; with ``fail`` (the runbook playbook) it fails the task before anything is written.
Check mode writes nothing, unless ``in_check_mode: write`` (the runbook playbook, whose engine call
is a check-mode plan).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import errno
import fcntl
import json
import os

from ansible import context as ansible_context
from ansible.module_utils.common.text.converters import to_text
from ansible.parsing.splitter import parse_kv
from ansible.plugins.loader import lookup_loader

from ansible_collections.redbutton.deploy.plugins.action.release import ActionModule as ReleaseAction
from ansible_collections.redbutton.deploy.plugins.module_utils._common import RedbuttonError, atomic_write_bytes, read_json
from ansible_collections.redbutton.deploy.plugins.module_utils._lock import controller_identity
from ansible_collections.redbutton.deploy.plugins.module_utils._runbook import (
    build_runbook,
    host_facts,
    merge_hosts,
    runbook_paths,
)

# The collection's template: <collection>/playbooks/templates/runbook.md.j2.
DEFAULT_TEMPLATE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                'playbooks', 'templates', 'runbook.md.j2')
# The variables a runbook command sets itself (after the run's own -e words, so they win there anyway), and those that
# name this run and its operator, not the next one (a rollback run from the runbook is a run of its own, by whoever runs it).
COMMAND_VARS = ('redbutton_release', 'redbutton_artifact', 'redbutton_artifact_checksum', 'redbutton_rollback_to',
                'redbutton_run_id', 'redbutton_actor', 'redbutton_lock_owner')
HOSTS_FILE = '.%s.hosts.json'  # beside the controller copy: the facts of each host of the run written so far


class RunbookError(Exception):
    """The runbook could not be rendered or written; ``what`` names the setting."""


class ActionModule(ReleaseAction):

    MODULE = 'redbutton.deploy.transition'
    _template = None
    _directory = None

    def _stages(self, args):
        steps = args.get('steps') or ['stage']
        return args.get('direction') == 'rollout' and 'stage' in steps and ReleaseAction._stages(self, args)

    @staticmethod
    def _probe_defaults(args):
        """The probe is the whole call without src: when the host has the content it does all the steps."""

    # -- the runbook ----------------------------------------------------------------------------
    def _plans(self, args, settings):
        """Whether this call is a rollout's stage step that renders the runbook."""
        if not settings or args.get('direction') != 'rollout' or 'stage' not in (args.get('steps') or ['stage']):
            return False
        return not self._task.check_mode or settings.get('in_check_mode') == 'write'

    def _module_args(self, task_vars):
        args = dict(self._task.args)
        settings = args.pop('runbook', None) or {}
        if self._plans(args, settings) and self._template is not None:
            args['_plan'] = True
        elif settings.get('files') and args.get('direction') == 'rollout' and not self._task.check_mode:
            args['runbook'] = {'files': settings['files']}  # the next call of the rollout writes them on the host
        return args

    def _upload_in_check_mode(self, args):
        # The runbook playbook plans the migrations of a release that is not staged from a scratch copy on the host.
        return bool(args.get('_plan') and args.get('migrations'))

    def run(self, tmp=None, task_vars=None):
        if task_vars is None:
            task_vars = {}
        settings = dict(self._task.args.get('runbook') or {})
        self._template = self._directory = None
        problems = []
        if self._plans(self._task.args, settings):
            # Before the host is asked anything: the template, and the directory of the controller copy.
            try:
                self._template = _template(settings)
                self._directory = _directory(settings, create=not ansible_context.CLIARGS.get('check'))
            except RunbookError as exc:
                problems.append(to_text(exc))
            if problems and settings.get('on_error') == 'fail':
                return dict(failed=True, changed=False, msg='%s. Nothing was read or written on the hosts.' % problems[0])
        result = ReleaseAction.run(self, tmp, task_vars)
        plan = result.pop('plan', None)
        if result.get('failed') or plan is None:
            return self._warn(result, problems)
        answer = None
        try:
            answer = self._host_runbook(settings, plan, task_vars)
            # The runbook playbook plans in check mode on purpose (in_check_mode: write); a run with --check writes nothing.
            if self._directory and not ansible_context.CLIARGS.get('check'):
                answer['controller'], answer['controller_json'] = self._write_controller(
                    self._directory, settings.get('app'), answer['files']['release'], answer.pop('raw'), answer.pop('context'),
                    self._task.args.get('run_id') or json.dumps(controller_identity(os.getppid()), sort_keys=True), task_vars,
                    (answer.pop('facts'), answer['files']['markdown']))
        except RunbookError as exc:
            if settings.get('on_error') == 'fail':
                result.update(failed=True, msg='%s. Nothing was written on the hosts.' % exc)
                return result
            problems.append(to_text(exc))
        if answer is not None:
            for key in ('raw', 'context', 'facts'):
                answer.pop(key, None)
        result['runbook'] = answer
        return self._warn(result, problems)

    @staticmethod
    def _warn(result, problems):
        for problem in problems:
            result.setdefault('warnings', []).append('%s; the rollout goes on (documentation never stops it)' % problem)
        return result

    def _render(self, facts, task_vars):
        lookup = lookup_loader.get('ansible.builtin.template', loader=self._loader, templar=self._templar)
        try:
            return to_text(lookup.run([self._template], variables=task_vars, template_vars={'runbook': facts})[0])
        except Exception as exc:  # pylint: disable=broad-except
            # Any failure of a user's template (syntax, undefined, a filter raising) is reported, never a traceback.
            raise RunbookError('redbutton_runbook_template %s failed to render: %s. Fix the template (it gets `runbook`, the '
                               'facts of the JSON twin)' % (self._template, to_text(exc)))

    def _host_runbook(self, settings, plan, task_vars):
        """The runbook of this host: its paths on the host and the rendered files the next call writes there."""
        args = self._task.args
        raw = host_facts(plan, task_vars.get('inventory_hostname'), app=settings.get('app') or None,
                         artifact=args.get('src'), checksum=args.get('checksum'))
        context = dict(inventory=list(task_vars.get('ansible_inventory_sources') or []), extra=dict(settings.get('extra') or {}),
                       cli_extra=_cli_extra(self._loader, set(settings.get('extra') or {}) | set(COMMAND_VARS)),
                       generated_at=datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None).isoformat() + 'Z')
        try:
            facts = build_runbook([raw], context)
        except RedbuttonError as exc:
            raise RunbookError('the runbook could not be built: %s' % exc)
        release = plan['stage']['release']
        host_md, host_json = runbook_paths(plan['root'], release)
        return dict(path=host_md, json=host_json, controller=None, controller_json=None, raw=raw, context=context, facts=facts,
                    files=dict(release=release, markdown=self._render(facts, task_vars), json=_json(facts)))

    def _write_controller(self, directory, app, release, raw, context, run_id, task_vars, rendered=(None, None)):
        """The controller copy: every host of this run written so far, rendered again under a lock of the directory
        (the hosts' workers write it in parallel). rendered: (facts, markdown) of this host's copy, reused when the
        controller copy has the same facts (this host is the only one so far: a rendering costs a tenth of a second)."""
        name = ('%s-%s' % (app, release)) if app else release
        markdown, twin = os.path.join(directory, name + '.md'), os.path.join(directory, name + '.json')
        hosts_file = os.path.join(directory, HOSTS_FILE % name)
        try:
            handle = os.open(directory, os.O_RDONLY)
        except OSError as exc:
            raise RunbookError(_unwritable(directory, exc))
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                kept = read_json(hosts_file, what='runbook hosts')
            except RedbuttonError:
                kept = None  # unreadable: start again from this host
            merged = merge_hosts(kept, raw, run_id)
            try:
                facts = build_runbook([merged['hosts'][host] for host in sorted(merged['hosts'])], context)
            except RedbuttonError as exc:
                raise RunbookError('the runbook could not be built: %s' % exc)
            text = rendered[1] if facts == rendered[0] else self._render(facts, task_vars)
            try:
                atomic_write_bytes(hosts_file, _json(merged).encode('utf-8'), label='runbook')
                atomic_write_bytes(markdown, text.encode('utf-8'), label='runbook')
                atomic_write_bytes(twin, _json(facts).encode('utf-8'), label='runbook')
            except (IOError, OSError) as exc:
                raise RunbookError(_unwritable(directory, exc))
        finally:
            os.close(handle)
        return markdown, twin


def _cli_extra(loader, own):
    """The -e words of this ansible-playbook run, for the runbook's commands to repeat: a vars file by its absolute path
    (its values, secrets included, stay in the file), key=value and inline YAML/JSON without the variables each command
    sets itself (own)."""
    words = []
    for raw in ansible_context.CLIARGS.get('extra_vars') or ():
        raw = to_text(raw).strip()
        if raw.startswith('@'):
            words.append('@' + os.path.abspath(os.path.expanduser(raw[1:])))
        elif raw[:1] in ('{', '['):
            data = loader.load(raw)
            if isinstance(data, dict) and any(name not in own for name in data):
                words.append(json.dumps(dict((k, v) for k, v in data.items() if k not in own), sort_keys=True, default=str))
        elif raw:
            words.extend('%s=%s' % (k, v) for k, v in parse_kv(raw).items() if k not in own and k != '_raw_params')
    return words


def _template(settings):
    template = os.path.expanduser(settings.get('template') or DEFAULT_TEMPLATE)
    if not os.path.isfile(template):
        raise RunbookError('redbutton_runbook_template %s does not exist on the controller: give the path of a Jinja2 markdown '
                           'template (start from the collection\'s playbooks/templates/runbook.md.j2)' % template)
    return template


def _directory(settings, create=True):
    """The directory of the controller copy, made (or, with create False, only proven makeable) and proven writable;
    None without one."""
    if not settings.get('dir'):
        return None
    # A relative directory starts where ansible-playbook runs (the workers inherit its working directory).
    directory = os.path.abspath(os.path.expanduser(settings['dir']))
    try:
        existing = directory
        if not os.path.isdir(directory):
            if create:
                os.makedirs(directory, 0o755)
            else:
                while not os.path.exists(existing):
                    existing = os.path.dirname(existing)
                if not os.path.isdir(existing):
                    raise OSError(errno.ENOTDIR, 'not a directory: %s' % existing)
        if not os.access(existing, os.W_OK | os.X_OK):
            raise OSError(errno.EACCES, 'not writable')
    except OSError as exc:
        raise RunbookError(_unwritable(directory, exc))
    return directory


def _json(data):
    return json.dumps(data, indent=2, sort_keys=True) + '\n'


def _unwritable(directory, exc):
    reason = exc.strerror or str(exc)
    if getattr(exc, 'errno', None) in (errno.EACCES, errno.EPERM, errno.EROFS):
        reason += ' for user %s' % (os.environ.get('USER') or os.getuid())
    return ('redbutton_runbook_dir %s cannot be written (%s): give a directory you can write with -e redbutton_runbook_dir=DIR'
            % (directory, reason))
