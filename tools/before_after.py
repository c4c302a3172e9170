"""The README's picture: for each sample photo, greyscale input | the default model at the default settings | original.

    python tools/before_after.py [--model MODEL] [-o docs/before_after.jpg]

Inputs are samples/*_grey.jpg; the originals come from scikit-image's data (the same photos in colour; the dev extra
installs scikit-image). Each row is scaled to 300 px high.
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
SAMPLES = ("chelsea", "astronaut", "coffee")
ROW_H = 300


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "before_after.jpg")
    args = ap.parse_args(argv)

    from skimage import data

    from runtime import Colorizer

    rows = []
    with Colorizer.load(args.model) as c:
        for name in SAMPLES:
            grey = Image.open(ROOT / "samples" / f"{name}_grey.jpg").convert("L")
            original = Image.fromarray(np.asarray(getattr(data, name)())[..., :3])
            panels = [grey.convert("RGB"), c.colorize(grey), original]
            w = round(grey.width * ROW_H / grey.height)
            rows.append([p.resize((w, ROW_H), Image.Resampling.LANCZOS) for p in panels])
    save_rows(rows, args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
