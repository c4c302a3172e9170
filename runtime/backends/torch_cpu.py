"""PyTorch CPU backend: runs the generator from the bundle's safetensors weights.

The fallback when ONNX Runtime is missing, and the reference the parity tests compare against.
torch and safetensors are imported only here (and in runtime/model/generator.py, imported from here).
"""
from __future__ import annotations

import importlib.util

import numpy as np

from ..errors import one_line
from .base import Backend, BackendUnavailable, ModelFiles, hint_feed


def load_state_dict(path: str) -> dict:
    """safetensors -> float32 state dict (the embedded default stores float16 to save space)."""
    from safetensors.torch import load_file

    state = load_file(path, device="cpu")
    return {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}


def build_lab_colorizer(files: ModelFiles):
    """The served module (LabColorizer) in eval mode with the bundle's weights."""
    from ..model.generator import LabColorizer, build_generator

    gen = build_generator(files.spec)
    try:
        missing, unexpected = gen.load_state_dict(load_state_dict(files.weights), strict=False)
    except (RuntimeError, OSError, ValueError) as exc:  # shape mismatch or unreadable file
        raise BackendUnavailable(f"cannot load {files.weights}: {one_line(exc)}") from None
    # BatchNorm's num_batches_tracked is not needed in eval; anything else missing is a real mismatch.
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise BackendUnavailable(f"{files.weights} does not match the spec (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return LabColorizer(gen).eval()


class TorchCPUBackend(Backend):
    name = "torch-cpu"
    device = "cpu"

    @classmethod
    def check(cls) -> None:
        for mod in ("torch", "safetensors"):
            if importlib.util.find_spec(mod) is None:
                raise BackendUnavailable(f"{mod} is not installed (pip install 'colorize-gan[torch]')")

    def __init__(self, files: ModelFiles, threads: int | None = None):
        self.check()
        if not files.weights:
            raise BackendUnavailable("the model has no .safetensors weights")
        import torch

        if threads:
            torch.set_num_threads(threads)
        self._torch = torch
        self._model = build_lab_colorizer(files)
        self._spec = files.spec

    def run(self, L: np.ndarray, hints: np.ndarray | None = None) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(np.require(L, np.float32, ["C", "W"]))  # torch wants a writable buffer
            h = hint_feed(L, hints, self._spec)
            if h is None:
                return self._model(x).numpy()
            return self._model(x, torch.from_numpy(h)).numpy()

    def close(self) -> None:
        self._model = None
