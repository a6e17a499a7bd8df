# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Probes of redbutton.deploy.baseline: validate a probe, measure it, compare results.

Private to the collection (leading underscore): other collections must not import it.

One class per probe kind (path, command, sql, service, packages), chosen once by
build_probe(); each measures the live system into a JSON-able result and compares a
recorded result with a live one into (added, removed, changed) lists whose changed
entries are {"item", "attributes", "expected", "found"}.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import decimal
import os
import re

from urllib.parse import quote

from ansible_collections.redbutton.deploy.plugins.module_utils._common import RedbuttonError, validate_release_id
from ansible_collections.redbutton.deploy.plugins.module_utils._baseline_tree import (
    TreeError, TreeFilter, TreeScanner, compare_trees, filter_files, summarise,
)

KINDS = ('path', 'command', 'sql', 'service', 'packages')
COMMON_OPTIONS = ('name', 'compare')
KIND_OPTIONS = {
    'path': ('path', 'include', 'exclude', 'follow'),
    'command': ('command', 'regex', 'record', 'chdir', 'shell'),
    'sql': ('sql', 'engine', 'database'),
    'service': ('service',),
    'packages': ('packages',),
}
# What a compare-time probe may change on a recorded probe: how to judge, and which
# files to look at (applied to the recorded files as well, so it stays like for like).
ADJUSTABLE_OPTIONS = ('compare', 'include', 'exclude')
NO_LOSS_KINDS = ('path', 'sql', 'command')
SERVICE_PROPERTIES = ('LoadState', 'ActiveState', 'SubState', 'UnitFileState')
UNIT_RE = re.compile(r'^[A-Za-z0-9@:_.\\][A-Za-z0-9@:_.\\-]*$')
PACKAGE_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9.+_~-]*(?::[A-Za-z0-9_-]+)?$')
C_LOCALE = {'LC_ALL': 'C', 'LANG': 'C'}


class ProbeError(Exception):
    """A probe could not be measured; the message says why."""


def import_psycopg():
    """psycopg, imported by the PostgreSQL probe that needs it: importing it costs a module call
    about a third of a second, and most baselines have no such probe. ImportError when missing."""
    import psycopg
    return psycopg


def all_options():
    names = list(COMMON_OPTIONS)
    for kind in KINDS:
        names.extend(KIND_OPTIONS[kind])
    return names


def _fail(label, message):
    raise RedbuttonError('%s: %s' % (label, message))


def _string_list(label, key, value, allow_empty=True):
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        _fail(label, '%s must be a list of non-empty strings, got %r' % (key, value))
    if not value and not allow_empty:
        _fail(label, '%s must name at least one entry' % key)
    return list(value)


def _absolute(label, key, value):
    if not isinstance(value, str) or not os.path.isabs(value):
        _fail(label, '%s %r must be an absolute path' % (key, value))
    return os.path.normpath(value)


def _normalize_path(label, probe):
    probe['path'] = _absolute(label, 'path', probe['path'])
    probe['include'] = _string_list(label, 'include', probe.get('include', []))
    probe['exclude'] = _string_list(label, 'exclude', probe.get('exclude', []))
    follow = probe.get('follow', False)
    if not isinstance(follow, bool):
        _fail(label, 'follow must be true or false, got %r' % (follow,))
    probe['follow'] = follow
    try:
        TreeFilter(probe['include'], probe['exclude']).validate()
    except ValueError as exc:
        _fail(label, str(exc))


def _normalize_command(label, probe):
    command = probe['command']
    shell = probe.get('shell', False)
    if not isinstance(shell, bool):
        _fail(label, 'shell must be true or false, got %r' % (shell,))
    if isinstance(command, list):
        if not command or not all(isinstance(arg, str) for arg in command):
            _fail(label, 'command must be a non-empty string or a non-empty list of strings (argv)')
        if shell:
            _fail(label, 'shell: true needs command as one string, not a list')
    elif not isinstance(command, str) or not command.strip():
        _fail(label, 'command must be a non-empty string or a non-empty list of strings (argv)')
    probe['shell'] = shell
    record = probe.get('record', ['rc', 'stdout'])
    record = _string_list(label, 'record', record, allow_empty=False)
    bad = [item for item in record if item not in ('rc', 'stdout')]
    if bad:
        _fail(label, 'record accepts rc and stdout, not %s' % ', '.join(bad))
    probe['record'] = [item for item in ('rc', 'stdout') if item in record]
    if 'regex' in probe:
        if not isinstance(probe['regex'], str):
            _fail(label, 'regex must be a string')
        try:
            re.compile(probe['regex'])
        except re.error as exc:
            _fail(label, 'regex %r is not a valid regular expression: %s' % (probe['regex'], exc))
        if 'stdout' not in probe['record']:
            _fail(label, 'regex extracts a value from stdout: keep stdout in record')
    if 'chdir' in probe:
        probe['chdir'] = _absolute(label, 'chdir', probe['chdir'])
    if probe['compare'] == 'no_loss' and 'stdout' not in probe['record']:
        _fail(label, 'compare: no_loss compares a number printed by the command: keep stdout in record')


def _normalize_sql(label, probe):
    if not isinstance(probe['sql'], str) or not probe['sql'].strip():
        _fail(label, 'sql must be a non-empty query that returns one value')
    engine = probe.get('engine')
    if engine not in ('sqlite', 'postgresql'):
        _fail(label, 'engine must be sqlite or postgresql, got %r' % (engine,))
    database = probe.get('database')
    if not isinstance(database, str) or not database:
        _fail(label, 'database is required: the SQLite file, or a PostgreSQL connection string such as "dbname=app"')
    if engine == 'sqlite':
        probe['database'] = _absolute(label, 'database', database)


def _normalize_service(label, probe):
    if not isinstance(probe['service'], str) or not UNIT_RE.match(probe['service']):
        _fail(label, 'service %r is not a systemd unit name' % (probe['service'],))


def _normalize_packages(label, probe):
    names = _string_list(label, 'packages', probe['packages'], allow_empty=False)
    bad = [name for name in names if not PACKAGE_RE.match(name)]
    if bad:
        _fail(label, 'not a package name: %s' % ', '.join(bad))
    unique = []
    for name in names:
        if name not in unique:
            unique.append(name)
    probe['packages'] = unique


_NORMALIZERS = {
    'path': _normalize_path,
    'command': _normalize_command,
    'sql': _normalize_sql,
    'service': _normalize_service,
    'packages': _normalize_packages,
}


def probe_kind(probe):
    return [kind for kind in KINDS if kind in probe][0]


def normalize_probe(raw, where):
    """Validate one probe definition; return it with defaults filled and None values dropped.

    where names the probe in errors before its name is known (e.g. "probes[2]").
    Raises RedbuttonError naming the probe and saying what to change.
    """
    if not isinstance(raw, dict):
        raise RedbuttonError('%s must be a dictionary with a name and one of %s, got %r' % (where, ', '.join(KINDS), raw))
    probe = dict((key, value) for key, value in raw.items() if value is not None and key != 'result')
    name = probe.get('name')
    if name is None:
        raise RedbuttonError('%s has no name: give every probe a unique name, e.g. name: app_tree' % where)
    validate_release_id(name, what='probe')
    label = 'probe %r' % name
    known = all_options()
    unknown = sorted(key for key in probe if key not in known)
    if unknown:
        _fail(label, 'unknown option(s) %s; a probe accepts: %s' % (', '.join(unknown), ', '.join(known)))
    kinds = [kind for kind in KINDS if kind in probe]
    if len(kinds) != 1:
        _fail(label, 'give exactly one of %s (found %s); use one probe per thing to measure'
              % (', '.join(KINDS), ' and '.join(kinds) if kinds else 'none'))
    kind = kinds[0]
    for key in sorted(probe):
        if key not in COMMON_OPTIONS and key not in KIND_OPTIONS[kind]:
            owner = [other for other in KINDS if key in KIND_OPTIONS[other]][0]
            _fail(label, 'option %s applies to %s probes only, not to a %s probe' % (key, owner, kind))
    compare = probe.setdefault('compare', 'exact')
    if compare not in ('exact', 'no_loss'):
        _fail(label, 'compare must be exact or no_loss, got %r' % (compare,))
    if compare == 'no_loss' and kind not in NO_LOSS_KINDS:
        _fail(label, 'compare: no_loss applies to path, sql and command probes; a %s probe compares exactly' % kind)
    _NORMALIZERS[kind](label, probe)
    return probe


def adjust_probe(recorded, given):
    """Apply a probe given at compare time to the recorded definition of the same name.

    Only compare, include and exclude may change; any other option given must equal
    the recorded one, because a comparison is only meaningful like for like.
    """
    label = 'probe %r' % recorded['name']
    merged = dict(recorded)
    given = dict((key, value) for key, value in given.items() if value is not None)
    given_kinds = [kind for kind in KINDS if kind in given]
    if given_kinds:
        # normalise the given definition the same way (paths, defaults) before comparing
        reference = normalize_probe(dict(given, compare=given.get('compare', 'exact')), label)
    else:
        reference = given
    for key in sorted(given):
        if key in ('name',) or key in ADJUSTABLE_OPTIONS:
            continue
        if reference.get(key) != recorded.get(key):
            _fail(label, '%s differs from the baseline (recorded %r, given %r): a comparison is like for like; '
                  'capture a new baseline to measure something else' % (key, recorded.get(key), reference.get(key)))
    for key in ADJUSTABLE_OPTIONS:
        if key in given:
            merged[key] = given[key]
    return normalize_probe(merged, label)


def as_number(value):
    """The value as a Decimal if it is a finite number (or numeric text), else None."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = decimal.Decimal(str(value).strip())
    except (decimal.InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def json_value(value, label):
    """A database value as JSON: numbers and text as is, decimals exactly, others as text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise ProbeError('%s: the query returned binary data; select a number or text instead' % label)
    return str(value)


def mask_conninfo(conninfo):
    """A PostgreSQL connection string with any password replaced by ***."""
    masked = re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r'\1***', conninfo)
    return re.sub(r'(://[^:/@\s]*:)[^@\s]*@', r'\1***@', masked)


class Probe(object):
    """One named probe; subclasses implement measure() and compare()."""

    kind = None

    def __init__(self, definition):
        self.definition = definition
        self.name = definition['name']
        self.mode = definition.get('compare', 'exact')

    def label(self):
        return 'probe %r' % self.name

    def describe(self):
        return '%s %s' % (self.kind, self.definition[self.kind])

    def measure(self, host, recorded=None, trusted_before_ns=None):
        raise NotImplementedError

    def validate_result(self, result):
        """Refuse a capture that could not be compared later (e.g. no_loss on text)."""

    @staticmethod
    def summary(result):
        """The result as returned to the user (trees leave out the file list)."""
        return result

    def compare(self, expected, found):
        """(added, removed, changed) between a recorded and a live result."""
        raise NotImplementedError

    def _scalar_changes(self, expected, found, keys, numeric_keys=()):
        names = []
        notes = {}
        for key in keys:
            old = expected.get(key)
            new = found.get(key)
            if self.mode == 'no_loss' and key in numeric_keys:
                old_number = as_number(old)
                new_number = as_number(new)
                if new_number is None or old_number is None:
                    if old != new:
                        names.append(key)
                        notes[key] = 'not a number'
                elif new_number < old_number:
                    names.append(key)
                    notes[key] = 'lower than recorded'
            elif old != new:
                names.append(key)
        if not names:
            return []
        change = {'item': self.name, 'attributes': names,
                  'expected': dict((key, expected.get(key)) for key in names),
                  'found': dict((key, found.get(key)) for key in names)}
        if notes:
            change['note'] = '; '.join('%s %s' % (key, notes[key]) for key in names if key in notes)
        return [change]


class PathProbe(Probe):
    """A file or a directory tree: per file sha256, size, mode, owner, link target."""

    kind = 'path'

    def scanner(self, workers=None):
        d = self.definition
        return TreeScanner(d['path'], d.get('include'), d.get('exclude'), d.get('follow', False), workers=workers)

    def measure(self, host, recorded=None, trusted_before_ns=None, workers=None):
        reuse = recorded.get('files') if recorded else None
        try:
            result = self.scanner(workers).scan(reuse=reuse, trusted_before_ns=trusted_before_ns)
        except TreeError as exc:
            raise ProbeError('%s: %s' % (self.label(), exc))
        result.pop('hashed', None)
        return result

    def refilter(self, recorded):
        """The recorded result restricted to this probe's (possibly adjusted) globs."""
        d = self.definition
        files = filter_files(recorded.get('files', {}), TreeFilter(d.get('include'), d.get('exclude')))
        return summarise({'exists': recorded.get('exists', False), 'link': recorded.get('link'), 'files': files})

    @staticmethod
    def summary(result):
        return dict((key, value) for key, value in result.items() if key != 'files')

    def compare(self, expected, found):
        return compare_trees(expected.get('files', {}), found.get('files', {}), self.mode)


class CommandProbe(Probe):
    """A command's rc and stripped stdout, or the first group of a regex on stdout."""

    kind = 'command'

    def describe(self):
        command = self.definition['command']
        text = command if isinstance(command, str) else ' '.join(command)
        return 'command %s' % text

    def measure(self, host, recorded=None, trusted_before_ns=None):
        d = self.definition
        if host is None:
            raise ProbeError('%s: command probes run through the Ansible module' % self.label())
        chdir = d.get('chdir')
        if chdir and not os.path.isdir(chdir):
            raise ProbeError('%s: chdir %s is not a directory' % (self.label(), chdir))
        try:
            rc, out, dummy = host.run_command(d['command'], cwd=chdir, use_unsafe_shell=d.get('shell', False),
                                              expand_user_and_vars=False, handle_exceptions=False)
        except (OSError, IOError) as exc:
            raise ProbeError('%s: cannot run %s: %s' % (self.label(), self.describe(), exc))
        result = {}
        if 'rc' in d['record']:
            result['rc'] = rc
        if 'stdout' in d['record']:
            out = out.strip()
            if 'regex' in d:
                match = re.search(d['regex'], out, re.MULTILINE)
                value = None
                if match:
                    value = match.group(1) if match.groups() else match.group(0)
                result['value'] = value
            else:
                result['stdout'] = out
        return result

    def validate_result(self, result):
        if 'regex' in self.definition and result.get('value') is None:
            raise ProbeError('%s: regex %r does not match the output of %s' % (self.label(), self.definition['regex'], self.describe()))
        key = 'value' if 'value' in result else 'stdout'
        if self.mode == 'no_loss' and as_number(result.get(key)) is None:
            raise ProbeError('%s: compare: no_loss needs a number, but %s printed %r; use regex to extract one'
                             % (self.label(), self.describe(), result.get(key)))

    def compare(self, expected, found):
        keys = [key for key in ('rc', 'stdout', 'value') if key in expected or key in found]
        return [], [], self._scalar_changes(expected, found, keys, numeric_keys=('stdout', 'value'))


class SqlProbe(Probe):
    """One scalar from a query: SQLite (read-only) or PostgreSQL (read-only transaction)."""

    kind = 'sql'

    def describe(self):
        d = self.definition
        database = d['database'] if d['engine'] == 'sqlite' else mask_conninfo(d['database'])
        return 'sql on %s %s: %s' % (d['engine'], database, d['sql'])

    def _scalar(self, description, rows):
        if description is None or len(description) != 1 or len(rows) != 1:
            raise ProbeError('%s: the query must return a single value (one row, one column), got %s row(s) of %s column(s)'
                             % (self.label(), len(rows) if len(rows) < 2 else 'more than one', len(description or ())))
        return json_value(rows[0][0], self.label())

    def _sqlite(self):
        d = self.definition
        database = d['database']
        if not os.path.isfile(database):
            raise ProbeError('%s: SQLite database %s does not exist' % (self.label(), database))
        uri = 'file:%s?mode=ro' % quote(database)
        import sqlite3  # only SQL probes on SQLite load it
        try:
            connection = sqlite3.connect(uri, uri=True, timeout=10)
        except sqlite3.Error as exc:
            raise ProbeError('%s: cannot open %s read-only: %s' % (self.label(), database, exc))
        try:
            cursor = connection.execute(d['sql'])
            rows = cursor.fetchmany(2)
            return self._scalar(cursor.description, rows)
        except sqlite3.Error as exc:
            raise ProbeError('%s: query failed on %s: %s' % (self.label(), database, exc))
        finally:
            connection.close()

    def _postgresql(self):
        d = self.definition
        try:
            psycopg = import_psycopg()
        except ImportError as exc:
            raise ProbeError('%s: PostgreSQL probes need the Python library psycopg (version 3) on the target host: '
                             'install it for the Python Ansible uses there (Debian/Ubuntu: apt install python3-psycopg; '
                             'otherwise: pip install "psycopg[binary]"). Import error: %s: %s'
                             % (self.label(), type(exc).__name__, exc))
        try:
            with psycopg.connect(d['database'], connect_timeout=10) as connection:
                connection.read_only = True
                cursor = connection.execute(d['sql'])
                rows = cursor.fetchmany(2)
                value = self._scalar(cursor.description, rows)
                connection.rollback()
                return value
        except psycopg.Error as exc:
            raise ProbeError('%s: query failed on PostgreSQL %s: %s' % (self.label(), mask_conninfo(d['database']), str(exc).strip()))

    def measure(self, host, recorded=None, trusted_before_ns=None):
        if self.definition['engine'] == 'sqlite':
            return {'value': self._sqlite()}
        return {'value': self._postgresql()}

    def validate_result(self, result):
        if self.mode == 'no_loss' and as_number(result['value']) is None:
            raise ProbeError('%s: compare: no_loss needs a number, but the query returned %r' % (self.label(), result['value']))

    def compare(self, expected, found):
        return [], [], self._scalar_changes(expected, found, ['value'], numeric_keys=('value',))


class ServiceProbe(Probe):
    """systemd unit state from systemctl show."""

    kind = 'service'

    def measure(self, host, recorded=None, trusted_before_ns=None):
        unit = self.definition['service']
        systemctl = host.get_bin_path('systemctl') if host is not None else None
        if not systemctl:
            raise ProbeError('%s: service probes need systemctl (systemd) on the target host; none was found' % self.label())
        rc, out, err = host.run_command([systemctl, 'show', '-p', ','.join(SERVICE_PROPERTIES), unit],
                                        environ_update=C_LOCALE, handle_exceptions=False)
        if rc != 0:
            raise ProbeError('%s: systemctl show %s failed (rc %s): %s' % (self.label(), unit, rc, (err or out).strip()))
        state = dict((key, None) for key in SERVICE_PROPERTIES)
        for line in out.splitlines():
            key, sep, value = line.partition('=')
            if sep and key in state:
                state[key] = value.strip()
        return {'unit': unit, 'state': state}

    def compare(self, expected, found):
        old = expected.get('state') or {}
        new = found.get('state') or {}
        names = [key for key in SERVICE_PROPERTIES if old.get(key) != new.get(key)]
        if not names:
            return [], [], []
        return [], [], [{'item': self.definition['service'], 'attributes': names,
                         'expected': dict((key, old.get(key)) for key in names),
                         'found': dict((key, new.get(key)) for key in names)}]


class PackagesProbe(Probe):
    """Installed package versions from dpkg-query, or rpm where dpkg is absent."""

    kind = 'packages'

    def describe(self):
        return 'packages %s' % ', '.join(self.definition['packages'])

    def _dpkg(self, host, tool, names):
        fmt = '${binary:Package}\\t${Package}\\t${db:Status-Abbrev}\\t${Version}\\n'
        rc, out, err = host.run_command([tool, '-W', '-f=' + fmt, '--'] + names, environ_update=C_LOCALE, handle_exceptions=False)
        if rc not in (0, 1):
            raise ProbeError('%s: dpkg-query failed (rc %s): %s' % (self.label(), rc, err.strip()))
        installed = []
        for line in out.splitlines():
            fields = line.split('\t')
            if len(fields) == 4 and len(fields[2]) >= 2 and fields[2][1] in 'iWt':
                installed.append((fields[0], fields[1], fields[3]))
        versions = {}
        for name in names:
            found = sorted(set(version for binary, package, version in installed if name in (binary, package)))
            versions[name] = ', '.join(found) if found else None
        return versions

    def _rpm(self, host, tool, names):
        fmt = '%{NAME}\\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\\n'
        versions = {}
        for name in names:
            rc, out, err = host.run_command([tool, '-q', '--qf', fmt, name], environ_update=C_LOCALE, handle_exceptions=False)
            found = sorted(set(line.split('\t', 1)[1] for line in out.splitlines() if rc == 0 and '\t' in line))
            versions[name] = ', '.join(found) if found else None
        return versions

    def measure(self, host, recorded=None, trusted_before_ns=None):
        names = list(self.definition['packages'])
        if host is None:
            raise ProbeError('%s: packages probes run through the Ansible module' % self.label())
        dpkg = host.get_bin_path('dpkg-query')
        if dpkg:
            return {'manager': 'dpkg', 'versions': self._dpkg(host, dpkg, names)}
        rpm = host.get_bin_path('rpm')
        if rpm:
            return {'manager': 'rpm', 'versions': self._rpm(host, rpm, names)}
        raise ProbeError('%s: neither dpkg-query nor rpm was found on the target host' % self.label())

    def compare(self, expected, found):
        old = expected.get('versions') or {}
        new = found.get('versions') or {}
        added = []
        removed = []
        changed = []
        for name in self.definition['packages']:
            before = old.get(name)
            after = new.get(name)
            if before == after:
                continue
            if before is None:
                added.append(name)
            elif after is None:
                removed.append(name)
            else:
                changed.append({'item': name, 'attributes': ['version'], 'expected': {'version': before}, 'found': {'version': after}})
        return added, removed, changed


_CLASSES = {
    'path': PathProbe,
    'command': CommandProbe,
    'sql': SqlProbe,
    'service': ServiceProbe,
    'packages': PackagesProbe,
}


def build_probe(definition):
    """The probe object for a normalised definition."""
    return _CLASSES[probe_kind(definition)](definition)
