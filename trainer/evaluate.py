"""Score a model on a folder of colour photos: ``colorize-gan-evaluate FOLDER [options]``.

Each colour image is made greyscale (its Lab L), colorized at full resolution through the public runtime
API (``runtime.Colorizer``), and scored against the original with trainer.metrics: PSNR and SSIM on RGB,
mean CIEDE2000, colourfulness (CF) of prediction and truth. The grey baseline (ab = 0, the L-only image)
is scored the same way, because a colorizer only earns its keep relative to it (see peers.md: CIEDE2000
of a colorizer is often worse than grey, so no single number is the verdict). Greyscale inputs are
skipped and counted. Writes ``OUT/metrics.json`` (settings, model, summary, per image; non-finite
numbers such as the PSNR of identical images are written as null) and ``OUT/contact_sheet.png``.

``evaluate_pairs`` is the same scoring for arrays already in memory (e.g. from a notebook).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from runtime.image.color import lab_to_rgb, rgb_to_l
from trainer.contact_sheet import contact_sheet, to_pil
from trainer.files import IMAGE_EXTENSIONS, find_images, is_greyscale, split
from trainer.metrics import score_image, summarize

MAX_SHEET_ROWS = 12
SHEET_TILE = 192
_GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}


class EvalError(Exception):
    """Bad input; main prints the one-line message and exits 2."""


# ---- scoring (no I/O) ----------------------------------------------------------------------------


def grey_baseline(truth: np.ndarray) -> np.ndarray:
    """The L-only image of ``truth`` (Lab with a = b = 0) as sRGB float (H, W, 3): what the model is fed."""
    L = rgb_to_l(truth)
    rgb = lab_to_rgb(np.stack([L, np.zeros_like(L), np.zeros_like(L)], axis=-1))
    # The white point's rounding leaves ~1e-5 of tint; make it exactly neutral (CF exactly 0).
    return np.repeat(rgb.mean(axis=-1, keepdims=True), 3, axis=-1)


def score_with_baseline(pred: np.ndarray, truth: np.ndarray, grey: np.ndarray | None = None) -> dict[str, dict[str, float]]:
    """``{"model": scores of pred, "grey": scores of the grey baseline}``, both against ``truth``
    (pass ``grey`` where :func:`grey_baseline` of ``truth`` was already made)."""
    grey = grey_baseline(truth) if grey is None else grey
    return {"model": dict(score_image(pred, truth)), "grey": dict(score_image(grey, truth))}


def summarize_records(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Means over per-image records from :func:`score_with_baseline`, with PSNR relative to grey."""
    model = summarize([r["model"] for r in records])
    grey = summarize([r["grey"] for r in records])
    return {"count": len(records), "model": model, "grey": grey, "psnr_vs_grey": model["psnr"] - grey["psnr"]}


def summarize_by_source(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """:func:`summarize_records` per source: the first folder of each record's relative path (e.g. the
    collections of a data mix); empty when every image sits directly in the scored folder."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        parts = Path(r["path"]).parts
        if len(parts) > 1:
            groups.setdefault(parts[0], []).append(r)
    return {k: summarize_records(v) for k, v in sorted(groups.items())}


def evaluate_pairs(
    pairs: Iterable[tuple[np.ndarray, np.ndarray]], names: Sequence[str] | None = None
) -> dict[str, Any]:
    """Score (prediction, truth) sRGB float pairs -> ``{"images": [...], "summary": {...}}``."""
    images = []
    for i, (pred, truth) in enumerate(pairs):
        name = names[i] if names is not None else str(i)
        images.append({"name": name, **score_with_baseline(pred, truth)})
    if not images:
        raise ValueError("no image pairs to evaluate")
    return {"images": images, "summary": summarize_records(images)}


# ---- files ---------------------------------------------------------------------------------------


def load_colour(path: Path) -> np.ndarray | None:
    """The image as sRGB float32 (H, W, 3) in [0, 1], upright per EXIF; None if it is greyscale."""
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        if im.mode in _GREY_MODES:
            return None
        rgb = np.asarray(im.convert("RGB"))
    if is_greyscale(rgb):  # the trainer's rule: what it would skip is not scored either
        return None
    return rgb.astype(np.float32) / 255.0


class _SheetSampler:
    """Keeps thumbnails of an evenly spaced subset of a stream of unknown length, at most 2 * ``rows``."""

    def __init__(self, rows: int, tile: int):
        self.rows, self.tile, self.stride, self.kept = rows, tile, 1, []

    def offer(self, index: int, images: tuple[np.ndarray, ...], caption: str) -> None:
        if index % self.stride:
            return
        thumbs = []
        for arr in images:
            im = to_pil(arr)
            im.thumbnail((2 * self.tile, self.tile), Image.Resampling.LANCZOS)
            thumbs.append(im)
        self.kept.append((index, tuple(thumbs), caption))
        if len(self.kept) > 2 * self.rows:  # thin out: keep every other, sample half as often from now on
            self.stride *= 2
            self.kept = [k for k in self.kept if k[0] % self.stride == 0]

    def pick(self) -> list[tuple[int, tuple[Image.Image, ...], str]]:
        if len(self.kept) <= self.rows:
            return self.kept
        idx = np.linspace(0, len(self.kept) - 1, self.rows).round().astype(int)
        return [self.kept[i] for i in idx]


def _finite(x: Any) -> Any:
    """Non-finite floats -> None, so metrics.json stays strict JSON."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x


def _table(summary: dict[str, Any]) -> str:
    cols = ("psnr", "ssim", "ciede2000", "cf_pred", "cf_truth", "cf_ratio")
    head = f"{'':14}{'PSNR dB':>9}{'SSIM':>8}{'dE00':>8}{'CF pred':>9}{'CF truth':>10}{'CF ratio':>10}"
    lines = [head]
    for key, label in (("model", "model"), ("grey", "grey (ab = 0)")):
        s = summary[key]
        v = [s[c] for c in cols]
        lines.append(f"{label:14}{v[0]:9.2f}{v[1]:8.4f}{v[2]:8.2f}{v[3]:9.2f}{v[4]:10.2f}{v[5]:10.3f}")
    lines.append(f"PSNR vs grey: {summary['psnr_vs_grey']:+.2f} dB")
    return "\n".join(lines)


def _source_table(by_source: dict[str, Any]) -> str:
    lines = [f"{'source':22}{'n':>5}{'PSNR':>8}{'vs grey':>9}{'SSIM':>8}{'dE00':>7}{'dE00 grey':>10}{'CF ratio':>10}"]
    for name, s in by_source.items():
        m, g = s["model"], s["grey"]
        lines.append(f"{name:22}{s['count']:5d}{m['psnr']:8.2f}{s['psnr_vs_grey']:+9.2f}{m['ssim']:8.4f}{m['ciede2000']:7.2f}"
                     f"{g['ciede2000']:10.2f}{m['cf_ratio']:10.3f}")
    return "\n".join(lines)


# ---- command line --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="colorize-gan-evaluate",
        description="Colorize the greyscale version of every colour photo in FOLDER (recursively) and score it "
        "against the original (PSNR, SSIM, CIEDE2000, colourfulness), beside the grey baseline.",
    )
    p.add_argument("folder", type=Path, help="folder of colour images (jpg, jpeg, png, webp, tif, tiff)")
    p.add_argument("--model", default=None, help="model bundle (file or stem) or trainer checkpoint dir; default: embedded")
    p.add_argument("--backend", default="auto", help="inference backend or group (auto, gpu, cpu, or an exact name)")
    p.add_argument("--render-size", type=int, default=None, help="side the model sees, in pixels (default: the model's)")
    p.add_argument("--saturation", type=float, default=1.0, help="chroma multiplier (default 1.0)")
    p.add_argument("--no-mirror", dest="mirror", action="store_false",
                   help="one network pass per photo instead of the mean with its mirror image (the runtime's default)")
    p.add_argument("--limit", type=int, default=None, help="score at most K colour images")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: evaluation/<FOLDER name>)")
    p.add_argument("--holdout", type=int, default=None, metavar="COUNT",
                   help="score only the validation split colorize-gan-train holds out of FOLDER with --val-count COUNT")
    p.add_argument("--seed", type=int, default=0, help="the trainer's --seed, with --holdout (default 0)")
    p.add_argument("--sheet-rows", type=int, default=MAX_SHEET_ROWS,
                   help=f"photos on the contact sheet, evenly spaced over the scored ones (default {MAX_SHEET_ROWS})")
    return p


def _check_args(args: argparse.Namespace) -> None:
    if not args.folder.is_dir():
        raise EvalError(f"not a folder: {args.folder}")
    if args.limit is not None and args.limit < 1:
        raise EvalError(f"--limit must be >= 1, got {args.limit}")
    if args.sheet_rows < 1:
        raise EvalError(f"--sheet-rows must be >= 1, got {args.sheet_rows}")
    if args.saturation < 0:
        raise EvalError(f"--saturation must be >= 0, got {args.saturation}")
    if args.render_size is not None and args.render_size < 16:
        raise EvalError(f"--render-size must be >= 16, got {args.render_size}")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Evaluate as the command line asks; returns what it wrote to metrics.json."""
    _check_args(args)
    paths = find_images(args.folder)
    if args.holdout is not None:
        paths = split(paths, args.holdout, None, args.seed)[1]
    if not paths:
        raise EvalError(f"no images ({', '.join(s[1:] for s in IMAGE_EXTENSIONS)}) under {args.folder}")

    from tqdm import tqdm

    from runtime import Colorizer  # lazily: keeps --help fast and torch-free
    out = args.out if args.out is not None else Path("evaluation") / args.folder.resolve().name
    try:
        colorizer = Colorizer.load(args.model, args.backend, args.render_size, mirror=args.mirror)
    except (ValueError, FileNotFoundError) as exc:
        raise EvalError(f"cannot load model: {exc}") from None

    records, skipped_grey, unreadable = [], 0, []
    sampler = _SheetSampler(args.sheet_rows, SHEET_TILE)
    try:
        for path in tqdm(paths, desc="evaluate", unit="img", file=sys.stderr):
            if args.limit is not None and len(records) >= args.limit:
                break
            try:
                truth = load_colour(path)
            except (OSError, UnidentifiedImageError, ValueError) as exc:
                unreadable.append(f"{path}: {exc}")
                continue
            if truth is None:
                skipped_grey += 1
                continue
            grey = grey_baseline(truth)
            pred = np.asarray(colorizer.colorize_array(grey, saturation=args.saturation), dtype=np.float32)
            if pred.shape != truth.shape:
                raise RuntimeError(f"{path}: colorizer returned shape {pred.shape} for an image of shape {truth.shape}")
            rel = path.relative_to(args.folder).as_posix()
            rec = {"path": rel, "width": truth.shape[1], "height": truth.shape[0], **score_with_baseline(pred, truth, grey)}
            records.append(rec)
            sampler.offer(len(records) - 1, (grey, pred, truth), f"{rel}  PSNR {rec['model']['psnr']:.1f} dB")
    finally:
        colorizer.close()
    if not records:
        raise EvalError(f"no colour images under {args.folder} ({skipped_grey} greyscale, {len(unreadable)} unreadable)")

    summary = summarize_records(records)
    by_source = summarize_by_source(records)
    out.mkdir(parents=True, exist_ok=True)
    picked = sampler.pick()
    contact_sheet([p[1] for p in picked], out / "contact_sheet.png", tile=SHEET_TILE, captions=[p[2] for p in picked])
    result = {
        "model": {
            "argument": args.model,
            "spec": colorizer.spec.to_dict(),
            "backend": colorizer.backend_name,
            "render_size": colorizer.render_size,
        },
        "settings": {
            "folder": str(args.folder),
            "saturation": args.saturation,
            "mirror": args.mirror,
            "render_size": args.render_size,
            "limit": args.limit,
        },
        "counts": {"scored": len(records), "skipped_greyscale": skipped_grey, "unreadable": len(unreadable)},
        "unreadable": unreadable,
        "summary": summary,
        "by_source": by_source,
        "images": records,
    }
    (out / "metrics.json").write_text(json.dumps(_finite(result), indent=2), encoding="utf-8")
    print(_table(summary))
    if by_source:
        print(_source_table(by_source))
    notes = f", {skipped_grey} greyscale skipped" if skipped_grey else ""
    notes += f", {len(unreadable)} unreadable" if unreadable else ""
    print(f"{len(records)} images scored{notes} -> {out / 'metrics.json'}, {out / 'contact_sheet.png'}")
    return result


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except EvalError as exc:
        print(f"colorize-gan-evaluate: error: {exc}", file=sys.stderr)
        return 2
    except (RuntimeError, OSError) as exc:
        print(f"colorize-gan-evaluate: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
