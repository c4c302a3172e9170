"""Export a trainer checkpoint to a model bundle: JSON + FP32 ONNX + FP16-typed ONNX + safetensors (+ the scene graph).

    colorize-gan-export CHECKPOINT_DIR -o OUT_DIR/NAME [--parity-images DIR]

The exported graph is the served network ``LabColorizer(build_generator(spec))`` (L in [0, 100]
[+ hints [a, b, mask] in Lab units, the second input of a hint-taking model] -> ab in Lab units) in eval mode: BatchNorm folded into the convolutions, no dropout. Batch, H and W
are dynamic; H and W are declared as ``2**depth * Dim`` so the graph itself says they must be
multiples of the size multiple. The spec JSON goes into the ONNX metadata_props
(``colorize_gan.spec``) and into ``NAME.json``. The FP16 graph has FP16 weights and compute with
FP32 inputs/outputs, and keeps the L/ab scaling (and any InstanceNorm) in FP32, as TensorRT's
strongly typed mode wants (see /work/shared/notes/tensorrt-onnx.md). A parity check runs both
graphs in ONNX Runtime against torch on real or synthetic images and prints max |delta ab|.

A model with a pretrained encoder also gets ``NAME_scene.onnx`` (FP32 compute; its weights stored FP16 when
``--weights-dtype`` is float16, trainer/onnx_storage.py): L -> the encoder's features pooled over the picture and its
features at 1/8 scale, which the reference matcher compares between a picture and its
reference (runtime/image/reference.py). trainer/export_scene.py exports it; ``tools/add_scene_graph.py`` adds it to a bundle exported before it existed.
"""
from __future__ import annotations

import argparse
import copy
import datetime
import json
import sys
import warnings
from pathlib import Path

import numpy as np

from runtime.backends.gpu.engine_cache import sha256_file
from runtime.model.bundle import BUNDLE_FORMAT, BUNDLE_VERSION, bundle_paths, bundle_stem
from runtime.model.spec import ModelSpec

OPSET = 18  # pinned: TensorRT 10 parses 9-20, ORT >= 1.17 runs 18
FP32_TOLERANCE = 0.05  # ab units; float reordering only
FP16_TOLERANCE = 3.0  # ab units; FP16 weights + compute, well below visible (~2.3 is one JND in Lab)
MAX_SIDE = 8192
FLOAT32_BUFFERS = ("distribution.centres", "distribution.log_prior")
SERVED_OPTIONS = ("ab_gain", "ab_temperature", "ab_prior_alpha", "ab_blend", "ab_regression_gain")  # export_bundle


def load_checkpoint(path: Path):
    """A trainer checkpoint dir, or a run folder (its latest checkpoint) -> (spec, UNetGenerator in eval)."""
    from .checkpoint import load_generator, resolve

    try:
        gen = load_generator(resolve(path))
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"colorize-gan-export: {exc}") from None
    return gen.spec, gen


def half_module(generator, spec: ModelSpec):
    """The served network with FP16 weights/compute and FP32 I/O, scaling and normalization
    (BatchNorm folded into the convs in FP32 before rounding; see runtime.model.generator.prepare_generator)."""
    import torch
    from torch import nn

    from runtime.model.generator import prepare_generator, scale_hints

    class HalfLabColorizer(nn.Module):
        def __init__(self, gen: nn.Module):
            super().__init__()
            self.generator = gen

        def forward(self, L: torch.Tensor, hints: torch.Tensor | None = None) -> torch.Tensor:
            x = (L / spec.l_scale - spec.l_shift).half()
            if not spec.hints:
                return self.generator(x).float() * (spec.ab_scale * spec.ab_gain)
            h = scale_hints(hints, spec).half()
            return self.generator(x, h).float() * (spec.ab_scale * spec.ab_gain)

    gen = prepare_generator(copy.deepcopy(generator), torch.float16, channels_last=False)
    return HalfLabColorizer(gen).eval()


def _folded(generator):
    from runtime.model.generator import fold_batchnorm

    g = copy.deepcopy(generator).eval()
    fold_batchnorm(g)
    return g


def export_graph(model, spec: ModelSpec, path: Path) -> str:
    """Export ``model`` to ``path``; returns which exporter succeeded ("dynamo" or "legacy")."""
    import torch

    example, dims = _example_L(spec)
    inputs = [spec.input_name]
    if spec.hints:  # a second input: [a, b, mask] at the same size as L
        example = (example[0], torch.zeros((2, 3, *example[0].shape[2:])))
        dims["hints"] = dict(dims["L"])
        inputs.append(spec.hint_name)
    axes = {n: {0: "batch", 2: "height", 3: "width"} for n in [*inputs, spec.output_name]}
    return _export(model, example, path, dims, axes, inputs, [spec.output_name])


def _example_L(spec: ModelSpec) -> tuple[tuple, dict]:
    """The example L input and its dynamic dims (batch; H, W multiples of the size multiple). Batch >= 2 and a
    bottleneck >= 2x2 avoid shape specialisation (see the ONNX notes)."""
    import torch

    m = spec.size_multiple
    dims = {"L": {0: torch.export.Dim("batch", min=1, max=256), 2: m * torch.export.Dim("h", min=1, max=MAX_SIDE // m),
                  3: m * torch.export.Dim("w", min=1, max=MAX_SIDE // m)}}
    return (torch.full((2, 1, 4 * m, 4 * m), 50.0),), dims


def _export(model, example: tuple, path: Path, dims: dict, axes: dict, inputs: list[str], outputs: list[str]) -> str:
    """torch.onnx.export with the dynamo exporter (``dims``), else the legacy one (``axes``); returns which worked."""
    import torch

    names = dict(input_names=inputs, output_names=outputs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(model, example, str(path), dynamo=True, opset_version=OPSET, dynamic_shapes=dims,
                              verbose=False, report=False, external_data=False, **names)
            return "dynamo"
        except Exception as exc:  # the dynamo exporter raises many types; the legacy one is the fallback
            print(f"colorize-gan-export: dynamo export of {path.name} failed ({type(exc).__name__}); using the legacy "
                  "exporter", file=sys.stderr)
        torch.onnx.export(model, example, str(path), dynamo=False, opset_version=OPSET, dynamic_axes=axes, **names)
        return "legacy"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def add_metadata(path: Path, spec: ModelSpec, extra: dict[str, str]) -> None:
    import onnx

    model = onnx.load(str(path))
    props = {"colorize_gan.spec": spec.to_json(), **extra}
    del model.metadata_props[:]
    for k, v in props.items():
        model.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(model)
    onnx.save(model, str(path), save_as_external_data=False)  # far below the 2 GB limit: one self-contained file
    stale = path.with_name(path.name + ".data")
    if stale.exists():  # an exporter that wrote external data anyway: the weights are inline now
        stale.unlink()


def synthetic_images(n: int = 3, size: tuple[int, int] = (320, 448)) -> list[np.ndarray]:
    """Deterministic RGB test images (gradients, discs, noise): enough structure to exercise the net."""
    rng = np.random.default_rng(0)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = []
    for i in range(n):
        img = np.stack([xx / w, yy / h, 0.5 + 0.5 * np.sin((xx + yy) / (17 + 9 * i))], axis=-1)
        for _ in range(4):
            cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(20, 90)
            img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(0, 1, 3)
        img += rng.normal(0, 0.03, img.shape).astype(np.float32)
        out.append(np.clip(img, 0, 1).astype(np.float32))
    return out


def load_parity_images(folder: Path | None, limit: int = 4) -> list[np.ndarray]:
    if folder is None:
        return synthetic_images()
    from runtime.image.imageio import read_image

    files = sorted(p for p in folder.rglob("*") if p.is_file())
    images = []
    for p in files:
        try:
            images.append(read_image(p).rgb_float())
        except Exception:  # not every file in a folder is an image; skip quietly
            continue
        if len(images) == limit:
            break
    if not images:
        raise SystemExit(f"colorize-gan-export: no readable images in {folder}")
    return images


def parity(served, spec: ModelSpec, onnx_paths: dict[str, Path], images: list[np.ndarray], render_size: int) -> dict[str, float]:
    """max |delta ab| of each ONNX graph (ORT CPU) against the torch module, over ``images``."""
    import onnxruntime as ort
    import torch

    from runtime.image.color import rgb_to_l
    from runtime.image.colorizer import prepare_l

    sessions = {k: ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for k, p in onnx_paths.items()}
    worst = {k: 0.0 for k in sessions}
    rng = np.random.default_rng(0)
    for rgb in images:
        net_L, _ = prepare_l(rgb_to_l(rgb), spec.size_multiple, render_size)
        feeds = [{spec.input_name: net_L}]
        if spec.hints:  # no hints, and a few random colour points
            h = np.zeros((1, 3, *net_L.shape[2:]), np.float32)
            feeds[0][spec.hint_name] = h.copy()
            for _ in range(8):
                y, x = rng.integers(0, net_L.shape[2] - 3), rng.integers(0, net_L.shape[3] - 3)
                h[0, :2, y:y + 3, x:x + 3] = rng.uniform(-60, 60, (2, 1, 1))
                h[0, 2, y:y + 3, x:x + 3] = 1.0
            feeds.append({spec.input_name: net_L, spec.hint_name: h})
        for feed in feeds:
            with torch.inference_mode():
                ref = served(*(torch.from_numpy(v.copy()) for v in feed.values())).numpy()  # torch wants writable arrays
            for k, sess in sessions.items():
                got = sess.run([spec.output_name], feed)[0]
                worst[k] = max(worst[k], float(np.abs(got - ref).max()))
    return worst


def export_bundle(checkpoint: Path, out: Path, parity_images: Path | None = None, weights_dtype: str = "float16",
                  render_size: int = 256, **served: float | None) -> dict[str, float]:
    """Write the bundle for ``checkpoint`` at stem ``out``; returns the parity figures. ``served``: spec fields of
    SERVED_OPTIONS written into the bundle's spec (None keeps the checkpoint's): ``ab_gain`` the served chroma gain
    (normally 1.0 in a checkpoint); ``ab_temperature`` and ``ab_prior_alpha`` a distribution or blend head's
    decoding; ``ab_blend`` and ``ab_regression_gain`` a blend head's mix."""
    import torch
    from safetensors.torch import save_file

    from runtime.model.generator import LabColorizer

    from .checkpoint import inference_weights, resolve

    try:
        checkpoint = resolve(checkpoint)  # a run folder -> its latest checkpoint, for the weights and the provenance alike
    except FileNotFoundError as exc:
        raise SystemExit(f"colorize-gan-export: {exc}") from None
    spec, gen = load_checkpoint(checkpoint)
    unknown = set(served) - set(SERVED_OPTIONS)
    if unknown:
        raise TypeError(f"export_bundle: unknown served options {sorted(unknown)}")
    served_options = {k: float(v) for k, v in served.items() if v is not None}
    if served_options:
        import dataclasses

        needs = {"ab_temperature": ("distribution", "blend"), "ab_prior_alpha": ("distribution", "blend"),
                 "ab_blend": ("blend",), "ab_regression_gain": ("blend",)}
        for key in served_options:
            if spec.ab_head not in needs.get(key, (spec.ab_head,)):
                raise SystemExit(f"colorize-gan-export: --{key.replace('_', '-')} needs a model with a "
                                 f"{' or '.join(needs[key])} head")
        try:
            spec = dataclasses.replace(spec, **served_options)
        except ValueError as exc:
            raise SystemExit(f"colorize-gan-export: {exc}") from None
        gen.spec = spec
    stem = bundle_stem(out)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = bundle_paths(stem)
    served = LabColorizer(gen).eval()
    exporters = {
        "onnx": export_graph(LabColorizer(_folded(gen)).eval(), spec, paths["onnx"]),
        "onnx_fp16": export_graph(half_module(gen, spec), spec, paths["onnx_fp16"]),
    }
    for key in ("onnx", "onnx_fp16"):
        add_metadata(paths[key], spec, {"colorize_gan.precision": "fp16" if key == "onnx_fp16" else "fp32",
                                        "colorize_gan.exporter": exporters[key]})
    dtype = torch.float16 if weights_dtype == "float16" else torch.float32
    # The distribution head's bin centres and prior stay float32: they are the decoding, not learned weights.
    state = {k: (v.to(dtype) if v.is_floating_point() and k not in FLOAT32_BUFFERS else v).contiguous()
             for k, v in gen.state_dict().items()}
    save_file(state, str(paths["weights"]), metadata={"spec": spec.to_json()})

    images = load_parity_images(parity_images)
    worst = parity(served, spec, {k: paths[k] for k in ("onnx", "onnx_fp16")}, images, render_size)
    from runtime.model.generator import has_scene

    from .export_scene import write_scene_graph

    keys = ["onnx", "onnx_fp16", "weights"]
    scene = None
    if has_scene(gen):
        exporters["onnx_scene"], scene = write_scene_graph(gen, spec, paths["onnx_scene"], images, render_size,
                                                           half_weights=weights_dtype == "float16")
        keys.append("onnx_scene")
    elif paths["onnx_scene"].exists():  # a stale scene graph of another model at this stem
        paths["onnx_scene"].unlink()
    provenance = {
        "checkpoint": str(checkpoint.resolve()),
        "checkpoint_weights": inference_weights(checkpoint).name,
        "exported": _now(),
        "torch": torch.__version__,
        "opset": OPSET,
        "exporters": exporters,
        "weights_dtype": weights_dtype,
        "parity_max_abs_ab": worst,
        "parity_images": str(parity_images) if parity_images else "synthetic",
        "sha256": {k: sha256_file(paths[k]) for k in keys},
    }
    if scene is not None:
        provenance["parity_scene_relative"] = scene
    state_json = checkpoint / "state.json"
    if state_json.is_file():
        try:
            st = json.loads(state_json.read_text(encoding="utf-8"))
            provenance["step"] = st.get("step")
        except (OSError, json.JSONDecodeError):
            pass  # provenance is informative; a damaged state.json must not block an export
    bundle = {"format": BUNDLE_FORMAT, "version": BUNDLE_VERSION, "spec": spec.to_dict(), "provenance": provenance}
    paths["json"].write_text(json.dumps(bundle, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return worst if scene is None else {**worst, "scene": scene}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="colorize-gan-export", description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", type=Path, help="trainer checkpoint directory (spec.json + generator.safetensors) or run folder (uses its latest checkpoint)")
    ap.add_argument("-o", "--output", type=Path, required=True, help="bundle stem, e.g. runtime/model/weights/default")
    ap.add_argument("--parity-images", type=Path, default=None, help="folder of real images for the parity check (default: synthetic)")
    ap.add_argument("--render-size", type=int, default=256, help="longer side the parity check runs the net at")
    ap.add_argument("--ab-gain", type=float, default=None,
                    help="served chroma gain written into the bundle's spec (tools/calibrate_chroma.py measures one on "
                         "training photos; default: the checkpoint's, 1.0)")
    ap.add_argument("--ab-temperature", type=float, default=None,
                    help="distribution head: the served annealed-mean temperature (lower = more vivid where the model "
                         "is sure; default: the checkpoint's)")
    ap.add_argument("--ab-prior-alpha", type=float, default=None,
                    help="distribution head: served prior correction, -1 to 1: > 0 favours rare colours, < 0 undoes part of "
                         "the training's rebalancing (default: the checkpoint's, 0)")
    ap.add_argument("--ab-blend", type=float, default=None,
                    help="blend head: the annealed mean's share of the served ab, 0 to 1 (default: the checkpoint's)")
    ap.add_argument("--ab-regression-gain", type=float, default=None,
                    help="blend head: the regression's chroma gain inside the blend (default: the checkpoint's)")
    ap.add_argument("--weights-dtype", choices=("float16", "float32"), default="float16",
                    help="storage dtype of NAME.safetensors (float16 halves its size; loaded as float32)")
    args = ap.parse_args(argv)
    if not args.checkpoint.is_dir():
        print(f"colorize-gan-export: {args.checkpoint}: not a directory", file=sys.stderr)
        return 2
    if args.parity_images is not None and not args.parity_images.is_dir():
        print(f"colorize-gan-export: {args.parity_images}: not a directory", file=sys.stderr)
        return 2
    worst = export_bundle(args.checkpoint, args.output, args.parity_images, args.weights_dtype, args.render_size,
                          **{k: getattr(args, k) for k in SERVED_OPTIONS})
    print(f"parity (ORT CPU vs torch, max |delta ab|): FP32 {worst['onnx']:.2e}, FP16 {worst['onnx_fp16']:.3f}"
          + (f"; scene graph {worst['scene']:.1e} (relative)" if "scene" in worst else ""))
    stem = bundle_stem(args.output)
    for p in bundle_paths(stem).values():
        if p.is_file():
            print(f"  {p}  {p.stat().st_size / 1e6:.1f} MB")
    from .export_scene import scene_tolerance

    scene_tol = scene_tolerance(args.weights_dtype == "float16")
    if worst["onnx"] > FP32_TOLERANCE or worst["onnx_fp16"] > FP16_TOLERANCE or worst.get("scene", 0.0) > scene_tol:
        print(f"colorize-gan-export: parity check failed (tolerances: FP32 {FP32_TOLERANCE}, FP16 {FP16_TOLERANCE} ab units, "
              f"scene graph {scene_tol:g} relative)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
