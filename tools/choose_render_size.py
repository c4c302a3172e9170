#!/usr/bin/env python3
"""Choose the runtime's default render size and whether to average with the mirror image, on TRAINING photos.

The served model (default: the embedded one) colorizes the greyscale version of each photo of the training split
(the same evenly spaced sample tools/calibrate_chroma.py uses; never the validation split) at every render size of
the grid, with and without mirror averaging (runtime.image.colorizer: the mean of the network's answers for the
picture and its mirror image). The table gives mean PSNR and CIEDE2000 and the CF ratio (mean colourfulness of
the results over that of the photos) per setting. The chosen values go into runtime/image/colorizer.py by hand.

    python tools/choose_render_size.py --data ../shared/data/mix ../shared/data/photos --val-count 1000 10
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
from calibrate_chroma import add_sample_args, sample_photos  # noqa: E402

from trainer.evaluate import grey_baseline, load_colour  # noqa: E402
from trainer.metrics import score_image  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="model bundle or checkpoint (default: the embedded model)")
    add_sample_args(ap)
    ap.add_argument("--sizes", type=int, nargs="+", default=[160, 192, 224, 256, 320])
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    from tqdm import tqdm

    from runtime import Colorizer

    c = Colorizer.load(args.model)
    grid = list(itertools.product(args.sizes, (True, False)))
    scores: dict[tuple[int, bool], list[tuple[float, float, float, float]]] = {g: [] for g in grid}
    for path in tqdm(sample_photos(args), desc="photos", file=sys.stderr):
        truth = load_colour(path)
        if truth is None:
            continue
        grey = grey_baseline(truth)
        for size, mirror in grid:
            c.mirror = mirror
            s = score_image(c.colorize_array(grey, render_size=size), truth)
            scores[(size, mirror)].append((s["psnr"], s["ciede2000"], s["cf_pred"], s["cf_truth"]))
    c.close()
    rows = {}
    for (size, mirror), vals in scores.items():
        a = np.array(vals)
        rows[f"{size} {'mirror' if mirror else 'one pass'}"] = {
            "render_size": size, "mirror": mirror, "psnr": float(a[:, 0].mean()), "ciede2000": float(a[:, 1].mean()),
            "cf_ratio": float(a[:, 2].mean() / a[:, 3].mean())}
    n = len(next(iter(scores.values())))
    print(f"{n} training photos, model {args.model or 'embedded default'}")
    print("| render size | mirror | PSNR dB | CIEDE2000 | CF ratio |\n|---:|---|---:|---:|---:|")
    for r in rows.values():
        print(f"| {r['render_size']} | {'yes' if r['mirror'] else 'no'} | {r['psnr']:.2f} | {r['ciede2000']:.2f} | {r['cf_ratio']:.3f} |")
    if args.json:
        args.json.write_text(json.dumps({"photos": n, "model": args.model, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
