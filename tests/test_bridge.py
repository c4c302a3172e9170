"""The GIMP-free bridge and the worker, without GIMP: the real worker on the tiny model, and fake
"Pythons" (shell scripts) that fail in each way a worker can, to prove every failure is an error."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from plugin import bridge, worker
from runtime.color import rgb_to_lab

PY = sys.executable


def grey_frame(w: int = 75, h: int = 53, alpha: int = 255, seed: int = 0) -> tuple[bridge.Frame, np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    v = np.clip(xx * 255 // w + rng.normal(0, 6, (h, w)) + 30 * np.sin(yy / 5), 0, 255).astype(np.uint8)
    rgba = np.dstack([v, v, v, np.full_like(v, alpha)])
    return bridge.Frame(w, h, rgba.tobytes()), rgba


def as_array(data: bytes, frame: bridge.Frame) -> np.ndarray:
    return np.frombuffer(data, np.uint8).reshape(frame.height, frame.width, 4)


def lab(rgba: np.ndarray) -> np.ndarray:
    return rgb_to_lab(rgba[..., :3].astype(np.float32) / 255)


def fake_python(tmp_path: Path, body: str) -> str:
    """An executable standing in for the worker Python; $3 is the request path (argv: -m plugin.worker REQ)."""
    path = tmp_path / "fake-python"
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return str(path)


# -- the real worker ------------------------------------------------------------------------------------

def test_round_trip_new_layer_with_mask(tiny_bundle):
    f1, a1 = grey_frame(alpha=200)
    f2, a2 = grey_frame(seed=1)
    mask = np.tile(np.linspace(0, 255, f2.width).astype(np.uint8), (f2.height, 1))
    f2.mask = mask.tobytes()
    seen = []
    res = bridge.colorize([f1, f2], bridge.Options(model=str(tiny_bundle)), PY, progress=lambda f, m: seen.append(f))
    assert res.info["ok"] and res.info["frames"] == 2 and res.info["backend"]
    out1, out2 = as_array(res.frames[0], f1), as_array(res.frames[1], f2)
    lab_in, lab_out = lab(a1), lab(out1)
    chroma = np.hypot(lab_out[..., 1], lab_out[..., 2])
    assert chroma.mean() > 3, "the tiny model should give visible colour"
    dL = np.abs(lab_out[..., 0] - lab_in[..., 0])
    # Gamut clipping of strong colours near black/white moves L a little; the median pixel keeps it.
    assert np.median(dL) < 1.0 and dL.mean() < 2.0, "luminance must be the source's"
    assert (out1[..., 3] == 200).all(), "alpha kept"
    expected_alpha = (mask.astype(np.uint16) * 255 + 127) // 255
    assert np.abs(out2[..., 3].astype(int) - expected_alpha).max() <= 1, "new-layer alpha = source alpha x selection"
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) >= 3


def test_in_place_ignores_mask_and_keeps_alpha(tiny_bundle):
    f, a = grey_frame(alpha=77)
    f.mask = bytes(f.width * f.height)  # all unselected: GIMP's merge_shadow applies the mask in this mode
    res = bridge.colorize([f], bridge.Options(model=str(tiny_bundle), output="in-place", saturation=0.0), PY)
    out = as_array(res.frames[0], f)
    assert (out[..., 3] == 77).all()
    assert np.abs(out[..., :3].astype(int) - a[..., :3]).max() <= 1, "saturation 0 gives the grey back"


def test_frames_are_stabilized(tiny_bundle):
    frames = [grey_frame(seed=s)[0] for s in range(3)]
    plain = bridge.colorize(frames, bridge.Options(model=str(tiny_bundle), temporal=0.0), PY)
    stable = bridge.colorize(frames, bridge.Options(model=str(tiny_bundle), temporal=0.9), PY)
    assert stable.info["stabilized"] and not plain.info["stabilized"]
    assert plain.frames[0] == stable.frames[0], "the first frame has no history"
    assert plain.frames[2] != stable.frames[2], "later frames carry colour from earlier ones"


def test_gpu_choice_falls_back_to_cpu_with_a_warning(tiny_bundle):
    from runtime.backends import registry

    res = bridge.colorize([grey_frame()[0]], bridge.Options(model=str(tiny_bundle), backend="gpu"), PY)
    if all(registry.availability(name) for name in registry.GROUPS["gpu"]):
        assert res.info["backend"] in registry.GROUPS["cpu"]
        assert any("used the CPU" in w for w in res.info["warnings"])
    else:
        assert res.info["backend"] in registry.GROUPS["gpu"]


def test_worker_error_is_an_error(tiny_bundle, tmp_path):
    with pytest.raises(bridge.BridgeError, match="model not found") as exc:
        bridge.colorize([grey_frame()[0]], bridge.Options(model=str(tmp_path / "missing.json")), PY)
    assert not isinstance(exc.value, bridge.WorkerEnvError)


def test_check_worker_lists_backends():
    info = bridge.check_worker(PY)
    assert info["ok"] and info["backends"]["onnxruntime"] == "available"


def test_worker_rejects_file_names_outside_its_folder(tmp_path):
    (tmp_path / "request.json").write_text(json.dumps({
        "protocol": bridge.PROTOCOL, "options": {},
        "frames": [{"width": 1, "height": 1, "pixels": "../../etc/passwd", "output": "out.rgba"}],
    }))
    assert worker.main([str(tmp_path / "request.json")]) == bridge.EXIT_BAD_REQUEST
    assert "bad file name" in json.loads((tmp_path / "response.json").read_text())["error"]


def test_python_without_the_project_is_a_broken_environment(tmp_path):
    venv = tmp_path / "bare"
    subprocess.run([PY, "-m", "venv", "--without-pip", str(venv)], check=True)
    with pytest.raises(bridge.WorkerEnvError, match="broken"):
        bridge.colorize([grey_frame()[0]], bridge.Options(), str(venv / "bin" / "python"))
    with pytest.raises(bridge.WorkerEnvError, match="broken"):
        bridge.check_worker(str(venv / "bin" / "python"))


# -- the protocol, with fake workers ---------------------------------------------------------------------

def test_private_folder_clean_env_and_cleanup(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/gimp/lib/python")
    monkeypatch.setenv("PYTHONHOME", "/gimp")
    monkeypatch.setenv("GI_TYPELIB_PATH", "/gimp/typelibs")
    report = tmp_path / "report.json"
    python = fake_python(tmp_path, f"""
        dir=$(dirname "$3")
        printf '{{"cwd": "%s", "mode": "%s", "pythonpath": "%s", "home": "%s", "typelib": "%s", "args": "%s"}}' \\
            "$(pwd)" "$(stat -c %a "$dir")" "${{PYTHONPATH-unset}}" "${{PYTHONHOME-unset}}" "${{GI_TYPELIB_PATH-unset}}" \\
            "$1 $2" > {report}
        echo '{{"ok": false, "error": "stop here"}}' > "$dir/response.json"
        exit 1
    """)
    with pytest.raises(bridge.BridgeError, match="stop here"):
        bridge.colorize([grey_frame()[0]], bridge.Options(), python)
    seen = json.loads(report.read_text())
    assert seen["mode"] == "700" and Path(seen["cwd"]).name.startswith("colorize-gan-")
    assert seen["pythonpath"] == seen["home"] == seen["typelib"] == "unset"
    assert seen["args"] == "-m plugin.worker"
    assert not Path(seen["cwd"]).exists(), "the per-call folder is removed"


@pytest.mark.parametrize("body, cls, message", [
    ("echo 'Traceback: boom' >&2; exit 1", bridge.BridgeError, "boom"),
    ("echo 'No module named plugin' >&2; exit 1", bridge.WorkerEnvError, "No module named plugin"),
    ("exit 0", bridge.BridgeError, "without a valid response"),  # success claimed, nothing written
    ("""echo '{"ok": false, "kind": "environment", "error": "no numpy"}' > "$(dirname "$3")/response.json"; exit 3""",
     bridge.WorkerEnvError, "no numpy"),
    ("""echo '{"ok": true, "protocol": 1}' > "$(dirname "$3")/response.json"; echo -n abc > "$(dirname "$3")/out-0000.rgba" """,
     bridge.BridgeError, "bytes for out-0000.rgba"),
    ("""echo '{"ok": true, "protocol": 99}' > "$(dirname "$3")/response.json" """, bridge.WorkerEnvError, "protocol 99"),
])
def test_every_worker_failure_raises(tmp_path, body, cls, message):
    with pytest.raises(cls, match=message):
        bridge.colorize([grey_frame()[0]], bridge.Options(), fake_python(tmp_path, body))


def test_hung_worker_is_stopped(tmp_path):
    python = fake_python(tmp_path, "echo $$ > " + str(tmp_path / "pid") + "; exec sleep 60")
    with pytest.raises(bridge.BridgeError, match="did not finish"):
        bridge.colorize([grey_frame()[0]], bridge.Options(), python, timeout=1.0)
    pid = int((tmp_path / "pid").read_text())
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_non_json_stdout_is_ignored_and_progress_relayed(tmp_path):
    python = fake_python(tmp_path, """
        dir=$(dirname "$3")
        echo 'some library chatter'
        echo '{"event": "progress", "done": 1, "total": 2, "message": "half"}'
        head -c $((75 * 53 * 4)) /dev/zero > "$dir/out-0000.rgba"
        echo '{"ok": true, "protocol": 1, "backend": "fake"}' > "$dir/response.json"
    """)
    seen = []
    res = bridge.colorize([grey_frame()[0]], bridge.Options(), python, progress=lambda f, m: seen.append((f, m)))
    assert seen == [(0.5, "half")] and res.info["backend"] == "fake" and res.frames[0] == bytes(75 * 53 * 4)


# -- inputs and configuration ----------------------------------------------------------------------------

@pytest.mark.parametrize("options, message", [
    (bridge.Options(backend="tpu"), "unknown backend"),
    (bridge.Options(output="overlay"), "unknown output mode"),
    (bridge.Options(saturation=-1), "saturation"),
    (bridge.Options(temporal=1.5), "temporal"),
])
def test_bad_options_fail_before_starting_a_worker(options, message):
    with pytest.raises(bridge.BridgeError, match=message):
        bridge.colorize([grey_frame()[0]], options, "/nonexistent/python")


def test_bad_frames_fail_before_starting_a_worker():
    with pytest.raises(bridge.BridgeError, match="expected"):
        bridge.colorize([bridge.Frame(4, 4, b"short")], bridge.Options(), PY)
    with pytest.raises(bridge.BridgeError, match="nothing to colorize"):
        bridge.colorize([], bridge.Options(), PY)


def test_worker_python_resolution(tmp_path):
    with pytest.raises(bridge.WorkerEnvError, match="colorize-gan-gimp install"):
        bridge.worker_python({}, environ={})
    with pytest.raises(bridge.WorkerEnvError, match="does not exist"):
        bridge.worker_python({"python": str(tmp_path / "gone" / "python")}, environ={})
    not_exec = tmp_path / "python"
    not_exec.write_text("")
    with pytest.raises(bridge.WorkerEnvError, match="not executable"):
        bridge.worker_python({"python": str(not_exec)}, environ={})
    assert bridge.worker_python({"python": str(tmp_path / "gone")}, environ={bridge.PYTHON_ENV: PY}) == os.path.abspath(PY)


def test_config_file(tmp_path):
    assert bridge.load_config(str(tmp_path)) == {}
    (tmp_path / bridge.CONFIG_NAME).write_text('{"python": "/x"}')
    assert bridge.load_config(str(tmp_path)) == {"python": "/x"}
    (tmp_path / bridge.CONFIG_NAME).write_text("{broken")
    with pytest.raises(bridge.WorkerEnvError, match="re-run|Re-run"):
        bridge.load_config(str(tmp_path))


def test_bridge_needs_only_the_standard_library():
    """GIMP's Python may lack numpy: importing the bridge must not pull in anything outside the stdlib."""
    code = (f"import sys; sys.path.insert(0, {str(Path(bridge.__file__).parent)!r}); import bridge; "
            "print([m for m in ('numpy', 'PIL', 'runtime', 'gi') if m in sys.modules])")
    # -S: no site-packages at all, as in a bare GIMP Python.
    out = subprocess.run([PY, "-I", "-S", "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
