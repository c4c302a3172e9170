"""The blend (issue 17): a distribution decoder and a regression decoder on one encoder, their ab mixed in the graph
(spec.ab_blend, spec.ab_regression_gain); tools/make_blend.py putting a regression model's decoder beside a
distribution model's; the trainer fitting it with --train-only regression_decoder (the rest frozen, BatchNorm
statistics included); the export of the mix in both graphs; the frozen encoder BatchNorm from a run's first step."""
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
        g.regression_decoder.head[1].weight.normal_(0, 0.05)
        x = torch.rand(1, 1, 64, 96) * 2 - 1
        served = g(x)
        logits, regression = g(x, return_logits=True)
        annealed = g.distribution.decode_full(logits, SPEC)
    assert logits.shape == (1, g.distribution.bins, 32, 48) and regression.shape == served.shape == (1, 2, 64, 96)
    assert torch.allclose(served, 0.3 * annealed + 0.7 * 2.0 * regression, atol=1e-6)
    assert (annealed - 2.0 * regression).abs().mean() > 0.02  # the two parts are not the same picture
    first = {id(p) for p in [*g.up.parameters(), *g.fuse.parameters(), *g.global_mlp.parameters()]}
    assert not first & {id(p) for p in g.regression_decoder.parameters()}  # two decoders, one encoder
    assert not any(k.startswith("regression_decoder.encoder") for k in g.state_dict())
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
    """(a small distribution-head checkpoint with a prior, the photos, a regression checkpoint of the same kind):
    random but fixed."""
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
    r = build_generator(ModelSpec(encoder="efficientnet-lite0", fusion_dim=16, hints=True))
    with torch.no_grad():
        r.head[1].weight.normal_(0, 0.05)
    return save_checkpoint(tmp / "dist", g), data, save_checkpoint(tmp / "reg", r)


def test_make_blend_puts_the_regression_decoder_beside_the_distribution_model(distribution_model, tmp_path):
    from safetensors.torch import load_file

    sys.path.insert(0, str(ROOT / "tools"))
    from make_blend import main

    dist, _, reg = distribution_model
    assert main([str(dist), str(reg), "-o", str(tmp_path / "blend")]) == 0
    spec = checkpoint.load_spec(tmp_path / "blend")
    assert spec.ab_head == "blend" and spec.ab_blend == 0.5
    blend = load_file(str(tmp_path / "blend" / "generator.safetensors"))
    d, r = load_file(str(dist / "generator.safetensors")), load_file(str(reg / "generator.safetensors"))
    assert all(torch.equal(blend[k], v) for k, v in d.items())  # the distribution model whole, its encoder included
    assert all(torch.equal(blend[f"regression_decoder.{k}"], v) for k, v in r.items() if not k.startswith(("encoder.", "hint_in.")))
    assert set(blend) == set(d) | {f"regression_decoder.{k}" for k in r if not k.startswith(("encoder.", "hint_in."))}
    r = subprocess.run([sys.executable, str(ROOT / "tools/make_blend.py"), str(reg), str(dist), "-o", str(tmp_path / "bad")],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "need a distribution model and a regression model" in r.stderr and "Traceback" not in r.stderr


def test_train_only_fits_the_regression_decoder_and_freezes_the_rest(distribution_model, tmp_path):
    from safetensors.torch import load_file

    sys.path.insert(0, str(ROOT / "tools"))
    from make_blend import make_blend

    dist, data, reg = distribution_model
    init = make_blend(str(dist), str(reg), tmp_path / "init")
    run = tmp_path / "run"
    r = _train([*_common(data, run), "--init", str(init), "--train-only", "regression_decoder", "--lr", "1e-3"])
    assert r.returncode == 0, r.stderr
    assert checkpoint.load_spec(run).ab_head == "blend"
    before = load_file(str(init / "generator.safetensors"))
    after = checkpoint.load_generator(run).state_dict()
    assert set(after) == set(before)
    frozen = [k for k in before if not k.startswith("regression_decoder.") and not k.endswith("num_batches_tracked")]
    changed = [k for k in frozen if not torch.equal(after[k].float(), before[k].float())]
    assert not changed, changed[:5]  # weights, the prior and every BatchNorm statistic (eval mode when frozen)
    learned = [k for k in before if k.startswith("regression_decoder.") and not torch.equal(after[k].float(), before[k].float())]
    assert any(k.startswith("regression_decoder.head.") for k in learned)
    assert any(k.startswith("regression_decoder.up.") and k.endswith("running_mean") for k in learned)  # it trains
    r = _train([*_common(data, tmp_path / "bad"), "--init", str(init), "--train-only", "nothing"])
    assert r.returncode != 0 and "no such module" in r.stderr and "Traceback" not in r.stderr


def test_encoder_batchnorm_statistics_stay_frozen_from_the_first_step(distribution_model, tmp_path):
    """EffNetUNet.freeze_encoder_bn: a run used to start in train mode and update the encoder's statistics until its
    first validation."""
    from safetensors.torch import load_file

    init, data, _ = distribution_model
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
        g.regression_decoder.head[1].weight.normal_(0, 0.05)
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
    dist = distribution_model[0]
    with pytest.raises(SystemExit, match="needs a model with a blend head"):
        export_bundle(dist, tmp_path / "bad", ab_blend=0.5)
