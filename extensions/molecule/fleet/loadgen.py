# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A bounded stream of requests through the load balancer, counting what users would see.

    python3 loadgen.py --url http://10.88.0.5/ --rate 20 --stop-file F --out counts.json [--max-seconds 300]

Sends GET url at a fixed rate (each request on its own connection and thread, as separate users
would), until the stop file appears or --max-seconds passed, whichever comes first, so it never
outlives the scenario. Then it waits for the requests still running and writes, atomically:

    {"sent": 1234, "ok": 1234, "failed": 0, "versions": {"v1": 600, "v2": 634},
     "failures": {"HTTP 503": 3, "ConnectionResetError": 1}, "first_failures": [...],
     "seconds": 61.7, "stopped_by": "stop file"}

A request is ok when it answers 200 with a release id (the sample app's GET /); anything else
(another status, a reset, a timeout) is a failure, named in "failures".
"""

import argparse
import collections
import json
import os
import re
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

RELEASE = re.compile(r'^v[0-9]+$')


class Counts(object):
    def __init__(self):
        self.lock = threading.Lock()
        self.ok = 0
        self.versions = collections.Counter()
        self.failures = collections.Counter()
        self.first_failures = []
        self.started = time.monotonic()

    def success(self, version):
        with self.lock:
            self.ok += 1
            self.versions[version] += 1

    def failure(self, reason):
        with self.lock:
            self.failures[reason] += 1
            if len(self.first_failures) < 10:
                self.first_failures.append({'after': round(time.monotonic() - self.started, 2), 'reason': reason})


def request(url, timeout, counts):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status, body = response.status, response.read().decode('utf-8', 'replace').strip()
    except urllib.error.HTTPError as exc:
        counts.failure('HTTP %d' % exc.code)
        return
    # Every way a request can fail is a failure the user saw: count it, whatever it is.
    except Exception as exc:  # pylint: disable=broad-except
        reason = getattr(exc, 'reason', None)
        counts.failure(type(reason).__name__ if isinstance(reason, BaseException) else type(exc).__name__)
        return
    if status == 200 and RELEASE.match(body):
        counts.success(body)
    else:
        counts.failure('HTTP %d %r' % (status, body[:40]))


def run(args):
    counts = Counts()
    interval = 1.0 / args.rate
    sent = 0
    stopped_by = 'max seconds'
    deadline = counts.started + args.max_seconds
    with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        while True:
            now = time.monotonic()
            if os.path.exists(args.stop_file):
                stopped_by = 'stop file'
                break
            if now >= deadline:
                break
            pool.submit(request, args.url, args.timeout, counts)
            sent += 1
            # The schedule, not the last request, sets the pace: a slow answer does not slow the stream.
            time.sleep(max(0.0, counts.started + sent * interval - time.monotonic()))
    summary = {
        'url': args.url, 'rate': args.rate, 'sent': sent, 'ok': counts.ok, 'failed': sum(counts.failures.values()),
        'versions': dict(sorted(counts.versions.items())), 'failures': dict(counts.failures),
        'first_failures': counts.first_failures, 'seconds': round(time.monotonic() - counts.started, 1),
        'stopped_by': stopped_by,
    }
    tmp = args.out + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as handle:
        json.dump(summary, handle, indent=1, sort_keys=True)
    os.replace(tmp, args.out)
    return summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--url', required=True, help='what to GET, through the load balancer')
    parser.add_argument('--rate', type=float, default=20.0, help='requests per second (default 20)')
    parser.add_argument('--stop-file', required=True, help='stop once this file exists')
    parser.add_argument('--out', required=True, help='write the counts here (JSON)')
    parser.add_argument('--max-seconds', type=float, default=300.0, help='stop after this long anyway (default 300)')
    parser.add_argument('--timeout', type=float, default=10.0, help='seconds one request may take (default 10)')
    parser.add_argument('--concurrency', type=int, default=64, help='requests in flight at most (default 64)')
    args = parser.parse_args(argv)
    summary = run(args)
    sys.stdout.write(json.dumps({k: summary[k] for k in ('sent', 'ok', 'failed', 'versions', 'failures')}) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
