# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The transition module's AnsiballZ payload, kept between runs (plugins/plugin_utils/_payload_cache.py):
the second run calls the engine from the payload the first one built (with the bytecode of every
file added, which the host's Python, the controller's here, imports), a damaged one is built again,
and REDBUTTON_PAYLOAD_CACHE=false keeps nothing. Every run still ends where it should."""

import base64
import hashlib
import io
import os
import pickle
import re
import shutil
import zipfile

PAYLOAD = 'ansible_collections.redbutton.deploy.plugins.modules.transition-'
FROM_CACHE = 'the payload of ansible_collections.redbutton.deploy.plugins.modules.transition comes from'


def payload_names(data):
    """The files in a kept payload: ansible-core 2.19 pickles its cache entry, earlier versions keep the base64 zip."""
    encoded = pickle.loads(data).zip_data if data[:1] == b'\x80' else data
    return zipfile.ZipFile(io.BytesIO(base64.b64decode(encoded))).namelist()


def kept_files(top):
    return [os.path.join(top, key, name) for key in sorted(os.listdir(top)) for name in sorted(os.listdir(os.path.join(top, key)))]


def test_the_payload_is_kept_used_rebuilt_when_damaged_and_off_when_asked(site, tmp_path):
    local_temp = tmp_path / 'local-temp'
    top = str(local_temp / 'redbutton-ansiballz')
    site.env['ANSIBLE_LOCAL_TEMP'] = str(local_temp)

    first = site.rollout('v1', '-vvv')
    assert FROM_CACHE not in first.output, first
    [kept] = kept_files(top)
    assert os.path.basename(kept).startswith(PAYLOAD)
    with open(kept, 'rb') as handle:
        digest, data = handle.read().split(b'\n', 1)
    assert digest == hashlib.sha256(data).hexdigest().encode()
    # ansible-core's payload, with the bytecode of each file for this Python beside it.
    names = payload_names(data)
    assert 'ansible_collections/redbutton/deploy/plugins/module_utils/_transition.py' in names
    assert sorted(name for name in names if name.endswith('.pyc')) == sorted(name + 'c' for name in names if name.endswith('.py'))

    second = site.rollout('v2', '-vvv')
    assert FROM_CACHE in second.output, second
    site.assert_state('v2', {'v1': 'ok', 'v2': 'ok'})
    assert kept_files(top) == [kept]

    with open(kept, 'r+b') as handle:
        handle.seek(-10, os.SEEK_END)
        handle.write(b'0123456789')
    back = site.rollback('-vvv')
    assert 'removing the damaged module payload' in back.output, back
    assert FROM_CACHE not in back.output, back
    site.assert_state('v1', {'v1': 'ok', 'v2': 'rolled_back'})
    # Built again (its zip dates are this run's) and kept whole.
    with open(kept, 'rb') as handle:
        digest, data = handle.read().split(b'\n', 1)
    assert digest == hashlib.sha256(data).hexdigest().encode()

    shutil.rmtree(top)
    site.env['REDBUTTON_PAYLOAD_CACHE'] = 'false'
    site.rollout('v2')
    site.assert_state('v2', {'v1': 'ok', 'v2': 'ok'})
    assert not os.path.exists(top)


def test_the_other_modules_keep_theirs_too(site, tmp_path):
    """The status playbook (redbutton.deploy.release_info, through KeptAction): kept by the first run, used by the next."""
    site.env['ANSIBLE_LOCAL_TEMP'] = str(tmp_path / 'local-temp')
    site.rollout('v1')
    first = site.playbook('redbutton.deploy.status', '-vvv')
    assert 'plugins.modules.release_info comes from' not in first.output, first
    second = site.playbook('redbutton.deploy.status', '-vvv')
    assert 'the payload of ansible_collections.redbutton.deploy.plugins.modules.release_info comes from' in second.output, second
    # What the module read from the ledger: v1 is the current release, ok.
    assert re.search(r'v1\s+ok\s+current', second.output), second
