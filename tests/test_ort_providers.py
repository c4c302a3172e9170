"""ONNX Runtime provider selection: CUDA only when onnxruntime-gpu offers it and a GPU can exist."""
from runtime.backends.ort_providers import CPU_EP, CUDA_EP, select_providers, session_device


def test_cpu_only_onnxruntime():
    providers, reason = select_providers([CPU_EP])
    assert providers == [CPU_EP] and "pip install onnxruntime-gpu" in reason


def test_cuda_provider_when_available_and_gpu_possible():
    assert select_providers([CUDA_EP, CPU_EP], gpu_reason=None) == ([CUDA_EP, CPU_EP], None)
    assert select_providers([CUDA_EP, CPU_EP], gpu_reason="no NVIDIA driver") == ([CPU_EP], "no NVIDIA driver")
    assert select_providers([CUDA_EP, CPU_EP], prefer_gpu=False) == ([CPU_EP], "CPU requested")


def test_probe_on_this_machine_is_consistent():
    from runtime import cuda

    providers, reason = select_providers([CUDA_EP, CPU_EP])
    assert (providers == [CPU_EP]) == (cuda.no_driver_reason() is not None)


def test_silent_fallback_is_detected():
    assert session_device([CUDA_EP, CPU_EP]) == ("cuda", None)
    device, note = session_device([CPU_EP])
    assert device == "cpu" and "fell back" in note
