"""The plug-in in real GIMP 3, headless (gimp-console, through scripts/gimp_console.sh).

Economy: the plug-in is installed once per session into a private GIMP config (warmed by the first
launch), and all cases run in ONE GIMP launch through tests/gimp_driver.py, which dumps every layer's
pixels; the tests below only read those dumps. A second, short launch runs with a broken worker
environment. GIMP comes from scripts/setup_gimp.sh (CI runs it first); without it these tests skip,
unless COLORIZE_GAN_REQUIRE_GIMP=1, when they fail.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from plugin import installer
from runtime.color import linear_to_srgb, rgb_to_lab, srgb_to_linear
from runtime.models import DEFAULT_STEM

pytestmark = [pytest.mark.gimp, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
RUNNER = ROOT / "scripts" / "gimp_console.sh"
DRIVER = ROOT / "tests" / "gimp_driver.py"
DIALOG = ROOT / "tests" / "gimp_dialog.sh"
W, H = 160, 120  # canvas of the test images
ELLIPSE = [30, 20, 100, 80]
RECT = [40, 30, 60, 50]


# -- GIMP session ----------------------------------------------------------------------------------------

@dataclass
class GimpSession:
    base: Path
    config: Path
    binds: list

    def launch(self, name: str, cases: list, env: dict | None = None, timeout: int = 400, prefix: tuple = ()) -> dict:
        """Run ``cases`` in one gimp-console; returns the driver's results (raises with GIMP's log if none)."""
        folder = self.base / name
        out = folder / "out"
        out.mkdir(parents=True)
        (folder / "cases.json").write_text(json.dumps({"out": str(out), "cases": cases}))
        run_env = {
            **os.environ,
            "HOME": str(self.base / "home"),
            "XDG_CACHE_HOME": str(self.base / "cache"),
            "GIMP3_DIRECTORY": str(self.config),
            "COLORIZE_GAN_GIMP_CASES": str(folder / "cases.json"),
            **(env or {}),
        }
        cmd = [str(RUNNER), "--timeout", str(timeout)]
        for b in self.binds:
            cmd += ["--bind", b]
        cmd += ["--", *prefix, "gimp-console-3.0", "-i", "-n", "--stack-trace-mode=never",
                "--batch-interpreter=python-fu-eval", "-b", f'exec(open("{DRIVER}").read())', "--quit"]
        proc = subprocess.run(cmd, env=run_env, capture_output=True, text=True, timeout=timeout + 30)
        (folder / "gimp.log").write_text(proc.stdout + proc.stderr)
        results = out / "results.json"
        # Exit 0 is needed but not enough (GIMP does not fail on a plug-in error): the driver's results decide.
        if proc.returncode != 0 or not results.is_file():
            raise AssertionError(f"gimp-console exited {proc.returncode}; log tail:\n{(proc.stdout + proc.stderr)[-4000:]}")
        data = json.loads(results.read_text())
        data["out"] = out
        return data


def skip_or_fail(reason: str) -> None:
    """Skip -- unless COLORIZE_GAN_REQUIRE_GIMP=1 (CI, after scripts/setup_gimp.sh), where it is a failure."""
    if os.environ.get("COLORIZE_GAN_REQUIRE_GIMP") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def _gimp_problem() -> str | None:
    try:
        proc = subprocess.run([str(RUNNER), "--timeout", "60", "--", "gimp-console-3.0", "--version"],
                              capture_output=True, text=True, timeout=90)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot run {RUNNER}: {exc}"
    if proc.returncode != 0 or "3." not in proc.stdout:
        return f"GIMP 3 is not set up (run scripts/setup_gimp.sh): {(proc.stderr or proc.stdout).strip()[-300:]}"
    return None


@pytest.fixture(scope="session")
def gimp(tmp_path_factory) -> GimpSession:
    problem = _gimp_problem()
    if problem:
        skip_or_fail(problem)
    base = tmp_path_factory.mktemp("gimp")
    config = base / "config"
    python, python_paths = worker_python(base)
    installer.install(config, python)
    # Paths the chroot must see at the same place: repo, venv, the worker's base Python, all test temp files.
    binds = {str(ROOT), sys.prefix, str(tmp_path_factory.getbasetemp()), *python_paths}
    return GimpSession(base, config, sorted(binds))


def worker_python(base: Path) -> tuple:
    """The worker Python to install, and the host paths it needs inside the GIMP chroot (Debian 12)."""
    prefix = os.path.realpath(sys.base_prefix)
    if prefix not in ("/", "/usr"):
        return sys.executable, {prefix}  # pyenv, /opt, /usr/local ...: self-contained, bound whole
    # A distribution Python: the venv's bin/python links to /usr/bin/python3, which inside the chroot is
    # GIMP's Python 3.13, and binding all of /usr would hide the chroot's own. So: a venv with a *copied*
    # interpreter that reads this venv's site-packages, plus the stdlib (and libpython) bound alone.
    shim = base / "worker-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--copies", str(shim)], check=True)
    shim_site = Path(sysconfig.get_paths(vars={"base": str(shim), "platbase": str(shim)})["purelib"])
    shim_site.joinpath("colorize_gan_tests.pth").write_text(
        f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    paths = {os.path.dirname(os.__file__)}
    if sysconfig.get_config_var("Py_ENABLE_SHARED"):
        lib = Path(sysconfig.get_config_var("LIBDIR") or "/nonexistent") / (sysconfig.get_config_var("INSTSONAME") or "-")
        if lib.is_file():
            paths.add(str(lib))
    return str(shim / "bin" / "python"), paths


# -- test images -----------------------------------------------------------------------------------------

def scene(w: int = W, h: int = H, seed: int = 0, shift: int = 0) -> np.ndarray:
    """A grey 'landscape': smooth bright sky over textured ground, plus a disc (no multiple of anything)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    xx = xx + shift
    sky = 200 - 60 * yy / h
    ground = 90 + 25 * np.sin(xx / 3.0) * np.cos(yy / 4.0) + rng.normal(0, 12, (h, w))
    img = np.where(yy < h * 0.45, sky, ground)
    img[(yy - h * 0.6) ** 2 + (xx - w * 0.7) ** 2 < (h * 0.15) ** 2] = 235
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def images(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("gimp-images")
    paths = {}

    def save(name, array, mode):
        paths[name] = str(d / f"{name}.png")
        Image.fromarray(array).convert(mode).save(paths[name])

    save("rgb", scene(), "RGB")  # an RGB image whose pixels are grey
    save("gray", scene(seed=1), "L")  # a GRAY image
    save("big", scene(200, 150, seed=2), "RGB")
    save("small", scene(60, 40, seed=3), "RGB")
    for i in range(3):
        save(f"frame{i}", scene(seed=4, shift=3 * i), "RGB")  # a slow pan
    return paths


# -- the main launch ---------------------------------------------------------------------------------------

def main_cases(images: dict, model: str) -> list:
    # backend "cpu" skips the GPU probes (which import torch: ~2 s per call on a loaded 2-core machine);
    # full_new keeps "auto", the default, so the GPU -> CPU fallback runs in real GIMP too.
    tiny = {"model": model, "backend": "cpu"}
    frames = {"input": images["frame0"], "layers": [{"file": images["frame1"]}, {"file": images["frame2"]}]}
    cases = [
        # First a failure, so every later case also proves GIMP kept running after it.
        {"name": "bad_model", "input": images["gray"], "args": {"model": "/nonexistent/model.json"}},
        {"name": "full_new", "input": images["rgb"], "args": {**tiny, "backend": "auto"}},
        {"name": "full_inplace", "input": images["rgb"], "args": {**tiny, "output-mode": "in-place"}},
        {"name": "rect_new", "input": images["rgb"], "select": {"shape": "rect", "box": RECT}, "args": tiny},
        {"name": "ellipse_inplace", "input": images["rgb"], "select": {"shape": "ellipse", "box": ELLIPSE, "feather": 16},
         "args": {**tiny, "output-mode": "in-place"}},
        {"name": "ellipse_new", "input": images["rgb"], "select": {"shape": "ellipse", "box": ELLIPSE, "feather": 16},
         "args": tiny},
        {"name": "gray", "input": images["gray"], "args": tiny},
        {"name": "offsets", "input": images["rgb"], "layers": [{"file": images["big"]}, {"file": images["small"]}],
         "offsets": {"0": [50, 30], "1": [-20, -15]}, "drawables": [0, 1], "args": tiny},
        {"name": "offsets_selection", "input": images["rgb"], "layers": [{"file": images["big"]}, {"file": images["small"]}],
         "offsets": {"0": [50, 30], "1": [-20, -15]}, "drawables": [0, 1], "select": {"shape": "rect", "box": [0, 0, 80, 50]},
         "args": tiny},
        {"name": "frames", **frames, "args": {**tiny, "frames": True, "temporal-strength": 0.9}},
        {"name": "frames_nostab", **frames, "args": {**tiny, "frames": True, "temporal-strength": 0.0}},
        {"name": "interactive", "input": images["rgb"], "run_mode": "INTERACTIVE", "args": tiny},
        {"name": "group", "input": images["rgb"], "group": True, "args": tiny},
    ]
    if (DEFAULT_STEM.parent / (DEFAULT_STEM.name + ".json")).is_file():
        cases.append({"name": "default_model", "input": images["rgb"], "args": {"model": ""}})
    return cases


@pytest.fixture(scope="session")
def main_run(gimp, images, tiny_bundle) -> dict:
    return gimp.launch("main", main_cases(images, str(tiny_bundle)))


@dataclass
class Case:
    data: dict
    folder: Path

    @property
    def status(self) -> str:
        return self.data["status"]

    def layers(self, when: str = "after") -> list:
        return self.data[when]["layers"]

    def pixels(self, index: int, when: str = "after") -> np.ndarray:
        meta = self.layers(when)[index]
        w, h = meta["size"]
        return np.fromfile(self.folder / meta["pixels"], np.uint8).reshape(h, w, 4)

    def selection(self) -> np.ndarray:
        w, h = self.data["before"]["size"]
        return np.fromfile(self.folder / "before-selection.y", np.uint8).reshape(h, w)


def case(run: dict, name: str) -> Case:
    data = run["cases"][name]
    assert data["status"] != "driver-error", data["error"]
    return Case(data, run["out"] / name)


def chroma(rgba: np.ndarray) -> np.ndarray:
    lab = rgb_to_lab(rgba[..., :3].astype(np.float32) / 255)
    return np.hypot(lab[..., 1], lab[..., 2])


def assert_luminance_kept(out: np.ndarray, src: np.ndarray) -> None:
    dL = np.abs(rgb_to_lab(out[..., :3] / 255.0)[..., 0] - rgb_to_lab(src[..., :3] / 255.0)[..., 0])
    # Gamut clipping of strong colours moves L a little near black and white; the typical pixel keeps it.
    assert np.median(dL) < 1.0 and dL.mean() < 2.0, f"luminance changed: median {np.median(dL):.2f}, mean {dL.mean():.2f}"


def assert_succeeded(c: Case) -> None:
    assert c.status == "success", c.data["error"]


# -- the tests -------------------------------------------------------------------------------------------

def test_procedure_registers(main_run, gimp):
    reg = main_run["registration"]
    assert reg["registered"], "python-fu-colorize-gan not found in the PDB: the plug-in did not register"
    assert reg["menu_label"] == "Colorize (GAN)..." and reg["menu_paths"] == ["<Image>/Filters"]
    assert reg["image_types"] == "RGB*, GRAY*"
    for arg in ("render-size", "saturation", "backend", "output-mode", "frames", "temporal-strength", "model"):
        assert arg in reg["arguments"]
    # GIMP has now queried the plug-in, so the installer's own check sees it in pluginrc.
    assert installer.status(gimp.config), "colorize-gan-gimp status should be OK after GIMP registered the plug-in"


def test_grey_image_becomes_colour_new_layer_from_default_model(main_run):
    if "default_model" not in main_run["cases"]:
        pytest.skip(f"no trained default model yet ({DEFAULT_STEM}.json missing)")
    c = case(main_run, "default_model")
    assert_succeeded(c)
    top, src = c.layers()
    assert top["name"] == "Background (colorized)" and top["size"] == src["size"] == [W, H]
    out, before = c.pixels(0), c.pixels(0, "before")
    assert (c.pixels(1) == before).all(), "the source layer is untouched"
    assert chroma(before).max() < 1.0
    # An early checkpoint of the default model gives ~12 here (blue sky, brown ground); grey input gives 0.
    assert chroma(out).mean() > 4.0, f"too little colour: mean chroma {chroma(out).mean():.2f}"
    assert_luminance_kept(out, before)


def test_new_layer_above_source_with_colour(main_run):
    c = case(main_run, "full_new")
    assert_succeeded(c)
    assert [l["name"] for l in c.layers()] == ["Background (colorized)", "Background"]
    out = c.pixels(0)
    assert (out[..., 3] == 255).all() and chroma(out).mean() > 3.0
    assert_luminance_kept(out, c.pixels(0, "before"))


def test_in_place_matches_new_layer(main_run):
    c = case(main_run, "full_inplace")
    assert_succeeded(c)
    assert len(c.layers()) == 1
    assert np.abs(c.pixels(0).astype(int) - case(main_run, "full_new").pixels(0)).max() <= 1


def test_rectangular_selection(main_run):
    c = case(main_run, "rect_new")
    assert_succeeded(c)
    alpha = c.pixels(0)[..., 3]
    x, y, w, h = RECT
    inside = np.zeros_like(alpha, bool)
    inside[y:y + h, x:x + w] = True
    assert (alpha[inside] == 255).all() and (alpha[~inside] == 0).all()
    assert (c.pixels(1) == c.pixels(0, "before")).all()


def test_feathered_ellipse_in_place(main_run):
    c = case(main_run, "ellipse_inplace")
    assert_succeeded(c)
    m = c.selection().astype(np.float64)[..., None] / 255
    assert ((m > 0.05) & (m < 0.95)).sum() > 200, "the selection should have a feathered edge"
    src, out = c.pixels(0, "before").astype(np.float64), c.pixels(0).astype(np.float64)
    col = case(main_run, "full_new").pixels(0).astype(np.float64)
    outside = m[..., 0] == 0
    assert (out[outside] == src[outside]).all(), "unselected pixels must not change"
    assert chroma(out[m[..., 0] == 1].reshape(-1, 1, 4)).mean() > 3.0
    # Feathered pixels are the selection-weighted blend of source and colorized result; GIMP blends in
    # linear light (measured: within rounding of the linear blend, up to 65 levels off a blend of sRGB values).
    blend = linear_to_srgb(srgb_to_linear(src[..., :3] / 255) * (1 - m) + srgb_to_linear(col[..., :3] / 255) * m)
    assert np.abs(blend * 255 - out[..., :3]).max() <= 1.0
    assert np.abs(col - src)[((m[..., 0] > 0.2) & (m[..., 0] < 0.8))].max() > 30, "the edge test needs colour there"


def test_feathered_ellipse_new_layer(main_run):
    c = case(main_run, "ellipse_new")
    assert_succeeded(c)
    out, m = c.pixels(0), c.selection()
    assert np.abs(out[..., 3].astype(int) - m).max() <= 1, "new layer alpha = selection (feather included)"
    col = case(main_run, "full_new").pixels(0)
    sel = m > 0
    assert np.abs(out[sel][:, :3].astype(int) - col[sel][:, :3]).max() <= 1
    assert (c.pixels(1) == c.pixels(0, "before")).all()
    # Composited, the new layer looks exactly like the in-place result (GIMP blends both in linear light).
    merged = {n: np.asarray(Image.open(main_run["out"] / n / "merged.png").convert("RGB")).astype(int)
              for n in ("ellipse_new", "ellipse_inplace")}
    assert np.abs(merged["ellipse_new"] - merged["ellipse_inplace"]).max() <= 2


def test_gray_image_is_converted(main_run):
    c = case(main_run, "gray")
    assert_succeeded(c)
    assert c.data["before"]["base_type"] == "gray" and c.data["after"]["base_type"] == "rgb"
    out = c.pixels(0)
    assert c.layers()[0]["name"] == "Background (colorized)" and chroma(out).mean() > 3.0
    assert_luminance_kept(out, c.pixels(0, "before"))


def test_layer_offsets_and_sizes(main_run):
    c = case(main_run, "offsets")
    assert_succeeded(c)
    names = [l["name"] for l in c.layers()]
    before = c.layers("before")
    assert len(names) == 5
    for i, src in ((1, 0), (3, 1)):  # each new layer sits right above its source, same geometry
        new, old = c.layers()[i - 1], c.layers()[i]
        assert new["name"] == old["name"] + " (colorized)"
        assert new["offsets"] == old["offsets"] == before[src]["offsets"] and new["size"] == old["size"]
        assert (c.pixels(i - 1)[..., 3] == 255).all() and chroma(c.pixels(i - 1)).mean() > 3.0
    assert c.layers()[1]["size"] == [60, 40] and c.layers()[3]["size"] == [200, 150]  # smaller / larger than canvas


def test_layer_offsets_with_selection(main_run):
    c = case(main_run, "offsets_selection")
    assert_succeeded(c)
    canvas = c.selection()
    for i in (0, 2):
        meta = c.layers()[i]
        (ox, oy), (w, h) = meta["offsets"], meta["size"]
        expected = np.zeros((h, w), np.uint8)  # the selection in layer coordinates; off-canvas = unselected
        ys, xs = slice(max(oy, 0), min(oy + h, H)), slice(max(ox, 0), min(ox + w, W))
        expected[ys.start - oy:ys.stop - oy, xs.start - ox:xs.stop - ox] = canvas[ys, xs]
        assert (c.pixels(i)[..., 3] == expected).all(), meta["name"]


def test_frames_mode(main_run):
    c, plain = case(main_run, "frames"), case(main_run, "frames_nostab")
    assert_succeeded(c)
    assert_succeeded(plain)
    assert [l["name"] for l in c.layers()] == [l["name"] for l in c.layers("before")], "frames stay frames, in place"
    for i in range(3):
        assert chroma(c.pixels(i)).mean() > 3.0
        assert_luminance_kept(c.pixels(i), c.pixels(i, "before"))
    # The bottom layer is the first frame: no history, so stabilization cannot change it; later frames differ.
    assert (c.pixels(2) == plain.pixels(2)).all()
    assert np.abs(c.pixels(0).astype(int) - plain.pixels(0)).max() > 2


def test_interactive_without_display_runs_without_dialog(main_run):
    c = case(main_run, "interactive")
    assert_succeeded(c)
    assert len(c.layers()) == 2


def test_worker_failure_is_an_error_and_leaves_image_unchanged(main_run):
    c = case(main_run, "bad_model")
    assert c.status == "execution-error"
    assert "model not found" in c.data["error"]
    assert_unchanged(c)


def test_layer_group_is_refused(main_run):
    c = case(main_run, "group")
    assert c.status == "execution-error" and "layer group" in c.data["error"]
    assert_unchanged(c)


def assert_unchanged(c: Case) -> None:
    assert c.data["after"]["base_type"] == c.data["before"]["base_type"]
    assert len(c.layers()) == len(c.layers("before"))
    for i in range(len(c.layers())):
        assert (c.pixels(i) == c.pixels(i, "before")).all()


def test_broken_worker_environment(gimp, images, tiny_bundle, tmp_path_factory):
    """A recorded Python that lost the project (e.g. a recreated venv): an error naming the cause, no change."""
    bare = tmp_path_factory.mktemp("bare-venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    cases = [
        {"name": "gray", "input": images["gray"], "args": {"model": str(tiny_bundle)}},
        {"name": "inplace_sel", "input": images["rgb"], "select": {"shape": "rect", "box": RECT},
         "args": {"model": str(tiny_bundle), "output-mode": "in-place"}},
    ]
    run = gimp.launch("broken", cases, env={"COLORIZE_GAN_PYTHON": str(bare / "bin" / "python")})
    for name in ("gray", "inplace_sel"):
        c = case(run, name)
        assert c.status == "execution-error"
        assert "environment" in c.data["error"] and "broken" in c.data["error"], c.data["error"]
        assert_unchanged(c)


def test_dialog_ok_and_cancel(gimp, images, tiny_bundle):
    """With a display, the procedure dialog opens; OK runs the filter, Cancel changes nothing.

    (Which values the dialog starts from is GIMP's business: interactive runs start from the last values
    used interactively, or from the arguments when there are none -- measured, see docs/gimp.md.)"""
    probe = subprocess.run([str(RUNNER), "--", "sh", "-c", "command -v Xvfb && command -v xdotool"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        skip_or_fail("Xvfb/xdotool not installed where GIMP runs (scripts/setup_gimp.sh installs them)")
    args = {"model": str(tiny_bundle), "backend": "cpu"}
    cases = [
        {"name": "ok", "input": images["rgb"], "run_mode": "INTERACTIVE", "args": args},
        {"name": "cancel", "input": images["rgb"], "run_mode": "INTERACTIVE", "args": args},
    ]
    answered = gimp.base / "dialog-answered.txt"
    run = gimp.launch("dialog", cases, prefix=(str(DIALOG),), timeout=180,
                      env={"DIALOG_KEYS": "Return Escape", "DIALOG_LOG": str(answered)})
    ok = case(run, "ok")
    assert_succeeded(ok)
    assert [l["name"] for l in ok.layers()] == ["Background (colorized)", "Background"]
    cancel = case(run, "cancel")
    assert cancel.status == "cancel"  # only the dialog's Cancel button gives this status
    assert_unchanged(cancel)
    assert answered.read_text().strip() == "answered 2 dialogs", "each run must have shown its dialog"
