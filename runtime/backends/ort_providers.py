"""Which ONNX Runtime execution providers to ask for, and which one a session really got.

onnxruntime-gpu offers CUDAExecutionProvider, but ONNX Runtime silently falls back to the next
provider when CUDA cannot start (missing cuDNN, driver too old), so the provider a session got must
be read back from ``session.get_providers()``. The TensorRT provider is not requested: the
TensorRT backend covers TensorRT, and ORT's TensorRT EP needs its own TensorRT 10 install.

For runtime/backends/onnxruntime.py:
    providers, reason = select_providers(ort.get_available_providers())
    session = ort.InferenceSession(path, opts, providers=providers)
    device, note = session_device(session.get_providers(), reason)
"""
from __future__ import annotations

from .. import cuda

CUDA_EP = "CUDAExecutionProvider"
CPU_EP = "CPUExecutionProvider"


def select_providers(available: list[str], prefer_gpu: bool = True, gpu_reason: str | None = "probe") -> tuple[list[str], str | None]:
    """(providers to request, why CUDA is not among them or None).

    ``gpu_reason`` "probe" asks libcudart whether a GPU is certainly absent (cheap); tests pass a
    reason or None directly.
    """
    if not prefer_gpu:
        return [CPU_EP], "CPU requested"
    if CUDA_EP not in available:
        return [CPU_EP], "onnxruntime has no CUDA provider (pip install onnxruntime-gpu instead of onnxruntime)"
    reason = cuda.no_driver_reason() if gpu_reason == "probe" else gpu_reason
    if reason:
        return [CPU_EP], reason
    return [CUDA_EP, CPU_EP], None


def session_device(session_providers: list[str], reason: str | None = None) -> tuple[str, str | None]:
    """("cuda" | "cpu", note): what the session actually runs on, and why it is not CUDA if it is not."""
    if session_providers and session_providers[0] == CUDA_EP:
        return "cuda", None
    return "cpu", reason or "ONNX Runtime fell back to the CPU provider (CUDA provider failed to start; check cuDNN/driver)"
