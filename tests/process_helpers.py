"""Helpers for the Ctrl-C tests: run a real command and interrupt it the way a terminal does (SIGINT)."""
from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable


def colorize_gan_command() -> list[str]:
    """The installed console script (what a user runs), else the module."""
    script = Path(sys.executable).with_name("colorize-gan")
    return [str(script)] if script.exists() else [sys.executable, "-m", "runtime.cli.main"]


def interrupt_when(cmd: list[str], ready: Callable[[str], bool], timeout: float = 120.0) -> tuple[int, str, str]:
    """Start ``cmd``, send it SIGINT as soon as ``ready(stderr so far)`` is true; return (exit status, stdout,
    stderr). Fails if the command ends before that (nothing was left to interrupt)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    chunks: dict[str, list[bytes]] = {"out": [], "err": []}

    def pump(stream, into: list[bytes]) -> None:
        while True:
            data = stream.read1(4096)
            if not data:
                return
            into.append(data)

    readers = [threading.Thread(target=pump, args=(proc.stdout, chunks["out"]), daemon=True),
               threading.Thread(target=pump, args=(proc.stderr, chunks["err"]), daemon=True)]
    for t in readers:
        t.start()

    def text(key: str) -> str:
        return b"".join(chunks[key]).decode("utf-8", "replace")

    try:
        deadline = time.monotonic() + timeout
        while not ready(text("err")):
            if proc.poll() is not None:
                for t in readers:
                    t.join(5)
                raise AssertionError(f"finished (exit {proc.returncode}) before it could be interrupted:\n{text('err')}")
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing to interrupt after {timeout:.0f} s:\n{text('err')}")
            time.sleep(0.005)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        for t in readers:
            t.join(5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, text("out"), text("err")
