"""Building a TensorRT engine from the trainer's FP16-typed ONNX (TensorRT 10 / 11 API).

Used by ``tools/build_engine.py`` and by the TensorRT backend when its cache has no engine. The
precision comes from the ONNX types, never from a builder flag: ``BuilderFlag.FP16`` was removed
in TensorRT 11, and code that silently skips it builds an FP32 engine labelled FP16. So the network
is strongly typed (an explicit flag on 10, the only semantics on 11) and the result is checked
twice: layer dtypes in the parsed network before the build, the engine inspector after it.

The network's inputs must be exactly the model's (``engine_profile.model_inputs``: L, plus the hint
input of a model that takes colour hints), and the optimization profile gives each of them the same
batch, H and W (the hint input with its 3 channels): they are one image's planes.

The pure parts (flags from a version, parser-error formatting, input checks, precision verdicts) are
plain functions so they are tested without TensorRT; ``build_engine`` itself needs TensorRT and a GPU
(its calls are tested against a fake of the builder API: tests/test_build_engine.py).
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from .engine_profile import Inputs, Profile, format_shape, input_profiles, model_inputs
from ...model.spec import ModelSpec

PRECISIONS = ("fp16", "fp32")
INSTALL_HINT = (
    "pip install 'colorize-gan[tensorrt]' (or pip install tensorrt-cu12, which fetches the wheel from NVIDIA's "
    "package index: see TensorRT's install guide); TensorRT needs an NVIDIA GPU and driver"
)
# Share of typed engine layers that must run in FP16 for an "fp16" engine; the rest are the FP32
# graph I/O casts and the normalization layers the exporter keeps in FP32.
MIN_FP16_SHARE = 0.5


class BuildError(RuntimeError):
    """The engine could not be built; the message says why in one line."""


def version_tuple(version: str) -> tuple[int, ...]:
    """'10.13.0.35' -> (10, 13, 0, 35). Compare tuples, never version strings."""
    return tuple(int(p) for p in re.findall(r"\d+", version)[:4])


def strongly_typed_flags(version: tuple[int, ...], strongly_typed_bit: int | None) -> int:
    """``create_network`` flags: strongly typed on TensorRT 10 (explicit bit), 0 on 11+ (strong typing is the default).

    ``strongly_typed_bit`` is ``int(NetworkDefinitionCreationFlag.STRONGLY_TYPED)`` when that enum member exists.
    """
    if version[:1] < (10,):
        raise BuildError(f"TensorRT {'.'.join(map(str, version))} is too old: need 10 or newer")
    if version[0] >= 11:
        return 0
    if strongly_typed_bit is None:
        raise BuildError("this TensorRT 10 has no STRONGLY_TYPED network flag; need TensorRT >= 10.0 GA")
    return 1 << strongly_typed_bit


@dataclass(frozen=True)
class ParserIssue:
    desc: str
    node_name: str = ""
    node_index: int = -1
    op: str = ""


def format_parser_errors(issues: Iterable[ParserIssue], onnx_path: str) -> str:
    """One line naming each failing ONNX node (name, op type, index) and TensorRT's reason."""
    parts = []
    for it in issues:
        where = it.node_name or (f"node #{it.node_index}" if it.node_index >= 0 else "graph")
        op = f" ({it.op})" if it.op else ""
        parts.append(f"{where}{op}: {' '.join(it.desc.split())}")
    return f"TensorRT cannot parse {onnx_path}: " + ("; ".join(parts) if parts else "no error details")


def _parser_issues(parser) -> list[ParserIssue]:
    issues = []
    for i in range(parser.num_errors):
        e = parser.get_error(i)
        # node_name()/node_operator() appeared in TensorRT 8.6; node() is the index.
        issues.append(
            ParserIssue(
                desc=str(e.desc()),
                node_name=str(getattr(e, "node_name", lambda: "")() or ""),
                node_index=int(e.node()),
                op=str(getattr(e, "node_operator", lambda: "")() or ""),
            )
        )
    return issues


def input_problems(found: dict[str, tuple[int, ...]], inputs: Inputs, onnx_path: str) -> list[str]:
    """Why the parsed network's inputs ``found`` ({name: shape, -1 for dynamic dims}) do not fit the model's
    ``inputs`` ((name, channels), from the spec); empty when they do."""
    want = dict(inputs)
    problems = []
    if set(found) != set(want):
        problems.append(f"{onnx_path} has inputs {sorted(found)}, the model spec wants {sorted(want)}")
    for name, shape in found.items():
        if name not in want:
            continue
        if len(shape) != 4:
            problems.append(f"input {name!r} has shape {list(shape)}, expected N x {want[name]} x H x W")
        elif shape[1] not in (-1, want[name]):
            problems.append(f"input {name!r} has {shape[1]} channels, the model spec wants {want[name]}")
    return problems


def dtype_kind(text: str) -> str:
    """Classify a TensorRT dtype or inspector format string: 'fp16', 'bf16', 'fp32', 'int8', 'fp8' or 'other'."""
    t = text.lower()
    if "bf16" in t or "bfloat" in t:
        return "bf16"
    if "half" in t or "fp16" in t:
        return "fp16"
    if "fp8" in t:
        return "fp8"
    if "int8" in t:
        return "int8"
    if "float" in t or "fp32" in t:
        return "fp32"
    return "other"


def inspector_layer_kinds(info: dict | list | str) -> Counter:
    """Per-layer precision from the engine inspector's JSON (``ProfilingVerbosity.DETAILED``).

    A layer counts as the widest-float kind among its outputs ('fp16' when any output is half).
    Layers without format details (verbosity too low, or shape/constant layers) count as 'untyped'.
    """
    if isinstance(info, str):
        import json

        info = json.loads(info)
    layers = info.get("Layers", []) if isinstance(info, dict) else info
    counts: Counter = Counter()
    for layer in layers:
        if not isinstance(layer, dict):
            counts["untyped"] += 1
            continue
        kinds = {dtype_kind(str(t.get("Format/Datatype", ""))) for t in layer.get("Outputs", []) if isinstance(t, dict)}
        kinds.discard("other")
        if not kinds:
            counts["untyped"] += 1
        else:
            for kind in ("fp16", "bf16", "int8", "fp8", "fp32"):
                if kind in kinds:
                    counts[kind] += 1
                    break
    return counts


def precision_problem(counts: Counter, precision: str, what: str) -> str | None:
    """None if layer counts ``counts`` (from the network or the engine) fit ``precision``, else why not."""
    typed = sum(v for k, v in counts.items() if k != "untyped")
    if typed == 0:
        return f"{what}: no layer precision information"
    fp16 = counts.get("fp16", 0)
    if precision == "fp16":
        if fp16 == 0:
            return f"{what}: no FP16 layers ({dict(counts)}); is the ONNX the FP16-typed export (NAME_fp16.onnx)?"
        if fp16 / typed < MIN_FP16_SHARE:
            return f"{what}: only {fp16}/{typed} layers are FP16 (need >= {MIN_FP16_SHARE:.0%})"
    elif precision == "fp32" and fp16 + counts.get("bf16", 0):
        return f"{what}: {fp16} FP16 layers in an fp32 build; pass the FP32 ONNX (NAME.onnx)"
    return None


def network_layer_kinds(network, trt) -> Counter:
    """Output dtypes of the compute layers (convolution, deconvolution, matmul) of a parsed network."""
    compute = {trt.LayerType.CONVOLUTION, trt.LayerType.DECONVOLUTION, trt.LayerType.MATRIX_MULTIPLY}
    counts: Counter = Counter()
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.type in compute:
            counts[dtype_kind(str(layer.get_output(0).dtype))] += 1
    return counts


@dataclass
class BuildResult:
    engine: bytes
    report: dict[str, Any] = field(default_factory=dict)


def import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise BuildError(f"tensorrt is not installed ({exc}); {INSTALL_HINT}") from None
    return trt


def build_engine(
    onnx_path: str | Path,
    spec: ModelSpec,
    profile: Profile,
    precision: str = "fp16",
    workspace_bytes: int = 4 << 30,
    timing_cache: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> BuildResult:
    """Parse ``onnx_path`` as a strongly typed network, build it for ``profile`` and verify the precision."""
    if precision not in PRECISIONS:
        raise BuildError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    profile.validate(spec.size_multiple)
    trt = import_tensorrt()
    version = version_tuple(trt.__version__)
    bit = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    flags = strongly_typed_flags(version, None if bit is None else int(bit))

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        raise BuildError(format_parser_errors(_parser_issues(parser), str(onnx_path)))

    inputs = model_inputs(spec)
    found = {network.get_input(i).name: tuple(int(d) for d in network.get_input(i).shape) for i in range(network.num_inputs)}
    problems = input_problems(found, inputs, str(onnx_path))
    if problems:
        raise BuildError("; ".join(problems))
    net_kinds = network_layer_kinds(network, trt)
    problem = precision_problem(net_kinds, precision, "parsed network")
    if problem:
        raise BuildError(problem)

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    # DETAILED keeps per-layer formats in the engine so the inspector can verify the precision below.
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    opt_profile = builder.create_optimization_profile()
    shapes = input_profiles(profile, inputs)  # every input: the same batch, H and W
    for name, (mn, opt, mx) in shapes.items():
        opt_profile.set_shape(name, mn, opt, mx)
    config.add_optimization_profile(opt_profile)

    cache_bytes = b""
    if timing_cache and Path(timing_cache).exists():
        cache_bytes = Path(timing_cache).read_bytes()
    tcache = config.create_timing_cache(cache_bytes)
    # ignore_mismatch=False: a timing cache from another GPU/TensorRT is rejected rather than misused.
    if not config.set_timing_cache(tcache, False):
        log(f"timing cache {timing_cache} does not match this GPU/TensorRT; starting a fresh one")
        tcache = config.create_timing_cache(b"")
        config.set_timing_cache(tcache, False)

    log(f"building {precision} engine from {onnx_path} (TensorRT {trt.__version__}, profile {profile.to_dict()})")
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BuildError("TensorRT's build_serialized_network returned None (see the TensorRT log above; often the workspace is too small)")
    data = bytes(serialized)
    if timing_cache:
        Path(timing_cache).parent.mkdir(parents=True, exist_ok=True)
        Path(timing_cache).write_bytes(bytes(config.get_timing_cache().serialize()))

    runtime = trt.Runtime(logger)  # kept in a variable: the engine must not outlive its runtime
    engine = runtime.deserialize_cuda_engine(data)
    if engine is None:
        raise BuildError("the freshly built engine does not deserialize")
    info = engine.create_engine_inspector().get_engine_information(trt.LayerInformationFormat.JSON)
    eng_kinds = inspector_layer_kinds(info)
    problem = precision_problem(eng_kinds, precision, "built engine")
    if problem:
        raise BuildError(problem)
    report = {
        "precision_check": {"network": dict(net_kinds), "engine": dict(eng_kinds)},
        "input_profiles": {name: dict(zip(("min", "opt", "max"), map(format_shape, s))) for name, s in shapes.items()},
        "workspace_bytes": int(workspace_bytes),
        "spec": spec.to_dict(),
    }
    return BuildResult(data, report)


def current_key(trt_version: str, rt, device: int, onnx_path: str | Path, profile: Profile, precision: str, inputs: Inputs):
    """The EngineKey for building ``onnx_path`` (a model with ``inputs``: ``engine_profile.model_inputs(spec)``)
    on this machine's ``device`` (``rt``: a runtime.backends.gpu.cuda.CudaRuntime)."""
    from .engine_cache import EngineKey, sha256_file

    return EngineKey(
        tensorrt_version=trt_version,
        gpu_name=rt.device_name(device),
        compute_capability="%d.%d" % rt.compute_capability(device),
        onnx_sha256=sha256_file(onnx_path),
        profile=profile,
        precision=precision,
        inputs=tuple(inputs),
    )
