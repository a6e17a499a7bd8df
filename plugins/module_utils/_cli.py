# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The command line of the on-host command <root>/.redbutton/bin/redbutton (the red button).

    redbutton [--root DIR] status   [--events N] [--json]
    redbutton [--root DIR] rollback [--to ID] [--yes] [--json]
    redbutton [--root DIR] verify   [--json]

It runs the same transition engine as the roles (plugins/module_utils/_transition.py), with
the subprocess host adapter instead of Ansible, and the service, health checks, migrations
and baseline settings the last rollout recorded in <root>/.redbutton/settings.json.

Exit codes: 0 done and verified; 1 failed (the output says where the host stands and what to
do next); 2 refused before changing anything.

Private to the collection. Python 3.8+ standard library only: it runs on hosts without Ansible.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import copy
import getpass
import json
import os
import socket
import sys

from ansible_collections.redbutton.deploy.plugins.module_utils._common import (
    RedbuttonError,
    read_json,
    state_dir,
)

PROG = 'redbutton'
# The collection version (galaxy.yml); the command is rebuilt by every rollout.
VERSION = '0.1.0'
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_REFUSED = 2
SETTINGS_FILE = 'settings.json'
RUN_ID = 'on-host'
PASSWORD_VARIABLES = ('REDBUTTON_DB_PASSWORD', 'PGPASSWORD')
DEFAULT_EVENTS = 5

DESCRIPTION = """\
The red button of redbutton.deploy: look at, roll back and verify this host's releases without
Ansible or a controller. It runs the same engine as the rollback playbook, with the service,
health checks, migrations and baseline settings the last rollout recorded on this host.

exit codes: 0 done and verified; 1 failed (the output says where the host stands and what to
do next); 2 refused before changing anything (lock held, unknown release, nothing to roll
back to, corrupt ledger, missing release directory, read-only root)."""


class Refused(RedbuttonError):
    """Refused before anything changed: exit code 2."""


class Failed(RedbuttonError):
    """Something changed, or may have, and the host is not where it should be: exit code 1."""

    def __init__(self, message, result=None):
        super(Failed, self).__init__(message)
        self.result = result


# the environment -------------------------------------------------------------------------
def default_root(program):
    """<root> of <root>/.redbutton/bin/redbutton, following a symlink to the command; None
    when the program is not an installed command (then --root is required)."""
    if not program:
        return None
    path = os.path.abspath(program)
    for _dummy in range(16):
        if not os.path.islink(path):
            break
        path = os.path.normpath(os.path.join(os.path.dirname(path), os.readlink(path)))
    bin_dir = os.path.dirname(path)
    state = os.path.dirname(bin_dir)
    if os.path.basename(bin_dir) != 'bin' or os.path.basename(state) != '.redbutton':
        return None
    return os.path.dirname(state)


def actor():
    """Who pressed the button: user@host (the user behind sudo when run through sudo)."""
    user = os.environ.get('SUDO_USER')
    if not user:
        try:
            user = getpass.getuser()
        except (KeyError, ImportError, OSError):
            user = 'uid%d' % os.getuid()
    return '%s@%s' % (user, socket.gethostname())


def stdin_is_terminal():
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def settings_path(root):
    return os.path.join(state_dir(root), SETTINGS_FILE)


def read_settings(root):
    """The settings the last rollout recorded; refuses when there are none."""
    path = settings_path(root)
    try:
        settings = read_json(path, what='settings file')
    except RedbuttonError as exc:
        raise Refused(str(exc))
    if settings is None:
        raise Refused(
            'no settings recorded in %s: the last rollout on this host did not record its service, health checks and '
            'baseline settings (it predates the on-host command). Roll back with the playbook '
            '(ansible-playbook redbutton.deploy.rollback), or roll out once with this collection version' % path)
    if not isinstance(settings, dict):
        raise Refused('settings file %s does not hold a JSON object; it was left untouched: '
                      'roll back with the playbook, then roll out again to record the settings' % path)
    return settings


def check_root(root):
    """Refuse a root that does not look like one, or that cannot be written."""
    if not os.path.isdir(root):
        raise Refused('%s is not a directory: give the application root with --root DIR (the directory that holds '
                      'current, releases/ and .redbutton/)' % root)
    if not os.path.isdir(state_dir(root)):
        raise Refused('%s has no .redbutton/ directory: it is not a root that redbutton.deploy rolled out to; '
                      'give the application root with --root DIR' % root)


def check_writable(root):
    """A rollback writes the current symlink in root and the ledger and lock in .redbutton/."""
    for path in (root, state_dir(root)):
        if not os.access(path, os.W_OK | os.X_OK):
            raise Refused(
                'cannot write %s (a read-only file system, or no permission for this user): a rollback replaces the '
                'current symlink and writes the ledger and the lock there. Run it as the user '
                'who owns the root (for example with sudo), or remount the file system read-write' % path)


# output ----------------------------------------------------------------------------------
class Output(object):
    """Human lines to stdout (warnings and prompts to stderr), or one JSON document."""

    def __init__(self, as_json, stdout=None, stderr=None):
        self.as_json = as_json
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self.warnings = []

    def line(self, text=''):
        if not self.as_json:
            self.stdout.write(text.rstrip() + '\n')
            self.stdout.flush()

    def warn(self, text):
        self.warnings.append(text)
        self.stderr.write('warning: %s\n' % text)
        self.stderr.flush()

    def error(self, text):
        if not self.as_json:
            self.stderr.write('%s: %s\n' % (PROG, text))
            self.stderr.flush()

    def document(self, data):
        if self.as_json:
            data = dict(data)
            if self.warnings:
                data['warnings'] = list(self.warnings)
            self.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + '\n')
            self.stdout.flush()


def status_lines(root, info):
    """The status playbook's table: releases oldest first with their notes, the last switch,
    the last events and the lock."""
    width = max([8] + [len(item['id']) for item in info['releases']])
    lines = ['%-*s  %-11s  %s' % (width, 'RELEASE', 'STATUS', 'NOTE')]
    for item in info['releases']:
        notes = []
        if item['id'] == info['current']:
            notes.append('current')
        if item['id'] == info['previous']:
            notes.append('previous (rollback target)')
        if not item.get('present', True):
            notes.append('directory missing')
        lines.append('%-*s  %-11s  %s' % (width, item['id'], item.get('status'), ', '.join(notes)))
    if not info['releases']:
        lines.append('no releases under %s' % root)
    switch = info.get('last_switch')
    if switch:
        lines.append('last switch: %s -> %s (%s) at %s by %s' % (
            switch.get('from'), switch.get('to'), switch.get('reason'), switch.get('time'), switch.get('by')))
    for event in info['events']:
        what = '%s %s' % (event.get('event'), event.get('release'))
        if event.get('event') == 'activated' and event.get('from'):
            what += ' (from %s)' % event['from']
        if event.get('event') == 'status':
            what += ' -> %s' % event.get('status', '?')
        why = ', %s' % event['reason'] if event.get('reason') else ''
        by = ' by %s' % event['by'] if event.get('by') else ''
        lines.append('event %s  %s  %s%s%s' % (event.get('seq'), event.get('time'), what, why, by))
    lines.append('lock: %s' % lock_text(info.get('lock')))
    return lines


def lock_text(holder):
    if not holder:
        return 'free'
    if holder.get('error'):
        return holder['error']
    return '%s since %s, expires %s (host %s, pid %s)' % (
        holder.get('owner'), holder.get('acquired_at', '?'), holder.get('expires_at', '?'), holder.get('host'), holder.get('pid'))


# the commands ----------------------------------------------------------------------------
def _release_info(root, events):
    from ansible_collections.redbutton.deploy.plugins.module_utils._release import ReleaseInfo
    try:
        return ReleaseInfo(root, events=events).run()
    except RedbuttonError as exc:
        raise Refused(str(exc))


def cmd_status(args, out):
    check_root(args.root)
    info = _release_info(args.root, args.events)
    for text in status_lines(args.root, info):
        out.line(text)
    out.document(dict(info, root=args.root, command='status', exit=EXIT_OK))
    return EXIT_OK


def _engine():
    """The transition engine, imported only by the commands that run it."""
    from ansible_collections.redbutton.deploy.plugins.module_utils import _transition
    return _transition


def _local_host():
    """The engine's host adapter without Ansible: subprocess, urllib; warnings to stderr."""
    from ansible_collections.redbutton.deploy.plugins.module_utils._hosts import LocalHost
    return LocalHost(out=sys.stderr)


def _lock_owner(who):
    return '%s:%s:%d' % (RUN_ID, who, os.getpid())


def _spec_defaults(spec):
    return dict((name, copy.deepcopy(option.get('default'))) for name, option in spec.items() if not name.startswith('_'))


def plan_rollback(root, target, once, owner, who, warn):
    """What a rollback would do, from the release engine in check mode: raises for an unknown
    release, nothing to roll back to, a missing directory, a failed target, a held lock."""
    from ansible_collections.redbutton.deploy.plugins.module_utils._release import (
        RELEASE_ARGUMENT_SPEC, ReleaseManager)
    params = _spec_defaults(RELEASE_ARGUMENT_SPEC)
    params.update(root=root, release=target, once=once, state='active', previous_status='rolled_back',
                  reason='rollback', actor=who, lock_owner=owner, lock_timeout=0)
    try:
        return ReleaseManager(params, check_mode=True, warn=warn).run()
    except RedbuttonError as exc:
        message = str(exc)
        missing = _missing_directories(root)
        if missing:
            message += '. The directories of %s are missing under %s/releases: a release without its directory ' \
                       'cannot be rolled back to' % (', '.join(missing), root)
        raise Refused(message)


def _missing_directories(root):
    try:
        info = _release_info(root, 0)
    except RedbuttonError:
        return []
    return [item['id'] for item in info['releases'] if not item.get('present', True)]


def transition_params(settings, root, direction, release, once, who, owner):
    """The engine's parameters: its defaults, the settings the last rollout recorded, then ours."""
    engine = _engine()
    params = engine.defaults()
    for name in engine.RECORDED_SETTINGS:
        if settings.get(name) is not None:
            params[name] = copy.deepcopy(settings[name])
    # A marker for the command (the rollout used a password), not an engine setting.
    params['migrations'] = dict((key, value) for key, value in (params.get('migrations') or {}).items()
                                if key != 'password_from')
    params.update(root=root, direction=direction, release=release, once=once, actor=who, lock_owner=owner,
                  run_id=RUN_ID)
    return params


def _schema_version(plan, release_id):
    for item in plan.get('releases') or []:
        if item['id'] == release_id:
            return (item.get('metadata') or {}).get('schema_version')
    return None


def database_password(migrations, plan, ask):
    """The database password of a rollback that migrates down, when the rollout used one: from
    the environment, or typed at a terminal; never from disk. Returns (password or None, where
    it came from, or None when no password is needed)."""
    if not migrations or not migrations.get('password_from'):
        return None, None
    if not plan.get('current_before') or plan.get('release') == plan.get('current_before'):
        return None, None
    if _schema_version(plan, plan['release']) == _schema_version(plan, plan['current_before']):
        return None, None
    for name in PASSWORD_VARIABLES:
        if os.environ.get(name):
            return os.environ[name], 'the environment variable %s' % name
    if ask:
        return getpass.getpass('database password for %s (the migrations down need it; empty for none): '
                               % migrations.get('database')) or None, 'typed at the prompt'
    return None, 'nowhere (%s are unset and there is no terminal to ask on): connecting with the connection string ' \
                 'and ~/.pgpass alone' % ' and '.join(PASSWORD_VARIABLES)


def confirm(question, out):
    out.stderr.write('%s [y/N] ' % question)
    out.stderr.flush()
    answer = sys.stdin.readline()
    return answer.strip().lower() in ('y', 'yes')


def describe_plan(root, plan, settings):
    service = settings.get('service') or {}
    checks = settings.get('health_checks') or []
    manager = service.get('manager') or 'none'
    parts = ['service: %s%s' % (manager, (' %s' % service.get('name')) if service.get('name') else '')]
    parts.append('%d health check%s' % (len(checks), '' if len(checks) == 1 else 's'))
    if settings.get('migrations'):
        parts.append('migrations down to schema version %s' % _schema_version(plan, plan['release']))
    return 'Roll back %s from %s to %s (%s will be marked rolled_back; %s)?' % (
        root, plan.get('current_before'), plan['release'], plan.get('current_before'), ', '.join(parts))


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def dead_press(root):
    """The lock left by an earlier press on this host whose process is gone (killed, its shell
    closed), or None. An on-host command holds the lock for its whole run, so its pid tells
    whether it still runs. (A playbook's lock is never taken for dead: its pid is a module call's.)"""
    from ansible_collections.redbutton.deploy.plugins.module_utils._lock import DeployLock
    try:
        holder = DeployLock(root).read()
    except RedbuttonError:
        return None
    if not holder or not str(holder.get('owner') or '').startswith(RUN_ID + ':'):
        return None
    if holder.get('host') != socket.gethostname() or not isinstance(holder.get('pid'), int) or _pid_alive(holder['pid']):
        return None
    return holder


def release_dead_press(root, holder, out):
    from ansible_collections.redbutton.deploy.plugins.module_utils._lock import DeployLock, describe_holder
    out.warn('releasing the deploy lock left by an earlier redbutton that is no longer running (%s); the ledger '
             'records how far it got, and this run finishes or redoes its steps' % describe_holder(holder))
    DeployLock(root).release(holder['owner'])


def cmd_rollback(args, out):
    check_root(args.root)
    who = actor()
    owner = _lock_owner(who)
    dead = dead_press(args.root)
    plan = plan_rollback(args.root, args.to or 'previous', args.to is None, dead['owner'] if dead else owner, who, out.warn)
    check_writable(args.root)
    settings = read_settings(args.root)
    moves = plan['release'] != plan.get('current_before')
    nothing_to_do = not moves and plan.get('status') == 'ok'
    terminal = stdin_is_terminal()
    if not args.yes and not nothing_to_do:
        question = describe_plan(args.root, plan, settings) if moves else (
            'Restart and verify %s, the current release of %s, and mark it ok?' % (plan['release'], args.root))
        if not terminal:
            raise Refused('%s Not confirmed: there is no terminal to ask on; pass --yes to '
                          'roll back without asking' % question)
        if not confirm(question, out):
            raise Refused('not confirmed')
    if dead:
        release_dead_press(args.root, dead, out)
    params = transition_params(settings, args.root, 'rollback', args.to, args.to is None, who, owner)
    password, source = database_password(settings.get('migrations'), plan, terminal)
    if source:
        out.line('database password: %s' % source)
        if out.as_json:
            out.stderr.write('database password: %s\n' % source)
    if password:
        params['migrations'] = dict(params['migrations'], login_password=password)
    try:
        return run_transition(args, out, params, what='rollback of %s' % args.root)
    except KeyboardInterrupt:
        # Let go of our own lock: the open transition in the ledger lets the next press finish the job.
        from ansible_collections.redbutton.deploy.plugins.module_utils._lock import DeployLock
        try:
            DeployLock(args.root).release(owner)
        except RedbuttonError:
            pass
        raise


def cmd_verify(args, out):
    check_root(args.root)
    settings = read_settings(args.root)
    params = transition_params(settings, args.root, 'verify', None, False, actor(), None)
    params['baseline_name'] = args.baseline or 'auto'
    return run_transition(args, out, params, what='verify of %s' % args.root, check_mode=True)


def run_transition(args, out, params, what, check_mode=False):
    engine = _engine()
    host = _local_host()
    try:
        result = engine.Transition(params, host, check_mode=check_mode).run()
    except engine.TransitionFailed as exc:
        result = dict(exc.result or {})
        show_result(out, what, result)
        raise Failed(failure_advice(args, result), result)
    except RedbuttonError as exc:
        raise Refused(str(exc))
    finally:
        out.warnings.extend(host.warnings)
    show_result(out, what, result)
    out.document(dict(result, root=args.root, command=args.command, exit=EXIT_OK))
    return EXIT_OK


def show_result(out, what, result):
    if result.get('moved'):
        out.line('%s: %s -> %s' % (what, result.get('from'), result.get('to')))
    else:
        out.line('%s: current is %s' % (what, result.get('current')))
    for step in result.get('steps') or []:
        out.line('  %-8s %-8s %6.2f s  %s' % (step.get('name'), step.get('outcome'), step.get('seconds') or 0,
                                              (step.get('msg') or '').split('\n')[0]))
    for check in result.get('checks') or []:
        out.line('  check %s (%s %s): %s after %s attempt%s%s' % (
            check.get('name'), check.get('kind'), check.get('target'), 'passed' if check.get('passed') else 'FAILED',
            check.get('attempts'), '' if check.get('attempts') == 1 else 's',
            (': %s' % check['msg']) if check.get('msg') and not check.get('passed') else ''))
    compare = result.get('compare')
    if compare and compare.get('matched') is False and compare.get('msg'):
        out.line('  baseline %s DIFFERS:' % compare.get('name'))
        for text in str(compare['msg']).splitlines():
            out.line('    %s' % text)
    if result.get('msg'):
        out.line(result['msg'])


def failure_advice(args, result):
    """Where the host stands and what to do next, after a failed transition."""
    current = result.get('current')
    step = result.get('failed_step') or 'an unknown step'
    if args.command == 'verify':
        return ('verify failed at %s: %s. Nothing was changed. Look at the service and the report above; when the host is '
                'right, run redbutton verify again' % (step, result.get('msg') or 'no message'))
    if result.get('moved'):
        return ('rollback failed at %s after switching current to %s (%s is marked rolled_back, %s is not marked ok). '
                'Look at the service and the report above; when it is fixed, run redbutton rollback --to %s to verify '
                'again and mark it ok, or roll back further with redbutton rollback --to <older id> (redbutton status '
                'lists them)' % (step, current, result.get('from'), current, current))
    return ('rollback failed at %s; current is %s. Run redbutton status to see the releases, fix the cause, then press '
            'again' % (step, current))


# the command line ------------------------------------------------------------------------
def parser():
    main_parser = argparse.ArgumentParser(
        prog=PROG, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    main_parser.add_argument('--version', action='version', version='%s (redbutton.deploy %s)' % (PROG, VERSION))
    main_parser.add_argument('--root', metavar='DIR',
                             help='the application root (default: the directory that holds .redbutton/bin/redbutton)')
    sub = main_parser.add_subparsers(dest='command', metavar='{status,rollback,verify}')
    sub.required = True

    status = sub.add_parser('status', help='show the releases, the last switch, the last events and the lock',
                            description='Show the ledger as the status playbook does: the releases oldest first with '
                                        'their status (current, previous = the rollback target, directory missing), '
                                        'the last switch, the last events and the lock. Changes nothing.')
    status.add_argument('--events', type=int, default=DEFAULT_EVENTS, metavar='N',
                        help='how many recent events to show (default %d)' % DEFAULT_EVENTS)

    rollback = sub.add_parser(
        'rollback', help='roll back to the previous good release (or --to ID), verified',
        description='Roll back as the rollback playbook does: lock, switch current, migrate the database down when the '
                    'release recorded migrations, restart or reload the service, run the health checks, compare with the '
                    'baseline recorded before the undone rollout, mark the statuses, unlock. It uses the service, checks '
                    'and settings the last rollout recorded on this host. A database password is read from '
                    'REDBUTTON_DB_PASSWORD (or PGPASSWORD), or asked for on a terminal; it is never stored.')
    rollback.add_argument('--to', metavar='ID',
                          help='the release to roll back to (default: the previous good release; right after a '
                               'rollback the default stays put)')
    rollback.add_argument('--yes', action='store_true', help='do not ask for confirmation (needed without a terminal)')

    verify = sub.add_parser('verify', help='run the health checks and the baseline comparison, changing nothing',
                            description='Run the health checks the last rollout recorded and compare the host with the '
                                        'baseline recorded before the rollout that was undone last. Changes nothing.')
    verify.add_argument('--baseline', metavar='NAME',
                        help='the baseline to compare with (a file of <root>/.redbutton/baselines/, without .json; default: '
                             'the one that describes the current release)')
    for command in sub.choices.values():
        command.add_argument('--json', action='store_true', help='print one JSON document instead of text')
    return main_parser


def main(argv=None, program=None):
    args = parser().parse_args(argv)
    out = Output(args.json)
    if args.root is None:
        args.root = default_root(program if program is not None else sys.argv[0])
        if args.root is None:
            out.error('give the application root with --root DIR (this command is not <root>/.redbutton/bin/redbutton)')
            out.document({'command': args.command, 'exit': EXIT_REFUSED, 'msg': 'no --root given'})
            return EXIT_REFUSED
    args.root = os.path.abspath(args.root)
    commands = {'status': cmd_status, 'rollback': cmd_rollback, 'verify': cmd_verify}
    try:
        return commands[args.command](args, out)
    except Refused as exc:
        text = '%s. Nothing was changed.' % str(exc).rstrip('. ')
        out.error(text)
        out.document({'command': args.command, 'root': args.root, 'exit': EXIT_REFUSED, 'refused': True, 'msg': text})
        return EXIT_REFUSED
    except Failed as exc:
        out.error(str(exc))
        out.document(dict(exc.result or {}, command=args.command, root=args.root, exit=EXIT_FAILED, advice=str(exc)))
        return EXIT_FAILED
    except KeyboardInterrupt:
        text = ('interrupted. The ledger records how far it got: run redbutton status, then press again; a rollback that '
                'was interrupted is finished by the next one')
    except Exception as exc:  # pylint: disable=broad-except
        text = ('unexpected error: %s: %s. The host may be half-way: run redbutton status to see where it stands, then '
                'press again or roll back with the playbook' % (type(exc).__name__, exc))
    out.error(text)
    out.document({'command': args.command, 'root': args.root, 'exit': EXIT_FAILED, 'msg': text})
    return EXIT_FAILED
