"""TensorRT backend: the pure parts for real on any machine; the engine runner (buffers, shapes, copies,
hint zero-fill, padding) against fakes of TensorRT's engine/context API and of libcudart that keep real
bytes at fake addresses; the real engine only where tensorrt and a GPU exist (marked ``tensorrt`` and
``gpu``, skipped elsewhere)."""
from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import numpy as np
import pytest

from runtime.backends.gpu import cuda
from runtime.backends.base import BackendUnavailable, ModelFiles
from runtime.backends.tensorrt import EngineRunner, IONames, TensorRTBackend, resolve_io, sidecar_problems_for_here
from runtime.backends.gpu.engine_profile import (Chunk, Profile, check_input, check_inputs, default_profile, input_profiles, model_inputs,
                                    parse_shape, plan_batches)
from runtime.model.spec import ModelSpec

SPEC = ModelSpec(depth=6)
HINT_SPEC = ModelSpec(encoder="efficientnet-lite0", hints=True)  # size multiple 32
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


def test_profile_covers_every_input():
    assert model_inputs(SPEC) == (("L", 1),)
    assert model_inputs(HINT_SPEC) == (("L", 1), ("hints", 3))
    custom = ModelSpec(encoder="efficientnet-lite0", hints=True, input_name="luma", hint_name="colour_hints")
    assert model_inputs(custom) == (("luma", 1), ("colour_hints", 3))
    assert input_profiles(PROFILE, model_inputs(HINT_SPEC)) == {
        "L": ((2, 1, 64, 64), (8, 1, 256, 256), (8, 1, 512, 512)),
        "hints": ((2, 3, 64, 64), (8, 3, 256, 256), (8, 3, 512, 512)),  # the same batch, H and W as L
    }
    assert input_profiles(PROFILE, model_inputs(SPEC)) == {"L": PROFILE.input_shapes(1)}


def test_io_names_come_from_the_spec():
    assert resolve_io([("L", True), ("ab", False)], SPEC) == IONames("L", None, "ab")
    assert resolve_io([("ab", False), ("L", True)], SPEC) == IONames("L", None, "ab")
    for tensors in ([("input", True), ("ab", False)], [("L", True), ("out", False)], [("L", True), ("x", True), ("ab", False)]):
        with pytest.raises(BackendUnavailable, match="engine I/O does not match the model spec"):
            resolve_io(tensors, SPEC)


def test_io_names_with_hint_input():
    io = resolve_io([("hints", True), ("ab", False), ("L", True)], HINT_SPEC)
    assert io == IONames("L", "hints", "ab") and io.hints == "hints"
    custom = ModelSpec(encoder="efficientnet-lite0", hints=True, hint_name="h")
    assert resolve_io([("L", True), ("h", True), ("ab", False)], custom) == IONames("L", "h", "ab")
    with pytest.raises(BackendUnavailable, match=r"spec wants inputs 'L', 'hints' .*without colour hints\?"):
        resolve_io([("L", True), ("ab", False)], HINT_SPEC)  # a hint-less model's engine for a hint model
    with pytest.raises(BackendUnavailable, match=r"spec wants input 'L' and output 'ab' \(an engine built for a model with colour hints"):
        resolve_io([("L", True), ("hints", True), ("ab", False)], SPEC)
    with pytest.raises(BackendUnavailable, match="engine inputs \\['L', 'mask'\\]"):
        resolve_io([("L", True), ("mask", True), ("ab", False)], HINT_SPEC)  # two inputs, the wrong name


def test_input_checks():
    L = np.zeros((2, 1, 64, 128), np.float64)
    out = check_input(L, SPEC)
    assert out.dtype == np.float32 and out.flags.c_contiguous
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        check_input(np.zeros((1, 2, 64, 64), np.float32), SPEC)
    with pytest.raises(ValueError, match="multiples of 64, got 64x100"):
        check_input(np.zeros((1, 1, 64, 100), np.float32), SPEC)


def test_input_checks_with_hints():
    L = np.zeros((2, 1, 32, 64), np.float32)
    assert check_inputs(L, None, HINT_SPEC)[1] is None  # the backend feeds zeros
    _, h = check_inputs(L, np.ones((2, 3, 32, 64), np.float64), HINT_SPEC)
    assert h.dtype == np.float32 and h.flags.c_contiguous
    with pytest.raises(ValueError, match=r"hints must have shape \(2, 3, 32, 64\), got \(1, 3, 32, 64\)"):
        check_inputs(L, np.zeros((1, 3, 32, 64), np.float32), HINT_SPEC)
    with pytest.raises(ValueError, match="takes no colour hints"):
        check_inputs(np.zeros((1, 1, 64, 64), np.float32), np.zeros((1, 3, 64, 64), np.float32), SPEC)


def test_user_engine_must_match_this_gpu_and_tensorrt():
    meta = {"tensorrt_version": "10.13.0.35", "gpu_name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}
    assert sidecar_problems_for_here(meta, "10.13.0.35", "NVIDIA H100 80GB HBM3", "9.0") == []
    problems = sidecar_problems_for_here(meta, "11.4.0.1", "NVIDIA L4", "8.9")
    assert problems == ["built with TensorRT 10.13.0.35, this is 11.4.0.1",
                        "built for NVIDIA H100 80GB HBM3 (sm 9.0), this is NVIDIA L4 (sm 8.9)"]


def test_user_engine_must_match_the_models_inputs():
    here = ("10.13.0.35", "NVIDIA H100 80GB HBM3", "9.0")
    meta = {"tensorrt_version": here[0], "gpu_name": here[1], "compute_capability": here[2], "inputs": [["L", 1]]}
    assert sidecar_problems_for_here(meta, *here, model_inputs(SPEC)) == []
    assert sidecar_problems_for_here(meta, *here, model_inputs(HINT_SPEC)) == [
        "built for inputs [['L', 1]], the model takes [['L', 1], ['hints', 3]]"]
    old = {k: v for k, v in meta.items() if k != "inputs"}  # a sidecar from before hints: no record, no trust
    assert sidecar_problems_for_here(old, *here, model_inputs(SPEC)) == ["built for inputs None, the model takes [['L', 1]]"]


def test_check_says_why_it_is_unavailable():
    if importlib.util.find_spec("tensorrt") is None:
        with pytest.raises(BackendUnavailable, match=r"tensorrt is not installed \(pip install 'colorize-gan\[tensorrt\]'\)"):
            TensorRTBackend.check()
    elif cuda.probe():
        with pytest.raises(BackendUnavailable, match=cuda.probe()[:20]):
            TensorRTBackend.check()
    else:
        TensorRTBackend.check()


# -- the engine runner against fakes -------------------------------------------------------------------
# FakeRuntime stands for runtime.backends.gpu.cuda.CudaRuntime: real bytes behind fake addresses, every copy and memset
# done for real (and logged). FakeEngine/FakeContext stand for TensorRT's ICudaEngine/IExecutionContext: the
# name-based API the runner uses; "executing" reads the inputs at their bound addresses with the shapes set,
# computes a known function of them and writes ab at the output's address.

class FakeRuntime:
    def __init__(self):
        self.memory: dict[int, np.ndarray] = {}  # base address -> bytes
        self.kinds: dict[int, str] = {}
        self.log: list[tuple] = []
        self.freed: list[int] = []
        self.streams: list = []
        self._next = 0x10000

    def _block(self, nbytes: int, kind: str):
        ptr, self._next = self._next, self._next + nbytes + 0x1000
        self.memory[ptr] = np.zeros(nbytes, np.uint8)
        self.kinds[ptr] = kind
        rt = self

        def free():
            if ptr in rt.memory:
                del rt.memory[ptr]
                rt.freed.append(ptr)

        return ptr, free

    def malloc(self, nbytes):
        ptr, free = self._block(nbytes, "device")
        return SimpleNamespace(ptr=ptr, nbytes=nbytes, free=free)

    def host_alloc(self, nbytes):
        ptr, free = self._block(nbytes, "host")
        mem = self.memory

        def array(shape, dtype="float32"):
            count = int(np.prod(shape)) * np.dtype(dtype).itemsize
            assert count <= nbytes, f"{shape} does not fit {nbytes} bytes"
            return mem[ptr][:count].view(dtype).reshape(shape)

        return SimpleNamespace(ptr=ptr, nbytes=nbytes, free=free, array=array)

    def stream(self):
        s = SimpleNamespace(handle=0xABC, destroyed=False, syncs=0)
        s.synchronize = lambda: setattr(s, "syncs", s.syncs + 1)
        s.destroy = lambda: setattr(s, "destroyed", True)
        self.streams.append(s)
        return s

    def memcpy_async(self, dst, src, nbytes, kind, stream):
        want = {cuda.MEMCPY_HOST_TO_DEVICE: ("device", "host"), cuda.MEMCPY_DEVICE_TO_HOST: ("host", "device")}[kind]
        assert (self.kinds[dst], self.kinds[src]) == want and nbytes <= min(self.memory[dst].size, self.memory[src].size)
        self.memory[dst][:nbytes] = self.memory[src][:nbytes]
        self.log.append(("memcpy", dst, nbytes, kind))

    def memset_async(self, dst, value, nbytes, stream):
        assert self.kinds[dst] == "device" and nbytes <= self.memory[dst].size
        self.memory[dst][:nbytes] = value
        self.log.append(("memset", dst, nbytes))


FAKE_TRT = SimpleNamespace(TensorIOMode=SimpleNamespace(INPUT="input", OUTPUT="output"),
                           DataType=SimpleNamespace(FLOAT="float32", HALF="float16"))


def fake_model(L, hints):
    """What the fake engine computes: ab = (L, -L), plus a and b where the mask is set."""
    ab = np.concatenate([L, -L], 1)
    if hints is not None:
        ab = ab + hints[:, :2] * hints[:, 2:3]
    return ab


class FakeEngine:
    def __init__(self, rt, profile: Profile, hints: str | None = "hints", hint_profile=None, hint_dtype="float32"):
        self.rt = rt
        self.tensors = {"L": ("input", "float32", profile.input_shapes(1))}
        if hints:
            self.tensors[hints] = ("input", hint_dtype, hint_profile or profile.input_shapes(3))
        self.tensors["ab"] = ("output", "float32", None)
        self.num_io_tensors = len(self.tensors)
        self.contexts: list = []

    def get_tensor_name(self, i):
        return list(self.tensors)[i]

    def get_tensor_mode(self, name):
        return self.tensors[name][0]

    def get_tensor_dtype(self, name):
        return self.tensors[name][1]

    def get_tensor_profile_shape(self, name, profile_index):
        assert profile_index == 0 and self.tensors[name][0] == "input"
        return self.tensors[name][2]

    def create_execution_context(self):
        self.contexts.append(FakeContext(self))
        return self.contexts[-1]


class FakeContext:
    def __init__(self, engine: FakeEngine):
        self.engine, self.rt = engine, engine.rt
        self.addresses: dict[str, int] = {}
        self.shapes: dict[str, tuple] = {}
        self.calls: list[tuple] = []
        self.seen: list[dict] = []  # the inputs of every execution, as the engine read them

    def set_tensor_address(self, name, ptr):
        self.calls.append(("address", name, ptr))
        self.addresses[name] = ptr

    def set_input_shape(self, name, shape):
        self.calls.append(("shape", name, tuple(shape)))
        mn, _, mx = self.engine.tensors[name][2]
        ok = len(shape) == 4 and shape[1] == mn[1] and all(a <= v <= b for a, v, b in zip(mn, shape, mx))
        if ok:
            self.shapes[name] = tuple(shape)
        return ok

    def _tensor(self, name, shape):
        count = int(np.prod(shape)) * 4
        return self.rt.memory[self.addresses[name]][:count].view(np.float32).reshape(shape)

    def execute_async_v3(self, stream_handle):
        self.calls.append(("execute", stream_handle))
        inputs = {n for n, t in self.engine.tensors.items() if t[0] == "input"}
        assert set(self.shapes) == inputs, "every input shape must be set before executing"
        L = self._tensor("L", self.shapes["L"]).copy()
        hint_name = next((n for n in inputs if n != "L"), None)
        hints = self._tensor(hint_name, self.shapes[hint_name]).copy() if hint_name else None
        if hints is not None:
            assert hints.shape[0] == L.shape[0] and hints.shape[2:] == L.shape[2:]
        self.seen.append({"L": L, "hints": hints})
        ab = fake_model(L, hints)
        self._tensor("ab", ab.shape)[:] = ab
        return True


RUN_PROFILE = Profile((2, 32, 32), (4, 64, 64), (4, 128, 128))


def _runner(spec=HINT_SPEC, **engine_kw):
    rt = FakeRuntime()
    engine = FakeEngine(rt, RUN_PROFILE, **engine_kw)
    return EngineRunner(FAKE_TRT, rt, engine, spec), rt, engine


def _inputs(n, h=64, w=96, seed=0):
    rng = np.random.default_rng(seed)
    L = rng.uniform(0, 100, (n, 1, h, w)).astype(np.float32)
    hints = np.zeros((n, 3, h, w), np.float32)
    hints[:, :2, 10:20, 30:40] = rng.uniform(-60, 60, (n, 2, 1, 1))
    hints[:, 2, 10:20, 30:40] = 1.0
    return L, hints


def test_runner_binds_a_buffer_pair_per_tensor_once():
    runner, rt, engine = _runner()
    ctx = engine.contexts[0]
    assert runner.io == IONames("L", "hints", "ab") and runner.profile == RUN_PROFILE
    plane = 4 * 128 * 128 * 4  # max batch x max H x max W x float32
    bound = {name: rt.memory[ptr].size for _, name, ptr in ctx.calls}
    assert bound == {"L": plane, "ab": 2 * plane, "hints": 3 * plane}
    assert all(rt.kinds[ptr] == "device" for ptr in ctx.addresses.values())
    assert sorted(rt.memory[p].size for p, k in rt.kinds.items() if k == "host") == [plane, 2 * plane, 3 * plane]
    runner.run(*_inputs(3))
    assert sum(c[0] == "address" for c in ctx.calls) == 3  # bound once, never per run


def test_runner_feeds_hints_splits_and_pads():
    runner, rt, engine = _runner()
    ctx = engine.contexts[0]
    L, hints = _inputs(5)
    got = runner.run(L, hints)
    np.testing.assert_array_equal(got, fake_model(L, hints))
    # 5 rows on a 2..4-batch profile: a chunk of 4, then 1 row padded to 2; both inputs' shapes set per chunk.
    shapes = [c[1:] for c in ctx.calls if c[0] == "shape"]
    assert shapes == [("L", (4, 1, 64, 96)), ("hints", (4, 3, 64, 96)), ("L", (2, 1, 64, 96)), ("hints", (2, 3, 64, 96))]
    last = ctx.seen[-1]
    np.testing.assert_array_equal(last["hints"][0], hints[4])
    assert not last["hints"][1].any() and not last["L"][1].any()  # the padding row: zeros in both inputs
    hint_copies = [e for e in rt.log if e[0] == "memcpy" and e[1] == ctx.addresses["hints"]]
    assert [e[2] for e in hint_copies] == [4 * 3 * 64 * 96 * 4, 2 * 3 * 64 * 96 * 4]


def test_runner_without_hints_zero_fills_on_the_device():
    runner, rt, engine = _runner()
    ctx = engine.contexts[0]
    L, hints = _inputs(3)
    runner.run(L, hints)  # leaves hints in the device buffer
    start = len(rt.log)
    got = runner.run(L)  # no hints: the automatic result, not the last call's hints
    np.testing.assert_array_equal(got, fake_model(L, None))
    assert not ctx.seen[-1]["hints"].any()
    hint_ops = [e for e in rt.log[start:] if e[1] == ctx.addresses["hints"]]
    assert hint_ops == [("memset", ctx.addresses["hints"], 3 * 3 * 64 * 96 * 4)]  # a memset, nothing copied
    np.testing.assert_array_equal(runner.run(L, np.zeros_like(hints)), got)  # zeros given == no hints


def test_runner_for_a_model_without_hints():
    runner, rt, engine = _runner(SPEC, hints=None)
    ctx = engine.contexts[0]
    assert runner.io == IONames("L", None, "ab") and set(ctx.addresses) == {"L", "ab"}
    assert sum(k == "device" for k in rt.kinds.values()) == 2
    L = np.random.default_rng(1).uniform(0, 100, (3, 1, 64, 128)).astype(np.float32)
    np.testing.assert_array_equal(runner.run(L), fake_model(L, None))
    assert {c[1] for c in ctx.calls if c[0] == "shape"} == {"L"}
    assert not any(e[0] == "memset" for e in rt.log)
    with pytest.raises(ValueError, match="takes no colour hints"):
        runner.run(L, np.zeros((3, 3, 64, 128), np.float32))


def test_runner_refuses_mismatched_engines_and_frees_what_it_took():
    with pytest.raises(BackendUnavailable, match="engine I/O does not match"):
        _runner(HINT_SPEC, hints=None)  # an engine built for a hint-less model
    with pytest.raises(BackendUnavailable, match="engine I/O does not match"):
        _runner(SPEC)  # a hint engine for a hint-less model
    with pytest.raises(BackendUnavailable, match="'hints' is .*float16.*expected FP32 I/O"):
        _runner(hint_dtype="float16")
    other = Profile((1, 32, 32), (4, 64, 64), (4, 128, 128)).input_shapes(3)
    with pytest.raises(BackendUnavailable, match="engine profile of 'hints' .* is not 'L'.s .* with 3 channels; rebuild"):
        _runner(hint_profile=other)
    with pytest.raises(BackendUnavailable, match="with 3 channels"):
        _runner(hint_profile=RUN_PROFILE.input_shapes(2))


def test_runner_rejects_bad_inputs_and_profile_sizes():
    runner, _, _ = _runner()
    L, hints = _inputs(2)
    with pytest.raises(ValueError, match=r"hints must have shape \(2, 3, 64, 96\)"):
        runner.run(L, hints[:, :2])
    with pytest.raises(ValueError, match="outside the engine's profile"):
        runner.run(np.zeros((1, 1, 256, 64), np.float32))


def test_runner_close_frees_everything_once():
    runner, rt, _ = _runner()
    runner.run(*_inputs(1))
    runner.close()
    assert not rt.memory and len(rt.freed) == 6 and rt.streams[0].destroyed
    runner.close()  # safe twice
    assert len(rt.freed) == 6


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

    from runtime.model.generator import build_generator
    from runtime.model.bundle import resolve
    from trainer.export_onnx import export_bundle

    torch.manual_seed(0)
    spec = ModelSpec(ngf=8, depth=5)
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "spec.json").write_text(spec.to_json())
    save_file(build_generator(spec).state_dict(), str(ckpt / "generator.safetensors"))
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


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_hint_engine_matches_onnxruntime_cpu(tmp_path, monkeypatch, request):
    """A model with colour hints (efficientnet-lite0, random weights; conftest's hint_bundle): TensorRT FP16 vs
    ONNX Runtime CPU FP32 with hints, without hints (zeros), and no hints after hints (no stale buffer)."""
    _require_tensorrt_gpu()
    from runtime.backends.onnxruntime import OnnxRuntimeBackend
    from runtime.model.bundle import resolve

    monkeypatch.setenv("COLORIZE_GAN_CACHE", str(tmp_path / "cache"))
    files = resolve(str(request.getfixturevalue("hint_bundle")))  # exported only where the test runs
    assert files.spec.hints
    rng = np.random.default_rng(0)
    L = rng.uniform(0, 100, (19, 1, 128, 96)).astype(np.float32)  # 19 > max batch 16: split and padded
    hints = np.zeros((19, 3, 128, 96), np.float32)
    for i in range(0, 19, 2):  # every other image gets a few colour patches
        for _ in range(4):
            y, x = rng.integers(0, 120), rng.integers(0, 88)
            hints[i, :2, y:y + 8, x:x + 8] = rng.uniform(-60, 60, (2, 1, 1))
            hints[i, 2, y:y + 8, x:x + 8] = 1.0
    ort = OnnxRuntimeBackend(files)
    ref_auto, ref_hints = ort.run(L), ort.run(L, hints)
    assert np.abs(ref_hints - ref_auto).max() > 5.0  # the hints matter, so parity with them means something
    with TensorRTBackend(files, log=lambda m: None) as trt_backend:
        with_hints = trt_backend.run(L, hints)
        auto = trt_backend.run(L)
        assert trt_backend.engine_path.exists()
    assert np.abs(with_hints - ref_hints).max() < 1.0  # FP16 engine vs FP32 ORT, ab units
    assert np.abs(auto - ref_auto).max() < 1.0
