"""FP32 graphs with FP16-stored weights: each large float32 initializer is kept as float16 and cast back to float32
in the graph, which halves the file while the compute stays FP32.

ONNX Runtime folds the casts into constants when it loads the graph, so a run costs what it did; the outputs move by
the weights' FP16 rounding (~5e-4 relative per weight). The bundle uses it for the scene graph
(trainer/export_scene.py), whose outputs are compared by direction, not served as colour; the colour graphs keep their
FP32 weights, so the FP32 graph stays within float reordering of torch.

Left as they are: initializers that are also graph inputs (a caller may feed them), tensors that FP16 cannot hold
(beyond its range, or with more than a tenth of their non-zero values flushed to zero), and initializers of
subgraphs (If/Loop bodies; those reading a main-graph initializer read the Cast's output under the same name). Graphs
with external data are not supported: the result is written inline.
"""
from __future__ import annotations

from pathlib import Path

MIN_ELEMENTS = 1024  # smaller tensors (biases, scales) stay float32: they cost little and matter most per weight
CAST_SUFFIX = "__fp16"
FP16_MAX = 65504.0
MAX_FLUSHED = 0.1  # the share of a tensor's non-zero values that may round to zero in FP16


def store_weights_half(path: Path, min_elements: int = MIN_ELEMENTS) -> int:
    """Rewrite the ONNX graph at ``path`` in place with its float32 initializers of >= ``min_elements`` elements
    stored as float16 behind a Cast; returns how many were converted. Idempotent: the FP16 copies are not float32
    and are skipped, as is everything the module docstring lists."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    inputs = {i.name for i in graph.input}
    names = inputs | {i.name for i in graph.initializer} | {o for n in graph.node for o in n.output}
    casts, halves = [], []
    for init in list(graph.initializer):
        if (init.data_type != TensorProto.FLOAT or int(np.prod(init.dims)) < min_elements or init.name in inputs
                or init.name + CAST_SUFFIX in names):
            continue
        full = numpy_helper.to_array(init)
        if not np.isfinite(full).all() or np.abs(full).max() > FP16_MAX:
            continue
        halved = full.astype(np.float16)
        nonzero = full != 0
        if np.count_nonzero(halved[nonzero] == 0) > MAX_FLUSHED * max(1, np.count_nonzero(nonzero)):
            continue
        half = numpy_helper.from_array(halved, init.name + CAST_SUFFIX)
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
