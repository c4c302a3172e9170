#!/usr/bin/env python3
"""What colour hints cost: the hint picture's photo (tools/hint_demo.py) through ``Colorizer.colorize`` without and
with its three dots, and the spreading alone (runtime/image/hint_spread.py) in its default form, spreading the
residual only (not the hints' own colour), without the competition between hint colours, without these and the
feature-space fill (runtime/image/hint_features.py; the cost before them), and in the plain form of the first
version (no joining up between hints, no full-colour plateau); then the default and the form before with a painted
area (a quarter of the photo, as a brush stroke would give) instead of dots. Median of --repeat runs after one
warm-up; record the numbers in docs/benchmarks.md with the machine.

    python tools/benchmark_hints.py [--model MODEL] [--backend onnxruntime] [--repeat 7]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's runtime/trainer, not an installed copy
sys.path.insert(0, str(Path(__file__).resolve().parent))
from hint_demo import DOTS, PHOTO  # noqa: E402


def median_time(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--backend", default="onnxruntime")
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args(argv)

    from runtime import Colorizer
    from runtime.image import hint_spread

    photo = Image.open(PHOTO).convert("L")
    with Colorizer.load(args.model, backend=args.backend) as c:
        print(f"{PHOTO.name} {photo.width}x{photo.height}, render size {c.render_size}, backend {c.backend.name}, "
              f"median of {args.repeat}")
        print(f"colorize, automatic:    {median_time(lambda: c.colorize(photo), args.repeat):.3f} s")
        print(f"colorize, 3 dots:       {median_time(lambda: c.colorize(photo, hints=DOTS), args.repeat):.3f} s")
        net_L, geom = c.prepare_src8(np.asarray(photo))
        ab, hints = c.predict_ab(net_L), c.hint_input(DOTS, geom)
        before = {"fill": False, "sharpen": None, "owned": False}
        kinds = (("default", {}), ("the residual only", {"owned": False}), ("no competing colours", {"sharpen": None}),
                 ("none of the three (the cost before)", before),
                 ("plain", {"reach_between": None, "floor": None, **before}))
        for name, kw in kinds:
            t = median_time(lambda: hint_spread.spread_hints(ab, net_L, hints, **kw), args.repeat)
            print(f"spreading alone, {name}: {t:.3f} s (grid {net_L.shape[2]}x{net_L.shape[3]})")
        area = np.zeros((photo.height, photo.width, 4), np.uint8)
        area[: photo.height // 2, : photo.width // 2] = (40, 160, 60, 255)
        painted = c.hint_input(area, geom)
        for name, kw in (("default", {}), ("none of the three (the cost before)", before)):
            t = median_time(lambda: hint_spread.spread_hints(ab, net_L, painted, **kw), args.repeat)
            print(f"spreading alone, a painted quarter, {name}: {t:.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
