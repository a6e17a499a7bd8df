# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every rollout writes the runbook of its release, with no module call of its own: on the host
(<root>/.redbutton/runbooks/<release>.md and .json) before the switch, and on the controller
(redbutton_runbook_dir, with its JSON twin) from the plan of the stage call. Check mode writes
nothing; a controller directory that cannot be written is a warning and the rollout goes on."""

import json
import os
import subprocess
import sys

from conftest import EXAMPLES

# Written by the engine just before its switch step (docs: DEVELOPERS.md, REDBUTTON_KILL_AT).
DEAD = 'REDBUTTON_KILL_AT'


def on_host(site, release, ext='md'):
    return os.path.join(site.root, '.redbutton', 'runbooks', '%s.%s' % (release, ext))


def test_a_rollout_writes_its_runbook_before_the_switch(site, tmp_path):
    books = tmp_path / 'books'
    where = ('-e', 'redbutton_runbook_dir=%s' % books)
    # A plain first rollout: the same engine calls as without the runbook, both copies written.
    first = site.rollout('v1', *where)
    assert first.engine_calls() == [('rollout', ['stage']), ('rollout', ['switch', 'restart', 'verify', 'finish'])], first
    site.assert_state('v1', {'v1': 'ok'})
    assert (books / 'sample-v1.md').read_text() == open(on_host(site, 'v1'), encoding='utf-8').read()
    assert 'Nothing to roll back to: `v1` is the first release' in (books / 'sample-v1.md').read_text()

    # Killed right before its switch step: the runbook of v2 is already on the host and on the controller.
    site.env[DEAD] = 'rollout:before:switch'
    try:
        killed = site.rollout('v2', *where, rc=None)
    finally:
        del site.env[DEAD]
    assert killed.rc != 0, killed
    assert site.current() == 'v1' and site.served() == 'v1'
    markdown = open(on_host(site, 'v2'), encoding='utf-8').read()
    facts = json.loads(open(on_host(site, 'v2', 'json'), encoding='utf-8').read())
    assert (books / 'sample-v2.md').read_text() == markdown
    assert json.loads((books / 'sample-v2.json').read_text()) == facts
    plan = facts['hosts']['localhost']
    # the real rollback command and the on-host one
    # The run's own -e values come first (its vars file by its absolute path, the app's port and Python), without the
    # values that named this run (its actor) or that the command sets itself (the release, the artifact, the root).
    rollback = plan['commands']['rollback']
    assert rollback == ('ansible-playbook -i %s redbutton.deploy.rollback -e @%s/sample-app.yml -e app_port=%d -e app_python=%s '
                        '-e redbutton_runbook_dir=%s -e redbutton_app=sample -e redbutton_rollback_to=v1 -e redbutton_root=%s '
                        '--limit localhost' % (site.inventory, EXAMPLES, site.port, sys.executable, books, site.root)), rollback
    assert rollback in markdown and '%s/.redbutton/bin/redbutton rollback' % site.root in markdown
    assert (plan['release_now'], plan['status_now'], plan['release'], plan['rollback_target']) == ('v1', 'ok', 'v2', 'v1')
    # the real checks and the baseline the stage step recorded (the same file the rollback compares with)
    assert plan['checks'] == [{'name': 'health endpoint', 'kind': 'http', 'target': 'http://127.0.0.1:%d/health' % site.port}]
    assert '**health endpoint** (http): `http://127.0.0.1:%d/health`' % site.port in markdown
    baseline = plan['baseline']
    assert baseline['name'] == 'before-v2' and os.path.exists(baseline['file'])
    recorded = json.loads(open(baseline['file'], encoding='utf-8').read())
    release_probe = [p for p in recorded['probes'] if p['name'] == 'release'][0]
    assert baseline['entries'] == len(release_probe['result']['files']) and baseline['shared_paths'] == ['data']
    # the lock this rollout holds is its own: not reported as held by someone else
    assert plan['lock'] is None and 'held now' not in markdown

    # The same rollout again finishes the interrupted one, in the same two calls. Its controller directory cannot be
    # written: a warning naming it, and the rollout goes on; the host's copy is written again (v2 is staged now).
    blocker = tmp_path / 'a-file'
    blocker.write_text('not a directory\n')
    again = site.rollout('v2', '-e', 'redbutton_runbook_dir=%s/books' % blocker)
    assert again.engine_calls() == [('rollout', ['stage']), ('rollout', ['switch', 'restart', 'verify', 'finish'])], again
    assert 'redbutton_runbook_dir %s/books cannot be written' % blocker in ' '.join(again.output.split()), again
    assert 'the rollout goes on' in again.output
    site.assert_state('v2', {'v1': 'ok', 'v2': 'ok'})
    again_facts = json.loads(open(on_host(site, 'v2', 'json'), encoding='utf-8').read())
    assert again_facts['generated_at'] != facts['generated_at']
    again_plan = again_facts['hosts']['localhost']
    assert again_plan['staged_already'] and not plan['staged_already']
    for key in ('commands', 'checks', 'baseline', 'rollback_target', 'release_now', 'failures'):
        # (the commands repeat each run's own -e values: this run named another runbook directory)
        assert again_plan[key] == json.loads(json.dumps(plan[key]).replace(str(books), '%s/books' % blocker)), key
    assert (books / 'sample-v2.md').read_text() == markdown  # the earlier controller copy is left as it was

    # The runbook's rollback command, run as it is written (from another directory, in a shell): v1 serves again, restarted
    # and checked with the app's own service and checks, not only switched.
    subprocess.run(['bash', '-c', plan['commands']['rollback']], cwd=str(tmp_path / 'books'), check=True, capture_output=True,
                   env=dict(site.env, PATH=os.path.dirname(sys.executable) + os.pathsep + site.env['PATH']))
    site.assert_state('v1', {'v1': 'ok', 'v2': 'rolled_back'})
    site.rollout('v2')

    # Check mode writes nothing, on the host or on the controller.
    dry = tmp_path / 'dry'
    checked = site.rollout('v3', '--check', '-e', 'redbutton_runbook_dir=%s' % dry)
    assert not os.path.exists(on_host(site, 'v3')) and not os.path.exists(str(dry)), checked
    site.assert_state('v2', {'v1': 'ok', 'v2': 'ok'})
