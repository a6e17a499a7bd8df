# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Behaviour of the roles beyond the demo's story: settings that are refused before
anything changes, redbutton_auto_rollback false, a first release that fails, TCP and
command health checks, the lock held by someone else, and the direct path (nothing to
restart or check)."""

import json
import os
import sys

from conftest import content_id


def test_incoherent_service_is_refused_before_anything_changes(site):
    extra = site.vars_file('service', {'redbutton_service': {'manager': 'command', 'start_command': 'true'}})
    run = site.rollout('v1', *extra, rc=2)
    assert 'redbutton_service' in run.output and 'stop_command' in run.output
    assert not os.path.exists(site.root)


def test_health_check_without_a_kind_is_refused(site):
    extra = site.vars_file('checks', {'redbutton_health_checks': [{'name': 'nothing to check'}]})
    site.rollout('v1', *extra, rc=2)
    assert site.current() is None


def test_auto_rollback_off_leaves_the_failed_release_current(site):
    site.rollout('v1')
    run = site.rollout('v3', '-e', 'redbutton_auto_rollback=false', rc=2)
    assert 'v3 stays current and is marked failed' in run.output
    assert site.current() == 'v3'
    assert site.statuses() == {'v1': 'ok', 'v3': 'failed'}
    assert not site.locked()
    # The operator's way out: the rollback goes to the previous good release (and, like any
    # release a rollback undoes, v3 is now marked rolled_back; its events keep the failure).
    site.rollback()
    site.assert_state('v1', {'v1': 'ok', 'v3': 'rolled_back'})
    statuses = [e.get('status') for e in site.ledger()['events'] if e['release'] == 'v3']
    assert 'failed' in statuses


def test_first_release_failing_has_nothing_to_return_to(site):
    run = site.rollout('v3', rc=2)
    assert 'There is no earlier release to go back to' in run.output
    assert site.current() == 'v3'
    assert site.statuses() == {'v3': 'failed'}
    assert not site.locked()


def test_tcp_and_command_checks(site):
    checks = [
        {'name': 'port open', 'port': site.port, 'retries': 5, 'delay': 1},
        {'name': 'release is v1', 'command': 'cat VERSION', 'stdout_regex': '^v1$', 'retries': 1, 'delay': 1},
    ]
    site.rollout('v1', *site.vars_file('checks', {'redbutton_health_checks': checks}))
    site.assert_state('v1', {'v1': 'ok'})
    # The same command check fails on v2 (it prints v2): the rollout goes back to v1.
    run = site.rollout('v2', *site.vars_file('checks', {'redbutton_health_checks': checks}), rc=2)
    assert 'release is v1 (rc 0:' in run.output
    site.assert_state('v1', {'v1': 'ok', 'v2': 'failed'})


def test_lock_held_by_someone_else_stops_the_rollout(site):
    site.rollout('v1')
    lock = os.path.join(site.root, '.redbutton', 'lock')
    holder = {'owner': 'alice', 'host': 'elsewhere', 'pid': 1, 'acquired_at': '2026-01-01T00:00:00Z',
              'ttl': 999999999, 'expires_at': '2999-01-01T00:00:00Z'}
    with open(lock, 'w', encoding='utf-8') as handle:
        json.dump(holder, handle)
    before = site.ledger_bytes()
    run = site.rollout('v2', rc=2)
    assert 'alice' in run.output
    # The takeover command runs as written: the run's inventory and the host's inventory name (not the machine's).
    assert "take the lock over with: ansible -i %s localhost -m redbutton.deploy.lock -a 'root=%s state=absent force=true'" \
        % (site.inventory, site.root) in run.output, run
    assert site.release_dirs() == ['v1']
    assert site.ledger_bytes() == before
    assert site.served() == 'v1'
    with open(lock, encoding='utf-8') as handle:
        assert json.load(handle)['owner'] == 'alice', "someone else's lock must survive"


def test_direct_path_without_service_or_checks(site):
    """Nothing to restart or check: two engine calls roll out (stage; switch to finish), one rolls back."""
    extra = site.vars_file('direct', {'redbutton_service': {'manager': 'none'}, 'redbutton_health_checks': []})
    first = site.rollout('v1', *extra)
    assert first.engine_calls() == [('rollout', ['stage']), ('rollout', ['switch', 'restart', 'verify', 'finish'])], first
    site.rollout('v2', *extra)
    assert site.current() == 'v2' and site.statuses() == {'v1': 'ok', 'v2': 'ok'}
    rerun = site.rollout('v2', *extra)
    assert rerun.recap['changed'] == 0, rerun
    site.rollback(*extra)
    assert site.current() == 'v1' and site.statuses() == {'v1': 'ok', 'v2': 'rolled_back'}
    assert not site.locked()
    again = site.rollback(*extra)
    assert again.recap['changed'] == 0, again
    assert again.engine_calls() == [('rollback', ['switch', 'restart', 'verify', 'compare', 'finish'])], again
    assert site.current() == 'v1'


def test_keep_releases_prunes_old_ones(site):
    extra = site.vars_file('keep', {'redbutton_service': {'manager': 'none'}, 'redbutton_health_checks': [],
                                    'redbutton_keep_releases': 1})
    site.rollout('v1', *extra)
    site.rollout('v2', *extra)
    # v1 is the rollback target, so it is kept even with keep 1.
    assert site.release_dirs() == ['v1', 'v2']
    path, _checksum = site.artifacts['v1']
    site.playbook('redbutton.deploy.rollout', '-e', 'redbutton_release=v1b', '-e', 'redbutton_artifact=%s' % path, *extra)
    assert site.release_dirs() == ['v1b', 'v2']
    assert site.current() == 'v1b'


def test_minimal_variables(site):
    """Only a root and an artifact: no app name, no service, no checks, the id from the content."""
    path, dummy = site.artifacts['v1']
    site.playbook('redbutton.deploy.rollout', '-i', site.inventory, '-e', 'redbutton_root=%s' % site.root,
                  '-e', 'redbutton_artifact=%s' % path, plain=True)
    derived = content_id(path)
    assert site.current() == derived
    assert site.statuses() == {derived: 'ok'}
    missing = site.playbook('redbutton.deploy.rollout', '-i', site.inventory, '-e', 'redbutton_root=%s' % site.root, plain=True, rc=2)
    assert 'redbutton_artifact' in missing.output


def test_rollback_without_a_previous_release_changes_nothing(site):
    site.rollout('v1')
    before = site.ledger_bytes()
    run = site.rollback(rc=2)
    assert 'nothing to roll back to' in run.output and 'v1 (current) is the only release' in run.output
    assert 'current was not changed' in run.output
    assert site.ledger_bytes() == before
    site.assert_state('v1', {'v1': 'ok'})


def test_rehearse_needs_an_earlier_release(site):
    path, _checksum = site.artifacts['v1']
    run = site.playbook('redbutton.deploy.rehearse', '-e', 'redbutton_release=v1', '-e', 'redbutton_artifact=%s' % path, rc=2)
    assert 'no earlier good release to roll back to' in run.output
    site.assert_state('v1', {'v1': 'ok'})
    # Check mode cannot predict a rehearsal (each step starts from what the one before changed): refused, untouched.
    before = site.ledger_bytes()
    path, _checksum = site.artifacts['v2']
    checked = site.playbook('redbutton.deploy.rehearse', '-e', 'redbutton_release=v2', '-e', 'redbutton_artifact=%s' % path,
                            '--check', rc=2)
    assert 'A rehearsal cannot run in check mode' in checked.output and 'Nothing was changed' in checked.output, checked
    assert site.ledger_bytes() == before and site.release_dirs() == ['v1']


def test_check_mode_predicts_and_changes_nothing(site):
    """The four-run pattern: check, real, check again, real again."""
    site.rollout('v1')
    before = site.ledger_bytes()
    predicted = site.rollout('v2', '--check', '--diff')
    assert predicted.recap['changed'] > 0, predicted
    assert site.ledger_bytes() == before and site.release_dirs() == ['v1']
    site.assert_state('v1', {'v1': 'ok'})
    site.rollout('v2')
    site.assert_state('v2', {'v1': 'ok', 'v2': 'ok'})
    assert site.rollout('v2', '--check').recap['changed'] == 0
    assert site.rollout('v2').recap['changed'] == 0
    # And back: a predicted rollback changes nothing either.
    before = site.ledger_bytes()
    predicted = site.rollback('--check', '--diff')
    assert predicted.recap['changed'] > 0, predicted
    assert site.ledger_bytes() == before
    site.assert_state('v2', {'v1': 'ok', 'v2': 'ok'})


def test_batches_agree_on_the_release_id_and_a_failure_stops_later_batches(site, tmp_path):
    """Two hosts in batches of one: the id derived on the controller is the same on both; a
    host that fails stops the batches after it (max_fail_percentage 0)."""
    path, dummy = site.artifacts['v1']
    roots = dict((host, str(tmp_path / host)) for host in ('web1', 'web2', 'web3'))
    inventory = tmp_path / 'fleet.ini'
    lines = ['%s ansible_connection=local ansible_python_interpreter=%s redbutton_root=%s' % (host, sys.executable, root)
             for host, root in sorted(roots.items())]
    inventory.write_text('\n'.join(lines) + '\n')
    args = ['-i', str(inventory), '-e', 'redbutton_artifact=%s' % path, '-e', 'redbutton_serial=1']
    site.playbook('redbutton.deploy.rollout', *args, '-e', 'redbutton_hosts=web1:web2', plain=True)
    derived = content_id(path)
    for host in ('web1', 'web2'):
        assert os.readlink(os.path.join(roots[host], 'current')) == os.path.join('releases', derived)
    # web2 fails (a wrong checksum as its host variable): web3, in the next batch, is not touched.
    lines[1] += ' redbutton_artifact_checksum=sha256:' + '0' * 64
    inventory.write_text('\n'.join(lines) + '\n')
    run = site.playbook('redbutton.deploy.rollout', *args, plain=True, rc=2)
    assert 'checksum mismatch' in run.output
    assert not os.path.exists(roots['web3'])


def test_a_failure_after_verification_does_not_roll_back_a_healthy_release(site, tmp_path):
    hook = tmp_path / 'after_finish.yml'
    hook.write_text('- name: Notify a chat that is down\n  ansible.builtin.fail:\n    msg: chat unreachable\n')
    site.rollout('v1')
    run = site.rollout('v2', '-e', 'redbutton_after_finish=%s' % hook, rc=2)
    assert 'passed its health checks, then failed at Notify a chat that is down: chat unreachable' in run.output
    site.assert_state('v2', {'v1': 'ok', 'v2': 'ok'})


def test_artifact_already_on_the_host(site):
    extra = site.vars_file('direct', {'redbutton_service': {'manager': 'none'}, 'redbutton_health_checks': []})
    path, checksum = site.artifacts['v2']
    site.rollout('v2', *extra, '-e', 'redbutton_artifact_remote=true', '-e', 'redbutton_artifact_checksum=%s' % checksum)
    assert site.current() == 'v2' and site.statuses() == {'v2': 'ok'}
    assert site.ledger()['releases']['v2']['checksum'] == checksum
    assert site.ledger()['releases']['v2']['source'] == path


def test_a_relative_artifact_is_found_where_ansible_playbook_runs(site, tmp_path):
    """The documented command, `-e redbutton_artifact=dist/app-v1.tar.gz`, from the user's project directory: the
    collection's playbooks live in the collection, so the path is the shell's, as for the runbook playbook."""
    project = tmp_path / 'project'
    (project / 'dist').mkdir(parents=True)
    for version in ('v1', 'v2'):
        os.link(site.artifacts[version][0], str(project / 'dist' / ('app-%s.tar.gz' % version)))
    site.playbook('redbutton.deploy.rollout', '-e', 'redbutton_release=v1', '-e', 'redbutton_artifact=dist/app-v1.tar.gz',
                  cwd=str(project))
    site.assert_state('v1', {'v1': 'ok'})
    site.playbook('redbutton.deploy.runbook', '-e', 'redbutton_release=v2', '-e', 'redbutton_artifact=dist/app-v2.tar.gz',
                  '-e', 'redbutton_runbook_dir=runbooks', cwd=str(project))
    assert os.path.isfile(str(project / 'runbooks' / 'sample-v2.md'))
    missing = site.playbook('redbutton.deploy.rollout', '-e', 'redbutton_release=v2', '-e', 'redbutton_artifact=dist/app-v9.tar.gz',
                            cwd=str(project), rc=2)
    assert 'src dist/app-v9.tar.gz was not found on the controller (not in %s, where ansible-playbook runs' % project in missing.output
    site.assert_state('v1', {'v1': 'ok'})
    assert site.release_dirs() == ['v1']


def test_a_relative_root_is_refused_before_anything_is_written(site, tmp_path):
    """redbutton_root=myroot would land wherever the module runs (on a local connection, the collection's playbooks/)."""
    run = site.rollout('v1', '-e', 'redbutton_root=myroot', rc=2)
    assert 'root myroot is a relative path: give the absolute path of the application root' in run.output, run
    playbooks = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), 'playbooks')
    assert not os.path.exists(os.path.join(playbooks, 'myroot')) and not os.path.exists(str(tmp_path / 'myroot'))
