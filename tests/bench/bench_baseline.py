# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: baseline tree capture and compare against sha256sum, in the same run.

Builds a tree of --files files (default 10,000) totalling about --size (default 1G),
with sizes drawn from a heavy-tailed distribution (many small files, a few large
ones, like a release tree with assets), in a temporary directory under --dir that is
removed afterwards. Then, with the page cache warm for every contender, it times

  * sha256sum over the same files (find -print0 | xargs -0 sha256sum), the reference;
  * the same with xargs -P <cpus> (for information: what the machine can do);
  * the baseline module's capture of the tree (module_utils, including the JSON write);
  * the compare of the unchanged tree (default verify_content=auto, then =always);
  * a capture under a new name while an earlier baseline of the tree exists (it reuses
    that baseline's hashes under the same rules as the compare).

Each is run --repeat times and the best time counts. Prints seconds, MB/s and ratios,
and exits 1 if the capture reaches less than --target (0.70) of sha256sum's throughput.

    .venv/bin/python tests/bench/bench_baseline.py [--size 1G] [--files 10000] [--dir /var/tmp]
"""

from __future__ import absolute_import, division, print_function

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS = os.path.join(REPO, '.build', 'collections')
LINK = os.path.join(COLLECTIONS, 'ansible_collections', 'redbutton', 'deploy')
if not os.path.islink(LINK):
    os.makedirs(os.path.dirname(LINK), exist_ok=True)
    os.symlink('../../../..', LINK)
sys.path.insert(0, COLLECTIONS)

from ansible_collections.redbutton.deploy.plugins.module_utils._baseline import Baseline  # noqa: E402
from ansible_collections.redbutton.deploy.plugins.module_utils._baseline_tree import RACY_MARGIN_NS, default_workers  # noqa: E402

MB = 1000 * 1000


def parse_size(text):
    units = {'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30}
    text = text.strip().upper().rstrip('B')
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def build_tree(top, files, total, seed=42):
    """files regular files, about total bytes, in a few levels of directories."""
    rng = random.Random(seed)
    weights = [rng.paretovariate(1.16) for dummy in range(files)]
    scale = total / sum(weights)
    sizes = [int(w * scale) for w in weights]
    sizes[0] += total - sum(sizes)
    blob = os.urandom(16 << 20)
    for index, size in enumerate(sizes):
        directory = os.path.join(top, 'pkg%02d' % (index % 40), 'mod%d' % (index % 9), 'sub%d' % (index % 3))
        if not os.path.isdir(directory):
            os.makedirs(directory)
        with open(os.path.join(directory, 'file%05d.dat' % index), 'wb') as handle:
            offset = rng.randrange(len(blob))
            while size > 0:
                chunk = blob[offset:offset + size]
                handle.write(chunk)
                size -= len(chunk)
                offset = 0
    for index in range(20):  # a release tree links into shared/: recorded as links
        os.symlink('../../shared/data%d' % index, os.path.join(top, 'pkg%02d' % index, 'data'))
    return sizes


def best(runs, action):
    times = []
    result = None
    for dummy in range(runs):
        start = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - start)
    return min(times), times, result


def sha256sum(top, parallel):
    command = 'find . -type f -print0 | xargs -0 %s sha256sum > /dev/null' % ('-P %d -n 500' % parallel if parallel > 1 else '')
    subprocess.run(['bash', '-o', 'pipefail', '-c', command], cwd=top, check=True)


def warm(top):
    subprocess.run(['bash', '-o', 'pipefail', '-c', 'find . -type f -print0 | xargs -0 cat > /dev/null'], cwd=top, check=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', 1)[0])
    parser.add_argument('--size', default='1G', help='total size of the tree (default 1G; K, M, G suffixes)')
    parser.add_argument('--files', type=int, default=10000, help='number of files (default 10000)')
    parser.add_argument('--dir', default=None, help='create the temporary tree under this directory (default: system temp)')
    parser.add_argument('--repeat', type=int, default=3, help='runs of each measurement; the best counts (default 3)')
    parser.add_argument('--target', type=float, default=0.70, help='minimum capture/sha256sum throughput ratio (default 0.70)')
    args = parser.parse_args()
    if not shutil.which('sha256sum'):
        parser.error('sha256sum (coreutils) is needed as the reference')

    total = parse_size(args.size)
    work = tempfile.mkdtemp(prefix='redbutton-bench-baseline-', dir=args.dir)
    try:
        root = os.path.join(work, 'app')
        tree = os.path.join(root, 'releases', 'v1')
        os.makedirs(tree)
        start = time.perf_counter()
        sizes = build_tree(tree, args.files, total)
        built = time.perf_counter() - start
        built_at = time.time_ns()
        nbytes = sum(sizes)
        cpus = default_workers()
        print('tree: %d files, %.1f MB (median %d B, largest %.1f MB) in %s; built in %.1f s; %d CPU(s), %d hashing threads'
              % (len(sizes), nbytes / MB, sorted(sizes)[len(sizes) // 2], max(sizes) / MB, tree, built, os.cpu_count(), cpus))
        warm(tree)

        ref, ref_all, dummy = best(args.repeat, lambda: sha256sum(tree, 1))
        par, par_all, dummy = best(args.repeat, lambda: sha256sum(tree, os.cpu_count() or 1))

        # The compare below may only reuse hashes of files older than the capture by the
        # racy margin: make sure the freshly built files are that old before capturing.
        wait = (built_at + RACY_MARGIN_NS + 5 * 10 ** 8 - time.time_ns()) / 1e9
        if wait > 0:
            time.sleep(wait)
        probes = [{'name': 'release', 'path': tree}]
        counter = iter(range(1000))

        baselines = os.path.join(root, '.redbutton', 'baselines')

        def capture():
            # a first capture: no earlier baseline whose hashes it could reuse
            shutil.rmtree(baselines, ignore_errors=True)
            return Baseline(root, 'bench-%d' % next(counter)).capture(probes)

        cap, cap_all, captured = best(args.repeat, capture)
        recorded = captured['baseline']['probes'][0]['result']
        if not captured['changed'] or recorded['bytes'] != nbytes:
            print('ERROR: the capture recorded %s bytes, the tree has %d' % (recorded['bytes'], nbytes))
            return 2
        name = captured['name']
        cmp_auto, cmp_auto_all, compared = best(args.repeat, lambda: Baseline(root, name).compare())
        if compared['differences']:
            print('ERROR: the unchanged tree compared with differences:\n%s' % compared['msg'])
            return 2
        cmp_full, cmp_full_all, compared = best(args.repeat, lambda: Baseline(root, name, verify_content='always').compare())
        if compared['differences']:
            print('ERROR: the unchanged tree compared with differences (always):\n%s' % compared['msg'])
            return 2
        size_json = os.path.getsize(captured['path'])
        recap, recap_all, dummy = best(args.repeat, lambda: Baseline(root, 'bench-%d' % next(counter)).capture(probes))

        def row(label, seconds, runs):
            print('  %-44s %7.3f s  %8.1f MB/s   (runs: %s)' % (label, seconds, nbytes / MB / seconds, ', '.join('%.3f' % t for t in runs)))

        print('results (best of %d, page cache warm):' % args.repeat)
        row('sha256sum (find | xargs sha256sum)', ref, ref_all)
        row('sha256sum, xargs -P %d (information)' % (os.cpu_count() or 1), par, par_all)
        row('baseline capture (first, incl. JSON write)', cap, cap_all)
        row('baseline compare, unchanged, verify auto', cmp_auto, cmp_auto_all)
        row('baseline compare, unchanged, verify always', cmp_full, cmp_full_all)
        row('baseline capture, new name, earlier one kept', recap, recap_all)
        ratio = ref / cap
        print('baseline file: %.1f MB of JSON' % (size_json / MB))
        print('capture throughput / sha256sum throughput: %.2f (target >= %.2f)' % (ratio, args.target))
        print('capture throughput / sha256sum -P%d throughput: %.2f' % (os.cpu_count() or 1, par / cap))
        print('compare (auto) is %.1fx faster than the first capture; compare (always) %.2fx' % (cap / cmp_auto, cap / cmp_full))
        if ratio < args.target:
            print('FAIL: capture reaches %.0f%% of sha256sum throughput, below the %.0f%% target' % (ratio * 100, args.target * 100))
            return 1
        print('OK: capture reaches %.0f%% of sha256sum throughput' % (ratio * 100))
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
