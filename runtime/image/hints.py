"""User colour hints ("this is red"): one format, turned into the model's hint input at the render size.

A hint is a colour at a place. Two ways to give them, both in full-resolution pixel coordinates:

* a **hint image**: RGBA the size of the photo (a PIL image or an (H, W, 4) uint8 array); its opaque
  pixels (alpha >= 128) are hint colours, everything else is "no hint" (GIMP users know this as a
  layer of painted dots over the photo);
* a **point list**: ``[HintPoint(x, y, colour, radius), ...]`` or plain ``(x, y, colour[, radius])``
  tuples, colour as ``(r, g, b)`` 0-255 or ``"#rrggbb"``; each point covers a disc of ``radius`` px.

:func:`hint_input` maps either onto the network grid of a frame (runtime.image.geometry.Geometry): per
network pixel the mean ab (CIELAB) of the hint pixels inside its footprint, and a mask that is 1 where
there is any. Only a and b are taken from a hint; L always comes from the photo, so a hint can never
change the photo's lightness. No hints (None, an empty list, a fully transparent image) gives None,
which the Colorizer treats exactly like calling it without hints.

The model's hint input is (1, 3, net_h, net_w) float32 = [a, b, mask] in Lab units (the served
graph scales them), zero in the reflect padding around the content.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Union

import numpy as np

from .color import rgb_to_lab

if TYPE_CHECKING:
    from PIL import Image

    from .geometry import Geometry

ALPHA_THRESHOLD = 128  # hint-image pixels at least this opaque are hints
DEFAULT_RADIUS = 3.0


class HintError(ValueError):
    """A hint the runtime cannot use; ``str()`` is the one-line reason."""


@dataclass(frozen=True)
class HintPoint:
    """A colour at a place: centre (x, y) in full-resolution pixels, sRGB colour 0-255, disc radius in px."""

    x: float
    y: float
    color: tuple[int, int, int]
    radius: float = DEFAULT_RADIUS


def parse_color(value: Any) -> tuple[int, int, int]:
    """``(r, g, b)`` 0-255 or ``"#rrggbb"`` -> (r, g, b)."""
    if isinstance(value, str):
        s = value.strip().lstrip("#")
        if len(s) != 6:
            raise HintError(f"colour {value!r} is not #rrggbb")
        try:
            return int(s[0:2], 16), int(s[2:4], 16), int(s[4:6], 16)
        except ValueError:
            raise HintError(f"colour {value!r} is not #rrggbb") from None
    try:
        r, g, b = (int(round(float(c))) for c in value)
    except (TypeError, ValueError):
        raise HintError(f"colour {value!r} is not (r, g, b)") from None
    if not all(0 <= c <= 255 for c in (r, g, b)):
        raise HintError(f"colour {value!r} has a component outside 0-255")
    return r, g, b


def as_point(p: Any) -> HintPoint:
    if isinstance(p, HintPoint):
        return HintPoint(float(p.x), float(p.y), parse_color(p.color), float(p.radius))
    try:
        x, y, c, *rest = p
    except (TypeError, ValueError):
        raise HintError(f"hint point {p!r} is not (x, y, colour[, radius])") from None
    radius = float(rest[0]) if rest else DEFAULT_RADIUS
    if radius <= 0:
        raise HintError(f"hint point {p!r}: radius must be > 0")
    return HintPoint(float(x), float(y), parse_color(c), radius)


def hint_pixels(hints: Any, full_h: int, full_w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Any hint form -> (ys, xs, rgb uint8 (n, 3)) of the hint pixels inside the frame, or None if there are none."""
    if hints is None:
        return None
    if _is_image(hints):
        rgba = _rgba_array(hints)
        if rgba.shape[:2] != (full_h, full_w):
            raise HintError(f"hint image is {rgba.shape[1]}x{rgba.shape[0]}, the photo is {full_w}x{full_h}")
        ys, xs = np.nonzero(rgba[..., 3] >= ALPHA_THRESHOLD)
        if ys.size == 0:
            return None
        return ys, xs, rgba[ys, xs, :3]
    points = [as_point(p) for p in _iterable(hints)]
    ys_all, xs_all, rgb_all = [], [], []
    for p in points:
        r = p.radius
        y0, y1 = max(0, int(np.floor(p.y - r))), min(full_h - 1, int(np.ceil(p.y + r)))
        x0, x1 = max(0, int(np.floor(p.x - r))), min(full_w - 1, int(np.ceil(p.x + r)))
        if y0 > y1 or x0 > x1:
            continue  # entirely outside the photo
        yy, xx = np.mgrid[y0:y1 + 1, x0:x1 + 1]
        inside = (yy + 0.5 - p.y) ** 2 + (xx + 0.5 - p.x) ** 2 <= r * r
        if not inside.any():  # a disc smaller than a pixel still marks the pixel it sits in
            inside = (yy == min(max(int(p.y), y0), y1)) & (xx == min(max(int(p.x), x0), x1))
        ys_all.append(yy[inside])
        xs_all.append(xx[inside])
        rgb_all.append(np.broadcast_to(np.array(p.color, np.uint8), (int(inside.sum()), 3)))
    if not ys_all:
        return None
    return np.concatenate(ys_all), np.concatenate(xs_all), np.concatenate(rgb_all)


def hint_input(hints: Any, geom: "Geometry") -> np.ndarray | None:
    """Hints for one frame -> the network's hint input (1, 3, net_h, net_w) [a, b, mask], or None when there are none."""
    px = hint_pixels(hints, geom.full_h, geom.full_w)
    if px is None:
        return None
    ys, xs, rgb = px
    ab = rgb_to_lab(rgb.astype(np.float32) / 255)[:, 1:]
    # Each full-resolution pixel falls into one network pixel (the content grid, before padding).
    ny = np.minimum((ys.astype(np.int64) * geom.h) // geom.full_h, geom.h - 1) + geom.top
    nx = np.minimum((xs.astype(np.int64) * geom.w) // geom.full_w, geom.w - 1) + geom.left
    flat = ny * geom.net_w + nx
    size = geom.net_h * geom.net_w
    count = np.bincount(flat, minlength=size).astype(np.float32)
    out = np.zeros((1, 3, geom.net_h, geom.net_w), np.float32)
    has = count > 0
    for c in range(2):
        s = np.bincount(flat, weights=ab[:, c].astype(np.float64), minlength=size).astype(np.float32)
        plane = np.zeros(size, np.float32)
        plane[has] = s[has] / count[has]
        out[0, c] = plane.reshape(geom.net_h, geom.net_w)
    out[0, 2] = has.reshape(geom.net_h, geom.net_w)
    return out


def load_hint_image(path: Any, size: tuple[int, int] | None = None) -> np.ndarray:
    """A hint image file -> RGBA uint8 (H, W, 4). It must have an alpha channel (that is what says where the
    hints are) and, given ``size`` = (width, height), the photo's size. Errors are one-line HintErrors."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
            if not has_alpha:
                raise HintError(f"hint image has no alpha channel (mode {im.mode}): paint the hints on a transparent layer")
            rgba = np.asarray(im.convert("RGBA"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        raise HintError(f"hint file is not a readable image ({type(exc).__name__})") from None
    if size is not None and (rgba.shape[1], rgba.shape[0]) != tuple(size):
        raise HintError(f"hint image is {rgba.shape[1]}x{rgba.shape[0]}, the photo is {size[0]}x{size[1]}")
    return rgba


def _is_image(h: Any) -> bool:
    if isinstance(h, np.ndarray):
        return True
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a core dependency
        return False
    return isinstance(h, Image.Image)


def _rgba_array(h: Union["Image.Image", np.ndarray]) -> np.ndarray:
    if isinstance(h, np.ndarray):
        if h.ndim != 3 or h.shape[2] != 4:
            raise HintError(f"a hint array must be RGBA (H, W, 4), got shape {h.shape}")
        if h.dtype != np.uint8:
            raise HintError(f"a hint array must be uint8, got {h.dtype}")
        return h
    if h.mode not in ("RGBA", "LA", "PA") and not (h.mode == "P" and "transparency" in h.info):
        raise HintError(f"hint image has no alpha channel (mode {h.mode})")
    return np.asarray(h.convert("RGBA"), dtype=np.uint8)


def _iterable(h: Any) -> Iterable[Any]:
    try:
        return list(h)
    except TypeError:
        raise HintError(f"hints must be an RGBA image or a list of points, got {type(h).__name__}") from None
