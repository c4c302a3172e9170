"""The one interface every inference backend implements.

A backend runs the served model (L in [0, 100] -> ab in Lab units) on float32 NCHW batches whose
H and W are multiples of ``spec.size_multiple``. It knows nothing of images, files or colour
conversion: the Colorizer does that around it.
"""
from __future__ import annotations

import abc
import os

import numpy as np

from ..model.bundle import ModelFiles  # noqa: F401  (what a backend is built from; re-exported)
from ..model.spec import HINT_CHANNELS, ModelSpec


def available_cores() -> int:
    """Cores this process may use (affinity-aware: a Slurm task or taskset sees its own)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class BackendUnavailable(RuntimeError):
    """Raised by a backend's ``check`` / constructor when it cannot run here; the message says why."""


def check_hints(L: np.ndarray, hints: np.ndarray) -> np.ndarray:
    shape = (L.shape[0], HINT_CHANNELS, L.shape[2], L.shape[3])
    hints = np.ascontiguousarray(hints, dtype=np.float32)
    if hints.shape != shape:
        raise ValueError(f"hints must have shape {shape}, got {hints.shape}")
    return hints


def hint_feed(L: np.ndarray, hints: np.ndarray | None, spec: ModelSpec) -> np.ndarray | None:
    """What to feed the hint input for this batch: None for a model without one (which refuses hints), zeros
    for "no hints" (the automatic result), else the checked hints."""
    if not spec.hints:
        if hints is not None:
            raise ValueError("this model takes no hint input")
        return None
    if hints is None:
        return np.zeros((L.shape[0], HINT_CHANNELS, L.shape[2], L.shape[3]), np.float32)
    return check_hints(L, hints)


class Backend(abc.ABC):
    name: str = "?"
    device: str = "cpu"
    # Whether a photo's answer is the same, bit for bit, alone or in a batch with others. The batch runner
    # (runtime/image/pipeline.py) batches photos on CPU backends only where this holds, so that a folder's
    # outputs are those of one photo at a time (tests/test_pipeline.py checks it for ONNX Runtime).
    batch_invariant: bool = False

    @classmethod
    @abc.abstractmethod
    def check(cls) -> None:
        """Raise BackendUnavailable(reason) if this backend cannot run on this machine. Cheap."""

    @abc.abstractmethod
    def __init__(self, files: ModelFiles, threads: int | None = None): ...

    @abc.abstractmethod
    def run(self, L: np.ndarray, hints: np.ndarray | None = None) -> np.ndarray:
        """(N, 1, H, W) float32 L [+ (N, 3, H, W) float32 hints: a, b in Lab units and a 0/1 mask] -> (N, 2, H, W)
        float32 ab. For a model with hint inputs (``spec.hints``) no hints means zeros: the automatic result;
        a model without them ignores nothing silently: the Colorizer refuses hints for it before this point."""

    def close(self) -> None:
        """Release resources (GPU buffers, sessions). Safe to call twice."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
