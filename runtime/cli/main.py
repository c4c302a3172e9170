"""The ``colorize-gan`` command: colorize image files, folders and globs; ``info``; ``video``.

    colorize-gan [options] INPUT... -o OUTPUT
    colorize-gan info [--model PATH] [--json]
    colorize-gan video ...            (runtime/video/cli.py, when installed)

Only argparse and the standard library are imported at module level, so ``--help`` is fast and
works without numpy-heavy or torch imports. Every per-file failure is one line on stderr
("PATH: reason"); the run goes on and exits 1 if any file failed, 2 on a usage or setup error.
``--json`` prints one JSON object on stdout (the GIMP bridge reads it). Ctrl-C stops at once with
one line ("interrupted after N of M ...") and exit status 130: outputs are written atomically, so
no partial or temporary file is left, and output folders are created only right before a file is
written into them, so a run that writes nothing creates nothing.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import one_line

PROG = "colorize-gan"
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for a command stopped by Ctrl-C


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
    p.add_argument("--hints", default=None, metavar="HINTS.png",
                   help="colour hints for the one input: an RGBA image of the photo's size whose opaque pixels are hint "
                        "colours (paint a few dots on a transparent layer). For several inputs, put NAME.hints.png beside "
                        "each NAME.jpg: such sidecars are always picked up")
    p.add_argument("--reference", default=None, metavar="REF.jpg",
                   help="a colour photo of the same scene, person or object (any size and framing) for every input: "
                        "where parts of a photo match parts of it, they take its colour; elsewhere the automatic colour "
                        "stays. Per photo, put NAME.ref.jpg (or .png, .webp, .tif) beside NAME.jpg: such sidecars are "
                        "always picked up. With hints too, the hints win where they are")
    p.add_argument("--no-mirror", dest="mirror", action="store_false",
                   help="one network pass instead of two (by default the colour is the mean of the network's answers for "
                        "the photo and its mirror image: more faithful, the network part twice as long)")
    p.add_argument("--backend", default="auto", help="auto | cpu | gpu | onnxruntime | torch-cpu | torch-cuda | tensorrt")
    p.add_argument("--model", default=None, help="model bundle (.json/.onnx/stem) or trainer checkpoint dir (default: embedded)")
    p.add_argument("--threads", type=_positive_int, default=None, help="CPU threads of the network (default: all available cores)")
    p.add_argument("--workers", type=_positive_int, default=None,
                   help="photos worked on at once: decoding, colour and encoding of several photos overlap with the "
                        "network (default: cores + 1; 1 = one photo at a time)")
    p.add_argument("--skip-existing", action="store_true", help="skip inputs whose output already exists (resume a batch)")
    p.add_argument("--max-pixels", type=int, default=None,
                   help="refuse images larger than this many pixels (default 150000000; 0 = no limit)")
    p.add_argument("--shard", default=None, metavar="I/N|auto",
                   help="process only shard I of N (split a batch over N jobs; each file is in exactly one shard); 'auto' "
                        "reads I and N from a Slurm job array or a Kubernetes Indexed Job (docs/cluster.md)")
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
    try:
        if argv and argv[0] == "info":
            return run_info(info_parser().parse_args(argv[1:]))
        if argv and argv[0] == "video":
            return run_video(argv)
        return run_images(image_parser().parse_args(argv))
    except KeyboardInterrupt:  # before any file was started (imports, planning); run_images says more once it can
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def run_video(argv: list[str]) -> int:
    if importlib.util.find_spec("runtime.video.cli") is None:
        print(f"{PROG}: video support is not installed in this build", file=sys.stderr)
        return 2
    from ..video import cli as video_cli

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
    from ..image import fastcolor
    from ..backends.registry import AUTO_ORDER, GROUPS, availability
    from ..model.bundle import ModelError, describe, resolve

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
        for key in ("onnx", "onnx_fp16", "weights", "onnx_scene"):
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


def _max_pixels(args: argparse.Namespace) -> int | None:
    """--max-pixels: the decompression-bomb limit (unset: the default; 0: none)."""
    from ..image.imageio import DEFAULT_MAX_PIXELS

    return DEFAULT_MAX_PIXELS if args.max_pixels is None else (args.max_pixels or None)


def run_images(args: argparse.Namespace) -> int:
    from .batch import parse_shard, plan, shard_from_environment

    try:
        if args.shard == "auto":
            shard, origin = shard_from_environment(dict(os.environ))
            if not args.quiet or args.json:
                print(f"{PROG}: shard {shard[0]}/{shard[1]} ({origin})", file=sys.stderr)
            args.shard = f"{shard[0]}/{shard[1]}"
        else:
            shard = parse_shard(args.shard) if args.shard else None
    except ValueError as exc:
        return _fail(str(exc))
    if args.hints:
        if not os.path.isfile(args.hints):
            return _fail(f"--hints {args.hints}: no such file")
        if len(args.inputs) != 1 or not os.path.isfile(args.inputs[0]):
            return _fail("--hints takes exactly one input file; for folders put NAME.hints.png beside each NAME.jpg")
    if args.reference and not os.path.isfile(args.reference):
        return _fail(f"--reference {args.reference}: no such file")
    jobs = plan(args.inputs, args.output, args.format, shard, args.hints)
    if not jobs:
        print(f"{PROG}: no input images found" + (f" in shard {args.shard}" if shard else ""), file=sys.stderr)
        return 0 if shard else 1
    runnable = [j for j in jobs if j.error is None]
    # Fail early on an output location that cannot be written, without creating anything yet: folders are
    # made by the batch runner (runtime.image.pipeline.Folders) right before their first file is written.
    for d in sorted({j.output.parent for j in runnable}):
        problem = _output_folder_problem(d)
        if problem:
            return _fail(f"{d}: {problem}")
    colorizer = reference = None
    finished: list[tuple[int, dict[str, Any]]] = []
    try:
        if any(not (args.skip_existing and j.output.exists()) for j in runnable):
            try:
                colorizer = _load_colorizer(args)
                if args.reference or any(j.reference is not None for j in runnable):
                    colorizer.scene_encoder()  # a damaged scene graph is the model's fault, told before any input
            except Exception as exc:  # ModelError, BackendUnavailable, ValueError: all one line
                return _fail(one_line(exc, None))
            if not args.quiet or args.json:
                print(f"{PROG}: backend {colorizer.backend_name} ({colorizer.backend.device}), "
                      f"render size {colorizer.render_size}", file=sys.stderr)
            if args.reference:  # prepared once for every input; a bad one stops the run before anything is written
                try:
                    reference = colorizer.reference(args.reference, max_pixels=_max_pixels(args))
                    if reference.colourless and not args.quiet:
                        print(f"{PROG}: note: --reference {args.reference} has no colour; it changes nothing",
                              file=sys.stderr)
                except Exception as exc:  # ImageError, ValueError: one line
                    return _fail(f"--reference {args.reference}: {one_line(exc, None)}")
        started = time.perf_counter()
        _process(jobs, colorizer, args, finished, reference)
        results = [rec for _, rec in sorted(finished, key=lambda item: item[0])]  # the report in input order
    except KeyboardInterrupt:
        # Outputs are written atomically (runtime.image.imageio.write_bytes), so the file being written when Ctrl-C
        # came is simply absent and a rerun with --skip-existing picks up exactly where this one stopped.
        print(f"{PROG}: interrupted after {len(finished)} of {len(jobs)}; run again with --skip-existing to continue",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if colorizer is not None:
            colorizer.close()
    counts = {s: sum(r["status"] == s for r in results) for s in ("ok", "skipped", "error")}
    counts["with_hints"] = sum(r["status"] == "ok" and r["hints"] is not None for r in results)
    counts["with_reference"] = sum(r["status"] == "ok" and r["reference"] is not None for r in results)
    total = time.perf_counter() - started  # wall time of the batch (files overlap, so their own times add up to more)
    if args.json:
        print(json.dumps({"backend": colorizer.backend_name if colorizer else None,
                          "render_size": colorizer.render_size if colorizer else None,
                          "results": results, "summary": {**counts, "seconds": round(total, 3)}}, indent=1))
    if not args.quiet:
        extras = [f"{counts['with_hints']} with colour hints"] if counts["with_hints"] else []
        extras += [f"{counts['with_reference']} with a reference"] if counts["with_reference"] else []
        hinted = f" ({', '.join(extras)})" if extras else ""
        print(f"{PROG}: {counts['ok']} colorized{hinted}, {counts['skipped']} skipped, {counts['error']} failed in {total:.1f} s",
              file=sys.stderr)
    return 1 if counts["error"] else 0


def _output_folder_problem(folder: Path) -> str | None:
    """Why files could not be written into ``folder`` (which may not exist yet), or None. Creates nothing."""
    existing = folder.absolute()
    while not os.path.exists(existing) and existing.parent != existing:
        existing = existing.parent
    if not os.path.isdir(existing):
        return f"cannot create output folder ({existing} is not a folder)"
    if not os.access(existing, os.W_OK | os.X_OK):
        return "output folder is not writable" if existing == folder.absolute() else \
            f"cannot create output folder ({existing} is not writable)"
    return None


def _load_colorizer(args: argparse.Namespace):
    from ..image.colorizer import Colorizer

    return Colorizer.load(args.model, backend=args.backend, render_size=args.render_size, threads=args.threads,
                          mirror=args.mirror)


def _process(jobs: list, colorizer: Any, args: argparse.Namespace, results: list[tuple[int, dict[str, Any]]],
             reference: Any = None) -> None:
    """Colorize ``jobs`` through the pipelined batch runner (runtime/image/pipeline.py: decoding, the network,
    the colour kernel and encoding of several photos overlap), appending ``(position, record)`` for each job as it
    finishes (from the workers' threads, one at a time), so that after Ctrl-C the caller knows how many are done;
    the caller sorts them back into input order. ``reference``: --reference, prepared once (else each photo's
    NAME.ref.jpg sidecar, if any)."""
    from tqdm import tqdm

    from ..image.jobs import FileJob, FileOptions, run_files

    opts = FileOptions(args.saturation, args.quality, _max_pixels(args))
    bar = tqdm(total=len(jobs), unit="img", disable=True if args.quiet else None, file=sys.stderr, dynamic_ncols=True)

    def record(pos: int, status: str = "ok", error: str | None = None, seconds: float = 0.0) -> None:
        job = jobs[pos]
        rec: dict[str, Any] = {"input": str(job.input), "output": str(job.output) if job.output else None,
                               "hints": str(job.hints) if job.hints else None,
                               "reference": str(args.reference or job.reference) if (args.reference or job.reference) else None,
                               "status": status, "error": error,
                               "seconds": round(seconds, 4)}
        if status == "error":
            bar.write(f"{PROG}: {job.input}: {error}", file=sys.stderr)
        results.append((pos, rec))
        bar.update(1)

    todo: list[int] = []
    try:
        for pos, job in enumerate(jobs):
            if job.error is not None:
                record(pos, "error", job.error)
            elif args.skip_existing and job.output.exists():
                record(pos, "skipped")
            else:
                todo.append(pos)
        if todo:
            run_files(colorizer, [FileJob(jobs[i].input, jobs[i].output, jobs[i].hints, reference or jobs[i].reference)
                                  for i in todo], opts,
                      lambda k, err, seconds: record(todo[k], "error" if err else "ok", err, seconds), workers=args.workers)
    finally:
        bar.close()  # ends the bar's line, so a message after Ctrl-C starts on its own line


if __name__ == "__main__":
    raise SystemExit(main())
