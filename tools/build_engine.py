#!/usr/bin/env python3
"""Build a TensorRT FP16 engine for the GPU at hand from a model bundle's FP16-typed ONNX.

    python tools/build_engine.py runtime/model/weights/default_fp16.onnx                  # into the per-user cache
    python tools/build_engine.py MODEL.json --max 64x512x512 -o my.engine         # custom profile, own file
    COLORIZE_GAN_TRT_ENGINE=my.engine colorize-gan --backend tensorrt photo.jpg -o out.jpg

Without ``-o`` the engine goes into the per-user cache under the same key the TensorRT backend
computes, so ``colorize-gan --backend tensorrt`` finds it (only with the default profile; an engine
with another profile is used through ``COLORIZE_GAN_TRT_ENGINE``). The profile (N x H x W) applies to
every input of the model: L (N x 1 x H x W) and, for a model that takes colour hints, the hint input
(N x 3 x H x W). Every engine gets a sidecar ``ENGINE.json``: TensorRT version, GPU name and compute
capability, ONNX sha256, the model's inputs, profile (and each input's NCHW shapes), precision and the
precision check. Arguments are validated before TensorRT is imported, so ``--help`` and argument
errors work without it.
"""
from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's runtime/trainer, not an installed copy
from runtime.backends.gpu.engine_profile import Inputs, Profile, default_profile, format_shape, model_inputs, parse_shape  # noqa: E402
from runtime.model.spec import ModelSpec  # noqa: E402
from runtime.backends.gpu.trt_build import INSTALL_HINT, PRECISIONS  # noqa: E402

EPILOG = f"""The profile's N x H x W applies to every input of the model: L (N x 1 x H x W) and, for a
model that takes colour hints, its hint input (N x 3 x H x W).

TensorRT is not a dependency of colorize-gan. Install it with:
  {INSTALL_HINT}
Engines only run on the GPU architecture and TensorRT version they were built with, and only for the
model inputs they were built for; the sidecar ENGINE.json records all three and the runtime refuses
a mismatched engine."""


@dataclass(frozen=True)
class BuildPlan:
    """Everything the build needs, validated; no TensorRT involved yet."""

    onnx: Path
    spec: ModelSpec
    profile: Profile
    precision: str
    workspace_bytes: int
    timing_cache: Path | None  # None: no timing cache; Path("auto"): per-user default
    output: Path | None  # None: the per-user engine cache
    device: int

    @property
    def inputs(self) -> Inputs:
        """The model's inputs as (name, channels): L, and the hint input of a model that takes hints."""
        return model_inputs(self.spec)


def make_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="build_engine.py",
        description="Build a TensorRT engine (FP16 by default) from a colorize-gan model's ONNX.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("model", help="the model: NAME_fp16.onnx, NAME.json, NAME.onnx or the bundle stem")
    ap.add_argument("-o", "--output", type=Path, help="engine file to write (default: the per-user engine cache)")
    ap.add_argument("--precision", choices=PRECISIONS, default="fp16", help="fp16 builds NAME_fp16.onnx, fp32 builds NAME.onnx (default fp16)")
    ap.add_argument("--min", dest="min_shape", metavar="NxHxW", help="smallest batch x height x width (default 1xMxM, M = the model's size multiple)")
    ap.add_argument("--opt", dest="opt_shape", metavar="NxHxW", help="shape TensorRT tunes for (default 1x256x256)")
    ap.add_argument("--max", dest="max_shape", metavar="NxHxW", help="largest shape (default 16x1024x1024)")
    ap.add_argument("--workspace-gb", type=float, default=4.0, help="builder workspace limit in GiB (default 4)")
    tc = ap.add_mutually_exclusive_group()
    tc.add_argument("--timing-cache", type=Path, help="timing cache file to reuse and update (default: per-user, per GPU)")
    tc.add_argument("--no-timing-cache", action="store_true", help="build without a timing cache")
    ap.add_argument("--device", type=int, default=0, help="CUDA device index (default 0)")
    return ap


def _resolve_model(model: str, precision: str) -> tuple[Path, ModelSpec]:
    from runtime.model.bundle import ModelError, resolve

    try:
        files = resolve(model)
    except (ModelError, ValueError) as exc:
        raise ValueError(str(exc)) from None
    onnx = files.onnx_fp16 if precision == "fp16" else files.onnx
    if not onnx:
        want = "NAME_fp16.onnx (FP16-typed)" if precision == "fp16" else "NAME.onnx (FP32)"
        raise ValueError(f"{model}: the model has no {want}; export it with colorize-gan-export")
    return Path(onnx), files.spec


def make_plan(args: argparse.Namespace) -> BuildPlan:
    """Validate the arguments into a BuildPlan; ValueError (one line) on anything wrong."""
    onnx, spec = _resolve_model(args.model, args.precision)
    base = default_profile(spec.size_multiple, 1024, 16)
    profile = Profile(
        parse_shape(args.min_shape) if args.min_shape else base.min,
        parse_shape(args.opt_shape) if args.opt_shape else base.opt,
        parse_shape(args.max_shape) if args.max_shape else base.max,
    ).validate(spec.size_multiple)
    if not 0 < args.workspace_gb <= 1024:
        raise ValueError(f"--workspace-gb must be in (0, 1024], got {args.workspace_gb}")
    if args.device < 0:
        raise ValueError(f"--device must be >= 0, got {args.device}")
    if args.output is not None and args.output.is_dir():
        raise ValueError(f"--output {args.output} is a directory; give an engine file name")
    timing = None if args.no_timing_cache else (args.timing_cache or Path("auto"))
    return BuildPlan(onnx, spec, profile, args.precision, int(args.workspace_gb * (1 << 30)), timing, args.output, args.device)


def default_timing_cache(gpu_capability: str, trt_version: str) -> Path:
    from runtime.cache import cache_dir

    tag = re.sub(r"[^0-9A-Za-z.]+", "_", f"sm{gpu_capability}-trt{trt_version}")
    return cache_dir() / "timing" / f"{tag}.cache"


def build(plan: BuildPlan, log=print) -> Path:
    """Build and write the engine + sidecar; returns the engine path. Needs TensorRT and a GPU."""
    from runtime.backends.gpu import cuda
    from runtime.backends.gpu.engine_cache import engine_path_for, file_lock, lock_path, store
    from runtime.backends.gpu.trt_build import build_engine, current_key, import_tensorrt

    trt = import_tensorrt()
    rt = cuda.load()
    reason = cuda.probe()
    if reason:
        raise RuntimeError(f"no usable GPU: {reason}")
    rt.set_device(plan.device)
    key = current_key(trt.__version__, rt, plan.device, plan.onnx, plan.profile, plan.precision, plan.inputs)
    out = plan.output or engine_path_for(key, plan.onnx.stem)
    timing = plan.timing_cache
    if timing == Path("auto"):
        timing = default_timing_cache(key.compute_capability, key.tensorrt_version)
    with file_lock(lock_path(out)):  # the lock the backend takes for the same engine
        result = build_engine(plan.onnx, plan.spec, plan.profile, plan.precision, plan.workspace_bytes, timing, log=log)
        store(Path(out), key, result.engine, result.report)
    log(f"wrote {out} ({len(result.engine) / 2**20:.1f} MiB) for {key.gpu_name} (sm {key.compute_capability}), "
        f"TensorRT {key.tensorrt_version}, inputs {', '.join(f'{n} ({c} ch)' for n, c in plan.inputs)}, profile min {format_shape(plan.profile.min)} opt {format_shape(plan.profile.opt)} "
        f"max {format_shape(plan.profile.max)}, precision check {result.report['precision_check']['engine']}")
    return Path(out)


def main(argv: list[str] | None = None) -> int:
    ap = make_parser()
    args = ap.parse_args(argv)
    try:
        plan = make_plan(args)
    except ValueError as exc:
        ap.error(str(exc))  # exit 2, argparse style
    try:
        build(plan)
    except Exception as exc:  # BuildError, CudaError, CudaUnavailable, TimeoutError: all end the same way
        print(f"build_engine.py: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
