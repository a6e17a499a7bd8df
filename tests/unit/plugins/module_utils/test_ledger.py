# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ledger (_ledger): schema checks, atomic writes, bounded events, rollback target."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

import pytest

from ansible_collections.redbutton.deploy.plugins.module_utils._common import RedbuttonError
from ansible_collections.redbutton.deploy.plugins.module_utils._ledger import MAX_EVENTS, Ledger, ledger_path


def write_ledger(root, data):
    path = ledger_path(str(root))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    with open(path, 'wb') as handle:
        handle.write(raw)
    return path


def test_missing_ledger_is_empty_and_not_written_until_saved(tmp_path):
    ledger = Ledger(str(tmp_path)).load()
    assert not ledger.exists
    assert ledger.releases == {} and ledger.current is None and ledger.data['events'] == []
    assert not ledger.save()
    assert not os.path.exists(ledger_path(str(tmp_path)))


def test_save_writes_schema_1_atomically_without_temp_leftovers(tmp_path):
    ledger = Ledger(str(tmp_path)).load()
    ledger.add('v1', 'sha256:' + 'a' * 64, '/tmp/v1.tgz', actor='alice')
    assert ledger.save()
    path = ledger_path(str(tmp_path))
    data = json.load(open(path))
    assert data['schema'] == 1 and data['releases']['v1']['status'] == 'staged'
    assert data['releases']['v1']['by'] == 'alice'
    assert os.listdir(os.path.dirname(path)) == ['ledger.json']
    again = Ledger(str(tmp_path)).load()
    assert again.get('v1')['checksum'] == 'sha256:' + 'a' * 64


@pytest.mark.parametrize('content, message', [
    (b'{"schema": 1, "releases": {', 'is corrupt'),
    (b'[1, 2, 3]', 'does not hold a JSON object'),
    (json.dumps({'schema': 2, 'seq': 0, 'releases': {}, 'events': []}).encode(), 'has schema 2'),
    (json.dumps({'seq': 0, 'releases': {}, 'events': []}).encode(), 'has schema None'),
    (json.dumps({'schema': 1, 'seq': 0, 'releases': [], 'events': []}).encode(), 'is malformed'),
])
def test_bad_ledger_is_an_error_and_left_untouched(tmp_path, content, message):
    path = write_ledger(tmp_path, content)
    with pytest.raises(RedbuttonError, match=message) as caught:
        Ledger(str(tmp_path)).load()
    assert path in str(caught.value) and 'left untouched' in str(caught.value)
    assert open(path, 'rb').read() == content


def test_events_are_bounded_oldest_dropped(tmp_path):
    ledger = Ledger(str(tmp_path)).load()
    ledger.add('v1', 'sha256:' + 'a' * 64, None)
    for number in range(MAX_EVENTS + 20):
        ledger.set_status('v1', 'ok' if number % 2 == 0 else 'failed')
    events = ledger.data['events']
    assert len(events) == MAX_EVENTS
    assert events[-1]['seq'] == ledger.data['seq'] == MAX_EVENTS + 21
    assert events[0]['seq'] == ledger.data['seq'] - MAX_EVENTS + 1
    assert [event['seq'] for event in events] == sorted(event['seq'] for event in events)


def test_activate_records_seq_last_switch_and_event(tmp_path):
    ledger = Ledger(str(tmp_path), now=lambda: '2026-01-01T00:00:00Z').load()
    ledger.add('v1', 'sha256:' + 'a' * 64, None)
    ledger.add('v2', 'sha256:' + 'b' * 64, None)
    ledger.activate('v1', None, actor='bob', reason='rollout')
    ledger.activate('v2', 'v1', actor='bob', reason='rollout')
    assert ledger.current == 'v2'
    assert ledger.get('v2')['status'] == 'active'
    assert ledger.get('v2')['activated_seq'] > ledger.get('v1')['activated_seq']
    assert ledger.data['last_switch'] == {'from': 'v1', 'to': 'v2', 'reason': 'rollout', 'time': '2026-01-01T00:00:00Z', 'by': 'bob'}
    last = ledger.data['events'][-1]
    assert (last['event'], last['release'], last['from'], last['by']) == ('activated', 'v2', 'v1', 'bob')


def test_previous_is_by_activation_order_not_name(tmp_path):
    ledger = Ledger(str(tmp_path)).load()
    for name in ('a', 'b', 'c', 'd'):
        ledger.add(name, 'sha256:' + 'a' * 64, None)
    for name in ('a', 'd', 'b', 'c'):
        ledger.activate(name, ledger.current)
    assert ledger.previous('c') == 'b'
    ledger.set_status('b', 'rolled_back')
    assert ledger.previous('c') == 'd'
    ledger.set_status('d', 'failed')
    assert ledger.previous('c') == 'a'
    assert ledger.previous('c', present=lambda rid: rid != 'a') is None


def test_never_activated_release_is_not_previous(tmp_path):
    ledger = Ledger(str(tmp_path)).load()
    ledger.add('v1', 'sha256:' + 'a' * 64, None)
    ledger.add('v2', 'sha256:' + 'b' * 64, None)
    ledger.activate('v2', None)
    assert ledger.previous('v2') is None


def test_status_of_unknown_release_is_an_error_naming_it(tmp_path):
    ledger = Ledger(str(tmp_path)).load()
    with pytest.raises(RedbuttonError, match='release v9 is not in the ledger'):
        ledger.set_status('v9', 'ok')


def test_remove_drops_entry_and_records_event(tmp_path):
    ledger = Ledger(str(tmp_path)).load()
    ledger.add('v1', 'sha256:' + 'a' * 64, None)
    ledger.remove('v1', event='pruned')
    assert ledger.get('v1') is None
    assert ledger.data['events'][-1]['event'] == 'pruned'


def test_restage_keeps_activation_history(tmp_path):
    ledger = Ledger(str(tmp_path)).load()
    ledger.add('v1', 'sha256:' + 'a' * 64, None, metadata={'schema_version': 1})
    ledger.activate('v1', None)
    seq = ledger.get('v1')['activated_seq']
    ledger.add('v1', 'sha256:' + 'b' * 64, None)
    assert ledger.get('v1')['activated_seq'] == seq
    assert ledger.get('v1')['metadata'] == {'schema_version': 1}
    assert ledger.data['events'][-1]['event'] == 'restaged'
