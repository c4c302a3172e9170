"""trainer/export_onnx.py: the bundle it writes, the graphs' dynamic shapes, precision and parity."""
from __future__ import annotations

import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from runtime.model.bundle import bundle_paths, bundle_stem, resolve  # noqa: E402
from runtime.model.spec import ModelSpec  # noqa: E402


@pytest.fixture(scope="module")
def paths(tiny_bundle):
    return bundle_paths(bundle_stem(tiny_bundle))


@pytest.fixture(scope="module")
def torch_model(tiny_checkpoint):
    from trainer.export_onnx import load_checkpoint
    from runtime.model.generator import LabColorizer

    _, gen = load_checkpoint(tiny_checkpoint)
    return LabColorizer(gen).eval()


def test_bundle_files_and_metadata(paths, tiny_checkpoint):
    assert not paths["onnx_scene"].exists()  # a plain U-Net encoder has no scene graph
    for p in [p for k, p in paths.items() if k != "onnx_scene"]:
        assert p.is_file() and p.stat().st_size > 0
    bundle = json.loads(paths["json"].read_text())
    spec = ModelSpec.from_json((tiny_checkpoint / "spec.json").read_text())
    assert ModelSpec.from_dict(bundle["spec"]) == spec
    assert set(bundle["provenance"]["parity_max_abs_ab"]) == {"onnx", "onnx_fp16"}
    for key in ("onnx", "onnx_fp16"):
        model = onnx.load(str(paths[key]))
        meta = {p.key: p.value for p in model.metadata_props}
        assert ModelSpec.from_json(meta["colorize_gan.spec"]) == spec
        assert 17 <= next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) <= 20
    # resolve() finds the same files from any member of the bundle
    for member in [p for k, p in paths.items() if k != "onnx_scene"]:
        files = resolve(str(member))
        assert files.spec == spec and files.onnx == str(paths["onnx"]) and files.weights == str(paths["weights"])


def test_dynamic_shapes_encode_the_size_multiple(paths, tiny_checkpoint):
    spec = ModelSpec.from_json((tiny_checkpoint / "spec.json").read_text())
    m = onnx.load(str(paths["onnx"]))
    dims = m.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and dims[1].dim_value == 1
    assert dims[2].dim_param.startswith(f"{spec.size_multiple}*") and dims[3].dim_param.startswith(f"{spec.size_multiple}*")


def test_fp16_graph_has_fp16_weights_and_fp32_io(paths):
    m = onnx.load(str(paths["onnx_fp16"]))
    f32 = onnx.TensorProto.FLOAT
    for v in list(m.graph.input) + list(m.graph.output):
        assert v.type.tensor_type.elem_type == f32
    big = [t for t in m.graph.initializer if np.prod(t.dims) >= 64]
    assert big and all(t.data_type == onnx.TensorProto.FLOAT16 for t in big)
    assert paths["onnx_fp16"].stat().st_size < 0.7 * paths["onnx"].stat().st_size


@pytest.mark.parametrize("shape", [(1, 1, 16, 16), (2, 1, 48, 80), (1, 1, 128, 32)])
def test_onnx_matches_torch_at_any_valid_size(paths, torch_model, shape):
    rng = np.random.default_rng(sum(shape))
    L = rng.uniform(0, 100, shape).astype(np.float32)
    with torch.inference_mode():
        ref = torch_model(torch.from_numpy(L)).numpy()
    assert np.abs(ref).max() > 1.0  # the net outputs real colour, or the comparison would prove nothing
    fp32 = ort.InferenceSession(str(paths["onnx"]), providers=["CPUExecutionProvider"]).run(None, {"L": L})[0]
    fp16 = ort.InferenceSession(str(paths["onnx_fp16"]), providers=["CPUExecutionProvider"]).run(None, {"L": L})[0]
    assert fp32.shape == (shape[0], 2) + shape[2:]
    assert np.abs(fp32 - ref).max() < 1e-2
    assert np.abs(fp16 - ref).max() < 3.0 and np.abs(fp16 - ref).mean() < 0.3


def test_export_cli_reports_parity_and_rejects_bad_paths(tiny_checkpoint, tmp_path, capsys):
    from trainer.export_onnx import main

    img_dir = tmp_path / "imgs"
    img_dir.mkdir()
    from PIL import Image

    Image.fromarray((np.random.default_rng(0).uniform(0, 255, (70, 90, 3))).astype(np.uint8)).save(img_dir / "x.png")
    (img_dir / "notes.txt").write_text("not an image")
    assert main([str(tiny_checkpoint), "-o", str(tmp_path / "out" / "m"), "--parity-images", str(img_dir)]) == 0
    out = capsys.readouterr().out
    assert "FP32" in out and "FP16" in out
    assert json.loads((tmp_path / "out" / "m.json").read_text())["provenance"]["weights_dtype"] == "float16"
    assert main([str(tmp_path / "missing"), "-o", str(tmp_path / "o2")]) == 2


def test_bundle_is_self_contained(paths):
    """No external-data side files: a bundle is exactly its four files (and fits the repo budget; a U-Net has no
    scene graph)."""
    folder = paths["json"].parent
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for k, p in paths.items() if k != "onnx_scene")


def test_ab_gain_scales_the_served_ab_in_every_graph(tiny_checkpoint, paths, tmp_path):
    """--ab-gain writes spec.ab_gain, and the served ab (FP32 and FP16 ONNX, torch) is the gain-1 ab times it."""
    from runtime.image.colorizer import Colorizer
    from trainer.export_onnx import export_bundle

    out = tmp_path / "gain"
    export_bundle(tiny_checkpoint, out, weights_dtype="float32", render_size=64, ab_gain=1.5)
    bundle = json.loads(out.with_suffix(".json").read_text())
    assert bundle["spec"]["ab_gain"] == 1.5
    L = np.linspace(0, 100, 64 * 96, dtype=np.float32).reshape(1, 1, 64, 96)
    for key in ("onnx", "onnx_fp16"):
        base = ort.InferenceSession(str(paths[key])).run(None, {"L": L})[0]
        gained = ort.InferenceSession(str(bundle_paths(out)[key])).run(None, {"L": L})[0]
        assert np.abs(base).max() > 1  # the tiny net gives real colour, so the check is not vacuous
        assert np.allclose(gained, 1.5 * base, atol=0.05 if key == "onnx" else 3.0)
    with Colorizer.load(str(out.with_suffix(".json")), backend="torch-cpu") as c:
        assert c.spec.ab_gain == 1.5
        with Colorizer.load(str(paths["json"]), backend="torch-cpu") as c1:
            assert np.allclose(c.predict_ab(L), 1.5 * c1.predict_ab(L), atol=1e-3)
    with pytest.raises(SystemExit, match="ab_gain"):
        export_bundle(tiny_checkpoint, tmp_path / "bad", ab_gain=0.0)


def test_calibration_interpolates_the_gain_that_reaches_the_target():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("calibrate_chroma", Path(__file__).parents[1] / "tools" / "calibrate_chroma.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rows = {1.0: {"cf_ratio": 0.6}, 1.2: {"cf_ratio": 0.8}, 1.4: {"cf_ratio": 1.0}}
    assert mod.pick_gain(rows, 0.7) == (1.1, True)
    assert mod.pick_gain(rows, 0.5) == (1.0, True)
    assert mod.pick_gain(rows, 1.2) == (1.4, False)
    # A temperature: the CF ratio grows as it falls; the highest temperature that reaches the target.
    temps = {1.0: {"cf_ratio": 0.5}, 0.5: {"cf_ratio": 0.7}, 0.3: {"cf_ratio": 0.9}}
    assert mod.pick_gain(temps, 0.8, reverse=True) == (0.4, True)
    assert mod.pick_gain(temps, 0.4, reverse=True) == (1.0, True)
    assert mod.pick_gain(temps, 0.95, reverse=True) == (0.3, False)


def test_a_pretrained_encoder_gets_a_scene_graph_that_matches_torch(hint_bundle, hint_checkpoint, tmp_path):
    """The scene graph (L -> the encoder's pooled features): written, recorded, found by resolve, the same as torch
    at any valid size, and run by the runtime's scene encoder from the ONNX file or, for a checkpoint, from torch."""
    from runtime.backends.scene import scene_encoder
    from runtime.model.generator import LabScene
    from trainer.export_onnx import load_checkpoint

    p = bundle_paths(bundle_stem(hint_bundle))
    bundle = json.loads(p["json"].read_text())
    assert bundle["provenance"]["sha256"]["onnx_scene"] and bundle["provenance"]["parity_scene_relative"] < 1e-3
    files = resolve(str(p["onnx_scene"]))
    assert files.onnx_scene == str(p["onnx_scene"]) and files.onnx == str(p["onnx"])
    module = LabScene(load_checkpoint(hint_checkpoint)[1]).eval()
    sess = ort.InferenceSession(str(p["onnx_scene"]))
    rng = np.random.default_rng(0)
    for shape in [(1, 1, 32, 32), (2, 1, 64, 96)]:
        L = rng.uniform(0, 100, shape).astype(np.float32)
        got = sess.run(["scene", "parts"], {"L": L})
        with torch.inference_mode():
            want = [t.numpy() for t in module(torch.from_numpy(L))]
        assert got[0].shape == (shape[0], 1280) and got[1].shape == (shape[0], 40, shape[2] // 8, shape[3] // 8)
        assert all(np.abs(g - w).max() <= 1e-3 * np.abs(w).max() for g, w in zip(got, want))
    L = rng.uniform(0, 100, (1, 1, 64, 96)).astype(np.float32)
    from_onnx, from_torch = scene_encoder(files)(L), scene_encoder(resolve(str(hint_checkpoint)))(L)
    assert abs(np.linalg.norm(from_onnx.vector) - 1) < 1e-5 and float(from_onnx.vector @ from_torch.vector) > 0.9999
    assert from_onnx.parts.shape == (40, 8, 12) and np.abs(from_onnx.parts - from_torch.parts).max() < 1e-3
    # a bundle without one (exported before scene graphs) gets it from its weights, the rest untouched
    from trainer.export_scene import add_scene_graph

    for key in ("json", "onnx", "onnx_fp16", "weights"):
        (tmp_path / p[key].name).write_bytes(p[key].read_bytes())
    copy = tmp_path / p["json"].name
    assert resolve(str(copy)).onnx_scene is None and scene_encoder(resolve(str(copy))) is None
    before = {k: (tmp_path / p[k].name).read_bytes() for k in ("onnx", "onnx_fp16", "weights")}
    assert add_scene_graph(copy, render_size=64) < 1e-3
    added = resolve(str(copy))
    assert float(scene_encoder(added)(L).vector @ from_onnx.vector) > 0.9999
    assert before == {k: (tmp_path / p[k].name).read_bytes() for k in ("onnx", "onnx_fp16", "weights")}
