"""Folder benchmark: `colorize-gan FOLDER -o OUT` per photo after start-up, against the codec floor.

    python tools/benchmark_batch.py [--sizes 12 1] [--counts 16 48] [--repeat 3]
                                    [--command "/old/checkout/.venv/bin/colorize-gan"] [--write docs/benchmarks-batch.md]

Inputs: folders of photo-like grainy grey JPEGs (skimage's 'camera' upscaled, film grain, quality 92; each file
shifted so no two are alike). For each size:
- the codec floor: Pillow decodes and re-encodes (quality 92) the same files, spread over all cores by a process
  pool: seconds per photo;
- each command (this checkout's `colorize-gan`, and any `--command` given, e.g. the previous version's, in the
  same run): the folder of N photos and the folder's first photo alone; seconds per photo after start-up =
  (wall(N) - wall(1)) / (N - 1); CPU utilization = (user + system) / wall of the N-photo run (os.wait4);
  peak memory (maxrss) of that run; the median of ``--repeat`` runs;
- the stage profile: one photo at a time in this process, core-seconds per stage (process CPU time, all
  threads): decode, luminance + network input, network (with mirror averaging, as served), colour kernel
  (one thread), encode (to memory);
- single-photo latency: `colorize-gan PHOTO -o OUT` wall, start-up included (median).
``--memory-mp 24 --memory-count 6`` adds a folder of 24 MP photos and reports its peak memory.
Default settings throughout (ONNX Runtime, render size 256, mirror averaging on). A benchmark, not a test.
"""
from __future__ import annotations

import argparse
import io
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
THIS = [sys.executable, "-m", "runtime.cli.main"]  # run with cwd = this checkout, so this checkout's runtime


def make_folder(folder: Path, mp: float, count: int) -> list[Path]:
    sys.path.insert(0, str(ROOT / "tools"))
    from benchmark_cpu import make_photo

    folder.mkdir(parents=True, exist_ok=True)
    first = make_photo(mp, folder / "p000.jpg")
    base = np.asarray(Image.open(first))
    rng = np.random.default_rng(1)
    paths = [first]
    for i in range(1, count):
        a = np.roll(base, 97 * i, axis=1).astype(np.int16) + rng.integers(-2, 3, base.shape, dtype=np.int16)
        p = folder / f"p{i:03d}.jpg"
        Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(p, quality=92)
        paths.append(p)
    return paths


def _codec(path: str) -> None:
    with Image.open(path) as im:
        im.load()
        im.save(io.BytesIO(), format="JPEG", quality=92)


def codec_floor(paths: list[Path]) -> float:
    with Pool(len(os.sched_getaffinity(0))) as pool:
        pool.map(_codec, [str(p) for p in paths[:2]])  # warm
        t = time.perf_counter()
        pool.map(_codec, [str(p) for p in paths], chunksize=1)
        return (time.perf_counter() - t) / len(paths)


def timed_run(cmd: list[str], out: Path) -> tuple[float, float, int]:
    """wall seconds, CPU seconds (user + system), maxrss KiB of one command (its own rusage, os.wait4)."""
    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    proc = subprocess.Popen(cmd + ["-o", str(out), "-q"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.read().decode()[-500:]}")
    proc.stderr.close()
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss


def per_photo(cmd: list[str], folder: Path, first: Path, n: int, work: Path, repeat: int) -> dict[str, float]:
    rows = []
    for _ in range(repeat):
        w1, _, _ = timed_run(cmd + [str(first)], work / "one")
        wn, cpu, rss = timed_run(cmd + [str(folder)], work / "all")
        rows.append(dict(per_photo=(wn - w1) / (n - 1), util=cpu / wn, rss=rss / 1024, single=w1))
    return {k: statistics.median(r[k] for r in rows) for k in rows[0]}


def stage_profile(path: Path, repeat: int = 5) -> dict[str, float]:
    from runtime.image import fastcolor
    from runtime.image.colorizer import Colorizer
    from runtime.image.geometry import network_input
    from runtime.image.imageio import encode_image, read_image, split_luminance

    c = Colorizer.load(None, "onnxruntime")
    acc: dict[str, list[float]] = {}
    for i in range(repeat + 1):
        t = [time.process_time()]
        dec = read_image(path)
        t.append(time.process_time())
        planes = split_luminance(dec.image)
        net_L, geom = network_input(planes, c.spec.size_multiple, c.render_size)
        t.append(time.process_time())
        ab = c.predict_ab(net_L)[0]
        t.append(time.process_time())
        rgb = fastcolor.merge(planes, ab, geom, 1.0, 8, threads=1, rgbx=True)
        t.append(time.process_time())
        encode_image(rgb, "JPEG", None, 92, dec.icc, dec.exif)
        t.append(time.process_time())
        if i:
            for k, a, b in zip(("decode", "luminance", "network", "colour kernel", "encode"), t, t[1:]):
                acc.setdefault(k, []).append(b - a)
    c.close()
    return {k: statistics.median(v) for k, v in acc.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", nargs="+", type=float, default=[12, 1], help="megapixels")
    ap.add_argument("--counts", nargs="+", type=int, default=[16, 48], help="photos per folder, one per size")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--command", action="append", default=[],
                    help="another colorize-gan to measure beside this checkout's (e.g. a previous version's); repeatable")
    ap.add_argument("--memory-mp", type=float, default=24)
    ap.add_argument("--memory-count", type=int, default=6, help="0 = no peak-memory folder")
    ap.add_argument("--write", type=Path, default=None)
    args = ap.parse_args(argv)
    if len(args.counts) != len(args.sizes):
        ap.error("--counts needs one count per size")

    tmp = Path(tempfile.mkdtemp(prefix="cg-batch-"))
    commands = [("this checkout", THIS)] + [(c, shlex.split(c)) for c in args.command]
    lines = [f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores, load average at start "
             f"{os.getloadavg()[0]:.1f}; python {platform.python_version()}; median of {args.repeat}; "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
             "| command | folder | codec floor s/photo | s/photo after start-up | x floor | CPU cores used | "
             "peak memory MB | one photo, start-up included s |", "|---|---|---|---|---|---|---|---|"]
    profiles = {}
    try:
        for mp, n in zip(args.sizes, args.counts):
            folder = tmp / f"in_{mp:g}mp"
            paths = make_folder(folder, mp, n)
            floor = codec_floor(paths)
            for label, cmd in commands:
                r = per_photo(cmd, folder, paths[0], n, tmp, args.repeat)
                lines.append(f"| {label} | {n} x {mp:g} MP grey JPEG | {floor:.4f} | **{r['per_photo']:.4f}** | "
                             f"{r['per_photo'] / floor:.2f} | {r['util']:.2f} | {r['rss']:.0f} | {r['single']:.3f} |")
                print(lines[-1], file=sys.stderr)
            profiles[mp] = stage_profile(paths[0])
        if args.memory_count:
            folder = tmp / "memory"
            make_folder(folder, args.memory_mp, args.memory_count)
            for label, cmd in commands:
                _, _, rss = timed_run(cmd + [str(folder)], tmp / "mem")
                lines += [f"", f"peak memory, {args.memory_count} x {args.memory_mp:g} MP folder, {label}: {rss / 1024:.0f} MB"]
        lines += ["", "stage profile (this checkout, one photo at a time, core-seconds per photo, median):", "",
                  "| photo | " + " | ".join(next(iter(profiles.values()))) + " | total |",
                  "|---|" + "---|" * (len(next(iter(profiles.values()))) + 1)]
        for mp, prof in profiles.items():
            lines.append(f"| {mp:g} MP | " + " | ".join(f"{v:.4f}" for v in prof.values()) + f" | {sum(prof.values()):.4f} |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report = "\n".join(lines)
    print(report)
    if args.write:
        args.write.write_text(report + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
