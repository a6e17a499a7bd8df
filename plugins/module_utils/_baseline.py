# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Baselines of redbutton.deploy: record named probes, compare the live system with them.

Private to the collection (leading underscore): other collections must not import it.

A baseline is <root>/.redbutton/baselines/<name>.json (schema 1):

    {"schema": 1, "name": "before-v2", "captured_at": "2026-...Z",
     "captured_at_ns": 1790000000000000000,
     "probes": [{"name": "app", "path": "/srv/app/current", ..., "result": {...}}, ...]}

Each probe keeps its full (normalised) definition next to its result, so a comparison
always measures exactly what was recorded.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import time

from ansible_collections.redbutton.deploy.plugins.module_utils._common import (
    RedbuttonError, atomic_write_bytes, read_json, state_dir, utcnow, validate_baseline_name,
)
from ansible_collections.redbutton.deploy.plugins.module_utils._baseline_probes import (
    ProbeError, PathProbe, adjust_probe, build_probe, normalize_probe, probe_kind,
)
from ansible_collections.redbutton.deploy.plugins.module_utils._baseline_tree import RACY_MARGIN_NS

SCHEMA = 1
BASELINE_DIR = 'baselines'
FILE_MODE = 0o600
REPORT_LIMIT = 25
VALUE_LIMIT = 120
REUSE_CANDIDATES = 3


def baseline_path(root, name):
    """<root>/.redbutton/baselines/<name>.json, after validating name."""
    validate_baseline_name(name)
    return os.path.join(state_dir(root), BASELINE_DIR, name + '.json')


PLAIN_ATTRIBUTES = ('type', 'mode', 'owner', 'group', 'size', 'sha256', 'version')


def _short(value, key=None):
    if isinstance(value, str) and len(value) == 64 and all(c in '0123456789abcdef' for c in value):
        return value[:12] + '...'
    text = repr(value) if isinstance(value, str) and key not in PLAIN_ATTRIBUTES else str(value)
    if value is None:
        text = 'nothing'
    return text if len(text) <= VALUE_LIMIT else text[:VALUE_LIMIT] + '...'


def _essence(document):
    """What a capture means, without times and without the hash-reuse cache."""
    probes = []
    for probe in document.get('probes', []):
        probe = dict(probe)
        result = dict(probe.get('result') or {})
        if 'files' in result:
            result['files'] = dict((rel, dict((k, v) for k, v in entry.items() if k != 'cache'))
                                   for rel, entry in result['files'].items())
        probe['result'] = result
        probes.append(probe)
    return {'schema': document.get('schema'), 'name': document.get('name'), 'probes': probes}


def render_document(document):
    """A line-per-item text of a baseline, for diff mode (stable, no cache fields)."""
    if not document:
        return ''
    lines = ['baseline %s' % document.get('name')]
    for definition in document.get('probes', []):
        probe = build_probe(dict((k, v) for k, v in definition.items() if k != 'result'))
        lines.append('probe %s: %s (compare %s)' % (probe.name, probe.describe(), probe.mode))
        result = definition.get('result') or {}
        if 'files' in result:
            if not result.get('exists'):
                lines.append('  (absent)')
            for rel in sorted(result['files']):
                entry = result['files'][rel]
                fields = ['%s=%s' % (key, entry[key]) for key in sorted(entry) if key not in ('type', 'cache')]
                lines.append('  %s %s %s' % (rel, entry.get('type'), ' '.join(fields)))
        else:
            for key in sorted(result):
                lines.append('  %s: %s' % (key, json.dumps(result[key], sort_keys=True)))
    return '\n'.join(lines) + '\n'


def summarise_document(document):
    """The baseline as returned by the module: trees without their file lists."""
    if not document:
        return {}
    out = dict((key, value) for key, value in document.items() if key != 'probes')
    out['probes'] = []
    for definition in document.get('probes', []):
        definition = dict(definition)
        if 'result' in definition:
            probe = build_probe(dict((k, v) for k, v in definition.items() if k != 'result'))
            definition['result'] = probe.summary(definition['result'])
        out['probes'].append(definition)
    return out


class Baseline(object):
    """Capture, compare or remove the baseline `name` under `root`.

    host is the AnsibleModule (command, service and packages probes run through its
    run_command); path and sql probes work without it. verify_content 'auto' reuses a
    recorded sha256 for a file whose inode, size, mtime and ctime are unchanged and
    older than the capture by RACY_MARGIN_NS; 'always' reads every file again.
    """

    def __init__(self, root, name, host=None, verify_content='auto', check_mode=False, diff=False, workers=None):
        self.root = root
        self.name = name
        self.host = host
        self.verify_content = verify_content
        self.check_mode = check_mode
        self.diff = diff
        self.workers = workers

    # -- storage -----------------------------------------------------------------
    def path(self):
        return baseline_path(self.root, self.name)

    def _check_root(self):
        if not os.path.isdir(self.root):
            raise RedbuttonError('root %s does not exist or is not a directory: fix root, or create it first '
                                 '(the release module creates it on the first rollout)' % self.root)

    def _read(self, path):
        document = read_json(path, what='baseline')
        if document is None:
            return None
        if not isinstance(document, dict) or document.get('schema') != SCHEMA or not isinstance(document.get('probes'), list):
            raise RedbuttonError('baseline %s has an unknown format (schema %r, expected %d); it was left untouched: '
                                 'capture a new baseline under another name'
                                 % (path, document.get('schema') if isinstance(document, dict) else None, SCHEMA))
        return document

    @staticmethod
    def _write(path, document):
        """Atomic write of compact JSON: a tree of 10,000 files is 4-5 MB, and the
        indented form would be serialised by the pure-Python encoder, several times
        slower than the C one (a quarter of the capture time). Read it with jq."""
        text = json.dumps(document, sort_keys=True, separators=(',', ':')) + '\n'
        atomic_write_bytes(path, text.encode('utf-8'), mode=FILE_MODE, label='baseline')

    def load(self):
        """The stored baseline; a clear error when it does not exist."""
        path = self.path()
        document = self._read(path)
        if document is None:
            raise RedbuttonError('baseline %r not found: %s does not exist. Create it first with state=captured '
                                 '(the rollout role captures one before each switch), or check name and root'
                                 % (self.name, path))
        return document

    def _trusted_before(self, document):
        if self.verify_content != 'auto' or not document or not isinstance(document.get('captured_at_ns'), int):
            return None
        return document['captured_at_ns'] - RACY_MARGIN_NS

    def _measure(self, probe, recorded, trusted_before_ns):
        if isinstance(probe, PathProbe):
            return probe.measure(self.host, recorded=recorded, trusted_before_ns=trusted_before_ns, workers=self.workers)
        return probe.measure(self.host)

    # -- capture -----------------------------------------------------------------
    @staticmethod
    def definitions(probes):
        """Normalise the probes given for a capture; refuse duplicates and an empty list."""
        if not isinstance(probes, list) or not probes:
            raise RedbuttonError('probes: give at least one probe to capture, e.g. '
                                 '[{name: app, path: /srv/app/current}]')
        definitions = []
        seen = set()
        for index, raw in enumerate(probes):
            definition = normalize_probe(raw, 'probes[%d]' % index)
            if definition['name'] in seen:
                raise RedbuttonError('probes: the name %r is used twice; every probe needs its own name' % definition['name'])
            seen.add(definition['name'])
            definitions.append(definition)
        return definitions

    def _reuse_sources(self, path, existing):
        """Earlier baselines whose recorded hashes a capture may reuse (verify_content auto).

        The baseline being replaced first, then the most recently written others (at most
        REUSE_CANDIDATES; file mtime only orders the candidates, it is never trusted: every
        hash is reused only under the inode and racy-time rules). Unreadable ones are skipped.
        """
        if self.verify_content != 'auto':
            return []
        sources = [existing] if existing else []
        directory = os.path.dirname(path)
        try:
            names = [n for n in os.listdir(directory) if n.endswith('.json') and not n.startswith('.')]
        except OSError:
            names = []
        others = []
        for name in names:
            other = os.path.join(directory, name)
            if other != path:
                try:
                    others.append((os.stat(other).st_mtime_ns, other))
                except OSError:
                    continue
        for dummy, other in sorted(others, reverse=True)[:REUSE_CANDIDATES]:
            try:
                document = self._read(other)
            except RedbuttonError:
                continue
            if document:
                sources.append(document)
        return sources

    @staticmethod
    def _reuse_for(definition, sources):
        """(recorded result, captured_at_ns) of the first source that recorded the same tree."""
        if probe_kind(definition) != 'path':
            return None, None
        for document in sources:
            for old in document['probes']:
                if (isinstance(old, dict) and old.get('path') == definition['path']
                        and old.get('follow', False) == definition['follow'] and isinstance(old.get('result'), dict)):
                    return old['result'], document.get('captured_at_ns')
        return None, None

    def capture(self, probes):
        definitions = self.definitions(probes)
        path = self.path()
        self._check_root()
        existing = self._read(path)
        sources = self._reuse_sources(path, existing)
        started_ns = time.time_ns()
        captured_at = utcnow()
        recorded = []
        for definition in definitions:
            probe = build_probe(definition)
            reuse, reuse_ns = self._reuse_for(definition, sources)
            trusted = reuse_ns - RACY_MARGIN_NS if isinstance(reuse_ns, int) else None
            try:
                result = self._measure(probe, reuse, trusted)
                probe.validate_result(result)
            except ProbeError as exc:
                raise RedbuttonError('cannot capture baseline %r: %s. Nothing was written.' % (self.name, exc))
            recorded.append(dict(definition, result=result))
        document = {'schema': SCHEMA, 'name': self.name, 'captured_at': captured_at,
                    'captured_at_ns': started_ns, 'probes': recorded}
        changed = existing is None or _essence(existing) != _essence(document)
        if changed and not self.check_mode:
            self._write(path, document)
        final = document if changed else existing
        result = {
            'changed': changed, 'path': path, 'name': self.name,
            'captured_at': final['captured_at'], 'baseline': summarise_document(final), 'differences': [],
            'msg': '%s baseline %r: %d probe(s)' % (
                ('would record' if self.check_mode else 'recorded') if changed else 'unchanged', self.name, len(recorded)),
        }
        if self.diff:
            result['diff'] = {'before_header': path, 'after_header': path,
                              'before': render_document(existing), 'after': render_document(document)}
        return result

    # -- compare -----------------------------------------------------------------
    def _compare_definitions(self, document, given):
        path = self.path()
        stored = []
        for index, raw in enumerate(document['probes']):
            try:
                definition = normalize_probe(raw, 'probes[%d]' % index)
            except RedbuttonError as exc:
                raise RedbuttonError('baseline %s is not usable: %s' % (path, exc))
            stored.append((definition, raw.get('result') or {}))
        if not given:
            return stored
        by_name = dict((definition['name'], i) for i, (definition, dummy) in enumerate(stored))
        for index, raw in enumerate(given):
            name = raw.get('name') if isinstance(raw, dict) else None
            if name not in by_name:
                raise RedbuttonError('probes[%d]: probe %r is not in baseline %r (recorded: %s); at compare time probes can only '
                                     'adjust recorded ones (compare, include, exclude): capture a new baseline to add one'
                                     % (index, name, self.name, ', '.join(sorted(by_name)) or 'none'))
            position = by_name[name]
            definition, result = stored[position]
            stored[position] = (adjust_probe(definition, raw), result)
        return stored

    def compare(self, given=None):
        document = self.load()
        definitions = self._compare_definitions(document, given)
        trusted = self._trusted_before(document)
        differences = []
        found_all = {}
        for definition, recorded in definitions:
            probe = build_probe(definition)
            expected = recorded
            if isinstance(probe, PathProbe):
                raw = [p for p in document['probes'] if p.get('name') == probe.name][0]
                if (raw.get('include') or []) != definition['include'] or (raw.get('exclude') or []) != definition['exclude']:
                    expected = probe.refilter(recorded)
            try:
                found = self._measure(probe, expected, trusted)
            except ProbeError as exc:
                found = {'error': str(exc)}
                added, removed, changed = [], [], []
            else:
                added, removed, changed = probe.compare(expected, found)
            found_all[probe.name] = probe.summary(found)
            if 'error' in found or added or removed or changed or self._top_differs(probe, expected, found):
                differences.append({
                    'probe': probe.name, 'kind': probe.kind, 'compare': probe.mode, 'description': probe.describe(),
                    'expected': probe.summary(expected), 'found': probe.summary(found),
                    'added': added, 'removed': removed, 'changed': changed,
                })
        path = self.path()
        result = {
            'changed': False, 'path': path, 'name': self.name,
            'captured_at': document.get('captured_at'), 'baseline': summarise_document(document),
            'differences': differences, 'found': found_all,
        }
        if differences:
            result['msg'] = self.report(document, differences, len(definitions))
        else:
            result['msg'] = 'baseline %r (captured %s) matches: %d probe(s) compared, no difference' % (
                self.name, document.get('captured_at'), len(definitions))
        return result

    @staticmethod
    def _top_differs(probe, expected, found):
        """A tree that existed and is gone (or the reverse) even when both are empty."""
        if not isinstance(probe, PathProbe):
            return False
        if probe.mode == 'no_loss':
            return bool(expected.get('exists')) and not found.get('exists')
        return bool(expected.get('exists')) != bool(found.get('exists'))

    # -- report ------------------------------------------------------------------
    def report(self, document, differences, total):
        lines = ['baseline %r (captured %s, %s): %d of %d probe(s) differ'
                 % (self.name, document.get('captured_at'), self.path(), len(differences), total)]
        for difference in differences:
            lines.extend(self._report_probe(difference))
        return '\n'.join(lines)

    @staticmethod
    def _limited(label, items):
        lines = ['  %s %s' % (label, item) for item in items[:REPORT_LIMIT]]
        if len(items) > REPORT_LIMIT:
            lines.append('  ... and %d more %s (see differences)' % (len(items) - REPORT_LIMIT, label.rstrip(':')))
        return lines

    def _report_probe(self, difference):
        head = "- probe %r (%s, compare %s)" % (difference['probe'], difference['description'], difference['compare'])
        found = difference['found']
        if 'error' in found:
            return [head + ': could not be measured: %s' % found['error']]
        expected = difference['expected']
        if difference['kind'] == 'path':
            if bool(expected.get('exists')) != bool(found.get('exists')):
                head += ': expected %s, found %s' % ('present' if expected.get('exists') else 'absent',
                                                     'present' if found.get('exists') else 'absent')
            head += ': %d added, %d removed, %d changed' % (
                len(difference['added']), len(difference['removed']), len(difference['changed']))
        lines = [head]
        scalar = [c for c in difference['changed'] if c['item'] == difference['probe'] and difference['kind'] in ('sql', 'command')]
        for change in scalar:
            parts = ['%s expected %s, found %s' % (key, _short(change['expected'][key]), _short(change['found'][key]))
                     for key in change['attributes']]
            note = ' (%s)' % change['note'] if change.get('note') else ''
            lines[0] += ': ' + '; '.join(parts) + note
        lines.extend(self._limited('added:  ', difference['added']))
        lines.extend(self._limited('removed:', difference['removed']))
        rendered = []
        for change in difference['changed']:
            if change in scalar:
                continue
            item = '(the path itself)' if change['item'] == '.' else change['item']
            parts = ['%s %s -> %s' % (key, _short(change['expected'][key], key), _short(change['found'][key], key))
                     for key in change['attributes']]
            rendered.append('%s: %s' % (item, ', '.join(parts)))
        lines.extend(self._limited('changed:', rendered))
        return lines

    # -- remove ------------------------------------------------------------------
    def remove(self):
        path = self.path()
        existing = self._read(path)
        changed = existing is not None
        if changed and not self.check_mode:
            os.unlink(path)
        result = {'changed': changed, 'path': path, 'name': self.name, 'differences': [],
                  'baseline': {}, 'msg': ('removed baseline %r' % self.name) if changed else 'baseline %r was absent' % self.name}
        if self.diff:
            result['diff'] = {'before_header': path, 'after_header': path, 'before': render_document(existing), 'after': ''}
        return result


class BaselineModule(object):
    """Glue between AnsibleModule and Baseline: read the parameters and run (the module's main()
    exits with the result, or fails with a RedbuttonError and the result it carries)."""

    def __init__(self, module):
        self.module = module

    def baseline(self):
        params = self.module.params
        return Baseline(params['root'], params['name'], host=self.module, verify_content=params['verify_content'],
                        check_mode=self.module.check_mode, diff=self.module._diff)

    def execute(self):
        params = self.module.params
        baseline = self.baseline()
        if params['state'] == 'captured':
            result = baseline.capture(params['probes'])
        elif params['state'] == 'compared':
            result = baseline.compare(params['probes'])
        else:
            result = baseline.remove()
        if result['differences'] and params['fail_on_difference']:
            error = RedbuttonError(result['msg'])
            error.result = result
            raise error
        return result
