#!/usr/bin/env python3
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""`make demo`: roll out, roll back and roll out again a real web app on localhost.

No root, no containers, no network. Everything lives under .build/demo/ (wiped first):
the release archives (built by examples/build_releases.py), the application root, the
inventory and one log per step. The sample app (examples/app/server.py) runs as a real
HTTP process on 127.0.0.1 and a free port, managed by the roles' `command` service manager.

The story: rollout v1, rollout v2, rollback (v1 serves again), rollout v2 again (the staged
release is reused), rollout v3 (fails its health check: automatic rollback to v2); then
feature toggles: new_checkout flipped on, break_health flipped on (the app's /health fails
while it is on: the flip reverts itself), and a rollback of the code to v1 that leaves the
toggles alone. After each step the demo checks what the app serves over HTTP, where
`current` points and what the ledger says, and exits non-zero if anything is not as told. At the end it prints the
ledger with the status playbook and stops the app.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import build_releases  # noqa: E402  (examples/ is not a package)

DEMO = os.path.join(REPO, '.build', 'demo')
COLLECTIONS = os.path.join(REPO, '.build', 'collections')


class StoryError(Exception):
    """The story did not go as told."""


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def ensure_collection_link():
    """The repo is the collection; ansible finds it as ansible_collections/redbutton/deploy."""
    link = os.path.join(COLLECTIONS, 'ansible_collections', 'redbutton', 'deploy')
    if not os.path.islink(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink('../../../..', link)


class Demo(object):

    def __init__(self):
        self.root = os.path.join(DEMO, 'root')
        self.logs = os.path.join(DEMO, 'logs')
        self.port = free_port()
        self.step = 0
        self.artifacts = {}
        self.inventory = os.path.join(DEMO, 'inventory.ini')
        self.env = dict(os.environ)
        self.env.setdefault('ANSIBLE_COLLECTIONS_PATH', COLLECTIONS)
        self.env['ANSIBLE_COLLECTIONS_SCAN_SYS_PATH'] = 'false'
        self.env['ANSIBLE_NOCOLOR'] = '1'
        self.env['ANSIBLE_FORCE_COLOR'] = '0'
        self.env['ANSIBLE_RETRY_FILES_ENABLED'] = 'false'

    # set-up ---------------------------------------------------------------------------
    def prepare(self):
        shutil.rmtree(DEMO, ignore_errors=True)
        os.makedirs(self.logs)
        built = build_releases.build_all(os.path.join(DEMO, 'artifacts'))
        self.artifacts = dict((version, path) for version, (path, _checksum) in built.items())
        with open(self.inventory, 'w', encoding='utf-8') as handle:
            handle.write('localhost ansible_connection=local ansible_python_interpreter=%s\n' % sys.executable)

    def common_args(self):
        return [
            '-i', self.inventory,
            '-e', '@' + os.path.join(HERE, 'sample-app.yml'),
            '-e', 'redbutton_root=%s' % self.root,
            '-e', 'app_port=%d' % self.port,
            '-e', 'app_python=%s' % sys.executable,
            '-e', 'redbutton_actor=demo',
            '-e', 'redbutton_after_finish=%s' % os.path.join(HERE, 'hooks', 'record_history.yml'),
        ]

    # observing ------------------------------------------------------------------------
    def served(self):
        try:
            with urllib.request.urlopen('http://127.0.0.1:%d/' % self.port, timeout=5) as response:
                return response.read().decode('utf-8').strip()
        except (urllib.error.URLError, OSError) as exc:
            return 'nothing (%s)' % exc

    def current(self):
        link = os.path.join(self.root, 'current')
        return os.path.basename(os.readlink(link)) if os.path.islink(link) else None

    def ledger(self):
        with open(os.path.join(self.root, '.redbutton', 'ledger.json'), encoding='utf-8') as handle:
            return json.load(handle)

    def statuses(self):
        return dict((rid, entry['status']) for rid, entry in self.ledger()['releases'].items())

    def inode(self, release):
        return os.stat(os.path.join(self.root, 'releases', release)).st_ino

    # acting ---------------------------------------------------------------------------
    def playbook(self, name, *extra):
        self.step += 1
        log = os.path.join(self.logs, '%02d-%s.log' % (self.step, name.rsplit('.', 1)[-1]))
        cmd = [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), name] + self.common_args() + list(extra)
        start = time.monotonic()
        with open(log, 'w', encoding='utf-8') as handle:
            handle.write('$ %s\n\n' % ' '.join(cmd))
            handle.flush()
            proc = subprocess.run(cmd, env=self.env, stdout=handle, stderr=subprocess.STDOUT, check=False)
        with open(log, encoding='utf-8') as handle:
            output = handle.read()
        return proc.returncode, output, time.monotonic() - start, log

    def expect(self, what, rc, output, log, want_rc=0, served=None, statuses=None):
        problems = []
        if (rc == 0) != (want_rc == 0):
            problems.append('ansible-playbook exited %d' % rc)
        if served is not None:
            got = self.served()
            if got != served:
                problems.append('the app serves %s, expected %s' % (got, served))
            if self.current() != served:
                problems.append('current points to %s, expected %s' % (self.current(), served))
        if statuses is not None and self.statuses() != statuses:
            problems.append('ledger statuses %s, expected %s' % (self.statuses(), statuses))
        if problems:
            tail = '\n'.join(output.splitlines()[-25:])
            raise StoryError('%s: %s\n--- last lines of %s ---\n%s' % (what, '; '.join(problems), log, tail))

    def say(self, what, outcome, elapsed):
        ledger = ', '.join('%s %s' % item for item in sorted(self.statuses().items()))
        sys.stdout.write('%d. %-17s %-58s %5.1f s   ledger: %s\n' % (self.step, what, outcome, elapsed, ledger))
        sys.stdout.flush()

    def rollout(self, version, what, want_rc=0, served=None, statuses=None):
        rc, output, elapsed, log = self.playbook(
            'redbutton.deploy.rollout', '-e', 'redbutton_release=%s' % version,
            '-e', 'redbutton_artifact=%s' % self.artifacts[version])
        self.expect(what, rc, output, log, want_rc, served or version, statuses)
        return output, elapsed

    def toggle(self, name, state):
        return self.playbook('redbutton.deploy.toggle', '-e', 'redbutton_feature=%s' % name,
                             '-e', 'redbutton_feature_state=%s' % state)

    def fetch(self, path):
        try:
            with urllib.request.urlopen('http://127.0.0.1:%d%s' % (self.port, path), timeout=5) as response:
                return response.status, response.read().decode('utf-8').strip()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode('utf-8').strip()
        except (urllib.error.URLError, OSError) as exc:
            return None, str(exc)

    def expect_features(self, what, toggles, log, output):
        """The toggles the app serves on /features and the file it reads both say `toggles`."""
        want = '\n'.join('%s=%s' % (name, toggles[name]) for name in sorted(toggles))
        with open(os.path.join(self.root, 'shared', 'features.json'), encoding='utf-8') as handle:
            recorded = json.load(handle)
        if self.fetch('/features') != (200, want) or recorded != toggles:
            tail = '\n'.join(output.splitlines()[-25:])
            raise StoryError('%s: the app shows toggles %r and the file holds %r, expected %r\n--- last lines of %s ---\n%s'
                             % (what, self.fetch('/features'), recorded, toggles, log, tail))

    # the story ------------------------------------------------------------------------
    def story(self):
        output, elapsed = self.rollout('v1', 'rollout v1', statuses={'v1': 'ok'})
        self.say('rollout v1', 'v1 extracted, switched, started, healthy: serves v1', elapsed)

        output, elapsed = self.rollout('v2', 'rollout v2', statuses={'v1': 'ok', 'v2': 'ok'})
        v2_inode = self.inode('v2')
        self.say('rollout v2', 'switched to v2, restarted, healthy: serves v2', elapsed)

        rc, output, elapsed, log = self.playbook('redbutton.deploy.rollback')
        self.expect('rollback', rc, output, log, served='v1', statuses={'v1': 'ok', 'v2': 'rolled_back'})
        self.say('rollback', 'back to v1 (v2 marked rolled_back), verified: serves v1', elapsed)
        # The rollback compared the host with the baseline rollout v2 recorded before switching.
        proof = re.search(r'host matches baseline (\S+) \((\d+) files(, shared data intact)?', output)
        if not proof or proof.group(1) != 'before-v2':
            raise StoryError('rollback: no comparison with baseline before-v2 in the output, see %s' % log)
        sys.stdout.write('    rollback: v1 serves again; host matches baseline %s (%s files%s)\n'
                         % (proof.group(1), proof.group(2), proof.group(3) or ''))

        output, elapsed = self.rollout('v2', 'rollout v2 again', statuses={'v1': 'ok', 'v2': 'ok'})
        if self.inode('v2') != v2_inode:
            raise StoryError('rollout v2 again: releases/v2 was extracted again instead of reused')
        self.say('rollout v2 again', 'reused the staged v2 (not extracted again): serves v2', elapsed)

        output, elapsed = self.rollout('v3', 'rollout v3', want_rc=2, served='v2',
                                       statuses={'v1': 'ok', 'v2': 'ok', 'v3': 'failed'})
        if self.ledger()['last_switch']['reason'] != 'auto_rollback':
            raise StoryError('rollout v3: the last switch is not the automatic rollback')
        self.say('rollout v3', 'v3 failed /health (500): rolled back by itself, serves v2', elapsed)

    def toggles_story(self):
        """Feature toggles: a flip, a bad flip that reverts itself, a code rollback that leaves them alone."""
        statuses = {'v1': 'ok', 'v2': 'ok', 'v3': 'failed'}
        rc, output, elapsed, log = self.toggle('new_checkout', 'on')
        self.expect('toggle new_checkout on', rc, output, log, served='v2', statuses=statuses)
        self.expect_features('toggle new_checkout on', {'new_checkout': 'on'}, log, output)
        self.say('toggle on', 'new_checkout on, health checks passed: /features says so', elapsed)

        rc, output, elapsed, log = self.toggle('break_health', 'on')
        self.expect('toggle break_health on', rc, output, log, want_rc=2, served='v2', statuses=statuses)
        self.expect_features('toggle break_health on', {'new_checkout': 'on'}, log, output)
        if 'Reverted automatically' not in output or self.fetch('/health') != (200, 'ok'):
            raise StoryError('toggle break_health on: not reverted by itself, see %s' % log)
        self.say('toggle bad flip', 'break_health on failed /health: put back by itself', elapsed)

        rc, output, elapsed, log = self.playbook('redbutton.deploy.rollback', '-e', 'redbutton_rollback_to=v1')
        self.expect('rollback to v1', rc, output, log, served='v1',
                    statuses={'v1': 'ok', 'v2': 'rolled_back', 'v3': 'failed'})
        self.expect_features('rollback to v1', {'new_checkout': 'on'}, log, output)
        self.say('rollback to v1', 'code back to v1; toggles left alone: new_checkout on', elapsed)

    def show_ledger(self):
        rc, output, _elapsed, log = self.playbook('redbutton.deploy.status')
        if rc != 0:
            raise StoryError('status playbook exited %d, see %s' % (rc, log))
        match = re.search(r'"msg": \[\n(.*?)\n\s*\]', output, re.S)
        lines = [json.loads(line.strip().rstrip(',')) for line in match.group(1).splitlines()] if match else []
        sys.stdout.write('\nThe ledger (ansible-playbook redbutton.deploy.status):\n')
        for line in lines:
            sys.stdout.write('    %s\n' % line)
        history = os.path.join(self.root, 'shared', 'data', 'history.log')
        hits = os.path.join(self.root, 'shared', 'data', 'hits.txt')
        with open(history, encoding='utf-8') as handle:
            finished = len(handle.readlines())
        with open(hits, encoding='utf-8') as handle:
            count = len(handle.readlines())
        sys.stdout.write('Shared data survived every switch: %d requests counted in shared/data/hits.txt, '
                         '%d finished runs in shared/data/history.log (the example hook).\n' % (count, finished))

    def stop_app(self):
        pidfile = os.path.join(self.root, 'shared', 'app.pid')
        server = os.path.join(HERE, 'app', 'server.py')
        subprocess.run([sys.executable, server, '--stop', '--pidfile', pidfile], check=False)


def main():
    started = time.monotonic()
    ensure_collection_link()
    demo = Demo()
    sys.stdout.write('redbutton.deploy demo: the sample app on 127.0.0.1:%d, root %s\n' % (demo.port, demo.root))
    demo.prepare()
    sys.stdout.write('Built v1, v2 and a deliberately broken v3 into %s; logs of every step in %s\n\n'
                     % (os.path.join(DEMO, 'artifacts'), demo.logs))
    try:
        demo.story()
        demo.toggles_story()
        demo.show_ledger()
    except StoryError as exc:
        sys.stdout.write('\nDEMO FAILED: %s\n' % exc)
        return 1
    finally:
        demo.stop_app()
    sys.stdout.write('\nThe story went as told in %.0f s. The app was stopped; everything is under %s.\n'
                     % (time.monotonic() - started, DEMO))
    return 0


if __name__ == '__main__':
    sys.exit(main())
