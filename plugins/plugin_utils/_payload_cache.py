# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Keep the AnsiballZ payload of this collection's modules from one run to the next.

ansible-core builds a Python module's payload on the controller (it parses the module and every
module_utils file it imports to find them, and zips them) once per run, into the run's own
temporary directory (``ansiballz_cache`` under DEFAULT_LOCAL_TMP), and removes it when the run
ends. For redbutton.deploy.transition that is 0.7 to 0.8 s of every run here: more than a re-run or
a rollback spends on the host.

Every module of the collection has an action plugin that calls it inside ``kept()``: release and
transition their own, the others ``KeptAction`` (ansible-core's own action for a module, ``normal``).
before the call, a payload kept by an earlier run is put into this run's directory, where
ansible-core finds it as if it had built it itself; after the call, the payload this run built is
kept. Nothing of ansible-core is patched: it is its own file, copied (with bytecode added, below).

What makes it safe:
- A payload is kept under a key of everything it is made of: ansible-core's version and location,
  the Python version, the module's path and bytes, every file of this collection's module_utils (path and
  bytes), and the files of the module_utils directories the configuration adds (name, size, time).
  Another ansible-core or a changed file is another key: an old payload is never used for new code.
  The collection's modules import nothing else (a unit test keeps it so).
- ansible-core builds a payload once per run and reuses it for the rest of the run: the key of the code
  it was built from is noted in the run's directory before the first call, and a payload is kept only
  when that key is still the key of the code when it is kept. A run during which the collection changed
  (an upgrade, an edit) keeps nothing: it never files the payload of the old code under the new key.
- Each kept file starts with the sha256 of the rest and is written to a temporary name, then
  renamed: a run killed while keeping leaves no half file, and a damaged one is removed and built
  again.
- The directory (``redbutton-ansiballz`` beside the run's, under ANSIBLE_LOCAL_TEMP, ~/.ansible/tmp
  by default) is made private (0700); one that is not owned by this user or that others may write
  is not used at all.
- Any error here is only logged (-vvv): the call goes on, and ansible-core builds the payload.
- REDBUTTON_PAYLOAD_CACHE=false in the environment turns it off.

The payload kept is ansible-core's with one addition: a .pyc of each file, compiled by the
controller's Python, that the host's Python uses only when it is the same version and the source
beside it hashes the same (``with_bytecode``). It saves compiling the payload on every call.

The newest ``KEEP`` keys of each module stay, older ones are removed, so an upgrade of the collection
or of ansible-core leaves nothing behind for long.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import contextlib
import dataclasses
import glob
import hashlib
import importlib.util
import io
import marshal
import os
import pickle
import stat
import struct
import sys
import tempfile
import time
import zipfile

import ansible
from ansible import constants as C
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action.normal import ActionModule as NormalAction
from ansible.utils.display import Display

from ansible_collections.redbutton.deploy.plugins.plugin_utils._host_names import name_the_host

display = Display()

KEEP = 3
ENV = 'REDBUTTON_PAYLOAD_CACHE'
DIRNAME = 'redbutton-ansiballz'
_COLLECTION = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_STALE_TEMP = 3600  # seconds after which a temporary file of a killed run is removed


class PayloadCache(object):
    """The kept payload of one module of this collection (``short``: transition, release)."""

    def __init__(self, short, run_tmp=None, collection=_COLLECTION):
        self.run_dir = os.path.join(run_tmp or C.DEFAULT_LOCAL_TMP, 'ansiballz_cache')
        self.top = os.path.join(os.path.dirname(run_tmp or C.DEFAULT_LOCAL_TMP), DIRNAME)
        self.short = short
        self.module_path = os.path.join(collection, 'plugins', 'modules', short + '.py')
        self.utils = os.path.join(collection, 'plugins', 'module_utils')
        # ansible-core names the payload of a collection module after its import path (then '-' and
        # the compression, and in 2.19 the extensions): ansible_collections.<ns>.<name>.plugins.modules.<short>.
        parts = os.path.normpath(self.module_path)[:-len('.py')].split(os.sep)
        self.fqn = '.'.join(parts[len(parts) - 1 - parts[::-1].index('ansible_collections'):]) \
            if 'ansible_collections' in parts else None
        self.dir = None

    # -- the key --------------------------------------------------------------------------------
    def key(self):
        """<module>-<digest>: the directory of this module's kept payload (each module has its own keys)."""
        digest = hashlib.sha256()
        for part in (ansible.__version__, os.path.dirname(ansible.__file__), sys.version, self.module_path):
            digest.update(part.encode('utf-8') + b'\0')
        sources = [self.module_path]
        for top, dirs, files in os.walk(self.utils):
            dirs[:] = sorted(name for name in dirs if name != '__pycache__')
            sources.extend(os.path.join(top, name) for name in sorted(files) if name.endswith('.py'))
        for path in sources:
            with open(path, 'rb') as handle:
                data = handle.read()
            digest.update(('%s\0%d\0' % (os.path.relpath(path, self.utils), len(data))).encode('utf-8') + data)
        # Directories of module_utils the configuration adds can shadow ansible.module_utils files.
        for extra in C.DEFAULT_MODULE_UTILS_PATH or []:
            for top, dirs, files in os.walk(os.path.expanduser(extra)):
                dirs.sort()
                for name in sorted(files):
                    info = os.stat(os.path.join(top, name))
                    digest.update(('%s\0%d\0%d\0' % (os.path.join(top, name), info.st_size, info.st_mtime_ns)).encode('utf-8'))
        return '%s-%s' % (self.short, digest.hexdigest()[:40])

    # -- the directory --------------------------------------------------------------------------
    def _private_top(self, create):
        """The top directory when it is this user's alone (made so when create), else None."""
        if create and not os.path.isdir(self.top):
            os.makedirs(self.top, mode=0o700, exist_ok=True)
        try:
            info = os.lstat(self.top)
        except FileNotFoundError:
            return None
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
            display.vvv('redbutton.deploy: not using %s for module payloads: it must be a directory of this user '
                        'that no one else may write' % self.top)
            return None
        return self.top

    def _marker(self):
        return os.path.join(self.run_dir, '.redbutton-%s.key' % self.short)

    def seed(self):
        """Put a kept payload into this run's directory, unless ansible-core has one there already."""
        if self.fqn is None:
            return False
        key = self.key()
        if not os.path.exists(self._marker()):
            # The first call of this module in this run: the payload it seeds or ansible-core builds is of this code.
            os.makedirs(self.run_dir, exist_ok=True)
            _write_atomic(self._marker(), key.encode('ascii'))
        if self._private_top(create=False) is None:
            return False
        self.dir = os.path.join(self.top, key)
        used = False
        for path in glob.glob(os.path.join(glob.escape(self.dir), glob.escape(self.fqn) + '-*')):
            name = os.path.basename(path)
            dest = os.path.join(self.run_dir, name)
            if os.path.exists(dest) or name.startswith('.'):
                continue
            with open(path, 'rb') as handle:
                head, data = handle.read(65), None
                if len(head) == 65 and head[64:] == b'\n':
                    data = handle.read()
            if data is None or hashlib.sha256(data).hexdigest().encode('ascii') != head[:64]:
                display.vvv('redbutton.deploy: removing the damaged module payload %s' % path)
                os.unlink(path)
                continue
            os.makedirs(self.run_dir, exist_ok=True)
            _write_atomic(dest, data)
            used = True
            display.vvv('redbutton.deploy: the payload of %s comes from %s' % (self.fqn, path))
        if used:
            os.utime(self.dir)  # the newest keys stay (prune)
        return used

    def keep(self):
        """Keep the payloads this run built (or seeded) for the next runs; prune old keys."""
        if self.fqn is None:
            return False
        built = [path for path in glob.glob(os.path.join(glob.escape(self.run_dir), glob.escape(self.fqn) + '-*'))
                 if not path.endswith(('.lock', '-part'))]
        if not built or self._private_top(create=True) is None:
            return False
        key = self.key()
        try:
            with open(self._marker(), 'rb') as handle:
                built_from = handle.read().decode('ascii', 'replace')
        except OSError:
            built_from = None
        if built_from != key:
            display.vvv('redbutton.deploy: the payload of %s is not kept: the collection or ansible-core changed during this '
                        'run (the payload is of the code of key %s, the code is now %s)' % (self.fqn, built_from, key))
            return False
        self.dir = os.path.join(self.top, key)
        kept = False
        for path in built:
            dest = os.path.join(self.dir, os.path.basename(path))
            if os.path.exists(dest):
                continue
            with open(path, 'rb') as handle:
                data = handle.read()
            try:
                compiled = with_bytecode(data, os.path.basename(path)[len(self.fqn) + 1:])
            except Exception as exc:  # pylint: disable=broad-exception-caught
                # Whatever this Python cannot read or compile, the payload is kept as ansible-core built it.
                display.vvv('redbutton.deploy: the payload of %s is kept without bytecode: %r' % (self.fqn, exc))
                compiled = None
            if compiled is not None:
                data = compiled
                _write_atomic(path, data)  # this run's later calls get it too
            os.makedirs(self.dir, mode=0o700, exist_ok=True)
            _write_atomic(dest, hashlib.sha256(data).hexdigest().encode('ascii') + b'\n' + data)
            kept = True
        if kept:
            self.prune()
        return kept

    def prune(self):
        """Remove all but the KEEP newest keys of each module, and temporary files a killed run left.
        Per module: the modules of a run (transition, a gate, the lock) must not push each other out."""
        keys = {}
        now = time.time()
        for name in os.listdir(self.top):
            path = os.path.join(self.top, name)
            info = os.lstat(path)
            if stat.S_ISDIR(info.st_mode):
                keys.setdefault(name.rpartition('-')[0], []).append((info.st_mtime, path))
                for leftover in glob.glob(os.path.join(glob.escape(path), '.*.tmp')):
                    if now - os.lstat(leftover).st_mtime > _STALE_TEMP:
                        os.unlink(leftover)
        for module_keys in keys.values():
            for dummy, path in sorted(module_keys, reverse=True)[KEEP:]:
                for name in os.listdir(path):
                    os.unlink(os.path.join(path, name))
                os.rmdir(path)


def with_bytecode(payload, variant):
    """The payload (ansible-core's cache file: the base64 zip up to 2.18, a pickled _CachedModule from
    2.19) with a .pyc beside each .py of its zip, compiled by this Python; None when it has them
    already, has extensions (``variant`` is what follows the module in the file name: the compression,
    then in 2.19 the extensions, ``none`` for none), or is of a form this does not know.

    On the host, Python imports a module of the zip from its .pyc when that was compiled by the same
    Python version (the magic number) from the same source (a checked hash-based .pyc, PEP 552: the
    source beside it is hashed and compared), and compiles the .py as before otherwise. So a host with
    the controller's Python skips compiling the 80 files of every call (0.3 to 0.6 s here); another
    Python loses nothing but the upload of the larger payload.
    """
    parts = variant.split('-')
    if len(parts) > 2 or (len(parts) == 2 and parts[1] != 'none'):
        return None  # the debugger or coverage extensions map the sources by their paths: left alone
    cached = None
    if payload[:1] == b'\x80':
        cached = pickle.loads(payload)  # the file ansible-core wrote in this run (2.19 and later)
        if not dataclasses.is_dataclass(cached) or not isinstance(getattr(cached, 'zip_data', None), bytes):
            return None
        encoded = cached.zip_data
    else:
        encoded = payload
    try:
        source = zipfile.ZipFile(io.BytesIO(base64.b64decode(encoded, validate=True)))
    except (ValueError, zipfile.BadZipFile):
        return None
    if any(name.endswith('.pyc') for name in source.namelist()):
        return None
    output = io.BytesIO()
    with zipfile.ZipFile(output, 'w') as target:
        for info in source.infolist():
            data = source.read(info)
            target.writestr(info, data)
            if info.filename.endswith('.py'):
                code = compile(data, info.filename, 'exec', dont_inherit=True)
                header = importlib.util.MAGIC_NUMBER + struct.pack('<I', 0b11) + importlib.util.source_hash(data)
                compiled = zipfile.ZipInfo(info.filename + 'c', info.date_time)
                compiled.compress_type = info.compress_type
                target.writestr(compiled, header + marshal.dumps(code))
    encoded = base64.b64encode(output.getvalue())
    if cached is None:
        return encoded
    return pickle.dumps(dataclasses.replace(cached, zip_data=encoded))


def _write_atomic(dest, data):
    fd, temp = tempfile.mkstemp(prefix='.' + os.path.basename(dest)[:80] + '.', suffix='.tmp', dir=os.path.dirname(dest))
    try:
        with os.fdopen(fd, 'wb') as handle:
            handle.write(data)
        os.replace(temp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def enabled():
    try:
        return boolean(os.environ.get(ENV, 'true'), strict=True)
    except TypeError:
        display.warning('%s=%s is not a boolean: the module payload cache stays on. Set it to false to turn it off.'
                        % (ENV, os.environ.get(ENV)))
        return True


@contextlib.contextmanager
def kept(short):
    """Around a call of module ``short`` of this collection: its payload seeded before, kept after."""
    cache = None
    if enabled():
        try:
            cache = PayloadCache(short)
            cache.seed()
        except (OSError, ValueError) as exc:
            display.vvv('redbutton.deploy: the module payload cache was not read: %s' % exc)
    yield
    if cache is not None:
        try:
            cache.keep()
        except (OSError, ValueError) as exc:
            display.vvv('redbutton.deploy: the module payload was not kept: %s' % exc)


class KeepsPayload(object):
    """Mixin of this collection's action plugins: each module call inside ``kept()``; its message worded
    as the controller knows the host (``_host_names``)."""

    def _execute_module(self, *args, **kwargs):  # pylint: disable=arguments-differ
        name = kwargs.get('module_name') or self._task.resolved_action or self._task.action
        with kept(name.rsplit('.', 1)[-1]):
            result = super(KeepsPayload, self)._execute_module(*args, **kwargs)
        return name_the_host(result, kwargs.get('task_vars'))


class KeptAction(KeepsPayload, NormalAction):
    """ansible-core's action for a module (``normal``: check mode, async, everything as usual), with
    the payload of this collection's module kept between runs."""
