# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What each module loads when it starts, before it knows what the call needs.

Every module call pays for its imports, and AnsiballZ ships sources, so each imported file is
also compiled on every call. What only some calls use is imported where it is used (Ansible
ships such imports in the payload too: the integration tests run every one of them through a
playbook). These tests import each module in a fresh interpreter and fail when a module loads
something that only some of its calls need.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess
import sys

import pytest

from ansible_collections.redbutton.deploy.plugins.module_utils import _common

# The directory that holds ansible_collections/ (the one these tests import the collection from).
COLLECTIONS = os.path.abspath(os.path.join(os.path.dirname(_common.__file__), *(['..'] * 5)))
PACKAGE = 'ansible_collections.redbutton.deploy.plugins'
UTILS = PACKAGE + '.module_utils.'

PSYCOPG = ['psycopg']  # a third of a second: only PostgreSQL migrations and probes
BASELINE = [UTILS + '_baseline', UTILS + '_baseline_probes', UTILS + '_baseline_tree']
MIGRATE = [UTILS + '_migrate', UTILS + '_migrate_sql', UTILS + '_migrate_sqlite', UTILS + '_migrate_postgresql']
BUTTON = [UTILS + '_button', UTILS + '_cli']
HTTP = ['ansible.module_utils.urls', 'ssl', 'http.client']

# module: what importing it must not load
NOT_AT_START = {
    'transition': PSYCOPG + BASELINE + MIGRATE + BUTTON + HTTP + [UTILS + '_feature', UTILS + '_runbook', 'sqlite3', 'tarfile'],
    'release': PSYCOPG + BASELINE + MIGRATE + BUTTON + HTTP + [UTILS + '_feature', 'sqlite3', 'tarfile'],
    'release_info': PSYCOPG + BASELINE + MIGRATE + BUTTON + HTTP + ['sqlite3', 'tarfile'],
    'baseline': PSYCOPG + MIGRATE + BUTTON + HTTP + ['sqlite3'],
    'migrate': PSYCOPG + BASELINE + BUTTON + HTTP + [UTILS + '_migrate_postgresql', UTILS + '_migrate_sqlite', 'difflib'],
    'lock': PSYCOPG + BASELINE + MIGRATE + BUTTON + HTTP,
    'feature': PSYCOPG + BASELINE + MIGRATE + BUTTON + HTTP,
}

PROBE = """
import json, sys
import %s
print(json.dumps(sorted(sys.modules)))
"""


def loaded_by(module):
    env = dict(os.environ, PYTHONPATH=COLLECTIONS, PYTHONDONTWRITEBYTECODE='1')
    proc = subprocess.run([sys.executable, '-c', PROBE % module], env=env, cwd=COLLECTIONS, capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout))


@pytest.mark.parametrize('name', sorted(NOT_AT_START))
def test_a_module_loads_only_what_every_call_needs(name):
    loaded = loaded_by('%s.modules.%s' % (PACKAGE, name))
    assert '%s.modules.%s' % (PACKAGE, name) in loaded
    assert not sorted(m for m in NOT_AT_START[name] if m in loaded)


def test_the_on_host_command_loads_neither_psycopg_nor_the_baseline_before_it_needs_them():
    loaded = loaded_by(UTILS + '_cli')
    assert UTILS + '_cli' in loaded
    assert not sorted(m for m in PSYCOPG + BASELINE + MIGRATE + HTTP + [UTILS + '_transition'] if m in loaded)


def test_the_engine_looks_for_toggles_where_the_toggle_engine_reads_them(tmp_path):
    """The transition engine imports _feature only when one of these files exists: they must be
    the files _feature reads."""
    from ansible_collections.redbutton.deploy.plugins.module_utils import _feature, _transition
    assert _transition.TOGGLE_DECLARATION_FILES == _feature.DECLARATION_FILES
    root = str(tmp_path)
    assert _feature.state_path(root) == os.path.join(_common.state_dir(root), _transition.TOGGLE_STATE_FILE)
    assert not _transition._has_toggles(root)
    (tmp_path / 'features.yml').write_text('flag: true\n')
    assert _transition._has_toggles(root)
