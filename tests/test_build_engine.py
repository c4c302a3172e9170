"""tools/build_engine.py argument validation (without TensorRT), the pure parts of runtime/backends/gpu/trt_build.py, and
``build_engine`` itself driven through a fake of TensorRT's builder API (which inputs get which profile shapes,
input checks, the report)."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest

from runtime.backends.gpu.engine_profile import Profile
from runtime.model.spec import ModelSpec
from runtime.backends.gpu import trt_build as tb

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "build_engine.py"
HAVE_TRT = importlib.util.find_spec("tensorrt") is not None


def _tool():
    spec = importlib.util.spec_from_file_location("build_engine_tool", TOOL)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


HINT_SPEC = ModelSpec(encoder="efficientnet-lite0", hints=True)


@pytest.fixture
def bundle(tmp_path):
    """A bundle whose files exist (the plan only needs paths and the spec; nothing is parsed)."""
    spec = ModelSpec(depth=6)
    (tmp_path / "m.json").write_text(json.dumps({"spec": spec.to_dict()}))
    (tmp_path / "m_fp16.onnx").write_bytes(b"onnx")
    return tmp_path


@pytest.fixture
def hint_bundle_files(tmp_path):
    """The same for a model that takes colour hints (size multiple 32)."""
    (tmp_path / "h.json").write_text(json.dumps({"spec": HINT_SPEC.to_dict()}))
    (tmp_path / "h_fp16.onnx").write_bytes(b"onnx")
    return tmp_path


def _plan(*argv):
    tool = _tool()
    return tool.make_plan(tool.make_parser().parse_args(list(argv)))


def test_help_works_without_tensorrt_and_says_how_to_install():
    out = subprocess.run([sys.executable, str(TOOL), "--help"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "pip install 'colorize-gan[tensorrt]'" in out.stdout and "tensorrt-cu12" in out.stdout
    assert "--max NxHxW" in out.stdout
    text = " ".join(out.stdout.split())
    assert "applies to every input of the model: L (N x 1 x H x W)" in text and "hint input (N x 3 x H x W)" in text


def test_defaults(bundle):
    plan = _plan(str(bundle / "m_fp16.onnx"))
    assert plan.onnx == bundle / "m_fp16.onnx" and plan.precision == "fp16"
    assert (plan.profile.min, plan.profile.opt, plan.profile.max) == ((1, 64, 64), (1, 256, 256), (16, 1024, 1024))
    assert plan.workspace_bytes == 4 << 30 and plan.timing_cache == Path("auto") and plan.output is None
    assert "tensorrt" not in sys.modules or HAVE_TRT


def test_custom_profile_and_options(bundle, tmp_path):
    plan = _plan(str(bundle / "m.json"), "--min", "2x128x128", "--opt", "8x256x256", "--max", "64x512x512",
                 "--workspace-gb", "0.5", "--no-timing-cache", "-o", str(tmp_path / "e.engine"))
    assert plan.profile.max == (64, 512, 512) and plan.workspace_bytes == 1 << 29
    assert plan.timing_cache is None and plan.output == tmp_path / "e.engine"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--max", "16x1000x1024"], "max H=1000 is not a multiple of 64"),
        (["--min", "1x64x96"], "min W=96 is not a multiple of 64"),
        (["--min", "4x64x64", "--opt", "2x256x256"], "profile N must satisfy min <= opt <= max"),
        (["--opt", "1x2048x2048"], "profile H must satisfy min <= opt <= max"),
        (["--max", "16x512"], "bad shape '16x512': expected NxHxW"),
        (["--min", "0x64x64"], "must be three positive integers"),
        (["--workspace-gb", "0"], "--workspace-gb must be in (0, 1024]"),
        (["--device", "-1"], "--device must be >= 0"),
        (["--precision", "fp32"], "the model has no NAME.onnx (FP32)"),
    ],
)
def test_bad_arguments_exit_2_with_one_clear_line(bundle, args, message):
    out = subprocess.run([sys.executable, str(TOOL), str(bundle / "m_fp16.onnx"), *args], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 2
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("build_engine.py: error:") and message in last, out.stderr


def test_plan_for_a_model_with_hints(hint_bundle_files, bundle):
    plan = _plan(str(hint_bundle_files / "h_fp16.onnx"), "--max", "8x512x512")
    assert plan.inputs == (("L", 1), ("hints", 3)) and plan.spec.hints
    assert (plan.profile.min, plan.profile.opt, plan.profile.max) == ((1, 32, 32), (1, 256, 256), (8, 512, 512))
    assert _plan(str(bundle / "m_fp16.onnx")).inputs == (("L", 1),)
    with pytest.raises(ValueError, match="max H=48 is not a multiple of 32"):
        _plan(str(hint_bundle_files / "h.json"), "--max", "8x48x64")


def test_missing_model_and_directory_output(bundle, tmp_path):
    with pytest.raises(ValueError, match="model not found"):
        _plan(str(tmp_path / "nope_fp16.onnx"))
    with pytest.raises(ValueError, match="is a directory"):
        _plan(str(bundle / "m_fp16.onnx"), "-o", str(tmp_path))


@pytest.mark.skipif(HAVE_TRT, reason="tensorrt is installed here; this checks the message where it is not")
def test_valid_arguments_without_tensorrt_fail_cleanly(bundle):
    out = subprocess.run([sys.executable, str(TOOL), str(bundle / "m_fp16.onnx")], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [out.stderr.strip()]  # one line
    assert out.stderr.startswith("build_engine.py: error: tensorrt is not installed") and "colorize-gan[tensorrt]" in out.stderr


# -- runtime/backends/gpu/trt_build.py pure parts -------------------------------------------------------------------

def test_network_flags_per_version():
    assert tb.version_tuple("10.13.0.35") == (10, 13, 0, 35) and tb.version_tuple("11.4.0") > tb.version_tuple("10.13.9")
    assert tb.strongly_typed_flags((10, 13, 0), 5) == 1 << 5
    assert tb.strongly_typed_flags((11, 4, 0), None) == 0  # strong typing is the default; the bit is gone
    with pytest.raises(tb.BuildError, match="too old"):
        tb.strongly_typed_flags((8, 6, 1), None)
    with pytest.raises(tb.BuildError, match="no STRONGLY_TYPED"):
        tb.strongly_typed_flags((10, 0, 0), None)


def test_parser_errors_name_the_nodes():
    msg = tb.format_parser_errors(
        [tb.ParserIssue("Unsupported\n  op", "/generator/up.3/ConvTranspose", 17, "ConvTranspose"), tb.ParserIssue("bad graph")],
        "m_fp16.onnx",
    )
    assert msg == "TensorRT cannot parse m_fp16.onnx: /generator/up.3/ConvTranspose (ConvTranspose): Unsupported op; graph: bad graph"
    assert "node #4" in tb.format_parser_errors([tb.ParserIssue("x", node_index=4)], "a.onnx")


INSPECTOR = {
    "Layers": [
        {"Name": "cast_in", "Outputs": [{"Format/Datatype": "Row major linear FP16 format"}]},
        {"Name": "conv1", "LayerType": "CaskConvolution", "Outputs": [{"Format/Datatype": "Channel major FP16 format where channel % 8 == 0"}]},
        {"Name": "__myl_fused", "LayerType": "kgen", "Outputs": [{"Format/Datatype": "Half"}]},
        {"Name": "norm", "Outputs": [{"Format/Datatype": "Float"}]},
        {"Name": "shape", "LayerType": "Shape"},
        "layer-name-only",
    ]
}


def test_inspector_precision_counts_and_verdicts():
    counts = tb.inspector_layer_kinds(json.dumps(INSPECTOR))
    assert counts == Counter(fp16=3, fp32=1, untyped=2)
    assert tb.precision_problem(counts, "fp16", "built engine") is None
    assert "FP16 layers in an fp32 build" in tb.precision_problem(counts, "fp32", "built engine")
    all_fp32 = Counter(fp32=12, untyped=3)  # the rf-detr bug: an FP32 engine labelled FP16
    assert "no FP16 layers" in tb.precision_problem(all_fp32, "fp16", "built engine")
    assert tb.precision_problem(all_fp32, "fp32", "built engine") is None
    assert "only 1/4 layers are FP16" in tb.precision_problem(Counter(fp16=1, fp32=3), "fp16", "engine")
    assert "no layer precision information" in tb.precision_problem(Counter(untyped=9), "fp16", "engine")


def test_dtype_kinds():
    kinds = [tb.dtype_kind(s) for s in ("DataType.HALF", "DataType.FLOAT", "DataType.BF16", "DataType.INT8", "DataType.INT32", "Half")]
    assert kinds == ["fp16", "fp32", "bf16", "int8", "other", "fp16"]


def test_network_inputs_must_be_the_models():
    hints = (("L", 1), ("hints", 3))
    assert tb.input_problems({"L": (-1, 1, -1, -1)}, (("L", 1),), "m.onnx") == []
    assert tb.input_problems({"hints": (-1, 3, -1, -1), "L": (-1, 1, -1, -1)}, hints, "h.onnx") == []
    assert tb.input_problems({"L": (-1, -1, -1, -1), "hints": (-1, -1, -1, -1)}, hints, "h.onnx") == []  # dynamic: unknown
    assert tb.input_problems({"L": (-1, 1, -1, -1)}, hints, "m.onnx") == ["m.onnx has inputs ['L'], the model spec wants ['L', 'hints']"]
    assert tb.input_problems({"L": (-1, 1, -1, -1), "hints": (-1, 3, -1, -1)}, (("L", 1),), "h.onnx") == [
        "h.onnx has inputs ['L', 'hints'], the model spec wants ['L']"]
    assert tb.input_problems({"L": (-1, 1, -1, -1), "hints": (-1, 2, -1, -1)}, hints, "h.onnx") == [
        "input 'hints' has 2 channels, the model spec wants 3"]
    assert tb.input_problems({"L": (-1, 1, -1)}, (("L", 1),), "m.onnx") == ["input 'L' has shape [-1, 1, -1], expected N x 1 x H x W"]


# -- build_engine through a fake TensorRT -----------------------------------------------------------------

def fake_tensorrt(inputs: dict[str, tuple[int, ...]], calls: list):
    """The part of TensorRT's builder API build_engine uses; records what it is asked. ``inputs``: the parsed
    network's inputs {name: shape}."""
    enum = SimpleNamespace
    layer_type = enum(CONVOLUTION="conv", DECONVOLUTION="deconv", MATRIX_MULTIPLY="matmul")
    conv = SimpleNamespace(type="conv", get_output=lambda i: SimpleNamespace(dtype="DataType.HALF"))
    network = SimpleNamespace(
        num_inputs=len(inputs), get_input=lambda i: SimpleNamespace(name=list(inputs)[i], shape=list(inputs.values())[i]),
        num_layers=3, get_layer=lambda i: conv,
    )
    profile = SimpleNamespace(set_shape=lambda name, mn, opt, mx: calls.append(("set_shape", name, mn, opt, mx)))
    timing = SimpleNamespace(serialize=lambda: b"timing")
    config = SimpleNamespace(
        set_memory_pool_limit=lambda pool, size: calls.append(("workspace", size)),
        add_optimization_profile=lambda p: calls.append(("add_profile", p is profile)),
        create_timing_cache=lambda data: timing, set_timing_cache=lambda cache, ignore: True,
        get_timing_cache=lambda: timing, profiling_verbosity=None,
    )
    inspector = json.dumps({"Layers": [{"Outputs": [{"Format/Datatype": "Half"}]}] * 3})
    engine = SimpleNamespace(create_engine_inspector=lambda: SimpleNamespace(get_engine_information=lambda fmt: inspector))

    class Builder:
        def __init__(self, logger):
            pass

        def create_network(self, flags):
            calls.append(("flags", flags))
            return network

        def create_builder_config(self):
            return config

        def create_optimization_profile(self):
            return profile

        def build_serialized_network(self, net, cfg):
            calls.append(("build",))
            return b"serialized engine"

    class OnnxParser:
        num_errors = 0

        def __init__(self, net, logger):
            pass

        def parse_from_file(self, path):
            calls.append(("parse", path))
            return True

    return SimpleNamespace(
        __version__="10.13.0.35", NetworkDefinitionCreationFlag=enum(STRONGLY_TYPED=5),
        Logger=type("Logger", (), {"WARNING": 2, "__init__": lambda self, level: None}),
        Builder=Builder, OnnxParser=OnnxParser, LayerType=layer_type, MemoryPoolType=enum(WORKSPACE="workspace"),
        ProfilingVerbosity=enum(DETAILED="detailed"), LayerInformationFormat=enum(JSON="json"),
        Runtime=lambda logger: SimpleNamespace(deserialize_cuda_engine=lambda data: engine),
    )


FAKE_PROFILE = Profile((1, 32, 32), (2, 256, 256), (8, 512, 512))


def test_build_sets_one_profile_for_both_inputs(monkeypatch, tmp_path):
    calls: list = []
    monkeypatch.setattr(tb, "import_tensorrt", lambda: fake_tensorrt({"L": (-1, 1, -1, -1), "hints": (-1, 3, -1, -1)}, calls))
    result = tb.build_engine(tmp_path / "h_fp16.onnx", HINT_SPEC, FAKE_PROFILE, "fp16", log=lambda m: None)
    assert result.engine == b"serialized engine"
    assert [c[1:] for c in calls if c[0] == "set_shape"] == [
        ("L", (1, 1, 32, 32), (2, 1, 256, 256), (8, 1, 512, 512)),
        ("hints", (1, 3, 32, 32), (2, 3, 256, 256), (8, 3, 512, 512)),
    ]
    assert calls.count(("add_profile", True)) == 1 and ("flags", 1 << 5) in calls
    assert result.report["input_profiles"] == {
        "L": {"min": "1x1x32x32", "opt": "2x1x256x256", "max": "8x1x512x512"},
        "hints": {"min": "1x3x32x32", "opt": "2x3x256x256", "max": "8x3x512x512"},
    }


def test_build_of_a_hintless_model_sets_l_only(monkeypatch, tmp_path):
    calls: list = []
    monkeypatch.setattr(tb, "import_tensorrt", lambda: fake_tensorrt({"L": (-1, 1, -1, -1)}, calls))
    spec = ModelSpec(depth=5)
    result = tb.build_engine(tmp_path / "m_fp16.onnx", spec, FAKE_PROFILE, "fp16", log=lambda m: None)
    assert [c[1] for c in calls if c[0] == "set_shape"] == ["L"] and list(result.report["input_profiles"]) == ["L"]


@pytest.mark.parametrize("inputs, spec, message", [
    ({"L": (-1, 1, -1, -1)}, HINT_SPEC, r"has inputs \['L'\], the model spec wants \['L', 'hints'\]"),
    ({"L": (-1, 1, -1, -1), "hints": (-1, 3, -1, -1)}, ModelSpec(depth=5), r"has inputs \['L', 'hints'\], the model spec wants \['L'\]"),
])
def test_build_refuses_an_onnx_whose_inputs_are_not_the_models(monkeypatch, tmp_path, inputs, spec, message):
    calls: list = []
    monkeypatch.setattr(tb, "import_tensorrt", lambda: fake_tensorrt(inputs, calls))
    with pytest.raises(tb.BuildError, match=message):
        tb.build_engine(tmp_path / "x_fp16.onnx", spec, FAKE_PROFILE, "fp16", log=lambda m: None)
    assert not any(c[0] in ("set_shape", "build") for c in calls)  # refused before any profile or build


def test_tool_build_writes_a_sidecar_recording_both_inputs(monkeypatch, hint_bundle_files, tmp_path):
    """tools/build_engine.py's build() end to end with the fake TensorRT and a fake GPU: the engine lands in the
    cache under the key the backend computes, and its sidecar names both inputs and their profile shapes."""
    from runtime.backends.gpu import cuda
    from runtime.backends.gpu import engine_cache as ec
    from runtime.backends.gpu.engine_profile import model_inputs
    from runtime.cache import ENV_CACHE

    calls: list = []
    monkeypatch.setattr(tb, "import_tensorrt", lambda: fake_tensorrt({"L": (-1, 1, -1, -1), "hints": (-1, 3, -1, -1)}, calls))
    gpu = SimpleNamespace(set_device=lambda d: None, device_name=lambda d: "NVIDIA H200", compute_capability=lambda d: (9, 0))
    monkeypatch.setattr(cuda, "load", lambda *a: gpu)
    monkeypatch.setattr(cuda, "probe", lambda *a: None)
    monkeypatch.setenv(ENV_CACHE, str(tmp_path / "cache"))
    plan = _plan(str(hint_bundle_files / "h_fp16.onnx"), "--no-timing-cache")
    path = _tool().build(plan, log=lambda m: None)
    meta = ec.read_sidecar(path)
    assert meta["inputs"] == [["L", 1], ["hints", 3]] and set(meta["input_profiles"]) == {"L", "hints"}
    assert meta["input_profiles"]["hints"]["max"] == "16x3x1024x1024"
    key = tb.current_key("10.13.0.35", gpu, 0, plan.onnx, plan.profile, "fp16", model_inputs(HINT_SPEC))
    assert path == ec.engine_path_for(key, "h_fp16") and ec.sidecar_mismatches(meta, key, path) == []
