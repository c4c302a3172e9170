"""torch-CUDA backend: model preparation (BN folding, FP32 norms, half types, channels_last), the hint
input's scaling and the CUDA graph's static hint buffer, tested on the CPU for real; the backend itself
only where torch sees a GPU (marked ``gpu``)."""
from __future__ import annotations

import copy
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from runtime.backends.base import BackendUnavailable, ModelFiles  # noqa: E402
from runtime.backends.torch_cuda import TorchCUDABackend, _Graph, make_forward  # noqa: E402
from runtime.model.generator import FP32Norm, fold_batchnorm, prepare_generator  # noqa: E402
from runtime.model.generator import LabColorizer, build_generator  # noqa: E402
from runtime.model.spec import ModelSpec  # noqa: E402

HINT_SPEC = ModelSpec(encoder="efficientnet-lite0", hints=True, fusion_dim=16)


def _generator(norm: str, seed: int = 0):
    """A small generator with non-trivial BN statistics and outputs spanning a realistic ab range."""
    torch.manual_seed(seed)
    g = build_generator(ModelSpec(ngf=8, depth=5, norm=norm))  # the U-Net
    for m in g.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 2.0)
    if norm == "batch":  # random init with BN gives ab near 0 (max ~3); widen to ~30 so tolerances mean something
        with torch.no_grad():
            g.up[0][1].weight.mul_(10.0)
    return g.eval()


def _L(n=2, h=64, w=96):
    return torch.rand(n, 1, h, w, generator=torch.Generator().manual_seed(1)) * 100


def _hint_generator(seed: int = 0):
    from conftest import random_hint_generator

    return random_hint_generator(HINT_SPEC, seed)


def _hints(n=2, h=64, w=96, seed=2):
    """[a, b, mask] in Lab units: a few 8x8 colour patches per image."""
    gen = torch.Generator().manual_seed(seed)
    hints = torch.zeros(n, 3, h, w)
    for i in range(n):
        for _ in range(3):
            y, x = (int(v) for v in torch.randint(0, min(h, w) - 8, (2,), generator=gen))
            hints[i, :2, y:y + 8, x:x + 8] = (torch.rand(2, 1, 1, generator=gen) - 0.5) * 120
            hints[i, 2, y:y + 8, x:x + 8] = 1.0
    return hints


def test_fold_batchnorm_is_exact_in_fp32():
    g = _generator("batch")
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in g.modules())
    with torch.inference_mode():
        want = LabColorizer(g)(_L())
        folded = copy.deepcopy(g)
        assert fold_batchnorm(folded) == n_bn  # every BN here follows a conv
        assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
        got = LabColorizer(folded)(_L())
    assert want.abs().max() > 20
    assert (got - want).abs().max() < 1e-3


@pytest.mark.parametrize("norm", ["batch", "instance"])
# bf16 keeps 8 mantissa bits to FP16's 11: several ab units of worst-case error over a +-110 range.
@pytest.mark.parametrize("dtype, tol", [(torch.float16, 0.5), (torch.bfloat16, 4.0)])
def test_prepared_half_model_matches_fp32(norm, dtype, tol):
    """The same preparation the GPU uses, run on the CPU: max |delta ab| within FP16/bf16 tolerance."""
    g = _generator(norm)
    with torch.inference_mode():
        want = LabColorizer(g)(_L())
        prepared = prepare_generator(copy.deepcopy(g), dtype)
        got = make_forward(prepared, g.spec, dtype)(_L())
    assert got.dtype == torch.float32 and want.abs().max() > 20
    delta = (got - want).abs().max().item()
    assert delta < tol, f"max |delta ab| {delta:.3f} for {dtype} {norm}"


def test_norms_stay_fp32_convs_go_half_channels_last():
    prepared = prepare_generator(_generator("instance"), torch.float16)
    norms = [m for m in prepared.modules() if isinstance(m, nn.InstanceNorm2d)]
    convs = [m for m in prepared.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert norms and all(p.dtype == torch.float32 for m in norms for p in m.parameters())
    assert all(m.weight.dtype == torch.float16 for m in convs)
    big = [m.weight for m in convs if m.weight.shape[1] > 1 and m.weight.shape[2] > 1]
    assert big and all(w.is_contiguous(memory_format=torch.channels_last) for w in big)


def test_prepared_efficientnet_generator_folds_every_batchnorm():
    """The encoder's BatchNorms sit outside nn.Sequential: folded through BN_PAIRS, none left to run in FP16."""
    g = _hint_generator()
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in g.modules())
    prepared = prepare_generator(copy.deepcopy(g), torch.float16)
    assert n_bn > 40 and not any(isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d, nn.GroupNorm)) for m in prepared.modules())
    # any norm that did remain would be wrapped to run in FP32; every other parameter is half
    fp32 = {id(p) for m in prepared.modules() if isinstance(m, FP32Norm) for p in m.parameters()}
    assert all(p.dtype == torch.float16 for p in prepared.parameters() if id(p) not in fp32)
    convs = [m for m in prepared.modules() if isinstance(m, nn.Conv2d) and m.weight.shape[2] > 1]
    assert convs and all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)


@pytest.mark.parametrize("dtype, tol", [(torch.float16, 0.5), (torch.bfloat16, 4.0)])
def test_prepared_hint_model_matches_fp32_with_and_without_hints(dtype, tol):
    g = _hint_generator()
    L, hints = _L(), _hints()
    with torch.inference_mode():
        served = LabColorizer(copy.deepcopy(g))
        want_auto, want_hints = served(L), served(L, hints)
        forward = make_forward(prepare_generator(copy.deepcopy(g), dtype), g.spec, dtype)
        got_auto, got_hints, got_zeros = forward(L), forward(L, hints), forward(L, torch.zeros_like(hints))
    assert (want_hints - want_auto).abs().max() > 5  # the hints matter, so the comparison with them means something
    for got, want in ((got_auto, want_auto), (got_hints, want_hints), (got_zeros, want_auto)):
        assert got.dtype == torch.float32 and got.shape == (2, 2, 64, 96)
        delta = (got - want).abs().max().item()
        assert delta < tol, f"max |delta ab| {delta:.3f} for {dtype}"
    assert torch.equal(got_auto, got_zeros)  # no hints is exactly zeros


def test_forward_of_a_hintless_model_ignores_the_hint_slot():
    g = _generator("batch")
    forward = make_forward(copy.deepcopy(g), g.spec, torch.float32, channels_last=False)
    with torch.inference_mode():
        assert torch.equal(forward(_L()), forward(_L(), None))


def _cpu_graph(forward, shape, hints: bool):
    """A _Graph whose 'replay' recomputes ``forward`` from the static buffers, as a captured graph would: CUDA
    graphs cannot be captured on the CPU, but what the graph is fed can be checked."""
    g = _Graph.__new__(_Graph)
    g.static_in = torch.zeros(shape)
    g.static_hints = torch.zeros(shape[0], 3, *shape[2:]) if hints else None
    g.static_out = forward(g.static_in, g.static_hints)
    g.graph = SimpleNamespace(replay=lambda: g.static_out.copy_(forward(g.static_in, g.static_hints)))
    return g


def test_graph_hint_buffer_is_refilled_on_every_call():
    """A graph's static hint buffer keeps the last hints: a call without hints must zero it, not reuse them."""
    gen = _hint_generator()
    forward = make_forward(prepare_generator(copy.deepcopy(gen), torch.float32, channels_last=False), gen.spec,
                           torch.float32, channels_last=False)
    L, hints = _L(), _hints()
    with torch.inference_mode():
        auto, with_hints = forward(L), forward(L, hints)
        graph = _cpu_graph(forward, tuple(L.shape), hints=True)
        assert torch.allclose(graph(L, hints).clone(), with_hints, atol=1e-4)
        assert torch.allclose(graph(L).clone(), auto, atol=1e-4)  # not the previous call's hints
        assert not graph.static_hints.any()
        assert torch.allclose(graph(L, hints).clone(), with_hints, atol=1e-4)
    plain = _generator("batch")
    fwd = make_forward(copy.deepcopy(plain), plain.spec, torch.float32, channels_last=False)
    with torch.inference_mode():
        g2 = _cpu_graph(fwd, tuple(L.shape), hints=False)
        assert g2.static_hints is None and torch.allclose(g2(L).clone(), fwd(L), atol=1e-4)


def test_check_answers_no_driver_without_importing_torch():
    """On a machine without an NVIDIA driver, check() answers from libcudart alone (fast)."""
    from runtime.backends.gpu import cuda

    if cuda.no_driver_reason() is None:
        pytest.skip("a driver is installed here (or no libcudart): torch must be asked")
    code = (
        "import sys\n"
        "from runtime.backends.torch_cuda import TorchCUDABackend\n"
        "from runtime.backends.base import BackendUnavailable\n"
        "try:\n    TorchCUDABackend.check()\nexcept BackendUnavailable as e:\n    print(e)\n"
        "print('torch imported' if 'torch' in sys.modules else 'torch not imported')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0].startswith("no NVIDIA driver") and out[1] == "torch not imported"


def test_unavailable_on_cpu_only_machines():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(BackendUnavailable):
        TorchCUDABackend.check()


@pytest.mark.gpu
def test_backend_matches_fp32_and_graphs_match_eager(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("torch sees no CUDA GPU")
    g = _generator("batch")
    L = _L(3, 128, 64).numpy()
    with torch.inference_mode():
        want = LabColorizer(copy.deepcopy(g))(torch.from_numpy(L)).numpy()
    files = ModelFiles(spec=g.spec)
    eager = TorchCUDABackend(files, generator=copy.deepcopy(g), cuda_graphs=False)
    graphed = TorchCUDABackend(files, generator=copy.deepcopy(g), cuda_graphs=True, graph_after=1)
    try:
        a = eager.run(L)
        b = [graphed.run(L) for _ in range(3)]  # captured on the first call, replayed after
        assert len(graphed._graphs) == 1
        assert np.abs(a - want).max() < 1.0
        for x in b:
            np.testing.assert_allclose(x, a, atol=0.05)
        assert graphed.run(L[:1]).shape == (1, 2, 128, 64)  # another shape, another graph
    finally:
        eager.close()
        graphed.close()


@pytest.mark.gpu
@pytest.mark.parametrize("cuda_graphs", [False, True])
def test_hint_model_matches_onnxruntime_cpu(request, cuda_graphs):
    """A model with colour hints (conftest's hint_bundle: efficientnet-lite0, random weights) on the torch-CUDA
    backend, FP16, eager or from a CUDA graph, against ONNX Runtime CPU FP32: with hints, without (zeros), and
    without after with (the graph's static hint buffer must not keep the last hints)."""
    if not torch.cuda.is_available():
        pytest.skip("torch sees no CUDA GPU")
    from runtime.backends.onnxruntime import OnnxRuntimeBackend
    from runtime.model.bundle import resolve

    files = resolve(str(request.getfixturevalue("hint_bundle")))  # exported only where the test runs
    L, hints = _L(3, 128, 64).numpy(), _hints(3, 128, 64).numpy()
    ort = OnnxRuntimeBackend(files)
    ref_auto, ref_hints = ort.run(L), ort.run(L, hints)
    assert np.abs(ref_hints - ref_auto).max() > 5.0
    backend = TorchCUDABackend(files, cuda_graphs=cuda_graphs, graph_after=1)
    try:
        got = [backend.run(L, hints), backend.run(L), backend.run(L, hints), backend.run(L)]
        assert len(backend._graphs) == (1 if cuda_graphs else 0)  # one shape, one graph, whatever the hints
    finally:
        backend.close()
    for out, ref in zip(got, (ref_hints, ref_auto, ref_hints, ref_auto)):
        assert np.abs(out - ref).max() < 1.0  # FP16 vs FP32, ab units
    np.testing.assert_allclose(got[3], got[1], atol=1e-3)


def test_cpu_build_detected_without_importing_torch():
    """check() answers from torch's version.py on a CPU-only build (no multi-second torch import)."""
    import subprocess
    import sys

    from runtime.backends.torch_cuda import _torch_is_cpu_build

    assert _torch_is_cpu_build() == (torch.version.cuda is None)
    code = ("import sys\nfrom runtime.backends.torch_cuda import TorchCUDABackend\n"
            "try:\n    TorchCUDABackend.check()\nexcept Exception as e:\n    print(e)\n"
            "print('imported' if 'torch' in sys.modules else 'not imported')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    if torch.version.cuda is None:  # answered by libcudart ("no driver") or by version.py, never by importing torch
        assert ("CPU-only build" in out or "no NVIDIA driver" in out) and "not imported" in out
