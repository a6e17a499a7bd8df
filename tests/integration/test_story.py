# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The demo's story as a test: rollout v1, rollout v2, rollback, rollout v2 again (reused),
rollout v3 (broken: automatic rollback), with the version served over HTTP, the `current`
symlink and the ledger checked after every step; plus idempotence, failures before the
switch, rehearse and status."""

import os


def test_story(site):
    site.rollout('v1')
    site.assert_state('v1', {'v1': 'ok'})

    rerun = site.rollout('v1')
    assert rerun.recap['changed'] == 0, rerun
    site.assert_state('v1', {'v1': 'ok'})

    site.rollout('v2')
    site.assert_state('v2', {'v1': 'ok', 'v2': 'ok'})
    v2 = os.path.join(site.root, 'releases', 'v2')
    v2_identity = (os.stat(v2).st_ino, os.stat(os.path.join(v2, 'VERSION')).st_ino)

    site.rollback()
    site.assert_state('v1', {'v1': 'ok', 'v2': 'rolled_back'})
    assert site.ledger()['last_switch']['reason'] == 'rollback'

    again = site.rollback()
    assert again.recap['changed'] == 0, again
    assert 'was already a rollback' in again.output
    site.assert_state('v1', {'v1': 'ok', 'v2': 'rolled_back'})

    reuse = site.rollout('v2')
    site.assert_state('v2', {'v1': 'ok', 'v2': 'ok'})
    assert (os.stat(v2).st_ino, os.stat(os.path.join(v2, 'VERSION')).st_ino) == v2_identity, 'v2 was extracted again'
    assert reuse.recap['changed'] > 0

    broken = site.rollout('v3', rc=2)
    site.assert_state('v2', {'v1': 'ok', 'v2': 'ok', 'v3': 'failed'})
    assert site.ledger()['last_switch'] == dict(site.ledger()['last_switch'], **{'from': 'v3', 'to': 'v2', 'reason': 'auto_rollback'})
    assert 'Rolled back automatically: v2 serves again' in broken.output
    assert 'v3 is marked failed' in broken.output

    # After an automatic rollback, the default rollback has nothing to undo: it only verifies.
    after = site.rollback()
    assert after.recap['changed'] == 0, after
    site.assert_state('v2', {'v1': 'ok', 'v2': 'ok', 'v3': 'failed'})

    # Shared data outlived every release: the hits of all versions are in one file.
    with open(os.path.join(site.root, 'shared', 'data', 'hits.txt'), encoding='utf-8') as handle:
        versions = set(line.split()[1] for line in handle)
    assert versions == {'v1', 'v2'}


def test_wrong_checksum_changes_nothing(site):
    site.rollout('v1')
    before = site.ledger_bytes()
    run = site.rollout('v2', '-e', 'redbutton_artifact_checksum=sha256:' + '0' * 64, rc=2)
    assert 'checksum mismatch' in run.output
    assert 'stopped before the switch' in run.output
    assert site.release_dirs() == ['v1']
    assert site.ledger_bytes() == before
    site.assert_state('v1', {'v1': 'ok'})


def test_failing_hook_before_switch_removes_only_the_new_release(site, tmp_path):
    hook = tmp_path / 'before_switch.yml'
    hook.write_text('- name: Refuse the switch\n  ansible.builtin.fail:\n    msg: change window closed\n')
    site.rollout('v1')
    run = site.rollout('v2', '-e', 'redbutton_before_switch=%s' % hook, rc=2)
    assert 'change window closed' in run.output
    assert 'the unfinished v2 was removed' in run.output
    assert site.release_dirs() == ['v1']
    site.assert_state('v1', {'v1': 'ok'})


def test_rollback_to_the_current_release_changes_nothing(site):
    site.rollout('v1')
    site.rollout('v2')
    run = site.rollback('-e', 'redbutton_rollback_to=v2')
    assert run.recap['changed'] == 0, run
    site.assert_state('v2', {'v1': 'ok', 'v2': 'ok'})
    named = site.rollback('-e', 'redbutton_rollback_to=v1')
    assert named.recap['changed'] > 0
    site.assert_state('v1', {'v1': 'ok', 'v2': 'rolled_back'})


def test_rehearse(site):
    site.rollout('v1')
    path, _checksum = site.artifacts['v2']
    run = site.playbook('redbutton.deploy.rehearse', '-e', 'redbutton_release=v2', '-e', 'redbutton_artifact=%s' % path)
    assert 'Rehearsal passed on localhost: rolled out v2 (extracted)' in run.output
    assert 'rolled back to v1, verified; rolled out v2 again (reused the staged release), verified' in run.output
    site.assert_state('v2', {'v1': 'ok', 'v2': 'ok'})
    reasons = [(e['event'], e['release'], e.get('reason')) for e in site.ledger()['events'] if e['event'] == 'activated']
    assert reasons == [('activated', 'v1', 'rollout'), ('activated', 'v2', 'rollout'),
                       ('activated', 'v1', 'rollback'), ('activated', 'v2', 'rollout')]


def test_rehearse_fails_when_a_step_fails(site):
    site.rollout('v1')
    path, _checksum = site.artifacts['v3']
    run = site.playbook('redbutton.deploy.rehearse', '-e', 'redbutton_release=v3', '-e', 'redbutton_artifact=%s' % path, rc=2)
    assert 'Rehearsal passed' not in run.output
    site.assert_state('v1', {'v1': 'ok', 'v3': 'failed'})


def test_status_prints_the_table(site):
    site.rollout('v1')
    site.rollout('v2')
    run = site.playbook('redbutton.deploy.status')
    assert run.recap['changed'] == 0
    assert '"RELEASE   STATUS       NOTE"' in run.output
    assert '"v1        ok           previous (rollback target)"' in run.output
    assert '"v2        ok           current"' in run.output
    assert 'last switch: v1 -> v2 (rollout)' in run.output
    assert 'activated v2 (from v1), rollout by pytest' in run.output
    assert '"lock: free"' in run.output


def test_status_of_a_host_without_releases(site):
    run = site.playbook('redbutton.deploy.status')
    assert '"no releases under %s"' % site.root in run.output


def test_verify_playbook(site):
    site.rollout('v1')
    ok = site.playbook('redbutton.deploy.verify', '-e', 'redbutton_release=v1')
    assert ok.recap['changed'] == 0
    wrong = site.playbook('redbutton.deploy.verify', '-e', 'redbutton_release=v2', rc=2)
    assert 'says current is v1' in wrong.output
