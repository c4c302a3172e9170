"""The blend head (issue 17): a regression head beside a distribution head on one trunk, their ab mixed in the graph
(spec.ab_blend, spec.ab_regression_gain); the trainer adding one to a distribution model with --train-only head (the
rest frozen, BatchNorm statistics included); the export of the mix in both graphs; the frozen encoder BatchNorm from
a run's first step."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from runtime.model.generator import build_generator  # noqa: E402
from runtime.model.spec import ModelSpec  # noqa: E402
from trainer import checkpoint  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SPEC = ModelSpec(encoder="efficientnet-lite0", fusion_dim=16, hints=True, ab_head="blend", ab_blend=0.3,
                 ab_regression_gain=2.0)


def test_spec_validates_the_blend_fields():
    with pytest.raises(ValueError, match="ab_blend"):
        ModelSpec(encoder="efficientnet-lite0", ab_head="blend", ab_blend=1.5)
    with pytest.raises(ValueError, match="ab_regression_gain"):
        ModelSpec(encoder="efficientnet-lite0", ab_head="blend", ab_regression_gain=0.0)
    with pytest.raises(ValueError, match="needs an efficientnet-lite encoder"):
        ModelSpec(encoder="unet", ab_head="blend")
    assert ModelSpec.from_dict(SPEC.to_dict()) == SPEC


def test_the_served_ab_is_the_mix_of_the_two_heads():
    torch.manual_seed(0)
    g = build_generator(SPEC).eval()
    with torch.no_grad():
        g.distribution.logits.weight.mul_(4.0)  # a head with opinions, so that the parts differ
        g.head[1].weight.normal_(0, 0.05)
        x = torch.rand(1, 1, 64, 96) * 2 - 1
        served = g(x)
        logits, regression = g(x, return_logits=True)
        annealed = g.distribution.decode_full(logits, SPEC)
    assert logits.shape == (1, g.distribution.bins, 32, 48) and regression.shape == served.shape == (1, 2, 64, 96)
    assert torch.allclose(served, 0.3 * annealed + 0.7 * 2.0 * regression, atol=1e-6)
    assert (annealed - 2.0 * regression).abs().mean() > 0.02  # the two parts are not the same picture
    for share, expected in ((1.0, annealed), (0.0, 2.0 * regression)):
        g.spec = ModelSpec(**{**SPEC.to_dict(), "ab_blend": share})
        with torch.no_grad():
            assert torch.allclose(g(x), expected, atol=1e-6)


def _train(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trainer.train", *args, "--quiet", "--threads", "1"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def _common(data: Path, out: Path) -> list[str]:
    return ["--data", str(data), "--out", str(out), "--crop-size", "32", "--load-size", "64", "--batch-size", "2",
            "--pretrain-epochs", "1", "--epochs", "0", "--max-steps", "2", "--val-count", "1", "--val-size", "64"]


@pytest.fixture(scope="module")
def distribution_model(tmp_path_factory) -> tuple[Path, Path]:
    """(a small distribution-head checkpoint with a prior from data, the photos): its trunk random but fixed."""
    from conftest import save_checkpoint
    from test_trainer import make_images

    tmp = tmp_path_factory.mktemp("blend")
    data = make_images(tmp / "imgs", n=6)
    torch.manual_seed(1)
    g = build_generator(ModelSpec(encoder="efficientnet-lite0", fusion_dim=16, hints=True, ab_head="distribution"))
    with torch.no_grad():
        g.distribution.log_prior.copy_(torch.log_softmax(torch.randn(g.distribution.bins), 0))
        for m in g.modules():  # BatchNorm statistics a frozen trunk must keep, not the init's 0 and 1
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return save_checkpoint(tmp / "dist", g), data


def test_train_only_adds_a_regression_head_and_freezes_the_rest(distribution_model, tmp_path):
    from safetensors.torch import load_file

    init, data = distribution_model
    run = tmp_path / "run"
    r = _train([*_common(data, run), "--init", str(init), "--ab-head", "blend", "--train-only", "head", "--lr", "1e-3"])
    assert r.returncode == 0, r.stderr
    spec = checkpoint.load_spec(run)
    assert spec.ab_head == "blend"
    before = load_file(str(init / "generator.safetensors"))
    after = checkpoint.load_generator(run).state_dict()
    assert {k for k in after if k not in before} and all(k.startswith("head.") for k in after if k not in before)
    frozen = [k for k in before if not k.endswith("num_batches_tracked")]
    changed = [k for k in frozen if not torch.equal(after[k].float(), before[k].float())]
    assert not changed, changed[:5]  # weights, the prior and every BatchNorm statistic (eval mode when frozen)
    head = checkpoint.load_generator(run).head
    assert float(head[1].weight.abs().max()) > 2e-3  # it learned (initialised at N(0, 1e-3))
    assert "log.csv" in {p.name for p in run.iterdir()}
    r = _train([*_common(data, tmp_path / "bad"), "--init", str(init), "--ab-head", "blend", "--train-only", "nothing"])
    assert r.returncode != 0 and "no such module" in r.stderr and "Traceback" not in r.stderr


def test_encoder_batchnorm_statistics_stay_frozen_from_the_first_step(distribution_model, tmp_path):
    """EffNetUNet.freeze_encoder_bn: a run used to start in train mode and update the encoder's statistics until its
    first validation."""
    from safetensors.torch import load_file

    init, data = distribution_model
    run = tmp_path / "run"
    r = _train([*_common(data, run), "--init", str(init), "--lr", "1e-3"])
    assert r.returncode == 0, r.stderr
    before = load_file(str(init / "generator.safetensors"))
    after = checkpoint.load_generator(run).state_dict()
    stats = [k for k in before if k.startswith("encoder.") and k.endswith(("running_mean", "running_var"))]
    assert stats and all(torch.equal(after[k].float(), before[k].float()) for k in stats)
    decoder = [k for k in before if k.startswith("up.") and k.endswith("running_mean")]
    assert any(not torch.equal(after[k].float(), before[k].float()) for k in decoder)  # these do learn


def test_export_serves_the_mix_in_both_graphs(distribution_model, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from conftest import save_checkpoint
    from runtime.image.colorizer import Colorizer
    from runtime.model.bundle import bundle_paths
    from trainer.export_onnx import FP16_TOLERANCE, export_bundle

    torch.manual_seed(2)
    g = build_generator(SPEC)
    with torch.no_grad():
        g.distribution.logits.weight.mul_(3.0)
        g.head[1].weight.normal_(0, 0.05)
    model = save_checkpoint(tmp_path / "ckpt", g)
    out = tmp_path / "blend"
    worst = export_bundle(model, out, render_size=64, weights_dtype="float32", ab_blend=0.6, ab_regression_gain=1.5,
                          ab_prior_alpha=-0.2)
    spec = json.loads(out.with_suffix(".json").read_text())["spec"]
    assert (spec["ab_head"], spec["ab_blend"], spec["ab_regression_gain"], spec["ab_prior_alpha"]) == ("blend", 0.6, 1.5, -0.2)
    assert worst["onnx"] < 0.05 and worst["onnx_fp16"] < FP16_TOLERANCE
    L = np.linspace(0, 100, 64 * 96, dtype=np.float32).reshape(1, 1, 64, 96)
    hints = np.zeros((1, 3, 64, 96), np.float32)
    ab = ort.InferenceSession(str(bundle_paths(out)["onnx"])).run(None, {"L": L, "hints": hints})[0]
    g.spec = ModelSpec(**{**SPEC.to_dict(), "ab_blend": 0.6, "ab_regression_gain": 1.5, "ab_prior_alpha": -0.2})
    with torch.no_grad():
        x = torch.from_numpy(L) / SPEC.l_scale - SPEC.l_shift
        expected = g.eval()(x, torch.zeros(1, 3, 64, 96)).numpy() * SPEC.ab_scale
    assert np.abs(ab - expected).max() < 0.05
    with Colorizer.load(str(out) + ".json", backend="torch-cpu") as c, \
            Colorizer.load(str(out) + ".json", backend="onnxruntime") as c_ort:
        assert np.abs(c.predict_ab(L) - c_ort.predict_ab(L)).max() < 0.05
    dist, _ = distribution_model
    with pytest.raises(SystemExit, match="needs a model with a blend head"):
        export_bundle(dist, tmp_path / "bad", ab_blend=0.5)
