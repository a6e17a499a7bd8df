# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The module payload kept between runs: put back only for the same code and ansible-core, never
half written or damaged, only from a private directory, pruned, and off when asked. The last test
keeps the premise of the key: the modules called through it import only ansible-core's and this
collection's module_utils."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ast
import base64
import contextlib
import hashlib
import importlib
import io
import os
import pickle
import subprocess
import sys
import time
import zipfile
from unittest import mock

import pytest

from ansible.module_utils import _internal as module_utils_internal

MODULE_SIDE = module_utils_internal.is_controller

# Controller imports flip a process-wide flag (see tests/unit/plugins/action/test_release.py): restore it.
from ansible_collections.redbutton.deploy.plugins.plugin_utils import _payload_cache  # noqa: E402 pylint: disable=wrong-import-position
from ansible_collections.redbutton.deploy.plugins.plugin_utils._payload_cache import (  # noqa: E402 pylint: disable=wrong-import-position
    KEEP,
    PayloadCache,
    kept,
    with_bytecode,
)

module_utils_internal.is_controller = MODULE_SIDE

FQN = 'ansible_collections.acme.web.plugins.modules.transition'
NAME = FQN + '-ZIP_DEFLATED-none'
PAYLOAD = b'PK\x03\x04 the zipped module and its module_utils'
MARKER = '.redbutton-transition.key'


@pytest.fixture(autouse=True)
def controller_side(monkeypatch):
    module_utils_internal.is_controller = True
    monkeypatch.setattr(_payload_cache.C, 'DEFAULT_MODULE_UTILS_PATH', [], raising=False)
    monkeypatch.delenv(_payload_cache.ENV, raising=False)
    yield
    module_utils_internal.is_controller = MODULE_SIDE


@pytest.fixture
def world(tmp_path):
    """A collection acme.web with a module and two module_utils files, and ANSIBLE_LOCAL_TEMP."""
    collection = tmp_path / 'ansible_collections' / 'acme' / 'web'
    (collection / 'plugins' / 'modules').mkdir(parents=True)
    (collection / 'plugins' / 'module_utils' / 'sub').mkdir(parents=True)
    (collection / 'plugins' / 'modules' / 'transition.py').write_text('import x\n')
    (collection / 'plugins' / 'module_utils' / '_engine.py').write_text('ENGINE = 1\n')
    (collection / 'plugins' / 'module_utils' / 'sub' / '_more.py').write_text('MORE = 1\n')
    local_temp = tmp_path / 'local-temp'
    local_temp.mkdir(mode=0o700)
    runs = iter(range(1000))

    class World(object):
        root = collection
        top = local_temp / _payload_cache.DIRNAME

        @staticmethod
        def run(built=None):
            """A new run: its own DEFAULT_LOCAL_TMP, with the payload ansible-core built in it, if any."""
            run_tmp = local_temp / ('ansible-local-%d' % next(runs))
            (run_tmp / 'ansiballz_cache').mkdir(parents=True)
            cache = PayloadCache('transition', run_tmp=str(run_tmp), collection=str(collection))
            if built is not None:
                # As in a run: the first call noted the key of the code (seed), then ansible-core built the payload.
                (run_tmp / 'ansiballz_cache' / MARKER).write_text(cache.key())
                (run_tmp / 'ansiballz_cache' / NAME).write_bytes(built)
            return cache, run_tmp / 'ansiballz_cache'
    return World


def test_a_payload_kept_by_one_run_is_what_the_next_run_finds(world):
    first, dummy = world.run(PAYLOAD)
    assert first.fqn == FQN
    assert first.seed() is False  # nothing kept yet: ansible-core builds it
    assert first.keep() is True
    kept_file = world.top / first.key() / NAME
    assert kept_file.read_bytes() == hashlib.sha256(PAYLOAD).hexdigest().encode() + b'\n' + PAYLOAD
    assert oct(world.top.stat().st_mode & 0o777) == oct(0o700)
    assert oct(kept_file.stat().st_mode & 0o777) == oct(0o600)

    second, run_dir = world.run()
    assert second.seed() is True
    assert (run_dir / NAME).read_bytes() == PAYLOAD
    assert sorted(os.listdir(str(run_dir))) == [MARKER, NAME]  # no temporary file left
    assert second.keep() is False  # it is kept already


def test_a_run_that_has_its_payload_already_is_left_alone(world):
    world.run(PAYLOAD)[0].keep()
    cache, run_dir = world.run(b'built by this run')
    assert cache.seed() is False
    assert (run_dir / NAME).read_bytes() == b'built by this run'


@pytest.mark.parametrize('change', ['module', 'module_utils', 'new module_utils', 'ansible-core', 'configured module_utils'])
def test_other_code_is_another_key_and_finds_nothing(world, monkeypatch, tmp_path, change):
    first, dummy = world.run(PAYLOAD)
    first.keep()
    before = first.key()
    utils = world.root / 'plugins' / 'module_utils'
    if change == 'module':
        (world.root / 'plugins' / 'modules' / 'transition.py').write_text('import y\n')
    elif change == 'module_utils':
        (utils / 'sub' / '_more.py').write_text('MORE = 2\n')
    elif change == 'new module_utils':
        (utils / '_added.py').write_text('\n')
    elif change == 'ansible-core':
        monkeypatch.setattr(_payload_cache.ansible, '__version__', '9.99.0')
    else:
        extra = tmp_path / 'my_module_utils'
        extra.mkdir()
        (extra / 'basic.py').write_text('# shadows ansible.module_utils.basic\n')
        monkeypatch.setattr(_payload_cache.C, 'DEFAULT_MODULE_UTILS_PATH', [str(extra)], raising=False)
    cache, run_dir = world.run()
    assert cache.key() != before
    assert cache.seed() is False
    assert os.listdir(str(run_dir)) == [MARKER]  # only the key of the code this run calls, no payload


def test_the_same_code_is_the_same_key(world):
    assert world.run()[0].key() == world.run()[0].key()
    (world.root / 'plugins' / 'module_utils' / '__pycache__').mkdir()
    before = world.run()[0].key()
    (world.root / 'plugins' / 'module_utils' / '__pycache__' / '_engine.cpython-311.pyc').write_bytes(b'x')
    (world.root / 'plugins' / 'module_utils' / 'notes.txt').write_text('not code')
    assert world.run()[0].key() == before


@pytest.mark.parametrize('damage', ['flipped byte', 'cut short', 'no header'])
def test_a_damaged_kept_payload_is_removed_and_never_used(world, damage):
    first, dummy = world.run(PAYLOAD)
    first.keep()
    kept_file = world.top / first.key() / NAME
    data = kept_file.read_bytes()
    kept_file.write_bytes({'flipped byte': data[:-1] + b'?', 'cut short': data[:70], 'no header': PAYLOAD}[damage])
    cache, run_dir = world.run()
    assert cache.seed() is False
    assert os.listdir(str(run_dir)) == [MARKER]  # only the key of the code this run calls, no payload
    assert not kept_file.exists()
    # The run builds it again and keeps it whole.
    again, dummy = world.run(PAYLOAD)
    assert again.keep() is True
    assert kept_file.read_bytes() == data


def test_locks_and_partial_files_of_ansible_core_are_not_kept(world):
    cache, run_dir = world.run()
    (run_dir / (NAME + '.lock')).write_bytes(b'')
    (run_dir / (NAME + '-part')).write_bytes(b'half')
    (run_dir / 'ansible_collections.acme.web.plugins.modules.transition_other-ZIP_DEFLATED-none').write_bytes(b'x')
    assert cache.keep() is False
    assert not world.top.exists()


@pytest.mark.parametrize('how', ['others may write it', 'a symlink'])
def test_a_directory_others_may_write_is_not_used(world, tmp_path, how):
    first, dummy = world.run(PAYLOAD)
    first.keep()
    key = first.key()
    if how == 'others may write it':
        world.top.chmod(0o777)
    else:
        moved = tmp_path / 'elsewhere'
        world.top.rename(moved)
        world.top.symlink_to(moved)
    cache, run_dir = world.run()
    assert cache.seed() is False
    assert os.listdir(str(run_dir)) == [MARKER]  # only the key of the code this run calls, no payload
    mine, dummy = world.run(b'other bytes')
    assert mine.keep() is False
    assert (world.top / key / NAME).read_bytes().endswith(PAYLOAD)


def test_only_the_newest_keys_stay_and_leftovers_of_killed_runs_go(world):
    dirs = []
    for number in range(KEEP + 2):
        (world.root / 'plugins' / 'module_utils' / '_engine.py').write_text('ENGINE = %d\n' % number)
        cache, dummy = world.run(PAYLOAD)
        cache.keep()
        dirs.append(world.top / cache.key())
        past = time.time() - 100 + number
        os.utime(str(dirs[-1]), (past, past))
    assert sorted(os.listdir(str(world.top))) == sorted(path.name for path in dirs[-KEEP:])
    # A temporary file a killed run left: removed once it is old, not while a run may still write it.
    fresh = dirs[-1] / ('.%s.abc.tmp' % NAME)
    old = dirs[-1] / ('.%s.def.tmp' % NAME)
    fresh.write_bytes(b'half')
    old.write_bytes(b'half')
    os.utime(str(old), (time.time() - 7200, time.time() - 7200))
    cache.prune()
    assert fresh.exists() and not old.exists()
    # Using a key makes it the newest.
    (world.root / 'plugins' / 'module_utils' / '_engine.py').write_text('ENGINE = %d\n' % KEEP)
    user, dummy = world.run()
    assert user.seed() is True
    assert max(os.listdir(str(world.top)), key=lambda name: os.stat(str(world.top / name)).st_mtime) == user.key()


def test_the_modules_of_a_run_never_push_each_other_out(world, tmp_path):
    """Each module has its keys: a run that calls more modules than KEEP (transition, a gate, the lock,
    release_info) keeps every payload, and pruning only drops a module's own old keys."""
    shorts = ['transition'] + ['mod%d' % number for number in range(KEEP + 1)]
    for short in shorts[1:]:
        (world.root / 'plugins' / 'modules' / (short + '.py')).write_text('import y\n')

    def run(short, built=None):
        run_tmp = tmp_path / 'local-temp' / ('ansible-local-%s-%d' % (short, len(os.listdir(str(tmp_path / 'local-temp')))))
        (run_tmp / 'ansiballz_cache').mkdir(parents=True)
        cache = PayloadCache(short, run_tmp=str(run_tmp), collection=str(world.root))
        if built is not None:
            (run_tmp / 'ansiballz_cache' / ('.redbutton-%s.key' % short)).write_text(cache.key())
            (run_tmp / 'ansiballz_cache' / (cache.fqn + '-ZIP_DEFLATED-none')).write_bytes(built)
        return cache, run_tmp / 'ansiballz_cache'
    for short in shorts:
        assert run(short, PAYLOAD + short.encode())[0].keep() is True
    assert sorted(os.listdir(str(world.top))) == sorted(run(short)[0].key() for short in shorts)
    others = sorted(run(short)[0].key() for short in shorts[1:])
    for short in shorts:
        cache, run_dir = run(short)
        assert cache.seed() is True
        assert (run_dir / (cache.fqn + '-ZIP_DEFLATED-none')).read_bytes() == PAYLOAD + short.encode()
    # New module_utils: each module keeps its KEEP newest keys, whatever the other modules did.
    for number in range(KEEP + 1):
        (world.root / 'plugins' / 'module_utils' / '_engine.py').write_text('ENGINE = %d\n' % (number + 100))
        cache, dummy = run('transition', PAYLOAD)
        cache.keep()
        past = time.time() - 50 + number
        os.utime(str(world.top / cache.key()), (past, past))
    cache.prune()
    names = os.listdir(str(world.top))
    assert len([name for name in names if name.startswith('transition-')]) == KEEP
    # The other modules' keys of the old module_utils stay until each of them runs with the new ones.
    assert sorted(name for name in names if not name.startswith('transition-')) == others


@pytest.mark.parametrize('value, used', [('false', False), ('no', False), ('0', False), ('true', True), ('maybe', True)])
def test_the_environment_turns_it_off(world, monkeypatch, value, used):
    first, dummy = world.run(PAYLOAD)
    first.keep()
    seen = []
    monkeypatch.setenv(_payload_cache.ENV, value)
    monkeypatch.setattr(_payload_cache, 'PayloadCache', lambda short: seen.append(short) or first)
    with kept('transition'):
        pass
    assert seen == (['transition'] if used else [])


def test_errors_never_stop_the_call(world, monkeypatch):
    class Broken(object):
        def __init__(self, short):
            raise OSError('disk full')
    monkeypatch.setattr(_payload_cache, 'PayloadCache', Broken)
    ran = []
    with kept('transition'):
        ran.append(True)
    assert ran == [True]


def _imports(path):
    tree = ast.parse(open(path, 'rb').read())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name


PLUGINS = os.path.dirname(os.path.dirname(os.path.abspath(_payload_cache.__file__)))
MODULES = sorted(name[:-3] for name in os.listdir(os.path.join(PLUGINS, 'modules')) if name.endswith('.py') and name != '__init__.py')


@pytest.mark.parametrize('module', MODULES)
def test_every_module_is_called_with_its_payload_kept(module, monkeypatch):
    """Each module has an action plugin, and the module call it makes goes through kept(module)."""
    action = importlib.import_module('ansible_collections.redbutton.deploy.plugins.action.' + module).ActionModule
    seen = []

    @contextlib.contextmanager
    def spy(short):
        seen.append(short)
        yield

    monkeypatch.setattr(_payload_cache, 'kept', spy)
    release_action = importlib.import_module('ansible_collections.redbutton.deploy.plugins.action.release')
    monkeypatch.setattr(_payload_cache.NormalAction, '_execute_module', lambda self, *args, **kwargs: {'called': True})
    monkeypatch.setattr(release_action.ActionBase, '_execute_module', lambda self, *args, **kwargs: {'called': True})
    plugin = action.__new__(action)
    plugin._task = mock.Mock(resolved_action='redbutton.deploy.' + module, action=module)
    assert plugin._execute_module(module_name='redbutton.deploy.' + module, module_args={}, task_vars={}) == {'called': True}
    # As ansible-core's normal action calls it: the module is the task's.
    assert plugin._execute_module(task_vars={}, wrap_async=False) == {'called': True}
    assert seen == [module, module]


@pytest.mark.parametrize('module', MODULES)
def test_the_modules_kept_import_only_ansible_core_and_this_collection(module):
    """The key covers this collection's module_utils and ansible-core: a module of another collection
    imported by a kept module would not be in it."""
    paths = [os.path.join(PLUGINS, 'modules', module + '.py')]
    for top, dummy, files in os.walk(os.path.join(PLUGINS, 'module_utils')):
        paths.extend(os.path.join(top, name) for name in files if name.endswith('.py'))
    for path in paths:
        for name in _imports(path):
            if name.startswith('ansible_collections'):
                assert name.startswith('ansible_collections.redbutton.deploy.plugins.module_utils'), (path, name)


# -- the bytecode added to a kept payload ---------------------------------------------------------------
MOD = b"VALUE = 'from the source'\n\n\ndef where():\n    return where.__code__.co_filename\n"


def zipped(files):
    output = io.BytesIO()
    with zipfile.ZipFile(output, 'w', zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return base64.b64encode(output.getvalue())


def unzipped(encoded):
    archive = zipfile.ZipFile(io.BytesIO(base64.b64decode(encoded)))
    return dict((name, archive.read(name)) for name in archive.namelist())


def import_from(tmp_path, files):
    """What a host's Python imports from the payload's zip: (VALUE, the file its code was compiled from)."""
    path = tmp_path / 'payload.zip'
    path.write_bytes(base64.b64decode(zipped(files)))
    code = 'import sys; sys.path.insert(0, sys.argv[1]); import pkg.mod as m; print(m.VALUE); print(m.where())'
    out = subprocess.run([sys.executable, '-c', code, str(path)], capture_output=True, text=True, check=True).stdout.split('\n')
    return out[0], out[1]


def test_the_host_imports_the_bytecode_when_it_is_the_same_python_and_source(tmp_path):
    files = unzipped(with_bytecode(zipped({'pkg/__init__.py': b'', 'pkg/mod.py': MOD}), 'ZIP_DEFLATED'))
    assert sorted(files) == ['pkg/__init__.py', 'pkg/__init__.pyc', 'pkg/mod.py', 'pkg/mod.pyc']
    # Compiled from the .pyc: its code names the file as the controller compiled it; from the source, the zip's path.
    assert import_from(tmp_path, files) == ('from the source', 'pkg/mod.py')


def test_bytecode_of_another_source_or_python_is_not_used(tmp_path):
    files = unzipped(with_bytecode(zipped({'pkg/__init__.py': b'', 'pkg/mod.py': MOD}), 'ZIP_DEFLATED'))
    changed = dict(files, **{'pkg/mod.py': MOD.replace(b'from the source', b'changed source')})
    value, where = import_from(tmp_path, changed)
    assert value == 'changed source' and where.endswith(os.path.join('payload.zip', 'pkg', 'mod.py'))
    other_python = dict(files, **{'pkg/mod.pyc': b'\x00\x00\r\n' + files['pkg/mod.pyc'][4:]})
    value, where = import_from(tmp_path, other_python)
    assert value == 'from the source' and where.endswith(os.path.join('payload.zip', 'pkg', 'mod.py'))


def test_the_2_19_cache_file_keeps_its_form():
    module_common = pytest.importorskip('ansible.executor.module_common')
    if not hasattr(module_common, '_CachedModule'):
        pytest.skip('ansible-core before 2.19 keeps the base64 zip itself')
    metadata = module_common.ModuleMetadataV1(serialization_profile='legacy')
    cached = module_common._CachedModule(zip_data=zipped({'pkg/__init__.py': b'', 'pkg/mod.py': MOD}), metadata=metadata,
                                         source_mapping={'/controller/pkg/mod.py': 'pkg/mod.py'})
    compiled = pickle.loads(with_bytecode(pickle.dumps(cached), 'ZIP_DEFLATED-none'))
    assert type(compiled) is type(cached)
    assert compiled.metadata == metadata and compiled.source_mapping == cached.source_mapping
    assert sorted(unzipped(compiled.zip_data)) == ['pkg/__init__.py', 'pkg/__init__.pyc', 'pkg/mod.py', 'pkg/mod.pyc']


@pytest.mark.parametrize('payload, variant', [
    (zipped({'pkg/mod.py': MOD}), 'ZIP_DEFLATED-debugger'),  # the extensions map sources by path
    (zipped({'pkg/mod.py': MOD}), 'ZIP_DEFLATED-coverage~debugger'),
    (zipped({'pkg/mod.py': MOD, 'pkg/mod.pyc': b'x'}), 'ZIP_DEFLATED'),  # has bytecode already
    (b'not base64 at all!', 'ZIP_DEFLATED'),
    (base64.b64encode(b'not a zip'), 'ZIP_DEFLATED-none'),
])
def test_payloads_it_does_not_know_are_left_as_they_are(payload, variant):
    assert with_bytecode(payload, variant) is None


def test_a_kept_payload_has_the_bytecode_and_so_has_the_run_that_built_it(world):
    payload = zipped({'pkg/__init__.py': b'', 'pkg/mod.py': MOD})
    cache, run_dir = world.run(payload)
    assert cache.keep() is True
    assert sorted(unzipped((run_dir / NAME).read_bytes())) == ['pkg/__init__.py', 'pkg/__init__.pyc', 'pkg/mod.py', 'pkg/mod.pyc']
    data = (world.top / cache.key() / NAME).read_bytes()
    assert data.split(b'\n', 1)[1] == (run_dir / NAME).read_bytes()
    second, second_dir = world.run()
    assert second.seed() is True
    assert (second_dir / NAME).read_bytes() == (run_dir / NAME).read_bytes()


def test_a_payload_this_python_cannot_compile_is_kept_as_built(world):
    payload = zipped({'pkg/mod.py': b'def broken(:\n'})
    cache, run_dir = world.run(payload)
    assert cache.keep() is True
    assert (run_dir / NAME).read_bytes() == payload
    assert (world.top / cache.key() / NAME).read_bytes().split(b'\n', 1)[1] == payload


def test_a_run_during_which_the_code_changed_keeps_nothing(world):
    """ansible-core builds the payload once per run and reuses it: when the collection changes during the run (an upgrade,
    an edit), the payload it built is of the old code, and must not be kept under the key of the new code."""
    cache, run_dir = world.run()
    assert cache.seed() is False and (run_dir / MARKER).read_text() == cache.key()
    (run_dir / NAME).write_bytes(b'built from ENGINE = 1')  # ansible-core builds it, from the code as it is now
    (world.root / 'plugins' / 'module_utils' / '_engine.py').write_text('ENGINE = 2\n')
    later = PayloadCache('transition', run_tmp=str(run_dir.parent), collection=str(world.root))  # a later call of the run
    assert later.seed() is False and later.keep() is False
    assert not world.top.exists() or os.listdir(str(world.top)) == []
    # The next run, of the new code, builds and keeps its own.
    fresh, dummy = world.run(b'built from ENGINE = 2')
    assert fresh.seed() is False and fresh.keep() is True
    assert (world.top / fresh.key() / NAME).read_bytes().endswith(b'built from ENGINE = 2')
