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
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Dense FP16 tensor-core peak with FP32 accumulate, from NVIDIA's datasheets (no sparsity).
FP16_PEAK_TFLOPS = {
    "H200": 989.4,
    "H100 SXM": 989.4,
    "H100 80GB HBM3": 989.4,
    "H100 NVL": 835.0,
    "H100 PCIe": 756.0,
    "A100": 312.0,
    "L40S": 362.0,
    "L4": 121.0,
}
# Fallback estimate: dense FP16 FLOPs per SM per clock by compute capability major.minor.
FP16_FLOPS_PER_SM_CLOCK = {(9, 0): 4096, (8, 0): 2048}


def fp16_peak(name: str, capability: tuple[int, int] | None = None, sms: int = 0, clock_khz: int = 0) -> tuple[float | None, str]:
    """(peak FP16 FLOP/s, where the number comes from) for a GPU."""
    for key in sorted(FP16_PEAK_TFLOPS, key=len, reverse=True):  # most specific name first
        if key.lower() in name.lower():
            return FP16_PEAK_TFLOPS[key] * 1e12, f"datasheet ({key})"
    per = FP16_FLOPS_PER_SM_CLOCK.get(tuple(capability or ()))
    if per and sms and clock_khz:
        return per * sms * clock_khz * 1e3, f"estimate: {sms} SMs x {clock_khz / 1e6:.2f} GHz x {per} FLOP/clk"
    return None, "unknown GPU"


def count_flops(module, shape: tuple[int, ...]) -> int:
    """FLOPs (2 x multiply-adds) of one forward pass of ``module`` on ``shape``, from its conv,
    transposed-conv and linear layers (everything else is memory-bound and negligible in FLOPs).
    Runs on the meta device, so it costs no compute and works for any size."""
    import torch
    from torch import nn

    total = 0

    def hook(m, inputs, output):
        nonlocal total
        x = inputs[0]
        if isinstance(m, nn.Conv2d):
            total += 2 * output.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, nn.ConvTranspose2d):
            # Each input pixel scatters a kh x kw x Cout/groups patch: MACs = input elements x Cout/g x kh x kw.
            total += 2 * x.numel() * (m.out_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, nn.Linear):
            total += 2 * (x.numel() // m.in_features) * m.in_features * m.out_features

    meta = copy.deepcopy(module).to("meta")
    handles = [m.register_forward_hook(hook) for m in meta.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    try:
        with torch.no_grad():
            meta(torch.empty(shape, device="meta"))
    finally:
        for h in handles:
            h.remove()
    return total


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


# -- pieces -------------------------------------------------------------------------------------------

def random_hint_generator(smoke: bool):
    """A random-weight efficientnet-lite0 generator with hint inputs, in eval. Its hint branch (zero-initialised for
    training) and last conv get weights large enough that hints and ab are big, so parity with hints means something."""
    import torch
    from torch import nn

    from runtime.generator import build_generator
    from runtime.spec import ModelSpec

    torch.manual_seed(0)
    g = build_generator(ModelSpec(encoder="efficientnet-lite0", hints=True, fusion_dim=16 if smoke else 256))
    with torch.no_grad():
        for m in g.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 2.0)
        g.hint_in.weight.normal_(0.0, 0.5)
        g.head[1].weight.normal_(0.0, 0.05)
    return g.eval()


def load_model(model: str | None, smoke: bool, random_hints: bool = False):
    """(ModelFiles or None, generator in eval, description). Random weights when no bundle exists, or with
    ``random_hints`` (a random efficientnet-lite0 model with hint inputs)."""
    import torch
    from torch import nn

    from runtime.generator import build_generator
    from runtime.spec import ModelSpec

    if random_hints:
        return None, random_hint_generator(smoke), "random weights, efficientnet-lite0 with colour hints"
    if not smoke:
        try:
            from runtime.backends.torch_cpu import build_lab_colorizer
            from runtime.models import resolve

            files = resolve(model)
            if files.weights and files.onnx:
                return files, build_lab_colorizer(files).generator.eval(), f"bundle {files.onnx}"
        except Exception as exc:  # missing bundle, missing safetensors: fall back, and say so
            note = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
        else:
            note = "bundle lacks .onnx or .safetensors"
    else:
        note = "smoke run"
    torch.manual_seed(0)
    spec = ModelSpec(ngf=8, depth=4) if smoke else ModelSpec()
    g = build_generator(spec)  # the U-Net
    for m in g.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 2.0)
    with torch.no_grad():
        g.up[0][1].weight.mul_(10.0)  # widen the near-zero output of a random init so parity means something
    return None, g.eval(), f"random weights, default spec ({note})"


def export_fp32_onnx(generator, path: Path) -> str:
    """FP32 ONNX of the served model for ONNX Runtime (the legacy exporter needs no onnx package); a hint model's
    graph takes the hint input too."""
    import torch

    from runtime.generator import fold_batchnorm
    from runtime.generator import LabColorizer

    g = copy.deepcopy(generator).cpu().float().eval()
    fold_batchnorm(g)
    spec, m = g.spec, g.spec.size_multiple
    example = (torch.full((2, 1, 4 * m, 4 * m), 50.0),)
    inputs = [spec.input_name]
    if spec.hints:
        example += (torch.zeros((2, 3, 4 * m, 4 * m)),)
        inputs.append(spec.hint_name)
    axes = {name: {0: "batch", 2: "height", 3: "width"} for name in [*inputs, spec.output_name]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        torch.onnx.export(LabColorizer(g).eval(), example, str(path), dynamo=False,
                          opset_version=17, input_names=inputs, output_names=[spec.output_name], dynamic_axes=axes)
    return str(path)


def make_hints(n: int, size: int, seed: int = 0) -> np.ndarray:
    """(n, 3, size, size) hint input: a few colour patches ([a, b] in Lab units, mask 1) per image."""
    rng = np.random.default_rng(seed)
    hints = np.zeros((n, 3, size, size), np.float32)
    patch = max(2, size // 32)
    for i in range(n):
        for _ in range(6):
            y, x = rng.integers(0, size - patch, 2)
            hints[i, :2, y:y + patch, x:x + patch] = rng.uniform(-60, 60, (2, 1, 1))
            hints[i, 2, y:y + patch, x:x + patch] = 1.0
    return hints


def load_photos(folder: Path | None, n: int, size: int) -> tuple[np.ndarray, str]:
    """(n, 1, size, size) Lab L of real photos (centre crop, resized), and where they came from."""
    from PIL import Image

    from runtime.color import rgb_to_l

    candidates = [folder] if folder else [ROOT.parent / "shared" / "data" / "photos", ROOT / ".data" / "gpu_check_images"]
    for d in candidates:
        files = sorted(p for p in (d.glob("*") if d and d.is_dir() else []) if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        if files:
            out = []
            for p in files[:n]:
                im = Image.open(p).convert("RGB")
                s = min(im.size)
                im = im.crop(((im.width - s) // 2, (im.height - s) // 2, (im.width + s) // 2, (im.height + s) // 2))
                im = im.resize((size, size), Image.Resampling.BICUBIC)
                out.append(rgb_to_l(np.asarray(im, dtype=np.float32) / 255.0))
            return np.stack(out)[:, None].astype(np.float32), f"{len(out)} photos from {d}"
    rng = np.random.default_rng(0)
    return rng.uniform(0, 100, (n, 1, size, size)).astype(np.float32), "SYNTHETIC noise (no photo folder found)"


def bench(fn, sync, seconds: float, warmup: int = 3) -> tuple[float, int]:
    """(seconds per call, calls timed): warm up, then call until ``seconds`` pass; synchronized."""
    for _ in range(warmup):
        fn()
    sync()
    calls, t0 = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        if calls % 4 == 0 or calls < 4:
            sync()
            if time.perf_counter() - t0 >= seconds:
                break
    sync()
    return (time.perf_counter() - t0) / calls, calls


# -- sections -----------------------------------------------------------------------------------------

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
    from runtime import cuda

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
    from runtime.generator import LabColorizer

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
    from runtime.generator import prepare_generator
    from runtime.generator import LabColorizer

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


def to_markdown(report: dict) -> str:
    env = report.get("environment", {})
    lines = [f"# GPU check: {env.get('gpu', 'no GPU')} ({time.strftime('%Y-%m-%d')})", ""]
    lines.append(f"torch {env.get('torch')} (CUDA {env.get('torch_cuda')}), onnxruntime {env.get('onnxruntime')}, "
                 f"Python {env.get('python')}; model: {report.get('model')}")
    peak = report.get("fp16_peak", {})
    if peak.get("flops"):
        lines.append(f"FP16 dense peak used for the fraction: {peak['flops'] / 1e12:.0f} TFLOP/s ({peak['source']})")
    fl = report.get("flops_per_image", {})
    if fl:
        lines.append("FLOPs per image (conv + transposed conv + linear): " + ", ".join(f"{s}x{s}: {v / 1e9:.2f} GFLOP" for s, v in fl.items()))
    cb = report.get("cffi_binding", {})
    lines += ["", f"cffi binding: {cb.get('result', cb.get('error', 'not run'))}; "
              + ", ".join(f"{k} {cb[k]}" for k in ("h2d_GBps", "d2h_GBps", "malloc_2_60_error") if k in cb)]
    lines += ["", "## Parity vs ONNX Runtime CPU FP32 (ab units)", "",
              "| size | images | max abs ab (ref) | torch FP32 on device: max delta | torch-CUDA FP16 graph: max delta | mean delta |",
              "|---|---|---|---|---|---|"]
    for r in report.get("parity", []):
        lines.append(f"| {r['size']} | {r['images']} | {r['max_abs_ab_ref']:.1f} | {r['torch_fp32_device_max_delta']:.4f} | "
                     f"{r.get('backend_fp16_graph_max_delta', float('nan')):.4f} | {r.get('backend_fp16_graph_mean_delta', float('nan')):.4f} |")
    hint_rows = [r for r in report.get("parity", []) if "hint_effect_max" in r]
    if hint_rows:
        lines += ["", "## Parity with colour hints vs ONNX Runtime CPU FP32 (ab units)", "",
                  "| size | hint effect (ref): max | torch FP32 on device: max delta | torch-CUDA FP16 graph: max delta | mean delta "
                  "| no hints after hints vs before: max delta |", "|---|---|---|---|---|---|"]
        nan = float("nan")
        for r in hint_rows:
            lines.append(f"| {r['size']} | {r['hint_effect_max']:.1f} | {r['hints_torch_fp32_device_max_delta']:.4f} | "
                         f"{r.get('hints_backend_fp16_graph_max_delta', nan):.4f} | {r.get('hints_backend_fp16_graph_mean_delta', nan):.4f} | "
                         f"{r.get('no_hints_after_hints_max_delta', nan):.4f} |")
    lines += ["", "## Throughput (images/s, synchronized)", "",
              "| size | batch | mode | images/s | ms/batch | speedup vs eager FP32 | TFLOP/s | % FP16 peak |", "|---|---|---|---|---|---|---|---|"]
    for r in report.get("benchmark", []):
        if "images_per_s" in r:
            frac = f"{100 * r['peak_fraction']:.2f}" if r.get("peak_fraction") else "-"
            lines.append(f"| {r['size']} | {r['batch']} | {r['mode']} | {r['images_per_s']:.0f} | {r['ms_per_batch']:.2f} | "
                         f"{r.get('speedup_vs_eager_fp32', float('nan')):.2f} | {r['tflops']:.1f} | {frac} |")
        else:
            lines.append(f"| {r['size']} | {r['batch']} | {r['mode']} | {r.get('error') or r.get('skipped')} | | | | |")
    for name, err in report.get("errors", {}).items():
        lines += ["", f"**{name} failed**: {err}"]
    return "\n".join(lines) + "\n"


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
