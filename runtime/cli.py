"""The ``colorize-gan`` command: colorize image files, folders and globs; ``info``; ``video``.

    colorize-gan [options] INPUT... -o OUTPUT
    colorize-gan info [--model PATH] [--json]
    colorize-gan video ...            (runtime/video_cli.py, when installed)

Only argparse and the standard library are imported at module level, so ``--help`` is fast and
works without numpy-heavy or torch imports. Every per-file failure is one line on stderr
("PATH: reason"); the run goes on and exits 1 if any file failed, 2 on a usage or setup error.
``--json`` prints one JSON object on stdout (the GIMP bridge reads it).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from typing import Any

from .errors import one_line

PROG = "colorize-gan"


def _positive_int(text: str) -> int:
    v = int(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return v


def _saturation(text: str) -> float:
    v = float(text)
    if not 0 <= v <= 4:
        raise argparse.ArgumentTypeError(f"must be in [0, 4], got {text}")
    return v


def _quality(text: str) -> int:
    v = int(text)
    if not 1 <= v <= 100:
        raise argparse.ArgumentTypeError(f"must be in [1, 100], got {text}")
    return v


def image_parser() -> argparse.ArgumentParser:
    from .batch import OUTPUT_FORMATS

    p = argparse.ArgumentParser(
        prog=PROG,
        description="Colorize greyscale photos with a pix2pix-style cGAN. Colour inputs are colorized from their luminance.",
        epilog=f"other commands: '{PROG} info' (backends, model, versions), '{PROG} video --help' (video files).",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders (recursive) or quoted glob patterns")
    p.add_argument("-o", "--output", required=True, help="output folder, or output file for a single input file")
    p.add_argument("--format", choices=OUTPUT_FORMATS, default="same",
                   help="output format (default: the input's if writable, else png; 16-bit inputs stay 16-bit in png)")
    p.add_argument("--quality", type=_quality, default=92, help="JPEG/WebP quality (default 92)")
    p.add_argument("--render-size", type=_positive_int, default=None,
                   help="longer side the network sees, in pixels (default 256; larger = finer colour detail, ~4x slower per doubling)")
    p.add_argument("--saturation", type=_saturation, default=1.0, help="colour strength factor, 0 = grey (default 1.0)")
    p.add_argument("--backend", default="auto", help="auto | cpu | gpu | onnxruntime | torch-cpu | torch-cuda | tensorrt")
    p.add_argument("--model", default=None, help="model bundle (.json/.onnx/stem) or trainer checkpoint dir (default: embedded)")
    p.add_argument("--threads", type=_positive_int, default=None, help="CPU threads (default: all available cores)")
    p.add_argument("--skip-existing", action="store_true", help="skip inputs whose output already exists (resume a batch)")
    p.add_argument("--max-pixels", type=int, default=None,
                   help="refuse images larger than this many pixels (default 150000000; 0 = no limit)")
    p.add_argument("--shard", default=None, metavar="I/N", help="process only shard I of N (split a batch over N jobs)")
    p.add_argument("--json", action="store_true", help="print one JSON object with per-file results on stdout")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary (errors are still printed)")
    return p


def info_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"{PROG} info", description="Show backends (with availability), the model spec and versions.")
    p.add_argument("--model", default=None, help="model to describe (default: embedded)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "info":
        return run_info(info_parser().parse_args(argv[1:]))
    if argv and argv[0] == "video":
        return run_video(argv)
    return run_images(image_parser().parse_args(argv))


def run_video(argv: list[str]) -> int:
    if importlib.util.find_spec("runtime.video_cli") is None:
        print(f"{PROG}: video support is not installed in this build", file=sys.stderr)
        return 2
    from . import video_cli

    return int(video_cli.main(argv))


def _versions() -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {"python": sys.version.split()[0]}
    for dist in ("colorize-gan", "numpy", "pillow", "onnxruntime", "torch", "safetensors", "cffi", "tensorrt", "av"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def run_info(args: argparse.Namespace) -> int:
    from . import fastcolor
    from .backends.registry import AUTO_ORDER, GROUPS, availability
    from .models import ModelError, describe, resolve

    backends = {name: availability(name) for name in AUTO_ORDER}
    try:
        model: dict[str, Any] = describe(resolve(args.model))
    except ModelError as exc:
        model = {"error": str(exc)}
    report = {"versions": _versions(), "backends": {k: {"available": v is None, "reason": v} for k, v in backends.items()},
              "auto_order": list(AUTO_ORDER), "groups": {k: list(v) for k, v in GROUPS.items()},
              "colour_kernel": fastcolor.kernel_status(), "model": model}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print("backends (auto order):")
    for name, reason in backends.items():
        print(f"  {name:12s} {'available' if reason is None else 'unavailable: ' + reason}")
    print(f"colour kernel: {report['colour_kernel']}")
    print("model:")
    if "error" in model:
        print(f"  {model['error']}")
    else:
        for key in ("onnx", "onnx_fp16", "weights"):
            print(f"  {key:10s} {model[key] or '-'}")
        print("  spec: " + ", ".join(f"{k}={v}" for k, v in model["spec"].items()))
        if "provenance" in model:
            prov = model["provenance"]
            print(f"  exported {prov.get('exported', '?')} from {prov.get('checkpoint', '?')} (step {prov.get('step', '?')})")
    print("versions: " + ", ".join(f"{k} {v or '-'}" for k, v in report["versions"].items()))
    return 0


def _fail(message: str) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return 2


def run_images(args: argparse.Namespace) -> int:
    from .batch import parse_shard, plan

    try:
        shard = parse_shard(args.shard) if args.shard else None
    except ValueError as exc:
        return _fail(str(exc))
    jobs = plan(args.inputs, args.output, args.format, shard)
    if not jobs:
        print(f"{PROG}: no input images found" + (f" in shard {args.shard}" if shard else ""), file=sys.stderr)
        return 0 if shard else 1
    runnable = [j for j in jobs if j.error is None]
    if runnable:
        out_dirs = {j.output.parent for j in runnable}
        for d in sorted(out_dirs):
            try:
                d.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                return _fail(f"{d}: cannot create output folder ({exc.strerror or exc})")
            if not os.access(d, os.W_OK | os.X_OK):
                return _fail(f"{d}: output folder is not writable")
    colorizer = None
    if any(not (args.skip_existing and j.output.exists()) for j in runnable):
        try:
            colorizer = _load_colorizer(args)
        except Exception as exc:  # ModelError, BackendUnavailable, ValueError: all one line
            return _fail(one_line(exc, None))
        if not args.quiet or args.json:
            print(f"{PROG}: backend {colorizer.backend_name} ({colorizer.backend.device}), render size {colorizer.render_size}",
                  file=sys.stderr)
    try:
        results = _process(jobs, colorizer, args)
    finally:
        if colorizer is not None:
            colorizer.close()
    counts = {s: sum(r["status"] == s for r in results) for s in ("ok", "skipped", "error")}
    total = sum(r["seconds"] for r in results)
    if args.json:
        print(json.dumps({"backend": colorizer.backend_name if colorizer else None,
                          "render_size": colorizer.render_size if colorizer else None,
                          "results": results, "summary": {**counts, "seconds": round(total, 3)}}, indent=1))
    if not args.quiet:
        print(f"{PROG}: {counts['ok']} colorized, {counts['skipped']} skipped, {counts['error']} failed in {total:.1f} s",
              file=sys.stderr)
    return 1 if counts["error"] else 0


def _load_colorizer(args: argparse.Namespace):
    from .colorizer import Colorizer

    return Colorizer.load(args.model, backend=args.backend, render_size=args.render_size, threads=args.threads)


def _process(jobs: list, colorizer: Any, args: argparse.Namespace) -> list[dict[str, Any]]:
    from tqdm import tqdm

    from .imageio import DEFAULT_MAX_PIXELS

    max_pixels = DEFAULT_MAX_PIXELS if args.max_pixels is None else (args.max_pixels or None)
    results = []
    bar = tqdm(jobs, unit="img", disable=True if args.quiet else None, file=sys.stderr, dynamic_ncols=True)
    for job in bar:
        t0 = time.perf_counter()
        rec: dict[str, Any] = {"input": str(job.input), "output": str(job.output) if job.output else None,
                               "status": "ok", "error": None}
        if job.error is not None:
            rec.update(status="error", error=job.error)
        elif args.skip_existing and job.output.exists():
            rec["status"] = "skipped"
        else:
            err = colorize_file(colorizer, job.input, job.output, args, max_pixels)
            if err:
                rec.update(status="error", error=err)
        rec["seconds"] = round(time.perf_counter() - t0, 4)
        if rec["status"] == "error":
            bar.write(f"{PROG}: {job.input}: {rec['error']}", file=sys.stderr)
        results.append(rec)
    bar.close()
    return results


def colorize_file(colorizer: Any, src: Any, dst: Any, args: argparse.Namespace, max_pixels: int | None) -> str | None:
    """Colorize one file; None on success, else the one-line reason. Never raises for bad input."""
    from .imageio import ImageError, format_for, read_image, split_luminance, write_image

    try:
        fmt = format_for(dst)
        decoded = read_image(src, max_pixels)
        planes = split_luminance(decoded.image)
        bits = 16 if planes.bits == 16 and fmt == "PNG" else 8
        rgb = colorizer.colorize_planes(planes, args.saturation, bits=bits)
    except ImageError as exc:
        return str(exc)
    except MemoryError:
        return "out of memory (try a smaller --max-pixels or a machine with more RAM)"
    except Exception as exc:  # a bug or an odd file must cost one file, not the batch; COLORIZE_GAN_DEBUG=1 re-raises
        if os.environ.get("COLORIZE_GAN_DEBUG"):
            raise
        return f"unexpected error {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
    try:
        write_image(dst, rgb, planes.alpha, args.quality, decoded.icc, decoded.exif)
    except ImageError as exc:
        return str(exc)
    except OSError as exc:
        return f"cannot write {dst} ({exc.strerror or exc})"
    except Exception as exc:  # e.g. an encoder's ValueError; the atomic write left nothing behind
        if os.environ.get("COLORIZE_GAN_DEBUG"):
            raise
        return f"cannot write {dst} ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})"
    return None


if __name__ == "__main__":
    raise SystemExit(main())
