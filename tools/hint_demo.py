"""The colour-hints picture in the docs: one photo, the automatic result, and the result with three hand-placed dots.

    python tools/hint_demo.py [--model MODEL] [-o docs/hints_demo.jpg]

The photo is samples/coffee_grey.jpg (scikit-image's "coffee", CC0; see samples/README.md). The dots: the cup
made red, the saucer made blue (two dots, on both sides of the cup). Panels: input | automatic | with the 3 dots (each
dot ringed in white on the picture so it can be found).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's runtime/trainer, not an installed copy
sys.path.insert(0, str(Path(__file__).resolve().parent))
from doc_sheet import save_rows  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "samples" / "coffee_grey.jpg"
DOTS = [(196, 190, "#c42828", 4), (118, 300, "#2a4fb4", 4), (445, 290, "#2a4fb4", 4)]  # (x, y, colour, radius)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "hints_demo.jpg")
    args = ap.parse_args(argv)

    from runtime import Colorizer

    photo = Image.open(PHOTO).convert("L")
    with Colorizer.load(args.model) as c:
        auto = c.colorize(photo)
        hinted = c.colorize(photo, hints=DOTS)
    marked = hinted.copy()
    draw = ImageDraw.Draw(marked)
    for x, y, colour, r in DOTS:
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
        draw.ellipse((x - r - 4, y - r - 4, x + r + 4, y + r + 4), outline="white", width=2)
    save_rows([[photo.convert("RGB"), auto, marked]], args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
