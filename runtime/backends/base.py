"""The one interface every inference backend implements.

A backend runs the served model (L in [0, 100] -> ab in Lab units) on float32 NCHW batches whose
H and W are multiples of ``spec.size_multiple``. It knows nothing of images, files or colour
conversion: the Colorizer does that around it.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np

from ..spec import ModelSpec


class BackendUnavailable(RuntimeError):
    """Raised by a backend's ``check`` / constructor when it cannot run here; the message says why."""


@dataclass(frozen=True)
class ModelFiles:
    """Where a model's artifacts are. Any may be None; each backend says which it needs."""

    spec: ModelSpec
    onnx: str | None = None  # FP32 ONNX (ONNX Runtime)
    onnx_fp16: str | None = None  # FP16-typed ONNX (TensorRT)
    weights: str | None = None  # safetensors state dict of the generator (torch backends)


class Backend(abc.ABC):
    name: str = "?"
    device: str = "cpu"

    @classmethod
    @abc.abstractmethod
    def check(cls) -> None:
        """Raise BackendUnavailable(reason) if this backend cannot run on this machine. Cheap."""

    @abc.abstractmethod
    def __init__(self, files: ModelFiles, threads: int | None = None): ...

    @abc.abstractmethod
    def run(self, L: np.ndarray) -> np.ndarray:
        """(N, 1, H, W) float32 L -> (N, 2, H, W) float32 ab."""

    def close(self) -> None:
        """Release resources (GPU buffers, sessions). Safe to call twice."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
