#!/usr/bin/env bash
# Debian packages that `make test` needs beyond Python: the container engine for the
# Molecule scenarios (podman with runc; see tests/containers/containers.conf for why
# runc and not crun), debootstrap to build their base image without a registry, and
# PostgreSQL for the database tests.
#
# Idempotent: installs only what is missing. As root it runs apt-get; as another user
# it prints the exact command to run and exits 1 when something is missing.
set -euo pipefail

PACKAGES=(
    podman runc conmon slirp4netns uidmap fuse-overlayfs   # container engine (rootless-capable)
    debootstrap debian-archive-keyring                     # base image for the Molecule scenarios
    postgresql postgresql-client                           # database tests
    shellcheck                                             # ansible-test sanity checks the scripts
)

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
    echo "system-deps: this script installs Debian packages with apt-get; on this system install" >&2
    echo "system-deps: the equivalents of: ${PACKAGES[*]}" >&2
    exit 1
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [ "$status" = installed ] || missing+=("$pkg")
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "system-deps: all present (${PACKAGES[*]})"
    exit 0
fi

cmd=(apt-get install -y --no-install-recommends "${missing[@]}")
if [ "$(id -u)" -ne 0 ]; then
    echo "system-deps: missing Debian packages: ${missing[*]}" >&2
    echo "system-deps: run as root:  apt-get update && ${cmd[*]}" >&2
    exit 1
fi

echo "system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
"${cmd[@]}"
