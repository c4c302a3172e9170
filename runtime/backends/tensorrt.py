"""TensorRT backend: an FP16 engine driven through the cffi libcudart binding (no torch, no pycuda).

The engine comes from ``COLORIZE_GAN_TRT_ENGINE`` (one built by tools/build_engine.py; its sidecar
must match this GPU and TensorRT) or from the per-user engine cache, built there from the bundle's
FP16-typed ONNX on first use (minutes; later runs load it in about a second). Inputs and outputs
are found by the spec's tensor names (TensorRT 10/11 name-based I/O, no binding indices). Pinned
host and device buffers are allocated once at the profile's max shape; each batch is split or
padded to the profile (runtime/engine_profile.py) and run with ``execute_async_v3`` on the
backend's own stream. ``close()`` frees every buffer.

Never run on the project's machines (TensorRT cannot be installed there): the pure parts are tested
on CPU, the engine path only where tensorrt and a GPU exist (tests/test_tensorrt.py).
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

from .. import cuda
from ..engine_profile import Profile, check_input, default_profile, plan_batches
from ..spec import ModelSpec
from .base import Backend, BackendUnavailable, ModelFiles

ENV_ENGINE = "COLORIZE_GAN_TRT_ENGINE"
ENV_DEVICE = "COLORIZE_GAN_CUDA_DEVICE"
# Default profile for cached engines: any render size up to 1024 px, batches up to 16 (video, GIMP frames).
DEFAULT_MAX_SIZE, DEFAULT_MAX_BATCH = 1024, 16


def resolve_io(tensors: list[tuple[str, bool]], spec: ModelSpec) -> tuple[str, str]:
    """(input name, output name) from the engine's I/O tensors [(name, is_input)], checked against the spec."""
    inputs = [n for n, is_in in tensors if is_in]
    outputs = [n for n, is_in in tensors if not is_in]
    if spec.input_name not in inputs or spec.output_name not in outputs or len(inputs) != 1 or len(outputs) != 1:
        raise BackendUnavailable(
            f"engine I/O does not match the model spec: engine inputs {inputs}, outputs {outputs}; "
            f"spec wants input {spec.input_name!r} and output {spec.output_name!r}"
        )
    return spec.input_name, spec.output_name


def sidecar_problems_for_here(meta: dict, trt_version: str, gpu_name: str, capability: str) -> list[str]:
    """Why a user-supplied engine (with sidecar ``meta``) cannot run with this TensorRT on this GPU."""
    problems = []
    if meta.get("tensorrt_version") != trt_version:
        problems.append(f"built with TensorRT {meta.get('tensorrt_version')}, this is {trt_version}")
    if meta.get("compute_capability") != capability or meta.get("gpu_name") != gpu_name:
        problems.append(f"built for {meta.get('gpu_name')} (sm {meta.get('compute_capability')}), this is {gpu_name} (sm {capability})")
    return problems


class TensorRTBackend(Backend):
    name = "tensorrt"
    device = "cuda"

    @classmethod
    def check(cls) -> None:
        if importlib.util.find_spec("tensorrt") is None:
            raise BackendUnavailable("tensorrt is not installed (pip install 'colorize-gan[tensorrt]')")
        reason = cuda.probe()
        if reason:
            raise BackendUnavailable(reason)

    def __init__(self, files: ModelFiles, threads: int | None = None, *, engine_path: str | None = None, log=print):
        self.check()
        self._buffers: list = []
        self._stream = None
        self._context = self._engine = None
        self.spec = files.spec
        self.rt = cuda.load()
        self.device_index = int(os.environ.get(ENV_DEVICE, "0"))
        self.rt.set_device(self.device_index)
        import tensorrt as trt

        self._trt = trt
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        engine_path = engine_path or os.environ.get(ENV_ENGINE)
        try:
            self._engine, self.engine_path = (
                self._load_user_engine(engine_path) if engine_path else self._load_cached_engine(files, log)
            )
            self._setup()
        except cuda.CudaError as exc:  # e.g. out of device memory: a reason to fall back, like the others
            self.close()
            raise BackendUnavailable(str(exc)) from None
        except BaseException:
            self.close()
            raise

    # -- engine -------------------------------------------------------------------------------------
    def _deserialize(self, data: bytes):
        return self._runtime.deserialize_cuda_engine(data)  # None on a TensorRT/GPU mismatch

    def _load_user_engine(self, path: str):
        from ..engine_cache import read_sidecar, sidecar_mismatches

        try:
            meta = read_sidecar(path)
        except ValueError as exc:
            raise BackendUnavailable(f"{ENV_ENGINE}={path}: {exc}") from None
        gpu = self.rt.device_name(self.device_index)
        cap = "%d.%d" % self.rt.compute_capability(self.device_index)
        problems = sidecar_mismatches(meta, None, path) + sidecar_problems_for_here(meta, self._trt.__version__, gpu, cap)
        if problems:
            raise BackendUnavailable(f"{path}: {'; '.join(problems)} (rebuild with tools/build_engine.py)")
        engine = self._deserialize(Path(path).read_bytes())
        if engine is None:
            raise BackendUnavailable(f"TensorRT could not deserialize {path}; rebuild it with tools/build_engine.py")
        return engine, Path(path)

    def _load_cached_engine(self, files: ModelFiles, log):
        from ..engine_cache import get_or_build
        from ..trt_build import BuildError, build_engine, current_key

        if not files.onnx_fp16:
            raise BackendUnavailable("the model has no FP16-typed ONNX (NAME_fp16.onnx) to build an engine from")
        profile = default_profile(self.spec.size_multiple, DEFAULT_MAX_SIZE, DEFAULT_MAX_BATCH)
        key = current_key(self._trt.__version__, self.rt, self.device_index, files.onnx_fp16, profile, "fp16")
        report: dict = {}

        def build() -> bytes:
            result = build_engine(files.onnx_fp16, self.spec, profile, "fp16", log=log)
            report.update(result.report)
            return result.engine

        try:
            engine, path, _ = get_or_build(
                key, build, self._deserialize, stem=Path(files.onnx_fp16).stem, extra=lambda: report, log=log
            )
        except BuildError as exc:
            raise BackendUnavailable(str(exc)) from None
        return engine, path

    def _setup(self) -> None:
        trt, engine = self._trt, self._engine
        tensors = []
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            tensors.append((name, engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT))
        self._in, self._out = resolve_io(tensors, self.spec)
        for name in (self._in, self._out):
            if engine.get_tensor_dtype(name) != trt.DataType.FLOAT:
                raise BackendUnavailable(f"engine tensor {name!r} is {engine.get_tensor_dtype(name)}, expected FP32 I/O")
        self.profile = Profile.from_nchw(engine.get_tensor_profile_shape(self._in, 0))
        n, h, w = self.profile.max
        self._context = engine.create_execution_context()
        if self._context is None:
            raise BackendUnavailable("TensorRT could not create an execution context (out of GPU memory?)")
        self._stream = self.rt.stream()
        in_bytes, out_bytes = n * h * w * 4, n * 2 * h * w * 4
        self._d_in, self._d_out = self.rt.malloc(in_bytes), self.rt.malloc(out_bytes)
        self._buffers += [self._d_in, self._d_out]
        self._h_in, self._h_out = self.rt.host_alloc(in_bytes), self.rt.host_alloc(out_bytes)
        self._buffers += [self._h_in, self._h_out]
        # Addresses never change (buffers sized for the max shape), so bind them once.
        self._context.set_tensor_address(self._in, self._d_in.ptr)
        self._context.set_tensor_address(self._out, self._d_out.ptr)

    # -- inference ---------------------------------------------------------------------------------
    def run(self, L: np.ndarray) -> np.ndarray:
        L = check_input(L, self.spec)
        n, _, h, w = L.shape
        out = np.empty((n, 2, h, w), np.float32)
        rt, ctx, stream = self.rt, self._context, self._stream
        for chunk in plan_batches(n, h, w, self.profile):
            k = chunk.stop - chunk.start
            host_in = self._h_in.array((chunk.run_n, 1, h, w))
            host_in[:k] = L[chunk.start : chunk.stop]
            host_in[k:] = 0.0  # padding rows up to the profile's min batch; their output is dropped
            if not ctx.set_input_shape(self._in, (chunk.run_n, 1, h, w)):
                raise RuntimeError(f"TensorRT rejected input shape {(chunk.run_n, 1, h, w)} for profile {self.profile.to_dict()}")
            rt.memcpy_async(self._d_in.ptr, self._h_in.ptr, host_in.nbytes, cuda.MEMCPY_HOST_TO_DEVICE, stream)
            if not ctx.execute_async_v3(stream.handle):
                raise RuntimeError("TensorRT execute_async_v3 failed (see the TensorRT log)")
            nbytes = k * 2 * h * w * 4
            rt.memcpy_async(self._h_out.ptr, self._d_out.ptr, nbytes, cuda.MEMCPY_DEVICE_TO_HOST, stream)
            stream.synchronize()
            out[chunk.start : chunk.stop] = self._h_out.array((k, 2, h, w))
        return out

    def close(self) -> None:
        # The context and engine go first: TensorRT may still hold work that references our buffers.
        errors = []
        if self._stream is not None:
            try:  # a run that raised may have left copies queued on our buffers
                self._stream.synchronize()
            except cuda.CudaError as exc:
                errors.append(str(exc))
        self._context = None
        self._engine = None
        for buf in self._buffers:
            try:
                buf.free()
            except cuda.CudaError as exc:
                errors.append(str(exc))
        self._buffers = []
        if self._stream is not None:
            try:
                self._stream.destroy()
            except cuda.CudaError as exc:
                errors.append(str(exc))
            self._stream = None
        if errors:
            raise RuntimeError("; ".join(errors))
