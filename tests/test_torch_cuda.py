"""torch-CUDA backend: model preparation (BN folding, FP32 norms, half types, channels_last) tested on
the CPU for real; the backend itself only where torch sees a GPU (marked ``gpu``)."""
from __future__ import annotations

import copy
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from runtime.backends.base import BackendUnavailable, ModelFiles  # noqa: E402
from runtime.backends.torch_cuda import TorchCUDABackend, make_forward  # noqa: E402
from runtime.generator import fold_batchnorm, prepare_generator  # noqa: E402
from runtime.generator import LabColorizer, UNetGenerator  # noqa: E402
from runtime.spec import ModelSpec  # noqa: E402


def _generator(norm: str, seed: int = 0) -> UNetGenerator:
    """A small generator with non-trivial BN statistics and outputs spanning a realistic ab range."""
    torch.manual_seed(seed)
    g = UNetGenerator(ModelSpec(ngf=8, depth=5, norm=norm))
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


def test_check_answers_no_driver_without_importing_torch():
    """On a machine without an NVIDIA driver, check() answers from libcudart alone (fast)."""
    from runtime import cuda

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
