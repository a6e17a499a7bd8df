# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark of the red button: `redbutton rollback` on the host against the rollback playbook.

Times, in one run and on this machine, each round on a fresh application root with the
sample app (command service) and its two HTTP health checks (the playbook bench's):
  app       the app's own restart and health check, done by hand: stop, start, GET /health
            until it answers 200 (polled every 20 ms) — what no rollback can go below
  playbook  ansible-playbook redbutton.deploy.rollback (v2 -> v1)
  button    <root>/.redbutton/bin/redbutton rollback --yes (v2 -> v1, after rolling v2 out again)
Both rollbacks go back to v1, the 2,000-file / 20 MB release of the bench, and compare it with
the baseline recorded before v2 was rolled out (every file of v1 is in that baseline).
Targets: button <= app + 0.5 s, and playbook / button >= 5.

The releases are rolled out (untimed) by one redbutton.deploy.transition task, the engine the
rollout role runs: its finish step records the settings and installs the command.

    .venv/bin/python tests/bench/bench_red_button.py [--repeat 3] [--strict]

Not a test: it never fails unless --strict is given and a target is missed.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_rollout  # noqa: E402  (the playbook bench: its Bench runs ansible-playbook the same way)
from bench_rollout import build_releases, free_port  # noqa: E402

OVER_APP = 0.5
FASTER = 5.0
POLL = 0.02
ROLLOUT_PLAYBOOK = """---
- name: Roll out with the transition engine
  hosts: all
  gather_facts: false
  tasks:
    - name: Roll out {{ redbutton_release }}
      redbutton.deploy.transition:
        root: "{{ redbutton_root }}"
        direction: rollout
        release: "{{ redbutton_release }}"
        src: "{{ redbutton_artifact }}"
        remote_src: true
        shared_paths: "{{ redbutton_shared_paths }}"
        service: "{{ redbutton_service }}"
        health_checks: "{{ redbutton_health_checks }}"
        baseline_shared_exclude: "{{ redbutton_baseline_shared_exclude }}"
        keep: "{{ redbutton_keep_releases }}"
        actor: bench
        lock_owner: "bench-{{ redbutton_release }}"
"""


def press_env():
    """The command runs through its `#!/usr/bin/env python3` line, as on a host. python3 is looked up
    first beside this interpreter (as `make bench` puts the virtualenv first on PATH), so a version
    manager's shim on PATH (pyenv: close to a second per start) is not timed as the command."""
    env = dict(os.environ)
    env['PATH'] = os.path.dirname(sys.executable) + os.pathsep + env.get('PATH', '')
    return env


def press_python():
    return shutil.which('python3', path=press_env()['PATH'])


class ButtonBench(bench_rollout.Bench):

    def __init__(self, workdir):
        super(ButtonBench, self).__init__(workdir)
        self.rollout_playbook = os.path.join(workdir, 'rollout.yml')
        with open(self.rollout_playbook, 'w', encoding='utf-8') as handle:
            handle.write(ROLLOUT_PLAYBOOK)

    def rollout(self, extra, release):
        return self.playbook([self.rollout_playbook] + extra + [
            '-e', 'redbutton_release=%s' % release, '-e', 'redbutton_artifact=%s' % self.artifacts[release]])

    def build(self):
        """v1 is the big release (the rollback target, compared file by file); v2 a small one."""
        big, checksum = build_releases.build_release(os.path.join(self.workdir, 'big'), 'v1', 2000, 10 * 1024)
        small, _checksum = build_releases.build_release(os.path.join(self.workdir, 'small'), 'v2')
        self.artifacts = {'v1': big, 'v2': small}
        return big, checksum

    @staticmethod
    def ledger(root):
        with open(os.path.join(root, '.redbutton', 'ledger.json'), encoding='utf-8') as handle:
            return json.load(handle)

    def expect_rolled_back(self, root, how):
        ledger = self.ledger(root)
        statuses = dict((rid, entry['status']) for rid, entry in ledger['releases'].items())
        if ledger['current'] != 'v1' or statuses != {'v1': 'ok', 'v2': 'rolled_back'}:
            raise SystemExit('%s did not restore v1: current=%s, statuses %s' % (how, ledger['current'], statuses))

    @staticmethod
    def healthy(port):
        try:
            with urllib.request.urlopen('http://127.0.0.1:%d/health' % port, timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def app_restart(self, root, port):
        """The app's own restart and health check, as the command service does it, by hand."""
        pid = os.path.join(root, 'shared', 'app.pid')
        cwd = os.path.join(root, 'current')
        start = time.monotonic()
        subprocess.run([sys.executable, 'server.py', '--stop', '--pidfile', pid], cwd=cwd, check=True)
        subprocess.run([sys.executable, 'server.py', '--daemon', '--port', str(port), '--pidfile', pid], cwd=cwd, check=True)
        while not self.healthy(port):
            if time.monotonic() - start > 30:
                raise SystemExit('the app did not answer /health within 30 s')
            time.sleep(POLL)
        return time.monotonic() - start

    def press(self, root):
        command = [os.path.join(root, '.redbutton', 'bin', 'redbutton'), 'rollback', '--yes', '--json']
        start = time.monotonic()
        proc = subprocess.run(command, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL, env=press_env())
        elapsed = time.monotonic() - start
        if proc.returncode != 0:
            raise SystemExit('redbutton rollback exited %d:\n%s\n%s' % (proc.returncode, proc.stdout[-4000:], proc.stderr[-2000:]))
        return elapsed, json.loads(proc.stdout)

    def round(self, index):
        root = os.path.join(self.workdir, 'root%d' % index)
        port = free_port()
        extra = self.vars_file(root, port, with_app=True)
        times = {}
        try:
            self.rollout(extra, 'v1')
            self.rollout(extra, 'v2')
            times['app'] = self.app_restart(root, port)
            times['playbook'], _changed, _calls = self.playbook(['redbutton.deploy.rollback'] + extra)
            self.expect_rolled_back(root, 'the rollback playbook')
            self.rollout(extra, 'v2')
            times['button'], answer = self.press(root)
            self.expect_rolled_back(root, 'redbutton rollback')
            compare = answer.get('compare') or {}
            if not compare.get('matched'):
                raise SystemExit('redbutton rollback did not compare with the baseline: compare=%r' % (compare,))
            times['steps'] = dict((step['name'], step['seconds']) for step in answer.get('steps') or [])
        finally:
            subprocess.run([sys.executable, os.path.join(root, 'current', 'server.py'), '--stop',
                            '--pidfile', os.path.join(root, 'shared', 'app.pid')], check=False)
        shutil.rmtree(root, ignore_errors=True)
        return times


def report(rounds):
    app = statistics.median(r['app'] for r in rounds)
    button = statistics.median(r['button'] for r in rounds)
    playbook = statistics.median(r['playbook'] for r in rounds)
    over = button - app
    ratio = playbook / button
    missed = []
    if over > OVER_APP:
        missed.append('button')
    if ratio < FASTER:
        missed.append('ratio')
    steps = {}
    for r in rounds:
        for name, seconds in r['steps'].items():
            steps.setdefault(name, []).append(seconds)
    lines = [
        'app restart + health check (by hand)  %5.2f s   (runs: %s)' % (app, ', '.join('%.2f' % r['app'] for r in rounds)),
        'redbutton rollback                    %5.2f s   app + %.2f s   target app + %.1f s: %s   (runs: %s)' % (
            button, over, OVER_APP, 'ok' if over <= OVER_APP else 'MISSED by %.2f s' % (over - OVER_APP),
            ', '.join('%.2f' % r['button'] for r in rounds)),
        '  its steps (median s): %s' % ', '.join('%s %.2f' % (name, statistics.median(v)) for name, v in steps.items()),
        'rollback playbook                     %5.2f s   (runs: %s)' % (playbook, ', '.join('%.2f' % r['playbook'] for r in rounds)),
        'playbook / redbutton                  %5.1fx     target >= %.0fx: %s' % (
            ratio, FASTER, 'ok' if ratio >= FASTER else 'MISSED'),
    ]
    return '\n'.join(lines), missed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--repeat', type=int, default=3, help='rounds; the median is reported (default 3)')
    parser.add_argument('--strict', action='store_true', help='exit 1 when a target is missed')
    args = parser.parse_args(argv)
    workdir = tempfile.mkdtemp(prefix='redbutton-bench-button-')
    try:
        bench = ButtonBench(workdir)
        path, checksum = bench.build()
        sys.stdout.write('rollback target v1: 2,000 files of 10 KiB + the app, %.1f MB compressed, %s\n'
                         % (os.path.getsize(path) / 1e6, checksum))
        sys.stdout.write('load average before: %.2f %.2f %.2f on %d CPUs\n' % (os.getloadavg() + (os.cpu_count(),)))
        sys.stdout.write('the command runs with python3 = %s\n' % press_python())
        bench.playbook([bench.floor_playbook])  # warm the caches once
        rounds = [bench.round(index) for index in range(args.repeat)]
        text, missed = report(rounds)
        sys.stdout.write(text + '\n')
        sys.stdout.write('load average after: %.2f %.2f %.2f\n' % os.getloadavg())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if args.strict and missed else 0


if __name__ == '__main__':
    sys.exit(main())
