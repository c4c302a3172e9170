"""Training data: any folder tree of colour images -> random (L, ab) crops in the network's ranges.

Works the same for 100 photos or COCO's ``train2017/``: files are found recursively, split into
train/val with a fixed seed (``--train-count/--val-count`` reproduce the paper's 8,000/2,000),
scanned once (unreadable files are skipped with a warning, greyscale ones skipped and counted:
they teach nothing about colour), and optionally cached in memory at ``load_size``.
Augmentation is a random resized crop and a horizontal flip; RGB -> Lab goes through
runtime/image/color.py, the same module the runtime serves with.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from runtime.image import color

from .files import is_greyscale


def load_rgb(path: Path, long_side: int | None) -> np.ndarray:
    """Decode to uint8 RGB (EXIF orientation applied), downscaled so the long side is <= ``long_side``."""
    with Image.open(path) as im:
        if long_side and im.format == "JPEG":
            im.draft("RGB", (long_side, long_side))  # decode at 1/2, 1/4, 1/8 scale: much faster
        im = ImageOps.exif_transpose(im)
        im = im.convert("RGB")
        if long_side and max(im.size) > long_side:
            s = long_side / max(im.size)
            im = im.resize((max(1, round(im.width * s)), max(1, round(im.height * s))), Image.LANCZOS)
        return np.asarray(im, dtype=np.uint8)


@dataclass
class ScanReport:
    used: list[Path] = field(default_factory=list)
    grey: list[Path] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)


def scan(paths: list[Path], long_side: int | None, keep: bool) -> tuple[ScanReport, list[np.ndarray]]:
    """Read every file once; return what is usable (and the decoded arrays when ``keep``)."""
    report, arrays = ScanReport(), []
    for p in paths:
        try:
            rgb = load_rgb(p, long_side if keep else 128)
        except Exception as exc:  # any decoder error: skip the file, never crash a run
            print(f"warning: skipping unreadable image {p}: {exc}", file=sys.stderr)
            report.unreadable.append((p, str(exc)))
            continue
        if min(rgb.shape[:2]) < 16:
            report.unreadable.append((p, "smaller than 16 px"))
            continue
        if is_greyscale(rgb):
            report.grey.append(p)
            continue
        report.used.append(p)
        if keep:
            arrays.append(rgb)
    return report, arrays


def to_network(rgb: np.ndarray, l_scale: float = 50.0, l_shift: float = 1.0, ab_scale: float = 110.0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 RGB HxWx3 -> (L_in (1,H,W), ab_target (2,H,W)) float32 in [-1, 1]."""
    lab = color.rgb_to_lab(rgb.astype(np.float32) / 255)
    L = color.l_to_input(lab[..., 0], l_scale, l_shift)[None]
    ab = color.ab_to_target(lab[..., 1:], ab_scale).transpose(2, 0, 1)
    return np.ascontiguousarray(L), np.ascontiguousarray(ab)


class CropDataset(torch.utils.data.Dataset):
    """Random resized crops of the scanned images; ``repeat`` crops per image per epoch.

    Items are uint8 RGB crops (3, crop, crop): four times less to copy than float32 and cheap to
    collate; trainer/labtorch.py converts whole batches to (L, ab) on the training device."""

    def __init__(self, paths: list[Path], crop_size: int, load_size: int, scale: tuple[float, float] = (0.2, 1.0),
                 cache: bool = True, repeat: int = 1, flip: bool = True, spec_scaling: tuple[float, float, float] = (50.0, 1.0, 110.0)):
        report, arrays = scan(paths, load_size, keep=cache)
        self.report = report
        self.paths = report.used
        self.arrays = arrays if cache else None
        self.crop_size, self.load_size, self.scale = crop_size, load_size, scale
        self.repeat, self.flip, self.scaling = repeat, flip, spec_scaling
        if not self.paths:
            raise ValueError("no usable colour images (all unreadable or greyscale)")

    def __len__(self) -> int:
        return len(self.paths) * self.repeat

    def _image(self, i: int) -> np.ndarray:
        return self.arrays[i] if self.arrays is not None else load_rgb(self.paths[i], self.load_size)

    def __getitem__(self, index: int) -> torch.Tensor:
        rgb = self._image(index % len(self.paths))
        h, w = rgb.shape[:2]
        # torch's RNG is seeded per DataLoader worker and per rank; numpy's is not.
        area = h * w * float(torch.empty(1).uniform_(*self.scale))
        ratio = math.exp(float(torch.empty(1).uniform_(math.log(3 / 4), math.log(4 / 3))))
        cw = int(round(min(w, math.sqrt(area * ratio))))
        ch = int(round(min(h, math.sqrt(area / ratio))))
        x0 = int(torch.randint(0, w - cw + 1, (1,)))
        y0 = int(torch.randint(0, h - ch + 1, (1,)))
        im = Image.fromarray(rgb).resize((self.crop_size, self.crop_size), Image.BILINEAR, box=(x0, y0, x0 + cw, y0 + ch))
        if self.flip and bool(torch.rand(1) < 0.5):
            im = im.transpose(Image.FLIP_LEFT_RIGHT)
        return torch.from_numpy(np.array(im, dtype=np.uint8).transpose(2, 0, 1).copy())


def pad_to_multiple(x: np.ndarray, multiple: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Reflect-pad the last two axes up to a multiple; returns the padded array and the original (H, W)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    pad = [(0, 0)] * (x.ndim - 2) + [(0, ph), (0, pw)]
    mode = "reflect" if ph < h and pw < w else "edge"
    return np.pad(x, pad, mode=mode), (h, w)


def load_validation(paths: list[Path], size: int) -> list[np.ndarray]:
    """Validation images as uint8 RGB with the long side at ``size`` (aspect kept), greyscale ones dropped."""
    report, arrays = scan(paths, size, keep=True)
    return arrays
