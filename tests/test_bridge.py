"""The GIMP-free bridge and the worker, without GIMP: the real worker on the tiny model, and fake
"Pythons" (shell scripts) that fail in each way a worker can, to prove every failure is an error."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from plugin import bridge, worker
from process_helpers import interrupt_when
from runtime.image.color import rgb_to_lab

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


# -- colour hints through the bridge ------------------------------------------------------------------------

def dots(frame: bridge.Frame, centres, colour=(215, 35, 30), alpha: int = 255) -> bytes:
    """RGBA hints over ``frame``: discs of radius 3 at ``centres``, transparent elsewhere."""
    out = np.zeros((frame.height, frame.width, 4), np.uint8)
    yy, xx = np.mgrid[0:frame.height, 0:frame.width]
    for x, y in centres:
        out[(xx - x) ** 2 + (yy - y) ** 2 <= 9] = (*colour, alpha)
    return out.tobytes()


def test_hints_travel_through_the_bridge(hint_bundle):
    """The hint file reaches the model, the right way round: dots on the left change the left, not the right."""
    plain, _ = grey_frame()
    hinted, _ = grey_frame()
    hinted.hints = dots(hinted, [(8, 10), (14, 26), (8, 40)])
    options = bridge.Options(model=str(hint_bundle), backend="cpu")
    auto, res = (bridge.colorize([f], options, PY) for f in (plain, hinted))
    assert res.info["hinted"] == 1 and auto.info["hinted"] == 0
    diff = np.abs(as_array(res.frames[0], hinted).astype(int) - as_array(auto.frames[0], plain))[..., :3].max(axis=2)
    assert diff[:, :20].mean() > 0.5, "the hints must change the colour where they are"
    assert diff[:, :20].mean() > 10 * diff[:, 50:].mean(), "and far less on the other side of the frame"
    lab_in, lab_out = lab(grey_frame()[1]), lab(as_array(res.frames[0], hinted))
    assert np.median(np.abs(lab_out[..., 0] - lab_in[..., 0])) < 1.0, "hints never change the luminance"


def test_a_reference_travels_through_the_bridge(tiny_bundle):
    """A colour reference (GIMP's Reference layer) reaches the worker once and every frame follows it: the frame's
    own colour version as the reference gives its colour back; a grey reference is no reference (bit for bit)."""
    frame, rgba = grey_frame()
    colour = rgba.copy()
    colour[:, :37, 0], colour[:, :37, 2] = np.clip(rgba[:, :37, 0] * 1.0 + 60, 0, 255), rgba[:, :37, 2] // 2  # red left
    colour[:, 37:, 2] = np.clip(rgba[:, 37:, 2] * 1.0 + 60, 0, 255)  # blue right
    options = bridge.Options(model=str(tiny_bundle), backend="cpu")
    auto = bridge.colorize([frame, frame], options, PY)
    res = bridge.colorize([frame, frame], options, PY, reference=bridge.Frame(75, 53, colour.tobytes()))
    grey = bridge.colorize([frame], options, PY, reference=bridge.Frame(75, 53, rgba.tobytes()))
    assert res.info["reference"] and not grey.info["reference"] and not auto.info["reference"]
    assert grey.frames[0] == auto.frames[0]
    for out in res.frames:
        a = lab(as_array(out, frame))
        assert a[:, 5:30, 1].mean() > lab(as_array(auto.frames[0], frame))[:, 5:30, 1].mean() + 10  # redder left
        assert a[:, 45:70, 2].mean() < lab(as_array(auto.frames[0], frame))[:, 45:70, 2].mean() - 10  # bluer right


@pytest.mark.parametrize("model", ["hint_bundle", "tiny_bundle"])
def test_empty_hints_are_the_automatic_result(model, request):
    """Fully transparent hints -- or only faint pixels (alpha < 128) -- give the automatic result to the bit,
    with a hint-taking model and with one that takes no hints."""
    options = bridge.Options(model=str(request.getfixturevalue(model)), backend="cpu")
    plain, empty, faint = (grey_frame()[0] for _ in range(3))
    empty.hints = bytes(empty.width * empty.height * 4)
    faint.hints = dots(faint, [(8, 10), (40, 30)], alpha=127)
    res = bridge.colorize([plain, empty, faint], options, PY)
    assert res.frames[0] == res.frames[1] == res.frames[2] and res.info["hinted"] == 0


def test_model_without_hint_inputs_refuses_hints(tiny_bundle):
    frame = grey_frame()[0]
    frame.hints = dots(frame, [(30, 20)])
    with pytest.raises(bridge.BridgeError, match="takes none") as exc:
        bridge.colorize([frame], bridge.Options(model=str(tiny_bundle), backend="cpu"), PY)
    assert not isinstance(exc.value, bridge.WorkerEnvError) and "\n" not in str(exc.value)


def test_bad_hint_buffer_fails_before_starting_a_worker():
    frame = grey_frame()[0]
    frame.hints = b"short"
    with pytest.raises(bridge.BridgeError, match="hint buffer"):
        bridge.colorize([frame], bridge.Options(), "/nonexistent/python")


def test_check_worker_lists_backends():
    info = bridge.check_worker(PY)
    assert info["ok"] and info["backends"]["onnxruntime"] == "available"


@pytest.mark.parametrize("names", [
    {"pixels": "../../etc/passwd", "output": "out.rgba"},
    {"pixels": "in.rgba", "output": "out.rgba", "hints": "/etc/passwd"},
])
def test_worker_rejects_file_names_outside_its_folder(tmp_path, names):
    (tmp_path / "request.json").write_text(json.dumps({
        "protocol": bridge.PROTOCOL, "options": {}, "frames": [{"width": 1, "height": 1, **names}],
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


# -- Ctrl-C ------------------------------------------------------------------------------------------------

def test_worker_ctrl_c_is_a_one_line_error(tiny_bundle, tmp_path):
    """SIGINT to the real worker half-way through a request: exit 130, "interrupted" in response.json, one
    line on stderr, no traceback; the bridge turns it into a one-line BridgeError (so the plug-in, which
    changes the image only after a successful colorize(), leaves it untouched)."""
    n = 100
    frame, _ = grey_frame(320, 240)
    frames = []
    for i in range(n):
        (tmp_path / f"in-{i:04d}.rgba").write_bytes(frame.rgba)
        frames.append({"width": frame.width, "height": frame.height,
                       "pixels": f"in-{i:04d}.rgba", "output": f"out-{i:04d}.rgba"})
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"protocol": bridge.PROTOCOL, "frames": frames,
                                   "options": asdict(bridge.Options(model=str(tiny_bundle), backend="cpu"))}))

    def first_frame_done(_stderr: str) -> bool:
        return (tmp_path / "out-0000.rgba").exists()

    code, _, err = interrupt_when(bridge.worker_command(PY, str(request)), first_frame_done)
    assert code == bridge.EXIT_INTERRUPTED, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err and err.strip() == "colorize-gan worker: interrupted"
    response = json.loads((tmp_path / "response.json").read_text())
    assert response["ok"] is False and response["kind"] == "interrupted"
    assert not (tmp_path / f"out-{n - 1:04d}.rgba").exists(), "it was interrupted, not finished"
    with pytest.raises(bridge.BridgeError, match="interrupted") as exc:
        bridge._read_response(str(tmp_path), code, err, PY)
    assert "\n" not in str(exc.value) and not isinstance(exc.value, bridge.WorkerEnvError)


def test_ctrl_c_in_the_plug_in_stops_the_worker(tiny_bundle, monkeypatch):
    """KeyboardInterrupt in the calling process (GIMP's terminal) while the worker runs: the worker is stopped,
    its folder removed, and the caller gets a BridgeError, not a KeyboardInterrupt and no pixels."""
    started, folders = [], []
    popen, mkdtemp = bridge.subprocess.Popen, bridge.tempfile.mkdtemp
    monkeypatch.setattr(bridge.subprocess, "Popen", lambda *a, **k: started.append(popen(*a, **k)) or started[-1])
    monkeypatch.setattr(bridge.tempfile, "mkdtemp", lambda **k: folders.append(mkdtemp(**k)) or folders[-1])

    def ctrl_c(_fraction, _message):
        raise KeyboardInterrupt

    with pytest.raises(bridge.BridgeError, match="interrupted") as exc:
        bridge.colorize([grey_frame()[0]] * 3, bridge.Options(model=str(tiny_bundle), backend="cpu"), PY,
                        progress=ctrl_c)
    assert "\n" not in str(exc.value)
    assert started[0].returncode is not None, "the worker must not outlive the call"
    assert not Path(folders[0]).exists()


@pytest.mark.parametrize("body, how", [
    ("kill -INT $$", "SIGINT"), ("kill -KILL $$", "SIGKILL"), ("exit 130", "Ctrl-C"),
])
def test_worker_stopped_by_a_signal_is_a_one_line_error(tmp_path, body, how):
    python = fake_python(tmp_path, "echo 'Traceback (most recent call last):' >&2; echo '  lots of it' >&2; " + body)
    with pytest.raises(bridge.BridgeError, match=f"stopped by {how}") as exc:
        bridge.colorize([grey_frame()[0]], bridge.Options(), python)
    assert "\n" not in str(exc.value) and "Traceback" not in str(exc.value)


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
    ("""echo '{"ok": true, "protocol": %d}' > "$(dirname "$3")/response.json"; echo -n abc > "$(dirname "$3")/out-0000.rgba" """
     % bridge.PROTOCOL, bridge.BridgeError, "bytes for out-0000.rgba"),
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
        echo '{"ok": true, "protocol": %d, "backend": "fake"}' > "$dir/response.json"
    """ % bridge.PROTOCOL)
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
