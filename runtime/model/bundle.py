"""Model bundles: find the files of a model and read its spec.

A bundle is a set of files sharing a stem in one folder (see docs/CONTRACTS.md):
``NAME.json`` (spec + provenance), ``NAME.onnx`` (FP32), ``NAME_fp16.onnx`` (FP16-typed, FP32 I/O)
and ``NAME.safetensors`` (generator weights, for the torch backends; may be stored as float16).
The embedded default lives in ``runtime/model/weights/default.*``. A trainer checkpoint directory
(``spec.json`` + ``generator.safetensors``, and ``generator_ema.safetensors`` which it prefers) is accepted
too, for the torch backends.

This module imports nothing heavy: it only reads JSON and checks paths.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import one_line
from .spec import ModelSpec

MODELS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_STEM = MODELS_DIR / "default"
BUNDLE_FORMAT = "colorize-gan-bundle"
BUNDLE_VERSION = 1
# A trainer checkpoint's weight files, in the order inference prefers them (the EMA copy exists with --ema).
CHECKPOINT_WEIGHTS = ("generator_ema.safetensors", "generator.safetensors")


@dataclass(frozen=True)
class ModelFiles:
    """Where a model's artifacts are. Any may be None; each backend says which it needs."""

    spec: ModelSpec
    onnx: str | None = None  # FP32 ONNX (ONNX Runtime)
    onnx_fp16: str | None = None  # FP16-typed ONNX (TensorRT)
    weights: str | None = None  # safetensors state dict of the generator (torch backends)
    onnx_scene: str | None = None  # FP32 ONNX of the scene graph, L -> the encoder's pooled features (reference gate)


def checkpoint_weights(folder: Path) -> Path | None:
    """The weight file inference uses in a trainer checkpoint folder (the first of CHECKPOINT_WEIGHTS there), or None."""
    return next((folder / name for name in CHECKPOINT_WEIGHTS if (folder / name).is_file()), None)


class ModelError(ValueError):
    """A model cannot be found or read; the message is one line naming the path and the reason."""


def bundle_stem(path: str | Path) -> Path:
    """``x/NAME.json`` / ``.onnx`` / ``_fp16.onnx`` / ``_scene.onnx`` / ``.safetensors`` / ``x/NAME`` -> ``x/NAME``."""
    p = Path(path)
    name = p.name
    for suffix in ("_fp16.onnx", "_scene.onnx", ".onnx", ".json", ".safetensors"):
        if name.endswith(suffix):
            return p.with_name(name[: -len(suffix)])
    return p


def bundle_paths(stem: str | Path) -> dict[str, Path]:
    stem = Path(stem)
    return {
        "json": stem.with_name(stem.name + ".json"),
        "onnx": stem.with_name(stem.name + ".onnx"),
        "onnx_fp16": stem.with_name(stem.name + "_fp16.onnx"),
        "weights": stem.with_name(stem.name + ".safetensors"),
        "onnx_scene": stem.with_name(stem.name + "_scene.onnx"),
    }


def read_bundle_json(path: str | Path) -> dict[str, Any]:
    """The bundle JSON as a dict with at least ``spec`` (a ModelSpec dict)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: cannot read model description ({exc})") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path}: not a model description (expected a JSON object)")
    # A plain spec.json (trainer checkpoint) is accepted as a bundle without provenance.
    if "spec" not in data:
        data = {"spec": data}
    return data


def _spec_from(data: dict[str, Any], path: Path) -> ModelSpec:
    try:
        return ModelSpec.from_dict(data["spec"])
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{path}: invalid model spec ({exc})") from None


def _existing(p: Path) -> str | None:
    return str(p) if p.is_file() else None


def resolve(model: str | Path | None = None) -> ModelFiles:
    """Locate a model's files. ``model``: None (embedded default), a bundle file or stem, or a
    trainer checkpoint directory. Raises ModelError with a one-line reason."""
    if model is None:
        paths = bundle_paths(DEFAULT_STEM)
        if not paths["json"].is_file():
            raise ModelError(
                f"embedded default model not found ({paths['json']}); "
                "install a release that ships it or pass --model PATH (a bundle .json/.onnx or a trainer checkpoint dir)"
            )
        return _from_stem(DEFAULT_STEM)
    p = Path(model).expanduser()
    if p.is_dir():
        spec_json, weights = p / "spec.json", checkpoint_weights(p)
        if spec_json.is_file() and weights is not None:
            spec = _spec_from(read_bundle_json(spec_json), spec_json)
            return ModelFiles(spec=spec, weights=str(weights))
        bundles = sorted(p.glob("*.json"))
        if len(bundles) == 1:
            return _from_stem(bundle_stem(bundles[0]))
        raise ModelError(f"{p}: not a model (expected a trainer checkpoint with spec.json + generator.safetensors, or one bundle .json)")
    stem = bundle_stem(p)
    paths = bundle_paths(stem)
    if p.name.endswith("_scene.onnx") and not paths["json"].is_file():
        raise ModelError(f"{model}: a scene graph, not a model: pass the bundle's .json or .onnx")
    if not paths["json"].is_file():
        if paths["onnx"].is_file() or p.suffix == ".onnx" and p.is_file():
            return _from_onnx_only(p if p.suffix == ".onnx" else paths["onnx"])
        raise ModelError(f"{model}: model not found (looked for {paths['json']})")
    return _from_stem(stem)


def _from_stem(stem: Path) -> ModelFiles:
    paths = bundle_paths(stem)
    spec = _spec_from(read_bundle_json(paths["json"]), paths["json"])
    files = ModelFiles(
        spec=spec,
        onnx=_existing(paths["onnx"]),
        onnx_fp16=_existing(paths["onnx_fp16"]),
        weights=_existing(paths["weights"]),
        onnx_scene=_existing(paths["onnx_scene"]),
    )
    if not (files.onnx or files.onnx_fp16 or files.weights):
        raise ModelError(f"{paths['json']}: no model files beside it (.onnx, _fp16.onnx or .safetensors)")
    return files


def _from_onnx_only(path: Path) -> ModelFiles:
    """An ONNX file without its JSON: the exporter also stores the spec in the ONNX metadata."""
    spec_text = read_onnx_metadata(path).get("colorize_gan.spec")
    if spec_text is None:
        raise ModelError(f"{path}: no colorize-gan spec in the ONNX metadata and no {bundle_stem(path).name}.json beside it")
    try:
        spec = ModelSpec.from_json(spec_text)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{path}: invalid model spec in ONNX metadata ({exc})") from None
    is_fp16 = path.name.endswith("_fp16.onnx")
    return ModelFiles(spec=spec, onnx=None if is_fp16 else str(path), onnx_fp16=str(path) if is_fp16 else None,
                      onnx_scene=_existing(bundle_paths(bundle_stem(path))["onnx_scene"]))


def read_onnx_metadata(path: str | Path) -> dict[str, str]:
    """metadata_props of an ONNX file, read with onnxruntime (a core dependency; no session is run)."""
    try:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        return dict(sess.get_modelmeta().custom_metadata_map)
    except Exception as exc:  # ORT raises its own exception types for bad files
        raise ModelError(f"{path}: cannot read ONNX file ({one_line(exc)})") from None


def describe(files: ModelFiles) -> dict[str, Any]:
    """A JSON-able summary for ``colorize-gan info``."""
    out: dict[str, Any] = {"spec": files.spec.to_dict()}
    for key in ("onnx", "onnx_fp16", "weights", "onnx_scene"):
        out[key] = getattr(files, key)
    stem_json = None
    for key in ("onnx", "onnx_fp16", "weights"):
        if getattr(files, key):
            candidate = bundle_paths(bundle_stem(getattr(files, key)))["json"]
            if candidate.is_file():
                stem_json = candidate
                break
    if stem_json is not None:
        prov = read_bundle_json(stem_json).get("provenance")
        if prov:
            out["provenance"] = prov
    return out
