#!/usr/bin/env bash
# Build the base image of the Molecule scenarios, or reuse it.
#
# No container registry is reachable from CI, so the image is made here: a debootstrap
# of Debian bookworm (minbase, plus systemd as PID 1, python3 for Ansible and the sample
# app, the tools the tests use, and Debian's haproxy for the load balancer of the fleet
# scenario: installed everywhere, started only where a scenario enables it), imported with `podman import`. The image tag is the
# hash of this script: a rerun with an unchanged script reuses the image at once, and
# any change to the recipe builds a new one and removes the stale ones.
#
#   scripts/build-image.sh                 build or reuse; print the image name on stdout
#   scripts/build-image.sh --print-mirror  print the Debian mirror it would use
#
# Progress goes to stderr. The image is also tagged :latest for people running
# `molecule` by hand. Building needs root (debootstrap); reusing does not.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$repo/tests/containers/containers.conf}

NAME=localhost/redbutton-molecule
SUITE=bookworm
PACKAGES=python3,systemd,systemd-sysv,dbus,iproute2,procps,ca-certificates,haproxy
# Units that only make sense on a real machine: masked so the container boots in ~1 s.
MASK_UNITS="getty.target console-getty.service systemd-remount-fs.service dev-hugepages.mount
sys-fs-fuse-connections.mount sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount
systemd-firstboot.service systemd-udevd.service systemd-modules-load.service apt-daily.timer
apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer"

say() { echo "build-image: $*" >&2; }

# The Debian mirror apt already uses on this machine (the only package mirror CI reaches):
# the first enabled `deb` source of the suite we bootstrap, in apt's own file order.
# REDBUTTON_DEBIAN_MIRROR overrides it; APT_ETC (default /etc/apt) is for tests.
debian_mirror() {
    local etc=${APT_ETC:-/etc/apt} files=() f
    [ -f "$etc/sources.list" ] && files+=("$etc/sources.list")
    for f in "$etc"/sources.list.d/*; do
        case $f in *.list | *.sources) [ -f "$f" ] && files+=("$f") ;; esac
    done
    [ ${#files[@]} -gt 0 ] || return 0
    awk -v suite="$SUITE" '
        function stanza_end() {
            if (uris != "" && has && deb && !off) { found = uris; exit }
            uris = ""; has = deb = off = 0
        }
        FNR == 1 { stanza_end() }
        /^[ \t]*#/ { next }
        # one-line format: deb [options] URI suite components
        FILENAME !~ /\.sources$/ {
            if ($1 != "deb") next
            i = 2
            if ($i ~ /^\[/) { while (i < NF && $i !~ /\]$/) i++; i++ }
            if ($(i + 1) == suite) { found = $i; exit }
            next
        }
        # deb822 format: stanzas separated by blank lines
        /^[ \t]*$/ { stanza_end(); next }
        { key = tolower($1) }
        key == "uris:" { uris = $2 }
        key == "suites:" { for (j = 2; j <= NF; j++) if ($j == suite) has = 1 }
        key == "types:" { for (j = 2; j <= NF; j++) if ($j == "deb") deb = 1 }
        key == "enabled:" && tolower($2) == "no" { off = 1 }
        END {
            if (found == "" && uris != "" && has && deb && !off) found = uris
            if (found != "") print found
        }
    ' "${files[@]}"
}

mirror=${REDBUTTON_DEBIAN_MIRROR:-$(debian_mirror)}
mirror=${mirror:-http://deb.debian.org/debian}
if [ "${1:-}" = --print-mirror ]; then
    echo "$mirror"
    exit 0
elif [ $# -gt 0 ]; then
    say "unknown argument '$1'; usage: $0 [--print-mirror]"
    exit 2
fi

hash=$(sha256sum "$0" | cut -c1-12)
image=$NAME:$hash

if podman image exists "$image"; then
    say "reusing $image (recipe unchanged)"
    podman tag "$image" "$NAME:latest"
    echo "$image"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    say "$image does not exist and building it needs root (debootstrap): run  sudo $0"
    exit 1
fi
command -v debootstrap >/dev/null || { say "debootstrap is missing: run scripts/system-deps.sh as root"; exit 1; }
say "building $image from $mirror ($SUITE, minbase + $PACKAGES)"

start=$(date +%s)
rootfs=$(mktemp -d /var/tmp/redbutton-rootfs.XXXXXX)
trap 'rm -rf "$rootfs" "$rootfs.log"' EXIT
if ! debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" "$mirror" >"$rootfs.log" 2>&1; then
    tail -n 30 "$rootfs.log" >&2
    say "debootstrap from $mirror failed (last lines above); set REDBUTTON_DEBIAN_MIRROR to a reachable Debian mirror"
    exit 1
fi

# Boot to multi-user without the units a container cannot use; each container gets its
# own machine-id at first boot; no package caches or docs in the image.
for unit in $MASK_UNITS; do ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"; done
ln -sf /lib/systemd/system/multi-user.target "$rootfs/etc/systemd/system/default.target"
# haproxy is installed for the scenarios that configure it; they enable it, nobody else runs it.
rm -f "$rootfs/etc/systemd/system/multi-user.target.wants/haproxy.service"
: >"$rootfs/etc/machine-id"
rm -f "$rootfs/var/lib/dbus/machine-id"
rm -rf "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/* "$rootfs"/var/log/*.log

tar --numeric-owner -C "$rootfs" -c . | podman import --quiet \
    --change 'CMD ["/sbin/init"]' \
    --change 'ENV container=podman' \
    --change 'STOPSIGNAL SIGRTMIN+3' \
    --change "LABEL org.redbutton.recipe=$hash" \
    - "$image" >/dev/null
podman tag "$image" "$NAME:latest"

# Older recipes are dead weight: remove every other tag of this image name.
podman images --format '{{.Repository}}:{{.Tag}}' --filter "reference=$NAME" |
    { grep -vxF -e "$image" -e "$NAME:latest" || true; } | xargs -r podman rmi >/dev/null

say "built $image in $(( $(date +%s) - start )) s, $(podman image inspect --format '{{.Size}}' "$image" | awk '{printf "%d MB", $1/1e6}')"
echo "$image"
