"""A per-user cache of built TensorRT engines, keyed by everything an engine depends on.

A serialized engine only runs with the exact TensorRT build and GPU architecture it was built
for, the ONNX it was built from, its inputs (L alone, or L and a hint input), its optimization
profile and its precision. ``EngineKey`` holds those; its digest names the cache files ``<stem>-<digest>.engine`` and ``.engine.json`` (the sidecar,
written last, so an engine without a valid sidecar is never trusted). ``get_or_build`` takes a file
lock so two processes asking for the same missing engine build it once, and rebuilds when the
sidecar does not match or the engine fails to deserialize. No TensorRT import here: the backend
passes in the build and load functions.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from ...cache import cache_dir
from .engine_profile import Inputs, Profile

SIDECAR_VERSION = 2  # 2: the key records the model's inputs (colour-hint models have two)
T = TypeVar("T")


def engines_dir() -> Path:
    return cache_dir() / "engines"


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class EngineKey:
    """What a serialized engine is valid for. Two engines with equal keys are interchangeable."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str  # "9.0"
    onnx_sha256: str
    profile: Profile
    precision: str  # "fp16" | "fp32"
    # (name, channels) of every network input, L first: (("L", 1),) or (("L", 1), ("hints", 3)); the profile's
    # batch, H and W apply to each. The ONNX hash differs between such models already; this says it in the sidecar.
    inputs: Inputs

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["profile"] = self.profile.to_dict()
        d["inputs"] = [[name, int(channels)] for name, channels in self.inputs]  # a list: JSON keeps its order
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EngineKey":
        fields = {k: data[k] for k in ("tensorrt_version", "gpu_name", "compute_capability", "onnx_sha256", "precision")}
        inputs = tuple((str(name), int(channels)) for name, channels in data["inputs"])
        return cls(profile=Profile.from_dict(data["profile"]), inputs=inputs, **fields)

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:20]


def sidecar_path(engine_path: str | os.PathLike) -> Path:
    """``X.engine`` -> ``X.engine.json``: appended, so an engine beside a bundle never replaces ``NAME.json``."""
    return Path(str(engine_path) + ".json")


def make_sidecar(key: EngineKey, engine_path: str | os.PathLike, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The sidecar for a finished engine file: its key plus the engine's own size and hash."""
    return {
        "sidecar_version": SIDECAR_VERSION,
        **key.to_dict(),
        "engine_bytes": os.path.getsize(engine_path),
        "engine_sha256": sha256_file(engine_path),
        **(extra or {}),
    }


def write_sidecar(engine_path: str | os.PathLike, key: EngineKey, extra: dict[str, Any] | None = None) -> Path:
    path = sidecar_path(engine_path)
    _atomic_write(path, json.dumps(make_sidecar(key, engine_path, extra), indent=2, sort_keys=True).encode())
    return path


def read_sidecar(engine_path: str | os.PathLike) -> dict[str, Any]:
    """The sidecar as a dict; ValueError (one line) when it is missing or not JSON."""
    path = sidecar_path(engine_path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"no sidecar {path}") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"unreadable sidecar {path}: {exc}") from None


def sidecar_mismatches(meta: dict[str, Any], key: EngineKey | None, engine_path: str | os.PathLike) -> list[str]:
    """Why the engine at ``engine_path`` with sidecar ``meta`` cannot be used for ``key`` (empty: it can).

    ``key`` None checks only the engine file against its sidecar (for a user-supplied engine whose
    GPU and TensorRT version the caller checks separately).
    """
    problems: list[str] = []
    if meta.get("sidecar_version") != SIDECAR_VERSION:
        problems.append(f"sidecar_version {meta.get('sidecar_version')!r} != {SIDECAR_VERSION}")
    if key is not None:
        want = key.to_dict()
        for field, value in want.items():
            if meta.get(field) != value:
                problems.append(f"{field}: engine has {meta.get(field)!r}, need {value!r}")
    try:
        size = os.path.getsize(engine_path)
    except OSError:
        return problems + [f"engine file {engine_path} is missing"]
    if meta.get("engine_bytes") != size:
        problems.append(f"engine is {size} bytes, sidecar says {meta.get('engine_bytes')}")
    elif meta.get("engine_sha256") != sha256_file(engine_path):
        problems.append("engine sha256 differs from the sidecar (corrupt or replaced)")
    return problems


def _atomic_write(path: Path, data: bytes) -> None:
    """Write via a temp file in the same folder and rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def lock_path(engine: Path) -> Path:
    """The lock that serializes builds of ``engine``: the backend and tools/build_engine.py take the same one."""
    return Path(engine).with_suffix(".lock")


def store(engine: Path, key: EngineKey, data: bytes, extra: dict[str, Any] | None = None) -> None:
    """Write a freshly built engine and its sidecar; call it holding :func:`lock_path`'s lock. The old sidecar is
    removed first, so a crash mid-write leaves no trusted pair."""
    sidecar_path(engine).unlink(missing_ok=True)
    _atomic_write(Path(engine), data)
    write_sidecar(engine, key, extra)


@contextmanager
def file_lock(path: str | os.PathLike, timeout: float = 1800.0, poll: float = 0.2) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` across processes (flock on POSIX, msvcrt on Windows).

    The OS drops the lock when the holder dies, so a crashed build never wedges the cache. Raises
    TimeoutError after ``timeout`` seconds (an engine build takes minutes, so the default is long).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                _try_lock(fd)
                break
            except OSError:
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {path} (another process is building?)") from None
                time.sleep(poll)
        try:
            yield
        finally:
            _unlock(fd)
    finally:
        os.close(fd)


if sys.platform == "win32":
    import msvcrt

    def _try_lock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


def engine_path_for(key: EngineKey, stem: str = "model", root: Path | None = None) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem) or "model"
    return (root or engines_dir()) / f"{safe}-{key.digest()}.engine"


def get_or_build(
    key: EngineKey,
    build: Callable[[], bytes],
    load: Callable[[bytes], T | None],
    stem: str = "model",
    root: Path | None = None,
    extra: Callable[[], dict[str, Any]] | None = None,
    log: Callable[[str], None] = lambda msg: None,
) -> tuple[T, Path, bool]:
    """Load the cached engine for ``key``, building (under a lock) when it is missing, mismatched or unloadable.

    ``build()`` returns serialized engine bytes; ``load(bytes)`` returns the loaded engine or None
    when it cannot be deserialized (TensorRT's signal for a version/GPU mismatch). ``extra()`` adds
    fields to the sidecar of a fresh build. Returns (engine, path, built_now).
    """
    path = engine_path_for(key, stem, root)
    with file_lock(lock_path(path)):
        # Checked under the lock: another process may have finished this build while we waited.
        reason = _cached_reason(path, key)
        if reason is None:
            engine = load(path.read_bytes())
            if engine is not None:
                return engine, path, False
            reason = "cached engine failed to deserialize"
        log(f"building TensorRT engine {path.name}: {reason}")
        sidecar_path(path).unlink(missing_ok=True)  # invalidate first: a crash mid-build leaves no trusted pair
        data = build()
        store(path, key, data, extra() if extra else None)
        engine = load(data)
        if engine is None:
            raise RuntimeError(f"TensorRT could not deserialize the engine it just built ({path})")
        return engine, path, True


def _cached_reason(path: Path, key: EngineKey) -> str | None:
    """None when ``path`` holds a valid engine for ``key``, else why not."""
    if not path.exists():
        return "not cached yet"
    try:
        meta = read_sidecar(path)
    except ValueError as exc:
        return str(exc)
    problems = sidecar_mismatches(meta, key, path)
    return "; ".join(problems) if problems else None
