# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Waves and gates (_fleet): each bad wave or gate setting named with what to give instead, the
json_path selector, a metric gate's measured value against its threshold (from a command, from a
Prometheus-style JSON API), where a host stood before a run, and the per-host table."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import threading

import pytest

from http.server import BaseHTTPRequestHandler, HTTPServer

from ansible_collections.redbutton.deploy.plugins.module_utils._common import RedbuttonError
from ansible_collections.redbutton.deploy.plugins.module_utils._fleet import (
    Gate,
    before_run,
    fleet_report,
    gate_problems,
    parse_path,
    select,
    serial_of,
    to_number,
    wave_problems,
)
from ansible_collections.redbutton.deploy.plugins.module_utils._hosts import LocalHost

PROMETHEUS = {'status': 'success', 'data': {'resultType': 'vector',
                                            'result': [{'metric': {}, 'value': [1764490000.5, '0.2']}]}}


@pytest.mark.parametrize('waves', [[1], [1, '25%', '100%'], ['2', ' 50% '], [3, '12.5%'], ['100%']])
def test_good_waves(waves):
    assert wave_problems(waves) == []


@pytest.mark.parametrize('waves, text', [
    ([0], 'redbutton_waves item 0 is not valid: give a number of hosts greater than 0 or a percentage from 1% to 100%.'),
    ([1, '150%'], 'redbutton_waves item "150%" is not valid'),
    (['0%'], 'redbutton_waves item "0%" is not valid'),
    ([-1], 'redbutton_waves item -1 is not valid'),
    ([True], 'redbutton_waves item true is not valid'),
    ([1.5], 'redbutton_waves item 1.5 is not valid'),
    (['half'], 'redbutton_waves item "half" is not valid'),
    ([], 'redbutton_waves [] is not valid: give a list of wave sizes, for example [1, "25%", "100%"].'),
    ('1,2', 'redbutton_waves "1,2" is not valid: give a list of wave sizes'),
    ({'a': 1}, 'redbutton_waves {"a": 1} is not valid'),
])
def test_bad_waves_are_named(waves, text):
    problems = wave_problems(waves)
    assert len(problems) == 1 and problems[0].startswith(text), problems


def test_serial_is_the_older_name_of_a_one_size_wave_list():
    assert wave_problems(None, 1) == [] and wave_problems(None, '25%') == []
    assert wave_problems(None, 0) == ['redbutton_serial item 0 is not valid: give a number of hosts greater than 0 or a '
                                      'percentage from 1% to 100%.']
    assert wave_problems([1], 2)[0].startswith('redbutton_waves and redbutton_serial are both set: give only redbutton_waves')
    assert serial_of([1, '50%']) == [1, '50%'] and serial_of(None, 2) == 2 and serial_of() == ['100%']


GOOD_GATES = [
    {'name': 'home', 'kind': 'http', 'url': 'http://shop/', 'status': [200, 301], 'retries': 2, 'delay': 1},
    {'name': 'smoke', 'kind': 'command', 'command': 'true', 'run_on': 'web1'},
    {'name': 'errors', 'kind': 'metric', 'url': 'http://prom/api/v1/query?query=x', 'json_path': 'data.result.0.value.1',
     'max': 0.01},
    {'name': 'apdex', 'kind': 'metric', 'command': 'echo 0.97', 'min': 0.9, 'max': 1},
]


def test_good_gates():
    assert gate_problems(GOOD_GATES, 30, ['web1', 'web2']) == []
    assert gate_problems(None) == [] and gate_problems([]) == []


@pytest.mark.parametrize('gate, text', [
    ({'name': 'errors', 'kind': 'metric', 'command': 'echo 1'},
     'redbutton_gates item 1 (errors): a metric gate needs a threshold: max (the gate fails above it) and/or min'),
    ({'name': 'errors', 'kind': 'prometheus', 'url': 'http://prom/'},
     'redbutton_gates item 1 (errors): kind "prometheus" is not valid: give http, command or metric.'),
    ({'name': 'smoke', 'kind': 'command', 'command': 'true', 'run_on': 'web9'},
     'redbutton_gates item 1 (smoke): run_on "web9" is not a host of the inventory: give controller or one of the inventory hosts.'),
    ({'name': 'smoke', 'kind': 'command', 'command': 'true', True: 'web1'},
     'redbutton_gates item 1 (smoke): write run_on: controller or run_on: <inventory host> (YAML reads a bare on: as true).'),
    ({'name': 'errors', 'kind': 'metric', 'command': 'echo 1', 'threshold': 0.1},
     'redbutton_gates item 1 (errors): threshold is not a gate key: give max'),
    ({'name': 'errors', 'kind': 'metric', 'command': 'echo 1', 'url': 'http://x/', 'max': 1},
     'redbutton_gates item 1 (errors): a metric gate needs exactly one of url'),
    ({'name': 'errors', 'kind': 'metric', 'command': 'echo 1', 'max': 'low'},
     'redbutton_gates item 1 (errors): max "low" is not a number.'),
    # "nan" passed every comparison (the gate could never fail), "inf" every maximum.
    ({'name': 'errors', 'kind': 'metric', 'command': 'echo 999', 'max': 'nan'},
     'redbutton_gates item 1 (errors): max "nan" is not a number.'),
    ({'name': 'errors', 'kind': 'metric', 'command': 'echo 999', 'min': '-inf'},
     'redbutton_gates item 1 (errors): min "-inf" is not a number.'),
    ({'name': 'home', 'kind': 'http'}, 'redbutton_gates item 1 (home): an http gate needs url.'),
    ({'name': 'home', 'kind': 'http', 'url': 'http://x/', 'max': 1},
     'redbutton_gates item 1 (home): max is not valid for a http gate: the keys are name, kind, run_on'),
    ({'kind': 'command', 'command': 'true'}, 'redbutton_gates item 1: name is missing'),
    ({'name': 'x', 'kind': 'command', 'command': 'true', 'retries': -1},
     'redbutton_gates item 1 (x): retries -1 is not valid: give a whole number, 0 or more.'),
    ({'name': 'x', 'kind': 'metric', 'command': 'true', 'max': 1, 'json_path': 'a..b'},
     'redbutton_gates item 1 (x): json_path "a..b" is not valid'),
    ('errors', 'redbutton_gates item 1 ("errors") is not valid: give a mapping'),
])
def test_bad_gates_are_named(gate, text):
    problems = gate_problems([gate], 0, ['web1'])
    assert problems and problems[0].startswith(text), problems


def test_bad_gate_list_pause_and_duplicate_names():
    assert gate_problems({'name': 'x'})[0].startswith('redbutton_gates {"name": "x"} is not valid: give a list of gates')
    assert gate_problems([], -5)[0].startswith('redbutton_gate_pause -5 is not valid')
    assert gate_problems([], 'soon')[0].startswith('redbutton_gate_pause "soon" is not valid')
    gate = {'name': 'x', 'kind': 'command', 'command': 'true'}
    assert gate_problems([gate, dict(gate)]) == ['redbutton_gates item 2 (x): name x is used twice: give each gate its own name.']


def test_json_path():
    assert parse_path('data.result.0.value.1') == ['data', 'result', 0, 'value', 1]
    assert parse_path('$.data.result[0].value[1]') == ['data', 'result', 0, 'value', 1]
    assert parse_path('') == [] and parse_path('$') == []
    assert select(PROMETHEUS, 'data.result.0.value.1') == '0.2'
    assert select([5], '') == [5]
    with pytest.raises(RedbuttonError, match=r'json_path data.result.1.value: data.result has 1 item, no item 1'):
        select(PROMETHEUS, 'data.result.1.value')
    with pytest.raises(RedbuttonError, match=r'json_path data.rows: data has no rows'):
        select(PROMETHEUS, 'data.rows')


def test_to_number():
    assert to_number('0.25', 'x') == 0.25 and to_number(3, 'x') == 3.0 and to_number(' 7\n', 'x') == 7.0
    for bad in ('NaN', 'abc', True, None, [1], '+Inf'):
        with pytest.raises(RedbuttonError, match='not a number'):
            to_number(bad, 'the value')


def command_gate(**gate):
    gate.setdefault('name', 'g')
    gate.setdefault('kind', 'metric')
    return Gate(gate, LocalHost(), sleep=lambda seconds: None).run()


def test_metric_from_a_command_against_max_and_min():
    result = command_gate(command='echo 0.2', max=0.05)
    assert result['passed'] is False and result['value'] == 0.2 and result['threshold'] == 'max 0.05'
    assert result['msg'] == 'gate g failed: 0.2 > max 0.05 (echo 0.2)'
    result = command_gate(command='echo 0.97', min=0.9, max=1)
    assert result['passed'] is True and result['msg'] == 'gate g passed: 0.97 <= max 1, 0.97 >= min 0.9 (echo 0.97)'
    result = command_gate(command='echo 0.5', min=0.9)
    assert result['passed'] is False and result['msg'] == 'gate g failed: 0.5 < min 0.9 (echo 0.5)'
    result = command_gate(command="echo '{\"rate\": [1, \"0.01\"]}'", json_path='rate[1]', max=0.05)
    assert result['passed'] is True and result['value'] == 0.01


def test_metric_problems_are_failures_with_the_reason():
    assert command_gate(command='echo hello', max=1)['msg'] == 'gate g failed: what echo hello gave is "hello\\n", not a number'
    assert command_gate(command='exit 3', max=1)['msg'].startswith('gate g failed: exit 3 exited 3')
    assert command_gate(command='echo [1]', json_path='a', max=1)['msg'] == 'gate g failed: json_path a: the document has no a'


def test_retries_until_a_pass_and_says_the_attempt(tmp_path):
    counter = tmp_path / 'n'
    counter.write_text('0')
    # Prints 3, 2, 1, 0 on successive calls: passes (max 1) at the third attempt.
    script = 'n=$(cat %s); echo $((n+1)) > %s; echo $((3-n))' % (counter, counter)
    result = command_gate(command=script, max=1, retries=5, delay=0)
    assert result['passed'] and result['attempts'] == 3 and result['msg'].endswith('(attempt 3 of 6)')
    counter.write_text('0')
    result = command_gate(command=script, max=-5, retries=1, delay=0)
    assert not result['passed'] and result['attempts'] == 2


def test_http_and_command_gates_reuse_the_health_checks():
    result = command_gate(kind='command', command='false')
    assert result['passed'] is False and result['msg'].startswith('gate g failed: rc 1')
    assert command_gate(kind='command', command='true')['passed'] is True
    result = command_gate(kind='http', url='http://127.0.0.1:9/', timeout=1)
    assert result['passed'] is False and 'answered nothing' in result['msg']


class _Prometheus(BaseHTTPRequestHandler):
    body = json.dumps(PROMETHEUS).encode()

    def do_GET(self):  # noqa: N802 (the standard library's name)
        self.send_response(200 if self.path.startswith('/api/v1/query') else 404)
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


def test_metric_from_a_prometheus_query_api():
    server = HTTPServer(('127.0.0.1', 0), _Prometheus)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = 'http://127.0.0.1:%d/api/v1/query?query=error_rate' % server.server_port
        result = command_gate(url=url, json_path='data.result.0.value.1', max=0.05)
        assert result['passed'] is False and result['value'] == 0.2
        assert result['msg'] == 'gate g failed: 0.2 > max 0.05 (%s)' % url
        assert command_gate(url=url, json_path='data.result.0.value.1', max=0.5)['passed'] is True
        missing = command_gate(url=url.replace('/api/v1/query', '/nothing'), max=1)
        assert missing['passed'] is False and 'answered 404' in missing['msg']
    finally:
        server.shutdown()
        server.server_close()


def test_before_run_reads_the_first_switch_of_the_run():
    events = [
        {'event': 'activated', 'release': 'v1', 'from': None, 'run_id': 'r0'},
        {'event': 'staged', 'release': 'v2', 'run_id': 'r1'},
        {'event': 'activated', 'release': 'v2', 'from': 'v1', 'run_id': 'r1'},
        {'event': 'activated', 'release': 'v1', 'from': 'v2', 'run_id': 'r1'},
        {'event': 'activated', 'release': 'v2', 'from': 'v1', 'run_id': 'r1'},
    ]
    assert before_run(events, 'r1', 'v2') == {'moved': True, 'before': 'v1', 'now': 'v2'}
    assert before_run(events, 'r0', 'v2') == {'moved': True, 'before': None, 'now': 'v2'}
    assert before_run(events, 'r9', 'v2') == {'moved': False, 'before': 'v2', 'now': 'v2'}
    assert before_run(events[:2], 'r1', 'v1') == {'moved': False, 'before': 'v1', 'now': 'v1'}, 'staging alone is not a move'
    assert before_run(events, '', 'v2')['moved'] is False and before_run(None, 'r1')['moved'] is False


def test_the_table():
    lines = fleet_report({
        'web2': {'wave': 2, 'outcome': 'failed', 'msg': 'Rollout of v3 failed at verify.', 'moved': True, 'before': 'v1', 'now': 'v1'},
        'web1': {'wave': 1, 'outcome': 'done', 'msg': 'v3 serves.', 'moved': True, 'before': 'v1', 'now': 'v1',
                 'back': 'put back on v1 by the fleet-wide rollback'},
        'web3': {'wave': 3, 'outcome': 'skipped', 'before': 'v1', 'now': 'v1'},
        'web4': {'wave': 0, 'outcome': 'pending'},
    })
    assert lines == [
        'host  wave  before  now  what happened',
        'web1  1     v1      v1   passed: v3 serves.; put back on v1 by the fleet-wide rollback',
        'web2  2     v1      v1   failed: Rollout of v3 failed at verify.',
        'web3  3     v1      v1   not touched: an earlier wave failed',
        'web4  -     -       -    not reached',
    ]
    left = fleet_report({'web1': {'wave': 1, 'outcome': 'done', 'msg': 'ok.', 'moved': True, 'before': 'v1', 'now': 'v3'}},
                        fleet_rollback=False)
    assert left[1].endswith('passed: ok.; left on v3: redbutton_fleet_rollback is false')
    first = fleet_report({'web1': {'wave': 1, 'outcome': 'done', 'msg': 'ok.', 'moved': True, 'before': None, 'now': 'v1'}})
    assert first[1].endswith('; no release before this run to go back to: left on v1')
