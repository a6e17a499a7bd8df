# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark of the rollout and rollback playbooks on localhost (issue 3, item 12).

Times, in one run and on this machine:
  floor     a playbook with one no-op task (ansible-playbook's own start-up cost)
  rollout   redbutton.deploy.rollout of a 2,000-file / 20 MB archive (fresh release)
  re-run    the same rollout again (already current and ok: must change nothing)
  rollback  redbutton.deploy.rollback to the release before it
and prints each case minus the floor against the targets (rollout <= floor + 1.0 s,
re-run <= floor + 0.5 s, rollback <= floor + 0.5 s). Each case is run --repeat times
(fresh application root each round) and the median is reported. The service manager
is `none` and there are no health checks unless --with-app is given, so the numbers
are the roles' own cost; --with-app adds the sample app's restart and one HTTP check.

    .venv/bin/python tests/bench/bench_rollout.py [--repeat 3] [--with-app] [--strict]

Not a test: it never fails unless --strict is given and a target is missed.
"""

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, 'examples'))

import build_releases  # noqa: E402  (examples/ is not a package)

TARGETS = {'rollout': 1.0, 're-run': 0.5, 'rollback': 0.5}
RECAP = re.compile(r'ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+skipped=(\d+)')
FLOOR_PLAYBOOK = """---
- name: Floor
  hosts: all
  gather_facts: false
  tasks:
    - name: Do nothing
      ansible.builtin.debug:
        msg: noop
"""


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class Bench(object):

    def __init__(self, workdir, with_app):
        self.workdir = workdir
        self.with_app = with_app
        self.env = dict(os.environ)
        self.env['ANSIBLE_COLLECTIONS_PATH'] = os.path.join(REPO, '.build', 'collections')
        self.env['ANSIBLE_COLLECTIONS_SCAN_SYS_PATH'] = 'false'
        self.env['ANSIBLE_NOCOLOR'] = '1'
        self.env.pop('ANSIBLE_CALLBACKS_ENABLED', None)
        self.bindir = os.path.dirname(sys.executable)
        self.inventory = os.path.join(workdir, 'inventory.ini')
        with open(self.inventory, 'w', encoding='utf-8') as handle:
            handle.write('localhost ansible_connection=local ansible_python_interpreter=%s\n' % sys.executable)
        self.floor_playbook = os.path.join(workdir, 'floor.yml')
        with open(self.floor_playbook, 'w', encoding='utf-8') as handle:
            handle.write(FLOOR_PLAYBOOK)
        self.artifacts = {}
        self.tasks = {}

    def build(self):
        base, _checksum = build_releases.build_release(os.path.join(self.workdir, 'art'), 'v1')
        big, checksum = build_releases.build_release(os.path.join(self.workdir, 'art'), 'v2', 2000, 10 * 1024)
        self.artifacts = {'v1': base, 'v2': big}
        return big, checksum

    def playbook(self, args, expect_rc=0):
        cmd = [os.path.join(self.bindir, 'ansible-playbook'), '-i', self.inventory] + args
        start = time.monotonic()
        proc = subprocess.run(cmd, env=self.env, capture_output=True, text=True, check=False)
        elapsed = time.monotonic() - start
        if proc.returncode != expect_rc:
            sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-2000:])
            raise SystemExit('ansible-playbook %s exited %d' % (' '.join(args), proc.returncode))
        match = RECAP.search(proc.stdout)
        return elapsed, match

    def app_vars(self, root, port):
        data = {'redbutton_app': 'bench', 'redbutton_root': root, 'redbutton_keep_releases': 5}
        if self.with_app:
            pid = os.path.join(root, 'shared', 'app.pid')
            data.update({
                'redbutton_shared_paths': ['data'],
                'redbutton_service': {
                    'manager': 'command',
                    'start_command': '%s server.py --daemon --port %d --pidfile %s' % (sys.executable, port, pid),
                    'stop_command': '%s server.py --stop --pidfile %s' % (sys.executable, pid),
                },
                'redbutton_health_checks': [{'name': 'health', 'url': 'http://127.0.0.1:%d/health' % port, 'retries': 10, 'delay': 1}],
            })
        path = os.path.join(root + '.vars.json')
        with open(path, 'w', encoding='utf-8') as handle:
            json.dump(data, handle)
        return ['-e', '@' + path]

    def rollout(self, extra, release):
        return self.playbook(['redbutton.deploy.rollout'] + extra + [
            '-e', 'redbutton_release=%s' % release, '-e', 'redbutton_artifact=%s' % self.artifacts[release]])

    def round(self, index):
        root = os.path.join(self.workdir, 'root%d' % index)
        port = free_port()
        extra = self.app_vars(root, port)
        times = {}
        try:
            self.rollout(extra, 'v1')  # the release to roll back to, not timed
            times['rollout'], recap = self.rollout(extra, 'v2')
            self.tasks['rollout'] = recap
            times['re-run'], recap = self.rollout(extra, 'v2')
            self.tasks['re-run'] = recap
            if recap and recap.group(2) != '0':
                raise SystemExit('the re-run reported changed=%s: it is not idempotent' % recap.group(2))
            times['rollback'], recap = self.playbook(['redbutton.deploy.rollback'] + extra)
            self.tasks['rollback'] = recap
            with open(os.path.join(root, '.redbutton', 'ledger.json'), encoding='utf-8') as handle:
                ledger = json.load(handle)
            if ledger['current'] != 'v1' or ledger['releases']['v2']['status'] != 'rolled_back':
                raise SystemExit('the rollback did not restore v1: ledger says current=%s' % ledger['current'])
        finally:
            if self.with_app:
                subprocess.run([sys.executable, os.path.join(root, 'current', 'server.py'), '--stop',
                                '--pidfile', os.path.join(root, 'shared', 'app.pid')], check=False)
        shutil.rmtree(root, ignore_errors=True)
        return times


def report(floors, rounds, tasks):
    floor = statistics.median(floors)
    lines = ['floor (one no-op task)   %5.2f s   (runs: %s)' % (floor, ', '.join('%.2f' % f for f in floors))]
    missed = []
    for case in ('rollout', 're-run', 'rollback'):
        values = [r[case] for r in rounds]
        value = statistics.median(values)
        over = value - floor
        target = TARGETS[case]
        verdict = 'ok' if over <= target else 'MISSED by %.2f s' % (over - target)
        if over > target:
            missed.append(case)
        recap = tasks.get(case)
        counts = ' ok=%s changed=%s skipped=%s' % (recap.group(1), recap.group(2), recap.group(5)) if recap else ''
        lines.append('%-24s %5.2f s   floor + %.2f s   target floor + %.1f s: %-18s ratio %.2fx floor;%s'
                     % (case, value, over, target, verdict, value / floor, counts))
    return '\n'.join(lines), missed


def engine_bench(workdir, path, repeat):
    """The release engine alone (in-process, no Ansible): a first stage+switch of the archive,
    against GNU tar extracting the same archive, interleaved in the same run."""
    sys.path.insert(0, os.path.join(REPO, '.build', 'collections'))
    from ansible_collections.redbutton.deploy.plugins.module_utils._release import (  # pylint: disable=import-error
        RELEASE_ARGUMENT_SPEC, ReleaseManager)
    params = dict((name, spec.get('default')) for name, spec in RELEASE_ARGUMENT_SPEC.items())
    times = {'tar -xzf': [], 'engine': []}
    for index in range(repeat):
        target = os.path.join(workdir, 'tar%d' % index)
        os.mkdir(target)
        start = time.monotonic()
        subprocess.run(['tar', '-xzf', path, '-C', target], check=True)
        times['tar -xzf'].append(time.monotonic() - start)
        root = os.path.join(workdir, 'engine%d' % index)
        start = time.monotonic()
        ReleaseManager(dict(params, root=root, release='v2', src=path, remote_src=True, state='active', status='ok',
                            shared_paths=[])).run()
        times['engine'].append(time.monotonic() - start)
    tar = statistics.median(times['tar -xzf'])
    engine = statistics.median(times['engine'])
    return ('engine alone: stage+switch %.2f s, tar -xzf %.2f s (median of %d, interleaved): ratio %.2fx tar'
            % (engine, tar, repeat, engine / tar))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--repeat', type=int, default=3, help='rounds per case; the median is reported (default 3)')
    parser.add_argument('--with-app', action='store_true', help='restart the sample app and run one HTTP health check')
    parser.add_argument('--strict', action='store_true', help='exit 1 when a target is missed')
    parser.add_argument('--engine', action='store_true', help='also time the release engine alone against tar -xzf')
    args = parser.parse_args(argv)
    workdir = tempfile.mkdtemp(prefix='redbutton-bench-')
    try:
        bench = Bench(workdir, args.with_app)
        path, checksum = bench.build()
        size = os.path.getsize(path)
        sys.stdout.write('archive: 2,000 files of 10 KiB + the app, %.1f MB compressed, %s\n' % (size / 1e6, checksum))
        sys.stdout.write('load average before: %.2f %.2f %.2f on %d CPUs\n' % (os.getloadavg() + (os.cpu_count(),)))
        bench.playbook([bench.floor_playbook])  # warm the caches once
        floors, rounds = [], []
        for index in range(args.repeat):
            floors.append(bench.playbook([bench.floor_playbook])[0])
            rounds.append(bench.round(index))
        text, missed = report(floors, rounds, bench.tasks)
        sys.stdout.write(text + '\n')
        if args.engine:
            sys.stdout.write(engine_bench(workdir, path, max(args.repeat, 3)) + '\n')
        sys.stdout.write('load average after: %.2f %.2f %.2f (other work on the machine inflates every case, the floor too)\n'
                         % os.getloadavg())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if args.strict and missed else 0


if __name__ == '__main__':
    sys.exit(main())
