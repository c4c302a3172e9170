"""Colour from a reference photo (runtime/image/reference.py): the API, the command line, sidecars, bad references."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from runtime import Colorizer
from runtime.cli.main import main
from runtime.image.color import rgb_to_lab
from runtime.image.reference import Reference


@pytest.fixture(scope="module")
def colorizer():
    with Colorizer.load(None, backend="onnxruntime") as c:
        yield c


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    """A colour photo-like scene: flat regions of clearly different colour and similar lightness, mild texture."""
    rng = np.random.default_rng(0)
    h, w = 192, 256
    img = np.zeros((h, w, 3), np.float32)
    img[:] = (70, 110, 190)  # blue sky
    img[90:] = (60, 150, 60)  # green field
    img[40:150, 150:220] = (190, 60, 50)  # a red house
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _grey(rgb: np.ndarray) -> Image.Image:
    """The photo's own luminance as a grey picture (CIE L, as the evaluator's grey baseline): Pillow's "L" is a
    weighted sum of gamma-encoded R, G, B, in which this scene's green field and blue sky have the same grey."""
    from runtime.image.color import lab_to_rgb

    L = rgb_to_lab(rgb.astype(np.float32) / 255)[..., 0]
    g = lab_to_rgb(np.stack([L, np.zeros_like(L), np.zeros_like(L)], -1), clip=True)[..., 0]
    return Image.fromarray((g * 255 + 0.5).astype(np.uint8), "L")


def test_the_true_photo_as_reference_gives_back_its_flat_colours(colorizer, scene):
    grey = _grey(scene)
    auto = np.asarray(colorizer.colorize(grey))
    with_ref = np.asarray(colorizer.colorize(grey, reference=Image.fromarray(scene)))
    truth_ab = rgb_to_lab(scene.astype(np.float32) / 255)[..., 1:]
    for region in (np.s_[10:30, 10:100], np.s_[120:180, 20:120], np.s_[60:130, 165:205]):  # sky, field, house
        err_ref = np.abs(rgb_to_lab(with_ref[region].astype(np.float32) / 255)[..., 1:] - truth_ab[region]).mean()
        err_auto = np.abs(rgb_to_lab(auto[region].astype(np.float32) / 255)[..., 1:] - truth_ab[region]).mean()
        assert err_ref < 6 and err_ref < err_auto / 2, (region, err_ref, err_auto)


def test_a_moved_reference_still_colours_and_a_grey_one_changes_nothing(colorizer, scene):
    grey = _grey(scene)
    auto = np.asarray(colorizer.colorize(grey))
    moved = Image.fromarray(np.ascontiguousarray(scene[20:170, 30:240][:, ::-1])).resize((250, 178))
    out = np.asarray(colorizer.colorize(grey, reference=moved))
    house = np.s_[60:130, 165:205]
    a_house = rgb_to_lab(out[house].astype(np.float32) / 255)[..., 1].mean()
    assert a_house > 25  # red: the house took the reference's colour although nothing lines up
    grey_ref = Image.fromarray(scene).convert("L").convert("RGB")
    prepared = colorizer.reference(grey_ref)
    assert isinstance(prepared, Reference) and prepared.colourless
    assert np.array_equal(np.asarray(colorizer.colorize(grey, reference=grey_ref)), auto)  # bit for bit


def test_a_reference_of_another_kind_of_scene_changes_nothing(colorizer, scene):
    """The scene gate: the picture and the reference are compared as wholes (the encoder's pooled features, the
    embedded model's scene graph). The moved true photo scores as the same scene and counts fully; the same
    reference scored as another kind of scene gives the automatic result bit for bit, and one in the ramp half."""
    import dataclasses

    from runtime.image import reference as refmod

    grey = _grey(scene)
    auto = np.asarray(colorizer.colorize(grey))
    moved = Image.fromarray(np.ascontiguousarray(scene[20:170, 30:240][:, ::-1])).resize((250, 178))
    ref = colorizer.reference(moved)
    encoder = colorizer.scene_encoder()
    assert encoder is not None and ref.scene is not None and abs(float(np.linalg.norm(ref.scene)) - 1) < 1e-5
    from runtime.image import fastcolor

    net_L, _ = colorizer.prepare(fastcolor.src8_to_l(np.asarray(grey)))  # as colorize sees it
    assert float(encoder(net_L).vector @ ref.scene) > refmod.SCENE_HIGH and ref.parts
    with_ref = np.asarray(colorizer.colorize(grey, reference=ref))
    assert np.abs(with_ref.astype(int) - auto).mean() > 3
    # a scene vector at right angles to every picture's (all features are >= 0): another kind of scene
    away = np.full_like(ref.scene, -1.0 / np.sqrt(ref.scene.size))
    assert np.array_equal(np.asarray(colorizer.colorize(grey, reference=dataclasses.replace(ref, scene=away))), auto)
    # halfway up the ramp: between the two
    mid = (refmod.SCENE_LOW + refmod.SCENE_HIGH) / 2
    unit = encoder(net_L).vector
    other = np.zeros_like(unit)
    other[np.argmin(np.abs(unit))] = 1.0  # a direction the picture hardly has
    other -= float(other @ unit) * unit
    other /= np.linalg.norm(other)
    half = dataclasses.replace(ref, scene=(mid * unit + np.sqrt(1 - mid * mid) * other).astype(np.float32))
    assert abs(refmod.scene_factor(half, unit) - 0.5) < 0.01
    out = np.asarray(colorizer.colorize(grey, reference=half)).astype(int)
    assert 0.2 < np.abs(out - auto).mean() / np.abs(with_ref.astype(int) - auto).mean() < 0.8


def test_a_damaged_scene_graph_is_the_models_error_and_only_where_it_is_needed(tmp_path, scene, capsys):
    """A truncated NAME_scene.onnx: one line naming it, an error exit and nothing written, for stills and films with
    a reference or key frames (the scene graph describes their parts); runs without one do not need it and work. A
    scene graph given as the model is refused in one line."""
    import shutil

    from runtime.video.cli import main as video_main
    from video_helpers import write_clip

    from runtime.model.bundle import DEFAULT_STEM, bundle_paths

    for key, p in bundle_paths(DEFAULT_STEM).items():
        if p.is_file():
            shutil.copy(p, tmp_path / p.name)
    broken = tmp_path / bundle_paths(DEFAULT_STEM)["onnx_scene"].name
    broken.write_bytes(broken.read_bytes()[:5000])
    model = str(tmp_path / bundle_paths(DEFAULT_STEM)["json"].name)
    Image.fromarray(scene).save(tmp_path / "ref.png")
    _grey(scene).save(tmp_path / "old.png")
    capsys.readouterr()
    assert main([str(tmp_path / "old.png"), "-o", str(tmp_path / "a.png"), "--model", model, "--quiet"]) == 0
    assert main([str(tmp_path / "old.png"), "--reference", str(tmp_path / "ref.png"), "-o", str(tmp_path / "b.png"),
                 "--model", model]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and broken.name in err and "scene graph" in err and not (tmp_path / "b.png").exists()
    clip = tmp_path / "c.mkv"
    write_clip(clip, n_frames=4, codec="ffv1", audio=None)
    common = ["--model", model, "--no-progress", "--codec", "ffv1"]
    assert video_main(["video", str(clip), "-o", str(tmp_path / "v.mkv"), *common]) == 0
    for extra in (["--keyframe", f"0:{tmp_path / 'ref.png'}"], ["--reference", str(tmp_path / "ref.png")]):
        capsys.readouterr()
        assert video_main(["video", str(clip), "-o", str(tmp_path / "r.mkv"), *extra, *common]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and broken.name in err and "scene graph" in err and not (tmp_path / "r.mkv").exists()
    (tmp_path / "x_scene.onnx").write_bytes(b"")
    assert main([str(tmp_path / "old.png"), "-o", str(tmp_path / "c.png"), "--model", str(tmp_path / "x_scene.onnx")]) == 2
    assert "a scene graph, not a model" in capsys.readouterr().err


def test_hints_win_where_they_are(colorizer, scene):
    """With a reference and hints, each hinted network pixel gets exactly its hint's colour (hints are followed after
    the reference), and a hint changes the colour around it from what the reference alone gave."""
    from runtime.image.color import grey_to_l

    L = grey_to_l(np.asarray(_grey(scene), np.float32) / 255)
    net_L, geom = colorizer.prepare(L)
    hints = colorizer.hint_input([(40, 20, "#e0c040", 3)], geom)
    ref = colorizer.reference(Image.fromarray(scene))
    only_ref = colorizer.predict_ab(net_L, reference=ref)[0]
    both = colorizer.predict_ab(net_L, hints, reference=ref)[0]
    mask = hints[0, 2] > 0
    assert mask.any() and np.array_equal(both[:, mask], hints[0, :2][:, mask])
    assert np.abs(both - only_ref)[:, mask].mean() > 20


def test_command_line_reference_and_sidecars(tmp_path, scene, capsys):
    src = tmp_path / "in"
    src.mkdir()
    _grey(scene).save(src / "a.png")
    _grey(scene[:, ::-1].copy()).save(src / "b.png")
    Image.fromarray(scene).save(src / "a.ref.jpg", quality=95)  # a's own reference; b has none
    (src / "c.png").write_bytes(b"")  # broken input
    out = tmp_path / "out"
    assert main([str(src), "-o", str(out), "--json", "-q"]) == 1
    report = json.loads(capsys.readouterr().out)
    by_name = {r["input"].rsplit("/", 1)[-1]: r for r in report["results"]}
    assert set(by_name) == {"a.png", "b.png", "c.png"}  # the sidecar is not an input
    assert by_name["a.png"]["reference"].endswith("a.ref.jpg") and by_name["b.png"]["reference"] is None
    assert report["summary"]["with_reference"] == 1
    (src / "c.png").unlink()
    (src / "b.ref.png").write_text("not a picture")  # a bad sidecar: that input fails, alone, nothing written
    out2 = tmp_path / "out2"
    assert main([str(src), "-o", str(out2), "-q"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "b.png: reference" in err and "b.ref.png" in err
    assert sorted(p.name for p in out2.iterdir()) == ["a.png"]
    shared = tmp_path / "shared.jpg"
    Image.fromarray(scene).save(shared)
    (src / "b.ref.png").unlink()
    out3 = tmp_path / "out3"
    assert main([str(src / "b.png"), "-o", str(out3 / "b.png"), "--reference", str(shared), "--json", "-q"]) == 0
    assert json.loads(capsys.readouterr().out)["results"][0]["reference"] == str(shared)
    assert main([str(src / "b.png"), "-o", str(out3), "--reference", str(tmp_path / "none.jpg")]) == 2
    assert "--reference" in capsys.readouterr().err
    bad = tmp_path / "bad.jpg"
    bad.write_text("no")
    assert main([str(src / "b.png"), "-o", str(tmp_path / "out4"), "--reference", str(bad), "-q"]) == 2
    assert not (tmp_path / "out4").exists()


def test_render_size_arrays_chunks_and_network_hint_mode(colorizer, scene, monkeypatch):
    """A reference is seen at the picture's render size (a prepared one of another size is refused); arrays of any
    depth are references; matching in chunks gives the matches of one block; with hint_mode="network" hints win too."""
    from runtime.image import reference as R

    grey = _grey(scene)
    big = colorizer.colorize(grey, render_size=128, reference=Image.fromarray(scene))  # prepared at 128 inside
    assert big.size == grey.size
    prepared = colorizer.reference(Image.fromarray(scene))
    with pytest.raises(ValueError, match="render size 256"):
        colorizer.colorize(grey, render_size=128, reference=prepared)
    as_float = colorizer.reference(scene.astype(np.float32) / 255)
    as_u16 = colorizer.reference(scene.astype(np.uint16) * 257)
    assert np.allclose(as_float.ab, prepared.ab, atol=1.0) and np.allclose(as_u16.ab, prepared.ab, atol=1.0)
    net_L, _ = colorizer.prepare(rgb_to_lab(np.asarray(grey.convert("RGB"), np.float32) / 255)[..., 0])
    ab = colorizer.network(net_L)[0]
    view = colorizer.scene_encoder()(net_L)
    with pytest.raises(ValueError, match="described alike"):  # the reference's cells have the encoder's parts
        R.match(prepared, net_L[0, 0], ab)
    whole = R.match(prepared, net_L[0, 0], ab, view.parts)
    monkeypatch.setattr(R, "CHUNK", 100)
    parts = R.match(prepared, net_L[0, 0], ab, view.parts)
    assert np.array_equal(whole[0], parts[0]) and np.array_equal(whole[2], parts[2]) and whole[3] == parts[3]
    with Colorizer.load(None, backend="onnxruntime", hint_mode="network") as net_mode:
        hints = net_mode.hint_input([(40, 20, "#e0c040", 3)], net_mode.prepare(np.zeros(grey.size[::-1], np.float32))[1])
        both = net_mode.predict_ab(net_L, hints, reference=prepared)[0]
        mask = hints[0, 2] > 0
        assert np.array_equal(both[:, mask], hints[0, :2][:, mask])


def test_reference_sidecars_need_their_picture_and_any_case(tmp_path, scene):
    from runtime.cli.batch import plan

    _grey(scene).save(tmp_path / "IMG_1.JPG")
    Image.fromarray(scene).save(tmp_path / "IMG_1.ref.JPG")
    Image.fromarray(scene).save(tmp_path / "holiday.ref.jpg")  # no holiday.* beside it: a picture of its own
    jobs = {j.input.name: j for j in plan([str(tmp_path)], str(tmp_path / "out"))}
    assert set(jobs) == {"IMG_1.JPG", "holiday.ref.jpg"}
    assert jobs["IMG_1.JPG"].reference.name == "IMG_1.ref.JPG" and jobs["holiday.ref.jpg"].reference is None


def test_parts_are_brought_to_the_cells_grid_as_torch_would():
    """upsample2 is bilinear x2 with half-pixel centres (what the matcher's probe used, torch's align_corners=False)."""
    torch = pytest.importorskip("torch")
    from runtime.image.reference import upsample2

    x = np.random.default_rng(0).normal(size=(3, 5, 7)).astype(np.float32)
    want = torch.nn.functional.interpolate(torch.from_numpy(x)[None], scale_factor=2, mode="bilinear",
                                           align_corners=False)[0].numpy()
    assert np.allclose(upsample2(x), want, atol=1e-6)
