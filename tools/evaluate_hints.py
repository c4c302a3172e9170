"""How well a hint-taking model follows colour hints (Zhang et al. 2017, Fig. 6): mean PSNR and CIEDE2000
on held-out photos against the number of hint points sampled from the ground truth.

    python tools/evaluate_hints.py FOLDER [--holdout 1000] [--points 0 1 2 5 10 20] [--limit N] [--json OUT]

For each photo (the greyscale version of a colour photo, as colorize-gan-evaluate makes it) and each count
K, K points are placed uniformly at random (numpy seed = --seed + photo index, so every model and every K sees
the same places: the K-point set is the first K of one fixed sequence), each a PATCH x PATCH square painted with
the mean true colour of that patch, given to the runtime as an RGBA hint image. K = 0 passes no hints, and the
script checks that this equals the automatic result bit for bit.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's runtime/trainer, not an installed copy
from trainer.evaluate import grey_baseline, load_colour  # noqa: E402
from trainer.files import find_images, split  # noqa: E402
from trainer.metrics import score_image  # noqa: E402


def patch_hints(truth: np.ndarray, corners, patch: int) -> np.ndarray:
    """RGBA uint8 hint image: a ``patch`` x ``patch`` square at each (y, x) top-left corner, painted with the mean
    true colour under it."""
    out = np.zeros((*truth.shape[:2], 4), np.uint8)
    for y, x in corners:
        mean = truth[y:y + patch, x:x + patch].reshape(-1, 3).mean(0)
        out[y:y + patch, x:x + patch, :3] = np.clip(np.round(mean * 255), 0, 255).astype(np.uint8)
        out[y:y + patch, x:x + patch, 3] = 255
    return out


def hint_image(truth: np.ndarray, k: int, rng_seed: int, patch: int) -> np.ndarray | None:
    """RGBA uint8 hint image with the first ``k`` points of the photo's fixed random sequence."""
    if k == 0:
        return None
    h, w = truth.shape[:2]
    rng = np.random.default_rng(rng_seed)
    ys = rng.integers(0, h - patch + 1, size=64)
    xs = rng.integers(0, w - patch + 1, size=64)
    return patch_hints(truth, zip(ys[:k], xs[:k]), patch)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--model", default=None, help="model bundle or checkpoint (default: the embedded model)")
    ap.add_argument("--holdout", type=int, default=None, help="score the trainer's validation split of FOLDER (its --val-count)")
    ap.add_argument("--seed", type=int, default=0, help="the trainer's --seed (split) and the hint places' base seed")
    ap.add_argument("--points", type=int, nargs="+", default=[0, 1, 2, 5, 10, 20])
    ap.add_argument("--patch", type=int, default=5, help="side of each hint patch in pixels")
    ap.add_argument("--limit", type=int, default=None, help="at most this many photos (evenly spaced over the split)")
    ap.add_argument("--hint-mode", default="spread", choices=["spread", "network"],
                    help="who follows the hints (runtime.image.colorizer.HINT_MODES): spread them over the automatic answer "
                         "(the default) or the model's own hint input")
    ap.add_argument("--json", type=Path, default=None, help="write the table and settings here")
    args = ap.parse_args(argv)
    if not args.folder.is_dir():
        print(f"evaluate_hints: error: not a folder: {args.folder}", file=sys.stderr)
        return 2
    paths = find_images(args.folder)
    if args.holdout is not None:
        paths = split(paths, args.holdout, None, args.seed)[1]
    if args.limit:
        paths = paths[:: max(1, len(paths) // args.limit)][: args.limit]

    from tqdm import tqdm

    from runtime import Colorizer

    c = Colorizer.load(args.model, hint_mode=args.hint_mode)
    if not c.takes_hints:
        print("evaluate_hints: error: the model takes no colour hints", file=sys.stderr)
        return 2
    sums = {k: {"psnr": [], "ciede2000": []} for k in args.points}
    grey_scores = {"psnr": [], "ciede2000": []}
    mismatch = 0
    for i, path in enumerate(tqdm(paths, desc="hints", unit="img", file=sys.stderr)):
        truth = load_colour(path)
        if truth is None:
            continue
        grey = grey_baseline(truth)
        g = score_image(grey, truth)
        grey_scores["psnr"].append(g["psnr"])
        grey_scores["ciede2000"].append(g["ciede2000"])
        auto = c.colorize_array(grey)
        for k in args.points:
            pred = c.colorize_array(grey, hints=hint_image(truth, k, args.seed + i, args.patch))
            if k == 0 and not np.array_equal(pred, auto):
                mismatch += 1
            s = score_image(pred, truth)
            sums[k]["psnr"].append(s["psnr"])
            sums[k]["ciede2000"].append(s["ciede2000"])
    c.close()
    rows = {k: {m: float(np.mean(v)) for m, v in d.items()} for k, d in sums.items()}
    grey_row = {m: float(np.mean(v)) for m, v in grey_scores.items()}
    n = len(grey_scores["psnr"])
    print(f"{n} photos, patch {args.patch} px, model {args.model or 'embedded default'}, "
          f"hint mode {args.hint_mode}")
    print("| hint points | PSNR dB | vs 0 points | CIEDE2000 |")
    print("|---:|---:|---:|---:|")
    for k, r in rows.items():
        base = rows.get(0, r)
        print(f"| {k} | {r['psnr']:.2f} | {r['psnr'] - base['psnr']:+.2f} | {r['ciede2000']:.2f} |")
    print(f"| grey (ab = 0) | {grey_row['psnr']:.2f} | | {grey_row['ciede2000']:.2f} |")
    print(f"0 points equal to the automatic result: {n - mismatch} of {n}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"photos": n, "patch": args.patch, "model": args.model, "folder": str(args.folder),
                                         "holdout": args.holdout, "seed": args.seed, "hint_mode": args.hint_mode, "rows": rows, "grey": grey_row,
                                         "zero_points_equal_automatic": n - mismatch}, indent=2) + "\n")
    return 0 if mismatch == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
