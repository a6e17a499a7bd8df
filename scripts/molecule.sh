#!/usr/bin/env bash
# What `make molecule` runs: every Molecule scenario of the collection in real podman
# containers with systemd, one after the other, each timed.
#
#   scripts/molecule.sh                  all scenarios under extensions/molecule/
#   scripts/molecule.sh default fleet    only these
#
# Molecule runs from the collection root: seeing galaxy.yml there, it takes its scenarios
# from extensions/molecule/<name>/ and its base config from extensions/molecule/config.yml.
#
# Whatever happens (a failed scenario, Ctrl-C), the containers of the scenario that ran,
# and any network or volume of its name, are removed afterwards. A scenario's instances
# are named rb-<scenario>, rb-<scenario>-<n> or rb-<scenario>-lb (a load balancer; with - for _) and carry Molecule's label
# owner=molecule; nothing else is touched, not even other scenarios' containers.
# Two runs in one checkout at the same time collide anyway (Molecule keeps one state
# directory per scenario and project), so do not start a second one.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

say() { echo "molecule.sh: $*" >&2; }

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

export PATH="$repo/.venv/bin:$PATH"
export CONTAINERS_CONF="$repo/tests/containers/containers.conf"
# This collection through the `make link` symlink, then the collections the `ansible`
# package bundles in the venv (the podman driver needs containers.podman): named
# explicitly because the Makefile turns ANSIBLE_COLLECTIONS_SCAN_SYS_PATH off.
bundled=$(python -c 'import ansible_collections.containers.podman as m, os; print(os.path.abspath(m.__path__[0] + "/../../.."))')
export ANSIBLE_COLLECTIONS_PATH="${ANSIBLE_COLLECTIONS_PATH:-$repo/.build/collections}:$bundled"
export ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false
export ANSIBLE_FORCE_COLOR=${ANSIBLE_FORCE_COLOR:-0}

# The names a scenario's instances, networks and volumes may have.
names_of() { echo "^rb-${1//_/-}(-[0-9]+|-lb)?\$"; }

leftovers() {  # containers of scenario $1 that still exist
    podman ps -a --filter label=owner=molecule --format '{{.Names}}' | { grep -E "$(names_of "$1")" || true; }
}

cleanup() {  # remove what scenario $1 left behind
    local pattern names
    pattern=$(names_of "$1")
    names=$(leftovers "$1")
    if [ -n "$names" ]; then
        say "removing containers left behind by $1: ${names//$'\n'/ }"
        echo "$names" | xargs podman rm --force --volumes --time 2 >/dev/null
    fi
    podman network ls --format '{{.Name}}' | { grep -E "$pattern" || true; } | xargs -r podman network rm --force >/dev/null
    podman volume ls --format '{{.Name}}' | { grep -E "$pattern" || true; } | xargs -r podman volume rm --force >/dev/null
}

running=
interrupted=
trap '[ -z "$running" ] || cleanup "$running"' EXIT
# Ctrl-C also reaches molecule, which destroys its instances; then stop, run no more scenarios.
trap 'interrupted=1' INT TERM

start_all=$(date +%s)
REDBUTTON_MOLECULE_IMAGE=$(scripts/build-image.sh)
export REDBUTTON_MOLECULE_IMAGE
image_time=$(( $(date +%s) - start_all ))

declare -A took result
failed=()
for name in "${scenarios[@]}"; do
    say "scenario $name: molecule test -s $name"
    start=$(date +%s)
    running=$name
    if molecule test -s "$name"; then
        result[$name]=passed
    else
        # molecule destroys the instances after a failure too; cleanup catches what it could not
        result[$name]=FAILED
        failed+=("$name")
    fi
    took[$name]=$(( $(date +%s) - start ))
    cleanup "$name"
    running=
    left=$(leftovers "$name")
    if [ -n "$left" ]; then
        say "containers of $name still present after cleanup: $left"
        result[$name]="${result[$name]}, containers left: $left"
        failed+=("$name")
    fi
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

if [ -n "$interrupted" ]; then
    exit 130
fi
if [ ${#failed[@]} -gt 0 ]; then
    say "failed scenarios: ${failed[*]}"
    exit 1
fi
