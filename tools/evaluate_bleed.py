#!/usr/bin/env python3
"""How far hint colour bleeds out of the hinted object (issue 19, item 7): hand-traced outlines, a few dots.

    python tools/evaluate_bleed.py ../shared/data/mix [--objects docs/hints/bleed_objects.json]
                                   [--sheet docs/hints/bleed_sheet.jpg] [--json docs/hints/bleed.json]

docs/hints/bleed_objects.json holds object outlines traced by hand on validation photos of mix/ (and on the coffee
sample), with a restorer's dots inside each object: the photo's own mean colour over a 5x5 patch there (the coffee
sample is grey: its dots have the demo's colours, a red cup and a blue saucer). Each photo is coloured automatically
and with the dots (the runtime's hint spreading, runtime/image/hint_spread.py), and two numbers are taken:

- **bleed**: the mean delta ab from the automatic result OUTSIDE every object (lower: the dots' colour stays in
  their object);
- **inside**: the mean ab error inside each object against what it should be (the photo's true ab; for the coffee
  sample the colour of the object's dots): lower, the object takes its colour fully, without a purple band where two
  objects' colours meet.

A band of ``margin`` pixels around each outline and the ``ignore`` regions are left out of both (the tracing's
slack, a handle with a hole). Four spreadings are scored on the same automatic answer: before (sigma_L 4, the plain
mean of competing hint colours, no fill, the residual spread everywhere: the spreading before 2026-12-06), the
runtime's default without the feature-space fill, the runtime's default spreading only the residual (before
the hints' own colour), and now (the runtime's default: its sigma_L, competing colours, the fill of
runtime/image/hint_features.py and the hints' own colour where they own a pixel).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's runtime/trainer, not an installed copy
sys.path.insert(0, str(Path(__file__).resolve().parent))
from doc_sheet import save_rows  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OBJECTS = ROOT / "docs" / "hints" / "bleed_objects.json"
PATCH = 5
SHEET_HEIGHT = 180  # each panel of --sheet is scaled to this height


def _polygon(entry: dict) -> list[tuple[float, float]]:
    if "ellipse" in entry:
        cx, cy, rx, ry = entry["ellipse"]
        t = np.linspace(0, 2 * np.pi, 72, endpoint=False)
        return list(zip((cx + rx * np.cos(t)).tolist(), (cy + ry * np.sin(t)).tolist()))
    return [tuple(p) for p in entry["object"]]


def regions(photo: dict, h: int, w: int, margin: int) -> np.ndarray:
    """Labels (h, w) uint8: 0 outside, k the k-th object (later objects over earlier), 255 left out."""
    from PIL import Image, ImageDraw, ImageFilter

    label = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(label)
    for k, entry in enumerate(photo["objects"], start=1):
        draw.polygon(_polygon(entry), fill=k)
    out = np.asarray(label).copy()
    edges = np.asarray(label.filter(ImageFilter.FIND_EDGES)) > 0
    if margin:
        band = Image.fromarray((edges * 255).astype(np.uint8)).filter(ImageFilter.MaxFilter(2 * margin + 1))
        out[np.asarray(band) > 0] = 255
    ignore = Image.new("L", (w, h), 0)
    for poly in photo.get("ignore", []):
        ImageDraw.Draw(ignore).polygon([tuple(p) for p in poly], fill=255)
    out[np.asarray(ignore) > 0] = 255
    return out


def dots(photo: dict, truth: np.ndarray | None) -> list[tuple[int, int, str, int]]:
    """The photo's hint points as runtime point hints (x, y, colour, radius): a 5x5 patch of the true mean colour,
    or the object's own colour."""
    out = []
    for entry in photo["objects"]:
        for x, y in entry["dots"]:
            if truth is None:
                colour = entry["colour"]
            else:
                mean = truth[y - PATCH // 2:y + PATCH // 2 + 1, x - PATCH // 2:x + PATCH // 2 + 1].reshape(-1, 3).mean(0)
                colour = "#" + "".join(f"{int(round(v * 255)):02x}" for v in mean)
            out.append((x, y, colour, PATCH // 2))
    return out


def scores(got: np.ndarray, auto: np.ndarray, label: np.ndarray, targets: list[np.ndarray]) -> tuple[float, float]:
    """(bleed, inside) of one result (Lab, H x W x 3) against the automatic one (see the module docstring)."""
    outside = label == 0
    bleed = float(np.linalg.norm(got[outside, 1:] - auto[outside, 1:], axis=-1).mean())
    inside = [float(np.linalg.norm(got[label == k, 1:] - t, axis=-1).mean()) for k, t in enumerate(targets, start=1)]
    return bleed, float(np.mean(inside))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path, help="mix/ (the photos named in the objects file)")
    ap.add_argument("--objects", type=Path, default=OBJECTS)
    ap.add_argument("--model", default=None)
    ap.add_argument("--sheet", type=Path, default=None,
                    help="a picture: per photo grey, automatic, before, now (outlines in yellow on the last two)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    from PIL import Image

    from runtime import Colorizer
    from runtime.image import hint_spread
    from runtime.image.color import rgb_to_l, rgb_to_lab
    from runtime.image.geometry import prepare_l
    from runtime.image.hints import parse_color
    from trainer.evaluate import grey_baseline, load_colour

    spec = json.loads(args.objects.read_text())
    kinds = {"before": {"sigma": 4.0, "fill": False, "sharpen": None, "owned": False}, "no fill": {"fill": False},
             "residual only": {"owned": False}, "now": {}}
    rows, panels = [], []
    with Colorizer.load(args.model) as c:
        for photo in spec["photos"]:
            path = ROOT / photo["photo"] if photo["photo"].startswith("samples/") else args.folder / photo["photo"]
            truth = load_colour(path)
            grey = (np.asarray(Image.open(path).convert("RGB"), np.float32) / 255 if truth is None
                    else grey_baseline(truth))
            L_full = rgb_to_l(grey)
            net_L, geom = prepare_l(L_full, c.spec.size_multiple, c.render_size)
            ab = c.predict_ab(net_L)
            hints = c.hint_input(dots(photo, truth), geom)
            label = regions(photo, *L_full.shape, spec["margin"])
            targets = [rgb_to_lab(truth)[label == k, 1:] if truth is not None
                       else rgb_to_lab(np.float32(parse_color(e["colour"])) / 255)[1:]
                       for k, e in enumerate(photo["objects"], start=1)]
            auto = rgb_to_lab(c.finish(L_full, ab[0], geom))
            row = {"name": photo["name"]}
            outline = (label == 255) & (regions(photo, *L_full.shape, 0) != 255)
            shown = [(grey * 255).round().astype(np.uint8), c.finish_u8(L_full, ab[0], geom)]
            for kind, kw in kinds.items():
                spread = hint_spread.spread_hints(ab, net_L, hints, **kw)[0]
                row[kind] = dict(zip(("bleed", "inside"), scores(rgb_to_lab(c.finish(L_full, spread, geom)), auto,
                                                               label, targets)))
                if kind in ("before", "now"):
                    marked = c.finish_u8(L_full, spread, geom).copy()
                    marked[outline] = (255, 255, 0)
                    shown.append(marked)
            panels.append(shown)
            rows.append(row)
            print(f"{photo['name']:22s} " + "  ".join(f"{k}: bleed {row[k]['bleed']:5.2f} inside {row[k]['inside']:5.2f}"
                                                      for k in kinds), file=sys.stderr)
    mean = {k: {m: float(np.mean([r[k][m] for r in rows])) for m in ("bleed", "inside")} for k in kinds}
    print("| spreading | bleed (mean delta ab outside the objects) | inside (mean ab error in them) |\n|---|---:|---:|")
    for k, what in (("before", "sigma_L 4, plain mean, no fill (before)"),
                    ("no fill", f"sigma_L {hint_spread.SIGMA_L:g}, competing colours + the hints' own colour, no fill"),
                    ("residual only", f"sigma_L {hint_spread.SIGMA_L:g}, competing colours + fill, the residual only"),
                    ("now", f"sigma_L {hint_spread.SIGMA_L:g}, competing colours + fill + the hints' own colour (now)")):
        print(f"| {what} | {mean[k]['bleed']:.2f} | {mean[k]['inside']:.2f} |")
    if args.json:
        args.json.write_text(json.dumps({"photos": rows, "mean": mean}, indent=1) + "\n")
    if args.sheet:
        save_rows([[Image.fromarray(p).resize((round(p.shape[1] * SHEET_HEIGHT / p.shape[0]), SHEET_HEIGHT))
                    for p in row] for row in panels], args.sheet)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
