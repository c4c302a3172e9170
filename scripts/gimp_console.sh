#!/usr/bin/env bash
# Run a command (normally gimp-console-3.0 ...) where scripts/setup_gimp.sh put GIMP 3, with a timeout.
#
#   scripts/gimp_console.sh [--timeout SECONDS] [--bind HOST_DIR]... -- COMMAND [ARG]...
#
# Native GIMP 3 on PATH (Debian 13+): runs COMMAND directly. Otherwise (Debian 12): runs it in the trixie
# chroot under `unshare -m`, so the overlay, /proc, /sys, /dev, tmpfs /tmp and --bind mounts exist only in a
# private mount namespace and vanish with the process even if it is killed (nothing to clean up on the host).
# Each --bind HOST_DIR appears at the same path inside (the repo, a venv, a test's temp dir), so paths
# mean the same on both sides. The environment is passed through unchanged.
# Exit status: COMMAND's, or 124 on timeout (timeout(1)'s convention).
set -euo pipefail

CACHE="${COLORIZE_GAN_CACHE:-/var/cache/colorize-gan}"
ROOT="${COLORIZE_GAN_GIMP_ROOT:-$CACHE/gimp-trixie}"
TIMEOUT=300
BINDS=()
die() { echo "gimp_console: ERROR: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --timeout) TIMEOUT="$2"; shift 2 ;;
        --bind) BINDS+=("$(realpath -e "$2")") || die "--bind $2: no such path"; shift 2 ;;
        --) shift; break ;;
        *) die "unknown option $1 (usage: gimp_console.sh [--timeout S] [--bind DIR]... -- COMMAND...)" ;;
    esac
done
[ $# -gt 0 ] || die "no command given"

# --kill-after: gimp-console ignoring SIGTERM must not hang a CI job.
if [ -z "${COLORIZE_GAN_GIMP_ROOT:-}" ] && command -v gimp-console-3.0 >/dev/null; then
    exec timeout --kill-after=10 "$TIMEOUT" "$@"
fi

[ -f "$ROOT/.colorize-gan-ready" ] || die "no GIMP 3 here: run scripts/setup_gimp.sh first (expected a chroot at $ROOT)"
[ "$(id -u)" = 0 ] || die "the GIMP 3 chroot needs root (unshare -m + chroot)"

# The cached root is mounted read-only-in-effect: an overlay with a tmpfs upper layer takes every write
# (mount points for --bind, files GIMP or the worker write outside the binds), so the cache stays as
# setup_gimp.sh left it and concurrent runs cannot disturb each other.
RUN="$CACHE/run"
mkdir -p "$RUN"
exec unshare -m -- bash -euc '
    lower="$1"; run="$2"; timeout_s="$3"; nbind="$4"; shift 4
    mount --make-rprivate /
    mount -t tmpfs tmpfs "$run"
    mkdir -p "$run/upper" "$run/work" "$run/root"
    if mount -t overlay overlay -o "lowerdir=$lower,upperdir=$run/upper,workdir=$run/work" "$run/root" 2>/dev/null; then
        root="$run/root"
    else  # some container file systems refuse overlay: use the root itself (mount points then persist)
        echo "gimp_console: overlay mount unavailable; using $lower directly" >&2
        root="$lower"
    fi
    mount -t proc proc "$root/proc"
    mount --rbind /sys "$root/sys"
    mount --rbind /dev "$root/dev"
    mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
    for ((i = 0; i < nbind; i++)); do
        src="$1"; shift
        if [ -d "$src" ]; then mkdir -p "$root$src"; else mkdir -p "$(dirname "$root$src")"; touch "$root$src"; fi
        mount --rbind "$src" "$root$src"
    done
    exec chroot "$root" timeout --kill-after=10 "$timeout_s" "$@"
' gimp_console "$ROOT" "$RUN" "$TIMEOUT" "${#BINDS[@]}" "${BINDS[@]}" "$@"
