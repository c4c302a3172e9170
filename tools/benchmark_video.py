"""Benchmark ``colorize-gan video`` throughput (frames per second) at 480p and 1080p.

Generates a greyscale H.264 clip per size (a pan over a smooth synthetic texture, so the encoder
sees realistic motion), runs the real pipeline (runtime.video.colorize_video: decode -> L ->
network -> temporal filter -> finish -> encode -> mux) and reports end-to-end fps with the
stabilizer on and off, plus where the time goes (network, prepare, finish; the rest is decode,
stabilizer, YUV conversion and encode), and the codec floor: the same pipeline with the colour work
taken out (decode + RGB -> YUV + encode only). Decoding, the network and encoding overlap on three
threads (runtime/video/stages.py), so the per-stage columns are wall times that overlap. Speed depends on the machine and on what else runs on it:
the script prints the CPU count and load so the numbers can be read in context.

    python tools/benchmark_video.py [--model M (default: the embedded model)] [--frames 24] [--sizes 854x480,1920x1080]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runtime.video.temporal import box_filter  # noqa: E402
from runtime.video import VideoOptions, colorize_video  # noqa: E402


def make_clip(path: Path, size: tuple[int, int], frames: int, fps: int = 25) -> None:
    import av

    w, h = size
    rng = np.random.default_rng(0)
    tex = box_filter(rng.uniform(0, 255, (h // 4 + 8, (w + frames * 8) // 4 + 8)).astype(np.float32), 2)
    tex = np.kron(tex, np.ones((4, 4), np.float32))  # upscale: smooth, film-like structure
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        for i in range(frames):
            g = np.clip(tex[:h, 2 * i: 2 * i + w], 0, 255).astype(np.uint8)
            f = av.VideoFrame.from_ndarray(np.repeat(g[..., None], 3, axis=2), format="rgb24")
            f.pts, f.time_base = i, Fraction(1, fps)
            out.mux(vs.encode(f))
        out.mux(vs.encode(None))


class Timed:
    """Wraps a Colorizer and accumulates the time spent in each step function."""

    def __init__(self, inner):
        self.inner, self.t = inner, {"prepare": 0.0, "network": 0.0, "finish": 0.0}

    def prepare(self, L):
        t = time.perf_counter()
        r = self.inner.prepare(L)
        self.t["prepare"] += time.perf_counter() - t
        return r

    def predict_ab(self, x):
        t = time.perf_counter()
        r = self.inner.predict_ab(x)
        self.t["network"] += time.perf_counter() - t
        return r

    def finish_u8(self, *a, **k):
        t = time.perf_counter()
        r = self.inner.finish_u8(*a, **k)
        self.t["finish"] += time.perf_counter() - t
        return r


class CodecOnly:
    """The video pipeline with the colour work taken out (no network, no colour kernel: each frame's grey goes to the
    encoder as it is): decode + L + RGB -> YUV + x264 + mux, the floor a colorizing run can approach."""

    def __init__(self, inner):
        self.inner, self.t = inner, {"prepare": 0.0, "network": 0.0, "finish": 0.0}

    def prepare(self, L):
        return np.zeros((1, 1, 32, 32), np.float32), L.shape

    def predict_ab(self, x):
        return np.zeros((x.shape[0], 2, 32, 32), np.float32)

    def finish_u8(self, L, ab, shape, saturation=1.0):
        return np.repeat((L * np.float32(2.55)).astype(np.uint8)[..., None], 3, axis=2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="bundle or trainer checkpoint (default: the embedded model)")
    ap.add_argument("--backend", default="cpu")
    ap.add_argument("--render-size", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--sizes", default="854x480,1920x1080")
    ap.add_argument("--batch-size", type=int, default=4)
    args = ap.parse_args(argv)

    from runtime.image.colorizer import Colorizer

    c = Colorizer.load(model=args.model, backend=args.backend, render_size=args.render_size, threads=args.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load {load:.1f}; "
          f"backend {c.backend_name}, render size {c.render_size}, batch {args.batch_size}, {args.frames} frames\n")
    print("| size | stabilize | fps | s/frame | network | prepare | finish | rest (decode, filter, encode) |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.sizes.split(","):
            w, h = (int(v) for v in spec.split("x"))
            src = Path(tmp) / f"in_{w}x{h}.mp4"
            make_clip(src, (w, h), args.frames)
            floor = colorize_video(CodecOnly(c), src, Path(tmp) / "out.mp4", VideoOptions(stabilize=False, progress=False),
                                   log=lambda m: None)
            print(f"| {w}x{h} | codec only (no colour work) | {floor.fps:.2f} | {floor.seconds / floor.frames:.3f} | | | | |",
                  flush=True)
            for stabilize in (False, True):
                timed = Timed(c)
                opts = VideoOptions(stabilize=stabilize, batch_size=args.batch_size, progress=False)
                r = colorize_video(timed, src, Path(tmp) / "out.mp4", opts, log=lambda m: None)
                per = r.seconds / r.frames
                parts = {k: v / r.frames for k, v in timed.t.items()}
                rest = per - sum(parts.values())
                print(f"| {w}x{h} | {'on' if stabilize else 'off'} | {r.fps:.2f} | {per:.3f} | {parts['network']:.3f} | "
                      f"{parts['prepare']:.3f} | {parts['finish']:.3f} | {rest:.3f} |", flush=True)
    c.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
