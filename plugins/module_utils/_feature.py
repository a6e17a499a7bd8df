# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Feature toggles of an application root (see docs/toggles.md).

The recorded toggles live in <root>/.redbutton/features.json (schema 1):

    {"schema": 1, "file": "<the file the app reads>", "format": "json|env|yaml",
     "rendered_sha256": "<sha256 of what was last written into that file>",
     "toggles": {"<name>": {"value": "on" | "off" | 0..100, "updated_at", "by", "note",
                            "run_id", "source": "set|default|hand edit", "declared_by",
                            "description"}}}

Every write goes through a temporary file and a rename; the file the app reads is rendered from
the recorded toggles the same way. History lives in the host's ledger as events
``{"event": "feature", "name", "from", "to", "note", "by", "run_id"}`` (``undoes``: the seq of
the change an undo took back). Toggle values are ``on``, ``off`` or a whole percentage 0-100
(for gradual exposure; the app decides how to bucket users).

Private to the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import re

from ansible_collections.redbutton.deploy.plugins.module_utils._common import (
    RedbuttonError,
    atomic_write_bytes,
    atomic_write_json,
    kill_point,
    read_json,
    state_dir,
    utcnow,
)
from ansible_collections.redbutton.deploy.plugins.module_utils._ledger import Ledger
from ansible_collections.redbutton.deploy.plugins.module_utils._lock import DeployLock

SCHEMA = 1
STATE_FILE = 'features.json'
FORMATS = ('json', 'env', 'yaml')
DEFAULT_FILES = {'json': 'features.json', 'env': 'features.env', 'yaml': 'features.yml'}
NAME_RE = re.compile(r'^[a-z][a-z0-9_]{0,62}$')
PERCENT_RE = re.compile(r'^[+-]?\d+\s*%?$')
ENV_PREFIX = 'FEATURE_'
HEADER = 'Managed by redbutton.deploy (module redbutton.deploy.feature): change toggles with it, not by hand.'
# What a release may ship at its root to declare its toggles; features.json wins over features.yml.
DECLARATION_FILES = ('features.json', 'features.yml')
EVENT = 'feature'
DEFAULT_LOCK_TIMEOUT = 30


def state_path(root):
    return os.path.join(state_dir(root), STATE_FILE)


def default_file(root, fmt='json'):
    return os.path.join(root, 'shared', DEFAULT_FILES[fmt])


def sha256(data):
    return hashlib.sha256(data).hexdigest()


# values -------------------------------------------------------------------------------------
def validate_name(name, what='toggle name'):
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise RedbuttonError(
            '%s %r is not valid: use a plain identifier of 1 to 63 characters, a lowercase letter first, '
            'then lowercase letters, digits or _ (for example new_checkout)' % (what, name))
    return name


def parse_value(raw, what='state'):
    """Normalise a toggle value: 'on', 'off' or an int 0-100. Raises RedbuttonError naming `what`."""
    if isinstance(raw, bool):  # YAML reads an unquoted on/off as a boolean
        return 'on' if raw else 'off'
    value = raw
    if isinstance(raw, float) and raw.is_integer():
        value = int(raw)
    if isinstance(value, int):
        if 0 <= value <= 100:
            return value
        raise RedbuttonError('%s %r is not valid: a percentage must be between 0 and 100' % (what, raw))
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ('on', 'off'):
            return text
        if PERCENT_RE.match(text):
            number = int(text.rstrip('%').strip())
            if 0 <= number <= 100:
                return number
            raise RedbuttonError('%s %r is not valid: a percentage must be between 0 and 100' % (what, raw))
    raise RedbuttonError(
        '%s %r is not valid: give on, off, a percentage from 0 to 100 (25 or "25%%")' % (what, raw))


def describe(value):
    if value is None:
        return 'unset'
    return '%d%%' % value if isinstance(value, int) else value


# rendering the file the app reads ----------------------------------------------------------
def render(values, fmt):
    """The bytes of the app's toggles file for {name: value}."""
    names = sorted(values)
    if fmt == 'json':
        return (json.dumps(dict((n, values[n]) for n in names), indent=2, sort_keys=True) + '\n').encode('utf-8')
    if fmt == 'env':
        lines = ['# ' + HEADER] + ['%s%s=%s' % (ENV_PREFIX, n.upper(), values[n]) for n in names]
        return ('\n'.join(lines) + '\n').encode('utf-8')
    # YAML, written by hand (targets may lack PyYAML): on/off quoted, or YAML 1.1 reads booleans.
    lines = ['# ' + HEADER]
    if not names:
        lines.append('{}')
    lines.extend('%s: %s' % (n, '"%s"' % values[n] if isinstance(values[n], str) else values[n]) for n in names)
    return ('\n'.join(lines) + '\n').encode('utf-8')


def parse_rendered(data, fmt):
    """{name: value} from the app's toggles file; ValueError saying what is wrong."""
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError as exc:
        raise ValueError('not UTF-8 (%s)' % exc)
    if fmt == 'json':
        try:
            loaded = json.loads(text)
        except ValueError as exc:
            raise ValueError('not valid JSON (%s)' % exc)
        if not isinstance(loaded, dict):
            raise ValueError('not a JSON object of toggle names and values')
        pairs = list(loaded.items())
    else:
        pairs = []
        for number, line in enumerate(text.splitlines(), 1):
            stripped = line.strip()
            if not stripped or stripped.startswith('#') or (fmt == 'yaml' and stripped == '{}'):
                continue
            if fmt == 'env':
                key, sep, raw = stripped.partition('=')
                if not sep or not key.startswith(ENV_PREFIX):
                    raise ValueError('line %d is not FEATURE_<NAME>=<value>: %r' % (number, line))
                pairs.append((key[len(ENV_PREFIX):].lower(), raw.strip()))
            else:
                key, sep, raw = stripped.partition(':')
                if not sep or line[:1].isspace():
                    raise ValueError('line %d is not "name: value": %r' % (number, line))
                pairs.append((key.strip(), _yaml_scalar(raw, number)))
    values = {}
    for key, raw in pairs:
        if not isinstance(key, str) or not NAME_RE.match(key):
            raise ValueError('%r is not a valid toggle name' % (key,))
        try:
            values[key] = parse_value(raw, what='the value of %s' % key)
        except RedbuttonError as exc:
            raise ValueError(str(exc))
    return values


# release declarations (features.yml subset, features.json) -------------------------------
def _yaml_scalar(raw, number):
    """A scalar of the supported YAML subset: quoted string, or plain word/number (comments cut)."""
    text = raw.strip()
    if text[:1] in ('"', "'"):
        quote = text[0]
        end = text.find(quote, 1)
        rest = text[end + 1:].strip() if end > 0 else None
        if end < 0 or (rest and not rest.startswith('#')):
            raise ValueError('line %d: unterminated or trailing text after the quoted string %r' % (number, raw.strip()))
        return text[1:end]
    text = re.split(r'\s#', text, maxsplit=1)[0].strip()
    if text[:1] in ('[', '{', '|', '>', '&', '*', '!'):
        raise ValueError('line %d: %r is not a plain scalar (lists, mappings, block strings, anchors and tags '
                         'are outside the supported subset; quote it)' % (number, text))
    lowered = text.lower()
    if lowered in ('true', 'yes', 'on'):
        return True
    if lowered in ('false', 'no', 'off'):
        return False
    if lowered in ('', '~', 'null'):
        return None
    if re.match(r'^[+-]?\d+$', text):
        return int(text)
    return text


def parse_features_yml(text, path='features.yml'):
    """The documented subset: a top-level list of mappings whose values are scalars.

        # comment
        - name: new_checkout
          default: off
          description: "The new checkout flow"

    Returns a list of dicts; RedbuttonError naming the file and line otherwise.
    """
    items = []
    current = None
    indent = None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith('#') or stripped == '---':
            continue
        try:
            if line.startswith('- ') or stripped == '-':
                current = {}
                items.append(current)
                body = line[2:]
                indent = 2
                if not body.strip():
                    continue
            elif current is not None and line[:indent].isspace() and len(line) - len(line.lstrip(' ')) == indent:
                body = line[indent:]
            else:
                raise ValueError('line %d: expected "- name: ..." or a "key: value" indented under it' % number)
            key, sep, raw = body.partition(':')
            key = key.strip()
            if not sep or not key or ' ' in key:
                raise ValueError('line %d: %r is not "key: value"' % (number, stripped))
            if key in current:
                raise ValueError('line %d: key %s given twice' % (number, key))
            current[key] = _yaml_scalar(raw, number)
        except ValueError as exc:
            raise RedbuttonError(
                'toggle declaration %s: %s. The file must be a list of mappings with scalar values, see '
                'docs/toggles.md; or ship features.json instead' % (path, exc))
    return items


def read_release_toggles(release_dir):
    """The toggles a release declares: {name: {'default': value, 'description': str}}.

    Reads <release>/features.json (a list of {name, default, description}, or a mapping of
    name to {default, description} or to a default) or else <release>/features.yml (the
    subset above). No declaration: {}. A malformed one: RedbuttonError naming the file.
    """
    json_path = os.path.join(release_dir, DECLARATION_FILES[0])
    yml_path = os.path.join(release_dir, DECLARATION_FILES[1])
    if os.path.exists(json_path):
        path = json_path
        loaded = read_json(json_path, what='toggle declaration')
    elif os.path.exists(yml_path):
        path = yml_path
        with open(yml_path, 'rb') as handle:
            raw = handle.read()
        try:
            loaded = parse_features_yml(raw.decode('utf-8'), yml_path)
        except UnicodeDecodeError as exc:
            raise RedbuttonError('toggle declaration %s is not UTF-8 (%s)' % (yml_path, exc))
    else:
        return {}
    if isinstance(loaded, dict):
        entries = []
        for name, spec in loaded.items():
            entries.append(dict(spec, name=name) if isinstance(spec, dict) else {'name': name, 'default': spec})
    elif isinstance(loaded, list):
        entries = loaded
    else:
        raise RedbuttonError('toggle declaration %s must hold a list of {name, default, description} '
                             '(or a mapping of names); see docs/toggles.md' % path)
    declared = {}
    for entry in entries:
        if not isinstance(entry, dict) or 'name' not in entry:
            raise RedbuttonError('toggle declaration %s: item %r has no name; give each toggle name, '
                                 'default and description' % (path, entry))
        unknown = sorted(set(entry) - {'name', 'default', 'description'})
        if unknown:
            raise RedbuttonError('toggle declaration %s: toggle %s has unknown keys %s; use name, default '
                                 'and description' % (path, entry['name'], ', '.join(unknown)))
        name = validate_name(entry['name'], what='toggle name in %s' % path)
        if name in declared:
            raise RedbuttonError('toggle declaration %s declares %s twice' % (path, name))
        default = entry.get('default', 'off')
        declared[name] = {
            'default': parse_value('off' if default is None else default,
                                   what='default of %s in %s' % (name, path)),
            'description': '' if entry.get('description') is None else str(entry['description']),
        }
    return declared


# the recorded toggles --------------------------------------------------------------------
class FeatureStore(object):
    """<root>/.redbutton/features.json and the file the app reads. load() reads; save() writes."""

    def __init__(self, root, now=None):
        self.root = root
        self.path = state_path(root)
        self.now = now or utcnow
        self.data = None
        self.exists = False
        self._loaded = None

    def load(self):
        data = read_json(self.path, what='toggle state')
        self.exists = data is not None
        if data is None:
            data = {'schema': SCHEMA, 'file': None, 'format': None, 'rendered_sha256': None, 'toggles': {}}
        if not isinstance(data, dict) or data.get('schema') != SCHEMA or not isinstance(data.get('toggles'), dict):
            raise RedbuttonError(
                'toggle state %s is not a schema %d redbutton toggle state; it was left untouched: restore it '
                'from a backup or move it aside after inspecting it' % (self.path, SCHEMA))
        self.data = data
        self._loaded = json.dumps(data, sort_keys=True)
        return self

    @property
    def toggles(self):
        return self.data['toggles']

    def values(self):
        return dict((name, entry.get('value')) for name, entry in self.toggles.items())

    @property
    def dirty(self):
        return json.dumps(self.data, sort_keys=True) != self._loaded

    def target(self, file=None, fmt=None):
        """(file, format) to render into: given, else recorded, else the defaults."""
        if fmt is not None and fmt not in FORMATS:
            raise RedbuttonError('format %r is not valid: use one of %s' % (fmt, ', '.join(FORMATS)))
        if file is None and fmt is not None and fmt != self.data.get('format'):
            file = default_file(self.root, fmt)
        file = file or self.data.get('file') or default_file(self.root, fmt or 'json')
        if fmt is None:
            if file == self.data.get('file') and self.data.get('format'):
                fmt = self.data['format']
            elif file.endswith('.env'):
                fmt = 'env'
            elif file.endswith(('.yml', '.yaml')):
                fmt = 'yaml'
            else:
                fmt = 'json'
        return file, fmt

    def read_app_file(self, file, fmt):
        """(bytes or None, {name: value} or None, error or None) of the file the app reads.

        values is None when the file is what this store rendered last (or absent)."""
        try:
            with open(file, 'rb') as handle:
                raw = handle.read()
        except (IOError, OSError) as exc:
            if getattr(exc, 'errno', None) == 2:
                return None, None, None
            raise RedbuttonError('cannot read the toggles file %s: %s' % (file, exc))
        if file == self.data.get('file') and sha256(raw) == self.data.get('rendered_sha256'):
            return raw, None, None
        try:
            return raw, parse_rendered(raw, fmt), None
        except ValueError as exc:
            return raw, None, str(exc)

    def adopt(self, values, file):
        """Take values found in a hand-edited file as the recorded ones; returns warnings."""
        warnings = []
        for name in sorted(values):
            entry = self.toggles.get(name)
            if entry is not None and entry.get('value') == values[name]:
                continue
            old = entry.get('value') if entry else None
            warnings.append('toggle %s is %s in %s but was recorded as %s (a hand edit?): keeping %s'
                            % (name, describe(values[name]), file, describe(old), describe(values[name])))
            entry = dict(entry or {})
            entry.update(value=values[name], updated_at=self.now(), by=None, note='found in %s' % file,
                         run_id=None, source='hand edit')
            self.toggles[name] = entry
        return warnings

    def save(self, file, fmt, rendered):
        self.data.update(file=file, format=fmt, rendered_sha256=sha256(rendered))
        if self.dirty or not self.exists:
            atomic_write_json(self.path, self.data)
            self.exists = True
        atomic_write_bytes(file, rendered, mode=0o644)


def prepare_app_file(store, file, fmt, force=False, warn=None):
    """Check the file the app reads before overwriting it; adopt readable hand edits.

    Returns (bytes before or None, warnings). An unreadable file is refused unless force.
    """
    raw, found, error = store.read_app_file(file, fmt)
    warnings = []
    if error is not None:
        if not force:
            raise RedbuttonError(
                'the toggles file %s that the app reads is not valid %s (%s); it was left untouched and nothing '
                'was changed: fix it or move it aside, or run with force: true to overwrite it with the '
                'recorded toggles' % (file, fmt.upper() if fmt != 'yaml' else 'redbutton YAML', error))
        warnings.append('the toggles file %s was not valid %s (%s); overwritten with the recorded toggles '
                        'because of force: true' % (file, fmt, error))
    elif found:
        warnings.extend(store.adopt(found, file))
    for message in warnings:
        if warn:
            warn(message)
    return raw, warnings


# history ---------------------------------------------------------------------------------
def toggle_events(ledger, name):
    return [e for e in ledger.data['events'] if e.get('event') == EVENT and e.get('name') == name]


def last_change(ledger, name):
    """The change `previous` undoes: the most recent change of `name` not undone already.

    Walking back, an undo that stands cancels the change it undid; an undo that was itself
    undone (a revert of an undo) is skipped with its effect, so the change it had undone
    counts again.
    """
    undone = set()
    for event in reversed(toggle_events(ledger, name)):
        if event['seq'] in undone:
            continue
        if event.get('undoes') is not None:
            undone.add(event['undoes'])
            continue
        return event
    return None


def run_change(ledger, name, run_id):
    """The latest event of `name` when this run made it (and it is not this run's revert), else None."""
    events = toggle_events(ledger, name)
    if not events:
        return None
    last = events[-1]
    if last.get('run_id') != run_id or last.get('reason') == 'revert':
        return None
    return last


def record_change(ledger, name, old, new, actor=None, note=None, run_id=None, undoes=None, reason=None):
    extra = {'name': name, 'from': old, 'to': new, 'note': note, 'run_id': run_id}
    if undoes is not None:
        extra['undoes'] = undoes
    return ledger.event(EVENT, ledger.current, actor=actor, reason=reason, **extra)


# the module ------------------------------------------------------------------------------
class FeatureRunner(object):
    """One call of redbutton.deploy.feature."""

    def __init__(self, params, check_mode=False, diff=False, warn=None, now=None, lock=None):
        self.params = params
        self.check_mode = check_mode
        self.diff = diff
        self.warn = warn or (lambda message: None)
        self.now = now
        self.lock = lock

    def run(self):
        try:
            return self._run()
        except (IOError, OSError) as exc:
            raise RedbuttonError('feature toggles under %s: %s' % (self.params['root'], exc))

    def _check_params(self):
        p = self.params
        state = p.get('state')
        if state is None:
            raise RedbuttonError('state is required: on, off, a percentage 0-100, previous or query')
        query = isinstance(state, str) and state.strip().lower() == 'query'
        previous = isinstance(state, str) and state.strip().lower() == 'previous'
        name = p.get('name')
        if name is None and not query:
            raise RedbuttonError('name is required to change a toggle (state %r)' % (state,))
        if name is not None:
            validate_name(name)
        if p.get('only_run_id') and not previous:
            raise RedbuttonError('only_run_id is only valid with state: previous')
        if query:
            return 'query', name
        if previous:
            return 'previous', name
        return parse_value(state), name

    def _run(self):
        p = self.params
        wanted, name = self._check_params()
        root = p['root']
        store = FeatureStore(root, now=self.now).load()
        file, fmt = store.target(p.get('file'), p.get('format'))
        if wanted == 'query':
            return self._query(store, name, file, fmt)
        lock = None
        owner = p.get('lock_owner') or p.get('run_id') or 'feature-%d' % os.getpid()
        if wanted == 'previous' and p.get('only_run_id'):
            ledger = Ledger(root, now=self.now).load()
            if run_change(ledger, name, p['only_run_id']) is None:
                return self._change(store, wanted, name, file, fmt, ledger)  # that run never changed this host: no lock, no write
        if not self.check_mode:
            lock = self.lock or DeployLock(root, warn=self.warn)
            taken, _holder, _before = lock.acquire(owner, timeout=p.get('lock_timeout', DEFAULT_LOCK_TIMEOUT),
                                                   controller=p.get('_controller'))
            if not taken:
                lock = None  # re-entered a lock this owner already held: leave it to them
            kill_point('feature:after:lock')
        try:
            # Read again under the lock: another writer may have finished meanwhile.
            store = FeatureStore(root, now=self.now).load()
            return self._change(store, wanted, name, file, fmt)
        finally:
            if lock is not None:
                lock.release(owner)

    def _query(self, store, name, file, fmt):
        if name is not None and name not in store.toggles:
            raise RedbuttonError('toggle %s is not known under %s; known toggles: %s'
                                 % (name, self.params['root'], ', '.join(sorted(store.toggles)) or 'none'))
        view = toggle_view(self.params['root'], store=store)
        result = {'changed': False, 'file': file, 'format': fmt, 'toggles': view, 'name': name}
        if name is not None:
            entry = [t for t in view if t['name'] == name][0]
            result.update(value=entry['value'], msg='toggle %s is %s' % (name, describe(entry['value'])))
        else:
            result['msg'] = '%d toggles under %s' % (len(view), self.params['root'])
        return result

    def _change(self, store, wanted, name, file, fmt, ledger=None):
        p = self.params
        ledger = Ledger(p['root'], now=self.now).load() if ledger is None else ledger
        before, warnings = prepare_app_file(store, file, fmt, force=p.get('force'), warn=self.warn)
        old = store.toggles.get(name, {}).get('value') if name in store.toggles else None
        undoes = None
        if wanted == 'previous':
            change = last_change(ledger, name)
            if p.get('only_run_id'):
                change = run_change(ledger, name, p['only_run_id'])
                if change is None:
                    latest = (toggle_events(ledger, name) or [{}])[-1]
                    return self._unchanged(
                        store, name, file, fmt, before, warnings,
                        'toggle %s was not last changed by run %s (last change: %s): left at %s'
                        % (name, p['only_run_id'], 'seq %s by run %s' % (latest['seq'], latest.get('run_id'))
                           if latest else 'none recorded', describe(old)), repair=False)
            if name not in store.toggles and change is None:
                raise RedbuttonError(
                    'toggle %s is not known under %s, so there is no previous value to go back to; known toggles: %s'
                    % (name, p['root'], ', '.join(sorted(store.toggles)) or 'none'))
            if change is None:
                raise RedbuttonError(
                    'toggle %s has no recorded change in the ledger of %s (the ledger keeps the last 500 events); '
                    'set the value you want explicitly' % (name, p['root']))
            undoes = change['seq']
            new = change.get('from')
        else:
            new = wanted
        values = store.values()
        if new is None:
            values.pop(name, None)
        else:
            values[name] = new
        rendered = render(values, fmt)
        if old == new:
            return self._unchanged(store, name, file, fmt, before, warnings,
                                   'toggle %s is already %s' % (name, describe(old)), rendered=rendered)
        if new is None:
            store.toggles.pop(name, None)
        else:
            entry = dict(store.toggles.get(name) or {})
            entry.update(value=new, updated_at=store.now(), by=p.get('actor'), note=p.get('note'),
                         run_id=p.get('run_id'), source='set')
            store.toggles[name] = entry
        seq = record_change(ledger, name, old, new, actor=p.get('actor'), note=p.get('note'),
                            run_id=p.get('run_id'), undoes=undoes,
                            reason=('revert' if p.get('only_run_id') else 'previous') if undoes is not None else None)
        if not self.check_mode:
            store.save(file, fmt, rendered)
            ledger.save()
        if undoes is not None and p.get('only_run_id'):
            msg = 'toggle %s reverted from %s to %s (undoing change %s of run %s)' % (
                name, describe(old), describe(new), undoes, p['only_run_id'])
        elif undoes is not None:
            msg = 'toggle %s went back from %s to %s (undoing change %s)' % (name, describe(old), describe(new), undoes)
        else:
            msg = 'toggle %s set from %s to %s' % (name, describe(old), describe(new))
        return self._result(True, store, name, file, fmt, before, rendered, warnings, msg,
                            old=old, new=new, seq=None if self.check_mode else seq, undoes=undoes)

    def _unchanged(self, store, name, file, fmt, before, warnings, msg, rendered=None, repair=True):
        """Nothing to record; still re-render the file when it is missing or differs (a change of the host), unless
        repair is False: the revert of a run that did not change this host leaves it exactly as it is."""
        if rendered is None:
            rendered = render(store.values(), fmt)
        needs_write = repair and (before != rendered or store.dirty or file != store.data.get('file'))
        if needs_write:
            if not self.check_mode:
                store.save(file, fmt, rendered)
            msg += '; %s rewritten from the recorded toggles' % file
        value = store.toggles.get(name, {}).get('value')
        return self._result(needs_write, store, name, file, fmt, before, rendered, warnings, msg,
                            old=value, new=value, seq=None, undoes=None)

    def _result(self, changed, store, name, file, fmt, before, rendered, warnings, msg, old, new, seq, undoes):
        result = {
            'changed': changed, 'name': name, 'value': new, 'previous_value': old, 'file': file, 'format': fmt,
            'toggles': toggle_view(self.params['root'], store=store), 'event_seq': seq, 'undid': undoes,
            'file_warnings': warnings, 'msg': msg,
        }
        if self.diff:
            result['diff'] = {
                'before_header': file, 'after_header': file,
                'before': before.decode('utf-8', 'replace') if before is not None else '',
                'after': rendered.decode('utf-8'),
            }
        return result


def toggle_view(root, store=None):
    """The toggles of a root for release_info and status, sorted by name. No state: []."""
    if store is None:
        store = FeatureStore(root).load()
    view = []
    for name in sorted(store.toggles):
        entry = store.toggles[name]
        view.append({
            'name': name,
            'value': entry.get('value'),
            'updated_at': entry.get('updated_at'),
            'by': entry.get('by'),
            'note': entry.get('note'),
            'run_id': entry.get('run_id'),
            'source': entry.get('source'),
            'declared_by': entry.get('declared_by'),
            'description': entry.get('description'),
        })
    return view


# the engine's hook -------------------------------------------------------------------------
def declare_release_toggles(root, release_dir, actor=None, run_id=None, check_mode=False, ledger=None, now=None):
    """Add the toggles `release_dir` declares that the host does not know yet, at their defaults.

    Called when a release becomes current, under the deploy lock the caller holds (this function
    does not take it). Never changes a value that is set; toggles the release does not declare
    stay in place and are reported in ``unknown`` with a warning (a rollback to an older release
    leaves them alone). Pass the caller's ``ledger`` (loaded, saved by the caller) so its events
    land in the same write; without it the ledger is loaded and saved here.

    Returns {changed, added: [names], unknown: [names], declared: [names], warnings: [str]}.
    A malformed declaration raises RedbuttonError before anything changes (``read_release_toggles``
    lets a caller refuse it earlier, at stage time).
    """
    declared = read_release_toggles(release_dir)
    release = os.path.basename(os.path.normpath(release_dir))
    store = FeatureStore(root, now=now).load()
    own_ledger = ledger is None
    if own_ledger:
        ledger = Ledger(root, now=now).load()
    added = sorted(name for name in declared if name not in store.toggles)
    unknown = sorted(name for name in store.toggles if name not in declared)
    warnings = []
    if unknown:
        warnings.append('release %s does not declare toggle%s %s; left in place as %s' % (
            release, 's' if len(unknown) > 1 else '', ', '.join(unknown),
            ', '.join('%s=%s' % (n, describe(store.toggles[n].get('value'))) for n in unknown)))
    for name in added:
        spec = declared[name]
        store.toggles[name] = {
            'value': spec['default'], 'updated_at': store.now(), 'by': actor, 'note': 'default of release %s' % release,
            'run_id': run_id, 'source': 'default', 'declared_by': release, 'description': spec['description'],
        }
        record_change(ledger, name, None, spec['default'], actor=actor, note='default of release %s' % release,
                      run_id=run_id, reason='declared')
    for name in declared:
        if name not in added and declared[name]['description'] and not store.toggles[name].get('description'):
            store.toggles[name]['description'] = declared[name]['description']
    changed = bool(added) or store.dirty
    if changed and not check_mode:
        file, fmt = store.target()
        raw, found, error = store.read_app_file(file, fmt)
        if error is not None:
            warnings.append('the toggles file %s that the app reads is not valid (%s); it was left untouched, so '
                            'the new toggles %s are recorded but not in it: fix or move the file, then run the '
                            'feature module' % (file, error, ', '.join(added)))
            atomic_write_json(store.path, store.data)
        else:
            if found:
                warnings.extend(store.adopt(found, file))
            rendered = render(store.values(), fmt)
            if rendered != raw or store.dirty:
                store.save(file, fmt, rendered)
        if own_ledger:
            ledger.save()
    return {'changed': changed, 'added': added, 'unknown': unknown, 'declared': sorted(declared),
            'warnings': warnings}
