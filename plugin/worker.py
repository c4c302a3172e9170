"""The worker process behind the GIMP plug-in: ``python -m plugin.worker REQUEST.json`` in the project's env.

It reads the request written by :mod:`plugin.bridge` (options + raw RGBA frames in the same private
folder), loads the model once through ``runtime.Colorizer``, colorizes every frame with the step API
(prepare -> hint_input -> predict_ab -> [TemporalStabilizer for frames] -> finish, so luminance stays the
source's), writes one raw RGBA file per frame and ``response.json``, and streams progress as JSON lines on stdout.

Colour hints: a frame may come with an RGBA hint file over the same pixels (the plug-in maps the hint layer
into each frame's coordinates); ``Colorizer.hint_input`` turns its opaque pixels into the model's hint input.
A fully transparent one is no hints at all (the automatic result, bit for bit); real hints for a model
without hint inputs fail with a one-line message (kind ``"hints"``).

Output pixels: RGB = colorized; alpha = the source alpha, times the selection mask in new-layer mode
(so the new layer shows colour only where the selection is, with feathered edges blending). In-place
mode leaves the mask to GIMP, which merges the shadow buffer through the selection.

``python -m plugin.worker --check`` imports the runtime and prints which backends can run (installer,
troubleshooting). Exit codes: 0 ok, 1 colorizing failed, 2 bad request, 3 broken environment, 130 interrupted
(Ctrl-C / SIGINT: one line, kind ``"interrupted"``, no traceback); every failure also writes
``{"ok": false, "error": ...}`` so the plug-in can show the real reason.
"""
from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path

from plugin.bridge import (  # the numbers and names both sides agree on
    BACKENDS,
    EXIT_BAD_REQUEST,
    EXIT_ENVIRONMENT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    OUTPUT_MODES,
    PROTOCOL,
)


class RequestError(ValueError):
    """The request file is unreadable or inconsistent."""


class HintsRefused(ValueError):
    """The user's colour hints cannot be used (e.g. the model has no hint inputs); the message is for the user."""


def _emit(stream, **event) -> None:
    stream.write(json.dumps(event) + "\n")
    stream.flush()


def read_request(path: Path) -> dict:
    try:
        request = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RequestError(f"cannot read the request {path}: {exc}") from exc
    if request.get("protocol") != PROTOCOL:
        raise RequestError(f"request protocol {request.get('protocol')!r}, worker speaks {PROTOCOL}: re-install the plug-in")
    opts = request.get("options") or {}
    if opts.get("backend", "auto") not in BACKENDS:
        raise RequestError(f"unknown backend {opts.get('backend')!r}")
    if opts.get("output", "new-layer") not in OUTPUT_MODES:
        raise RequestError(f"unknown output mode {opts.get('output')!r}")
    if not request.get("frames"):
        raise RequestError("the request has no frames")
    for entry in request["frames"]:
        for key in ("pixels", "output"):
            # Only bare names inside the request's own folder: the request cannot make us read or write elsewhere.
            if Path(entry.get(key, "")).name != entry.get(key) or not entry.get(key):
                raise RequestError(f"bad file name {entry.get(key)!r} in the request")
        for key in ("mask", "hints"):
            if entry.get(key) is not None and Path(entry[key]).name != entry[key]:
                raise RequestError(f"bad file name {entry[key]!r} in the request")
    ref = request.get("reference")
    if ref is not None and (not ref.get("pixels") or Path(ref["pixels"]).name != ref["pixels"]):
        raise RequestError(f"bad file name {ref.get('pixels')!r} in the request")
    return request


def _reference(colorizer, folder: Path, request: dict):
    """The request's colour reference, prepared once for every frame (runtime.image.reference), or None."""
    ref = request.get("reference")
    if ref is None:
        return None
    import numpy as np

    w, h = int(ref["width"]), int(ref["height"])
    raw = (folder / ref["pixels"]).read_bytes()
    if len(raw) != w * h * 4:
        raise RequestError(f"{ref['pixels']} has {len(raw)} bytes, expected {w * h * 4}")
    return colorizer.reference(np.frombuffer(raw, dtype=np.uint8).reshape(h, w, 4)[..., :3])


def load_colorizer(opts: dict, warnings: list):
    """Colorizer for the user's backend choice; an unavailable GPU falls back to the CPU, with a warning."""
    from runtime import Colorizer

    kwargs = dict(
        model=opts.get("model") or None,
        render_size=int(opts.get("render_size") or 0) or None,
    )
    backend = opts.get("backend", "auto")
    try:
        return Colorizer.load(backend=backend, **kwargs)
    except Exception as exc:  # noqa: BLE001 -- any GPU start-up failure, reported below, not swallowed
        if backend != "gpu":
            raise
        warnings.append(f"no GPU backend could start ({type(exc).__name__}: {exc}); used the CPU instead")
        return Colorizer.load(backend="cpu", **kwargs)


def colorize_frames(request: dict, folder: Path, progress) -> dict:
    """Do the work of one request; returns the response's payload."""
    import numpy as np

    from runtime.image.fastcolor import rgb8_to_l

    opts = request["options"]
    frames = request["frames"]
    saturation = float(opts.get("saturation", 1.0))
    new_layer = opts.get("output", "new-layer") == "new-layer"
    warnings: list = []
    hinted = 0
    started = time.monotonic()
    _emit(progress, event="progress", done=0, total=len(frames), message="loading the model")
    colorizer = load_colorizer(opts, warnings)
    reference = _reference(colorizer, folder, request)
    stabilizer = None
    if len(frames) > 1 and float(opts.get("temporal", 0.0)) > 0:
        from runtime.video.temporal import TemporalStabilizer

        stabilizer = TemporalStabilizer(strength=float(opts["temporal"]))
    try:
        for i, entry in enumerate(frames):
            w, h = int(entry["width"]), int(entry["height"])
            raw = (folder / entry["pixels"]).read_bytes()
            if len(raw) != w * h * 4:
                raise RequestError(f"{entry['pixels']} has {len(raw)} bytes, expected {w * h * 4}")
            rgba = np.frombuffer(raw, dtype=np.uint8).reshape(h, w, 4)
            L = rgb8_to_l(rgba)
            net_L, geom = colorizer.prepare(L)
            net_hints = _hint_input(colorizer, folder, entry, geom)
            hinted += net_hints is not None
            ab = colorizer.predict_ab(net_L, net_hints, reference=reference)[0]
            if stabilizer is not None:
                ab = stabilizer.update(net_L[0, 0], ab)
            out = np.empty((h, w, 4), dtype=np.uint8)
            out[..., :3] = colorizer.finish_u8(L, ab, geom, saturation=saturation)
            alpha = rgba[..., 3]
            if new_layer and entry.get("mask"):
                mask = np.frombuffer((folder / entry["mask"]).read_bytes(), dtype=np.uint8)
                if mask.size != w * h:
                    raise RequestError(f"{entry['mask']} has {mask.size} bytes, expected {w * h}")
                alpha = ((alpha.astype(np.uint16) * mask.reshape(h, w) + 127) // 255).astype(np.uint8)
            out[..., 3] = alpha
            (folder / entry["output"]).write_bytes(out.tobytes())
            _emit(progress, event="progress", done=i + 1, total=len(frames), message=f"frame {i + 1}/{len(frames)}")
        return {
            "backend": colorizer.backend_name,
            "render_size": colorizer.render_size,
            "frames": len(frames),
            "stabilized": stabilizer is not None,
            "hinted": hinted,  # frames whose hints had at least one hint pixel
            "reference": reference is not None and not reference.colourless,
            "seconds": round(time.monotonic() - started, 3),
            "warnings": warnings,
        }
    finally:
        colorizer.close()


def _hint_input(colorizer, folder: Path, entry: dict, geom):
    """The frame's hint file -> the network's hint input, or None (no file, or no opaque pixel in it)."""
    if not entry.get("hints"):
        return None
    import numpy as np

    from runtime.image.hints import HintError

    w, h = int(entry["width"]), int(entry["height"])
    raw = (folder / entry["hints"]).read_bytes()
    if len(raw) != w * h * 4:
        raise RequestError(f"{entry['hints']} has {len(raw)} bytes, expected {w * h * 4}")
    try:
        return colorizer.hint_input(np.frombuffer(raw, dtype=np.uint8).reshape(h, w, 4), geom)
    except HintError as exc:
        if colorizer.takes_hints:
            raise HintsRefused(f"colour hints: {exc}") from None
        raise HintsRefused(
            f"the hint layer has colour hints but the model {colorizer.spec.name!r} takes none: choose no hint "
            "layer (or clear it), or a model trained with hints"
        ) from None


def check() -> dict:
    """What ``--check`` reports: this Python, the runtime, which backends can run here."""
    import runtime
    from runtime.backends import registry

    return {
        "ok": True,
        "protocol": PROTOCOL,
        "python": sys.executable,
        "runtime": str(Path(runtime.__file__).resolve().parent),
        "backends": {name: registry.availability(name) or "available" for name in registry.REGISTRY},
    }


def main(argv: list | None = None) -> int:
    try:
        return _main(sys.argv[1:] if argv is None else argv)
    except KeyboardInterrupt:  # Ctrl-C before a request folder is known (e.g. during --check): no traceback
        sys.stderr.write("colorize-gan worker: interrupted\n")
        return EXIT_INTERRUPTED


def _main(argv: list) -> int:
    # Progress goes to the real stdout; anything a library prints goes to stderr, so the stream stays ours.
    progress = sys.stdout
    sys.stdout = sys.stderr
    if argv == ["--check"]:
        try:
            _emit(progress, **check())
            return EXIT_OK
        except Exception as exc:  # noqa: BLE001 -- reported to the caller as the reason the env is broken
            traceback.print_exc()
            _emit(progress, ok=False, kind="environment", error=f"{type(exc).__name__}: {exc}")
            return EXIT_ENVIRONMENT
    if len(argv) != 1:
        sys.stderr.write("usage: python -m plugin.worker REQUEST.json | --check\n")
        return EXIT_BAD_REQUEST
    request_path = Path(argv[0])
    folder = request_path.parent
    response = folder / "response.json"

    def fail(kind: str, message: str, code: int) -> int:
        response.write_text(json.dumps({"ok": False, "protocol": PROTOCOL, "kind": kind, "error": message}))
        return code

    try:
        try:
            request = read_request(request_path)
        except RequestError as exc:
            return fail("request", str(exc), EXIT_BAD_REQUEST)
        try:
            import numpy  # noqa: F401 -- fail early, as an environment problem, not as a colorizing error
            import runtime  # noqa: F401
        except Exception as exc:  # noqa: BLE001
            traceback.print_exc()
            return fail("environment", f"the worker environment {sys.executable} cannot import the runtime: {exc}",
                        EXIT_ENVIRONMENT)
        try:
            payload = colorize_frames(request, folder, progress)
        except RequestError as exc:
            return fail("request", str(exc), EXIT_BAD_REQUEST)
        except HintsRefused as exc:
            return fail("hints", str(exc), EXIT_FAILED)
        except Exception as exc:  # noqa: BLE001 -- every failure becomes the user's error message
            traceback.print_exc()
            return fail("colorize", f"{type(exc).__name__}: {exc}", EXIT_FAILED)
        tmp = folder / "response.json.tmp"
        tmp.write_text(json.dumps({"ok": True, "protocol": PROTOCOL, **payload}))
        os.replace(tmp, response)  # never a half-written success
        return EXIT_OK
    except KeyboardInterrupt:
        # Ctrl-C in GIMP's terminal reaches the worker too. Frames already written stay in the private folder,
        # which the bridge removes: the plug-in gets this one line as its error and leaves the image alone.
        sys.stderr.write("colorize-gan worker: interrupted\n")
        return fail("interrupted", "interrupted (Ctrl-C) before the colorizing was finished; nothing was changed",
                    EXIT_INTERRUPTED)


if __name__ == "__main__":
    sys.exit(main())
