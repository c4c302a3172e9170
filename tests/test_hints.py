"""Colour hints: the one format (runtime/image/hints.py), the API (Colorizer.colorize(hints=...)), the command
(--hints, NAME.hints.png sidecars), and with the embedded default model: a hint turns a region that colour."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from runtime.image.color import rgb_to_lab, rgb_to_l
from runtime.image.colorizer import Colorizer
from runtime.image.geometry import plan_geometry
from runtime.image.hints import HintError, HintPoint, hint_input, hint_pixels, load_hint_image, parse_color

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import tune_hint_spread  # noqa: E402  (the hinted-square scene)


def test_point_becomes_mean_ab_and_mask_at_its_place():
    g = plan_geometry(400, 600, 32, 256)  # scaled by 256/600, padded to 192x256
    net = hint_input([HintPoint(300, 200, (255, 0, 0), 4)], g)
    assert net.shape == (1, 3, g.net_h, g.net_w)
    ys, xs = np.nonzero(net[0, 2])
    assert net[0, 2].max() == 1 and 1 <= len(ys) <= 16
    # Centre maps to (200 * h/400 + top, 300 * w/600 + left).
    assert abs(ys.mean() - (200 * g.h / 400 + g.top)) <= 1.5 and abs(xs.mean() - (300 * g.w / 600 + g.left)) <= 1.5
    red_ab = rgb_to_lab(np.array([[1.0, 0, 0]], np.float32))[0, 1:]
    assert np.allclose(net[0, :2, ys, xs], red_ab, atol=1e-3)  # (n, 2): advanced indices go first
    assert np.count_nonzero(net[0, :2] * (1 - net[0, 2])) == 0


def test_image_and_points_agree_and_footprints_average():
    h, w = 64, 64
    img = np.zeros((h, w, 4), np.uint8)
    img[8:10, 8:10] = (0, 0, 255, 255)  # 4 blue pixels
    img[8:10, 10:12] = (255, 255, 0, 255)  # 4 yellow pixels in the same 4x4 footprint after a 4x downscale
    g = plan_geometry(h, w, 16, 16)
    net = hint_input(img, g)
    assert net[0, 2].sum() == 1  # one network pixel
    ab = rgb_to_lab(np.array([[0, 0, 1.0], [1.0, 1.0, 0]], np.float32))[:, 1:].mean(0)
    y, x = np.argwhere(net[0, 2])[0]
    assert np.allclose(net[0, :2, y, x], ab, atol=1e-2)
    # Semi-transparent pixels (alpha < 128) are not hints; a fully transparent image is no hints at all.
    faint = np.zeros((h, w, 4), np.uint8)
    faint[..., :3] = 200
    faint[..., 3] = 100
    assert hint_input(faint, g) is None and hint_input(np.zeros((h, w, 4), np.uint8), g) is None
    assert hint_input(None, g) is None and hint_input([], g) is None


def test_bad_hints_are_one_line_errors(tmp_path):
    with pytest.raises(HintError, match="#rrggbb"):
        parse_color("#12")
    with pytest.raises(HintError, match="outside 0-255"):
        parse_color((300, 0, 0))
    with pytest.raises(HintError, match="RGBA"):
        hint_pixels(np.zeros((4, 4, 3), np.uint8), 4, 4)
    with pytest.raises(HintError, match="the photo is 5x4"):
        hint_pixels(np.zeros((4, 4, 4), np.uint8), 4, 5)
    with pytest.raises(HintError, match="radius"):
        hint_pixels([(1, 1, "#ff0000", 0)], 4, 4)
    Image.new("RGB", (8, 8)).save(tmp_path / "rgb.png")
    (tmp_path / "junk.png").write_bytes(b"not a png")
    with pytest.raises(HintError, match="no alpha"):
        load_hint_image(tmp_path / "rgb.png")
    with pytest.raises(HintError, match="not a readable image"):
        load_hint_image(tmp_path / "junk.png")
    Image.new("RGBA", (8, 8)).save(tmp_path / "ok.png")
    with pytest.raises(HintError, match="the photo is 9x8"):
        load_hint_image(tmp_path / "ok.png", (9, 8))
    for err in (HintError("x"),):
        assert "\n" not in str(err)


@pytest.fixture(scope="module")
def hinted(hint_bundle):
    with Colorizer.load(str(hint_bundle), backend="onnxruntime") as c:
        yield c


def test_no_hints_is_bit_identical_to_automatic(hinted, grey_image):
    im = Image.fromarray(grey_image)
    auto = np.asarray(hinted.colorize(im))
    for none in (None, [], np.zeros((*grey_image.shape, 4), np.uint8), Image.new("RGBA", im.size, (255, 0, 0, 0))):
        assert np.array_equal(np.asarray(hinted.colorize(im, hints=none)), auto)


def test_hints_change_colour_never_lightness(hinted, grey_image):
    im = Image.fromarray(grey_image)
    auto = np.asarray(hinted.colorize(im)).astype(np.float32) / 255
    got = np.asarray(hinted.colorize(im, hints=[(90, 60, "#00ff00", 10), (30, 30, (255, 0, 255), 6)])).astype(np.float32) / 255
    assert np.abs(got - auto).max() > 0.02  # the hints did something (random-weight model, non-zero hint branch)
    L_in = rgb_to_l(np.repeat(grey_image[..., None].astype(np.float32) / 255, 3, -1))
    # L comes from the photo: wherever the colour fits in sRGB (no channel clipped), the output's L is the input's up to
    # 8-bit rounding. Pure green and magenta hints at this photo's lightness do not fit everywhere: clipping them to the
    # gamut is the one thing that may move L, and only there.
    d_l = np.abs(rgb_to_l(got) - L_in)
    fits = ((got > 0.6 / 255) & (got < 1 - 0.6 / 255)).all(axis=-1)
    assert fits.mean() > 0.3
    assert d_l[fits].max() < 1.0, d_l[fits].max()
    assert d_l.mean() < 3.0  # 2.6: how many pixels clip follows how far the hints' colour reaches (the fill reaches far)


def test_hint_modes_spread_over_the_automatic_answer_or_feed_the_network(hint_bundle, grey_image):
    calls = []
    with Colorizer.load(str(hint_bundle), backend="onnxruntime") as c:
        run = c.backend.run
        c.backend.run = lambda L, h=None: (calls.append(h is not None), run(L, h))[1]
        dots = [(90, 60, "#20c040", 6)]
        auto = c.colorize_array(grey_image)
        spread = c.colorize_array(grey_image, hints=dots)
        assert calls == [False, False]  # "spread" (the default): the network gives its automatic answer only
        c.hint_mode = "network"
        network = c.colorize_array(grey_image, hints=dots)
        assert calls[-1] is True  # "network": the model's own hint input
    green = rgb_to_lab(np.array([[0x20, 0xC0, 0x40]], np.float32) / 255)[0]
    lab_s, lab_a = rgb_to_lab(spread), rgb_to_lab(auto)
    # At the dot the colour is the hint's (its a, b; L stays the photo's); around it the green fades, and what looks
    # nothing like the bright disc it sits on (the dark left side) does not move. A random-weight network sees no
    # objects: the bright far corner looks like the disc to it, and the feature-space fill gives it some of the green,
    # faded by its distance from the dot (28 delta ab around the dot, 7 in the corner when this was written).
    assert np.abs(lab_s[60, 90, 1:] - green[1:]).max() < 6
    assert np.abs(lab_s[:, :25, 1:] - lab_a[:, :25, 1:]).max() < 0.5
    moved = np.abs(lab_s[..., 1:] - lab_a[..., 1:])
    assert moved[:20, 140:].mean() < 0.4 * moved[50:70, 80:100].mean(), (moved[:20, 140:].mean(), moved[50:70, 80:100].mean())
    assert not np.array_equal(network, spread)
    with pytest.raises(ValueError, match="hint_mode"):
        Colorizer.load(str(hint_bundle), backend="onnxruntime", hint_mode="paint")


def test_torch_backend_takes_the_same_hints(hint_bundle, hinted, grey_image):
    pytest.importorskip("torch")
    hints = [(90, 60, "#00ff00", 10)]
    ref = hinted.colorize_array(grey_image, hints=hints)
    with Colorizer.load(str(hint_bundle), backend="torch-cpu") as c:
        got = c.colorize_array(grey_image, hints=hints)
    assert np.abs(got - ref).max() < 2e-3


def test_model_without_hint_inputs_refuses_hints(tiny_bundle, grey_image):
    with Colorizer.load(str(tiny_bundle), backend="onnxruntime") as c:
        assert not c.takes_hints
        c.colorize_array(grey_image, hints=[])  # no hints is fine
        with pytest.raises(HintError, match="takes no colour hints"):
            c.colorize_array(grey_image, hints=[(5, 5, "#ff0000")])


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "runtime.cli.main", *map(str, args)], capture_output=True, text=True, timeout=300)


def test_cli_hints_file_sidecars_and_bad_hint_files(hint_bundle, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    photo = Image.fromarray((np.indices((60, 80)).sum(0) * 2 % 256).astype(np.uint8))
    photo.save(src / "a.jpg")
    photo.save(src / "b.jpg")
    hints = Image.new("RGBA", photo.size, (0, 0, 0, 0))
    ImageDraw.Draw(hints).ellipse((20, 20, 30, 30), fill=(255, 0, 0, 255))
    hints.save(src / "a.hints.png")
    r = _cli(src, "-o", tmp_path / "out", "--model", hint_bundle, "--json")
    assert r.returncode == 0, r.stderr
    res = {json.loads(r.stdout)["results"][i]["input"]: json.loads(r.stdout)["results"][i] for i in range(2)}
    assert len(json.loads(r.stdout)["results"]) == 2  # the sidecar is not itself colorized
    assert res[str(src / "a.jpg")]["hints"] == str(src / "a.hints.png") and res[str(src / "b.jpg")]["hints"] is None
    assert json.loads(r.stdout)["summary"]["with_hints"] == 1
    assert "(1 with colour hints)" in r.stderr
    # An explicit --hints file for one input; the output differs from the automatic one.
    r = _cli(src / "b.jpg", "--hints", src / "a.hints.png", "-o", tmp_path / "b_hinted.png", "--model", hint_bundle)
    assert r.returncode == 0, r.stderr
    assert not np.array_equal(np.asarray(Image.open(tmp_path / "b_hinted.png")), np.asarray(Image.open(tmp_path / "out" / "b.jpg")))
    # Bad hint files: one line, exit 1, nothing written; --hints with several inputs is a usage error.
    Image.new("RGB", photo.size).save(tmp_path / "noalpha.png")
    Image.new("RGBA", (5, 5)).save(tmp_path / "small.png")
    for bad, msg in (("noalpha.png", "no alpha channel"), ("small.png", "the photo is 80x60")):
        out = tmp_path / f"bad_{bad}.jpg"
        r = _cli(src / "a.jpg", "--hints", tmp_path / bad, "-o", out, "--model", hint_bundle)
        assert r.returncode == 1 and msg in r.stderr and "Traceback" not in r.stderr
        assert not out.exists()
    r = _cli(src, "--hints", src / "a.hints.png", "-o", tmp_path / "o2")
    assert r.returncode == 2 and "exactly one input file" in r.stderr and not (tmp_path / "o2").exists()


def test_default_model_follows_a_hint_on_a_flat_region():
    """With the embedded default: three red dots on a flat grey square turn the square red; far from it
    the result stays close to the automatic one."""
    c = Colorizer.load(backend="onnxruntime")
    assert c.takes_hints, "the embedded default model must take colour hints"
    img, (sy, sx) = tune_hint_spread.flat_square_photo()  # the scene the spreading's constants were chosen against
    dots = tune_hint_spread.square_dots((sy, sx))
    auto = c.colorize_array(img)
    got = c.colorize_array(img, hints=dots)
    lab_auto, lab_got = rgb_to_lab(auto), rgb_to_lab(got)
    inner = (slice(sy.start + 10, sy.stop - 10), slice(sx.start + 10, sx.stop - 10))
    a, b = lab_got[inner][..., 1].mean(), lab_got[inner][..., 2].mean()
    target = rgb_to_lab(np.array([[0xD0, 0x20, 0x20]], np.float32) / 255)[0]
    hue = np.degrees(np.arctan2(b, a))
    target_hue = np.degrees(np.arctan2(target[2], target[1]))
    assert a > 15, f"the square is not red: mean a {a:.1f}, b {b:.1f}"
    assert abs(hue - target_hue) < 30, f"hue {hue:.0f} deg, hint hue {target_hue:.0f} deg"
    far = (slice(0, 40), slice(0, 60))  # a corner away from the square
    assert np.abs(lab_got[far][..., 1:] - lab_auto[far][..., 1:]).mean() < 6
    c.close()
