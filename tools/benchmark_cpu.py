"""CPU benchmark: end-to-end seconds per image for 1, 12 and 24 MP JPEGs on each CPU backend.

    python tools/benchmark_cpu.py [--model BUNDLE] [--sizes 1 12 24] [--repeat 3] [--render-sizes 256 384 512 768]

Each image is run through the CLI's own per-file path, stage by stage: decode (read_image), to-Lab
(luminance + resize/pad to the render size), network (backend only), upsample + to-RGB (the fused
C kernel, and the numpy path for comparison), encode (atomic JPEG write, quality 92). It reports
the median over ``--repeat`` runs and the ratio total / (decode + encode + network), the issue's
target being <= 1.3 with a 12 MP JPEG in <= 1 s on 2 cores. Without ``--model`` the embedded default model runs.
(Until 2026-12-06 it exported a random-weight bundle of ``ModelSpec()``'s defaults instead, which is not the
default model's network: the sections of docs/benchmarks.md measured without ``--model`` timed that smaller network.)
Prints a Markdown report; ``--write FILE`` also saves it.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's runtime/trainer, not an installed copy
from runtime.image import fastcolor  # noqa: E402
from runtime.image.colorizer import Colorizer, load_backend  # noqa: E402
from runtime.image.imageio import read_image, split_luminance, write_image  # noqa: E402
from runtime.model.bundle import resolve  # noqa: E402

STAGES = ("decode", "to_lab", "network", "to_rgb", "encode")


def make_photo(mp: float, path: Path, colour: bool = False) -> Path:
    """A photo-like JPEG: skimage's 'camera' upscaled (smooth areas and edges) plus film grain, so
    decode/encode costs resemble a real scan rather than a flat or pure-noise image."""
    from skimage import data

    w = int(round((mp * 1e6 * 4 / 3) ** 0.5))
    h = int(round(mp * 1e6 / w))
    base = Image.fromarray(data.camera()).resize((w, h), Image.Resampling.BICUBIC)
    grain = np.random.default_rng(0).normal(0, 3, (h, w)).astype(np.float32)
    img = Image.fromarray(np.clip(np.asarray(base, np.float32) + grain, 0, 255).astype(np.uint8))
    (img.convert("RGB") if colour else img).save(path, quality=92)
    return path


def run_once(c: Colorizer, src: Path, dst: Path, render_size: int) -> dict[str, float]:
    """One file through the CLI's path (Colorizer.colorize_planes, 8-bit output), stage by stage,
    then the pre-kernel path (numpy L plane, float resize, numpy finish) on the same frame."""
    t0 = time.perf_counter()
    dec = read_image(src)
    t1 = time.perf_counter()
    planes = split_luminance(dec.image)
    net_L, geom = c.prepare_src8(planes.src8, render_size)
    t2 = time.perf_counter()
    ab = c.predict_ab(net_L)[0]
    t3 = time.perf_counter()
    rgb = fastcolor.finish_src(planes.src8, ab, geom)
    t4 = time.perf_counter()
    write_image(dst, rgb, planes.alpha, 92, dec.icc, dec.exif)
    t5 = time.perf_counter()
    src8 = planes.src8
    L = fastcolor.src8_to_l(src8, use_kernel=False)
    c.prepare(L, render_size)
    s1 = time.perf_counter()
    fastcolor.finish_reference(L, ab, geom, out="u8")
    s2 = time.perf_counter()
    return dict(decode=t1 - t0, to_lab=t2 - t1, network=t3 - t2, to_rgb=t4 - t3, encode=t5 - t4,
                numpy_l=s1 - t5, numpy_to_rgb=s2 - s1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="bundle or trainer checkpoint (default: the embedded model)")
    ap.add_argument("--backends", nargs="+", default=["onnxruntime", "torch-cpu"])
    ap.add_argument("--sizes", nargs="+", type=float, default=[1, 12, 24], help="megapixels")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--render-size", type=int, default=512)
    ap.add_argument("--render-sizes", nargs="*", type=int, default=[256, 384, 512, 768], help="network-only sweep")
    ap.add_argument("--colour", action="store_true", help="also run RGB (colour-encoded) JPEGs")
    ap.add_argument("--no-mirror", dest="mirror", action="store_false",
                    help="one network pass per photo (the runtime's default averages with the mirror image: two)")
    ap.add_argument("--write", type=Path, default=None)
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="cg-bench-"))
    files = resolve(args.model)
    inputs = [(mp, False, make_photo(mp, tmp / f"in_{mp:g}mp.jpg")) for mp in args.sizes]
    if args.colour:
        inputs += [(mp, True, make_photo(mp, tmp / f"in_{mp:g}mp_rgb.jpg", colour=True)) for mp in args.sizes]
    lines = [f"machine: {platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} cores available, "
             f"load average at start {os.getloadavg()[0]:.1f}; python {platform.python_version()}; "
             f"colour kernel: {fastcolor.kernel_status().split(' (')[0]}; render size {args.render_size}; "
             f"mirror averaging {'on' if args.mirror else 'off'}; "
             f"median of {args.repeat}", f"model: {args.model or 'the embedded default'} ({files.onnx or files.weights})", ""]
    lines += ["| backend | input | decode | to-Lab | network | upsample+to-RGB | encode | **total** | target ratio | "
              "numpy to-Lab | numpy to-RGB | total with numpy |", "|" + "---|" * 12]
    for name in args.backends:
        try:
            c = Colorizer(load_backend(files, name), files, args.render_size, mirror=args.mirror)
        except Exception as exc:  # a backend missing here is reported, not fatal
            lines.append(f"| {name} | unavailable: {exc} |" + " |" * 10)
            continue
        run_once(c, inputs[0][2], tmp / "warm.jpg", args.render_size)  # warm-up (ORT arena, kernel load)
        for mp, colour, src in inputs:
            runs = [run_once(c, src, tmp / "out.jpg", args.render_size) for _ in range(args.repeat)]
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            total = sum(med[k] for k in STAGES)
            ratio = total / (med["decode"] + med["encode"] + med["network"])
            numpy_total = total - med["to_lab"] + med["numpy_l"] - med["to_rgb"] + med["numpy_to_rgb"]
            label = f"{mp:g} MP {'RGB' if colour else 'grey'} JPEG"
            lines.append(f"| {name} | {label} | " + " | ".join(f"{med[k]:.3f}" for k in STAGES)
                         + f" | **{total:.3f}** | {ratio:.2f} | {med['numpy_l']:.3f} | {med['numpy_to_rgb']:.3f} | {numpy_total:.3f} |")
            print(lines[-1], file=sys.stderr)
        c.close()
    if args.render_sizes:
        lines += ["", "network only (seconds per frame, one pass, batch 1, square input of the given side):", "",
                  "| backend | " + " | ".join(str(s) for s in args.render_sizes) + " |", "|---|" + "---|" * len(args.render_sizes)]
        for name in args.backends:
            try:
                b = load_backend(files, name)
            except Exception:
                continue
            row = []
            for s in args.render_sizes:
                x = np.full((1, 1, s, s), 50.0, np.float32)
                b.run(x)
                row.append(statistics.median(_timed(b.run, x) for _ in range(args.repeat)))
            lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in row) + " |")
            b.close()
    report = "\n".join(lines)
    print(report)
    if args.write:
        args.write.write_text(report + "\n")
    return 0


def _timed(fn, *a) -> float:
    t = time.perf_counter()
    fn(*a)
    return time.perf_counter() - t


if __name__ == "__main__":
    raise SystemExit(main())
