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
    lastpid=""
    echo "answered 0 dialogs" > "$DIALOG_LOG"
    for key in $DIALOG_KEYS; do
        # Wait (up to 60 s) for a dialog owned by a new plug-in process: window ids are reused by the X
        # server, so a dialog is told apart from the one answered before by its process id.
        found="" pid=""
        for _ in $(seq 300); do
            for w in $(xdotool search --name '^Colorize \(GAN\)$' 2>/dev/null || true); do
                p=$(xdotool getwindowpid "$w" 2>/dev/null || true)
                if [ -n "$p" ] && [ "$p" != "$lastpid" ]; then found=$w pid=$p; break 2; fi
            done
            sleep 0.2
        done
        [ -n "$found" ] || break
        sleep 1.5  # a key sent before GTK has realised the dialog is lost
        gone=""
        for _ in $(seq 10); do
            # No window manager: give the dialog focus ourselves, then type; resend only while this
            # same dialog (same process) is still there.
            xdotool windowfocus --sync "$found" 2>/dev/null && xdotool key "$key" 2>/dev/null || true
            for _ in $(seq 30); do
                [ "$(xdotool getwindowpid "$found" 2>/dev/null || true)" = "$pid" ] || { gone=1; break; }
                sleep 0.1
            done
            [ -n "$gone" ] && break
        done
        [ -n "$gone" ] || break
        lastpid=$pid
        answered=$((answered + 1))
        echo "answered $answered dialogs" > "$DIALOG_LOG"  # at once: the answerer may be stopped soon after GIMP exits
    done
) &
answerer=$!
rc=0
"$@" || rc=$?
# The answerer notices the last dialog has gone a moment after GIMP has; give it that moment to report.
for _ in $(seq 200); do kill -0 "$answerer" 2>/dev/null || break; sleep 0.1; done
exit $rc
