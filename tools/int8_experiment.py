"""Experiment (not shipped): does post-training INT8 quantization keep the default model's colours?

    python tools/int8_experiment.py [--calibration 48] [--photos 25]

The network is most of a photo's CPU time (docs/benchmarks-batch.md), and ONNX Runtime's integer convolutions run
about twice as fast on CPUs with VNNI, so an INT8 graph would be the next big step in throughput. This script
quantizes the embedded model's FP32 ONNX with ONNX Runtime's static quantization (QDQ; activations uint8 per tensor,
weights int8 per channel; MinMax ranges) calibrated on TRAINING photos (the default recipe's split: mix/ + photos/,
1000 + 10 held out, seed 0), each as served (grey L at render 256, with its mirror image), and compares it with FP32
on held-out photos: mean |delta ab| of the network's output (Lab units) and the CPU time of one mirror pair on one
thread. Three variants: everything quantized, the decoder's last convolutions kept in FP32, only the encoder
quantized. Needs the ``onnx`` package (the ``train`` extra) and ../shared/data. The result (2026-12-05) is in
docs/benchmarks-batch.md: every variant moves the colour by ~6 Lab units on average (the encoder's activations do
not survive per-tensor uint8), so INT8 is not offered; quantization-aware training would be the way to try again.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from argparse import Namespace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))
DATA = [str(ROOT.parent / "shared" / "data" / "mix"), str(ROOT.parent / "shared" / "data" / "photos")]


def served_input(grey: np.ndarray) -> np.ndarray:
    from runtime.image.geometry import prepare_src8

    L, _ = prepare_src8(grey, 32, 256)
    return np.ascontiguousarray(np.concatenate([L, L[..., ::-1]]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calibration", type=int, default=48, help="training photos for the ranges")
    ap.add_argument("--photos", type=int, default=25, help="held-out photos to compare on")
    args = ap.parse_args(argv)

    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process
    from PIL import Image

    from calibrate_chroma import sample_photos
    from runtime.model.bundle import resolve
    from trainer.evaluate import grey_baseline, load_colour
    from trainer.files import split_folders

    files = resolve(None)
    calib = sample_photos(Namespace(data=DATA, val_count=[1000, 10], seed=0, count=args.calibration))
    feeds = []
    for p in calib:
        with Image.open(p) as im:
            L = served_input(np.asarray(im.convert("L")))
        feeds.append({"L": L, "hints": np.zeros((2, 3, *L.shape[2:]), np.float32)})
    held = split_folders(DATA, [1000, 10], None, 0)[1]
    vals = []
    for p in held[:: max(1, len(held) // args.photos)][: args.photos]:
        truth = load_colour(p)
        if truth is not None:
            vals.append(served_input((grey_baseline(truth)[..., 0] * 255 + 0.5).astype(np.uint8)))

    def session(path: str):
        o = ort.SessionOptions()
        o.intra_op_num_threads = 1
        return ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])

    def run(s, L):
        return s.run(None, {"L": L, "hints": np.zeros((2, 3, *L.shape[2:]), np.float32)})[0]

    def cpu_ms(s) -> float:
        run(s, vals[0])
        t = time.process_time()
        for _ in range(5):
            run(s, vals[0])
        return (time.process_time() - t) / 5 * 1000

    ref = session(files.onnx)
    refs = [run(ref, L) for L in vals]
    print(f"FP32: one mirror pair {cpu_ms(ref):.1f} CPU ms (1 thread); {len(vals)} held-out photos, {len(feeds)} calibration photos")
    with tempfile.TemporaryDirectory() as tmp:
        pre = f"{tmp}/pre.onnx"
        quant_pre_process(files.onnx, pre, skip_symbolic_shape=True)
        decoder = [n.name for n in onnx.load(pre).graph.node if n.op_type == "Conv" and any(
            k in n.input[1] for k in ("generator.up.", "generator.head", "generator.hint_levels", "generator.fusion"))]
        graph = onnx.load(pre).graph
        # A distribution head's decoding (MatMul -> Add -> Softmax -> MatMul) stays FP32 in every variant.
        producer = {o: n for n in graph.node for o in n.output}
        head, todo = [], [t for n in graph.node if n.op_type == "Softmax" for t in n.input]
        todo += [o for n in graph.node if n.op_type == "MatMul" and any(
            producer.get(i) is not None and producer[i].op_type == "Softmax" for i in n.input) for o in n.output]
        while todo:  # walk back from the softmax through Add/MatMul to the logits' MatMul, and take the one after it
            n = producer.get(todo.pop())
            if n is not None and n.op_type in ("MatMul", "Add") and n.name not in head:
                head.append(n.name)
                todo += [i for i in n.input if n.op_type == "Add"]
        for name, exclude in (("all quantized", head), ("decoder head in FP32", decoder[-3:] + head), ("encoder only", decoder + head)):
            class Reader(CalibrationDataReader):
                def __init__(self):
                    self._it = iter(feeds)

                def get_next(self):
                    return next(self._it, None)

            out = f"{tmp}/{len(exclude)}.onnx"
            quantize_static(pre, out, Reader(), quant_format=QuantFormat.QDQ, per_channel=True, nodes_to_exclude=exclude,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
            s = session(out)
            err = [float(np.abs(run(s, L) - r).mean()) for L, r in zip(vals, refs)]
            print(f"INT8, {name}: mean |delta ab| {np.mean(err):.2f} (worst photo {np.max(err):.2f}) Lab units; "
                  f"one mirror pair {cpu_ms(s):.1f} CPU ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
