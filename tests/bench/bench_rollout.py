# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark of the rollout and rollback playbooks against Ansible's own floor, in one run.

On the bench artifact (2,000 files of 10 KiB + the sample app, about 20 MB) and localhost,
it times, as medians of --repeat rounds each on a fresh application root:

  floor             a playbook with one no-op task (ansible-playbook's own start-up cost)
  defaults          a shared path, no service, no checks, defaults otherwise (baseline on):
                      rollout v2 over v1, re-run of v2 (must change nothing), rollback to v1
                      (with the baseline comparison)
  app               the sample app under a command service with two HTTP checks:
                      rollout v2 over v1, rollback to v1
  capture           the baseline capture of the release tree (module_utils, in-process)
                      against `find | xargs sha256sum` of the same tree (throughput ratio)
  podman            rollout and rollback through a podman connection into one container
                      (when podman and the Molecule image are there; --no-podman skips it)

Yardsticks, not targets: one ping module task against the floor (what one module call costs on
this machine), the time Ansible takes to build the transition module's AnsiballZ payload (once
per run, on the controller) against ping's, and one transition call alone (a one-task playbook that
re-runs the stage step of the current release): the least any re-run can cost, whatever the roles do.
Beside it, the same call in the least role with the rollout role's interface (its argument validation,
the call and the artifacts for AWX), and the same re-run by the rollout role alone in a one-play
playbook: what the role's own steps add, and what the rollout playbook's waves, gates and fleet-wide
put-back add to the role.

The transition module's payload is kept between runs, with the bytecode of its files
(plugins/plugin_utils/_payload_cache.py), in the bench's own ANSIBLE_LOCAL_TEMP: the untimed first
rollout builds and keeps it, as a user's first run after an upgrade does, and the timed runs use it.
One more re-run per round turns it off (REDBUTTON_PAYLOAD_CACHE=false) and prints what a run costs
with ansible-core alone building the payload and the host compiling it (not a target).

Each case also prints its time without the engine's own steps (the seconds the transition engine
reports for them, as the extraction of 2,000 files, which swings with the filesystem): what Ansible
and the roles cost.

For every run it prints the module calls it made on the host (tests/bench/callbacks/
count_calls.py): each costs about 0.25 s locally and more than a second over SSH or a
container connection. Targets (floor + seconds): defaults rollout 1.2, re-run 0.4, rollback
0.6; app rollout 1.8, rollback 1.0; capture at least 70% of sha256sum's throughput.

    .venv/bin/python tests/bench/bench_rollout.py [--repeat 3] [--strict] [--engine] [--no-podman]

Not a test: it never fails unless --strict is given and a target is missed.
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, 'examples'))

import build_releases  # noqa: E402  (examples/ is not a package)

TARGETS = {
    ('defaults', 'rollout'): 1.2, ('defaults', 're-run'): 0.4, ('defaults', 'rollback'): 0.6,
    ('app', 'rollout'): 1.8, ('app', 'rollback'): 1.0,
}
CAPTURE_TARGET = 0.70
IMAGE = 'localhost/redbutton-molecule:latest'
FLOOR_PLAYBOOK = """---
- name: Floor
  hosts: all
  gather_facts: false
  tasks:
    - name: Do nothing
      ansible.builtin.debug:
        msg: noop
"""
# The cost of one module task (not a target, a yardstick): the floor with one ansible.builtin.ping.
PING_PLAYBOOK = FLOOR_PLAYBOOK.replace('ansible.builtin.debug:\n        msg: noop', 'ansible.builtin.ping:')
# One transition call that re-runs the stage step of the current release: the yardsticks' call.
CALL_TASK = """- name: Re-run the stage step of the current release
  redbutton.deploy.transition:
    root: "{{ redbutton_root }}"
    direction: rollout
    steps: [stage]
    release: "{{ redbutton_release }}"
    src: "{{ redbutton_artifact }}"
    shared_paths: "{{ redbutton_shared_paths }}"
    actor: bench
    lock_owner: bench
    run_id: bench
  register: redbutton_result
"""
# The least a re-run can cost (not a target, a yardstick): the floor with that one call instead of its task, no role
# around it.
ONE_CALL_PLAYBOOK = FLOOR_PLAYBOOK.partition('  tasks:')[0] + '  tasks:\n' + textwrap.indent(CALL_TASK, '    ')
# The least a role with the rollout role's interface can cost (a yardstick too): its argument validation (the rollout
# role's meta/argument_specs.yml, copied), the call, and the artifacts for AWX; no run id, hooks, load balancer,
# automatic rollback or sentence. The bench writes it as a role of its own in its work directory.
LEAST_ROLE_TASKS = '---\n' + CALL_TASK + """
- name: Publish where this host stands as the run's artifacts
  ansible.builtin.set_stats:
    data:
      redbutton: "{{ {inventory_hostname: {'release': redbutton_result.current, 'msg': redbutton_result.msg}} }}"
    per_host: false
    aggregate: true
"""
# Between the two (a yardstick too): the rollout role alone, in a one-play playbook, without the rollout playbook's
# waves, gates and fleet-wide put-back around it.
ROLE_PLAYBOOK = FLOOR_PLAYBOOK.replace('''  tasks:
    - name: Do nothing
      ansible.builtin.debug:
        msg: noop''', '''  roles:
    - redbutton.deploy.rollout''')


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class Bench(object):

    def __init__(self, workdir):
        self.workdir = workdir
        self.env = dict(os.environ)
        self.env['ANSIBLE_COLLECTIONS_PATH'] = os.path.join(REPO, '.build', 'collections')
        self.env['ANSIBLE_COLLECTIONS_SCAN_SYS_PATH'] = 'false'
        self.env['ANSIBLE_NOCOLOR'] = '1'
        self.env['ANSIBLE_CALLBACK_PLUGINS'] = os.path.join(REPO, 'tests', 'bench', 'callbacks')
        self.env['ANSIBLE_CALLBACKS_ENABLED'] = 'count_calls'
        self.counts = os.path.join(workdir, 'calls.json')
        self.env['REDBUTTON_COUNT_CALLS'] = self.counts
        # Its own: the kept module payload (and everything else Ansible leaves there) starts empty.
        self.env['ANSIBLE_LOCAL_TEMP'] = os.path.join(workdir, 'local-temp')
        self.bindir = os.path.dirname(sys.executable)
        self.inventory = os.path.join(workdir, 'inventory.ini')
        with open(self.inventory, 'w', encoding='utf-8') as handle:
            handle.write('localhost ansible_connection=local ansible_python_interpreter=%s\n' % sys.executable)
        least = os.path.join(workdir, 'roles', 'least')
        os.makedirs(os.path.join(least, 'meta'))
        shutil.copy(os.path.join(REPO, 'roles', 'rollout', 'meta', 'argument_specs.yml'), os.path.join(least, 'meta'))
        self._write(os.path.join('roles', 'least', 'tasks', 'main.yml'), LEAST_ROLE_TASKS)
        self.floor_playbook, self.ping_playbook, self.one_call_playbook, self.least_playbook, self.role_playbook = [
            self._write(name, text) for name, text in (
                ('floor.yml', FLOOR_PLAYBOOK), ('ping.yml', PING_PLAYBOOK), ('one-call.yml', ONE_CALL_PLAYBOOK),
                ('least.yml', ROLE_PLAYBOOK.replace('redbutton.deploy.rollout', least)), ('role.yml', ROLE_PLAYBOOK))]
        self.artifacts = {}
        self.calls = {}
        self.engine = {}  # (case, step): the engine's step seconds of each round (the work on the host)
        self.last_engine = 0.0

    def _write(self, name, text):
        path = os.path.join(self.workdir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w', encoding='utf-8') as handle:
            handle.write(text)
        return path

    def build(self):
        base, _checksum = build_releases.build_release(os.path.join(self.workdir, 'art'), 'v1')
        big, checksum = build_releases.build_release(os.path.join(self.workdir, 'art'), 'v2', 2000, 10 * 1024)
        self.artifacts = {'v1': base, 'v2': big}
        return big, checksum

    def playbook(self, args, inventory=None, env=None):
        """(seconds, changed count, {module: calls}) of one ansible-playbook run."""
        cmd = [os.path.join(self.bindir, 'ansible-playbook'), '-i', inventory or self.inventory] + args
        if os.path.exists(self.counts):
            os.unlink(self.counts)
        start = time.monotonic()
        proc = subprocess.run(cmd, env=env or self.env, capture_output=True, text=True, check=False)
        elapsed = time.monotonic() - start
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-2000:])
            raise SystemExit('ansible-playbook %s exited %d' % (' '.join(args), proc.returncode))
        changed = sum(int(part.split('=')[1]) for line in proc.stdout.splitlines() if ' : ok=' in line
                      for part in line.split() if part.startswith('changed='))
        with open(self.counts, encoding='utf-8') as handle:
            calls = json.load(handle)
        self.last_engine = calls.pop('_engine_seconds', 0.0)
        merged = {}
        for host_calls in calls.values():
            for module, count in host_calls.items():
                merged[module] = merged.get(module, 0) + count
        return elapsed, changed, merged

    def vars_file(self, root, port, with_app, host_python=None):
        data = {'redbutton_app': 'bench', 'redbutton_root': root, 'redbutton_keep_releases': 5,
                'redbutton_shared_paths': ['data']}
        if with_app:
            python = host_python or sys.executable
            pid = os.path.join(root, 'shared', 'app.pid')
            data.update({
                'redbutton_service': {
                    'manager': 'command',
                    'start_command': '%s server.py --daemon --port %d --pidfile %s' % (python, port, pid),
                    'stop_command': '%s server.py --stop --pidfile %s' % (python, pid),
                },
                'redbutton_health_checks': [
                    {'name': 'health', 'url': 'http://127.0.0.1:%d/health' % port, 'retries': 20, 'delay': 1},
                    {'name': 'home page', 'url': 'http://127.0.0.1:%d/' % port, 'retries': 20, 'delay': 1},
                ],
                # The sample app appends to data/hits.txt on every request.
                'redbutton_baseline_shared_exclude': ['*.pid', '*.log', 'hits.txt'],
            })
        path = os.path.join(self.workdir, os.path.basename(root) + '.vars.json')
        with open(path, 'w', encoding='utf-8') as handle:
            json.dump(data, handle)
        return ['-e', '@' + path]

    def rollout(self, extra, release, **kwargs):
        return self.playbook(['redbutton.deploy.rollout'] + extra + [
            '-e', 'redbutton_release=%s' % release, '-e', 'redbutton_artifact=%s' % self.artifacts[release]], **kwargs)

    def note(self, case, calls):
        self.calls[case] = calls
        self.engine.setdefault(case, []).append(self.last_engine)

    def round(self, index, with_app):
        name = 'app' if with_app else 'defaults'
        root = os.path.join(self.workdir, '%s%d' % (name, index))
        port = free_port()
        extra = self.vars_file(root, port, with_app)
        times = {}
        try:
            self.rollout(extra, 'v1')  # the release to roll back to, not timed
            times['rollout'], dummy, calls = self.rollout(extra, 'v2')
            self.note((name, 'rollout'), calls)
            if not with_app:
                times['re-run'], changed, calls = self.rollout(extra, 'v2')
                self.note((name, 're-run'), calls)
                if changed:
                    raise SystemExit('the re-run reported changed=%d: it is not idempotent' % changed)
                # The same re-run without the kept payload: ansible-core builds it, as it does without this collection's cache.
                cold = dict(self.env, REDBUTTON_PAYLOAD_CACHE='false')
                times['re-run, payload built'], dummy, calls = self.rollout(extra, 'v2', env=cold)
                self.note((name, 're-run, payload built'), calls)
                # The yardsticks: the same re-run as one transition call alone, as the least role around it, and as the
                # rollout role alone.
                for label, playbook in (('one call', self.one_call_playbook), ('least role', self.least_playbook),
                                        ('role alone', self.role_playbook)):
                    times[label], changed, calls = self.playbook([playbook] + extra + [
                        '-e', 'redbutton_release=v2', '-e', 'redbutton_artifact=%s' % self.artifacts['v2']])
                    if changed or calls != {'redbutton.deploy.transition': 1}:
                        raise SystemExit('the %s yardstick changed=%d with %s: it did not re-run v2' % (label, changed, calls))
            times['rollback'], dummy, calls = self.playbook(['redbutton.deploy.rollback'] + extra)
            self.note((name, 'rollback'), calls)
            check_rolled_back(root)
        finally:
            stop_app(root)
        shutil.rmtree(root, ignore_errors=True)
        return times


def check_rolled_back(root):
    with open(os.path.join(root, '.redbutton', 'ledger.json'), encoding='utf-8') as handle:
        ledger = json.load(handle)
    if ledger['current'] != 'v1' or ledger['releases']['v2']['status'] != 'rolled_back':
        raise SystemExit('the rollback did not restore v1: ledger says current=%s' % ledger['current'])


def stop_app(root):
    server = os.path.join(root, 'current', 'server.py')
    if os.path.exists(server):
        subprocess.run([sys.executable, server, '--stop', '--pidfile', os.path.join(root, 'shared', 'app.pid')],
                       check=False, capture_output=True)


def describe_calls(calls):
    total = sum(calls.values())
    return '%d module call%s (%s)' % (total, '' if total == 1 else 's',
                                      ', '.join('%s %d' % (m.split('.')[-1], n) for m, n in sorted(calls.items())))


def report(floor, results, calls, engine):
    lines = []
    missed = []
    for (case, step), target in sorted(TARGETS.items(), key=lambda item: (item[0][0] != 'defaults', item[0])):
        values = results.get(case, {}).get(step)
        if not values:
            continue
        value = statistics.median(values)
        over = value - floor
        # What the run spent besides the engine's own steps on the host: Ansible and the roles.
        rest = statistics.median(v - e for v, e in zip(values, engine.get((case, step), [0.0] * len(values)))) - floor
        verdict = 'ok' if over <= target else 'MISSED by %.2f s' % (over - target)
        if over > target:
            missed.append('%s %s' % (case, step))
        lines.append('%-8s %-9s %5.2f s   floor + %4.2f s   target floor + %.1f s: %-17s %s; without the engine\'s steps: floor + %.2f s'
                     % (case, step, value, over, target, verdict, describe_calls(calls.get((case, step), {})), rest))
    built = results.get('defaults', {}).get('re-run, payload built')
    if built:
        value = statistics.median(built)
        lines.append('defaults re-run without the kept payload (REDBUTTON_PAYLOAD_CACHE=false, ansible-core builds it): %.2f s   '
                     'floor + %.2f s (not a target)' % (value, value - floor))
    for label, name, what in (
            ('one call', 'one transition call', 'the least a re-run can cost (a one-task playbook, the stage step of the current '
                                                'release, the kept payload; not a target)'),
            ('least role', 'the least role', 'the rollout role\'s argument validation, the same call and the artifacts for '
                                             'AWX, in a role of their own: the least a role with its interface costs (not a target)'),
            ('role alone', 'the rollout role alone', 'the same re-run by the role in a one-play playbook, without the rollout '
                                                     'playbook\'s waves, gates and put-back (not a target)')):
        if results.get('defaults', {}).get(label):
            value = statistics.median(results['defaults'][label])
            lines.append('%-24s %5.2f s   floor + %.2f s: %s' % (name, value, value - floor, what))
    return lines, missed


def capture_bench(workdir, path, repeat):
    """The baseline capture of the bench release tree against find | xargs sha256sum."""
    sys.path.insert(0, os.path.join(REPO, '.build', 'collections'))
    from ansible_collections.redbutton.deploy.plugins.module_utils._baseline import Baseline  # pylint: disable=import-error
    tree = os.path.join(workdir, 'capture', 'releases', 'v2')
    os.makedirs(tree)
    subprocess.run(['tar', '-xzf', path, '-C', tree], check=True)
    total = sum(os.path.getsize(os.path.join(d, f)) for d, dummy, files in os.walk(tree) for f in files)
    subprocess.run(['bash', '-c', 'find . -type f -print0 | xargs -0 cat > /dev/null'], cwd=tree, check=True)
    times = {'sha256sum': [], 'capture': []}
    for index in range(repeat):
        start = time.perf_counter()
        subprocess.run(['bash', '-o', 'pipefail', '-c', 'find . -type f -print0 | xargs -0 sha256sum > /dev/null'], cwd=tree, check=True)
        times['sha256sum'].append(time.perf_counter() - start)
        start = time.perf_counter()
        # A fresh name each time and verify_content always: every file is read and hashed.
        Baseline(os.path.join(workdir, 'capture'), 'bench-%d' % index, verify_content='always').capture(
            [{'name': 'release', 'path': tree}])
        times['capture'].append(time.perf_counter() - start)
    reference = min(times['sha256sum'])
    capture = min(times['capture'])
    ratio = reference / capture
    verdict = 'ok' if ratio >= CAPTURE_TARGET else 'MISSED'
    figures = (total / 1e6, capture, total / 1e6 / capture, reference, total / 1e6 / reference, ratio * 100, CAPTURE_TARGET * 100, verdict)
    line = ('capture  2,000 files %.1f MB: %.3f s (%.0f MB/s); find | xargs sha256sum %.3f s (%.0f MB/s): capture at %.0f%% of '
            'sha256sum throughput, target >= %.0f%%: %s' % figures)
    return line, (verdict != 'ok')


def packaging_line():
    """Ansible builds each module's AnsiballZ payload once per ansible-playbook run, on the controller,
    parsing every module_utils file the module can import: the first call of a module in a run pays it
    (for transition, only a run without the payload an earlier run kept)."""
    code = (
        'import datetime, io, sys, time, zipfile\n'
        'from ansible.executor import module_common\n'
        'from ansible._internal._ansiballz import _builder\n'
        'from ansible.plugins.loader import init_plugin_loader\n'
        'init_plugin_loader([sys.argv[1]])\n'
        'for path, fqn in zip(sys.argv[2::2], sys.argv[3::2]):\n'
        '    zf = zipfile.ZipFile(io.BytesIO(), "w")\n'
        '    start = time.perf_counter()\n'
        '    module_common.recursive_finder(fqn.rsplit(".", 1)[1], fqn, open(path, "rb").read(), zf, datetime.datetime.now(),\n'
        '                                   _builder.ExtensionManager.create({}))\n'
        '    print("%.2f %d %d" % (time.perf_counter() - start, len(zf.namelist()), sum(i.file_size for i in zf.infolist()) // 1024))\n')
    import ansible.modules  # pylint: disable=import-outside-toplevel
    modules = [(os.path.join(REPO, 'plugins', 'modules', 'transition.py'), 'ansible_collections.redbutton.deploy.plugins.modules.transition'),
               (os.path.join(os.path.dirname(ansible.modules.__file__), 'ping.py'), 'ansible.modules.ping')]
    proc = subprocess.run([sys.executable, '-c', code, os.path.join(REPO, '.build', 'collections')] + [x for pair in modules for x in pair],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0 or len(proc.stdout.split()) != 6:
        return 'packaging: not measured with this ansible-core (%s)' % (proc.stderr.strip().splitlines() or ['no output'])[-1]
    transition, ping = [line.split() for line in proc.stdout.splitlines()]
    return ('packaging (once per run and module, on the controller; transition\'s is kept between runs): '
            'transition %s s (%s files, %s KB), ping %s s (%s files, %s KB)' % tuple(transition + ping))


def podman_bench(bench):
    """Rollout and rollback through a podman connection into one container; None when not possible."""
    if not shutil.which('podman'):
        return ['podman   skipped: podman is not installed']
    env = dict(bench.env)
    env.setdefault('CONTAINERS_CONF', os.path.join(REPO, 'tests', 'containers', 'containers.conf'))
    if subprocess.run(['podman', 'image', 'exists', IMAGE], env=env, check=False).returncode != 0:
        return ['podman   skipped: no image %s (scripts/build-image.sh builds it)' % IMAGE]
    bundled = subprocess.run([sys.executable, '-c', 'import ansible_collections.containers.podman as m, os; '
                              'print(os.path.abspath(m.__path__[0] + "/../../.."))'], capture_output=True, text=True, check=False)
    if bundled.returncode != 0:
        return ['podman   skipped: the containers.podman collection is not installed']
    env['ANSIBLE_COLLECTIONS_PATH'] += ':' + bundled.stdout.strip()
    name = 'rb-bench-%d' % os.getpid()
    subprocess.run(['podman', 'run', '-d', '--name', name, '--systemd=always', IMAGE, '/sbin/init'],
                   env=env, check=True, capture_output=True)
    try:
        inventory = os.path.join(bench.workdir, 'podman.ini')
        with open(inventory, 'w', encoding='utf-8') as handle:
            handle.write('%s ansible_connection=containers.podman.podman ansible_python_interpreter=/usr/bin/python3\n' % name)
        root = '/srv/bench'
        extra = bench.vars_file(root, 8080, True, host_python='/usr/bin/python3')
        floor, dummy, dummy = bench.playbook([bench.floor_playbook], inventory=inventory, env=env)
        bench.rollout(extra, 'v1', inventory=inventory, env=env)
        rollout, dummy, rollout_calls = bench.rollout(extra, 'v2', inventory=inventory, env=env)
        rollback, dummy, rollback_calls = bench.playbook(['redbutton.deploy.rollback'] + extra, inventory=inventory, env=env)
        return ['podman   floor %.2f s (one no-op task through the container connection)' % floor,
                'podman   rollout   %5.2f s   floor + %4.2f s   %s' % (rollout, rollout - floor, describe_calls(rollout_calls)),
                'podman   rollback  %5.2f s   floor + %4.2f s   %s' % (rollback, rollback - floor, describe_calls(rollback_calls))]
    finally:
        subprocess.run(['podman', 'rm', '-f', '-t', '0', name], env=env, check=False, capture_output=True)


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
    parser.add_argument('--strict', action='store_true', help='exit 1 when a target is missed')
    parser.add_argument('--engine', action='store_true', help='also time the release engine alone against tar -xzf')
    parser.add_argument('--no-podman', action='store_true', help='skip the runs through a podman connection')
    args = parser.parse_args(argv)
    workdir = tempfile.mkdtemp(prefix='redbutton-bench-')
    try:
        bench = Bench(workdir)
        path, checksum = bench.build()
        size = os.path.getsize(path)
        out = sys.stdout
        out.write('archive: 2,000 files of 10 KiB + the app, %.1f MB compressed, %s\n' % (size / 1e6, checksum))
        out.write('load average before: %.2f %.2f %.2f on %d CPUs\n' % (os.getloadavg() + (os.cpu_count(),)))
        bench.playbook([bench.floor_playbook])  # warm the caches once
        floors, pings, results = [], [], {'defaults': {}, 'app': {}}
        for index in range(args.repeat):
            floors.append(bench.playbook([bench.floor_playbook])[0])
            pings.append(bench.playbook([bench.ping_playbook])[0])
            for case, with_app in (('defaults', False), ('app', True)):
                for step, seconds in bench.round(index, with_app).items():
                    results[case].setdefault(step, []).append(seconds)
        floor = statistics.median(floors)
        out.write('floor (one no-op task)   %5.2f s   (runs: %s)\n' % (floor, ', '.join('%.2f' % f for f in floors)))
        out.write('one ping module task     %5.2f s   floor + %.2f s: what one module call costs here (the targets assume 0.25 s)\n'
                  % (statistics.median(pings), statistics.median(pings) - floor))
        out.write(packaging_line() + '\n')
        lines, missed = report(floor, results, bench.calls, bench.engine)
        out.write('\n'.join(lines) + '\n')
        line, capture_missed = capture_bench(workdir, path, max(args.repeat, 3))
        out.write(line + '\n')
        if capture_missed:
            missed.append('capture')
        if not args.no_podman:
            out.write('\n'.join(podman_bench(bench)) + '\n')
        if args.engine:
            out.write(engine_bench(workdir, path, max(args.repeat, 3)) + '\n')
        out.write('load average after: %.2f %.2f %.2f (other work on the machine inflates every case, the floor too)\n'
                  % os.getloadavg())
        if missed:
            out.write('missed: %s\n' % ', '.join(missed))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if args.strict and missed else 0


if __name__ == '__main__':
    sys.exit(main())
