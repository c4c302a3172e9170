"""TensorRT backend: the pure parts for real on any machine; the engine path only where tensorrt and a
GPU exist (marked ``tensorrt`` and ``gpu``, skipped elsewhere; never faked)."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from runtime import cuda
from runtime.backends.base import BackendUnavailable, ModelFiles
from runtime.backends.tensorrt import TensorRTBackend, resolve_io, sidecar_problems_for_here
from runtime.engine_profile import Chunk, Profile, check_input, default_profile, parse_shape, plan_batches
from runtime.spec import ModelSpec

SPEC = ModelSpec(depth=6)
PROFILE = Profile((2, 64, 64), (8, 256, 256), (8, 512, 512))


def test_plan_splits_and_pads_to_the_profile():
    assert plan_batches(20, 256, 256, PROFILE) == [Chunk(0, 8, 8), Chunk(8, 16, 8), Chunk(16, 20, 4)]
    assert plan_batches(1, 64, 512, PROFILE) == [Chunk(0, 1, 2)]  # padded up to min batch 2
    assert plan_batches(9, 128, 128, PROFILE) == [Chunk(0, 8, 8), Chunk(8, 9, 2)]
    assert plan_batches(8, 512, 512, PROFILE) == [Chunk(0, 8, 8)]


@pytest.mark.parametrize("h, w", [(576, 256), (256, 1024)])
def test_plan_rejects_sizes_outside_the_profile(h, w):
    with pytest.raises(ValueError, match=f"input {h}x{w} is outside the engine's profile .*--max"):
        plan_batches(1, h, w, PROFILE)


def test_plan_rejects_empty_batch():
    with pytest.raises(ValueError, match="at least one image"):
        plan_batches(0, 64, 64, PROFILE)


def test_profile_round_trips_and_reads_engine_shapes():
    assert Profile.from_dict(PROFILE.to_dict()) == PROFILE
    assert PROFILE.input_shapes() == ((2, 1, 64, 64), (8, 1, 256, 256), (8, 1, 512, 512))
    assert Profile.from_nchw(PROFILE.input_shapes()) == PROFILE
    assert parse_shape(" 4 x 128X256 ") == (4, 128, 256)
    assert default_profile(64, 1000, 4) == Profile((1, 64, 64), (1, 256, 256), (4, 960, 960))
    assert default_profile(256, 128, 1).max == (1, 256, 256)  # never below one size multiple


def test_io_names_come_from_the_spec():
    assert resolve_io([("L", True), ("ab", False)], SPEC) == ("L", "ab")
    assert resolve_io([("ab", False), ("L", True)], SPEC) == ("L", "ab")
    for tensors in ([("input", True), ("ab", False)], [("L", True), ("out", False)], [("L", True), ("x", True), ("ab", False)]):
        with pytest.raises(BackendUnavailable, match="engine I/O does not match the model spec"):
            resolve_io(tensors, SPEC)


def test_input_checks():
    L = np.zeros((2, 1, 64, 128), np.float64)
    out = check_input(L, SPEC)
    assert out.dtype == np.float32 and out.flags.c_contiguous
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        check_input(np.zeros((1, 2, 64, 64), np.float32), SPEC)
    with pytest.raises(ValueError, match="multiples of 64, got 64x100"):
        check_input(np.zeros((1, 1, 64, 100), np.float32), SPEC)


def test_user_engine_must_match_this_gpu_and_tensorrt():
    meta = {"tensorrt_version": "10.13.0.35", "gpu_name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}
    assert sidecar_problems_for_here(meta, "10.13.0.35", "NVIDIA H100 80GB HBM3", "9.0") == []
    problems = sidecar_problems_for_here(meta, "11.4.0.1", "NVIDIA L4", "8.9")
    assert problems == ["built with TensorRT 10.13.0.35, this is 11.4.0.1",
                        "built for NVIDIA H100 80GB HBM3 (sm 9.0), this is NVIDIA L4 (sm 8.9)"]


def test_check_says_why_it_is_unavailable():
    if importlib.util.find_spec("tensorrt") is None:
        with pytest.raises(BackendUnavailable, match=r"tensorrt is not installed \(pip install 'colorize-gan\[tensorrt\]'\)"):
            TensorRTBackend.check()
    elif cuda.probe():
        with pytest.raises(BackendUnavailable, match=cuda.probe()[:20]):
            TensorRTBackend.check()
    else:
        TensorRTBackend.check()


# -- real TensorRT (never runs on the project's machines) ----------------------------------------------

def _require_tensorrt_gpu():
    pytest.importorskip("tensorrt", reason="tensorrt is not installed (it cannot be on CPU CI; see docs/gpu.md)")
    reason = cuda.probe()
    if reason:
        pytest.skip(f"no usable GPU: {reason}")


def _tiny_bundle(tmp_path) -> ModelFiles:
    """A random small model exported with the trainer's exporter (FP32 + FP16-typed ONNX)."""
    import torch
    from safetensors.torch import save_file

    from runtime.generator import UNetGenerator
    from runtime.models import resolve
    from trainer.export_onnx import export_bundle

    torch.manual_seed(0)
    spec = ModelSpec(ngf=8, depth=5)
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "spec.json").write_text(spec.to_json())
    save_file(UNetGenerator(spec).state_dict(), str(ckpt / "generator.safetensors"))
    export_bundle(ckpt, tmp_path / "tiny")
    return resolve(str(tmp_path / "tiny.json"))


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_engine_matches_onnxruntime_cpu(tmp_path, monkeypatch):
    _require_tensorrt_gpu()
    from runtime.backends.onnxruntime import OnnxRuntimeBackend

    monkeypatch.setenv("COLORIZE_GAN_CACHE", str(tmp_path / "cache"))
    files = _tiny_bundle(tmp_path)
    rng = np.random.default_rng(0)
    L = rng.uniform(0, 100, (19, 1, 128, 96)).astype(np.float32)  # 19 > max batch 16: split and padded
    ref = OnnxRuntimeBackend(files).run(L)
    with TensorRTBackend(files, log=lambda m: None) as trt_backend:
        got = trt_backend.run(L)
        assert trt_backend.engine_path.exists()
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() < 1.0  # FP16 engine vs FP32 ORT, ab units
    with TensorRTBackend(files, log=lambda m: None) as again:  # loads from the cache, no rebuild
        np.testing.assert_allclose(again.run(L[:1]), got[:1], atol=1e-3)
