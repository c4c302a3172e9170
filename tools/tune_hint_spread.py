#!/usr/bin/env python3
"""Choose the hint-spreading constants (runtime/image/hint_spread.py: SIGMA_L, REACH) on TRAINING photos.

For each photo of the trainer's training split (never the validation split), K hint points are sampled from
the truth as tools/evaluate_hints.py does; the network runs once per photo with those hints, and every
(sigma_L, reach) setting of the grid is applied to that same network answer. The table gives mean PSNR and
CIEDE2000 per setting, and "network alone" for reference. The chosen constants go into hint_spread.py by hand.

    python tools/tune_hint_spread.py ../shared/data/mix --val-count 1000 --count 60 --points 10
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaluate_hints import hint_image  # noqa: E402

from trainer.evaluate import grey_baseline, load_colour  # noqa: E402
from trainer.files import find_images, split  # noqa: E402
from trainer.metrics import score_image  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--model", default=None, help="model bundle or checkpoint (default: the embedded model)")
    ap.add_argument("--val-count", type=int, required=True, help="the trainer's --val-count for FOLDER (those photos are skipped)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--count", type=int, default=60, help="training photos (evenly spaced)")
    ap.add_argument("--points", type=int, nargs="+", default=[10])
    ap.add_argument("--sigmas", type=float, nargs="+", default=[2.0, 4.0, 8.0])
    ap.add_argument("--reaches", type=float, nargs="+", default=[0.1, 0.2, 0.5])
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    from runtime import Colorizer
    from runtime.image import hint_spread
    from runtime.image.color import rgb_to_l
    from runtime.image.geometry import prepare_l

    train = split(find_images(args.folder), args.val_count, None, args.seed)[0]
    paths = train[:: max(1, len(train) // args.count)][: args.count]
    c = Colorizer.load(args.model, hint_mode="network")
    grid = list(itertools.product(args.sigmas, args.reaches))
    scores: dict[str, list[tuple[float, float]]] = {"network alone": [], "automatic (no hints)": []}
    for base in ("hinted network", "automatic"):
        scores.update({f"{base} + spread, sigma {s:g}, reach {r:g}": [] for s, r in grid})
    n = 0
    for i, path in enumerate(paths):
        truth = load_colour(path)
        if truth is None:
            continue
        n += 1
        L_full = rgb_to_l(grey_baseline(truth))
        for k in args.points:
            hints = hint_image(truth, k, args.seed + 100_000 + i, 5)
            net_L, geom = prepare_l(L_full, c.spec.size_multiple, c.render_size)
            net_hints = c.hint_input(hints, geom)
            for base, ab in (("hinted network", c.predict_ab(net_L, net_hints)), ("automatic", c.predict_ab(net_L))):
                s = score_image(c.finish(L_full, ab[0], geom), truth)
                scores["network alone" if base == "hinted network" else "automatic (no hints)"].append((s["psnr"], s["ciede2000"]))
                for sg, rc in grid:
                    spread = hint_spread.spread_hints(ab, net_L, net_hints, sigma=sg, reach=rc)[0]
                    s = score_image(c.finish(L_full, spread, geom), truth)
                    scores[f"{base} + spread, sigma {sg:g}, reach {rc:g}"].append((s["psnr"], s["ciede2000"]))
        print(f"\r{i + 1}/{len(paths)}", end="", file=sys.stderr)
    print(file=sys.stderr)
    rows = {name: {"psnr": float(np.mean([v[0] for v in vals])), "ciede2000": float(np.mean([v[1] for v in vals]))}
            for name, vals in scores.items()}
    print(f"{n} training photos, {args.points} hint points, model {args.model or 'embedded default'}")
    print("| setting | PSNR dB | CIEDE2000 |\n|---|---:|---:|")
    for name, r in rows.items():
        print(f"| {name} | {r['psnr']:.2f} | {r['ciede2000']:.2f} |")
    if args.json:
        args.json.write_text(json.dumps({"photos": n, "points": args.points, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
