#!/usr/bin/env bash
# For tests/test_gimp.py: run gimp-console ARGS... with a virtual display (Xvfb), and answer each plug-in
# dialog that appears with the next key of $DIALOG_KEYS (e.g. "Return Escape": OK the first, cancel the second).
# Runs where GIMP runs (inside scripts/gimp_console.sh). Writes "answered N dialogs" to $DIALOG_LOG.
set -euo pipefail
command -v Xvfb >/dev/null && command -v xdotool >/dev/null || { echo "gimp_dialog: Xvfb/xdotool missing" >&2; exit 3; }
# -displayfd: Xvfb picks a free display number itself and writes it to fd 5 (no clash with other runs).
numfile="$(mktemp)"
Xvfb -displayfd 5 -screen 0 1024x768x24 -nolisten tcp 5>"$numfile" >/dev/null 2>&1 &
xvfb=$!
answerer=""
cleanup() { kill $xvfb $answerer 2>/dev/null || true; rm -f "$numfile"; }
trap cleanup EXIT
trap 'exit 143' TERM INT  # so a timeout still runs the cleanup
for _ in $(seq 100); do [ -s "$numfile" ] && break; sleep 0.1; done
[ -s "$numfile" ] || { echo "gimp_dialog: Xvfb did not start" >&2; exit 3; }
export DISPLAY=":$(head -n1 "$numfile")"
(
    answered=0
    for key in $DIALOG_KEYS; do
        for _ in $(seq 300); do  # up to 60 s for the next dialog to appear
            # No window manager: find the dialog by title, give it focus ourselves, then type.
            for w in $(xdotool search --name '^Colorize \(GAN\)$' 2>/dev/null || true); do
                # Each dialog is answered until its window is gone, so any window found now is a new one
                # (window ids are not a reliable tell: the X server reuses them for the next client).
                # A key sent before GTK has realised the dialog is lost: repeat until the window goes away.
                for _ in $(seq 15); do
                    sleep 1
                    xdotool windowfocus --sync "$w" 2>/dev/null && xdotool key "$key" 2>/dev/null || true
                    sleep 1
                    if ! xdotool getwindowname "$w" >/dev/null 2>&1; then
                        answered=$((answered + 1))
                        break
                    fi
                done
                continue 3
            done
            sleep 0.2
        done
    done
    echo "answered $answered dialogs" > "$DIALOG_LOG"
) &
answerer=$!
rc=0
"$@" || rc=$?
# The answerer notices the last dialog has gone a moment after GIMP has; give it that moment to report.
for _ in $(seq 50); do kill -0 "$answerer" 2>/dev/null || break; sleep 0.1; done
exit $rc
