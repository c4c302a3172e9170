"""Finding image files, the fixed-seed train/validation split and the greyscale test (torch-free, so
the evaluator picks exactly the images the trainer held out, and skips exactly the ones it would skip,
without importing the training stack)."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from runtime.image import color

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


def split_folders(folders: list[str | Path], val_counts: list[int], train_count: int | None,
                  seed: int) -> tuple[list[Path], list[Path]]:
    """:func:`split` for each folder on its own (so adding a folder never reshuffles another's hold-out);
    ``val_counts``: one count for every folder, or one each."""
    counts = list(val_counts) * len(folders) if len(val_counts) == 1 else list(val_counts)
    train: list[Path] = []
    val: list[Path] = []
    for folder, count in zip(folders, counts):
        t, v = split(find_images(folder), count, train_count, seed)
        train += t
        val += v
    return train, val


GREY_CHROMA = 4.0  # mean Lab chroma below which an image counts as greyscale (sepia is ~10-20)


def is_greyscale(rgb: np.ndarray) -> bool:
    """True when a uint8 RGB image carries (almost) no colour: mean Lab chroma on a ~64x64 subsample below GREY_CHROMA.
    Perceptual, so JPEG chroma noise on a grey scan does not count as colour, and sepia or toned prints do."""
    small = rgb[:: max(1, rgb.shape[0] // 64), :: max(1, rgb.shape[1] // 64)]
    lab = color.rgb_to_lab(small.astype(np.float32) / 255)
    return float(np.hypot(lab[..., 1], lab[..., 2]).mean()) < GREY_CHROMA
