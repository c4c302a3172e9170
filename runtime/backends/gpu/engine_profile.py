"""Input shapes for the GPU backends: checks, TensorRT optimization profiles, fitting batches to them.

Pure Python and numpy, no TensorRT needed.

An engine built with dynamic shapes accepts inputs whose batch, H and W lie between the profile's
min and max. H and W must also be multiples of ``spec.size_multiple`` (every down/up pair of the
U-Net must round-trip). The runtime splits a batch larger than the profile's max into chunks and
pads a chunk smaller than its min; it cannot change H or W (the Colorizer picks the render size),
so an H/W outside the profile is an error that says which profile would fit.

A model has one input, L (N, 1, H, W), or two when it takes colour hints (``spec.hints``): L and the
hint input (N, 3, H, W), which shares N, H and W with L. So one (N, H, W) profile describes every
input (``model_inputs`` gives their names and channels, ``input_profiles`` their NCHW shapes), and a
chunk of a batch is the same rows of both.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..base import check_hints
from ...model.spec import HINT_CHANNELS  # noqa: F401  (re-exported for the GPU backends)

Shape = tuple[int, int, int]  # (batch, height, width); the channel dim is fixed by the model
Inputs = tuple[tuple[str, int], ...]  # the model's inputs as (name, channels), L first

_SHAPE_RE = re.compile(r"^\s*(\d+)\s*[xX,]\s*(\d+)\s*[xX,]\s*(\d+)\s*$")


def parse_shape(text: str) -> Shape:
    """'8x256x256' (NxHxW) -> (8, 256, 256)."""
    m = _SHAPE_RE.match(text)
    if not m:
        raise ValueError(f"bad shape {text!r}: expected NxHxW, e.g. 8x256x256")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def format_shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(v) for v in shape)


@dataclass(frozen=True)
class Profile:
    """min / opt / max (N, H, W) of the single optimization profile an engine is built with."""

    min: Shape
    opt: Shape
    max: Shape

    def validate(self, size_multiple: int) -> "Profile":
        """Raise ValueError (one line) unless the profile is buildable for a model with this size multiple."""
        for label, shape in (("min", self.min), ("opt", self.opt), ("max", self.max)):
            if len(shape) != 3 or any(int(v) != v or v < 1 for v in shape):
                raise ValueError(f"{label} shape {shape} must be three positive integers (N, H, W)")
            for dim, v in zip(("H", "W"), shape[1:]):
                if v % size_multiple:
                    raise ValueError(f"{label} {dim}={v} is not a multiple of {size_multiple} (the model's size multiple)")
        for i, dim in enumerate("NHW"):
            if not self.min[i] <= self.opt[i] <= self.max[i]:
                raise ValueError(f"profile {dim} must satisfy min <= opt <= max, got {self.min[i]}, {self.opt[i]}, {self.max[i]}")
        return self

    def input_shapes(self, channels: int = 1) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """NCHW min/opt/max, as TensorRT's ``IOptimizationProfile.set_shape`` wants them."""
        return tuple((s[0], channels, s[1], s[2]) for s in (self.min, self.opt, self.max))  # type: ignore[return-value]

    def to_dict(self) -> dict:
        return {"min": format_shape(self.min), "opt": format_shape(self.opt), "max": format_shape(self.max)}

    @classmethod
    def from_dict(cls, data: dict) -> "Profile":
        return cls(parse_shape(data["min"]), parse_shape(data["opt"]), parse_shape(data["max"]))

    @classmethod
    def from_nchw(cls, shapes) -> "Profile":
        """From TensorRT's ``engine.get_tensor_profile_shape(name, 0)``: three NCHW shapes."""
        mn, op, mx = (tuple(int(v) for v in s) for s in shapes)
        return cls((mn[0], mn[2], mn[3]), (op[0], op[2], op[3]), (mx[0], mx[2], mx[3]))

    def accepts_hw(self, h: int, w: int) -> bool:
        return self.min[1] <= h <= self.max[1] and self.min[2] <= w <= self.max[2]


def model_inputs(spec) -> Inputs:
    """The network's inputs as (name, channels): L, then the hint input of a model that takes hints."""
    inputs: Inputs = ((spec.input_name, 1),)
    if spec.hints:
        inputs += ((spec.hint_name, HINT_CHANNELS),)
    return inputs


def input_profiles(profile: Profile, inputs: Inputs) -> dict[str, tuple[tuple[int, ...], ...]]:
    """NCHW min/opt/max per input name: the same batch, H and W for every input, each with its channels."""
    return {name: profile.input_shapes(channels) for name, channels in inputs}


def default_profile(size_multiple: int, size: int = 512, max_batch: int = 16) -> Profile:
    """A profile for typical use: one image up to ``size`` px (multiples of ``size_multiple``), batches up to ``max_batch``."""
    size = max(size_multiple, size // size_multiple * size_multiple)
    opt_hw = max(size_multiple, min(256, size) // size_multiple * size_multiple)
    return Profile((1, size_multiple, size_multiple), (1, opt_hw, opt_hw), (max_batch, size, size))


@dataclass(frozen=True)
class Chunk:
    """Rows ``start:stop`` of the caller's batch, run as a batch of ``run_n`` (>= stop - start; the rest is padding)."""

    start: int
    stop: int
    run_n: int


def plan_batches(n: int, h: int, w: int, profile: Profile) -> list[Chunk]:
    """How to run a batch of ``n`` (H, W) inputs on an engine with ``profile``.

    Chunks of at most max-batch rows; a chunk below min-batch is padded up to it (with zero rows, in L and
    in the hint input alike: a chunk is the same rows of every input). Raises ValueError
    when H or W is outside the profile (the engine cannot run it; splitting cannot help).
    """
    if n < 1:
        raise ValueError(f"batch must have at least one image, got {n}")
    if not profile.accepts_hw(h, w):
        raise ValueError(
            f"input {h}x{w} is outside the engine's profile (H {profile.min[1]}..{profile.max[1]}, "
            f"W {profile.min[2]}..{profile.max[2]}); rebuild the engine with a larger --max or use a smaller render size"
        )
    lo, hi = profile.min[0], profile.max[0]
    chunks = []
    for start in range(0, n, hi):
        stop = min(n, start + hi)
        chunks.append(Chunk(start, stop, max(stop - start, lo)))
    return chunks


def check_input(L: np.ndarray, spec) -> np.ndarray:
    """The (N, 1, H, W) float32 contiguous array to run, or ValueError saying what is wrong."""
    if L.ndim != 4 or L.shape[1] != 1:
        raise ValueError(f"expected L of shape (N, 1, H, W), got {L.shape}")
    m = spec.size_multiple
    if L.shape[2] % m or L.shape[3] % m:
        raise ValueError(f"H and W must be multiples of {m}, got {L.shape[2]}x{L.shape[3]}")
    return np.ascontiguousarray(L, dtype=np.float32)


def check_inputs(L: np.ndarray, hints: np.ndarray | None, spec) -> tuple[np.ndarray, np.ndarray | None]:
    """(L, hints) as float32 contiguous arrays to run, hints None when none were given (the backend feeds
    zeros to a hint model), or ValueError: bad L, hints of the wrong shape, or hints for a model without
    a hint input."""
    L = check_input(L, spec)
    if hints is None:
        return L, None
    if not spec.hints:
        raise ValueError(f"the model {spec.name!r} takes no colour hints (spec.hints is false)")
    return L, check_hints(L, hints)
