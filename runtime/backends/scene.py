"""The scene graph's runner: what the model's encoder sees in a picture, as a whole and part by part.

The reference matcher (runtime/image/reference.py) compares a picture with its reference in both ways: the whole
picture as one unit vector (photos of the same kind of scene point the same way, unrelated ones do not), and each
part by the encoder's features at 1/8 scale (which part of the reference is the same thing as this part of the
picture). Whatever backend colours, this runs on the CPU: it is needed once per picture, frame or reference and is
the encoder alone. It runs the bundle's ``NAME_scene.onnx`` in ONNX Runtime (a core dependency), or, for a trainer
checkpoint without ONNX files, the same module in torch. A model that has neither (a plain U-Net encoder, or a
bundle exported before scene graphs existed) has no scene encoder: ``scene_encoder`` returns None and the matcher
works without it (lightness, texture and the automatic colour). onnxruntime and torch are imported only when one is
built.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from ..errors import one_line
from ..model.bundle import ModelError
from .base import ModelFiles

SCENE_OUTPUTS = ("scene", "parts")  # the graph's outputs: (N, C) pooled, (N, C', H/8, W/8)


class SceneView(NamedTuple):
    """One picture as the encoder sees it: ``vector`` (C,) unit length, the whole; ``parts`` (C', h/8, w/8) float32."""

    vector: np.ndarray
    parts: np.ndarray


def _onnx_runner(path: str, spec, threads: int | None) -> Callable[[np.ndarray], list]:
    import onnxruntime as ort

    from .onnxruntime import session_options

    session = ort.InferenceSession(path, session_options(threads), providers=["CPUExecutionProvider"])
    if [o.name for o in session.get_outputs()] != list(SCENE_OUTPUTS):
        raise ValueError(f"outputs {[o.name for o in session.get_outputs()]}, expected {list(SCENE_OUTPUTS)} "
                         "(re-export it: tools/add_scene_graph.py)")
    return lambda x: session.run(list(SCENE_OUTPUTS), {spec.input_name: x})


def _torch_runner(files: ModelFiles) -> Callable[[np.ndarray], list] | None:
    import torch

    from ..model.generator import LabScene, has_scene
    from .torch_cpu import build_lab_colorizer

    gen = build_lab_colorizer(files).generator
    if not has_scene(gen):
        return None
    module = LabScene(gen).eval()

    def run(x: np.ndarray) -> list:
        with torch.inference_mode():
            return [t.numpy() for t in module(torch.from_numpy(x.copy()))]

    return run


def scene_encoder(files: ModelFiles, threads: int | None = None) -> Callable[[np.ndarray], SceneView] | None:
    """A function network L (1, 1, h, w) -> SceneView, or None when the model has no scene graph. A scene graph that
    cannot be loaded raises ModelError, one line naming the file: a damaged model is an error, as a damaged main
    graph is (a missing one is not: bundles exported before scene graphs have none)."""
    try:
        if files.onnx_scene:
            run = _onnx_runner(files.onnx_scene, files.spec, threads)
        elif files.weights and not files.onnx:
            run = _torch_runner(files)
            if run is None:
                return None
        else:
            return None
    except ImportError:
        return None  # neither runtime installed for it: the matcher works without it, as for a model without one
    except Exception as exc:  # ORT's and torch's own exception types for a damaged file
        raise ModelError(f"{files.onnx_scene or files.weights}: cannot load the scene graph ({one_line(exc)})") from None

    def view(net_L: np.ndarray) -> SceneView:
        vector, parts = run(np.ascontiguousarray(net_L, dtype=np.float32))
        v = np.asarray(vector, np.float32).reshape(-1)
        return SceneView(v / np.float32(max(float(np.linalg.norm(v)), 1e-12)), np.asarray(parts[0], np.float32))

    return view
