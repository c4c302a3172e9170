#!/usr/bin/env python3
"""Saturation that follows the model's own colour, per photo or per pixel, against one global factor (issue 17).

The served colour is the network's ab times one ``saturation`` for every photo. This probe asks whether a factor
that depends on what the model predicted does better at the same colourfulness:

- ``global s``: the runtime's saturation s (the frontier's line, for reference);
- ``photo s k``: s x (m / M)^k per photo, m the photo's mean predicted chroma (sqrt(a^2 + b^2) over the network
  grid, padding excluded) and M the median of m over the photos scored (reported, so that a served version can fix
  it); k > 0 gives photos the model sees as colourful more colour and dull ones less;
- ``pixel s g``: s x (c / M)^g per pixel, c the pixel's predicted chroma, factor clipped to [0.25, 4]: strong colour
  pushed further, weak colour left muted (a contrast curve on chroma).

Each photo is colorized once as served (render size, mirror averaging); every policy finishes the same ab. For each
family the script reports the PSNR gain over grey at CF ratio 0.9 (all photos) and 0.75 (the most colourful quarter,
by the truth's colourfulness), interpolated along the family's line over s. Choose on TRAINING photos (the default);
``--held-out`` scores the validation split.

    python tools/saturation_policy.py --data ../shared/data/mix ../shared/data/photos --val-count 1000 10 \
        --count 300 [--model BUNDLE] [--held-out] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's runtime/trainer, not an installed copy
sys.path.insert(0, str(Path(__file__).resolve().parent))
from calibrate_chroma import add_sample_args, sample_photos  # noqa: E402
from frontier import serve_photo  # noqa: E402

FACTOR_RANGE = (0.25, 4.0)


def collect(model: str | None, photos: list[Path]) -> tuple[list[dict], object]:
    """The Colorizer and, per photo: the served ab (network grid), the full-resolution L and truth, and the photo's chroma statistic."""
    from tqdm import tqdm

    from runtime import Colorizer
    from runtime.image.color import rgb_to_lab
    from trainer.metrics import colourfulness, psnr

    c = Colorizer.load(model, backend="cpu")
    rows = []
    for path in tqdm(photos, desc="colorize", unit="img", file=sys.stderr):
        served = serve_photo(c, path)
        if served is None:
            continue
        truth, grey, L, ab, geom = served
        chroma = np.hypot(ab[0], ab[1])[geom.top:geom.top + geom.h, geom.left:geom.left + geom.w]
        rows.append({"L": L, "ab": ab, "geom": geom, "truth": truth, "lab_truth": rgb_to_lab(truth),
                     "cf_truth": colourfulness(truth), "psnr_grey": psnr(grey, truth), "m": float(chroma.mean())})
    return rows, c


def factor(policy: tuple, ab: np.ndarray, m: float, M: float) -> np.ndarray | float:
    kind, s, k = policy
    if kind == "global":
        return s
    if kind == "photo":
        return s * (max(m, 1e-3) / M) ** k
    c = np.hypot(ab[0], ab[1])
    return s * np.clip((np.maximum(c, 1e-3) / M) ** k, *FACTOR_RANGE)


def score(rows: list[dict], c, policy: tuple, M: float) -> list[tuple[float, float, float]]:
    from runtime.image.color import rgb_to_lab
    from trainer.metrics import ciede2000 as de2000
    from trainer.metrics import colourfulness, psnr

    out = []
    for r in rows:
        f = factor(policy, r["ab"], r["m"], M)
        if np.isscalar(f):  # one factor for the photo: the runtime's own saturation
            rgb = c.finish(r["L"], r["ab"], r["geom"], saturation=float(f))
        else:
            rgb = c.finish(r["L"], r["ab"] * f.astype(np.float32), r["geom"])
        out.append((psnr(rgb, r["truth"]), float(de2000(rgb_to_lab(rgb), r["lab_truth"]).mean()), colourfulness(rgb)))
    return out


def at_cf(points: list[dict], target: float) -> float | None:
    """PSNR gain interpolated at CF ratio ``target`` along a line (points in order of s); None if not crossed."""
    for a, b in zip(points, points[1:]):
        lo, hi = sorted((a["cf_ratio"], b["cf_ratio"]))
        if lo <= target <= hi and hi > lo:
            t = (target - a["cf_ratio"]) / (b["cf_ratio"] - a["cf_ratio"])
            return a["psnr_gain"] + t * (b["psnr_gain"] - a["psnr_gain"])
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="bundle or checkpoint (default: the embedded model)")
    add_sample_args(ap)
    ap.add_argument("--held-out", action="store_true", help="score the validation split instead of training photos")
    ap.add_argument("--saturations", type=float, nargs="+", default=[0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4])
    ap.add_argument("--photo-powers", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    ap.add_argument("--pixel-powers", type=float, nargs="+", default=[0.1, 0.2, 0.35])
    ap.add_argument("--median", type=float, default=None, help="M for both families (default: the median photo m)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    rows, c = collect(args.model, sample_photos(args, held_out=args.held_out))
    M = args.median or float(np.median([r["m"] for r in rows]))
    cf_truth = np.array([r["cf_truth"] for r in rows])
    subsets = {"all": np.ones(len(rows), bool), "quarter": cf_truth >= np.percentile(cf_truth, 75)}
    families = {"global": [("global", s, 0.0) for s in args.saturations]}
    families |= {f"photo k{k:g}": [("photo", s, k) for s in args.saturations] for k in args.photo_powers}
    families |= {f"pixel g{g:g}": [("pixel", s, g) for s in args.saturations] for g in args.pixel_powers}
    report: dict = {"model": args.model or "embedded default", "photos": len(rows), "held_out": args.held_out,
                    "median_chroma": M, "families": {}}
    print(f"{len(rows)} photos ({'held out' if args.held_out else 'training'}), median photo chroma M {M:.2f}")
    psnr_grey = np.array([r["psnr_grey"] for r in rows])
    for name, policies in families.items():
        fam = {sub: {"points": []} for sub in subsets}
        for policy in policies:
            per = np.array(score(rows, c, policy, M))
            for sub, sel in subsets.items():
                fam[sub]["points"].append({"s": policy[1], "psnr_gain": float(per[sel, 0].mean() - psnr_grey[sel].mean()),
                                           "ciede2000": float(per[sel, 1].mean()),
                                           "cf_ratio": float(per[sel, 2].mean() / cf_truth[sel].mean())})
        fam["all"]["at_cf_0.9"] = at_cf(fam["all"]["points"], 0.9)
        fam["quarter"]["at_cf_0.75"] = at_cf(fam["quarter"]["points"], 0.75)
        report["families"][name] = fam
        fmt = lambda v: "-" if v is None else f"{v:+.2f}"  # noqa: E731
        print(f"{name}: all at CF 0.9 {fmt(fam['all']['at_cf_0.9'])} dB, quarter at CF 0.75 {fmt(fam['quarter']['at_cf_0.75'])} dB")
        for pa, pq in zip(fam["all"]["points"], fam["quarter"]["points"]):
            print(f"  s {pa['s']:.2f}: all {pa['psnr_gain']:+.2f} dB / {pa['ciede2000']:.2f} / CF {pa['cf_ratio']:.3f}; "
                  f"quarter {pq['psnr_gain']:+.2f} / {pq['ciede2000']:.2f} / {pq['cf_ratio']:.3f}")
    c.close()
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
