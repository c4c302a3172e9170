"""The docs' comparison pictures (before_after.py, hint_demo.py, reference_demo.py): rows of panels, left to right,
on white, 10 px apart, saved as JPEG quality 85."""
from __future__ import annotations

from pathlib import Path

from PIL import Image

GAP = 10


def save_rows(rows: list[list[Image.Image]], path: Path) -> None:
    """Paste each row's panels (any widths; a row as tall as its first panel) and save the sheet at ``path``."""
    width = max(sum(im.width for im in row) + GAP * (len(row) - 1) for row in rows)
    height = sum(row[0].height for row in rows) + GAP * (len(rows) - 1)
    sheet = Image.new("RGB", (width, height), "white")
    y = 0
    for row in rows:
        x = 0
        for im in row:
            sheet.paste(im, (x, y))
            x += im.width + GAP
        y += row[0].height + GAP
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, quality=85)
