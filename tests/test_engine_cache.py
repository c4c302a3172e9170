"""Engine cache: keying (the model's inputs included), sidecar validation, invalidation and rebuild, and the
cross-process build lock."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from runtime import cache
from runtime.backends.gpu import engine_cache as ec
from runtime.backends.gpu.engine_profile import Profile

PROFILE = Profile((1, 64, 64), (1, 256, 256), (8, 512, 512))
L_ONLY, WITH_HINTS = (("L", 1),), (("L", 1), ("hints", 3))
KEY = ec.EngineKey("10.13.0.35", "NVIDIA H100 80GB HBM3", "9.0", "ab" * 32, PROFILE, "fp16", L_ONLY)


class Builder:
    """Counts builds; engine bytes name the build so a reload can be told from a rebuild."""

    def __init__(self):
        self.builds = 0

    def __call__(self) -> bytes:
        self.builds += 1
        return f"engine #{self.builds}".encode()


def load_ok(data: bytes):
    return data


def test_key_digest_is_stable_and_covers_every_field():
    assert KEY.digest() == ec.EngineKey.from_dict(json.loads(json.dumps(KEY.to_dict()))).digest()
    changes = {
        "tensorrt_version": "11.4.0.1",
        "gpu_name": "NVIDIA H200",
        "compute_capability": "8.9",
        "onnx_sha256": "cd" * 32,
        "profile": Profile((1, 64, 64), (1, 256, 256), (16, 512, 512)),
        "precision": "fp32",
        "inputs": WITH_HINTS,
    }
    assert set(changes) == {f.name for f in dataclasses.fields(ec.EngineKey)}
    digests = {KEY.digest()} | {dataclasses.replace(KEY, **{k: v}).digest() for k, v in changes.items()}
    assert len(digests) == len(changes) + 1


def test_key_records_the_models_inputs_in_order():
    key = dataclasses.replace(KEY, inputs=WITH_HINTS)
    assert key.to_dict()["inputs"] == [["L", 1], ["hints", 3]]
    again = ec.EngineKey.from_dict(json.loads(json.dumps(key.to_dict(), sort_keys=True)))
    assert again == key and again.inputs == WITH_HINTS  # a list, so sorting the sidecar's keys keeps L first


def test_engine_for_a_hintless_model_is_never_used_for_a_hint_model(tmp_path):
    """Even were the ONNX hash the same (it is not: the graphs differ), the inputs keep the engines apart, and a
    sidecar that records other inputs than the key's is a mismatch, rebuilt."""
    build = Builder()
    _, plain, _ = ec.get_or_build(KEY, build, load_ok, stem="m_fp16", root=tmp_path)
    hint_key = dataclasses.replace(KEY, inputs=WITH_HINTS)
    engine, hinted, built = ec.get_or_build(hint_key, build, load_ok, stem="m_fp16", root=tmp_path)
    assert built and hinted != plain and (engine, build.builds) == (b"engine #2", 2)
    assert ec.read_sidecar(hinted)["inputs"] == [["L", 1], ["hints", 3]] and ec.read_sidecar(plain)["inputs"] == [["L", 1]]
    problems = ec.sidecar_mismatches(ec.read_sidecar(plain), hint_key, plain)
    assert problems == ["inputs: engine has [['L', 1]], need [['L', 1], ['hints', 3]]"]


def test_cache_dir_env_and_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv(cache.ENV_CACHE, str(tmp_path / "c"))
    assert ec.engines_dir() == tmp_path / "c" / "engines"
    monkeypatch.delenv(cache.ENV_CACHE)
    if sys.platform.startswith("linux"):
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
        assert cache.cache_dir() == tmp_path / "xdg" / "colorize-gan"


def test_build_once_then_load(tmp_path):
    build = Builder()
    engine, path, built = ec.get_or_build(KEY, build, load_ok, stem="m_fp16", root=tmp_path, extra=lambda: {"note": 1})
    assert (engine, built, build.builds) == (b"engine #1", True, 1)
    assert path.name == f"m_fp16-{KEY.digest()}.engine" and ec.sidecar_path(path).name == path.name + ".json"
    meta = ec.read_sidecar(path)
    assert meta["note"] == 1 and meta["engine_bytes"] == len(b"engine #1") and meta["profile"] == PROFILE.to_dict()
    assert ec.sidecar_mismatches(meta, KEY, path) == []
    engine, path2, built = ec.get_or_build(KEY, build, load_ok, stem="m_fp16", root=tmp_path)
    assert (engine, path2, built, build.builds) == (b"engine #1", path, False, 1)


def test_other_key_gets_its_own_engine(tmp_path):
    build = Builder()
    _, p1, _ = ec.get_or_build(KEY, build, load_ok, root=tmp_path)
    _, p2, built = ec.get_or_build(dataclasses.replace(KEY, onnx_sha256="ef" * 32), build, load_ok, root=tmp_path)
    assert built and p1 != p2 and build.builds == 2


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda p: p.write_bytes(b"engine #X"), "sha256 differs"),  # same size, other bytes
        (lambda p: p.write_bytes(b"short"), "bytes, sidecar says"),
        (lambda p: ec.sidecar_path(p).unlink(), "no sidecar"),
        (lambda p: ec.sidecar_path(p).write_text("{not json"), "unreadable sidecar"),
        (lambda p: _edit_sidecar(p, tensorrt_version="10.0.0"), "tensorrt_version"),
        (lambda p: _edit_sidecar(p, gpu_name="NVIDIA A100"), "gpu_name"),
        (lambda p: _edit_sidecar(p, sidecar_version=99), "sidecar_version"),
        (lambda p: _edit_sidecar(p, inputs=[["L", 1], ["hints", 3]]), "inputs"),
    ],
)
def test_damaged_or_mismatched_entries_are_rebuilt(tmp_path, damage, reason):
    build, logs = Builder(), []
    _, path, _ = ec.get_or_build(KEY, build, load_ok, root=tmp_path)
    damage(path)
    engine, _, built = ec.get_or_build(KEY, build, load_ok, root=tmp_path, log=logs.append)
    assert (engine, built, build.builds) == (b"engine #2", True, 2)
    assert reason in logs[0]
    assert ec.sidecar_mismatches(ec.read_sidecar(path), KEY, path) == []


def _edit_sidecar(path: Path, **fields) -> None:
    meta = json.loads(ec.sidecar_path(path).read_text())
    meta.update(fields)
    ec.sidecar_path(path).write_text(json.dumps(meta))


def test_deserialize_failure_triggers_rebuild(tmp_path):
    build = Builder()
    ec.get_or_build(KEY, build, load_ok, root=tmp_path)
    # TensorRT returns None from deserialize_cuda_engine for an engine of another version/GPU.
    engine, _, built = ec.get_or_build(KEY, build, lambda b: None if b == b"engine #1" else b, root=tmp_path)
    assert (engine, built) == (b"engine #2", True)


def test_failed_build_leaves_no_trusted_engine(tmp_path):
    build = Builder()
    _, path, _ = ec.get_or_build(KEY, build, load_ok, root=tmp_path)
    path.write_bytes(b"x")  # invalid now

    def broken():
        raise RuntimeError("builder crashed")

    with pytest.raises(RuntimeError, match="builder crashed"):
        ec.get_or_build(KEY, broken, load_ok, root=tmp_path)
    assert not ec.sidecar_path(path).exists()
    _, _, built = ec.get_or_build(KEY, build, load_ok, root=tmp_path)
    assert built


def test_sidecar_only_check_without_key(tmp_path):
    _, path, _ = ec.get_or_build(KEY, Builder(), load_ok, root=tmp_path)
    assert ec.sidecar_mismatches(ec.read_sidecar(path), None, path) == []
    path.unlink()
    assert ec.sidecar_mismatches(ec.read_sidecar(path), None, path) == [f"engine file {path} is missing"]


def test_lock_times_out_while_held(tmp_path):
    lock = tmp_path / "x.lock"
    with ec.file_lock(lock):
        with pytest.raises(TimeoutError, match="another process is building"):
            with ec.file_lock(lock, timeout=0.3, poll=0.05):
                pass
    with ec.file_lock(lock, timeout=0.3):  # released
        pass


def test_two_processes_build_the_same_engine_once(tmp_path):
    """Two real processes ask for the same missing engine at once; one builds, the other waits and loads."""
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from runtime.backends.gpu import engine_cache as ec
        from runtime.backends.gpu.engine_profile import Profile
        key = ec.EngineKey("10.13", "GPU", "9.0", "00" * 32, Profile((1, 64, 64), (1, 64, 64), (2, 64, 64)), "fp16", (("L", 1),))
        root = Path({str(tmp_path)!r})
        def build():
            with open(root / "builds.log", "a") as f:
                f.write("build\\n")
            time.sleep(1.0)
            return b"engine"
        engine, path, built = ec.get_or_build(key, build, lambda b: b, root=root)
        print("built" if built else "loaded", engine.decode())
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert [p.returncode for p in procs] == [0, 0]
    assert outs == ["built engine", "loaded engine"]
    assert (tmp_path / "builds.log").read_text() == "build\n"
