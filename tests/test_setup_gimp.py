"""scripts/setup_gimp.sh waits for another apt/dpkg instead of failing, without installing anything: the script is
sourced (which defines its functions and stops), a fake apt-get stands on PATH, and the lock is held by another
process the two ways Linux locks files (flock(1), and fcntl as apt and dpkg do)."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "setup_gimp.sh"
LOCK = "var/lib/dpkg/lock-frontend"

pytestmark = pytest.mark.skipif(not shutil.which("bash") or not Path("/proc/locks").exists(),
                                reason="needs bash and /proc/locks")

FCNTL_HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o640)
fcntl.lockf(fd, fcntl.LOCK_EX)  # what apt and dpkg do
open(sys.argv[2], "w").close()
time.sleep(float(sys.argv[3]))
"""


def hold_lock(path: Path, seconds: float, kind: str, tmp_path: Path) -> subprocess.Popen:
    """Another process holding ``path`` locked for ``seconds``; returns once the lock is taken."""
    ready = tmp_path / f"held-{kind}"
    if kind == "flock":
        if not shutil.which("flock"):
            pytest.skip("flock(1) not installed")
        cmd = ["flock", str(path), "sh", "-c", f'touch "{ready}"; sleep {seconds}']
    else:
        cmd = [sys.executable, "-c", FCNTL_HOLDER, str(path), str(ready), str(seconds)]
    proc = subprocess.Popen(cmd)
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the lock holder did not start"
        time.sleep(0.01)
    return proc


def fake_root(tmp_path: Path) -> Path:
    """A chroot-like folder with apt's lock files, and a fake apt-get on PATH that logs its arguments and
    whether the lock was free when it ran."""
    root = tmp_path / "root"
    (root / LOCK).parent.mkdir(parents=True)
    (root / LOCK).touch()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "apt-get"
    fake.write_text(f"""#!/bin/sh
if flock -n "{root / LOCK}" true; then state=free; else state=held; fi
echo "$state DEBIAN_FRONTEND=$DEBIAN_FRONTEND $*" >> "{tmp_path / 'apt.log'}"
""")
    fake.chmod(0o755)
    return root


def apt_get_in(root: Path, tmp_path: Path, timeout_s: int, *args: str) -> subprocess.CompletedProcess:
    """``apt_get ROOT ARGS`` from the sourced script, with in_root replaced by a plain call (no chroot)."""
    snippet = (f'source "{SCRIPT}"; APT_LOCK_POLL=0.1; APT_LOCK_TIMEOUT={timeout_s}; '
               'in_root() { shift; "$@"; }; apt_get "$@"')
    env = {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": str(tmp_path)}
    return subprocess.run(["bash", "-c", snippet, "bash", str(root), *args], capture_output=True, text=True,
                          timeout=60, env=env)


@pytest.mark.parametrize("kind", ["fcntl", "flock"])
def test_waits_for_a_held_lock_and_says_so(tmp_path, kind):
    root = fake_root(tmp_path)
    holder = hold_lock(root / LOCK, 1.5, kind, tmp_path)
    try:
        t0 = time.monotonic()
        proc = apt_get_in(root, tmp_path, 60, "install", "-y", "gimp")
        waited = time.monotonic() - t0
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == 0, proc.stderr
    said = [ln for ln in proc.stdout.splitlines() if "waiting up to 60 s" in ln]
    assert len(said) == 1 and f"{root / LOCK} is held by process {holder.pid} (" in said[0], proc.stdout
    assert "the package manager is free now" in proc.stdout
    assert waited >= 0.5
    log = (tmp_path / "apt.log").read_text().splitlines()
    assert log == ["free DEBIAN_FRONTEND=noninteractive -o DPkg::Lock::Timeout=60 install -y gimp"], log


def test_no_wait_and_no_message_when_nothing_holds_the_lock(tmp_path):
    root = fake_root(tmp_path)
    proc = apt_get_in(root, tmp_path, 60, "update")
    assert proc.returncode == 0 and proc.stdout == "", proc.stdout + proc.stderr
    assert (tmp_path / "apt.log").read_text() == "free DEBIAN_FRONTEND=noninteractive -o DPkg::Lock::Timeout=60 update\n"


def test_gives_up_with_a_clear_error_after_the_timeout(tmp_path):
    root = fake_root(tmp_path)
    holder = hold_lock(root / LOCK, 30, "fcntl", tmp_path)
    try:
        proc = apt_get_in(root, tmp_path, 1, "update")
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == 1
    assert re.search(r"ERROR: .*lock-frontend is still held by process \d+ .* after 1 s", proc.stderr), proc.stderr
    assert not (tmp_path / "apt.log").exists(), "apt-get must not run while the lock is held"


def test_every_apt_get_call_waits_for_the_lock():
    """Every apt-get the script runs (host or chroot) goes through apt_get, which waits and passes the timeout."""
    calls = []
    for line in SCRIPT.read_text().splitlines():
        code = re.sub(r"(^|\s)#(\s|!).*$", "", line)  # comments (not ${#array[@]})
        code = re.sub(r'(say|need_root) ".*"', "", code)  # messages that mention apt-get
        if re.search(r"\bapt-get\b", code):
            calls.append(code.strip())
    assert calls == ['local cmd=(env DEBIAN_FRONTEND=noninteractive apt-get -o "DPkg::Lock::Timeout=$APT_LOCK_TIMEOUT" "$@")']
    uses = re.findall(r"^\s*apt_get (\S+) (\S+)", SCRIPT.read_text(), re.M)
    assert {root for root, _ in uses} == {'""', '"$ROOT"', '"$WORK"'}
    assert {cmd for _, cmd in uses} == {"update", "install", "clean"}


def test_sourcing_defines_functions_and_does_nothing(tmp_path):
    proc = subprocess.run(["bash", "-c", f'source "{SCRIPT}"; type apt_get wait_for_apt lock_holder >/dev/null; echo ok'],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and proc.stdout == "ok\n", proc.stdout + proc.stderr
