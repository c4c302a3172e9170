"""Backend registry: names -> lazily imported classes, and the fallback order for ``auto``.

Each entry is a "module:Class" string so that importing the registry imports no heavy library;
a backend's own module imports torch / onnxruntime / tensorrt only when it is used.
"""
from __future__ import annotations

import importlib

from .base import Backend, BackendUnavailable

# Explicit fallback order for "auto": fastest first.
REGISTRY: dict[str, str] = {
    "tensorrt": "runtime.backends.tensorrt:TensorRTBackend",
    "torch-cuda": "runtime.backends.torch_cuda:TorchCUDABackend",
    "onnxruntime": "runtime.backends.onnxruntime:OnnxRuntimeBackend",
    "torch-cpu": "runtime.backends.torch_cpu:TorchCPUBackend",
}
AUTO_ORDER: tuple[str, ...] = tuple(REGISTRY)
# Coarse groups the GIMP dialog and CLI offer besides exact names.
GROUPS: dict[str, tuple[str, ...]] = {
    "auto": AUTO_ORDER,
    "gpu": ("tensorrt", "torch-cuda"),
    "cpu": ("onnxruntime", "torch-cpu"),
}


def backend_class(name: str) -> type[Backend]:
    if name not in REGISTRY:
        raise ValueError(f"unknown backend {name!r}; choose from {', '.join(list(GROUPS) + list(REGISTRY))}")
    module_name, _, cls_name = REGISTRY[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:  # the backend's module itself is missing or broken
        raise BackendUnavailable(f"cannot import {module_name}: {exc}") from exc
    return getattr(module, cls_name)


def availability(name: str) -> str | None:
    """None if ``name`` can run here, else the reason it cannot."""
    try:
        backend_class(name).check()
    except BackendUnavailable as exc:
        return str(exc)
    return None


def candidates(choice: str) -> tuple[str, ...]:
    """Backend names to try, in order, for a user's ``--backend`` choice."""
    if choice in GROUPS:
        return GROUPS[choice]
    if choice in REGISTRY:
        return (choice,)
    raise ValueError(f"unknown backend {choice!r}; choose from {', '.join(list(GROUPS) + list(REGISTRY))}")
