"""tools/build_engine.py argument validation (without TensorRT) and the pure parts of runtime/trt_build.py."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from runtime.spec import ModelSpec
from runtime import trt_build as tb

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "build_engine.py"
HAVE_TRT = importlib.util.find_spec("tensorrt") is not None


def _tool():
    spec = importlib.util.spec_from_file_location("build_engine_tool", TOOL)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def bundle(tmp_path):
    """A bundle whose files exist (the plan only needs paths and the spec; nothing is parsed)."""
    spec = ModelSpec(depth=6)
    (tmp_path / "m.json").write_text(json.dumps({"spec": spec.to_dict()}))
    (tmp_path / "m_fp16.onnx").write_bytes(b"onnx")
    return tmp_path


def _plan(*argv):
    tool = _tool()
    return tool.make_plan(tool.make_parser().parse_args(list(argv)))


def test_help_works_without_tensorrt_and_says_how_to_install():
    out = subprocess.run([sys.executable, str(TOOL), "--help"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "pip install 'colorize-gan[tensorrt]'" in out.stdout and "tensorrt-cu12" in out.stdout
    assert "--max NxHxW" in out.stdout


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


# -- runtime/trt_build.py pure parts -------------------------------------------------------------------

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
