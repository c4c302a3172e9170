"""How a full-resolution picture maps onto the network's input grid: the render size (longer side scaled
down to ``render_size``, aspect ratio kept, never upscaled), reflect padding up to the model's size
multiple (cropped back after the network, never stretched), and the L plane resized and padded to it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import fastcolor


@dataclass(frozen=True)
class Geometry:
    """How a full-resolution frame maps onto the padded network input."""

    full_h: int
    full_w: int
    h: int  # content size at render resolution (before padding)
    w: int
    top: int  # reflect padding added above / left of the content
    left: int
    net_h: int  # padded size fed to the network (multiples of spec.size_multiple)
    net_w: int


def plan_geometry(full_h: int, full_w: int, multiple: int, render_size: int) -> Geometry:
    scale = min(1.0, render_size / max(full_h, full_w))  # never upscale: small images run at their own size
    h, w = max(1, round(full_h * scale)), max(1, round(full_w * scale))
    net_h, net_w = -(-h // multiple) * multiple, -(-w // multiple) * multiple
    return Geometry(full_h, full_w, h, w, (net_h - h) // 2, (net_w - w) // 2, net_h, net_w)


def prepare_l(L_full: np.ndarray, multiple: int, render_size: int) -> tuple[np.ndarray, Geometry]:
    """Full-resolution L (H, W) -> network input (1, 1, net_h, net_w) and its Geometry."""
    from PIL import Image

    L_full = np.asarray(L_full, dtype=np.float32)
    g = plan_geometry(L_full.shape[0], L_full.shape[1], multiple, render_size)
    if (g.h, g.w) != L_full.shape:
        # PIL resizes float ('F') images in C; reducing_gap first box-reduces by an integer factor (fast, antialiased).
        small = np.asarray(Image.fromarray(L_full, mode="F").resize((g.w, g.h), Image.Resampling.BILINEAR, reducing_gap=3.0))
    else:
        small = L_full
    pad = ((g.top, g.net_h - g.h - g.top), (g.left, g.net_w - g.w - g.left))
    padded = np.pad(small, pad, mode="reflect") if any(p for pair in pad for p in pair) else small
    return np.ascontiguousarray(padded, dtype=np.float32)[None, None], g


def prepare_src8(src8: np.ndarray, multiple: int, render_size: int) -> tuple[np.ndarray, Geometry]:
    """As :func:`prepare_l` from 8-bit grey/RGB(A) pixels: Pillow resizes the uint8 image (SIMD, far cheaper
    than resizing a float plane) and only the small result is converted to L."""
    from PIL import Image

    src8 = np.asarray(src8, dtype=np.uint8)
    g = plan_geometry(src8.shape[0], src8.shape[1], multiple, render_size)
    small = src8[..., :3] if src8.ndim == 3 else src8
    if (g.h, g.w) != small.shape[:2]:
        small = np.asarray(Image.fromarray(np.ascontiguousarray(small)).resize(
            (g.w, g.h), Image.Resampling.BILINEAR, reducing_gap=3.0))
    return prepare_l(fastcolor.src8_to_l(small), multiple, render_size)[0], g


def network_input(planes: Any, multiple: int, render_size: int, bits: int = 8) -> tuple[np.ndarray, Geometry]:
    """A decoded picture's planes (runtime.image.imageio.Planes) -> network L (1, 1, net_h, net_w) and its
    Geometry: from the 8-bit source pixels when the output is 8-bit and there are any, else from the
    full-resolution L plane."""
    if bits == 8 and planes.src8 is not None:
        return prepare_src8(planes.src8, multiple, render_size)
    return prepare_l(planes.L, multiple, render_size)
