# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A fleet in waves on localhost (several application roots and apps, one inventory): a second wave
that fails puts the first wave's hosts back too (the fleet-wide rollback, by the run id on the
ledgers), a gate that fails does the same, redbutton_fleet_rollback: false leaves the canary and says
so, a passing gate, a rollback wave by wave, and each bad wave or gate setting refused before any
host changes."""

import json
import os
import re
import sys

import pytest

from conftest import EXAMPLES, Fleet

sys.path.insert(0, EXAMPLES)
import build_releases  # noqa: E402  (examples/ is not a package)


@pytest.fixture
def fleet3(tmp_path, artifacts):
    """web1, web2, web3 with v1 rolled out; v4 built beside v1-v3 (a good release, like v2)."""
    fleet = Fleet(tmp_path, artifacts, names=('web1', 'web2', 'web3'))
    fleet.artifacts = dict(artifacts)
    fleet.artifacts['v4'] = build_releases.build_release(str(tmp_path), 'v4')
    yield fleet
    fleet.stop()


def rollout(fleet, version, *extra, rc=0):
    path, dummy = fleet.artifacts[version]
    return fleet.playbook('redbutton.deploy.rollout', '-e', 'redbutton_release=%s' % version,
                          '-e', 'redbutton_artifact=%s' % path, *extra, rc=rc)


def run_events(site, run_id):
    return [(e['event'], e['release'], e.get('reason'), e.get('from')) for e in site.ledger()['events'] if e.get('run_id') == run_id]


def table(run):
    """The per-host table's rows as {host: line}, from the debug output of the last play."""
    rows = re.findall(r'^\s+"(web\d)\s+(\d|-)\s+(\S+)\s+(\S+)\s+(.*)",?$', run.output, re.M)
    return dict((host, (wave, before, now, what)) for host, wave, before, now, what in rows)


def test_second_wave_fails_and_the_whole_run_goes_back(fleet3):
    web1, web2, web3 = (fleet3.sites[name] for name in ('web1', 'web2', 'web3'))
    rollout(fleet3, 'v1')
    for site in (web1, web2, web3):
        site.assert_state('v1', {'v1': 'ok'})
    web3_ledger = web3.ledger_bytes()

    # v3 is broken: web1 (canary, port check only) passes wave 1, web2 fails wave 2 and rolls itself
    # back; then the fleet-wide rollback puts web1 back. web3 is not part of the run.
    run = rollout(fleet3, 'v3', '-e', '{"redbutton_waves": [1, 1]}', '-e', 'redbutton_hosts=web1:web2', rc=2)
    web1.assert_state('v1', {'v1': 'ok', 'v3': 'rolled_back'})
    web2.assert_state('v1', {'v1': 'ok', 'v3': 'failed'})
    assert web3.ledger_bytes() == web3_ledger and web3.served() == 'v1', 'a host outside the run was touched'
    run_id = web1.ledger()['last_transition']['run_id']
    assert run_id and web2.ledger()['last_transition']['run_id'] == run_id
    assert [e for e in run_events(web1, run_id) if e[0] == 'activated'] == [
        ('activated', 'v3', 'rollout', 'v1'), ('activated', 'v1', 'rollback', 'v3')], run_events(web1, run_id)
    assert [e for e in run_events(web2, run_id) if e[0] == 'activated'] == [
        ('activated', 'v3', 'rollout', 'v1'), ('activated', 'v1', 'auto_rollback', 'v3')], run_events(web2, run_id)
    rows = table(run)
    assert rows['web1'][:3] == ('1', 'v1', 'v1') and 'put back on v1 by the fleet-wide rollback' in rows['web1'][3], run
    assert rows['web2'][:3] == ('2', 'v1', 'v1') and rows['web2'][3].startswith('failed: Rollout of v3 failed'), run
    assert 'web3' not in rows
    assert 'Wave 2 failed on web2' in run.output and 'put back web1 (v1)' in run.output, run
    assert run.recap.get('failed') is not None
    assert re.search(r'^web2\s+:.* failed=1 ', run.output, re.M) and re.search(r'^web1\s+:.* failed=0 ', run.output, re.M), run
