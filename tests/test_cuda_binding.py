"""The cffi libcudart binding, for real: where libcudart exists but no driver does (the project's
machines), every call reports cudaErrorInsufficientDriver (35) cleanly; where no libcudart can be
found, loading reports that; on a GPU machine (marked ``gpu``) memory, streams and copies work."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

from types import SimpleNamespace

import numpy as np
import pytest

from runtime.backends.gpu import cuda


def _real_runtime():
    """The libcudart this machine has, or skip (then the 'no libcudart' tests below cover the machine)."""
    try:
        return cuda.load()
    except cuda.CudaUnavailable as exc:
        pytest.skip(f"no libcudart on this machine: {exc}")


def _no_driver_runtime():
    rt = _real_runtime()
    if rt.driver_version() != 0:
        pytest.skip("an NVIDIA driver is installed here; the no-driver path cannot be exercised")
    return rt


@pytest.fixture(autouse=True)
def _no_env_override(monkeypatch):
    monkeypatch.delenv(cuda.ENV_PATH, raising=False)


def test_import_loads_nothing():
    code = "import sys, runtime.backends.gpu.cuda as c; assert not c._loaded; assert '_cffi_backend' not in sys.modules; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


def test_no_libcudart_is_reported(tmp_path):
    with pytest.raises(cuda.CudaUnavailable, match="no libcudart found") as info:
        cuda.load([str(tmp_path)])
    assert str(tmp_path) in str(info.value) and "nvidia-cuda-runtime" in str(info.value)
    reason = cuda.probe([str(tmp_path)])
    assert reason.startswith("no libcudart found")
    assert cuda.no_driver_reason([str(tmp_path)]) is None  # unsure: torch may bring its own runtime


def test_unloadable_file_is_passed_over(tmp_path):
    (tmp_path / "libcudart.so.13").write_bytes(b"not an ELF file")
    assert cuda.candidate_paths([str(tmp_path)]) == [str(tmp_path / "libcudart.so.13")]
    with pytest.raises(cuda.CudaUnavailable, match="no libcudart found"):
        cuda.load([str(tmp_path)])


def test_error_35_no_driver():
    rt = _no_driver_runtime()
    assert rt.runtime_version() >= 11000
    assert rt.error_name(cuda.ERROR_INSUFFICIENT_DRIVER) == "cudaErrorInsufficientDriver"
    assert rt.error_name(cuda.ERROR_NO_DEVICE) == "cudaErrorNoDevice"
    with pytest.raises(cuda.CudaError) as info:
        rt.device_count()
    assert info.value.code == 35 and info.value.name == "cudaErrorInsufficientDriver"
    assert str(info.value) == "cudaGetDeviceCount failed: cudaErrorInsufficientDriver (35)"
    default_stream = SimpleNamespace(_handle=rt.ffi.NULL)  # no stream can be created without a driver
    for call in (lambda: rt.malloc(16), lambda: rt.host_alloc(16), rt.stream, lambda: rt.device_name(0),
                 lambda: rt.memset_async(0, 0, 16, default_stream)):
        with pytest.raises(cuda.CudaError, match="cudaErrorInsufficientDriver"):
            call()
    assert cuda.probe().startswith("no NVIDIA driver (cudaErrorInsufficientDriver")
    assert cuda.no_driver_reason().startswith("no NVIDIA driver")
    assert "error" in cuda.describe() and "devices" not in cuda.describe()


def test_wheel_layouts_are_searched(tmp_path, monkeypatch):
    """A copy of the real library placed as NVIDIA's wheels place it is found first and loads."""
    rt = _real_runtime()
    real = os.path.realpath(rt.path) if os.path.sep in rt.path else None
    if real is None or not os.path.isfile(real):
        pytest.skip(f"libcudart came from the loader path ({rt.path}); no file to copy")
    cu13 = tmp_path / "nvidia" / "cu13" / "lib"
    cu12 = tmp_path / "nvidia" / "cuda_runtime" / "lib"
    cu13.mkdir(parents=True)
    cu12.mkdir(parents=True)
    shutil.copy(real, cu13 / "libcudart.so.13")
    shutil.copy(real, cu12 / "libcudart.so.12")
    monkeypatch.setattr(sys, "path", [str(tmp_path)] + sys.path)
    found = cuda.candidate_paths()
    assert found[0] == str(cu13 / "libcudart.so.13")
    # cu12 comes after every CUDA 13 library (load() falls back to it when the driver is too old for 13)
    i12 = found.index(str(cu12 / "libcudart.so.12"))
    assert all(".so.13" in p for p in found[:i12]) and ".so.12" in found[i12]
    loaded = cuda.CudaRuntime(found[0])
    assert loaded.runtime_version() == rt.runtime_version()


def test_env_override_comes_first(tmp_path, monkeypatch):
    monkeypatch.setenv(cuda.ENV_PATH, str(tmp_path / "custom" / "libcudart.so.13"))
    assert cuda.candidate_paths([str(tmp_path)])[0] == str(tmp_path / "custom" / "libcudart.so.13")


def _gpu_runtime():
    rt = _real_runtime()
    reason = cuda.probe()
    if reason:
        pytest.skip(f"no usable GPU: {reason}")
    return rt


@pytest.mark.gpu
def test_gpu_roundtrip_through_pinned_and_device_memory():
    rt = _gpu_runtime()
    assert rt.device_count() >= 1
    assert rt.device_name(0) and rt.compute_capability(0)[0] >= 3
    data = np.arange(1 << 16, dtype=np.float32)
    h_in, h_out = rt.host_alloc(data.nbytes), rt.host_alloc(data.nbytes)
    d = rt.malloc(data.nbytes)
    stream = rt.stream()
    try:
        h_in.array(data.shape)[:] = data
        rt.memcpy_async(d.ptr, h_in.ptr, data.nbytes, cuda.MEMCPY_HOST_TO_DEVICE, stream)
        rt.memcpy_async(h_out.ptr, d.ptr, data.nbytes, cuda.MEMCPY_DEVICE_TO_HOST, stream)
        stream.synchronize()
        np.testing.assert_array_equal(h_out.array(data.shape), data)
        # memset: the TensorRT backend zero-fills a hint model's hint input this way when no hints are given
        half = data.nbytes // 2
        rt.memset_async(d.ptr, 0, half, stream)
        rt.memcpy_async(h_out.ptr, d.ptr, data.nbytes, cuda.MEMCPY_DEVICE_TO_HOST, stream)
        stream.synchronize()
        out = h_out.array(data.shape)
        assert not out[: data.size // 2].any()
        np.testing.assert_array_equal(out[data.size // 2 :], data[data.size // 2 :])
    finally:
        d.free()
        h_in.free()
        h_out.free()
        stream.destroy()
    d.free()  # freeing twice is a no-op, not a CUDA error
    with pytest.raises(cuda.CudaError, match="cudaErrorMemoryAllocation"):
        rt.malloc(1 << 60)


@pytest.mark.gpu
def test_a_handled_failure_does_not_leak_into_the_next_library():
    """A refused cudaMalloc leaves its code in the thread's last-error slot; torch checks that slot after its own
    launches and would raise our handled failure as its "out of memory" (seen on an H100 before the binding reset it)."""
    rt = _gpu_runtime()
    with pytest.raises(cuda.CudaError, match="cudaErrorMemoryAllocation"):
        rt.malloc(1 << 60)
    assert rt.last_error() == cuda.SUCCESS
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        x = torch.ones(1 << 20, device="cuda") * 2  # a launch whose error check reads the last-error slot
        assert float(x.sum()) == 2 * (1 << 20)
