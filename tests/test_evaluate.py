"""trainer.evaluate and trainer.contact_sheet: the evaluation command end to end on tiny synthetic photos.

Most tests run the command against a stand-in colorizer (adds a fixed chroma) so they check evaluate's
own logic exactly; one test runs the real runtime.Colorizer on conftest's tiny random-weight bundle (ONNX Runtime and torch).
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

import runtime
from runtime.image.color import lab_to_rgb, rgb_to_l
from runtime.model.spec import ModelSpec
from trainer import evaluate
from trainer.contact_sheet import contact_sheet
from trainer.metrics import colourfulness, score_image

STAND_IN_AB = (18.0, -12.0)


class StandInColorizer:
    """Follows the Colorizer contract in docs/CONTRACTS.md; the prediction is L with a fixed ab."""

    instances: list["StandInColorizer"] = []

    def __init__(self, model, backend, render_size, mirror=True):
        self.load_args = (model, backend, render_size)
        self.mirror = mirror
        self.spec = ModelSpec(depth=3, ngf=4, fusion=False)
        self.backend_name = "stand-in"
        self.render_size = render_size or 64
        self.closed = False
        StandInColorizer.instances.append(self)

    @classmethod
    def load(cls, model=None, backend="auto", render_size=None, threads=None, hint_mode="spread", mirror=True):
        return cls(model, backend, render_size, mirror)

    def colorize_array(self, img, saturation=1.0):
        return predict(np.asarray(img), saturation)

    def close(self):
        self.closed = True


def predict(grey_rgb: np.ndarray, saturation: float = 1.0) -> np.ndarray:
    L = rgb_to_l(grey_rgb)
    a, b = (np.full_like(L, v * saturation) for v in STAND_IN_AB)
    return lab_to_rgb(np.stack([L, a, b], axis=-1))


def _colour_image(seed: int, h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([x, y, 1 - x * y], axis=-1) * rng.uniform(0.5, 1.0, 3)
    return (np.clip(base + rng.normal(0, 0.03, base.shape), 0, 1) * 255).astype(np.uint8)


@pytest.fixture
def photo_dir(tmp_path):
    """3 colour photos (two PNG, one JPEG in a subfolder), 2 greyscale ones, and a stray text file."""
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    Image.fromarray(_colour_image(0, 40, 56)).save(root / "a.png")
    Image.fromarray(_colour_image(1, 48, 32)).save(root / "b.PNG")
    Image.fromarray(_colour_image(2, 36, 36)).save(root / "sub" / "c.jpg", quality=95)
    Image.fromarray(np.full((20, 20), 128, np.uint8)).save(root / "grey_mode_L.png")
    grey_rgb = np.repeat(_colour_image(3, 24, 24)[..., :1], 3, axis=2)
    Image.fromarray(grey_rgb).save(root / "sub" / "grey_as_rgb.jpg", quality=90)
    (root / "notes.txt").write_text("not an image")
    return root


@pytest.fixture
def stand_in(monkeypatch):
    StandInColorizer.instances.clear()
    monkeypatch.setattr(runtime, "Colorizer", StandInColorizer, raising=False)
    return StandInColorizer


def _strict_json(path):
    def no_constants(name):
        raise AssertionError(f"non-standard JSON constant {name} in {path}")

    return json.loads(path.read_text(), parse_constant=no_constants)


def test_evaluate_end_to_end_with_stand_in(photo_dir, tmp_path, stand_in, capsys):
    out = tmp_path / "out"
    argv = [str(photo_dir), "--out", str(out), "--model", "m.json", "--backend", "cpu", "--render-size", "96"]
    assert evaluate.main(argv) == 0

    (inst,) = stand_in.instances
    assert inst.load_args == ("m.json", "cpu", 96) and inst.closed and inst.mirror
    result = _strict_json(out / "metrics.json")
    assert result["settings"]["mirror"] is True
    assert result["counts"] == {"scored": 3, "skipped_greyscale": 2, "unreadable": 0}
    assert [r["path"] for r in result["images"]] == ["a.png", "b.PNG", "sub/c.jpg"]
    assert result["model"]["backend"] == "stand-in" and result["model"]["spec"]["ngf"] == 4
    assert result["settings"]["render_size"] == 96 and result["settings"]["saturation"] == 1.0

    # Per-image numbers are the metrics of (stand-in prediction, original file), and the grey baseline's.
    for rec in result["images"]:
        truth = np.asarray(Image.open(photo_dir / rec["path"]).convert("RGB")).astype(np.float32) / 255
        grey = evaluate.grey_baseline(truth)
        assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()  # neutral
        np.testing.assert_allclose(rgb_to_l(grey), rgb_to_l(truth), atol=0.05)  # same L as the truth
        for key, value in score_image(predict(grey), truth).items():
            assert rec["model"][key] == pytest.approx(value, rel=1e-6), key
        assert rec["grey"]["cf_pred"] == 0.0
        assert rec["grey"]["psnr"] == pytest.approx(score_image(grey, truth)["psnr"], rel=1e-6)

    s = result["summary"]
    cf_pred = np.mean([r["model"]["cf_pred"] for r in result["images"]])
    cf_truth = np.mean([colourfulness(np.asarray(Image.open(photo_dir / r["path"]).convert("RGB"))) for r in result["images"]])
    assert s["model"]["cf_ratio"] == pytest.approx(cf_pred / cf_truth, rel=1e-5)
    assert s["grey"]["cf_ratio"] == 0.0
    assert s["psnr_vs_grey"] == pytest.approx(s["model"]["psnr"] - s["grey"]["psnr"])

    with Image.open(out / "contact_sheet.png") as sheet:
        assert sheet.mode == "RGB" and sheet.height > 3 * evaluate.SHEET_TILE
    printed = capsys.readouterr().out
    assert "grey (ab = 0)" in printed and "PSNR vs grey" in printed and "2 greyscale skipped" in printed


def test_evaluate_limit_and_saturation(photo_dir, tmp_path, stand_in):
    out = tmp_path / "out"
    assert evaluate.main([str(photo_dir), "--out", str(out), "--limit", "2", "--saturation", "0", "--no-mirror"]) == 0
    result = _strict_json(out / "metrics.json")
    assert result["counts"]["scored"] == 2
    assert stand_in.instances[-1].mirror is False and result["settings"]["mirror"] is False
    # Saturation 0 makes the stand-in's prediction the grey baseline itself.
    for rec in result["images"]:
        assert rec["model"]["psnr"] == pytest.approx(rec["grey"]["psnr"], abs=1e-3)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "missing", "not a folder"),
        (lambda d: d, "no images"),
        (lambda d: _only_grey(d), "no colour images"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, stand_in, capsys, make, message):
    (tmp_path / "readme.txt").write_text("x")
    code = evaluate.main([str(make(tmp_path)), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert message in err[-1] and err[-1].startswith("colorize-gan-evaluate: error:")
    assert not (tmp_path / "out" / "metrics.json").exists()


def _only_grey(d):
    Image.fromarray(np.full((16, 16), 90, np.uint8)).save(d / "g.png")
    return d


def test_evaluate_pairs_for_the_training_loop():
    truths = [_colour_image(i, 24, 30).astype(np.float32) / 255 for i in range(2)]
    res = evaluate.evaluate_pairs([(truths[0], truths[0]), (predict(evaluate.grey_baseline(truths[1])), truths[1])], names=["x", "y"])
    assert [r["name"] for r in res["images"]] == ["x", "y"]
    assert res["images"][0]["model"]["psnr"] == math.inf and math.isfinite(res["images"][0]["grey"]["psnr"])
    assert res["summary"]["count"] == 2 and res["summary"]["psnr_vs_grey"] == math.inf
    with pytest.raises(ValueError):
        evaluate.evaluate_pairs([])


def test_sheet_sampler_spreads_rows_over_a_long_stream():
    sampler = evaluate._SheetSampler(rows=12, tile=16)
    img = np.zeros((8, 8, 3), np.float32)
    for i in range(100):
        sampler.offer(i, (img,), str(i))
        assert len(sampler.kept) <= 24
    picked = [p[0] for p in sampler.pick()]
    assert len(picked) == 12 and picked[0] == 0 and picked[-1] >= 90 and picked == sorted(picked)


def test_contact_sheet_grid_keeps_aspect_ratio(tmp_path):
    red_wide = np.zeros((20, 80, 3), np.float32)
    red_wide[..., 0] = 1
    blue_tall = np.zeros((80, 20, 3), np.uint8)
    blue_tall[..., 2] = 255
    grey = np.full((30, 30), 0.5, np.float32)
    path = contact_sheet([(grey, red_wide, blue_tall), (grey, grey, grey)], tmp_path / "s" / "sheet.png", tile=32)
    sheet = np.asarray(Image.open(path).convert("RGB"))
    # Cells: height 32, width min(2 * 32, widest need 128) = 64, 4 px gaps, 18 px label header.
    assert sheet.shape == (18 + 2 * (32 + 4) + 4, 3 * (64 + 4) + 4, 3)
    top, left_mid = 18 + 4, 4 + 64 + 4 + 32  # first row, middle of the prediction cell
    assert tuple(sheet[top + 16, left_mid]) == (255, 0, 0)  # the wide image, scaled to 64x16, centred
    assert tuple(sheet[top + 2, left_mid]) == (32, 32, 32)  # background above it: not stretched
    tall_mid = 4 + 2 * (64 + 4) + 32
    assert tuple(sheet[top + 16, tall_mid]) == (0, 0, 255) and tuple(sheet[top + 16, tall_mid - 20]) == (32, 32, 32)
    assert (sheet[:14, :60] > 150).any()  # a label was drawn in the header
    with pytest.raises(ValueError):
        contact_sheet([], tmp_path / "empty.png")


@pytest.mark.parametrize("backend", ["onnxruntime", "torch-cpu"])
def test_evaluate_with_the_real_colorizer_and_the_tiny_model(photo_dir, tmp_path, tiny_bundle, backend):
    from runtime.backends.registry import availability

    reason = availability(backend)
    if reason is not None:
        pytest.skip(reason)
    out = tmp_path / "out"
    assert evaluate.main([str(photo_dir), "--model", str(tiny_bundle), "--backend", backend, "--out", str(out)]) == 0
    result = _strict_json(out / "metrics.json")
    assert result["counts"]["scored"] == 3
    assert result["model"]["backend"] == backend and result["model"]["spec"]["name"] == "tiny-test"
    # The numbers are those of the runtime's own prediction for the grey input.
    rec = result["images"][0]
    truth = np.asarray(Image.open(photo_dir / rec["path"]).convert("RGB")).astype(np.float32) / 255
    with runtime.Colorizer.load(str(tiny_bundle), backend) as c:
        pred = c.colorize_array(evaluate.grey_baseline(truth))
    for key, value in score_image(pred, truth).items():
        assert rec["model"][key] == pytest.approx(value, rel=1e-5), key
    assert result["summary"]["model"]["cf_pred"] > 1  # the tiny net does colour its input
    assert (out / "contact_sheet.png").stat().st_size > 0


def test_holdout_scores_exactly_the_trainers_validation_split(photo_dir, tmp_path, stand_in):
    from trainer.files import find_images, split

    _, val = split(find_images(photo_dir), 3, None, seed=4)
    out = tmp_path / "out"
    assert evaluate.main([str(photo_dir), "--out", str(out), "--holdout", "3", "--seed", "4"]) == 0
    result = _strict_json(out / "metrics.json")
    colour = {"a.png", "b.PNG", "sub/c.jpg"}
    expected = [str(p.relative_to(photo_dir)) for p in val if str(p.relative_to(photo_dir)) in colour]
    assert [r["path"] for r in result["images"]] == expected
    assert result["counts"]["scored"] + result["counts"]["skipped_greyscale"] + result["counts"]["unreadable"] == 3


def test_greyscale_rule_is_the_trainers(tmp_path):
    """The evaluator skips what the trainer skips: mean Lab chroma under 4, so faint toning and JPEG chroma noise on a
    grey scan count as grey, and a sepia print counts as colour."""
    from trainer import data, files

    assert data.is_greyscale is files.is_greyscale
    L = np.linspace(20, 90, 64 * 64, dtype=np.float32).reshape(64, 64)

    def toned(chroma: float) -> np.ndarray:  # a warm tone of the given Lab chroma over the whole image
        a, b = chroma * 0.5, chroma * np.sqrt(0.75)
        lab = np.stack([L, np.full_like(L, a), np.full_like(L, b)], -1)
        return (np.clip(lab_to_rgb(lab), 0, 1) * 255 + 0.5).astype(np.uint8)

    for name, chroma in (("faint.png", 2.0), ("sepia.png", 14.0)):
        Image.fromarray(toned(chroma)).save(tmp_path / name)
    assert files.is_greyscale(toned(2.0)) and not files.is_greyscale(toned(14.0))
    assert evaluate.load_colour(tmp_path / "faint.png") is None
    assert evaluate.load_colour(tmp_path / "sepia.png") is not None
