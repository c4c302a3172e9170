"""The CPU-side pieces of tools/gpu_check.py: FLOP counting, peak lookup, arguments, and a CPU smoke run."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from runtime.model.generator import build_generator  # noqa: E402
from runtime.model.spec import ModelSpec  # noqa: E402

TOOL = Path(__file__).resolve().parents[1] / "tools" / "gpu_check.py"


@pytest.fixture(scope="module")
def gc():
    spec = importlib.util.spec_from_file_location("gpu_check_tool", TOOL)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_flops_by_hand(gc):
    conv = nn.Conv2d(4, 8, 4, 2, 1)  # 16x16 -> 8x8
    assert gc.count_flops(conv, (2, 4, 16, 16)) == 2 * (2 * 8 * 8 * 8) * 4 * 4 * 4
    up = nn.ConvTranspose2d(8, 4, 4, 2, 1)  # 8x8 -> 16x16: each input pixel scatters 4x4x4
    assert gc.count_flops(up, (1, 8, 8, 8)) == 2 * (8 * 8 * 8) * 4 * 4 * 4
    assert gc.count_flops(nn.Linear(10, 3), (5, 10)) == 2 * 5 * 10 * 3


@pytest.mark.parametrize("spec", [ModelSpec(ngf=8, depth=4), ModelSpec(ngf=16, depth=5, upsample="resize", norm="instance")])
def test_flops_match_torch_flop_counter(gc, spec):
    g = build_generator(spec).eval()
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        g(torch.zeros(1, 1, 64, 128))
    assert gc.count_flops(g, (1, 1, 64, 128)) == fc.get_total_flops()


def test_peak_lookup(gc):
    assert gc.fp16_peak("NVIDIA H100 80GB HBM3")[0] == pytest.approx(989.4e12)
    assert gc.fp16_peak("NVIDIA H100 PCIe")[0] == pytest.approx(756e12)  # not the SXM figure
    assert gc.fp16_peak("NVIDIA H200")[0] == pytest.approx(989.4e12)
    flops, src = gc.fp16_peak("Some sm90 part", (9, 0), 132, 1_830_000)
    assert flops == pytest.approx(132 * 1.83e9 * 4096) and src.startswith("estimate")
    assert gc.fp16_peak("Mystery GPU") == (None, "unknown GPU")


def test_arguments(gc):
    a = gc.parse_args(["--out", "/tmp/x"])
    assert (a.sizes, a.batches, a.seconds) == ([256, 512], [1, 8, 64], 1.0)
    with pytest.raises(SystemExit):
        gc.parse_args(["--sizes", "256,abc"])
    with pytest.raises(SystemExit):
        gc.parse_args(["--batches", "0"])
    assert gc.parse_args(["--random-hint-model"]).random_hint_model
    with pytest.raises(SystemExit):
        gc.parse_args(["--model", "m.json", "--random-hint-model"])


def test_hints_are_colour_patches(gc):
    h = gc.make_hints(3, 64)
    assert h.shape == (3, 3, 64, 64) and h.dtype == np.float32
    mask = h[:, 2]
    assert set(np.unique(mask)) == {0.0, 1.0} and all(m.any() for m in mask)
    assert not h[:, :2][np.broadcast_to(mask[:, None] == 0, h[:, :2].shape)].any()  # a and b only under the mask


@pytest.mark.slow
def test_cpu_smoke_run_writes_the_report(gc, tmp_path):
    rc = gc.main(["--smoke", "--out", str(tmp_path)])
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert rc == 0, report["errors"]
    assert report["parity"][0]["torch_fp32_device_max_delta"] < 1e-2  # torch CPU FP32 vs ORT CPU FP32
    modes = {r["mode"] for r in report["benchmark"]}
    assert modes == {"eager-fp32", "fp16-cl"} and all(r["images_per_s"] > 0 for r in report["benchmark"])
    md = (tmp_path / "gpu_check.md").read_text()
    assert "| 64 | 2 | fp16-cl |" in md and "Parity vs ONNX Runtime CPU FP32" in md


@pytest.mark.slow
def test_cpu_smoke_run_with_a_hint_model(gc, tmp_path):
    """The hint paths of the script (export with the hint input, reference with and without hints, the report)."""
    rc = gc.main(["--smoke", "--random-hint-model", "--out", str(tmp_path)])
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert rc == 0, report["errors"]
    assert "efficientnet-lite0 with colour hints" in report["model"]
    row = report["parity"][0]
    assert row["torch_fp32_device_max_delta"] < 1e-2 and row["hints_torch_fp32_device_max_delta"] < 1e-2
    assert row["hint_effect_max"] > 5  # the random hint branch is live: the comparison with hints means something
    assert "Parity with colour hints" in (tmp_path / "gpu_check.md").read_text()
