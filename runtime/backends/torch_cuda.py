"""torch-CUDA backend: the generator in FP16 (or bf16), channels_last, inference mode, CUDA graphs.

For users with a CUDA build of torch but no TensorRT. The served module is prepared once:
BatchNorm folded into the preceding (transposed) convolutions (eval mode makes BN an affine map),
InstanceNorm kept in FP32 (its FP16 accuracy problems are known: ORT #10079, TensorRT #2691),
everything else cast to the half type and laid out channels_last (tensor-core convolutions want
NHWC). The L scaling before the network and the ab scaling after it stay in FP32, and so does the
scaling of a hint model's hint input ([a, b, mask] in Lab units -> [a/ab_scale, b/ab_scale, mask]);
no hints means zeros, the automatic result. The EfficientNet-Lite0 generator's BatchNorms sit outside
nn.Sequential and are folded through its ``BN_PAIRS`` (runtime.model.generator.fold_batchnorm).

CUDA graphs pay off where launch overhead dominates (small batches, small images, video frames of
one size): the first ``graph_after - 1`` calls with a shape run eagerly (they also let cuDNN pick
its kernels), the next one captures a graph for that shape and later calls replay it. A hint model's
graph has a static hint buffer beside the static L: real hints are copied in, and it is zeroed for a
call without hints (so hints never leak into the next call). A few shapes' graphs are kept (LRU).
torch.compile is not used: minutes of compile time on first use for what graphs already remove.

Settings: ``COLORIZE_GAN_TORCH_DTYPE`` (float16 | bfloat16), ``COLORIZE_GAN_CUDA_GRAPHS`` (0 disables),
``COLORIZE_GAN_CUDA_DEVICE`` (index).
"""
from __future__ import annotations

import importlib.util
import os
import re
from collections import OrderedDict

import numpy as np

from .gpu import cuda
from .gpu.engine_profile import HINT_CHANNELS, check_inputs
from .base import Backend, BackendUnavailable, ModelFiles

DTYPES = ("float16", "bfloat16")
MAX_GRAPHS = 6


def make_forward(generator, spec, dtype, channels_last: bool = True):
    """``forward(L, hints=None)``: L (N,1,H,W) float32 in [0, 100] [+ hints (N,3,H,W) float32, a, b in Lab
    units and a 0/1 mask] -> ab float32, with the scaling in FP32 around the half network, as
    runtime.model.generator.LabColorizer does it. For a hint model, no hints means zeros; a model without
    hint inputs ignores ``hints`` (the backend refuses them before this point)."""
    import torch

    from ..model.generator import scale_hints

    fmt = torch.channels_last if channels_last else torch.contiguous_format
    l_scale, l_shift, ab_scale = float(spec.l_scale), float(spec.l_shift), float(spec.ab_scale)
    ab_out = ab_scale * float(spec.ab_gain)  # the served chroma gain, as in LabColorizer
    takes_hints = bool(spec.hints)

    def forward(L, hints=None):
        x = (L / l_scale - l_shift).to(dtype).contiguous(memory_format=fmt)
        if not takes_hints:
            return generator(x).float() * ab_out
        if hints is None:
            h = torch.zeros((L.shape[0], HINT_CHANNELS, L.shape[2], L.shape[3]), dtype=dtype, device=L.device)
        else:
            h = scale_hints(hints, spec).to(dtype)
        return generator(x, h.contiguous(memory_format=fmt)).float() * ab_out

    return forward


def _torch_is_cpu_build() -> bool:
    """True when torch's generated version.py says ``cuda = None``, read without importing torch."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return False
    try:
        text = open(os.path.join(list(spec.submodule_search_locations)[0], "version.py"), encoding="utf-8").read()
    except OSError:
        return False  # unknown layout: let the import decide
    return re.search(r"^cuda(: Optional\[str\])? = None$", text, re.M) is not None


class _Graph:
    """One captured CUDA graph of ``forward`` for a fixed L shape, with static in/out tensors; with
    ``hints`` also a static (N,3,H,W) hint buffer, fed on every call (copied in, or zeroed)."""

    def __init__(self, torch, forward, shape, device, hints: bool = False):
        self.static_in = torch.zeros(shape, device=device, dtype=torch.float32)
        self.static_hints = None
        if hints:
            self.static_hints = torch.zeros((shape[0], HINT_CHANNELS, *shape[2:]), device=device, dtype=torch.float32)
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):  # warm-up off the capture stream, as torch's docs require
            for _ in range(2):
                forward(self.static_in, self.static_hints)
        torch.cuda.current_stream(device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.static_out = forward(self.static_in, self.static_hints)

    def __call__(self, x, hints=None):
        self.static_in.copy_(x, non_blocking=True)
        if self.static_hints is not None:
            # The buffer keeps the last call's hints: overwrite it every time, with zeros when there are none.
            if hints is None:
                self.static_hints.zero_()
            else:
                self.static_hints.copy_(hints, non_blocking=True)
        self.graph.replay()
        return self.static_out


class TorchCUDABackend(Backend):
    name = "torch-cuda"
    device = "cuda"

    @classmethod
    def check(cls, need_safetensors: bool = True) -> None:
        for mod in ("torch", "safetensors") if need_safetensors else ("torch",):
            if importlib.util.find_spec(mod) is None:
                raise BackendUnavailable(f"{mod} is not installed (pip install 'colorize-gan[torch]' with a CUDA build of torch)")
        # Cheap answers first: importing torch takes seconds (per GIMP worker start, per CLI run).
        # libcudart answers "no driver" in milliseconds; torch's version.py tells a CPU-only build.
        reason = cuda.no_driver_reason()
        if reason:
            raise BackendUnavailable(reason)
        if _torch_is_cpu_build():
            raise BackendUnavailable("the installed torch is a CPU-only build (torch.version.cuda is None)")
        import torch

        if torch.version.cuda is None:
            raise BackendUnavailable(f"torch {torch.__version__} is a CPU-only build")
        if not torch.cuda.is_available():
            raise BackendUnavailable(f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no usable GPU")

    def __init__(
        self,
        files: ModelFiles,
        threads: int | None = None,
        *,
        dtype: str | None = None,
        cuda_graphs: bool | None = None,
        graph_after: int = 2,
        device: int | None = None,
        generator=None,
    ):
        """``generator``: an already loaded generator (benchmarks, tests; ``runtime.model.generator.build_generator``'s
        kind) instead of ``files.weights``."""
        self.check(need_safetensors=generator is None)
        import torch

        dtype = dtype or os.environ.get("COLORIZE_GAN_TORCH_DTYPE", "float16")
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
        if cuda_graphs is None:
            cuda_graphs = os.environ.get("COLORIZE_GAN_CUDA_GRAPHS", "1") != "0"
        if device is None:
            device = int(os.environ.get("COLORIZE_GAN_CUDA_DEVICE", "0"))
        self._torch = torch
        self.spec = files.spec
        self.dtype = dtype
        self.cuda_graphs = bool(cuda_graphs)
        self.graph_after = max(1, int(graph_after))
        self._device = torch.device("cuda", device)
        if generator is None:
            if not files.weights:
                raise BackendUnavailable("the model has no .safetensors weights")
            from .torch_cpu import build_lab_colorizer

            generator = build_lab_colorizer(files).generator
        # cuDNN autotuning: one slow first call per shape, then the fastest kernels.
        torch.backends.cudnn.benchmark = True
        from ..model.generator import prepare_generator

        gen = prepare_generator(generator.to(self._device), getattr(torch, dtype))
        self._forward = make_forward(gen, self.spec, getattr(torch, dtype))
        self._generator = gen
        self._graphs: OrderedDict = OrderedDict()
        self._seen: dict = {}

    def _run_device(self, x, hints=None):
        """x: float32 (N,1,H,W) on the GPU [+ hints float32 (N,3,H,W) on the GPU] -> ab float32 on the GPU
        (graph or eager)."""
        shape = tuple(x.shape)
        if self.cuda_graphs:
            graph = self._graphs.get(shape)
            if graph is None:
                self._seen[shape] = self._seen.get(shape, 0) + 1
                if self._seen[shape] >= self.graph_after:
                    graph = _Graph(self._torch, self._forward, shape, self._device, hints=bool(self.spec.hints))
                    self._graphs[shape] = graph
                    while len(self._graphs) > MAX_GRAPHS:
                        self._graphs.popitem(last=False)
            else:
                self._graphs.move_to_end(shape)
            if graph is not None:
                return graph(x, hints)
        return self._forward(x, hints)

    def run(self, L: np.ndarray, hints: np.ndarray | None = None) -> np.ndarray:
        torch = self._torch
        L, hints = check_inputs(L, hints, self.spec)
        with torch.inference_mode(), torch.cuda.device(self._device):
            x = torch.from_numpy(L).pin_memory().to(self._device, non_blocking=True)
            h = None if hints is None else torch.from_numpy(hints).pin_memory().to(self._device, non_blocking=True)
            ab = self._run_device(x, h)
            # Pinned output from torch's caching host allocator: a fast async copy, and the numpy
            # array keeps the tensor (and so the memory) alive.
            out = torch.empty(ab.shape, dtype=torch.float32, pin_memory=True)
            out.copy_(ab, non_blocking=True)
            torch.cuda.current_stream(self._device).synchronize()
        return out.numpy()

    def close(self) -> None:
        # Dropping the graphs returns their memory pools to torch's caching allocator.
        getattr(self, "_graphs", {}).clear()
        self._generator = self._forward = None
