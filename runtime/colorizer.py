"""The public API: ``Colorizer.load(model=None, backend="auto").colorize(image)``.

It wraps a backend (which only maps L -> ab on padded batches) with the image side of the job:
the network runs at a render size (the longer side scaled down to ``render_size``, aspect ratio
kept, reflect-padded to the size multiple and cropped back, never stretched); its ab is upsampled
bilinearly to full resolution and merged with the full-resolution L of the input, converted to
sRGB and clipped to the gamut. Deterministic: eval-mode network, no randomness anywhere.

The step functions ``prepare`` / ``predict_ab`` / ``finish`` let video and GIMP frame modes batch
and stabilise ab between frames (docs/CONTRACTS.md).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from . import fastcolor
from .backends.base import Backend, BackendUnavailable, ModelFiles
from .backends.registry import backend_class, candidates
from .color import grey_to_l, rgb_to_l
from .models import resolve
from .spec import ModelSpec

if TYPE_CHECKING:
    from PIL import Image

# Chosen by measurement with the trained default model on its 10 held-out validation photos at full
# resolution (README, "The default model"): render 256 scored best on PSNR, CIEDE2000 and
# colourfulness alike (384, 512 and 768 were each worse: the model sees the whole scene at about
# the scale it was trained on), and its network time is ~1/3 of 512's (docs/benchmarks.md).
DEFAULT_RENDER_SIZE = 256


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


def load_backend(files: ModelFiles, backend: str = "auto", threads: int | None = None) -> Backend:
    """The first backend of ``backend``'s candidates that loads; BackendUnavailable lists why each failed."""
    reasons = []
    for name in candidates(backend):
        try:
            cls = backend_class(name)
            cls.check()
            return cls(files, threads=threads)
        except BackendUnavailable as exc:
            reasons.append(f"{name}: {exc}")
    raise BackendUnavailable(f"no usable backend for '{backend}' ({'; '.join(reasons)})")


class Colorizer:
    """A loaded model on one backend. Thread-compatible, not thread-safe: use one per thread."""

    def __init__(self, backend: Backend, files: ModelFiles, render_size: int | None = None, threads: int | None = None):
        self.backend = backend
        self.files = files
        self.spec: ModelSpec = files.spec
        self.threads = threads
        self.render_size = self._check_render_size(render_size or DEFAULT_RENDER_SIZE)

    @classmethod
    def load(cls, model: str | None = None, backend: str = "auto", render_size: int | None = None,
             threads: int | None = None) -> "Colorizer":
        files = resolve(model)
        return cls(load_backend(files, backend, threads), files, render_size, threads)

    @property
    def backend_name(self) -> str:
        return self.backend.name

    def _check_render_size(self, size: int) -> int:
        if int(size) < self.spec.size_multiple:
            raise ValueError(f"render size must be >= {self.spec.size_multiple} (the model's size multiple), got {size}")
        return int(size)

    # -- step functions -------------------------------------------------------------------------
    def prepare(self, L_full: np.ndarray, render_size: int | None = None) -> tuple[np.ndarray, Geometry]:
        size = self._check_render_size(render_size) if render_size else self.render_size
        return prepare_l(L_full, self.spec.size_multiple, size)

    def prepare_src8(self, src8: np.ndarray, render_size: int | None = None) -> tuple[np.ndarray, Geometry]:
        """As :meth:`prepare` from 8-bit grey/RGB pixels: Pillow resizes the uint8 image (SIMD, far
        cheaper than resizing a float plane) and only the small result is converted to L."""
        from PIL import Image

        size = self._check_render_size(render_size) if render_size else self.render_size
        src8 = np.asarray(src8, dtype=np.uint8)
        g = plan_geometry(src8.shape[0], src8.shape[1], self.spec.size_multiple, size)
        small = src8[..., :3] if src8.ndim == 3 else src8
        if (g.h, g.w) != small.shape[:2]:
            small = np.asarray(Image.fromarray(np.ascontiguousarray(small)).resize(
                (g.w, g.h), Image.Resampling.BILINEAR, reducing_gap=3.0))
        L = fastcolor.src8_to_l(small)
        return prepare_l(L, self.spec.size_multiple, size)[0], g

    @property
    def takes_hints(self) -> bool:
        """Whether the model takes colour hints (``spec.hints``)."""
        return bool(self.spec.hints)

    def hint_input(self, hints: Any, geom: Geometry) -> np.ndarray | None:
        """Hints (runtime.hints: an RGBA image or a point list, full-resolution coordinates) -> the network's hint
        input for a frame of ``geom``, or None when there are none. A model without hint inputs refuses hints."""
        from .hints import HintError, hint_input

        net = hint_input(hints, geom)
        if net is not None and not self.takes_hints:
            raise HintError("this model takes no colour hints (its spec has hints: false)")
        return net

    def predict_ab(self, net_L: np.ndarray, net_hints: np.ndarray | None = None) -> np.ndarray:
        """(N,1,h,w) L [+ (N,3,h,w) hint input] -> (N,2,h,w) ab. No hints is the automatic result."""
        return self.backend.run(net_L, net_hints)

    def finish(self, L_full: np.ndarray, ab_net: np.ndarray, geom: Geometry, saturation: float = 1.0) -> np.ndarray:
        """L (H, W) + network ab (2, net_h, net_w) -> sRGB float32 (H, W, 3) in [0, 1]."""
        return fastcolor.finish(L_full, ab_net, geom, saturation, out="f32", threads=self.threads)

    def finish_u8(self, L_full: np.ndarray, ab_net: np.ndarray, geom: Geometry, saturation: float = 1.0) -> np.ndarray:
        """As :meth:`finish`, straight to uint8 (the fast path for 8-bit outputs)."""
        return fastcolor.finish(L_full, ab_net, geom, saturation, out="u8", threads=self.threads)

    # -- whole images ----------------------------------------------------------------------------
    def colorize_array(self, image: np.ndarray, saturation: float = 1.0, render_size: int | None = None,
                       hints: Any = None) -> np.ndarray:
        """Grey (H, W) or RGB(A) (H, W, 3|4) array -> sRGB float32 (H, W, 3) in [0, 1].
        uint8 and uint16 are scaled by their range; floats are taken as [0, 1]. ``hints``: as :meth:`colorize`."""
        a = np.asarray(image)
        if a.ndim == 3 and a.shape[2] == 4:
            a = a[..., :3]
        if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] != 3):
            raise ValueError(f"expected a grey (H, W) or RGB (H, W, 3) array, got shape {a.shape}")
        if a.dtype == np.uint8:
            L = fastcolor.src8_to_l(a)
        else:
            scale = 65535.0 if a.dtype == np.uint16 else 1.0
            f = np.clip(a.astype(np.float32) / np.float32(scale), 0, 1)
            L = grey_to_l(f) if f.ndim == 2 else rgb_to_l(f)
        net_L, geom = self.prepare(L, render_size)
        return self.finish(L, self.predict_ab(net_L, self.hint_input(hints, geom))[0], geom, saturation)

    def colorize(self, img: "Image.Image", saturation: float = 1.0, render_size: int | None = None,
                 hints: Any = None) -> "Image.Image":
        """A PIL image of any supported mode -> a colour PIL image of the same size (RGB, or RGBA if
        it had alpha; 16-bit grey inputs give an RGB image quantised to 8 bits: use
        :meth:`colorize_planes` for 16-bit output). EXIF orientation is the caller's business
        (runtime.imageio.read_image applies it).

        ``hints`` (models with ``spec.hints``): an RGBA image the size of ``img`` whose opaque pixels are
        hint colours, or a list of points ``(x, y, colour[, radius])`` / runtime.hints.HintPoint. None, an
        empty list or a fully transparent image give the automatic result, bit for bit."""
        from . import imageio

        planes = imageio.split_luminance(img)
        rgb = self.colorize_planes(planes, saturation, render_size, bits=8, hints=hints)
        return imageio.merge_planes(rgb, planes.alpha)

    def colorize_planes(self, planes: Any, saturation: float = 1.0, render_size: int | None = None,
                        bits: int = 8, timings: dict[str, float] | None = None, hints: Any = None) -> np.ndarray:
        """Colorize a decoded image's luminance planes (runtime.imageio.Planes) -> uint8 or uint16 RGB."""
        t = time.perf_counter()
        fast = bits == 8 and planes.src8 is not None
        net_L, geom = self.prepare_src8(planes.src8, render_size) if fast else self.prepare(planes.L, render_size)
        net_hints = self.hint_input(hints, geom)
        t1 = time.perf_counter()
        ab = self.predict_ab(net_L, net_hints)[0]
        t2 = time.perf_counter()
        if fast:
            rgb = fastcolor.finish_src(planes.src8, ab, geom, saturation, threads=self.threads)
        elif bits == 8:
            rgb = self.finish_u8(planes.L, ab, geom, saturation)
        else:
            rgb = (self.finish(planes.L, ab, geom, saturation) * np.float32(65535) + np.float32(0.5)).astype(np.uint16)
        t3 = time.perf_counter()
        if timings is not None:
            timings["resize"] = timings.get("resize", 0.0) + t1 - t
            timings["network"] = timings.get("network", 0.0) + t2 - t1
            timings["to_rgb"] = timings.get("to_rgb", 0.0) + t3 - t2
        return rgb

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()

    def __enter__(self) -> "Colorizer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
