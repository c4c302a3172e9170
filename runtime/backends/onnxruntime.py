"""ONNX Runtime backend (CPU): runs the FP32 ONNX of a model bundle.

The default on machines without a GPU: measured faster than torch eager on CPU (see
/work/shared/notes/tensorrt-onnx.md and docs/benchmarks.md). onnxruntime is imported only here.
"""
from __future__ import annotations

import importlib.util

import numpy as np

from ..errors import one_line
from .base import Backend, BackendUnavailable, ModelFiles, available_cores, hint_feed


def session_options(threads: int | None = None):
    """The CPU session options the runtime's ONNX Runtime sessions share: ``threads`` intra-op threads (default: the
    cores this process may use), one inter-op, sequential, all graph optimisations, no spinning idle threads (the CLI
    does decode/encode between runs on the same cores), warnings and errors only."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads or default_threads()
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return opts


def default_threads() -> int:
    """Cores this process may use (ORT wants physical cores, we cannot tell SMT apart cheaply)."""
    return available_cores()


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    device = "cpu"
    batch_invariant = True  # MLAS convolves each image of a batch alone (measured: tests/test_pipeline.py)

    @classmethod
    def check(cls) -> None:
        if importlib.util.find_spec("onnxruntime") is None:
            raise BackendUnavailable("onnxruntime is not installed (pip install onnxruntime)")

    def __init__(self, files: ModelFiles, threads: int | None = None):
        self.check()
        if not files.onnx:
            raise BackendUnavailable("the model has no FP32 .onnx file")
        import onnxruntime as ort

        try:
            self._session = ort.InferenceSession(files.onnx, session_options(threads), providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT's own exception types (InvalidProtobuf, Fail, ...)
            raise BackendUnavailable(f"cannot load {files.onnx}: {one_line(exc)}") from None
        self._in = files.spec.input_name
        self._out = files.spec.output_name
        self._spec = files.spec
        self._hints = files.spec.hint_name if files.spec.hints else None
        names = {i.name for i in self._session.get_inputs()}
        wanted = {self._in} | ({self._hints} if self._hints else set())
        if names != wanted:
            raise BackendUnavailable(f"{files.onnx} has inputs {sorted(names)}, the model spec wants {sorted(wanted)}")

    def run(self, L: np.ndarray, hints: np.ndarray | None = None) -> np.ndarray:
        L = np.ascontiguousarray(L, dtype=np.float32)
        feed = {self._in: L}
        h = hint_feed(L, hints, self._spec)
        if h is not None:
            feed[self._hints] = h
        return self._session.run([self._out], feed)[0]

    def close(self) -> None:
        self._session = None
