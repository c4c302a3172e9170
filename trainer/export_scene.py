"""The scene graph's export: L -> the encoder's features pooled over the picture (output ``scene``) and at 1/8 scale
(output ``parts``), which the reference matcher compares between a picture and its reference
(runtime/backends/scene.py, runtime/image/reference.py). FP32 compute with BatchNorm folded, batch/H/W dynamic as the
main graph; its weights are stored FP16 (trainer/onnx_storage.py) when the bundle's weights are.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from runtime.backends.gpu.engine_cache import sha256_file
from runtime.backends.scene import SCENE_OUTPUTS
from runtime.model.bundle import bundle_paths, bundle_stem
from runtime.model.spec import ModelSpec

from .export_onnx import _example_L, _export, _folded, _now, add_metadata, load_parity_images

# Relative to the largest feature: FP32-stored weights differ from torch by float reordering only; FP16-stored ones
# by the weights' rounding as well (measured 5e-3 to 7e-3 on the blend default).
SCENE_TOLERANCE_FP32 = 1e-3
SCENE_TOLERANCE_FP16 = 2e-2


def scene_tolerance(half_weights: bool) -> float:
    """The parity tolerance of a scene graph whose weights are stored FP16 (``half_weights``) or FP32."""
    return SCENE_TOLERANCE_FP16 if half_weights else SCENE_TOLERANCE_FP32


def bundle_half_weights(bundle_json: Path) -> bool:
    """Whether a bundle stores its weights FP16 (provenance ``weights_dtype``; the exporter's default, float16, when a
    bundle does not say): its scene graph is stored the same way."""
    from runtime.model.bundle import read_bundle_json

    return _half_weights(read_bundle_json(Path(bundle_json)))


def _half_weights(bundle: dict) -> bool:
    return bundle.get("provenance", {}).get("weights_dtype", "float16") == "float16"


def export_scene_graph(generator, spec: ModelSpec, path: Path) -> str:
    """The scene graph (runtime.model.generator.LabScene: L in [0, 100] -> the encoder's pooled features, output
    ``scene``, and its features at 1/8 scale, output ``parts``), FP32 with BatchNorm folded, batch/H/W dynamic as the
    main graph; returns the exporter used."""
    from runtime.model.generator import LabScene

    example, dims = _example_L(spec)
    axes = {spec.input_name: {0: "batch", 2: "height", 3: "width"}, SCENE_OUTPUTS[0]: {0: "batch"},
            SCENE_OUTPUTS[1]: {0: "batch", 2: "height8", 3: "width8"}}
    return _export(LabScene(_folded(generator)).eval(), example, path, dims, axes, [spec.input_name], list(SCENE_OUTPUTS))


def scene_parity(generator, spec: ModelSpec, path: Path, images: list[np.ndarray], render_size: int) -> float:
    """max |delta| of the scene graph's outputs (ORT CPU) against torch over ``images``, relative to the largest
    feature of each."""
    import onnxruntime as ort
    import torch

    from runtime.image.color import rgb_to_l
    from runtime.image.colorizer import prepare_l
    from runtime.model.generator import LabScene

    module = LabScene(generator).eval()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for rgb in images:
        net_L, _ = prepare_l(rgb_to_l(rgb), spec.size_multiple, render_size)
        with torch.inference_mode():
            refs = [t.numpy() for t in module(torch.from_numpy(net_L.copy()))]
        for got, ref in zip(sess.run(list(SCENE_OUTPUTS), {spec.input_name: net_L}), refs):
            worst = max(worst, float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-6)))
    return worst


def write_scene_graph(generator, spec: ModelSpec, path: Path, images: list[np.ndarray], render_size: int, *,
                      half_weights: bool) -> tuple[str, float]:
    """Export, label and check the scene graph of a generator that has one (``half_weights``: its weights stored
    FP16); returns (exporter, parity)."""
    from .onnx_storage import store_weights_half

    exporter = export_scene_graph(generator, spec, path)
    add_metadata(path, spec, {"colorize_gan.precision": "fp32", "colorize_gan.exporter": exporter,
                              "colorize_gan.graph": "scene", "colorize_gan.weights": "fp16" if half_weights else "fp32"})
    if half_weights:
        store_weights_half(path)
    return exporter, scene_parity(generator, spec, path, images, render_size)


def add_scene_graph(bundle_json: Path, parity_images: Path | None = None, render_size: int = 256) -> float:
    """Give an exported bundle (its .safetensors) the scene graph it lacks, and record it in its JSON; returns the
    parity. For bundles exported before scene graphs existed (the main graphs are left as they are). The graph's
    weights are stored as the bundle's are (``bundle_half_weights``)."""
    import torch

    from runtime.backends.torch_cpu import build_lab_colorizer
    from runtime.model.bundle import read_bundle_json, resolve
    from runtime.model.generator import has_scene

    files = resolve(bundle_json)
    if not files.weights:
        raise SystemExit(f"colorize-gan-export: {bundle_json}: the bundle has no .safetensors weights to export from")
    gen = build_lab_colorizer(files).generator
    if not has_scene(gen):
        raise SystemExit(f"colorize-gan-export: {bundle_json}: this model has no scene features (a plain U-Net encoder)")
    paths = bundle_paths(bundle_stem(bundle_json))
    data = read_bundle_json(paths["json"])
    exporter, worst = write_scene_graph(gen, files.spec, paths["onnx_scene"], load_parity_images(parity_images), render_size,
                                        half_weights=_half_weights(data))
    prov = data.setdefault("provenance", {})
    prov.setdefault("exporters", {})["onnx_scene"] = exporter
    prov["parity_scene_relative"] = worst
    prov.setdefault("sha256", {})["onnx_scene"] = sha256_file(paths["onnx_scene"])
    prov["scene_exported"] = f"{_now()} from {paths['weights'].name} (torch {torch.__version__})"
    paths["json"].write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return worst
