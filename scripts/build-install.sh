#!/usr/bin/env bash
# The collection builds into a tarball that installs, and what a user gets from the
# installed copy works: every module's documentation renders with ansible-doc, and
# every playbook parses as `ansible-playbook redbutton.deploy.<name>`.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-$repo/.venv}
export PATH="$venv/bin:$PATH"
export ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cd "$repo"
ansible-galaxy collection build --output-path "$work" --force >/dev/null
tarball=$(ls "$work"/redbutton-deploy-*.tar.gz)
echo "built $(basename "$tarball") ($(du -k "$tarball" | cut -f1) KiB)"
# Listed once: `tar | grep -q` under pipefail fails when grep stops reading early (tar gets SIGPIPE).
listing=$(tar -tzf "$tarball")
if grep -E '(^|/)(\.venv|\.build|\.git|tests/output|\.mypy_cache|\.pytest_cache|\.idea|__pycache__)(/|$)|(^|/)\.coverage|\.pyc$|^changelogs/\.plugin-cache\.yaml$' <<<"$listing"; then
  echo "build-install: the tarball carries development files (see build_ignore in galaxy.yml)" >&2
  exit 1
fi
if ! grep -qx 'LICENSE' <<<"$listing"; then
  echo "build-install: the tarball has no LICENSE" >&2
  exit 1
fi
# Only the temporary path: the development link (make link) must not count as installed.
export ANSIBLE_COLLECTIONS_PATH="$work/installed"
# --no-deps: Galaxy is not reachable from CI, and resolving the dependencies (galaxy.yml) would ask it.
# A user's `ansible-galaxy collection install redbutton.deploy` installs them; here the manifest must
# declare them, and the tests run with the copies the `ansible` package bundles.
ansible-galaxy collection install --no-deps --force "$tarball" -p "$work/installed" >/dev/null
installed="$work/installed/ansible_collections/redbutton/deploy"
if ! test -f "$installed/MANIFEST.json"; then
  echo "build-install: ansible-galaxy did not install $(basename "$tarball") into $work/installed" >&2
  exit 1
fi
if ! python -c 'import json, sys; sys.exit(0 if "community.general" in json.load(open(sys.argv[1]))["collection_info"]["dependencies"] else 1)' \
    "$installed/MANIFEST.json"; then
  echo "build-install: MANIFEST.json does not declare the dependency on community.general (galaxy.yml)" >&2
  exit 1
fi

for module in "$installed"/plugins/modules/*.py; do
  name=$(basename "$module" .py)
  out=$(ansible-doc "redbutton.deploy.$name")
  for section in OPTIONS EXAMPLES "RETURN VALUES"; do
    if ! grep -q "^$section" <<<"$out"; then
      echo "build-install: ansible-doc redbutton.deploy.$name has no $section section" >&2
      exit 1
    fi
  done
  echo "ansible-doc redbutton.deploy.$name: renders ($(wc -l <<<"$out") lines)"
done

cd "$work"
for playbook in "$installed"/playbooks/*.yml; do
  name=$(basename "$playbook" .yml)
  ansible-playbook -i localhost, "redbutton.deploy.$name" --syntax-check >/dev/null
  echo "ansible-playbook redbutton.deploy.$name: parses"
done
