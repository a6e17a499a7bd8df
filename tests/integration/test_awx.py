# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The AWX kit: the example execution environment builds a context with ansible-builder, the
collection declares its own requirements to ansible-builder, and a rollout runs through
ansible-runner from an AWX-shaped private data dir (env/extravars, env/envvars,
inventory/hosts, project/) leaving the set_stats data AWX keeps as the job's artifacts (the artifact_data of the
playbook_on_stats event)."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig

import ansible_runner
import yaml

from conftest import COLLECTIONS, EXAMPLES, free_port

BIN = os.path.dirname(sys.executable)


def test_builder_creates_a_build_context_from_the_example(tmp_path):
    context = tmp_path / 'context'
    proc = subprocess.run([os.path.join(BIN, 'ansible-builder'), 'create', '-f', 'execution-environment.yml',
                           '--context', str(context), '--output-filename', 'Containerfile'],
                          cwd=os.path.join(EXAMPLES, 'awx'), capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    containerfile = (context / 'Containerfile').read_text()
    assert 'quay.io/centos/centos:stream9' in containerfile
    assert 'ansible-galaxy collection install' in containerfile or 'install-from-bindep' in containerfile
    galaxy = yaml.safe_load((context / '_build' / 'requirements.yml').read_text())
    assert [c['name'] for c in galaxy['collections']] == ['redbutton.deploy']
    assert 'psycopg[binary]' in (context / '_build' / 'requirements.txt').read_text()
    assert 'postgresql-client [platform:dpkg]' in (context / '_build' / 'bindep.txt').read_text()


def test_the_collection_declares_its_requirements_to_ansible_builder():
    """What ansible-builder finds in the installed collection (meta/execution-environment.yml)."""
    proc = subprocess.run([os.path.join(BIN, 'ansible-builder'), 'introspect', COLLECTIONS],
                          capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'psycopg[binary]>=3.1  # from collection redbutton.deploy' in proc.stdout, proc.stdout
    assert 'postgresql-client [platform:dpkg]  # from collection redbutton.deploy' in proc.stdout, proc.stdout


def test_the_awx_configuration_parses_with_awx_awx(tmp_path):
    """examples/awx/configure.yml is awx.awx code: it must parse with the awx.awx of the `ansible`
    bundle (a pinned test requirement), which also resolves every module it names."""
    bundle = sysconfig.get_paths()['purelib']
    assert os.path.isdir(os.path.join(bundle, 'ansible_collections', 'awx', 'awx')), 'the ansible bundle with awx.awx is missing'
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.pathsep.join([COLLECTIONS, bundle]), ANSIBLE_COLLECTIONS_SCAN_SYS_PATH='false')
    for playbook in ['configure.yml'] + ['project/%s.yml' % name for name in ('rollout', 'rollback', 'status', 'runbook', 'verify')]:
        proc = subprocess.run([os.path.join(BIN, 'ansible-playbook'), '-i', 'localhost,', '--syntax-check', playbook],
                              cwd=os.path.join(EXAMPLES, 'awx'), env=env, capture_output=True, text=True, check=False, timeout=300)
        assert proc.returncode == 0, playbook + ': ' + proc.stdout + proc.stderr
    # a module name that does not exist fails the same check: the check can fail
    broken = tmp_path / 'broken.yml'
    broken.write_text('- hosts: localhost\n  tasks:\n    - name: No such module\n      awx.awx.no_such_module: {}\n')
    proc = subprocess.run([os.path.join(BIN, 'ansible-playbook'), '-i', 'localhost,', '--syntax-check', str(broken)],
                          env=env, capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode != 0


def private_data_dir(tmp_path, extravars, root, port):
    base = tmp_path / 'awx-job'
    (base / 'env').mkdir(parents=True)
    (base / 'inventory').mkdir()
    shutil.copytree(os.path.join(os.path.dirname(__file__), 'awx_project'), str(base / 'project'))
    (base / 'inventory' / 'hosts').write_text(
        'localhost ansible_connection=local ansible_python_interpreter=%s\n' % sys.executable)
    (base / 'env' / 'extravars').write_text(json.dumps(extravars))
    (base / 'env' / 'envvars').write_text(json.dumps({
        'ANSIBLE_COLLECTIONS_PATH': COLLECTIONS, 'ANSIBLE_COLLECTIONS_SCAN_SYS_PATH': 'false',
        'PATH': BIN + os.pathsep + os.environ.get('PATH', ''), 'ANSIBLE_NOCOLOR': '1'}))
    return base


def artifact_data(base, ident):
    """The set_stats data of a job: AWX stores the playbook_on_stats event's artifact_data as the
    job's artifacts, read here from the event file ansible-runner wrote."""
    events = base / 'artifacts' / ident / 'job_events'
    found = [event for event in (json.loads(path.read_text()) for path in events.iterdir())
             if event.get('event') == 'playbook_on_stats']
    assert len(found) == 1
    return found[0]['event_data']['artifact_data']


def test_a_rollout_through_ansible_runner_leaves_its_artifacts(tmp_path, artifacts):
    with open(os.path.join(EXAMPLES, 'sample-app.yml'), encoding='utf-8') as handle:
        extravars = yaml.safe_load(handle)
    root = str(tmp_path / 'root')
    port = free_port()
    # What AWX puts into every job's extra vars, besides the survey answers.
    extravars.update(awx_job_id=4242, awx_user_name='alice', tower_job_id=4242,
                     awx_job_template_name='shop rollout', redbutton_root=root, app_port=port, app_python=sys.executable,
                     redbutton_release='v1', redbutton_artifact=artifacts['v1'][0])
    base = private_data_dir(tmp_path, extravars, root, port)
    try:
        result = ansible_runner.run(private_data_dir=str(base), playbook='rollout.yml', ident='4242', quiet=True)
        stdout = result.stdout.read()
        assert (result.status, result.rc) == ('successful', 0), stdout[-4000:]
        custom = artifact_data(base, '4242')
        first = custom['redbutton']['localhost']
        assert first == {'direction': 'rollout', 'release': 'v1', 'from': None, 'to': 'v1', 'outcome': 'rolled out',
                         'msg': first['msg'], 'run_id': '4242', 'runbook': root + '/.redbutton/runbooks/v1.md'}
        assert first['msg'].startswith('v1 serves and passed')
        assert result.stats['ok'].get('localhost') and not result.stats['failures']
        # The AWX user is who the ledger says did it.
        ledger = json.loads(open(os.path.join(root, '.redbutton', 'ledger.json'), encoding='utf-8').read())
        assert ledger['releases']['v1']['status'] == 'ok'
        assert set(event.get('by') for event in ledger['events']) == {'alice'}
        # The AWX job is the run id on every event of the job.
        assert set(event.get('run_id') for event in ledger['events']) == {'4242'}

        # Wave two of the same workflow: v2 from v1, the artifacts say so.
        extravars.update(awx_job_id=4243, redbutton_release='v2', redbutton_artifact=artifacts['v2'][0])
        (base / 'env' / 'extravars').write_text(json.dumps(extravars))
        result = ansible_runner.run(private_data_dir=str(base), playbook='rollout.yml', ident='4243', quiet=True)
        assert result.rc == 0, result.stdout.read()[-4000:]
        custom = artifact_data(base, '4243')
        second = custom['redbutton']['localhost']
        assert dict(second, msg=None) == {'direction': 'rollout', 'release': 'v2', 'from': 'v1', 'to': 'v2', 'outcome': 'rolled out',
                                          'msg': None, 'run_id': '4243', 'runbook': root + '/.redbutton/runbooks/v2.md'}
        assert 'v1 is the rollback target' in second['msg']
    finally:
        subprocess.run([sys.executable, os.path.join(EXAMPLES, 'app', 'server.py'), '--stop', '--pidfile',
                        os.path.join(root, 'shared', 'app.pid')], check=False)
