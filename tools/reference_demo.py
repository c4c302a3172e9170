"""The colour-reference picture in the docs: grey | automatic | the reference | with the reference, two photos.

    python tools/reference_demo.py [--model MODEL] [-o docs/reference_demo.jpg]

The photos are scikit-image's "coffee" and "astronaut" (CC0 / public domain; samples/README.md), grey from
samples/; each reference is the original colour photo moved so that no pixel lines up: a 70 % crop away from the
centre, mirrored and scaled by 0.9 (the stills protocol of tools/evaluate_reference.py).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's runtime/trainer, not an installed copy
sys.path.insert(0, str(Path(__file__).resolve().parent))
from doc_sheet import save_rows  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = (("coffee_grey.jpg", "coffee"), ("astronaut_grey.jpg", "astronaut"))
ROW_H = 256


def moved(rgb: np.ndarray) -> Image.Image:
    h, w = rgb.shape[:2]
    crop = rgb[int(0.3 * h):, : int(0.7 * w)][:, ::-1]
    im = Image.fromarray(np.ascontiguousarray(crop))
    return im.resize((round(im.width * 0.9), round(im.height * 0.9)), Image.Resampling.BICUBIC)


def fit(im: Image.Image) -> Image.Image:
    return im.resize((round(im.width * ROW_H / im.height), ROW_H), Image.Resampling.LANCZOS)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "reference_demo.jpg")
    args = ap.parse_args(argv)

    from skimage import data

    from runtime import Colorizer

    rows = []
    with Colorizer.load(args.model) as c:
        for grey_name, original in PHOTOS:
            grey = Image.open(ROOT / "samples" / grey_name).convert("L")
            ref = moved(getattr(data, original)()[..., :3])
            rows.append([grey.convert("RGB"), c.colorize(grey), ref, c.colorize(grey, reference=ref)])
    save_rows([[fit(im) for im in row] for row in rows], args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
