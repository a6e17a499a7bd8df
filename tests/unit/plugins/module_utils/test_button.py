# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The on-host command (_button): what goes into the zipapp, that it is deterministic and
installed atomically only when it differs, and that it runs on a plain python3 without
Ansible on a root prepared by the release engine."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ast
import glob
import hashlib
import importlib.util
import io
import json
import marshal
import os
import re
import shutil
import stat
import subprocess
import sys
import zipfile

import pytest

from ansible_collections.redbutton.deploy.plugins.module_utils import _button
from ansible_collections.redbutton.deploy.plugins.module_utils._common import RedbuttonError
from ansible_collections.redbutton.deploy.plugins.module_utils._release import RELEASE_ARGUMENT_SPEC, ReleaseManager

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
PREFIX = 'ansible_collections/redbutton/deploy/plugins/module_utils/'


def release(root, version, src_dir, **kwargs):
    src = os.path.join(src_dir, version)
    os.makedirs(src, exist_ok=True)
    with open(os.path.join(src, 'VERSION'), 'w') as handle:
        handle.write(version + '\n')
    params = dict((name, spec.get('default')) for name, spec in RELEASE_ARGUMENT_SPEC.items())
    params.update(root=root, release=version, src=src, shared_paths=[], state='active', status='ok', actor='alice')
    params.update(kwargs)
    return ReleaseManager(params).run()


def python_without_ansible():
    """A python3 outside the project's virtualenv that cannot import Ansible (or None)."""
    for candidate in ('/usr/bin/python3', '/usr/local/bin/python3'):
        if os.path.exists(candidate):
            probe = subprocess.run([candidate, '-I', '-c', 'import ansible'], capture_output=True, check=False)
            if probe.returncode != 0:
                return candidate
    return None


def python38():
    """A Python 3.8 interpreter (the oldest the command supports), or None."""
    candidates = [shutil.which('python3.8')] + sorted(glob.glob(os.path.expanduser('~/.pyenv/versions/3.8*/bin/python3.8')))
    for candidate in candidates:
        if candidate and subprocess.run([candidate, '-c', 'import sys; assert sys.version_info[:2] == (3, 8)'],
                                        capture_output=True, check=False).returncode == 0:
            return candidate
    return None


def test_version_is_the_collection_version():
    with open(os.path.join(REPO, 'galaxy.yml')) as handle:
        version = re.search(r'^version:\s*(\S+)', handle.read(), re.M).group(1)
    assert _button.COLLECTION_VERSION == version


def test_sources_are_the_import_closure_of_the_command_line():
    files = _button.sources()
    # The command line, what it runs (the engine, the release engine, the ledger, the lock) and
    # what those import, found by following the imports.
    for name in ('_cli', '_common', '_release', '_ledger', '_lock', '_archive', '_transition'):
        assert name in files, name
    with open(os.path.join(REPO, 'plugins', 'module_utils', '_release.py'), 'rb') as handle:
        assert files['_release'] == handle.read()
    for name, data in files.items():
        loaded = _imports_by_ast(data)[1]
        assert not [module for module in loaded if module.split('.')[0] == 'ansible'], '%s imports ansible when loaded' % name


def _imports_by_ast(source):
    """The reference answer of _button._imports, from Python's parser."""
    package = _button.PACKAGE
    deferred = set()
    tree = ast.parse(source)
    for function in ast.walk(tree):
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            deferred.update(id(node) for node in ast.walk(function))
    ours, others = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == package:
            ours.update(alias.name for alias in node.names)
            continue
        if isinstance(node, ast.ImportFrom):
            modules = [node.module]
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        else:
            continue
        for module in modules:
            if module.startswith(package + '.'):
                ours.add(module[len(package) + 1:].split('.')[0])
            elif id(node) not in deferred:
                others.add(module)
    return ours, others


def test_the_line_reader_agrees_with_the_parser_on_every_module_utils_file():
    folder = os.path.join(REPO, 'plugins', 'module_utils')
    for name in sorted(os.listdir(folder)):
        if name.endswith('.py'):
            with open(os.path.join(folder, name), 'rb') as handle:
                source = handle.read()
            ours, others = _button._imports(name, source)
            if name == '_button.py':
                # It holds the text of the __main__.py it writes: the reader also sees that import.
                others.discard('sys')
            assert (ours, others) == _imports_by_ast(source), name


def test_a_module_utils_file_that_imports_ansible_is_refused(monkeypatch):
    real = _button._read_source

    def read(name):
        if name == '_common':
            return real(name) + b'\ntry:\n    from ansible.module_utils.urls import open_url\nexcept ImportError:\n    open_url = None\n'
        return real(name)

    monkeypatch.setattr(_button, '_read_source', read)
    with pytest.raises(RedbuttonError, match=r'module_utils/_common.py imports ansible.module_utils.urls, but the on-host command runs without Ansible'):
        _button.build_zipapp()


def test_an_ansible_import_inside_a_function_is_allowed(monkeypatch):
    """The module's host adapter imports Ansible's urls inside its method; the command never calls it."""
    real = _button._read_source

    def read(name):
        if name == '_common':
            return real(name) + b'\ndef fetch():\n    from ansible.module_utils.urls import open_url\n    return open_url\n'
        return real(name)

    monkeypatch.setattr(_button, '_read_source', read)
    assert b'def fetch()' in _button.sources()['_common']


def test_zipapp_is_deterministic_and_laid_out_as_the_collection():
    data = _button.build_zipapp()
    assert data == _button.build_zipapp()
    assert data.startswith(b'#!/usr/bin/env python3\n')
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = archive.infolist()
        names = [info.filename for info in infos]
        assert names == sorted(names)
        assert set(info.date_time for info in infos) == {(1980, 1, 1, 0, 0, 0)}
        for package in ('ansible_collections/', 'ansible_collections/redbutton/', 'ansible_collections/redbutton/deploy/',
                        'ansible_collections/redbutton/deploy/plugins/', PREFIX):
            assert archive.read(package + '__init__.py') == b''
        assert archive.read(PREFIX + '_cli.py') == _button.sources()['_cli']
        # Each source has its bytecode for this Python (unchecked hash-based .pyc).
        for name in _button.sources():
            pyc = archive.read(PREFIX + name + '.pyc')
            assert pyc[:8] == importlib.util.MAGIC_NUMBER + b'\x01\x00\x00\x00'
            assert pyc[8:16] == importlib.util.source_hash(archive.read(PREFIX + name + '.py'))
        main = archive.read('__main__.py').decode('utf-8')
        assert 'from ansible_collections.redbutton.deploy.plugins.module_utils._cli import main' in main


def test_built_the_same_when_the_module_utils_are_imported_from_bytecode_in_a_zip(tmp_path):
    """Inside a module's payload the module_utils may come from a .pyc beside each source (the payload
    the collection keeps between runs has them): the command is built from the sources all the same."""
    payload = str(tmp_path / 'payload.zip')
    with zipfile.ZipFile(payload, 'w') as archive:
        for package in ('ansible_collections/', 'ansible_collections/redbutton/', 'ansible_collections/redbutton/deploy/',
                        'ansible_collections/redbutton/deploy/plugins/', PREFIX):
            archive.writestr(package + '__init__.py', b'')
        for path in sorted(glob.glob(os.path.join(REPO, 'plugins', 'module_utils', '*.py'))):
            with open(path, 'rb') as handle:
                source = handle.read()
            name = PREFIX + os.path.basename(path)
            archive.writestr(name, source)
            archive.writestr(name + 'c', importlib.util.MAGIC_NUMBER + b'\x03\x00\x00\x00' + importlib.util.source_hash(source)
                             + marshal.dumps(compile(source, name, 'exec', dont_inherit=True)))
    code = ('import sys, hashlib; sys.path.insert(0, sys.argv[1]); '
            'from ansible_collections.redbutton.deploy.plugins.module_utils import _button; '
            'assert _button.__spec__.origin.endswith(".pyc"), _button.__spec__.origin; '
            'print(hashlib.sha256(_button.build_zipapp()).hexdigest())')
    built = subprocess.run([sys.executable, '-c', code, payload], capture_output=True, text=True, check=True).stdout.strip()
    assert built == hashlib.sha256(_button.build_zipapp()).hexdigest()


def test_install_writes_once_then_changes_nothing(tmp_path):
    root = str(tmp_path / 'root')
    first = _button.install_button(root)
    path = os.path.join(root, '.redbutton', 'bin', 'redbutton')
    assert first['changed'] is True and first['path'] == path and first['version'] == _button.COLLECTION_VERSION
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o755
    with open(path, 'rb') as handle:
        assert first['checksum'] == 'sha256:' + __import__('hashlib').sha256(handle.read()).hexdigest()
    inode = os.stat(path).st_ino
    second = _button.install_button(root)
    assert second['changed'] is False and second['checksum'] == first['checksum']
    assert os.stat(path).st_ino == inode, 'an unchanged command was rewritten'
    assert os.listdir(os.path.dirname(path)) == ['redbutton'], 'a temporary file was left behind'


def test_install_replaces_an_older_command_atomically(tmp_path):
    root = str(tmp_path / 'root')
    path = _button.button_path(root)
    os.makedirs(os.path.dirname(path))
    with open(path, 'wb') as handle:
        handle.write(b'#!/bin/sh\necho an older collection\n')
    os.chmod(path, 0o700)
    # Check mode says it would change and touches nothing.
    assert _button.install_button(root, check_mode=True)['changed'] is True
    with open(path, 'rb') as handle:
        assert handle.read() == b'#!/bin/sh\necho an older collection\n'
    old_inode = os.stat(path).st_ino
    assert _button.install_button(root)['changed'] is True
    with open(path, 'rb') as handle:
        assert handle.read() == _button.build_zipapp()
    assert os.stat(path).st_ino != old_inode, 'replaced in place instead of by rename'
    # Only the mode drifted: put back.
    os.chmod(path, 0o700)
    assert _button.install_button(root)['changed'] is True
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o755


def test_bytecode_of_another_python_is_rebuilt(tmp_path):
    root = str(tmp_path / 'root')
    path = _button.install_button(root)['path']
    with open(path, 'rb') as handle:
        content = handle.read()
    buffer = io.BytesIO()
    buffer.write(_button.SHEBANG)
    with zipfile.ZipFile(io.BytesIO(content)) as old, zipfile.ZipFile(buffer, 'w') as new:
        for info in old.infolist():
            data = old.read(info)
            new.writestr(info, b'\x00\x00\r\n' + data[4:] if info.filename.endswith('.pyc') else data)
    with open(path, 'wb') as handle:
        handle.write(buffer.getvalue())
    assert _button.is_current(buffer.getvalue()) is False
    assert _button.install_button(root)['changed'] is True
    with open(path, 'rb') as handle:
        assert _button.is_current(handle.read()) is True


def test_check_mode_on_a_fresh_root_creates_nothing(tmp_path):
    root = str(tmp_path / 'root')
    result = _button.install_button(root, check_mode=True)
    assert result['changed'] is True
    assert not os.path.exists(root)


@pytest.mark.parametrize('interpreter', ['system', 'python3.8'])
def test_the_command_runs_without_ansible_on_a_prepared_root(tmp_path, interpreter):
    if interpreter == 'system':
        python = python_without_ansible()
        if python is None:
            pytest.skip('no python3 outside the virtualenv without Ansible on this machine')
    else:
        python = python38()
        if python is None:
            pytest.skip('no Python 3.8 on this machine')
    root = str(tmp_path / 'srv' / 'app')
    release(root, 'v1', str(tmp_path / 'src'))
    release(root, 'v2', str(tmp_path / 'src'))
    command = _button.install_button(root)['path']
    proc = subprocess.run([python, '-I', command, 'status'], capture_output=True, text=True, check=False,
                          env={'PATH': '/usr/bin:/bin'})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ['RELEASE', 'STATUS', 'NOTE']
    assert lines[1].split() == ['v1', 'ok', 'previous', '(rollback', 'target)']
    assert lines[2].split() == ['v2', 'ok', 'current']
    assert re.match(r'^last switch: v1 -> v2 \(None\) at \S+ by alice$', lines[3])
    assert lines[-1] == 'lock: free'
    proc = subprocess.run([python, '-I', command, 'status', '--json'], capture_output=True, text=True, check=False,
                          env={'PATH': '/usr/bin:/bin'})
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    assert (document['root'], document['current'], document['previous']) == (root, 'v2', 'v1')
    assert [item['status'] for item in document['releases']] == ['ok', 'ok']


def test_the_command_finds_its_root_through_a_symlink(tmp_path):
    python = python_without_ansible()
    if python is None:
        pytest.skip('no python3 outside the virtualenv without Ansible on this machine')
    root = str(tmp_path / 'app')
    release(root, 'v1', str(tmp_path / 'src'))
    command = _button.install_button(root)['path']
    link = str(tmp_path / 'redbutton-app')
    os.symlink(command, link)
    proc = subprocess.run([link, 'status', '--json'], capture_output=True, text=True, check=False,
                          env={'PATH': os.path.dirname(python) + ':/usr/bin:/bin'})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)['current'] == 'v1'
