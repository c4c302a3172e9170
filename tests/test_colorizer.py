"""The public API on the tiny bundle: geometry, modes, alpha, determinism, backend parity."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from runtime import Colorizer
from runtime.image import color
from runtime.backends.base import BackendUnavailable
from runtime.image.geometry import plan_geometry
from runtime.model.bundle import ModelError


@pytest.fixture(scope="module")
def colorizer(tiny_bundle):
    with Colorizer.load(str(tiny_bundle), backend="onnxruntime", render_size=64) as c:
        yield c


def test_default_model_missing_is_one_clear_line(monkeypatch, tmp_path):
    from runtime.model import bundle as models

    monkeypatch.setattr(models, "DEFAULT_STEM", tmp_path / "default")
    with pytest.raises(ModelError, match="embedded default model not found") as err:
        Colorizer.load()
    assert "\n" not in str(err.value)


def test_unavailable_backend_group_lists_reasons(tiny_bundle):
    with pytest.raises(BackendUnavailable) as err:
        Colorizer.load(str(tiny_bundle), backend="gpu")
    assert "tensorrt" in str(err.value) and "torch-cuda" in str(err.value)
    with pytest.raises(ValueError):
        Colorizer.load(str(tiny_bundle), backend="nonsense")


@pytest.mark.parametrize("hw", [(1000, 250), (250, 1000), (40, 30), (513, 513)])
def test_geometry_keeps_aspect_and_pads_to_multiple(hw):
    g = plan_geometry(*hw, 64, 256)
    assert g.net_h % 64 == 0 and g.net_w % 64 == 0 and g.h <= g.net_h and g.w <= g.net_w
    assert max(g.h, g.w) == min(256, max(hw))
    assert abs(g.h / g.w - hw[0] / hw[1]) < 0.02 * hw[0] / hw[1] + 1 / min(g.h, g.w)


def test_output_keeps_size_and_luminance(colorizer, grey_image):
    out = colorizer.colorize_array(grey_image)
    assert out.shape == grey_image.shape + (3,) and out.dtype == np.float32
    chroma = np.abs(color.rgb_to_lab(out)[..., 1:]).mean()
    assert chroma > 2.0  # really colourful, so the L check below is not on grey
    L_in = color.grey_to_l(grey_image / np.float32(255))
    L_out = color.rgb_to_l(out)
    # L is kept wherever the colour fits the gamut (clipping changes it elsewhere)
    assert np.median(np.abs(L_out - L_in)) < 1.0


def test_deterministic_and_steps_equal_whole(colorizer, grey_image):
    a = colorizer.colorize_array(grey_image)
    b = colorizer.colorize_array(grey_image)
    assert np.array_equal(a, b)
    L = color.grey_to_l(grey_image / np.float32(255))
    net_L, geom = colorizer.prepare(L)
    assert net_L.shape[2] % colorizer.spec.size_multiple == 0
    steps = colorizer.finish(L, colorizer.predict_ab(net_L)[0], geom)
    assert np.abs(steps - a).max() < 1e-5


def test_saturation_zero_gives_grey_and_scales_chroma(colorizer, grey_image):
    grey = colorizer.colorize_array(grey_image, saturation=0.0)
    assert np.abs(grey[..., 0] - grey[..., 2]).max() < 1e-3
    half = color.rgb_to_lab(colorizer.colorize_array(grey_image, saturation=0.5))[..., 1:]
    full = color.rgb_to_lab(colorizer.colorize_array(grey_image))[..., 1:]
    assert 0.3 < np.abs(half).mean() / np.abs(full).mean() < 0.7


def test_render_size_changes_network_input_not_output_size(colorizer, grey_image):
    a = colorizer.colorize_array(grey_image, render_size=64)
    b = colorizer.colorize_array(grey_image, render_size=128)
    assert a.shape == b.shape and not np.array_equal(a, b)
    with pytest.raises(ValueError):
        colorizer.colorize_array(grey_image, render_size=8)


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I"])
def test_pil_modes(colorizer, grey_image, mode):
    base = Image.fromarray(grey_image)
    if mode == "I;16":
        img = Image.fromarray(grey_image.astype(np.uint16) * 257)
    elif mode == "I":
        img = Image.fromarray(grey_image.astype(np.int32) * 257)
    elif mode == "LA":
        img = base.convert("LA")
        img.putalpha(Image.fromarray((np.arange(grey_image.size) % 256).reshape(grey_image.shape).astype(np.uint8)))
    else:
        img = base.convert(mode)
    out = colorizer.colorize(img)
    assert out.size == img.size
    assert out.mode == ("RGBA" if mode in ("LA", "RGBA") else "RGB")
    if mode == "LA":
        assert np.array_equal(np.asarray(out.getchannel("A")), np.asarray(img.getchannel("A")))
    if mode in ("L", "RGB", "I;16", "I", "P"):
        # a grey picture in any of these encodings has the same luminance -> the same colours
        ref = np.asarray(colorizer.colorize(base).convert("RGB"), dtype=int)
        diff = np.abs(np.asarray(out.convert("RGB"), dtype=int) - ref)
        if mode.startswith("I"):
            # 16-bit takes the float-L path (network input resized in L, not in 8-bit sRGB values)
            assert diff.mean() < 0.5 and diff.max() <= 10
        else:
            assert diff.max() <= 2


def test_colour_input_is_colorized_from_its_luminance(colorizer):
    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
    out = colorizer.colorize_array(rgb)
    L = color.rgb_to_l(rgb / np.float32(255))
    net_L, geom = colorizer.prepare(L)
    assert np.abs(out - colorizer.finish(L, colorizer.predict_ab(net_L)[0], geom)).max() < 2e-3


def test_backends_agree(tiny_bundle, grey_image):
    pytest.importorskip("torch")
    with Colorizer.load(str(tiny_bundle), backend="torch-cpu", render_size=64) as tc, \
            Colorizer.load(str(tiny_bundle), backend="onnxruntime", render_size=64) as oc:
        assert (tc.backend_name, oc.backend_name) == ("torch-cpu", "onnxruntime")
        L = color.grey_to_l(grey_image / np.float32(255))
        net_L, _ = tc.prepare(L)
        assert np.abs(tc.predict_ab(net_L) - oc.predict_ab(net_L)).max() < 1e-2


def test_checkpoint_dir_loads_on_torch(tiny_checkpoint, grey_image):
    pytest.importorskip("torch")
    with Colorizer.load(str(tiny_checkpoint)) as c:  # no ONNX there: auto falls through to torch-cpu
        assert c.backend_name == "torch-cpu"
        assert c.colorize_array(grey_image).shape == grey_image.shape + (3,)


def test_mirror_averaging_is_the_mean_of_the_picture_and_its_mirror_image(tiny_bundle, grey_image):
    """The default network answer is the mean of the backend's answers for the picture and its mirror image,
    mirrored back; mirror=False is one pass; and either way the whole-image path equals the steps."""
    with Colorizer.load(str(tiny_bundle), backend="onnxruntime") as c:
        assert c.mirror
        L = color.grey_to_l(grey_image / np.float32(255))
        net_L, geom = c.prepare(L)
        calls = []
        run = c.backend.run
        c.backend.run = lambda x, h=None: (calls.append(x.copy()), run(x, h))[1]
        got = c.predict_ab(net_L)
        assert len(calls) == 1 and np.array_equal(calls[0], np.concatenate([net_L, net_L[..., ::-1]]))  # one batch of 2
        once, mirrored = run(net_L), run(np.ascontiguousarray(net_L[..., ::-1]))[..., ::-1]
        assert not np.allclose(once, mirrored, atol=1e-3)  # the random-weight model is not mirror-symmetric
        assert np.allclose(got, (once + mirrored) / 2, atol=1e-6)
        c.mirror = False
        calls.clear()
        assert np.array_equal(c.predict_ab(net_L), once) and len(calls) == 1
        c.backend.run = run
        assert np.abs(c.colorize_array(grey_image) - c.finish(L, once[0], geom)).max() < 1e-5
