#!/usr/bin/env bash
# Make GIMP 3 (headless gimp-console + its Python plug-in support) available for the GIMP tests.
#
# Debian 13+ : apt-get install gimp (GIMP 3.0 is the distribution's own package).
# Debian 12  : GIMP there is 2.10 without Python 3 plug-ins, so build a Debian 13 (trixie) chroot with
#              debootstrap and install GIMP 3 inside it. The chroot lives OUTSIDE the repo, in
#              ${COLORIZE_GAN_CACHE:-/var/cache/colorize-gan}/gimp-trixie, so one machine builds it once.
# Idempotent: a finished chroot carries a stamp file and is reused. Fails loudly (set -e, clear messages).
# scripts/gimp_console.sh runs gimp-console inside whichever of the two this script prepared.
set -euo pipefail

CACHE="${COLORIZE_GAN_CACHE:-/var/cache/colorize-gan}"
ROOT="$CACHE/gimp-trixie"
STAMP="$ROOT/.colorize-gan-ready"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# python3-gi + the typelib are what GIMP's Python plug-ins import; gimp pulls gimp-console-3.0.
# xvfb + xdotool let tests/test_gimp.py open the plug-in's dialog on a virtual display and press its buttons.
GIMP_PKGS=(gimp python3-gi gir1.2-gimp-3.0 xvfb xdotool)

say() { echo "setup_gimp: $*"; }
die() { echo "setup_gimp: ERROR: $*" >&2; exit 1; }

need_root() { [ "$(id -u)" = 0 ] || die "must run as root to $1"; }
[ -r /etc/debian_version ] || die "not a Debian system (/etc/debian_version missing); install GIMP 3 yourself"
major="$(cut -d. -f1 /etc/debian_version)"
case "$major" in
    ''|*[!0-9]*) die "cannot read a Debian release number from /etc/debian_version ('$(cat /etc/debian_version)')" ;;
esac

missing_pkgs() {  # sets missing=(GIMP_PKGS not installed), asking dpkg-query through "$@" (nothing, or chroot ROOT)
    missing=()
    for pkg in "${GIMP_PKGS[@]}"; do
        "$@" dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
}

if [ "$major" -ge 13 ]; then
    # All of them, not just gimp: without python3-gi and the typelib GIMP silently has no Python plug-ins.
    missing_pkgs
    if [ ${#missing[@]} -eq 0 ]; then
        say "Debian $major: ${GIMP_PKGS[*]} already installed; nothing to do"
    else
        need_root "apt-get install ${missing[*]}"
        say "Debian $major: apt-get install ${missing[*]}"
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
    fi
    gimp-console-3.0 --version || die "gimp-console-3.0 does not run"
    say "ready: native GIMP 3"
    exit 0
fi

[ "$major" -eq 12 ] || die "Debian $major is not supported (need 12 with a trixie chroot, or 13+)"

in_root() {  # run a command in the chroot with /proc, in a private mount namespace (nothing left mounted)
    unshare -m -- sh -euc 'root="$1"; shift; mount -t proc proc "$root/proc"; exec chroot "$root" "$@"' sh "$@"
}

if [ -f "$STAMP" ] && [ -x "$ROOT/usr/bin/gimp-console-3.0" ]; then
    missing_pkgs chroot "$ROOT"
    if [ ${#missing[@]} -eq 0 ]; then
        say "Debian 12: trixie chroot already ready at $ROOT; nothing to do"
        exit 0
    fi
    # A root built by an older version of this script: add what is missing instead of rebuilding.
    need_root "install ${missing[*]} into the GIMP 3 chroot"
    say "Debian 12: adding ${missing[*]} to the trixie chroot at $ROOT"
    in_root "$ROOT" env DEBIAN_FRONTEND=noninteractive apt-get update
    in_root "$ROOT" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
    in_root "$ROOT" apt-get clean
    say "ready: GIMP 3 in $ROOT"
    exit 0
fi

need_root "build the GIMP 3 chroot (debootstrap, chroot)"
if ! command -v debootstrap >/dev/null; then
    say "installing debootstrap on the host (apt-get install debootstrap)"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap
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
in_root "$WORK" env DEBIAN_FRONTEND=noninteractive apt-get update
in_root "$WORK" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${GIMP_PKGS[@]}"

[ -x "$WORK/usr/bin/gimp-console-3.0" ] || die "gimp-console-3.0 missing in the chroot after install"
chroot "$WORK" apt-get clean
if [ -e "$ROOT" ]; then
    say "replacing the unfinished chroot at $ROOT"
    rm -rf --one-file-system "$ROOT"
fi
mv "$WORK" "$ROOT"
date -u +%FT%TZ > "$STAMP"
say "ready: GIMP 3 in $ROOT ($(du -sh "$ROOT" | cut -f1)); run it with scripts/gimp_console.sh"
