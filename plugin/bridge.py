"""GIMP-free bridge from the GIMP plug-in to the colorize-gan worker process.

GIMP's bundled Python cannot install torch/onnxruntime on many builds (Flatpak, Windows, macOS), so the
plug-in never imports the runtime. It hands pixels to ``python -m plugin.worker`` running in the project's
own environment (the Python recorded by ``colorize-gan-gimp install``):

1. a private temp folder per call (``tempfile.mkdtemp``: mode 0700, unique name), so concurrent calls and
   other users never share files (Intel's plug-ins used fixed shared paths);
2. ``request.json`` + one raw ``R'G'B'A u8`` file per frame (+ an optional ``Y u8`` selection mask, and optional
   ``R'G'B'A u8`` colour hints in the frame's own coordinates: opaque pixels are hint colours);
3. the worker streams progress as JSON lines on stdout and writes ``response.json`` and one raw RGBA file
   per frame; any failure -- nonzero exit, ``"ok": false``, missing or short output -- raises a
   :class:`BridgeError` carrying the worker's message (never a silent success);
4. the folder is removed afterwards.

Ctrl-C (or any signal) stopping the worker, or a KeyboardInterrupt in the caller while it waits, is a one-line
:class:`BridgeError` too: the worker is stopped, its folder removed, and no pixels are returned, so the
plug-in, which changes the image only after a successful return, leaves the image as it was.

Only the standard library is used: this module runs inside GIMP's Python (which may lack numpy) and is
copied next to the installed plug-in. It is also importable as ``plugin.bridge`` for tests.
"""
from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

PROTOCOL = 3  # 2: optional per-frame colour hints; 3: an optional colour reference (an older worker would ignore them)
PROC_NAME = "python-fu-colorize-gan"  # the plug-in's PDB procedure (the installer looks for it in GIMP's pluginrc)
CONFIG_NAME = "colorize_gan.json"  # written beside the installed plug-in by plugin/installer.py
PYTHON_ENV = "COLORIZE_GAN_PYTHON"  # overrides the recorded worker Python (tests, troubleshooting)
KEEP_TMP_ENV = "COLORIZE_GAN_KEEP_TMP"  # keep the per-call folder for debugging
# Variables GIMP's embedded Python sets for itself; a different Python started with them imports the wrong
# stdlib / typelibs and dies before our code runs.
_STRIP_ENV = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONEXECUTABLE", "GI_TYPELIB_PATH", "__PYVENV_LAUNCHER__")

BACKENDS = ("auto", "gpu", "cpu")
OUTPUT_MODES = ("new-layer", "in-place")

# Worker exit codes (plugin/worker.py uses the same numbers); 130 = 128 + SIGINT, as shells report Ctrl-C.
EXIT_OK, EXIT_FAILED, EXIT_BAD_REQUEST, EXIT_ENVIRONMENT, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

ProgressFn = Callable[[float, str], None]


class BridgeError(RuntimeError):
    """The worker could not colorize; the message is meant for the user."""


class WorkerEnvError(BridgeError):
    """The worker's Python environment is missing or broken (not a problem with the image)."""


@dataclass
class Frame:
    """One drawable's pixels: ``width * height * 4`` bytes of R'G'B'A u8, optionally a selection mask of
    ``width * height`` bytes (Y u8, 255 = fully selected) used by the new-layer output mode, and optionally
    colour hints: ``width * height * 4`` bytes of R'G'B'A u8 over the same pixels, whose opaque pixels
    (alpha >= 128, runtime.image.hints) are hint colours; fully transparent hints = the automatic result."""

    width: int
    height: int
    rgba: bytes
    mask: Optional[bytes] = None
    hints: Optional[bytes] = None

    def validate(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise BridgeError(f"empty drawable ({self.width}x{self.height})")
        if len(self.rgba) != self.width * self.height * 4:
            raise BridgeError(f"pixel buffer has {len(self.rgba)} bytes, expected {self.width * self.height * 4}")
        if self.mask is not None and len(self.mask) != self.width * self.height:
            raise BridgeError(f"mask has {len(self.mask)} bytes, expected {self.width * self.height}")
        if self.hints is not None and len(self.hints) != self.width * self.height * 4:
            raise BridgeError(f"hint buffer has {len(self.hints)} bytes, expected {self.width * self.height * 4}")


@dataclass
class Options:
    """What the user chose in the dialog (or passed through the PDB)."""

    model: str = ""  # "" = the embedded default model
    backend: str = "auto"  # auto | gpu | cpu
    render_size: int = 0  # 0 = the model's default
    saturation: float = 1.0
    output: str = "new-layer"  # new-layer | in-place
    temporal: float = 0.0  # stabilization strength across frames; 0 = off (single images)

    def validate(self) -> None:
        if self.backend not in BACKENDS:
            raise BridgeError(f"unknown backend {self.backend!r}; choose one of {', '.join(BACKENDS)}")
        if self.output not in OUTPUT_MODES:
            raise BridgeError(f"unknown output mode {self.output!r}; choose one of {', '.join(OUTPUT_MODES)}")
        if self.render_size < 0:
            raise BridgeError(f"render size must be >= 0, got {self.render_size}")
        if self.saturation < 0:
            raise BridgeError(f"saturation must be >= 0, got {self.saturation}")
        if not 0.0 <= self.temporal <= 1.0:
            raise BridgeError(f"temporal strength must be in [0, 1], got {self.temporal}")


@dataclass
class Result:
    frames: list  # list[bytes], RGBA u8 per input frame
    info: dict = field(default_factory=dict)  # the worker's response (backend, warnings, seconds, ...)


def load_config(plugin_dir: str) -> dict:
    """The installer's record beside the plug-in; {} when absent (a plain checkout)."""
    path = os.path.join(plugin_dir, CONFIG_NAME)
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise WorkerEnvError(f"cannot read the plug-in config {path}: {exc}. Re-run `colorize-gan-gimp install`.") from exc


def worker_python(config: dict, environ: Optional[dict] = None) -> str:
    """The Python that runs the worker: $COLORIZE_GAN_PYTHON, else the one recorded at install time."""
    environ = os.environ if environ is None else environ
    python = environ.get(PYTHON_ENV) or config.get("python")
    if not python:
        raise WorkerEnvError(
            "no worker Python recorded: install the plug-in with `colorize-gan-gimp install` from the project's "
            f"environment (or set {PYTHON_ENV} to that environment's python)."
        )
    if not os.path.isfile(python):
        raise WorkerEnvError(
            f"the worker Python {python} does not exist (was the project's environment moved or deleted?). "
            f"Re-run `colorize-gan-gimp install` from the project's environment, or set {PYTHON_ENV}."
        )
    if not os.access(python, os.X_OK):
        raise WorkerEnvError(f"the worker Python {python} is not executable")
    return os.path.abspath(python)


def worker_env(environ: Optional[dict] = None) -> dict:
    """A copy of the environment without the variables that point a Python at GIMP's own installation."""
    environ = os.environ if environ is None else environ
    return {k: v for k, v in environ.items() if k not in _STRIP_ENV}


def worker_command(python: str, *args: str) -> list:
    return [python, "-m", "plugin.worker", *args]


def check_worker(python: str, timeout: float = 120.0) -> dict:
    """Run ``worker --check`` (imports the runtime, lists backends); raise WorkerEnvError if it fails."""
    try:
        proc = subprocess.run(
            worker_command(python, "--check"), env=worker_env(), capture_output=True, text=True, timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except OSError as exc:
        raise WorkerEnvError(f"cannot start the worker Python {python}: {exc}") from exc
    except subprocess.TimeoutExpired as exc:
        raise WorkerEnvError(f"the worker check with {python} did not finish in {timeout:.0f} s") from exc
    try:
        info = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        info = None
    if proc.returncode != 0 or not isinstance(info, dict) or not info.get("ok"):
        message = info.get("error") if isinstance(info, dict) and info.get("error") else _tail(proc.stderr)
        raise WorkerEnvError(f"the worker environment {python} is broken (exit {proc.returncode}): {message}")
    return info


def colorize(
    frames: list,
    options: Options,
    python: str,
    progress: Optional[ProgressFn] = None,
    timeout: Optional[float] = None,
    reference: Optional["Frame"] = None,
) -> Result:
    """Colorize ``frames`` (list of :class:`Frame`) in one worker process (the model is loaded once).
    ``reference``: a colour picture (a :class:`Frame`: its RGBA pixels) whose colours every frame follows where they
    match (runtime.image.reference); None = automatic.

    ``progress(fraction, message)`` is called from the calling thread. Raises :class:`BridgeError`
    (or :class:`WorkerEnvError`) with the worker's message on any failure.
    """
    if not frames:
        raise BridgeError("nothing to colorize (no drawable)")
    python = os.path.abspath(python)  # the worker starts in the temp folder: a relative path would miss
    options.validate()
    for frame in frames:
        frame.validate()
    if reference is not None:
        reference.validate()
    tmp = tempfile.mkdtemp(prefix="colorize-gan-")  # 0700, unique: private to this call
    try:
        request = {"protocol": PROTOCOL, "options": asdict(options), "frames": []}
        if reference is not None:
            request["reference"] = {"width": reference.width, "height": reference.height, "pixels": "reference.rgba"}
            _write(os.path.join(tmp, "reference.rgba"), reference.rgba)
        for i, frame in enumerate(frames):
            entry = {"width": frame.width, "height": frame.height, "pixels": f"in-{i:04d}.rgba", "output": f"out-{i:04d}.rgba"}
            _write(os.path.join(tmp, entry["pixels"]), frame.rgba)
            if frame.mask is not None:
                entry["mask"] = f"mask-{i:04d}.y"
                _write(os.path.join(tmp, entry["mask"]), frame.mask)
            if frame.hints is not None:
                entry["hints"] = f"hints-{i:04d}.rgba"
                _write(os.path.join(tmp, entry["hints"]), frame.hints)
            request["frames"].append(entry)
        request_path = os.path.join(tmp, "request.json")
        with open(request_path, "w", encoding="utf-8") as fh:
            json.dump(request, fh)
        returncode, stderr = _run_worker(python, request_path, tmp, progress, timeout)
        info = _read_response(tmp, returncode, stderr, python)
        outputs = []
        for entry in request["frames"]:
            expected = entry["width"] * entry["height"] * 4
            path = os.path.join(tmp, entry["output"])
            try:
                with open(path, "rb") as fh:
                    data = fh.read()
            except OSError as exc:
                raise BridgeError(f"the worker reported success but wrote no {entry['output']}: {exc}") from exc
            if len(data) != expected:
                raise BridgeError(f"the worker wrote {len(data)} bytes for {entry['output']}, expected {expected}")
            outputs.append(data)
        return Result(outputs, info)
    except KeyboardInterrupt:  # Ctrl-C in GIMP's terminal reaches the plug-in too: an error, never half a result
        raise BridgeError("interrupted (Ctrl-C); nothing was changed") from None
    finally:
        if os.environ.get(KEEP_TMP_ENV):
            sys.stderr.write(f"colorize-gan: kept the worker folder {tmp}\n")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)


def _tail(text: str, limit: int = 1500) -> str:
    text = (text or "").strip()
    return text if len(text) <= limit else "..." + text[-limit:]


def _run_worker(python, request_path, tmp, progress, timeout):
    """Start the worker, relay its progress lines, return (exit code, stderr text)."""
    stderr_path = os.path.join(tmp, "worker.stderr")
    with open(stderr_path, "wb") as err:
        try:
            proc = subprocess.Popen(
                worker_command(python, request_path), cwd=tmp, env=worker_env(), stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=err,
            )
        except OSError as exc:
            raise WorkerEnvError(f"cannot start the worker Python {python}: {exc}") from exc
        # A thread reads stdout so a chatty worker never blocks on a full pipe, while the progress callback
        # (which talks to GIMP) stays on the calling thread.
        lines: "queue.Queue" = queue.Queue()

        def pump() -> None:
            for raw in proc.stdout:
                lines.put(raw)
            lines.put(None)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        done = False
        try:
            while not done:
                if deadline is not None and time.monotonic() > deadline:
                    raise BridgeError(f"the worker did not finish within {timeout:.0f} s and was stopped")
                try:
                    raw = lines.get(timeout=0.2)
                except queue.Empty:
                    continue
                if raw is None:
                    done = True
                elif progress is not None:
                    _relay(raw, progress)
        except BaseException:  # timeout, Ctrl-C, a failing progress callback: never leave the worker running
            proc.kill()
            proc.wait()
            raise
        proc.wait()
        reader.join(timeout=5)
    with open(stderr_path, encoding="utf-8", errors="replace") as fh:
        return proc.returncode, fh.read()


def _relay(raw: bytes, progress: ProgressFn) -> None:
    try:
        event = json.loads(raw)
    except ValueError:
        return  # a library printed to stdout; not ours
    if isinstance(event, dict) and event.get("event") == "progress":
        total = max(int(event.get("total", 1)), 1)
        progress(min(max(float(event.get("done", 0)) / total, 0.0), 1.0), str(event.get("message", "")))


def _read_response(tmp: str, returncode: int, stderr: str, python: str) -> dict:
    path = os.path.join(tmp, "response.json")
    try:
        with open(path, encoding="utf-8") as fh:
            info = json.load(fh)
    except (OSError, ValueError):
        info = None
    if isinstance(info, dict) and not info.get("ok", False):
        cls = WorkerEnvError if returncode == EXIT_ENVIRONMENT or info.get("kind") == "environment" else BridgeError
        raise cls(str(info.get("error") or f"the worker failed (exit {returncode})"))
    if returncode < 0 or returncode == EXIT_INTERRUPTED:  # e.g. Ctrl-C before the worker could write a response
        how = f"by {signal.Signals(-returncode).name}" if -returncode in signal.valid_signals() else "by Ctrl-C"
        raise BridgeError(f"the worker was stopped {how} (exit {returncode}); nothing was changed")
    if returncode != EXIT_OK:
        detail = _tail(stderr) or "no message"
        if "No module named" in stderr or returncode == EXIT_ENVIRONMENT:
            raise WorkerEnvError(
                f"the worker environment {python} is broken (exit {returncode}): {detail}. Is colorize-gan "
                "installed in it? Re-run `colorize-gan-gimp install` from the project's environment."
            )
        raise BridgeError(f"the worker failed (exit {returncode}): {detail}")
    if not isinstance(info, dict):
        raise BridgeError(f"the worker exited without a valid response.json: {_tail(stderr) or 'no message'}")
    if info.get("protocol") != PROTOCOL:
        raise WorkerEnvError(
            f"the worker speaks protocol {info.get('protocol')}, the plug-in {PROTOCOL}: re-run `colorize-gan-gimp install`"
        )
    return info
