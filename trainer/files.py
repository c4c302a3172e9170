"""Finding image files and the fixed-seed train/validation split (torch-free, so the evaluator
can pick exactly the images the trainer held out without importing the training stack)."""
from __future__ import annotations

import random
from pathlib import Path

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff")


def find_images(root: str | Path) -> list[Path]:
    """Every image file under ``root``, recursively, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def split(paths: list[Path], val_count: int, train_count: int | None, seed: int) -> tuple[list[Path], list[Path]]:
    """Shuffle with ``seed`` and take ``val_count`` for validation, then ``train_count`` (None = all the rest)."""
    order = sorted(paths)
    random.Random(seed).shuffle(order)
    val = sorted(order[:val_count])
    rest = order[val_count:]
    train = sorted(rest if train_count is None else rest[:train_count])
    return train, val
