"""Contact sheets of held-out photos for looking at a model before calling it good (issue 17): the N most colourful
and N ordinary ones (the truth's colourfulness nearest the median), each row grey | model 1 | model 2 ... | truth.

    python tools/contact_sheets.py --data ../shared/data/mix ../shared/data/photos --val-count 1000 10 \
        --model runtime/model/weights/default.json --model NEW.json [--count 300] [--rows 30] \
        --out docs/default-model/sheet      # writes sheet_colourful.jpg and sheet_ordinary.jpg

The photos are ``--count`` evenly spaced over the run's validation split (the frontier's photos); every model
colorizes them as served (default render size and settings) on a CPU backend. Panels are 128 px tall.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

PANEL = 128


def thumb(rgb: np.ndarray):
    from PIL import Image

    im = Image.fromarray((np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8))
    return im.resize((max(1, round(im.width * PANEL / im.height)), PANEL), Image.LANCZOS)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    from calibrate_chroma import add_sample_args, sample_photos

    ap.add_argument("--model", action="append", required=True, help="bundle or checkpoint (repeat for several)")
    add_sample_args(ap)  # --count 300: the frontier's photos (greyscale ones then skipped)
    ap.add_argument("--rows", type=int, default=30)
    ap.add_argument("--out", type=Path, required=True, help="path stem: STEM_colourful.jpg and STEM_ordinary.jpg")
    args = ap.parse_args(argv)

    from doc_sheet import save_rows
    from tqdm import tqdm

    from runtime import Colorizer
    from trainer.evaluate import grey_baseline, load_colour
    from trainer.metrics import colourfulness

    photos = sample_photos(args, held_out=True)
    truths = [(p, t) for p in photos if (t := load_colour(p)) is not None]
    cf = np.array([colourfulness(t) for _, t in truths])
    order = np.argsort(cf)
    colourful = order[::-1][: args.rows]
    median = np.median(cf)
    ordinary = np.argsort(np.abs(cf - median))[: args.rows]
    chosen = sorted(set(colourful.tolist()) | set(ordinary.tolist()))
    panels = {i: [thumb(grey_baseline(truths[i][1]))] for i in chosen}
    for model in args.model:
        with Colorizer.load(model, backend="cpu") as c:
            for i in tqdm(chosen, desc=f"sheet {model}", unit="img", file=sys.stderr):
                panels[i].append(thumb(c.colorize_array(grey_baseline(truths[i][1]))))
    for i in chosen:
        panels[i].append(thumb(truths[i][1]))
    for name, idx in (("colourful", colourful), ("ordinary", ordinary)):
        path = args.out.with_name(f"{args.out.name}_{name}.jpg")
        save_rows([panels[i] for i in idx], path)
        print(f"{path}: {len(idx)} photos, truth colourfulness {cf[idx].min():.0f}-{cf[idx].max():.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
