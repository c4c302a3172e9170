"""TensorRT backend: an FP16 engine driven through the cffi libcudart binding (no torch, no pycuda).

The engine comes from ``COLORIZE_GAN_TRT_ENGINE`` (one built by tools/build_engine.py; its sidecar
must match this GPU and TensorRT) or from the per-user engine cache, built there from the bundle's
FP16-typed ONNX on first use (minutes; later runs load it in about a second). Inputs and outputs
are found by the spec's tensor names (TensorRT 10/11 name-based I/O, no binding indices): L, the
hint input of a model that takes colour hints, and ab. ``EngineRunner`` drives a loaded engine:
pinned host and device buffers allocated once at the profile's max shape (one pair per tensor);
each batch is split or padded to the profile (runtime/backends/gpu/engine_profile.py), both inputs' shapes are
set per chunk, and it runs with ``execute_async_v3`` on the runner's own stream. A hint model given
no hints gets zeros (a device memset, no copy): the automatic result; padding rows are zeros too.
``close()`` frees every buffer.

Never run on the project's machines (TensorRT cannot be installed there): the pure parts and the
runner (against fakes of the TensorRT engine and of libcudart) are tested on CPU, the real engine
only where tensorrt and a GPU exist (tests/test_tensorrt.py).
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .gpu import cuda
from .gpu.engine_profile import HINT_CHANNELS, Profile, check_inputs, default_profile, model_inputs, plan_batches
from ..model.spec import ModelSpec
from .base import Backend, BackendUnavailable, ModelFiles

ENV_ENGINE = "COLORIZE_GAN_TRT_ENGINE"
ENV_DEVICE = "COLORIZE_GAN_CUDA_DEVICE"
# Default profile for cached engines: any render size up to 1024 px, batches up to 16 (video, GIMP frames).
DEFAULT_MAX_SIZE, DEFAULT_MAX_BATCH = 1024, 16


class IONames(NamedTuple):
    """The engine's tensor names: L, the hint input (None for a model without one) and ab."""

    input: str
    hints: str | None
    output: str


def resolve_io(tensors: list[tuple[str, bool]], spec: ModelSpec) -> IONames:
    """The I/O names from the engine's tensors [(name, is_input)], checked against the spec: exactly the
    model's inputs (L, plus the hint input when ``spec.hints``) and its one output."""
    inputs = [n for n, is_in in tensors if is_in]
    outputs = [n for n, is_in in tensors if not is_in]
    want = [name for name, _ in model_inputs(spec)]
    if sorted(inputs) != sorted(want) or outputs != [spec.output_name]:
        raise BackendUnavailable(
            f"engine I/O does not match the model spec: engine inputs {inputs}, outputs {outputs}; "
            f"spec wants input{'s' if len(want) > 1 else ''} {', '.join(map(repr, want))} and output {spec.output_name!r}"
            + ("" if len(inputs) == len(want) else
               f" (an engine built for a model {'with' if len(inputs) > len(want) else 'without'} colour hints?)")
        )
    return IONames(spec.input_name, spec.hint_name if spec.hints else None, spec.output_name)


def sidecar_problems_for_here(meta: dict, trt_version: str, gpu_name: str, capability: str,
                              inputs: tuple[tuple[str, int], ...] | None = None) -> list[str]:
    """Why a user-supplied engine (with sidecar ``meta``) cannot run with this TensorRT on this GPU, or for
    a model with ``inputs`` (``engine_profile.model_inputs(spec)``; None: not checked)."""
    problems = []
    if inputs is not None and meta.get("inputs") != [[name, channels] for name, channels in inputs]:
        problems.append(f"built for inputs {meta.get('inputs')}, the model takes {[[n, c] for n, c in inputs]}")
    if meta.get("tensorrt_version") != trt_version:
        problems.append(f"built with TensorRT {meta.get('tensorrt_version')}, this is {trt_version}")
    if meta.get("compute_capability") != capability or meta.get("gpu_name") != gpu_name:
        problems.append(f"built for {meta.get('gpu_name')} (sm {meta.get('compute_capability')}), this is {gpu_name} (sm {capability})")
    return problems


class EngineRunner:
    """Runs a deserialized engine for ``spec``: I/O resolved by name, buffers for the profile's max shape,
    batches split/padded to the profile. Needs only the engine's TensorRT API and a runtime.backends.gpu.cuda.CudaRuntime
    (``rt``), so it is tested against fakes of both."""

    def __init__(self, trt, rt, engine, spec: ModelSpec):
        self.rt, self.spec = rt, spec
        self._buffers: list = []
        self._stream = self._context = None
        try:
            self._setup(trt, engine)
        except BaseException:
            self.close()
            raise

    def _setup(self, trt, engine) -> None:
        tensors = []
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            tensors.append((name, engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT))
        self.io = resolve_io(tensors, self.spec)
        for name in (n for n in self.io if n):
            if engine.get_tensor_dtype(name) != trt.DataType.FLOAT:
                raise BackendUnavailable(f"engine tensor {name!r} is {engine.get_tensor_dtype(name)}, expected FP32 I/O")
        self.profile = Profile.from_nchw(engine.get_tensor_profile_shape(self.io.input, 0))
        if self.io.hints:  # the hint input is the same image: its profile must be L's batch, H and W with 3 channels
            shapes = [tuple(int(v) for v in s) for s in engine.get_tensor_profile_shape(self.io.hints, 0)]
            if Profile.from_nchw(shapes) != self.profile or any(s[1] != HINT_CHANNELS for s in shapes):
                raise BackendUnavailable(
                    f"engine profile of {self.io.hints!r} {shapes} is not {self.io.input!r}'s {self.profile.to_dict()} with "
                    f"{HINT_CHANNELS} channels; rebuild it with tools/build_engine.py"
                )
        self._context = engine.create_execution_context()
        if self._context is None:
            raise BackendUnavailable("TensorRT could not create an execution context (out of GPU memory?)")
        self._stream = self.rt.stream()
        n, h, w = self.profile.max
        plane = n * h * w * 4  # bytes of one float32 channel at the max shape
        self._d_in, self._h_in = self._alloc(self.io.input, plane)
        self._d_out, self._h_out = self._alloc(self.io.output, 2 * plane)
        if self.io.hints:
            self._d_hints, self._h_hints = self._alloc(self.io.hints, HINT_CHANNELS * plane)

    def _alloc(self, name: str, nbytes: int):
        """A device buffer bound to tensor ``name`` and its pinned host staging buffer."""
        d = self.rt.malloc(nbytes)
        self._buffers.append(d)
        host = self.rt.host_alloc(nbytes)
        self._buffers.append(host)
        # Addresses never change (buffers sized for the max shape), so bind them once.
        self._context.set_tensor_address(name, d.ptr)
        return d, host

    def _set_shape(self, name: str, shape: tuple[int, ...]) -> None:
        if not self._context.set_input_shape(name, shape):
            raise RuntimeError(f"TensorRT rejected input shape {shape} of {name!r} for profile {self.profile.to_dict()}")

    def _stage(self, host, device, shape: tuple[int, ...], rows: np.ndarray) -> None:
        """Copy ``rows`` into the first rows of a (run_n, C, H, W) batch, zeros after (padding), and on to the device."""
        staged = host.array(shape)
        k = len(rows)
        staged[:k] = rows
        staged[k:] = 0.0  # padding rows up to the profile's min batch; their output is dropped
        self.rt.memcpy_async(device.ptr, host.ptr, staged.nbytes, cuda.MEMCPY_HOST_TO_DEVICE, self._stream)

    def run(self, L: np.ndarray, hints: np.ndarray | None = None) -> np.ndarray:
        L, hints = check_inputs(L, hints, self.spec)
        n, _, h, w = L.shape
        out = np.empty((n, 2, h, w), np.float32)
        rt, ctx, stream, io = self.rt, self._context, self._stream, self.io
        for chunk in plan_batches(n, h, w, self.profile):
            k, rows = chunk.stop - chunk.start, slice(chunk.start, chunk.stop)
            shape = (chunk.run_n, 1, h, w)
            self._set_shape(io.input, shape)
            self._stage(self._h_in, self._d_in, shape, L[rows])
            if io.hints:
                hint_shape = (chunk.run_n, HINT_CHANNELS, h, w)
                self._set_shape(io.hints, hint_shape)
                if hints is None:  # no hints: zeros, the automatic result (a memset on the device, nothing copied)
                    rt.memset_async(self._d_hints.ptr, 0, chunk.run_n * HINT_CHANNELS * h * w * 4, stream)
                else:
                    self._stage(self._h_hints, self._d_hints, hint_shape, hints[rows])
            if not ctx.execute_async_v3(stream.handle):
                raise RuntimeError("TensorRT execute_async_v3 failed (see the TensorRT log)")
            nbytes = k * 2 * h * w * 4
            rt.memcpy_async(self._h_out.ptr, self._d_out.ptr, nbytes, cuda.MEMCPY_DEVICE_TO_HOST, stream)
            stream.synchronize()
            out[rows] = self._h_out.array((k, 2, h, w))
        return out

    def close(self) -> None:
        """Free every buffer and the stream; raises RuntimeError naming what failed (after trying all). Safe twice."""
        # The context goes first: TensorRT may still hold work that references our buffers.
        errors = []
        if self._stream is not None:
            try:  # a run that raised may have left copies queued on our buffers
                self._stream.synchronize()
            except cuda.CudaError as exc:
                errors.append(str(exc))
        self._context = None
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
        self._runner = None
        self._engine = None
        self.spec = files.spec
        self.rt = cuda.load()
        self.device_index = int(os.environ.get(ENV_DEVICE, "0"))
        self.rt.set_device(self.device_index)
        import tensorrt as trt

        self._trt = trt
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)  # kept: an engine must not outlive its runtime
        engine_path = engine_path or os.environ.get(ENV_ENGINE)
        try:
            self._engine, self.engine_path = (
                self._load_user_engine(engine_path) if engine_path else self._load_cached_engine(files, log)
            )
            self._runner = EngineRunner(trt, self.rt, self._engine, self.spec)
        except cuda.CudaError as exc:  # e.g. out of device memory: a reason to fall back, like the others
            self.close()
            raise BackendUnavailable(str(exc)) from None
        except BaseException:
            self.close()
            raise
        self.profile = self._runner.profile

    # -- engine -------------------------------------------------------------------------------------
    def _deserialize(self, data: bytes):
        return self._runtime.deserialize_cuda_engine(data)  # None on a TensorRT/GPU mismatch

    def _load_user_engine(self, path: str):
        from .gpu.engine_cache import read_sidecar, sidecar_mismatches

        try:
            meta = read_sidecar(path)
        except ValueError as exc:
            raise BackendUnavailable(f"{ENV_ENGINE}={path}: {exc}") from None
        gpu = self.rt.device_name(self.device_index)
        cap = "%d.%d" % self.rt.compute_capability(self.device_index)
        problems = sidecar_mismatches(meta, None, path) + sidecar_problems_for_here(
            meta, self._trt.__version__, gpu, cap, model_inputs(self.spec)
        )
        if problems:
            raise BackendUnavailable(f"{path}: {'; '.join(problems)} (rebuild with tools/build_engine.py)")
        engine = self._deserialize(Path(path).read_bytes())
        if engine is None:
            raise BackendUnavailable(f"TensorRT could not deserialize {path}; rebuild it with tools/build_engine.py")
        return engine, Path(path)

    def _load_cached_engine(self, files: ModelFiles, log):
        from .gpu.engine_cache import get_or_build
        from .gpu.trt_build import BuildError, build_engine, current_key

        if not files.onnx_fp16:
            raise BackendUnavailable("the model has no FP16-typed ONNX (NAME_fp16.onnx) to build an engine from")
        profile = default_profile(self.spec.size_multiple, DEFAULT_MAX_SIZE, DEFAULT_MAX_BATCH)
        key = current_key(self._trt.__version__, self.rt, self.device_index, files.onnx_fp16, profile, "fp16",
                          model_inputs(self.spec))
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

    # -- inference ---------------------------------------------------------------------------------
    def run(self, L: np.ndarray, hints: np.ndarray | None = None) -> np.ndarray:
        # The current CUDA device is per thread, and the batch runner calls run() from its network thread.
        self.rt.set_device(self.device_index)
        return self._runner.run(L, hints)

    def close(self) -> None:
        # The runner (context, buffers, stream) goes before the engine it runs.
        runner, self._runner = self._runner, None
        try:
            if runner is not None:
                runner.close()
        finally:
            self._engine = None
