#!/usr/bin/env bash
# ansible-test sanity, offline-safe: ansible-test wants the collection under a path
# ending in ansible_collections/redbutton/deploy, and downloads a pip bootstrap script
# from a host this network cannot reach. We copy the collection's files to such a path
# and give ansible-test a cached stand-in for that script (ensurepip, then pip install).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-$repo/.venv}
python_version=${SANITY_PYTHON:-3.11}
export PATH="$venv/bin:$PATH"

# 1. The pip bootstrap stand-in, for the pip version this ansible-test pins.
pip_version=$("$venv/bin/python" - <<'PY'
from ansible_test._internal.python_requirements import get_venv_packages
from ansible_test._internal.host_configs import NativePythonConfig
print(get_venv_packages(NativePythonConfig(version='3.11'))['pip'])
PY
)
cache=~/.ansible/test/cache/get_pip_${pip_version//./_}.py
mkdir -p "$(dirname "$cache")"
cat > "$cache" <<'PY'
"""Stand-in for get-pip.py (unreachable here): bootstrap pip with ensurepip, then
install the packages ansible-test asked for."""
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ('--no-setuptools', '--no-wheel')]
subprocess.check_call([sys.executable, '-m', 'ensurepip', '--upgrade', '--default-pip'])
subprocess.check_call([sys.executable, '-m', 'pip', 'install', '--disable-pip-version-check'] + [a for a in args if a != '--disable-pip-version-check'])
PY

# 2. The collection's files (tracked or new, never ignored ones) under ansible_collections/.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dest="$work/ansible_collections/redbutton/deploy"
mkdir -p "$dest"
(cd "$repo" && git ls-files -z --cached --others --exclude-standard | xargs -0 -I{} sh -c 'test -e "{}" && printf "%s\0" "{}"' | tar --null -T - -cf -) | tar -C "$dest" -xf -
cd "$dest"
git init -q && git add -A >/dev/null && git -c user.email=ci@localhost -c user.name=ci commit -qm sanity

# 3. Run it. --venv: ansible-test makes its own virtualenvs with its pinned linters.
ansible-test sanity --venv --python "$python_version" --color no "$@"
