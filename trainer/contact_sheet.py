"""Contact sheets: a PNG grid with one row per image (input | prediction | truth) for eyeballing results.

Training validation and ``colorize-gan-evaluate`` both write one. Every tile is resized keeping its aspect
ratio to fit a fixed-height cell (``tile`` pixels; cells are as wide as the widest tile needs, at most
2 * ``tile``), centred on a dark background, with small column labels on top and optional per-row captions.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

_BACKGROUND = (32, 32, 32)
_TEXT = (230, 230, 230)
_PAD = 4
_TEXT_H = 14  # height of one line of PIL's default font, with a little air


def to_pil(img) -> Image.Image:
    """A PIL image, float array in [0, 1] or uint8 array, (H, W) or (H, W, 3) -> RGB PIL image."""
    if isinstance(img, Image.Image):
        return img.convert("RGB")
    arr = np.asarray(img)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] != 3):
        raise ValueError(f"expected an (H, W) or (H, W, 3) image, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        arr = (np.clip(arr.astype(np.float32), 0, 1) * 255 + 0.5).astype(np.uint8)
    return Image.fromarray(arr).convert("RGB")


def _fit(img: Image.Image, width: int, height: int) -> Image.Image:
    scale = min(width / img.width, height / img.height)
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return img.resize(size, Image.Resampling.LANCZOS)


def contact_sheet(
    rows: list[tuple],
    path: str | Path,
    tile: int = 256,
    labels: Sequence[str] = ("input", "prediction", "truth"),
    captions: Sequence[str] | None = None,
) -> Path:
    """Write ``rows`` (each a tuple of images: grey, prediction, truth) as a PNG grid at ``path``; returns the path."""
    if not rows:
        raise ValueError("contact sheet needs at least one row")
    if tile < 16:
        raise ValueError(f"tile must be >= 16 pixels, got {tile}")
    if captions is not None and len(captions) != len(rows):
        raise ValueError(f"{len(captions)} captions for {len(rows)} rows")
    ncols = max(len(r) for r in rows)
    images = [[to_pil(x) for x in r] for r in rows]
    # One cell width for the whole sheet so the columns line up; very wide images shrink to fit it.
    cell_w = min(2 * tile, max(max(1, round(tile * im.width / im.height)) for r in images for im in r))
    caption_h = _TEXT_H if captions is not None else 0
    row_h = tile + caption_h + _PAD
    header_h = _TEXT_H + _PAD if labels else 0
    sheet = Image.new("RGB", (ncols * (cell_w + _PAD) + _PAD, header_h + len(rows) * row_h + _PAD), _BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for c, label in enumerate(list(labels)[:ncols]):
        draw.text((_PAD + c * (cell_w + _PAD) + 2, 2), str(label), fill=_TEXT, font=font)
    for r, row in enumerate(images):
        top = header_h + r * row_h + _PAD
        for c, im in enumerate(row):
            fitted = _fit(im, cell_w, tile)
            left = _PAD + c * (cell_w + _PAD)
            sheet.paste(fitted, (left + (cell_w - fitted.width) // 2, top + (tile - fitted.height) // 2))
        if captions is not None:
            draw.text((_PAD + 2, top + tile + 1), str(captions[r]), fill=_TEXT, font=font)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, format="PNG")
    return path
