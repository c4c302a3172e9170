"""Colour as a distribution (issue 17): the in-gamut ab bins, the head's decoding (annealed mean, prior correction),
the trainer's prior, soft targets and rebalanced cross-entropy, training and fine-tuning a distribution head from a
regression model (the embedded default), and the export: the decoding inside both ONNX graphs, the served temperature."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from runtime.image import color  # noqa: E402
from runtime.model.ab_distribution import DistributionHead, gamut_bins  # noqa: E402
from runtime.model.generator import build_generator  # noqa: E402
from runtime.model.spec import ModelSpec  # noqa: E402
from trainer import checkpoint  # noqa: E402
from trainer.colour_classes import DistributionLoss, estimate_prior, rebalance_weights  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SPEC = ModelSpec(encoder="efficientnet-lite0", fusion_dim=16, ab_head="distribution")


def test_spec_validates_the_head_fields():
    with pytest.raises(ValueError, match="ab_head"):
        ModelSpec(encoder="efficientnet-lite0", ab_head="mixture")
    with pytest.raises(ValueError, match="efficientnet"):
        ModelSpec(ab_head="distribution")
    with pytest.raises(ValueError, match="ab_temperature"):
        ModelSpec(encoder="efficientnet-lite0", ab_head="distribution", ab_temperature=0.0)
    with pytest.raises(ValueError, match="ab_prior_alpha"):
        ModelSpec(encoder="efficientnet-lite0", ab_head="distribution", ab_prior_alpha=1.5)
    old = ModelSpec(encoder="efficientnet-lite0").to_dict()
    for key in ("ab_head", "ab_bin_size", "ab_temperature", "ab_prior_alpha"):
        del old[key]
    old["spec_version"] = 3
    assert ModelSpec.from_dict(old).ab_head == "regression"  # a version-3 model loads as before


def test_gamut_bins_are_runtime_colour_sciences():
    """The model room computes its bins without runtime/image/color.py: the same bins as a computation with it
    (a bin is kept when one of 5 x 5 points over its square is sRGB in [-1e-3, 1 + 1e-3] at one of 34 lightnesses)."""
    size, half = SPEC.ab_bin_size, int(SPEC.ab_scale // SPEC.ab_bin_size)
    axis = np.arange(-half, half + 1) * size
    ab = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    off = np.stack(np.meshgrid(*[np.linspace(-0.5, 0.5, 5) * size] * 2, indexing="ij"), -1).reshape(-1, 2)
    points = (ab[:, None] + off[None]).reshape(-1, 2)
    L = np.linspace(1.0, 99.0, 34)
    lab = np.concatenate([np.repeat(L, len(points))[:, None], np.tile(points, (len(L), 1))], 1).astype(np.float32)
    with np.errstate(invalid="ignore"):
        rgb = color.lab_to_rgb(lab, clip=False).reshape(len(L), len(ab), -1, 3)
        kept = np.all((rgb >= -1e-3) & (rgb <= 1 + 1e-3), axis=3).any(axis=(0, 2))
    assert np.array_equal(gamut_bins(SPEC), ab[kept].astype(np.float32))
    assert len(gamut_bins(SPEC)) == 260


def test_gamut_bins_cover_srgb_and_nothing_far_outside():
    centres = gamut_bins(SPEC)
    assert np.allclose(centres / SPEC.ab_bin_size, np.round(centres / SPEC.ab_bin_size))  # a grid
    rng = np.random.default_rng(0)
    lab = color.rgb_to_lab(rng.random((20000, 3), dtype=np.float32))
    d = np.sqrt(((lab[:, None, 1:] - centres[None]) ** 2).sum(-1)).min(1)
    assert d.max() <= SPEC.ab_bin_size * np.sqrt(2) / 2 + 1e-3  # every sRGB colour lies in some kept bin
    # and every kept bin holds sRGB colours nearby (no bin in the void beyond the gamut)
    dense = color.rgb_to_lab(np.stack(np.meshgrid(*[np.linspace(0, 1, 41, dtype=np.float32)] * 3), -1).reshape(-1, 3))
    d_back = np.sqrt(((centres[:, None] - dense[None, :, 1:]) ** 2).sum(-1)).min(1)
    assert d_back.max() <= SPEC.ab_bin_size


def _head(q_logits: dict[int, float], spec: ModelSpec = SPEC) -> tuple[DistributionHead, torch.Tensor]:
    head = DistributionHead(8, spec)
    logits = torch.full((1, head.bins, 1, 1), -30.0)
    for q, v in q_logits.items():
        logits[0, q] = v
    return head, logits


def _bin(head: DistributionHead, a: float, b: float) -> int:
    return int(((head.centres * SPEC.ab_scale - torch.tensor([a, b])) ** 2).sum(1).argmin())


def test_decode_is_the_annealed_mean():
    head, _ = _head({})
    red, grey = _bin(head, 60, 50), _bin(head, 0, 0)
    head, logits = _head({red: np.log(0.6), grey: np.log(0.4)})
    centre_red = head.centres[red] * SPEC.ab_scale
    mean = head.decode(logits, 1.0)[0, :, 0, 0] * SPEC.ab_scale
    assert torch.allclose(mean, 0.6 * centre_red + 0.4 * head.centres[grey] * SPEC.ab_scale, atol=1e-3)
    sharp = head.decode(logits, 0.38)[0, :, 0, 0] * SPEC.ab_scale
    # p^(1/T) renormalised: 0.6^2.63 / (0.6^2.63 + 0.4^2.63) of the way to red
    w = 0.6 ** (1 / 0.38) / (0.6 ** (1 / 0.38) + 0.4 ** (1 / 0.38))
    assert torch.allclose(sharp, w * centre_red + (1 - w) * head.centres[grey] * SPEC.ab_scale, atol=1e-3)
    assert sharp.norm() > mean.norm()  # lower temperature: towards the likelier colour, more chroma
    # The prior correction favours rare bins: red rare, grey common.
    head.log_prior.fill_(np.log(1e-3))
    head.log_prior[red] = np.log(1e-4)
    head.log_prior[grey] = np.log(0.5)
    corrected = head.decode(logits, 1.0, prior_alpha=0.5)[0, :, 0, 0] * SPEC.ab_scale
    assert corrected.norm() > mean.norm()
    # A dominant bin decodes to its centre; decoding is float32 even from float16 logits.
    one = head.decode(torch.where(torch.arange(head.bins)[None, :, None, None] == red, 20.0, -20.0).half(), 0.38)
    assert one.dtype == torch.float32 and torch.allclose(one[0, :, 0, 0], head.centres[red], atol=1e-4)


def test_rebalanced_soft_targets_and_loss_follow_zhang_et_al():
    head = DistributionHead(8, SPEC)
    prior = torch.rand(head.bins) ** 4 + 1e-4
    prior /= prior.sum()
    w = rebalance_weights(prior)
    assert float((prior * w).sum()) == pytest.approx(1.0, abs=1e-5)
    lam = 0.5
    expected = 1 / ((1 - lam) * prior.numpy() + lam / head.bins)
    assert np.allclose(w.numpy(), expected / (prior.numpy() * expected).sum(), rtol=1e-5)
    loss = DistributionLoss(head.centres, prior.log(), SPEC.ab_scale)
    ab = torch.rand(2, 2, 6, 8) * 1.2 - 0.6
    soft, idx, pix_w = loss.targets(ab, (6, 8))
    # Brute force in numpy, Lab units: the 5 nearest centres, Gaussian weights of sigma 5, renormalised.
    centres = head.centres.numpy() * SPEC.ab_scale
    flat = ab.permute(0, 2, 3, 1).reshape(-1, 2).numpy() * SPEC.ab_scale
    for i in range(0, len(flat), 7):
        d2 = ((centres - flat[i]) ** 2).sum(1)
        near = np.argsort(d2)[:5]
        g = np.exp(-d2[near] / (2 * 5.0**2))
        assert list(idx[i].numpy()) == list(near)
        assert np.allclose(soft[i].numpy(), g / g.sum(), atol=1e-5)
        assert float(pix_w[i]) == pytest.approx(float(w[near[0]]), rel=1e-5)
    logits = torch.randn(2, head.bins, 6, 8)
    logp = torch.log_softmax(logits, 1).permute(0, 2, 3, 1).reshape(-1, head.bins)
    ce = -(soft * logp.gather(1, idx)).sum(1)
    assert float(loss(logits, ab)) == pytest.approx(float((pix_w * ce).mean()), rel=1e-5)  # mean of w * CE, no renormalisation


def test_served_decoding_is_the_exact_annealed_mean_even_when_confident():
    """``serve`` (channels-last, the exported form) equals softmax((logits - alpha log prior) / T) . centres, upsampled,
    at low temperatures and for logits far apart (where a clamped exponent would flatten the top bins)."""
    torch.manual_seed(1)
    head = DistributionHead(8, SPEC)
    with torch.no_grad():
        head.logits.weight.mul_(40.0)  # logits tens apart
        head.log_prior.copy_(torch.log_softmax(torch.randn(head.bins), 0))
    features = torch.rand(2, 8, 5, 7) * 3
    with torch.no_grad():
        logits = head(features)
    assert float((logits.max(1).values - logits.mean(1)).min()) > 30
    for t in (1.0, 0.38, 0.1):
        for alpha in (0.0, 0.5, -0.5):
            spec = ModelSpec(encoder="efficientnet-lite0", ab_head="distribution", ab_temperature=t, ab_prior_alpha=alpha)
            p = torch.softmax((logits - alpha * head.log_prior[None, :, None, None]) / t, 1)
            expected = torch.nn.functional.interpolate(torch.einsum("nqhw,qc->nchw", p, head.centres), scale_factor=2.0,
                                                       mode="bilinear", align_corners=False)
            # float32 rounding of logits in the hundreds (at T 0.1): 1e-4 is 0.01 Lab units
            assert torch.allclose(head.serve(features, spec), expected, atol=1e-4)
            assert torch.allclose(head.decode_full(logits, spec), expected, atol=1e-4)


def test_prior_of_a_red_picture_peaks_at_red():
    centres = gamut_bins(SPEC)
    red = np.zeros((32, 32, 3), np.uint8)
    red[..., 0] = 200
    prior = estimate_prior([red], centres)
    assert prior.sum() == pytest.approx(1.0)
    target = color.rgb_to_lab(red[:1, :1].astype(np.float32) / 255)[0, 0, 1:]
    assert np.linalg.norm(centres[prior.argmax()] - target) <= SPEC.ab_bin_size


def test_a_head_learns_colours_with_the_rebalanced_loss():
    """A real learning test: features that say which of three colours a pixel has; the head learns to decode them,
    under a skewed prior (rebalancing at work)."""
    torch.manual_seed(0)
    head = DistributionHead(3, SPEC)
    with torch.no_grad():
        head.log_prior.copy_(torch.log_softmax(3 * torch.randn(head.bins), 0))
    colours = torch.tensor([[60.0, 50.0], [-40.0, 30.0], [5.0, -40.0]]) / SPEC.ab_scale
    which = torch.randint(0, 3, (4, 8, 8))
    features = torch.nn.functional.one_hot(which, 3).permute(0, 3, 1, 2).float()
    ab = colours[which].permute(0, 3, 1, 2)
    loss = DistributionLoss(head.centres, head.log_prior, SPEC.ab_scale)
    opt = torch.optim.Adam(head.parameters(), lr=0.1)
    first = None
    for _ in range(150):
        opt.zero_grad()
        value = loss(head(features), ab)
        first = first if first is not None else value.item()
        value.backward()
        opt.step()
    assert value.item() < 0.5 * first
    decoded = head.decode(head(features), 0.38)
    assert (decoded - ab).abs().max() * SPEC.ab_scale < 4.0


def _train(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trainer.train", *args, "--quiet", "--threads", "1"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def regression_default(folder: Path) -> Path:
    """The embedded default as a regression model: the bundle itself when it is one, else a checkpoint of its trunk
    (encoder, fusion, decoder) with a fresh regression head, so that the head swap below is what gets exercised."""
    from dataclasses import replace

    from safetensors.torch import load_file

    from conftest import save_checkpoint
    from runtime.model.generator import build_generator

    bundle = ROOT / "runtime/model/weights/default.json"
    spec, weights, _ = checkpoint.init_source(bundle)
    if spec.ab_head == "regression":
        return bundle
    g = build_generator(replace(spec, ab_head="regression", ab_gain=1.0))
    heads = ("distribution.", "regression_decoder.")  # a blend's second decoder goes too
    trunk = {k: v.float() for k, v in load_file(str(weights)).items() if not k.startswith(heads)}
    missing, unexpected = g.load_state_dict(trunk, strict=False)
    assert not unexpected and all(k.startswith("head.") for k in missing)
    return save_checkpoint(folder, g)


@pytest.fixture(scope="module")
def distribution_run(tmp_path_factory) -> Path:
    """Fine-tune the embedded default's network with a regression head into a distribution head: one epoch
    (5 photos, batch 2 = 2 steps) of two, then stop."""
    from test_trainer import make_images

    tmp = tmp_path_factory.mktemp("dist")
    data = make_images(tmp / "imgs", n=6)
    run = tmp / "run"
    r = _train(["--data", str(data), "--out", str(run), "--init", str(regression_default(tmp / "regression")),
                "--ab-head", "distribution", "--lambda-l1", "0", "--crop-size", "32", "--load-size", "64",
                "--batch-size", "2", "--pretrain-epochs", "2", "--epochs", "0", "--max-steps", "2", "--val-count", "1",
                "--val-size", "64", "--ema", "0.9"])
    assert r.returncode == 0, r.stderr
    assert "initialised weights from" in r.stderr and "colour prior" in r.stderr
    return run


def test_fine_tune_a_regression_default_into_a_distribution_head(distribution_run):
    spec = checkpoint.load_spec(distribution_run)
    assert spec.ab_head == "distribution" and spec.hints and spec.hint_levels and spec.ab_gain == 1.0
    g = checkpoint.load_generator(distribution_run)
    keys = g.state_dict().keys()
    assert not any(k.startswith("head.") for k in keys)
    prior = g.distribution.log_prior.exp()
    assert float(prior.sum()) == pytest.approx(1.0, abs=1e-4) and float(prior.max() / prior.min()) > 10  # set from data
    # Fine-tuned, not restarted: the decoder keeps the default's weights (2 steps at lr 2e-4 move them little).
    from safetensors.torch import load_file

    default = load_file(str(ROOT / "runtime/model/weights/default.safetensors"))
    name = "up.0.conv.0.0.weight"
    assert torch.allclose(g.state_dict()[name], default[name].float(), atol=0.01)
    rows = list(csv.DictReader((distribution_run / "log.csv").open()))
    assert len(rows) == 1 and 0 < float(rows[0]["loss_ce"]) < 20 and float(rows[0]["val_psnr"]) > 0
    r = _train(["--resume", str(distribution_run)])
    assert r.returncode == 0, r.stderr
    assert json.loads((checkpoint.resolve(distribution_run) / "state.json").read_text())["epoch"] == 2
    assert torch.equal(checkpoint.load_generator(distribution_run).distribution.log_prior, g.distribution.log_prior)


def test_export_decodes_in_both_graphs_and_serves_the_temperature(distribution_run, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from safetensors import safe_open

    from runtime.image.colorizer import Colorizer
    from runtime.model.bundle import bundle_paths
    from trainer.export_onnx import FP16_TOLERANCE, export_bundle

    # A head more confident than its initial one, so that the checks are not vacuous.
    ckpt = checkpoint.resolve(distribution_run)
    g = checkpoint.load_generator(ckpt)
    with torch.no_grad():
        g.distribution.logits.weight.mul_(3.0)
    from conftest import save_checkpoint

    model = save_checkpoint(tmp_path / "ckpt", g)
    worst = {}
    for t in (1.0, 0.3):
        out = tmp_path / f"t{int(t * 10)}"
        worst[t] = export_bundle(model, out, render_size=64, ab_temperature=t, weights_dtype="float16" if t == 1 else "float32")
        assert json.loads(out.with_suffix(".json").read_text())["spec"]["ab_temperature"] == t
        assert worst[t]["onnx"] < 0.05
        if t == 1.0:  # a sharp decoding's worst pixel may flip between distant bins in FP16: its median is below
            assert worst[t]["onnx_fp16"] < FP16_TOLERANCE
    import onnx

    ops = {n.op_type for n in onnx.load(str(bundle_paths(tmp_path / "t3")["onnx"])).graph.node}
    assert {"Softmax", "MatMul"} <= ops and "Einsum" not in ops  # the channels-last decoding ONNX Runtime runs fast
    with safe_open(str(bundle_paths(tmp_path / "t10")["weights"]), "pt") as f:
        assert f.get_tensor("distribution.centres").dtype == torch.float32
        assert f.get_tensor("up.0.conv.0.0.weight").dtype == torch.float16
    L = np.linspace(0, 100, 64 * 96, dtype=np.float32).reshape(1, 1, 64, 96)
    hints = np.zeros((1, 3, 64, 96), np.float32)
    chroma = {}
    for t in (1.0, 0.3):
        stem = tmp_path / f"t{int(t * 10)}"
        ab = ort.InferenceSession(str(bundle_paths(stem)["onnx"])).run(None, {"L": L, "hints": hints})[0]
        ab16 = ort.InferenceSession(str(bundle_paths(stem)["onnx_fp16"])).run(None, {"L": L, "hints": hints})[0]
        assert float(np.median(np.abs(ab16 - ab))) < 0.5, t
        chroma[t] = float(np.hypot(ab[0, 0], ab[0, 1]).mean())
        with Colorizer.load(str(stem) + ".json", backend="torch-cpu") as c, \
                Colorizer.load(str(stem) + ".json", backend="onnxruntime") as c_ort:  # torch serves the same decoding
            diff = np.abs(c.predict_ab(L) - c_ort.predict_ab(L))
            if t == 0.3:  # float32 weights in both: the same sharp decoding
                assert diff.max() < 0.05
            else:  # torch's float16-stored weights against the graph's float32 ones: as the FP16 graph above
                assert float(np.median(diff)) < 0.5 and float(np.percentile(diff, 99)) < FP16_TOLERANCE, t
    assert chroma[0.3] > 1.2 * chroma[1.0] > 0
    with pytest.raises(SystemExit, match="needs a model with a distribution or blend head"):
        from conftest import make_checkpoint

        export_bundle(make_checkpoint(tmp_path / "reg"), tmp_path / "bad", ab_temperature=0.5)


def test_distribution_generator_shapes():
    g = build_generator(SPEC).eval()
    x = torch.zeros(1, 1, 64, 64)
    with torch.no_grad():
        assert g(x).shape == (1, 2, 64, 64)
        assert g(x, return_logits=True).shape == (1, g.distribution.bins, 32, 32)


def test_a_log_keeps_its_own_columns_when_a_newer_trainer_appends(tmp_path):
    from trainer.validation import log_csv

    log = tmp_path / "log.csv"
    log.write_text("epoch,step,loss_ce,loss_l1\n1,10,5.0,0.2\n")
    log_csv(log, {"epoch": 2, "step": 20, "loss_l1": 0.1, "loss_ce": 4.0, "val_psnr": 22.0})
    rows = list(csv.DictReader(log.open()))
    assert rows[-1] == {"epoch": "2", "step": "20", "loss_ce": "4.0", "loss_l1": "0.1"}


def test_trainer_rejects_a_distribution_head_on_the_unet_in_one_line():
    r = _train(["--data", str(ROOT), "--ab-head", "distribution", "--encoder", "unet"])
    assert r.returncode == 2 and "Traceback" not in r.stderr and "efficientnet" in r.stderr
