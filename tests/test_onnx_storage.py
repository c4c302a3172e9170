"""FP16-stored weights in an FP32 graph (trainer/onnx_storage.py): half the file, FP32 compute, outputs those of the
same network with its weights rounded to FP16, and the bundle's scene graph stored so."""
from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto

from runtime.model.bundle import bundle_paths, bundle_stem
from trainer.onnx_storage import CAST_SUFFIX, MIN_ELEMENTS, store_weights_half


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(64, 8, 3, padding=1))
    with torch.no_grad():  # weights that FP16 cannot hold exactly
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 1e-3)
    return net.eval()


def _initializers(path) -> dict[str, int]:
    return {i.name: i.data_type for i in onnx.load(str(path)).graph.initializer}


def test_large_weights_are_stored_half_and_computed_in_float32(tmp_path):
    net, x = _net(), torch.randn(2, 3, 16, 16)
    path = tmp_path / "net.onnx"
    torch.onnx.export(net, (x,), str(path), dynamo=False, input_names=["x"], output_names=["y"])
    full = ort.InferenceSession(str(path)).run(None, {"x": x.numpy()})[0]
    size = path.stat().st_size
    assert store_weights_half(path) == 2  # the two conv weights; the biases are small
    types = _initializers(path)
    assert sorted(t for n, t in types.items() if n.endswith(CAST_SUFFIX)) == [TensorProto.FLOAT16] * 2
    assert sum(t == TensorProto.FLOAT for t in types.values()) == 2  # the biases (< MIN_ELEMENTS) stay float32
    assert all(p.numel() < MIN_ELEMENTS for p in (net[0].bias, net[2].bias))
    assert path.stat().st_size < 0.6 * size
    got = ort.InferenceSession(str(path)).run(None, {"x": x.numpy()})[0]
    assert got.dtype == np.float32
    rounded = _net()
    with torch.no_grad():
        for p in rounded.parameters():
            if p.numel() >= MIN_ELEMENTS:
                p.copy_(p.half().float())
        want = rounded(x).numpy()
    assert np.abs(got - want).max() < 1e-5  # exactly the rounded network, up to float reordering
    assert np.abs(got - full).max() > 1e-5  # and not the unrounded one: the rounding is real
    assert store_weights_half(path) == 0 and _initializers(path) == types  # idempotent


def test_what_fp16_cannot_hold_or_a_caller_may_feed_stays_float32(tmp_path):
    net, x = _net(), torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        net[2].weight[0, 0, 0, 0] = 1e6  # beyond FP16's range
    path = tmp_path / "net.onnx"
    torch.onnx.export(net, (x,), str(path), dynamo=False, input_names=["x"], output_names=["y"])
    assert store_weights_half(path) == 1  # the first conv only
    types = _initializers(path)
    assert [n for n in types if n.endswith(CAST_SUFFIX)] == ["0.weight" + CAST_SUFFIX]
    assert types["2.weight"] == TensorProto.FLOAT
    assert np.isfinite(ort.InferenceSession(str(path)).run(None, {"x": x.numpy()})[0]).all()
    fed = tmp_path / "fed.onnx"  # initializers listed as graph inputs (older exporters): a caller may override them
    torch.onnx.export(_net(), (x,), str(fed), dynamo=False, input_names=["x"], output_names=["y"],
                      keep_initializers_as_inputs=True)
    before = fed.read_bytes()
    assert store_weights_half(fed) == 0 and fed.read_bytes() == before


def test_the_scene_graph_is_stored_as_the_bundles_weights_are(hint_bundle, hint_checkpoint, tmp_path):
    """export_bundle and add_scene_graph store the scene graph's weights FP16 when the bundle's weights are float16
    (the default) and FP32 when they are float32 (the test fixtures), each checked against its own tolerance."""
    from trainer.export_onnx import load_checkpoint, synthetic_images
    from trainer.export_scene import SCENE_TOLERANCE_FP32, add_scene_graph, scene_tolerance, write_scene_graph

    p = bundle_paths(bundle_stem(hint_bundle))
    assert not any(n.endswith(CAST_SUFFIX) for key in ("onnx", "onnx_scene") for n in _initializers(p[key]))
    assert json.loads(p["json"].read_text())["provenance"]["parity_scene_relative"] <= SCENE_TOLERANCE_FP32
    spec, gen = load_checkpoint(hint_checkpoint)
    path = tmp_path / "x_scene.onnx"
    _, parity = write_scene_graph(gen, spec, path, synthetic_images(2, (64, 96)), 64, half_weights=True)
    meta = {m.key: m.value for m in onnx.load(str(path)).metadata_props}
    assert meta["colorize_gan.weights"] == "fp16" and meta["colorize_gan.precision"] == "fp32"
    assert any(n.endswith(CAST_SUFFIX) for n in _initializers(path))
    assert path.stat().st_size < 0.6 * p["onnx_scene"].stat().st_size
    assert 0 < parity <= scene_tolerance(True)
    # add_scene_graph follows the bundle: a copy that says float16 gets a half-stored graph
    half = tmp_path / "half"
    half.mkdir()
    for key in ("onnx", "onnx_fp16", "weights"):
        (half / p[key].name).write_bytes(p[key].read_bytes())
    data = json.loads(p["json"].read_text())
    data["provenance"]["weights_dtype"] = "float16"
    (half / p["json"].name).write_text(json.dumps(data))
    worst = add_scene_graph(half / p["json"].name, render_size=64)
    scene = half / p["onnx_scene"].name
    assert any(n.endswith(CAST_SUFFIX) for n in _initializers(scene)) and worst <= scene_tolerance(True)
