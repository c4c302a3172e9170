"""A small cffi (ABI mode) binding to libcudart: device queries, device/pinned memory, streams, async copies
and memsets.

The TensorRT backend drives the GPU through this module, so TensorRT inference needs neither torch
nor pycuda. Nothing is loaded at import time: ``load()`` finds libcudart (an explicit
``COLORIZE_GAN_LIBCUDART`` path, then NVIDIA's pip wheels, then the system), dlopens it once and
returns a ``CudaRuntime``. Every CUDA call is checked; a failure raises ``CudaError`` whose message
carries the CUDA error name (e.g. ``cudaErrorInsufficientDriver``), and a missing library raises
``CudaUnavailable``. ``probe()`` turns both into a one-line reason for backends' ``check()``.

Memory is freed explicitly (``free()`` / ``close()``), never from ``__del__``: at interpreter exit
libcudart may already be unloading, and frees then fail with cudaErrorCudartUnloading.

``python -m runtime.backends.gpu.cuda`` prints what it finds.
"""
from __future__ import annotations

import glob
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from ...errors import one_line

_CDEF = """
typedef int cudaError_t;
typedef void* cudaStream_t;
cudaError_t cudaGetDeviceCount(int *count);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDevice(int *device);
cudaError_t cudaDeviceGetAttribute(int *value, int attr, int device);
cudaError_t cudaDriverGetVersion(int *version);
cudaError_t cudaRuntimeGetVersion(int *version);
cudaError_t cudaMemGetInfo(size_t *free, size_t *total);
cudaError_t cudaMalloc(void **ptr, size_t size);
cudaError_t cudaFree(void *ptr);
cudaError_t cudaHostAlloc(void **ptr, size_t size, unsigned int flags);
cudaError_t cudaFreeHost(void *ptr);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t count, int kind, cudaStream_t stream);
cudaError_t cudaMemsetAsync(void *devPtr, int value, size_t count, cudaStream_t stream);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned int flags);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
const char* cudaGetErrorName(cudaError_t error);
const char* cudaGetErrorString(cudaError_t error);
"""
# cudaDeviceProp changes size between CUDA releases, but ``char name[256]`` is its first field in all
# of them; these symbols are declared separately because each exists only in some releases.
_PROPS_CDEF = """
cudaError_t cudaGetDeviceProperties(void *prop, int device);
cudaError_t cudaGetDeviceProperties_v2(void *prop, int device);
"""
_PROPS_BYTES = 16384  # larger than cudaDeviceProp in any CUDA release (about 1 KiB in 12.x/13.x)

# Values from CUDA's driver_types.h (stable across 11.x-13.x).
SUCCESS = 0
ERROR_INSUFFICIENT_DRIVER = 35
ERROR_NO_DEVICE = 100
MEMCPY_HOST_TO_DEVICE = 1
MEMCPY_DEVICE_TO_HOST = 2
MEMCPY_DEVICE_TO_DEVICE = 3
HOST_ALLOC_PORTABLE = 0x01
STREAM_NON_BLOCKING = 0x01
ATTR_CLOCK_RATE_KHZ = 13
ATTR_MULTIPROCESSOR_COUNT = 16
ATTR_COMPUTE_CAPABILITY_MAJOR = 75
ATTR_COMPUTE_CAPABILITY_MINOR = 76

ENV_PATH = "COLORIZE_GAN_LIBCUDART"
INSTALL_HINT = "pip install nvidia-cuda-runtime (CUDA 13) or nvidia-cuda-runtime-cu12, or install the CUDA toolkit"


class CudaUnavailable(RuntimeError):
    """libcudart (or cffi) cannot be loaded at all."""


class CudaError(RuntimeError):
    """A CUDA runtime call failed; ``code`` and ``name`` are CUDA's."""

    def __init__(self, code: int, name: str, call: str, detail: str = ""):
        self.code, self.name, self.call = code, name, call
        super().__init__(f"{call} failed: {name} ({code}){': ' + detail if detail else ''}")


def _lib_names() -> tuple[list[str], list[str]]:
    """(file names to look for in wheel/toolkit folders, bare names to hand to the dynamic loader)."""
    if sys.platform == "win32":
        return ["cudart64_13*.dll", "cudart64_12*.dll", "cudart64_1*.dll"], []
    return ["libcudart.so.13", "libcudart.so.12", "libcudart.so"], ["libcudart.so.13", "libcudart.so.12", "libcudart.so"]


def candidate_paths(search_dirs: list[str] | None = None) -> list[str]:
    """Where libcudart may be, best first: newest CUDA first, and within one version the pip wheels before the system.

    ``search_dirs`` replaces the automatic search (used by tests and by ``COLORIZE_GAN_LIBCUDART``-less
    callers that know better); the env var, when set, always comes first.
    """
    patterns, bare = _lib_names()
    found: list[str] = []
    explicit = os.environ.get(ENV_PATH)
    if explicit:
        found.append(explicit)
    if search_dirs is None:
        dirs: list[str] = []
        # NVIDIA's pip wheels: nvidia-cuda-runtime 13.x -> nvidia/cu13/lib; the -cu12 wheel -> nvidia/cuda_runtime/lib.
        for entry in sys.path:
            base = Path(entry or ".") / "nvidia"
            for sub in ("cu13/lib", "cu13/bin", "cuda_runtime/lib", "cuda_runtime/bin"):
                if (base / sub).is_dir():
                    dirs.append(str(base / sub))
        for var in ("CUDA_HOME", "CUDA_PATH"):
            if os.environ.get(var):
                dirs += [os.path.join(os.environ[var], d) for d in ("lib64", "lib", "bin")]
        dirs += ["/usr/local/cuda/lib64", "/usr/local/cuda/lib"]
        dirs += sorted(glob.glob("/usr/local/cuda-*/lib64") + glob.glob("/usr/local/cuda-*/lib"), reverse=True)
        dirs += ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu"]
    else:
        dirs, bare = list(search_dirs), []
    for pattern in patterns:
        for d in dirs:
            for path in sorted(glob.glob(os.path.join(d, pattern)), reverse=True):
                # realpath: /usr/local/cuda is usually a link to /usr/local/cuda-X.Y; list each file once.
                found.append(os.path.realpath(path))
    # Last resort: the loader's own search path (LD_LIBRARY_PATH, ldconfig cache).
    found += [b for b in bare if b not in found]
    return list(dict.fromkeys(found))


@dataclass
class DeviceBuffer:
    """``nbytes`` of device memory at integer address ``ptr``; free it with ``free()``."""

    rt: "CudaRuntime"
    ptr: int
    nbytes: int

    def free(self) -> None:
        if self.ptr:
            ptr, self.ptr = self.ptr, 0
            self.rt.check(self.rt.lib.cudaFree(self.rt.ffi.cast("void *", ptr)), "cudaFree")


class HostBuffer:
    """Pinned (page-locked) host memory, usable as a numpy array through ``array(shape, dtype)``.

    Arrays from ``array`` are views: they must not be used after ``free()``.
    """

    def __init__(self, rt: "CudaRuntime", nbytes: int):
        self.rt, self.nbytes = rt, int(nbytes)
        box = rt.ffi.new("void **")
        rt.check(rt.lib.cudaHostAlloc(box, max(self.nbytes, 1), HOST_ALLOC_PORTABLE), "cudaHostAlloc", f"{self.nbytes} bytes")
        self._cptr = box[0]
        self.ptr = int(rt.ffi.cast("uintptr_t", self._cptr))

    def array(self, shape: tuple[int, ...], dtype="float32"):
        import numpy as np

        dtype = np.dtype(dtype)
        count = 1
        for s in shape:
            count *= int(s)
        if count * dtype.itemsize > self.nbytes:
            raise ValueError(f"{shape} {dtype} needs {count * dtype.itemsize} bytes; the buffer has {self.nbytes}")
        if not self.ptr:
            raise ValueError("pinned buffer already freed")
        return np.frombuffer(self.rt.ffi.buffer(self._cptr, count * dtype.itemsize), dtype=dtype).reshape(shape)

    def free(self) -> None:
        if self.ptr:
            self.ptr = 0
            self.rt.check(self.rt.lib.cudaFreeHost(self._cptr), "cudaFreeHost")
            self._cptr = None


class Stream:
    """A non-blocking CUDA stream (so work on it never serializes with the legacy default stream)."""

    def __init__(self, rt: "CudaRuntime"):
        self.rt = rt
        box = rt.ffi.new("cudaStream_t *")
        rt.check(rt.lib.cudaStreamCreateWithFlags(box, STREAM_NON_BLOCKING), "cudaStreamCreateWithFlags")
        self._handle = box[0]
        self.handle = int(rt.ffi.cast("uintptr_t", self._handle))  # what TensorRT's execute_async_v3 takes

    def synchronize(self) -> None:
        self.rt.check(self.rt.lib.cudaStreamSynchronize(self._handle), "cudaStreamSynchronize")

    def destroy(self) -> None:
        if self._handle is not None:
            handle, self._handle, self.handle = self._handle, None, 0
            self.rt.check(self.rt.lib.cudaStreamDestroy(handle), "cudaStreamDestroy")


class CudaRuntime:
    """One dlopened libcudart. Use ``load()`` rather than constructing it."""

    def __init__(self, path: str):
        try:
            import cffi
        except ImportError as exc:
            raise CudaUnavailable(f"cffi is not installed ({exc}); pip install cffi") from None
        self.ffi = cffi.FFI()
        self.ffi.cdef(_CDEF)
        self.ffi.cdef(_PROPS_CDEF)
        try:
            self.lib = self.ffi.dlopen(path)
        except OSError as exc:
            raise CudaUnavailable(f"cannot load {path}: {one_line(exc, None)}") from None
        self.path = path

    # -- errors ------------------------------------------------------------------------------------
    def error_name(self, code: int) -> str:
        ptr = self.lib.cudaGetErrorName(code)
        return self.ffi.string(ptr).decode() if ptr != self.ffi.NULL else f"cudaError{code}"

    def check(self, code: int, call: str, detail: str = "") -> None:
        if code != SUCCESS:
            # A failed runtime call also leaves its code in the thread's last-error slot; the next library to
            # ask (torch checks cudaGetLastError after its launches) would report *our* handled failure as its
            # own: seen on an H100, where a refused cudaMalloc made torch's next .to("cuda") raise "out of memory".
            # Reset it: the error is reported here, once, as an exception.
            self.lib.cudaGetLastError()
            raise CudaError(int(code), self.error_name(code), call, detail)

    def last_error(self, clear: bool = False) -> int:
        """The thread's last-error code (0 = none); ``clear`` resets it as cudaGetLastError does."""
        return int(self.lib.cudaGetLastError() if clear else self.lib.cudaPeekAtLastError())

    def _int_out(self, fn, call: str, *args) -> int:
        box = self.ffi.new("int *")
        self.check(fn(box, *args), call)
        return int(box[0])

    # -- queries -----------------------------------------------------------------------------------
    def runtime_version(self) -> int:
        """e.g. 13000 for CUDA 13.0 (needs no driver)."""
        return self._int_out(self.lib.cudaRuntimeGetVersion, "cudaRuntimeGetVersion")

    def driver_version(self) -> int:
        """The CUDA version the installed driver supports; 0 when no driver is installed."""
        return self._int_out(self.lib.cudaDriverGetVersion, "cudaDriverGetVersion")

    def device_count(self) -> int:
        return self._int_out(self.lib.cudaGetDeviceCount, "cudaGetDeviceCount")

    def set_device(self, device: int) -> None:
        self.check(self.lib.cudaSetDevice(device), "cudaSetDevice", f"device {device}")

    def attribute(self, attr: int, device: int = 0) -> int:
        box = self.ffi.new("int *")
        self.check(self.lib.cudaDeviceGetAttribute(box, attr, device), "cudaDeviceGetAttribute", f"attribute {attr}")
        return int(box[0])

    def compute_capability(self, device: int = 0) -> tuple[int, int]:
        return self.attribute(ATTR_COMPUTE_CAPABILITY_MAJOR, device), self.attribute(ATTR_COMPUTE_CAPABILITY_MINOR, device)

    def device_name(self, device: int = 0) -> str:
        props = self.ffi.new("char[]", _PROPS_BYTES)
        # CUDA 12 exports the current layout as _v2 (its header maps the name to it); 13 only has the plain name.
        try:
            fn = self.lib.cudaGetDeviceProperties_v2
        except AttributeError:
            fn = self.lib.cudaGetDeviceProperties
        self.check(fn(props, device), "cudaGetDeviceProperties", f"device {device}")
        return self.ffi.string(props, 256).decode(errors="replace")

    def mem_info(self) -> tuple[int, int]:
        """(free, total) bytes on the current device."""
        free, total = self.ffi.new("size_t *"), self.ffi.new("size_t *")
        self.check(self.lib.cudaMemGetInfo(free, total), "cudaMemGetInfo")
        return int(free[0]), int(total[0])

    # -- memory, streams, copies -------------------------------------------------------------------
    def malloc(self, nbytes: int) -> DeviceBuffer:
        box = self.ffi.new("void **")
        self.check(self.lib.cudaMalloc(box, max(int(nbytes), 1)), "cudaMalloc", f"{nbytes} bytes")
        return DeviceBuffer(self, int(self.ffi.cast("uintptr_t", box[0])), int(nbytes))

    def host_alloc(self, nbytes: int) -> HostBuffer:
        return HostBuffer(self, nbytes)

    def stream(self) -> Stream:
        return Stream(self)

    def memcpy_async(self, dst: int, src: int, nbytes: int, kind: int, stream: Stream) -> None:
        self.check(
            self.lib.cudaMemcpyAsync(self.ffi.cast("void *", dst), self.ffi.cast("void *", src), nbytes, kind, stream._handle),
            "cudaMemcpyAsync",
            f"{nbytes} bytes, kind {kind}",
        )

    def memset_async(self, dst: int, value: int, nbytes: int, stream: Stream) -> None:
        """Set ``nbytes`` of device memory at ``dst`` to the byte ``value``, queued on ``stream``."""
        self.check(
            self.lib.cudaMemsetAsync(self.ffi.cast("void *", dst), int(value), nbytes, stream._handle),
            "cudaMemsetAsync",
            f"{nbytes} bytes",
        )

    def synchronize(self) -> None:
        self.check(self.lib.cudaDeviceSynchronize(), "cudaDeviceSynchronize")


_loaded: dict[str, CudaRuntime] = {}
_lock = threading.Lock()


def load(search_dirs: list[str] | None = None) -> CudaRuntime:
    """The first libcudart that loads and talks to the driver, or the first that loads at all.

    A libcudart newer than the driver reports cudaErrorInsufficientDriver while an older one (say the
    cu12 wheel beside a CUDA 13 toolkit) works, so a candidate giving error 35 is passed over when
    another one is left. Raises CudaUnavailable when none loads.
    """
    tried: list[str] = []
    fallback: CudaRuntime | None = None
    with _lock:
        for path in candidate_paths(search_dirs):
            rt = _loaded.get(path)
            if rt is None:
                try:
                    rt = CudaRuntime(path)
                except CudaUnavailable as exc:
                    if "cffi" in str(exc):
                        raise
                    tried.append(path)
                    continue
                _loaded[path] = rt
            count = _device_count_code(rt)
            if count != ERROR_INSUFFICIENT_DRIVER:
                return rt
            fallback = fallback or rt
    if fallback is not None:
        return fallback
    where = ", ".join(search_dirs) if search_dirs is not None else "NVIDIA pip wheels, CUDA_HOME, /usr/local/cuda*, the loader path"
    raise CudaUnavailable(f"no libcudart found (searched {where}); {INSTALL_HINT}")


def _device_count_code(rt: CudaRuntime) -> int:
    """cudaGetDeviceCount's raw return code (0 on success): the cheapest 'is there a usable GPU' question."""
    return int(rt.lib.cudaGetDeviceCount(rt.ffi.new("int *")))


def probe(search_dirs: list[str] | None = None) -> str | None:
    """None if a CUDA GPU is usable through libcudart, else a one-line reason."""
    try:
        rt = load(search_dirs)
        count = rt.device_count()
    except CudaUnavailable as exc:
        return str(exc)
    except CudaError as exc:
        if exc.code == ERROR_INSUFFICIENT_DRIVER:
            driver = rt.driver_version()
            if driver == 0:
                return f"no NVIDIA driver ({exc.name} from {rt.path})"
            return f"the NVIDIA driver (CUDA {_fmt(driver)}) is older than {rt.path} (CUDA {_fmt(rt.runtime_version())}): {exc.name}"
        if exc.code == ERROR_NO_DEVICE:
            return f"no CUDA GPU ({exc.name})"
        return str(exc)
    return None if count > 0 else "no CUDA GPU (cudaGetDeviceCount returned 0)"


def no_driver_reason(search_dirs: list[str] | None = None) -> str | None:
    """A reason only when it is certain no CUDA GPU can work here, whatever CUDA build asks: no
    driver installed, or the driver sees no device. None when unsure (no libcudart found, or one
    newer than the driver: torch's own CUDA runtime may still work), so callers then ask torch.
    """
    try:
        rt = load(search_dirs)
        driver = rt.driver_version()
    except (CudaUnavailable, CudaError):
        return None
    if driver == 0:
        return f"no NVIDIA driver (cudaDriverGetVersion reports none; libcudart {rt.path})"
    code = _device_count_code(rt)
    if code == ERROR_NO_DEVICE:
        return f"no CUDA GPU ({rt.error_name(code)})"
    if code == SUCCESS and rt.device_count() == 0:
        return "no CUDA GPU (cudaGetDeviceCount returned 0)"
    return None


def _fmt(version: int) -> str:
    return f"{version // 1000}.{version % 1000 // 10}"


def describe(search_dirs: list[str] | None = None) -> dict:
    """What the binding finds, for ``colorize-gan info`` and the GPU check script."""
    out: dict = {"candidates": candidate_paths(search_dirs)}
    try:
        rt = load(search_dirs)
    except CudaUnavailable as exc:
        out["error"] = str(exc)
        return out
    out.update(path=rt.path, runtime=_fmt(rt.runtime_version()), driver=_fmt(rt.driver_version()) if rt.driver_version() else None)
    reason = probe(search_dirs)
    if reason:
        out["error"] = reason
        return out
    out["devices"] = [
        {"name": rt.device_name(i), "compute_capability": "%d.%d" % rt.compute_capability(i)} for i in range(rt.device_count())
    ]
    return out


if __name__ == "__main__":
    import json

    print(json.dumps(describe(), indent=2))
