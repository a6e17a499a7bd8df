# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The built collection tarball: it carries the LICENSE and none of the caches a working tree
collects (coverage data, editor settings, type checker and pytest caches, the changelog
plugin cache, byte code, the virtualenv), whatever the tree holds when it is built."""
import os
import shutil
import subprocess
import sys
import tarfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
GALAXY = os.path.join(os.path.dirname(sys.executable), 'ansible-galaxy')

# What a developer's tree collects; none of it may reach the tarball.
CACHES = [
    '.coverage',
    '.coverage.host.1234',
    '.idea/workspace.xml',
    '.vscode/settings.json',
    '.mypy_cache/3.11/cache.json',
    '.pytest_cache/v/cache/lastfailed',
    'tests/unit/.pytest_cache/v/cache/nodeids',
    'changelogs/.plugin-cache.yaml',
    '__pycache__/conftest.cpython-311.pyc',
    'plugins/module_utils/__pycache__/_release.cpython-311.pyc',
    'plugins/modules/stray.pyc',
    '.venv/bin/python',
    '.build/collections/marker',
    'tests/output/junit.xml',
    'htmlcov/index.html',
]


def tracked_files():
    out = subprocess.run(['git', 'ls-files', '-z'], cwd=REPO, capture_output=True, check=True).stdout
    return [name for name in out.decode().split('\0') if name]


def test_tarball_has_the_license_and_no_caches(tmp_path):
    tree = tmp_path / 'tree'
    for name in tracked_files() + ['LICENSE']:
        source = os.path.join(REPO, name)
        if not os.path.isfile(source):
            continue
        target = tree / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, str(target))
    for name in CACHES:
        target = tree / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text('cache\n')
    result = subprocess.run([GALAXY, 'collection', 'build', '--output-path', str(tmp_path), '--force'],
                            cwd=str(tree), capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    built = [name for name in os.listdir(str(tmp_path)) if name.endswith('.tar.gz')]
    assert len(built) == 1
    with tarfile.open(str(tmp_path / built[0])) as tar:
        names = tar.getnames()
    tracked_dirs = set(os.path.dirname(name) for name in tracked_files())
    forbidden = set()
    for cache in CACHES:
        path = cache
        while path and path not in tracked_dirs:  # the file and each directory only the cache made
            forbidden.add(path)
            path = os.path.dirname(path)
    carried = sorted(name for name in names if name in forbidden or name.endswith('.pyc'))
    assert carried == [], 'the tarball carries caches: %s (add them to build_ignore in galaxy.yml)' % carried
    assert 'LICENSE' in names and 'plugins/module_utils/_release.py' in names
    with open(os.path.join(REPO, 'LICENSE')) as handle:
        text = handle.read()
    assert 'GNU GENERAL PUBLIC LICENSE' in text and 'Version 3, 29 June 2007' in text
    assert 'END OF TERMS AND CONDITIONS' in text
