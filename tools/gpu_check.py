#!/usr/bin/env python3
"""One prepared check for a lent GPU machine (H100/H200): the cffi binding, the torch-CUDA backend,
parity against ONNX Runtime CPU FP32 on real photos, and images/s benchmarks. Writes
``gpu_check.md`` (a table to copy into docs/gpu.md) and ``gpu_check.json`` to ``--out``.

For a model that takes colour hints (``--model`` a hint bundle, or ``--random-hint-model``: a random-weight
EfficientNet-Lite0 hint model, nothing to carry) the parity section also compares with hints (a few colour
patches per photo) and checks that a call without hints after one with them gives the automatic result
(the CUDA graph's static hint buffer is refilled).

Budget: about 6 minutes on an H100 (``--budget-s`` stops the benchmark early and says so).
Every section records its own failure and the script goes on, so one bad part never loses the rest.

Run it from the repository root on the GPU machine (it has torch + CUDA and a CPU onnxruntime,
but may lack cffi / safetensors: carry them as wheels in an ignored folder, see docs/gpu.md):

    python -m pip install -q --no-index --find-links .gpu_wheels --target /tmp/gd cffi pycparser safetensors
    PYTHONPATH=.:/tmp/gd python tools/gpu_check.py --out "$OUT" --images .data/gpu_check_images

On a CPU machine ``--smoke`` runs the same code paths at toy sizes (no CUDA parts) to test the script.

Modes benchmarked (all synchronized before the clock stops):
  eager-fp32      torch eager FP32, NCHW, cuDNN autotune (TF32 convs as torch defaults), tensors on the GPU
  fp16-cl         the torch-CUDA backend's prepared model (FP16, BN folded, channels_last), eager, on the GPU
  fp16-cl-graph   the same replayed from a CUDA graph, on the GPU
  backend         TorchCUDABackend.run, numpy in and out (includes host<->device copies), CUDA graphs on
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling module below
from gpu_check_parts import (  # noqa: E402
    bench, count_flops, export_fp32_onnx, fp16_peak, load_model, load_photos, make_hints, to_markdown,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or ROOT / "out" / "gpu_check"))
    ap.add_argument("--images", type=Path, default=None, help="folder of real photos for parity (default: ../shared/data/photos, .data/gpu_check_images)")
    ap.add_argument("--model", default=None, help="model bundle (default: the embedded model; random weights if it is missing)")
    ap.add_argument("--random-hint-model", action="store_true",
                    help="instead of a bundle, a random-weight efficientnet-lite0 model with colour-hint inputs (checks the hint paths)")
    ap.add_argument("--sizes", default="256,512", help="square sizes to benchmark (default 256,512)")
    ap.add_argument("--batches", default="1,8,64", help="batch sizes to benchmark (default 1,8,64)")
    ap.add_argument("--seconds", type=float, default=1.0, help="timed seconds per measurement (default 1.0)")
    ap.add_argument("--parity-images", type=int, default=8, help="how many photos the parity check uses (default 8)")
    ap.add_argument("--budget-s", type=float, default=330.0, help="stop benchmarking after this many seconds (default 330)")
    ap.add_argument("--smoke", action="store_true", help="CPU smoke run of the script itself: toy sizes, no CUDA")
    args = ap.parse_args(argv)
    try:
        args.sizes = [int(s) for s in args.sizes.split(",")]
        args.batches = [int(b) for b in args.batches.split(",")]
    except ValueError:
        ap.error("--sizes and --batches take comma-separated integers, e.g. 256,512")
    if any(v <= 0 for v in args.sizes + args.batches) or args.seconds <= 0:
        ap.error("sizes, batches and --seconds must be positive")
    if args.model and args.random_hint_model:
        ap.error("--model and --random-hint-model exclude each other")
    if args.smoke:
        args.sizes, args.batches, args.seconds, args.parity_images = [64], [1, 2], 0.05, 2
    return args


def section_environment(report: dict, dev) -> None:
    import torch

    env = {"python": platform.python_version(), "torch": torch.__version__, "torch_cuda": torch.version.cuda}
    if dev.type == "cuda":
        p = torch.cuda.get_device_properties(dev)
        env.update(gpu=p.name, capability=f"{p.major}.{p.minor}", sms=p.multi_processor_count, memory_gib=round(p.total_memory / 2**30, 1))
    try:
        import onnxruntime

        env["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        env["onnxruntime"] = None
    report["environment"] = env


def section_cffi(report: dict) -> None:
    """The cffi binding for real: discovery, device queries, pinned/device memory, async copies, errors."""
    from runtime.backends.gpu import cuda

    out: dict = {"describe": cuda.describe()}
    report["cffi_binding"] = out
    reason = cuda.probe()
    if reason:
        out["result"] = f"no GPU through libcudart: {reason}"
        return
    rt = cuda.load()
    nbytes = 64 << 20
    data = np.random.default_rng(0).integers(0, 255, nbytes, dtype=np.uint8)
    h_in, h_out, d, stream = rt.host_alloc(nbytes), rt.host_alloc(nbytes), rt.malloc(nbytes), rt.stream()
    try:
        h_in.array((nbytes,), np.uint8)[:] = data
        t0 = time.perf_counter()
        rt.memcpy_async(d.ptr, h_in.ptr, nbytes, cuda.MEMCPY_HOST_TO_DEVICE, stream)
        stream.synchronize()
        t1 = time.perf_counter()
        rt.memcpy_async(h_out.ptr, d.ptr, nbytes, cuda.MEMCPY_DEVICE_TO_HOST, stream)
        stream.synchronize()
        t2 = time.perf_counter()
        ok = bool(np.array_equal(h_out.array((nbytes,), np.uint8), data))
    finally:
        for b in (d, h_in, h_out):
            b.free()
        stream.destroy()
    try:
        rt.malloc(1 << 60)
        oom = "no error (unexpected)"
    except cuda.CudaError as exc:
        oom = exc.name
    free, total = rt.mem_info()
    out.update(
        roundtrip_64MiB_equal=ok,
        h2d_GBps=round(nbytes / (t1 - t0) / 1e9, 1),
        d2h_GBps=round(nbytes / (t2 - t1) / 1e9, 1),
        malloc_2_60_error=oom,
        mem_free_total_gib=[round(free / 2**30, 1), round(total / 2**30, 1)],
        clock_khz=rt.attribute(cuda.ATTR_CLOCK_RATE_KHZ),
        result="ok" if ok and oom == "cudaErrorMemoryAllocation" else "FAILED",
    )


def section_parity(report: dict, args, files, generator, dev) -> None:
    """max |delta ab| of the torch-CUDA backend (and torch FP32 on the device) vs ONNX Runtime CPU FP32; for a hint
    model also with hints, and without hints right after them (the graph's static hint buffer must be zeroed)."""
    import onnxruntime as ort
    import torch

    from runtime.backends.base import ModelFiles
    from runtime.backends.torch_cuda import TorchCUDABackend
    from runtime.model.generator import LabColorizer

    spec = generator.spec
    onnx = files.onnx if files else export_fp32_onnx(generator, args.out / "model_fp32.onnx")
    sess = ort.InferenceSession(onnx, providers=["CPUExecutionProvider"])

    def reference(L, hints=None):  # one image per call, as a user's photos arrive
        out = []
        for i in range(len(L)):
            feed = {spec.input_name: L[i : i + 1]}
            if spec.hints:
                feed[spec.hint_name] = hints[i : i + 1] if hints is not None else np.zeros((1, 3, *L.shape[2:]), np.float32)
            out.append(sess.run([spec.output_name], feed)[0])
        return np.concatenate(out)

    rows = []
    sizes = [64] if args.smoke else [256, 512]
    backend = None
    if dev.type == "cuda":
        backend = TorchCUDABackend(ModelFiles(spec=spec), generator=copy.deepcopy(generator), graph_after=1)
    fp32 = LabColorizer(copy.deepcopy(generator)).to(dev).eval()
    try:
        for size in sizes:
            L, source = load_photos(args.images, args.parity_images, size)
            ref = reference(L)
            with torch.inference_mode():
                got32 = fp32(torch.from_numpy(L).to(dev)).float().cpu().numpy()
            row = {"size": size, "images": source, "max_abs_ab_ref": float(np.abs(ref).max()),
                   "torch_fp32_device_max_delta": float(np.abs(got32 - ref).max())}
            got = None
            if backend is not None:
                got = backend.run(L)  # first call captures the graph (graph_after=1): graph path checked
                d = np.abs(got - ref)
                row.update(backend_fp16_graph_max_delta=float(d.max()), backend_fp16_graph_mean_delta=float(d.mean()),
                           backend_fp16_graph_p999_delta=float(np.quantile(d, 0.999)))
            if spec.hints:
                hints = make_hints(len(L), size)
                ref_h = reference(L, hints)
                with torch.inference_mode():
                    got32_h = fp32(torch.from_numpy(L).to(dev), torch.from_numpy(hints).to(dev)).float().cpu().numpy()
                # hint_effect: how far hints move the reference; parity with hints means little if they barely do
                row.update(hint_effect_max=float(np.abs(ref_h - ref).max()),
                           hints_torch_fp32_device_max_delta=float(np.abs(got32_h - ref_h).max()))
                if backend is not None:
                    got_h = backend.run(L, hints)  # the graph captured above, hints in its static buffer
                    again = backend.run(L)  # no hints again: the buffer must be zeroed, not keep the last hints
                    d = np.abs(got_h - ref_h)
                    row.update(hints_backend_fp16_graph_max_delta=float(d.max()), hints_backend_fp16_graph_mean_delta=float(d.mean()),
                               no_hints_after_hints_max_delta=float(np.abs(again - got).max()))
            rows.append(row)
    finally:
        if backend is not None:
            backend.close()
    report["parity"] = rows


def section_benchmark(report: dict, args, generator, dev, t_start: float) -> None:
    import torch

    from runtime.backends.base import ModelFiles
    from runtime.backends.torch_cuda import TorchCUDABackend, _Graph, make_forward
    from runtime.model.generator import prepare_generator
    from runtime.model.generator import LabColorizer

    cuda_dev = dev.type == "cuda"
    sync = torch.cuda.synchronize if cuda_dev else (lambda: None)
    torch.backends.cudnn.benchmark = True
    half = torch.float16 if cuda_dev else torch.bfloat16
    fp32 = LabColorizer(copy.deepcopy(generator)).to(dev).eval()
    prepared = prepare_generator(copy.deepcopy(generator).to(dev), half)
    fwd16 = make_forward(prepared, generator.spec, half)
    backend = TorchCUDABackend(ModelFiles(spec=generator.spec), generator=copy.deepcopy(generator)) if cuda_dev else None

    peak, peak_src = (None, "no GPU")
    if cuda_dev:
        p = torch.cuda.get_device_properties(dev)
        clock = report.get("cffi_binding", {}).get("clock_khz", 0) or 0
        peak, peak_src = fp16_peak(p.name, (p.major, p.minor), p.multi_processor_count, clock)
    report["fp16_peak"] = {"flops": peak, "source": peak_src}
    rows, flops_per_image = [], {}
    try:
        for size in args.sizes:
            flops = flops_per_image[size] = count_flops(generator, (1, 1, size, size))
            for batch in args.batches:
                if time.perf_counter() - t_start > args.budget_s:
                    rows.append({"size": size, "batch": batch, "mode": "*", "skipped": "time budget spent"})
                    continue
                x = torch.rand(batch, 1, size, size, device=dev) * 100
                L_np = x.cpu().numpy()
                modes = {"eager-fp32": lambda: fp32(x), "fp16-cl": lambda: fwd16(x)}
                graph = None
                if cuda_dev:
                    with torch.inference_mode():  # a hint model's graph also has its hint buffer (zeros here)
                        graph = _Graph(torch, fwd16, tuple(x.shape), dev, hints=bool(generator.spec.hints))
                    modes["fp16-cl-graph"] = lambda: graph(x)
                    modes["backend"] = lambda: backend.run(L_np)
                for mode, fn in modes.items():
                    try:
                        with torch.inference_mode():
                            sec, calls = bench(fn, sync, args.seconds)
                        ips = batch / sec
                        rows.append({"size": size, "batch": batch, "mode": mode, "ms_per_batch": sec * 1e3, "images_per_s": ips,
                                     "calls": calls, "tflops": flops * ips / 1e12, "peak_fraction": flops * ips / peak if peak else None})
                    except Exception as exc:  # e.g. out of memory at batch 64 x 512 in FP32: record, go on
                        rows.append({"size": size, "batch": batch, "mode": mode, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"})
                        if cuda_dev:
                            torch.cuda.empty_cache()
                graph = None  # free the captured graph before the next shape
    finally:
        if backend is not None:
            backend.close()
    base = {(r["size"], r["batch"]): r["images_per_s"] for r in rows if r.get("mode") == "eager-fp32" and "images_per_s" in r}
    for r in rows:
        if "images_per_s" in r and (r["size"], r["batch"]) in base:
            r["speedup_vs_eager_fp32"] = r["images_per_s"] / base[(r["size"], r["batch"])]
    report["flops_per_image"] = flops_per_image
    report["benchmark"] = rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t_start = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    import torch

    dev = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    if dev.type == "cpu" and not args.smoke:
        print("gpu_check: torch sees no CUDA GPU; use --smoke for a CPU run of the script", file=sys.stderr)
        return 2
    report: dict = {"errors": {}}
    files, generator, report["model"] = load_model(args.model, args.smoke, args.random_hint_model)
    sections = [("environment", lambda: section_environment(report, dev)), ("cffi_binding", lambda: section_cffi(report)),
                ("parity", lambda: section_parity(report, args, files, generator, dev)),
                ("benchmark", lambda: section_benchmark(report, args, generator, dev, t_start))]
    for name, run in sections:
        t0 = time.perf_counter()
        try:
            run()
        except Exception as exc:  # record and continue: the other sections still count
            report["errors"][name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
            (args.out / f"{name}_traceback.txt").write_text(traceback.format_exc())
        print(f"gpu_check: {name} done in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    report["wall_s"] = round(time.perf_counter() - t_start, 1)
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str))
    (args.out / "gpu_check.md").write_text(to_markdown(report))
    print(to_markdown(report))
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
