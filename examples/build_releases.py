#!/usr/bin/env python3
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build the sample app's release archives, byte for byte the same on every run.

    python3 examples/build_releases.py OUTDIR [--versions v1 v2 v3]
                                             [--filler-files N --filler-bytes B]

Writes OUTDIR/app-<version>.tar.gz and OUTDIR/SHA256SUMS. The archive root is the
release root (the `tar -C dir .` layout: ./VERSION, ./server.py, ./config/app.json).
Members are sorted, owned by 0:0, dated FIXED_MTIME, and the gzip header carries
mtime 0 and no file name, so the checksums only change when the content does.

v3 is deliberately broken: its config/app.json does not parse, so the app's
/health answers 500 and a rollout of v3 is rolled back automatically.

--filler-files/--filler-bytes add N files of B pseudo-random (incompressible,
seeded) bytes under ./assets/: the benchmark's 2,000-file / 20 MB archive.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import random
import sys
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, 'app', 'server.py')
FIXED_MTIME = 1700000000  # 2023-11-14T22:13:20Z: any fixed date will do
VERSIONS = ('v1', 'v2', 'v3')
BROKEN = ('v3',)


def release_files(version, filler_files=0, filler_bytes=0):
    """{archive path: (bytes, mode)} of one release, without directories."""
    with open(SERVER, 'rb') as handle:
        server = handle.read()
    if version in BROKEN:
        # The bug the demo catches: a config file cut short (it does not parse).
        config = b'{"healthy": true, "greeting": "hello from ' + version.encode() + b'"\n'
    else:
        config = (json.dumps({'healthy': True, 'greeting': 'hello from %s' % version},
                             indent=2, sort_keys=True) + '\n').encode()
    files = {
        'VERSION': (version.encode() + b'\n', 0o644),
        'server.py': (server, 0o755),
        'config/app.json': (config, 0o644),
    }
    rng = random.Random('redbutton-%s' % version)
    for index in range(filler_files):
        files['assets/%02d/file%05d.bin' % (index % 50, index)] = (rng.randbytes(filler_bytes), 0o644)
    return files


def _directories(paths):
    dirs = set()
    for path in paths:
        parts = path.split('/')[:-1]
        for depth in range(1, len(parts) + 1):
            dirs.add('/'.join(parts[:depth]))
    return dirs


def _info(name, kind, size=0, mode=0o644):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    info.mode = mode
    info.mtime = FIXED_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ''
    return info


def build_release(outdir, version, filler_files=0, filler_bytes=0):
    """Write outdir/app-<version>.tar.gz; return (path, 'sha256:<hex>')."""
    files = release_files(version, filler_files, filler_bytes)
    members = [('.', None)] + [(d, None) for d in _directories(files)] + [(p, files[p]) for p in files]
    members.sort(key=lambda item: item[0])
    raw = io.BytesIO()
    with gzip.GzipFile(filename='', mode='wb', fileobj=raw, mtime=0, compresslevel=6) as gz:
        with tarfile.open(fileobj=gz, mode='w', format=tarfile.PAX_FORMAT) as tar:
            for name, content in members:
                arcname = name if name == '.' else './' + name
                if content is None:
                    tar.addfile(_info(arcname, tarfile.DIRTYPE, mode=0o755))
                else:
                    data, mode = content
                    tar.addfile(_info(arcname, tarfile.REGTYPE, len(data), mode), io.BytesIO(data))
    data = raw.getvalue()
    os.makedirs(outdir, exist_ok=True)
    path = os.path.join(outdir, 'app-%s.tar.gz' % version)
    tmp = path + '.tmp'
    with open(tmp, 'wb') as handle:
        handle.write(data)
    os.replace(tmp, path)
    return path, 'sha256:' + hashlib.sha256(data).hexdigest()


def build_all(outdir, versions=VERSIONS, filler_files=0, filler_bytes=0):
    """Build every version; write SHA256SUMS; return {version: (path, checksum)}."""
    built = {}
    for version in versions:
        built[version] = build_release(outdir, version, filler_files, filler_bytes)
    lines = ['%s  %s\n' % (checksum.split(':', 1)[1], os.path.basename(path))
             for path, checksum in (built[v] for v in versions)]
    with open(os.path.join(outdir, 'SHA256SUMS'), 'w', encoding='utf-8') as handle:
        handle.writelines(lines)
    return built


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('outdir', help='directory to write the archives into (created if missing)')
    parser.add_argument('--versions', nargs='+', default=list(VERSIONS), help='versions to build (default: v1 v2 v3)')
    parser.add_argument('--filler-files', type=int, default=0, help='extra files under ./assets/ (default 0)')
    parser.add_argument('--filler-bytes', type=int, default=10240, help='size of each extra file (default 10240)')
    args = parser.parse_args(argv)
    for version, (path, checksum) in build_all(args.outdir, args.versions, args.filler_files, args.filler_bytes).items():
        sys.stdout.write('%s %s %s\n' % (version, path, checksum))
    return 0


if __name__ == '__main__':
    sys.exit(main())
