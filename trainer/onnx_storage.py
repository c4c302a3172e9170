"""FP32 graphs with FP16-stored weights: each large float32 initializer is kept as float16 and cast back to float32
in the graph, which halves the file while the compute stays FP32.

ONNX Runtime folds the casts into constants when it loads the graph, so a run costs what it did; the outputs move by
the weights' FP16 rounding (~5e-4 relative per weight). The bundle uses it for the scene graph
(trainer/export_onnx.py), whose outputs are compared by direction, not served as colour; the colour graphs keep their
FP32 weights, so the FP32 graph stays within float reordering of torch.
"""
from __future__ import annotations

from pathlib import Path

MIN_ELEMENTS = 1024  # smaller tensors (biases, scales) stay float32: they cost little and matter most per weight
CAST_SUFFIX = "__fp16"


def store_weights_half(path: Path, min_elements: int = MIN_ELEMENTS) -> int:
    """Rewrite the ONNX graph at ``path`` in place with its float32 initializers of >= ``min_elements`` elements
    stored as float16 behind a Cast; returns how many were converted. Idempotent: a converted graph has no large
    float32 initializers left."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    casts, halves = [], []
    for init in list(graph.initializer):
        if init.data_type != TensorProto.FLOAT or int(np.prod(init.dims)) < min_elements:
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name + CAST_SUFFIX)
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT,
                                      name=init.name + CAST_SUFFIX + "_cast"))
        halves.append(half)
        graph.initializer.remove(init)
    if not casts:
        return 0
    graph.initializer.extend(halves)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)  # the casts first: the graph stays topologically sorted
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return len(casts)
