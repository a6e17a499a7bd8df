# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A fleet in waves: the checks of the wave and gate settings, the gates themselves, where a host
stood before a run (from its ledger events and the run id), and the per-host table of a run.

The settings are checked on the controller before any host changes (filter fleet_problems); a gate
is judged by the module redbutton.deploy.gate on the controller or on a named host.

Private to the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import math
import re
import time

from ansible_collections.redbutton.deploy.plugins.module_utils._checks import HealthChecks
from ansible_collections.redbutton.deploy.plugins.module_utils._common import RedbuttonError
from ansible_collections.redbutton.deploy.plugins.module_utils._haproxy import DEFAULT_SOCKET

GATE_KINDS = ('http', 'command', 'metric')
CONTROLLER = 'controller'
# The keys a gate may have, per kind (name, kind, run_on, retries, delay and timeout: every kind).
COMMON_KEYS = ('name', 'kind', 'run_on', 'retries', 'delay', 'timeout')
KIND_KEYS = {
    'http': ('url', 'status', 'body_regex', 'validate_certs'),
    'command': ('command', 'rc', 'stdout_regex'),
    'metric': ('url', 'command', 'json_path', 'max', 'min', 'validate_certs'),
}
GATE_DEFAULTS = {'retries': 0, 'delay': 5, 'timeout': 10}
_WAVE_EXAMPLE = 'for example [1, "25%", "100%"]'


# -- waves --------------------------------------------------------------------------------------
def _size_problem(setting, size):
    """Why one batch size is not valid, or None: a whole number of hosts above 0, or 1% to 100%."""
    if isinstance(size, bool) or not isinstance(size, (int, str)):
        return '%s item %s is not valid: give a number of hosts greater than 0 or a percentage from 1%% to 100%%.' \
            % (setting, json.dumps(size, default=str))
    text = str(size).strip()
    if re.match(r'^\d+$', text) and int(text) > 0:
        return None
    if re.match(r'^\d+(\.\d+)?\s*%$', text) and 0 < float(text.rstrip('%').strip()) <= 100:
        return None
    return '%s item %s is not valid: give a number of hosts greater than 0 or a percentage from 1%% to 100%%.' \
        % (setting, json.dumps(size))


def wave_problems(waves, serial=None):
    """The problems of redbutton_waves (and of the older redbutton_serial), as sentences."""
    problems = []
    if waves is not None and serial is not None:
        problems.append('redbutton_waves and redbutton_serial are both set: give only redbutton_waves (redbutton_serial N is '
                        'the same as redbutton_waves [N]).')
    for setting, value in (('redbutton_waves', waves), ('redbutton_serial', serial)):
        if value is None:
            continue
        if setting == 'redbutton_serial' and not isinstance(value, (list, tuple)):
            value = [value]
        if isinstance(value, (str, bytes, dict)) or not isinstance(value, (list, tuple)) or not value:
            shown = json.dumps(value, default=str)
            problems.append('%s %s is not valid: give a list of wave sizes, %s.' % (setting, shown, _WAVE_EXAMPLE))
            continue
        problems.extend(p for p in (_size_problem(setting, size) for size in value) if p)
    return problems


def serial_of(waves=None, serial=None):
    """What Ansible's serial gets: the wave list, the older batch size, or one wave of every host."""
    if waves is not None:
        return list(waves)
    if serial is not None:
        return serial
    return ['100%']


# -- gates --------------------------------------------------------------------------------------
def _number(value):
    if isinstance(value, bool):
        raise ValueError(value)
    number = float(value)
    if math.isnan(number) or math.isinf(number):
        raise ValueError(value)  # "nan" would pass every comparison, "inf" every maximum
    return number


def gate_problems(gates, pause=0, inventory=None):
    """The problems of redbutton_gates and redbutton_gate_pause, as sentences naming the gate and the setting."""
    problems = []
    try:
        if _number(pause) < 0:
            raise ValueError(pause)
    except (TypeError, ValueError):
        problems.append('redbutton_gate_pause %s is not valid: give the seconds to watch each wave before its gates are '
                        'judged (0 or more).' % json.dumps(pause, default=str))
    if gates is None:
        return problems
    if isinstance(gates, (str, bytes, dict)) or not isinstance(gates, (list, tuple)):
        problems.append('redbutton_gates %s is not valid: give a list of gates, each a mapping with name and kind (http, command '
                        'or metric).' % json.dumps(gates, default=str)[:200])
        return problems
    names = set()
    for index, gate in enumerate(gates):
        if not isinstance(gate, dict):
            problems.append('redbutton_gates item %d (%s) is not valid: give a mapping with name and kind (http, command or '
                            'metric).' % (index + 1, json.dumps(gate, default=str)[:100]))
            continue
        label = 'redbutton_gates item %d%s' % (index + 1, (' (%s)' % gate['name']) if isinstance(gate.get('name'), str) else '')
        problems.extend('%s: %s' % (label, p) for p in _one_gate_problems(gate, names, inventory))
    return problems


def _one_gate_problems(gate, names, inventory):
    problems = []
    if True in gate or 'on' in gate:
        problems.append('write run_on: controller or run_on: <inventory host> (YAML reads a bare on: as true).')
    name = gate.get('name')
    if not isinstance(name, str) or not name.strip():
        problems.append('name is missing: give each gate a name, it is shown in the result.')
    elif name in names:
        problems.append('name %s is used twice: give each gate its own name.' % name)
    else:
        names.add(name)
    kind = gate.get('kind')
    if kind not in GATE_KINDS:
        problems.append('kind %s is not valid: give http, command or metric.' % json.dumps(kind, default=str))
        return problems
    allowed = set(COMMON_KEYS) | set(KIND_KEYS[kind])
    unknown = sorted(str(k) for k in gate if k not in allowed and k is not True and k != 'on')
    if 'threshold' in unknown:
        problems.append('threshold is not a gate key: give max (the gate fails above it) and/or min (it fails below it).')
        unknown.remove('threshold')
    if unknown:
        problems.append('%s %s not valid for a %s gate: the keys are %s.' % (
            ', '.join(unknown), 'is' if len(unknown) == 1 else 'are', kind, ', '.join(COMMON_KEYS + KIND_KEYS[kind])))
    if kind == 'http' and not gate.get('url'):
        problems.append('an http gate needs url.')
    if kind == 'command' and not gate.get('command'):
        problems.append('a command gate needs command.')
    if kind == 'metric':
        if bool(gate.get('url')) == bool(gate.get('command')):
            problems.append('a metric gate needs exactly one of url (JSON or a number over HTTP) or command (prints a number).')
        if gate.get('max') is None and gate.get('min') is None:
            problems.append('a metric gate needs a threshold: max (the gate fails above it) and/or min (it fails below it).')
        for key in ('max', 'min'):
            if gate.get(key) is not None:
                try:
                    _number(gate[key])
                except (TypeError, ValueError):
                    problems.append('%s %s is not a number.' % (key, json.dumps(gate[key], default=str)))
        if gate.get('json_path') is not None:
            try:
                parse_path(gate['json_path'])
            except RedbuttonError as exc:
                problems.append(str(exc))
    for key in ('retries', 'delay', 'timeout'):
        value = gate.get(key)
        if value is not None and (isinstance(value, bool) or not re.match(r'^\d+$', str(value).strip())):
            problems.append('%s %s is not valid: give a whole number, 0 or more.' % (key, json.dumps(value, default=str)))
    where = gate.get('run_on', CONTROLLER)
    if where != CONTROLLER and (not isinstance(where, str) or inventory is None or where not in inventory):
        problems.append('run_on %s is not a host of the inventory: give controller or one of the inventory hosts.'
                        % json.dumps(where, default=str))
    return problems


def parse_path(path):
    """A json_path selector as a list of keys and list indexes: data.result.0.value.1, or with a leading $.
    and [N] for indexes: $.data.result[0].value[1]. An empty path selects the whole document."""
    if not isinstance(path, str):
        raise RedbuttonError('json_path %s is not valid: give a string such as data.result.0.value.1.' % json.dumps(path, default=str))
    text = re.sub(r'\[(\d+)\]', r'.\1', path.strip())
    if text.startswith('$'):
        text = text[1:]
    text = text.strip('.')
    if not text:
        return []
    parts = text.split('.')
    if any(not part for part in parts):
        raise RedbuttonError('json_path %s is not valid: separate the keys with single dots, for example data.result.0.value.1.'
                             % json.dumps(path))
    return [int(part) if part.isdigit() else part for part in parts]


def select(document, path):
    """The value json_path selects in a parsed JSON document; RedbuttonError saying where it stopped."""
    value = document
    walked = []
    for part in parse_path(path):
        if isinstance(part, int) and isinstance(value, list):
            if part >= len(value):
                raise RedbuttonError('json_path %s: %s has %d item%s, no item %d' % (
                    path, '.'.join(walked) or 'the document', len(value), '' if len(value) == 1 else 's', part))
            value = value[part]
        elif isinstance(value, dict) and str(part) in value:
            value = value[str(part)]
        else:
            raise RedbuttonError('json_path %s: %s has no %s' % (path, '.'.join(walked) or 'the document', part))
        walked.append(str(part))
    return value


def to_number(value, what):
    """A float from a JSON number or a string holding one (Prometheus gives "0.02"); NaN is not a number."""
    if isinstance(value, bool):
        raise RedbuttonError('%s is %s, not a number' % (what, json.dumps(value)))
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise RedbuttonError('%s is %s, not a number' % (what, json.dumps(value, default=str)[:200]))
    if math.isnan(number) or math.isinf(number):
        raise RedbuttonError('%s is %s, not a number' % (what, json.dumps(value, default=str)))
    return number


def _fmt(number):
    return ('%.6g' % number) if isinstance(number, float) else str(number)


class Gate(object):
    """Judge one gate: an HTTP check, a command, or a metric against max/min; with retries."""

    def __init__(self, gate, host, sleep=time.sleep):
        self.gate = dict((k, v) for k, v in gate.items() if v is not None)
        for key, value in GATE_DEFAULTS.items():
            self.gate.setdefault(key, value)
        self.host = host
        self.sleep = sleep

    @property
    def target(self):
        return self.gate.get('url') or self.gate.get('command')

    def threshold(self):
        parts = []
        if self.gate.get('max') is not None:
            parts.append('max %s' % _fmt(_number(self.gate['max'])))
        if self.gate.get('min') is not None:
            parts.append('min %s' % _fmt(_number(self.gate['min'])))
        return ', '.join(parts) or None

    def run(self):
        """{name, kind, target, passed, value, threshold, attempts, msg}; msg says the measured value against the threshold."""
        attempts = int(self.gate['retries']) + 1
        for attempt in range(1, attempts + 1):
            passed, value, detail = self._once()
            if passed or attempt == attempts:
                break
            self.sleep(float(self.gate['delay']))
        tries = '' if attempt == 1 else ' (attempt %d of %d)' % (attempt, attempts)
        msg = 'gate %s %s: %s%s' % (self.gate['name'], 'passed' if passed else 'failed', detail, tries)
        return {'name': self.gate['name'], 'kind': self.gate['kind'], 'target': self.target, 'passed': passed,
                'value': value, 'threshold': self.threshold(), 'attempts': attempt, 'msg': msg}

    def _once(self):
        kind = self.gate['kind']
        if kind in ('http', 'command'):
            check = dict((k, self.gate[k]) for k in KIND_KEYS[kind] + ('timeout',) if k in self.gate)
            check.update(name=self.gate['name'], retries=0)
            dummy, results = HealthChecks([check], self.host, None, retries=0, delay=0, timeout=self.gate['timeout']).run()
            return results[0]['passed'], None, results[0]['msg']
        try:
            value = self.measure()
        except RedbuttonError as exc:
            return False, None, str(exc)
        return self.compare(value)

    def compare(self, value):
        """(passed, value, 'VALUE <= max 0.05 (target)')."""
        low, high = self.gate.get('min'), self.gate.get('max')
        if high is not None and value > _number(high):
            text = '%s > max %s' % (_fmt(value), _fmt(_number(high)))
        elif low is not None and value < _number(low):
            text = '%s < min %s' % (_fmt(value), _fmt(_number(low)))
        else:
            bounds = [b for b in ('%s <= max %s' % (_fmt(value), _fmt(_number(high))) if high is not None else '',
                                  '%s >= min %s' % (_fmt(value), _fmt(_number(low))) if low is not None else '') if b]
            return True, value, '%s (%s)' % (', '.join(bounds), self.target)
        return False, value, '%s (%s)' % (text, self.target)

    def measure(self):
        """The number the url or command gives, through json_path when there is one."""
        timeout = float(self.gate['timeout'])
        if self.gate.get('url'):
            status, body = self.host.http_get(self.gate['url'], timeout, self.gate.get('validate_certs', True) is not False)
            if status is None:
                raise RedbuttonError('%s answered nothing: %s' % (self.gate['url'], body))
            if not 200 <= int(status) < 300:
                raise RedbuttonError('%s answered %s: %s' % (self.gate['url'], status, (body or '').strip()[:200]))
            text, source = body or '', self.gate['url']
        else:
            rc, out, err = self.host.run_command(self.gate['command'], use_unsafe_shell=True)
            if rc != 0:
                raise RedbuttonError('%s exited %s: %s' % (self.gate['command'], rc, ((out or '') + ' ' + (err or '')).strip()[:200]))
            text, source = out or '', self.gate['command']
        if self.gate.get('json_path') is None:
            return to_number(text, 'what %s gave' % source)
        try:
            document = json.loads(text)
        except ValueError:
            raise RedbuttonError('%s did not give JSON (%s) for json_path %s' % (source, text.strip()[:100], self.gate['json_path']))
        return to_number(select(document, self.gate['json_path']), 'json_path %s of %s' % (self.gate['json_path'], source))


# -- the run's hosts ----------------------------------------------------------------------------
def before_run(events, run_id, current=None):
    """Where a host stood before the run run_id, read from its ledger events (oldest first):
    {moved, before, now}. moved: the run switched current at least once; before: the release the
    first of those switches left; now: the current release."""
    switches = [e for e in events or [] if e.get('event') == 'activated' and run_id and e.get('run_id') == run_id]
    if not switches:
        return {'moved': False, 'before': current, 'now': current}
    return {'moved': True, 'before': switches[0].get('from'), 'now': current}


def fleet_report(hosts, fleet_rollback=True):
    """The per-host table of a run: hosts maps each host to its {wave, outcome, msg, moved, before, now,
    back} (back: what the fleet-wide rollback did, if it ran). Returns the lines of the table."""
    rows = [('host', 'wave', 'before', 'now', 'what happened')]
    for name, fact in sorted((hosts or {}).items(), key=lambda pair: ((pair[1] or {}).get('wave') or 1e9, pair[0])):
        item = dict(fact or {}, host=name)
        rows.append((str(item.get('host')), str(item.get('wave') or '-'), str(item.get('before') or '-'),
                     str(item.get('now') or '-'), happened(item, fleet_rollback)))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return ['  '.join(cell.ljust(width) for cell, width in zip(row[:4], widths)) + '  ' + row[4] for row in rows]


def happened(item, fleet_rollback=True):
    """One sentence: what the run did to this host."""
    outcome = item.get('outcome')
    msg = (item.get('msg') or '').strip()
    back = item.get('back')
    if outcome in (None, 'pending'):
        return 'unreachable, or failed outside its rollout' if item.get('wave') else 'not reached'
    if outcome == 'skipped':
        return 'not touched: an earlier wave failed'
    text = {'done': 'passed', 'failed': 'failed'}.get(outcome, outcome)
    if msg:
        text += ': ' + msg
    if back:
        text += '; ' + back
    elif item.get('moved') and item.get('before') is None:
        text += '; no release before this run to go back to: left on %s' % item.get('now')
    elif not fleet_rollback and item.get('moved') and item.get('before') != item.get('now'):
        text += '; left on %s: redbutton_fleet_rollback is false' % item.get('now')
    return text


# -- the load balancer in front of the hosts ------------------------------------------------------
# A kind is a set of task files roles/steps/tasks/lb_<kind>_{check,drain,enable}.yml, and its name
# here and in the roles' argument specs (choices of redbutton_load_balancer.kind).
LB_KINDS = ('haproxy',)


def lb_checks(settings, inventory):
    """The load balancer checks of a run, before any host changes. settings maps each host of the play
    to its redbutton_load_balancer (empty: none). Returns one check per load balancer, socket and
    backend, in the order the hosts name them: {kind, host, socket, backend, servers}. Raises
    RedbuttonError naming the setting when a host names a load balancer host that is not in the
    inventory or an unknown kind: nothing has changed yet."""
    checks = {}
    for name in settings or {}:
        lb = settings[name] or {}
        if not lb:
            continue
        kind, host = lb.get('kind') or '', lb.get('host') or ''
        if host not in (inventory or []):
            raise RedbuttonError(
                "redbutton_load_balancer.host is '%s' (for %s), which is not a host of the inventory: name the inventory host "
                "the load balancer runs on (the drain runs there). Nothing was changed." % (host, name))
        if kind not in LB_KINDS:
            raise RedbuttonError("redbutton_load_balancer.kind is '%s' (for %s); the kinds known are %s. Nothing was changed."
                                 % (kind, name, ', '.join(LB_KINDS)))
        socket_path = lb.get('socket') or DEFAULT_SOCKET
        backend = lb.get('backend') or ''
        check = checks.setdefault((kind, host, socket_path, backend),
                                  {'kind': kind, 'host': host, 'socket': socket_path, 'backend': backend, 'servers': []})
        check['servers'].append(lb.get('server') or name)
    return list(checks.values())
