#!/usr/bin/env bash
# Make GIMP 3 (headless gimp-console + its Python plug-in support) available for the GIMP tests.
#
# Debian 13+ : apt-get install gimp (GIMP 3.0 is the distribution's own package).
# Debian 12  : GIMP there is 2.10 without Python 3 plug-ins, so build a Debian 13 (trixie) chroot with
#              debootstrap and install GIMP 3 inside it. The chroot lives OUTSIDE the repo, in
#              ${COLORIZE_GAN_CACHE:-/var/cache/colorize-gan}/gimp-trixie, so one machine builds it once.
# Idempotent: a finished chroot carries a stamp file and is reused. Fails loudly (set -e, clear messages).
# Another apt/dpkg holding the package locks (unattended upgrades on a fresh machine) is waited for, with a
# line saying so, for up to COLORIZE_GAN_APT_LOCK_TIMEOUT seconds (default 1800), instead of failing at once.
# scripts/gimp_console.sh runs gimp-console inside whichever of the two this script prepared.
# Sourcing it (tests/test_setup_gimp.py) defines the functions and stops before doing anything.
set -euo pipefail

CACHE="${COLORIZE_GAN_CACHE:-/var/cache/colorize-gan}"
ROOT="$CACHE/gimp-trixie"
STAMP="$ROOT/.colorize-gan-ready"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# python3-gi + the typelib are what GIMP's Python plug-ins import; gimp pulls gimp-console-3.0.
# xvfb + xdotool let tests/test_gimp.py open the plug-in's dialog on a virtual display and press its buttons.
GIMP_PKGS=(gimp python3-gi gir1.2-gimp-3.0 xvfb xdotool)
APT_LOCK_TIMEOUT="${COLORIZE_GAN_APT_LOCK_TIMEOUT:-1800}"  # seconds to wait for another apt/dpkg to finish
APT_LOCK_POLL=2  # seconds between looks at the locks
# What apt and dpkg lock (relative to a root: the host's /, or the chroot's).
APT_LOCKS=(var/lib/dpkg/lock-frontend var/lib/dpkg/lock var/lib/apt/lists/lock var/cache/apt/archives/lock)

say() { echo "setup_gimp: $*"; }
die() { echo "setup_gimp: ERROR: $*" >&2; exit 1; }

need_root() { [ "$(id -u)" = 0 ] || die "must run as root to $1"; }

missing_pkgs() {  # sets missing=(GIMP_PKGS not installed), asking dpkg-query through "$@" (nothing, or chroot ROOT)
    missing=()
    for pkg in "${GIMP_PKGS[@]}"; do
        "$@" dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
}

in_root() {  # run a command in the chroot with /proc, in a private mount namespace (nothing left mounted)
    unshare -m -- sh -euc 'root="$1"; shift; mount -t proc proc "$root/proc"; exec chroot "$root" "$@"' sh "$@"
}

lock_holder() {  # prints "PID (name)" of a process holding a lock (fcntl or flock) on file $1; nothing if none
    local dev ino pid
    [ -e "$1" ] || return 0
    # /proc/locks names the locked file as MAJOR:MINOR:INODE (major and minor in hex), holders before waiters ("->").
    dev="$(stat -L -c '%Hd %Ld' "$1" 2>/dev/null)" || return 0
    ino="$(stat -L -c '%i' "$1")"
    # shellcheck disable=SC2086  # $dev is "MAJOR MINOR"
    dev="$(printf '%02x:%02x' $dev)"
    pid="$(awk -v id="$dev:$ino" '$2 != "->" && $6 == id { print $5; exit }' /proc/locks)"
    [ -n "$pid" ] || return 0
    echo "$pid ($(cat "/proc/$pid/comm" 2>/dev/null || echo '?'))"
}

wait_for_apt() {  # wait_for_apt ROOT: until no process holds an apt/dpkg lock under ROOT ("" = the host)
    # apt-get waits for dpkg's locks itself with -o DPkg::Lock::Timeout (see apt_get), but 'apt-get update' fails at
    # once on the lists lock (apt 2.6), and neither says why up front; so look here first, and say that we wait.
    local root="$1" lock holder="" waited=""
    local deadline=$((SECONDS + APT_LOCK_TIMEOUT))
    while :; do
        holder=""
        for lock in "${APT_LOCKS[@]}"; do
            holder="$(lock_holder "$root/$lock")"
            [ -z "$holder" ] || break
        done
        if [ -z "$holder" ]; then
            [ -z "$waited" ] || say "the package manager is free now; going on"
            return 0
        fi
        if [ -z "$waited" ]; then
            say "another apt/dpkg is running (unattended upgrades?): $root/$lock is held by process $holder;" \
                "waiting up to $APT_LOCK_TIMEOUT s for it to finish (COLORIZE_GAN_APT_LOCK_TIMEOUT)"
            waited=1
        fi
        [ "$SECONDS" -lt "$deadline" ] || die "$root/$lock is still held by process $holder after $APT_LOCK_TIMEOUT s;" \
            "wait for it to finish (or stop it) and run this again"
        sleep "$APT_LOCK_POLL"
    done
}

apt_get() {  # apt_get ROOT ARGS...: apt-get on the host (ROOT "") or in the chroot ROOT, waiting for the locks
    local root="$1"
    shift
    wait_for_apt "$root"
    local cmd=(env DEBIAN_FRONTEND=noninteractive apt-get -o "DPkg::Lock::Timeout=$APT_LOCK_TIMEOUT" "$@")
    if [ -z "$root" ]; then
        "${cmd[@]}"
    else
        in_root "$root" "${cmd[@]}"
    fi
}

# Sourced (tests): the functions above are all that is wanted.
(return 0 2>/dev/null) && return 0

[ -r /etc/debian_version ] || die "not a Debian system (/etc/debian_version missing); install GIMP 3 yourself"
major="$(cut -d. -f1 /etc/debian_version)"
case "$major" in
    ''|*[!0-9]*) die "cannot read a Debian release number from /etc/debian_version ('$(cat /etc/debian_version)')" ;;
esac

if [ "$major" -ge 13 ]; then
    # All of them, not just gimp: without python3-gi and the typelib GIMP silently has no Python plug-ins.
    missing_pkgs
    if [ ${#missing[@]} -eq 0 ]; then
        say "Debian $major: ${GIMP_PKGS[*]} already installed; nothing to do"
    else
        need_root "apt-get install ${missing[*]}"
        say "Debian $major: apt-get install ${missing[*]}"
        apt_get "" update
        apt_get "" install -y --no-install-recommends "${missing[@]}"
    fi
    gimp-console-3.0 --version || die "gimp-console-3.0 does not run"
    say "ready: native GIMP 3"
    exit 0
fi

[ "$major" -eq 12 ] || die "Debian $major is not supported (need 12 with a trixie chroot, or 13+)"

if [ -f "$STAMP" ] && [ -x "$ROOT/usr/bin/gimp-console-3.0" ]; then
    missing_pkgs chroot "$ROOT"
    if [ ${#missing[@]} -eq 0 ]; then
        say "Debian 12: trixie chroot already ready at $ROOT; nothing to do"
        exit 0
    fi
    # A root built by an older version of this script: add what is missing instead of rebuilding.
    need_root "install ${missing[*]} into the GIMP 3 chroot"
    say "Debian 12: adding ${missing[*]} to the trixie chroot at $ROOT"
    apt_get "$ROOT" update
    apt_get "$ROOT" install -y --no-install-recommends "${missing[@]}"
    apt_get "$ROOT" clean
    say "ready: GIMP 3 in $ROOT"
    exit 0
fi

need_root "build the GIMP 3 chroot (debootstrap, chroot)"
if ! command -v debootstrap >/dev/null; then
    say "installing debootstrap on the host (apt-get install debootstrap)"
    apt_get "" update
    apt_get "" install -y --no-install-recommends debootstrap
fi

# Build in a scratch folder and rename at the end: an interrupted run never leaves a half root that looks finished.
WORK="$ROOT.partial"
if [ -e "$WORK" ]; then
    say "removing the leftover of an interrupted build: $WORK"
    rm -rf --one-file-system "$WORK"
fi
mkdir -p "$CACHE"
say "debootstrap --variant=minbase trixie $WORK $MIRROR (about 1-2 minutes)"
debootstrap --variant=minbase trixie "$WORK" "$MIRROR"

say "configuring the chroot: sources.list, resolv.conf, CA bundle"
echo "deb $MIRROR trixie main" > "$WORK/etc/apt/sources.list"
cp /etc/resolv.conf "$WORK/etc/resolv.conf"
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    mkdir -p "$WORK/etc/ssl/certs"
    cp /etc/ssl/certs/ca-certificates.crt "$WORK/etc/ssl/certs/ca-certificates.crt"
fi

say "chroot apt-get install ${GIMP_PKGS[*]} (about 220 MiB download)"
apt_get "$WORK" update
apt_get "$WORK" install -y --no-install-recommends "${GIMP_PKGS[@]}"

[ -x "$WORK/usr/bin/gimp-console-3.0" ] || die "gimp-console-3.0 missing in the chroot after install"
apt_get "$WORK" clean
if [ -e "$ROOT" ]; then
    say "replacing the unfinished chroot at $ROOT"
    rm -rf --one-file-system "$ROOT"
fi
mv "$WORK" "$ROOT"
date -u +%FT%TZ > "$STAMP"
say "ready: GIMP 3 in $ROOT ($(du -sh "$ROOT" | cut -f1)); run it with scripts/gimp_console.sh"
