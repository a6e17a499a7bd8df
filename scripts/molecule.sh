#!/usr/bin/env bash
# What `make molecule` runs: every Molecule scenario of the collection in real podman
# containers with systemd, one after the other, each timed.
#
#   scripts/molecule.sh                  all scenarios under extensions/molecule/
#   scripts/molecule.sh default fleet    only these
#
# Molecule runs from the collection root: seeing galaxy.yml there, it takes its scenarios
# from extensions/molecule/<name>/ and its base config from extensions/molecule/config.yml.
# Whatever happens (a failed scenario, Ctrl-C), the scenarios' containers, and any
# network or volume they made, are removed: they all carry Molecule's label owner=molecule
# and our name prefix rb-, and nothing else is touched.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
export PATH="$repo/.venv/bin:$PATH"
export CONTAINERS_CONF="$repo/tests/containers/containers.conf"
# This collection through the `make link` symlink, then the collections the `ansible`
# package bundles in the venv (the podman driver needs containers.podman): named
# explicitly because the Makefile turns ANSIBLE_COLLECTIONS_SCAN_SYS_PATH off.
bundled=$(python -c 'import ansible_collections.containers.podman as m, os; print(os.path.abspath(m.__path__[0] + "/../../.."))')
export ANSIBLE_COLLECTIONS_PATH="${ANSIBLE_COLLECTIONS_PATH:-$repo/.build/collections}:$bundled"
export ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false
export ANSIBLE_FORCE_COLOR=${ANSIBLE_FORCE_COLOR:-0}
PREFIX=rb-

say() { echo "molecule.sh: $*" >&2; }

leftovers() {
    podman ps -a --filter label=owner=molecule --filter "name=^$PREFIX" --format '{{.Names}}'
}

cleanup() {
    local names
    command -v podman >/dev/null || return 0
    names=$(leftovers)
    if [ -n "$names" ]; then
        say "removing containers left behind: $(echo $names)"
        echo "$names" | xargs podman rm --force --volumes --time 2 >/dev/null
    fi
    podman network ls --filter "name=^$PREFIX" --format '{{.Name}}' | xargs -r podman network rm --force >/dev/null
    podman volume ls --filter "name=^$PREFIX" --format '{{.Name}}' | xargs -r podman volume rm --force >/dev/null
}
interrupted=
trap cleanup EXIT
# Ctrl-C also reaches molecule, which destroys its instances; then stop, run no more scenarios.
trap 'interrupted=1' INT TERM

if [ $# -gt 0 ]; then
    scenarios=("$@")
else
    scenarios=()
    for file in extensions/molecule/*/molecule.yml; do
        scenarios+=("$(basename "$(dirname "$file")")")
    done
fi
for name in "${scenarios[@]}"; do
    [ -f "extensions/molecule/$name/molecule.yml" ] || {
        say "no scenario '$name' (there is no extensions/molecule/$name/molecule.yml)"; exit 2; }
done

start_all=$(date +%s)
REDBUTTON_MOLECULE_IMAGE=$(scripts/build-image.sh)
export REDBUTTON_MOLECULE_IMAGE
image_time=$(( $(date +%s) - start_all ))

declare -A took result
failed=()
for name in "${scenarios[@]}"; do
    say "scenario $name: molecule test -s $name"
    start=$(date +%s)
    if molecule test -s "$name"; then
        result[$name]=passed
    else
        result[$name]=FAILED
        failed+=("$name")
        # molecule destroys after a failure too (destroy: always), this catches what it could not
    fi
    took[$name]=$(( $(date +%s) - start ))
    cleanup
    if [ -n "$interrupted" ]; then
        say "interrupted: not running the scenarios after $name"
        break
    fi
done

{
    echo
    echo "molecule.sh: base image     ${image_time} s"
    for name in "${scenarios[@]}"; do
        [ -n "${took[$name]:-}" ] || continue
        printf 'molecule.sh: %-14s %4d s  %s\n' "$name" "${took[$name]}" "${result[$name]}"
    done
    printf 'molecule.sh: %-14s %4d s\n' total $(( $(date +%s) - start_all ))
} >&2

left=$(leftovers)
if [ -n "$left" ]; then
    say "containers still present after cleanup: $left"
    exit 1
fi
if [ -n "$interrupted" ]; then
    exit 130
fi
if [ ${#failed[@]} -gt 0 ]; then
    say "failed scenarios: ${failed[*]}"
    exit 1
fi
