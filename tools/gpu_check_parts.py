"""The pieces of tools/gpu_check.py that are not its sections: FP16 peak lookup, FLOP counting, the model and
photo loaders, hint patches, the timing loop and the Markdown report. Imported by gpu_check.py (its folder is on
sys.path when it runs as a script or is loaded by the tests)."""
from __future__ import annotations

import copy
import sys
import time
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


# -- pieces -------------------------------------------------------------------------------------------

def random_hint_generator(smoke: bool):
    """A random-weight efficientnet-lite0 generator with hint inputs, in eval. Its hint branch (zero-initialised for
    training) and last conv get weights large enough that hints and ab are big, so parity with hints means something."""
    import torch
    from torch import nn

    from runtime.model.generator import build_generator
    from runtime.model.spec import ModelSpec

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

    from runtime.model.generator import build_generator
    from runtime.model.spec import ModelSpec

    if random_hints:
        return None, random_hint_generator(smoke), "random weights, efficientnet-lite0 with colour hints"
    if not smoke:
        try:
            from runtime.backends.torch_cpu import build_lab_colorizer
            from runtime.model.bundle import resolve

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

    from runtime.model.generator import fold_batchnorm
    from runtime.model.generator import LabColorizer

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

    from runtime.image.color import rgb_to_l

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
