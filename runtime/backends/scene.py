"""The scene graph's runner: what the model's encoder makes of a whole picture, as one unit vector.

The reference matcher (runtime/image/reference.py) compares a picture's vector with its reference's: photos of the
same kind of scene point the same way, unrelated ones do not. Whatever backend colours, this runs on the CPU: it is
needed once per picture or reference and is small (the encoder alone, its input at most ``SCENE_SIDE`` pixels on the
long side). It runs the bundle's ``NAME_scene.onnx`` in ONNX Runtime (a core dependency), or, for a trainer
checkpoint without ONNX files, the same features in torch. A model that has neither (a plain U-Net encoder, or a
bundle exported before scene graphs existed) has no scene encoder: ``scene_encoder`` returns None and the matcher
does without the comparison. onnxruntime and torch are imported only when one is built.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..errors import one_line
from ..model.bundle import ModelError
from .base import ModelFiles, available_cores

SCENE_SIDE = 256  # the long side a picture is brought down to (a multiple of 32) before the encoder sees it
SCENE_OUTPUT = "scene"


def scene_input(net_L: np.ndarray, multiple: int) -> np.ndarray:
    """Network L (1, 1, h, w) -> the scene graph's input: the same when its long side is at most SCENE_SIDE, else
    scaled down (bilinear) so that it is, each side a multiple of ``multiple``."""
    h, w = net_L.shape[2:]
    if max(h, w) <= SCENE_SIDE:
        return np.ascontiguousarray(net_L, dtype=np.float32)
    from PIL import Image

    s = SCENE_SIDE / max(h, w)
    size = (max(multiple, round(w * s / multiple) * multiple), max(multiple, round(h * s / multiple) * multiple))
    small = Image.fromarray(np.asarray(net_L[0, 0], np.float32), mode="F").resize(size, Image.Resampling.BILINEAR,
                                                                                   reducing_gap=2.0)
    return np.asarray(small, np.float32)[None, None].copy()


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float32).reshape(-1)
    return v / np.float32(max(float(np.linalg.norm(v)), 1e-12))


def _onnx_runner(path: str, spec, threads: int | None) -> Callable[[np.ndarray], np.ndarray]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or available_cores()
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    return lambda x: session.run([SCENE_OUTPUT], {spec.input_name: x})[0]


def _torch_runner(files: ModelFiles) -> Callable[[np.ndarray], np.ndarray] | None:
    import torch

    from ..model.generator import LabScene, has_scene
    from .torch_cpu import build_lab_colorizer

    gen = build_lab_colorizer(files).generator
    if not has_scene(gen):
        return None
    module = LabScene(gen).eval()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(x.copy())).numpy()

    return run


def scene_encoder(files: ModelFiles, threads: int | None = None) -> Callable[[np.ndarray], np.ndarray] | None:
    """A function network L (1, 1, h, w) -> the picture's unit scene vector (C,), or None when the model has no scene
    graph. A scene graph that cannot be loaded raises ModelError, one line naming the file: a damaged model is an
    error, as a damaged main graph is (a missing one is not: bundles exported before scene graphs have none)."""
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
        return None  # neither runtime installed for it: no comparison, as for a model without a scene graph
    except Exception as exc:  # ORT's and torch's own exception types for a damaged file
        raise ModelError(f"{files.onnx_scene or files.weights}: cannot load the scene graph ({one_line(exc)})") from None
    return lambda net_L: _unit(run(scene_input(net_L, files.spec.size_multiple)))
