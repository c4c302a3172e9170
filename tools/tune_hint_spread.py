#!/usr/bin/env python3
"""Choose the hint-spreading constants (runtime/image/hint_spread.py: SIGMA_L, REACH, REACH_BETWEEN, FLOOR; and
runtime/image/hint_features.py: FILL_SIGMA, FILL_EPS, FILL_REACH) on TRAINING photos, and see what each setting does
to a restorer's dots on one object.

For each photo of the trainer's training split (never the validation split), K hint points are sampled from
the truth as tools/evaluate_hints.py does; the network's automatic answer is computed once per photo, and every
(sigma_L, reach, reach between hints, floor) setting of the grid spreads the hints over that same answer. The
table gives mean PSNR and CIEDE2000 per setting ("network alone": the model's own hint input, for reference): each
setting of the spreading's constants (--sigmas ... --floors) without the feature-space fill and with each fill
setting (--fill-sigmas, --fill-eps, --fill-reaches), each with every power of the competition between hint colours
(--sharpens; 0: off) and with the hints' own colour where they own a pixel or the residual only (--owned 1 0); and
two columns from the hinted-square scene (flat_square_photo, also used by tests/test_hints.py): three red dots on a
flat grey square in a textured photo; "square a" is the square's mean a (the hint's own is 65: higher = the square
follows the dots better), "far dab" the mean delta ab from the automatic result in a far corner (lower = more local;
the test's limit is 6). The chosen constants go into hint_spread.py by hand.

    python tools/tune_hint_spread.py ../shared/data/mix --val-count 1000 --count 60 --points 10 --sigmas 2.8 3.2 4 \
        --betweens 1 --floors 0.7 --fill-sigmas 0.7 --fill-eps 1 --fill-reaches 0.3 --sharpens 0 2 4
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's runtime/trainer, not an installed copy
sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaluate_hints import hint_image  # noqa: E402

from trainer.evaluate import grey_baseline, load_colour  # noqa: E402
from trainer.files import find_images, split  # noqa: E402
from trainer.metrics import score_image  # noqa: E402

SQUARE_RED = "#d02020"


def flat_square_photo() -> tuple[np.ndarray, tuple[slice, slice]]:
    """A textured grey photo (256x320 uint8) with a flat mid-grey square: the region a restorer would mark with a
    colour. Returns the photo and the square's (rows, columns)."""
    rng = np.random.default_rng(5)
    h, w = 256, 320
    yy, xx = np.mgrid[0:h, 0:w]
    img = 110 + 50 * np.sin(xx / 9.0) * np.cos(yy / 13.0) + rng.normal(0, 6, (h, w))
    sq = (slice(80, 176), slice(110, 206))
    img[sq] = 128
    return np.clip(img, 0, 255).astype(np.uint8), sq


def square_dots(sq: tuple[slice, slice]) -> list[tuple[int, int, str, int]]:
    """Three red dots inside the square, as (x, y, colour, radius) hint points."""
    sy, sx = sq
    return [(sx.start + 30, sy.start + 30, SQUARE_RED, 3), (sx.start + 66, sy.start + 48, SQUARE_RED, 3),
            (sx.start + 40, sy.start + 70, SQUARE_RED, 3)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--model", default=None, help="model bundle or checkpoint (default: the embedded model)")
    ap.add_argument("--val-count", type=int, required=True, help="the trainer's --val-count for FOLDER (those photos are skipped)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--count", type=int, default=60, help="training photos (evenly spaced)")
    ap.add_argument("--points", type=int, nargs="+", default=[10])
    ap.add_argument("--sigmas", type=float, nargs="+", default=[4.0])
    ap.add_argument("--reaches", type=float, nargs="+", default=[0.2])
    ap.add_argument("--betweens", type=float, nargs="+", default=[0.0, 1.0],
                    help="reach inside the convex hull of the hints (0: the same as outside)")
    ap.add_argument("--floors", type=float, nargs="+", default=[0.0, 0.7],
                    help="the spread hint weight at which a hint's colour starts to fade (0: no plateau)")
    ap.add_argument("--fill-sigmas", type=float, nargs="+", default=[], help="feature-space fill: kernel widths")
    ap.add_argument("--fill-eps", type=float, nargs="+", default=[1.0], help="fill: confidence constants")
    ap.add_argument("--fill-reaches", type=float, nargs="+", default=[0.3], help="fill: reach from the nearest hint")
    ap.add_argument("--sharpens", type=float, nargs="+", default=[0.0],
                    help="competition between hint colours: powers (0: off, the plain mean)")
    ap.add_argument("--owned", type=int, nargs="+", default=[1], choices=(0, 1),
                    help="1: the hints' own colour where they own a pixel (the runtime's default); 0: the residual only")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    from runtime import Colorizer
    from runtime.image import hint_features, hint_spread
    from runtime.image.color import rgb_to_l, rgb_to_lab
    from runtime.image.geometry import prepare_l

    c = Colorizer.load(args.model, hint_mode="network")
    # (sigma_L, reach, between, floor, fill (sigma, eps, reach) or None): every spreading without the fill and with
    # each fill setting
    fills = [None, *itertools.product(args.fill_sigmas, args.fill_eps, args.fill_reaches)]
    grid = [(*spreading, f, p, o) for spreading in itertools.product(args.sigmas, args.reaches, args.betweens, args.floors)
            for f in fills for p in args.sharpens for o in args.owned]

    def name(s: float, r: float, b: float, f: float, fill: tuple | None, sharpen: float, owned: int) -> str:
        out = f"spread, sigma {s:g}, reach {r:g}, between {b:g}, floor {f:g}"
        out += f", fill sigma {fill[0]:g} eps {fill[1]:g} reach {fill[2]:g}" if fill else ""
        return out + (f", sharpen {sharpen:g}" if sharpen else "") + ("" if owned else ", residual only")

    constants = (hint_features.FILL_SIGMA, hint_features.FILL_EPS, hint_features.FILL_REACH)

    def spread(ab, net_L, net_hints, s, r, b, f, fill, sharpen, owned):
        hint_features.FILL_SIGMA, hint_features.FILL_EPS, hint_features.FILL_REACH = fill or constants
        return hint_spread.spread_hints(ab, net_L, net_hints, sigma=s, reach=r, reach_between=b or None, floor=f or None,
                                        fill=bool(fill), sharpen=sharpen or None, owned=bool(owned))[0]

    img, sq = flat_square_photo()
    L_sq = rgb_to_l(np.repeat(img[..., None], 3, -1).astype(np.float32) / 255)
    net_L, geom = prepare_l(L_sq, c.spec.size_multiple, c.render_size)
    ab = c.predict_ab(net_L)
    net_hints = c.hint_input(square_dots(sq), geom)
    auto = rgb_to_lab(c.finish(L_sq, ab[0], geom))
    inner = (slice(sq[0].start + 10, sq[0].stop - 10), slice(sq[1].start + 10, sq[1].stop - 10))
    scene = {}
    for setting in grid:
        got = rgb_to_lab(c.finish(L_sq, spread(ab, net_L, net_hints, *setting), geom))
        scene[name(*setting)] = {"square_a": float(got[inner][..., 1].mean()),
                                 "far_dab": float(np.abs(got[:40, :60, 1:] - auto[:40, :60, 1:]).mean())}

    train = split(find_images(args.folder), args.val_count, None, args.seed)[0]
    paths = train[:: max(1, len(train) // args.count)][: args.count]
    scores: dict[str, list[tuple[float, float]]] = {"network alone": [], "automatic (no hints)": []}
    scores.update({name(*setting): [] for setting in grid})
    n = 0
    for i, path in enumerate(paths):
        truth = load_colour(path)
        if truth is None:
            continue
        n += 1
        L_full = rgb_to_l(grey_baseline(truth))
        net_L, geom = prepare_l(L_full, c.spec.size_multiple, c.render_size)
        ab = c.predict_ab(net_L)
        s = score_image(c.finish(L_full, ab[0], geom), truth)
        for k in args.points:
            scores["automatic (no hints)"].append((s["psnr"], s["ciede2000"]))
            net_hints = c.hint_input(hint_image(truth, k, args.seed + 100_000 + i, 5), geom)
            s_net = score_image(c.finish(L_full, c.predict_ab(net_L, net_hints)[0], geom), truth)
            scores["network alone"].append((s_net["psnr"], s_net["ciede2000"]))
            for setting in grid:
                s_sp = score_image(c.finish(L_full, spread(ab, net_L, net_hints, *setting), geom), truth)
                scores[name(*setting)].append((s_sp["psnr"], s_sp["ciede2000"]))
        print(f"\r{i + 1}/{len(paths)}", end="", file=sys.stderr)
    print(file=sys.stderr)
    rows = {key: {"psnr": float(np.mean([v[0] for v in vals])), "ciede2000": float(np.mean([v[1] for v in vals])),
                  **scene.get(key, {})} for key, vals in scores.items()}
    print(f"{n} training photos, {args.points} hint points, model {args.model or 'embedded default'}")
    print("| setting | PSNR dB | CIEDE2000 | square a | far dab |\n|---|---:|---:|---:|---:|")
    for key, r in rows.items():
        extra = f" {r['square_a']:.1f} | {r['far_dab']:.2f} |" if "square_a" in r else " | |"
        print(f"| {key} | {r['psnr']:.2f} | {r['ciede2000']:.2f} |{extra}")
    if args.json:
        args.json.write_text(json.dumps({"photos": n, "points": args.points, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
