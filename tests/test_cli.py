"""colorize-gan CLI: inputs (files, folders, globs), outputs, resume, JSON, shards, metadata, info."""
from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from process_helpers import colorize_gan_command, interrupt_when
from runtime.cli.main import main


@pytest.fixture
def tree(tmp_path, grey_image):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    Image.fromarray(grey_image).save(src / "a.jpg", quality=95)
    Image.fromarray(grey_image).convert("LA").save(src / "sub" / "b.png")
    Image.fromarray(grey_image.T.copy()).save(src / "sub" / "c.tif")
    (src / "readme.txt").write_text("not an image, and not picked up from a folder")
    return src


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_help_and_import_need_no_torch():
    code = ("import sys; sys.modules['torch'] = None; sys.modules['onnxruntime'] = None\n"
            "import runtime, runtime.cli.main\n"
            "assert 'numpy' not in sys.modules, 'import runtime must stay light'\n"
            "try:\n    runtime.cli.main.main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "INPUT" in proc.stdout and "--render-size" in proc.stdout and "--shard" in proc.stdout


def test_folder_recursive_json_and_skip_existing(capsys, tree, tmp_path, tiny_bundle):
    out = tmp_path / "out"
    code, stdout, err = run(capsys, tree, "-o", out, "--model", tiny_bundle, "--json", "-q")
    assert code == 0, err
    report = json.loads(stdout)
    assert report["backend"] == "onnxruntime" and report["summary"]["ok"] == 3
    assert {Path(r["output"]).relative_to(out).as_posix() for r in report["results"]} == {"a.jpg", "sub/b.png", "sub/c.tif"}
    assert all(r["status"] == "ok" and r["error"] is None and r["seconds"] >= 0 for r in report["results"])
    assert Image.open(out / "sub" / "b.png").mode == "RGBA"
    assert Image.open(out / "sub" / "c.tif").size == Image.open(tree / "sub" / "c.tif").size
    assert "backend onnxruntime" in err  # which backend was picked goes to stderr
    before = (out / "a.jpg").stat().st_mtime_ns
    code, stdout, _ = run(capsys, tree, "-o", out, "--model", tiny_bundle, "--json", "--skip-existing")
    assert code == 0 and json.loads(stdout)["summary"]["skipped"] == 3
    assert (out / "a.jpg").stat().st_mtime_ns == before
    assert not list(out.rglob("*.part"))  # no temporaries left


def test_glob_single_file_and_format(capsys, tree, tmp_path, tiny_bundle):
    code, _, err = run(capsys, str(tree / "sub" / "*.png"), "-o", tmp_path / "g", "--model", tiny_bundle, "--format", "webp")
    assert code == 0, err
    assert [p.name for p in (tmp_path / "g").iterdir()] == ["b.webp"]
    code, _, _ = run(capsys, tree / "a.jpg", "-o", tmp_path / "one.png", "--model", tiny_bundle, "--saturation", "0")
    assert code == 0
    rgb = np.asarray(Image.open(tmp_path / "one.png").convert("RGB"), dtype=int)
    assert np.abs(rgb[..., 0] - rgb[..., 2]).max() <= 1  # saturation 0 reaches the output


def test_no_mirror_is_the_api_with_one_network_pass(capsys, tree, tmp_path, tiny_bundle):
    from runtime import Colorizer

    outs = {}
    for flag in ((), ("--no-mirror",)):
        out = tmp_path / f"m{len(flag)}.png"
        code, _, err = run(capsys, tree / "a.jpg", "-o", out, "--model", tiny_bundle, "--backend", "onnxruntime", *flag)
        assert code == 0, err
        outs[bool(flag)] = np.asarray(Image.open(out).convert("RGB"), dtype=int)
    grey = np.asarray(Image.open(tree / "a.jpg"))
    for mirror in (True, False):
        with Colorizer.load(str(tiny_bundle), backend="onnxruntime", mirror=mirror) as c:
            want = np.round(c.colorize_array(grey) * 255).astype(int)
        assert np.abs(outs[not mirror] - want).max() <= 1
    assert np.abs(outs[True] - outs[False]).max() > 3


def test_never_writes_onto_an_input(capsys, tree, tiny_bundle):
    data = (tree / "a.jpg").read_bytes()
    code, _, err = run(capsys, tree / "a.jpg", "-o", tree, "--model", tiny_bundle)
    assert code == 1 and "overwrite an input" in err
    assert (tree / "a.jpg").read_bytes() == data


def test_shards_partition_the_batch(capsys, tree, tmp_path, tiny_bundle):
    seen = []
    for i in (1, 2, 3):
        code, stdout, _ = run(capsys, tree, "-o", tmp_path / "s", "--model", tiny_bundle, "--json", "-q", "--shard", f"{i}/3")
        assert code == 0
        seen += [r["input"] for r in json.loads(stdout)["results"]] if stdout else []
    assert sorted(seen) == sorted(str(p) for p in tree.rglob("*") if p.suffix in (".jpg", ".png", ".tif"))
    assert run(capsys, tree, "-o", tmp_path / "s", "--shard", "4/3")[0] == 2


def test_icc_exif_orientation_and_16bit(capsys, tmp_path, grey_image, tiny_bundle):
    src = tmp_path / "meta"
    src.mkdir()
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    Image.fromarray(grey_image).convert("RGB").save(src / "o.jpg", icc_profile=icc, exif=exif.tobytes())
    Image.fromarray(grey_image.astype(np.uint16) * 257).save(src / "deep.png")
    code, _, err = run(capsys, src, "-o", tmp_path / "m", "--model", tiny_bundle)
    assert code == 0, err
    out = Image.open(tmp_path / "m" / "o.jpg")
    h, w = grey_image.shape
    assert out.size == (h, w)  # EXIF orientation applied (width and height swapped)
    assert out.info.get("icc_profile") == icc
    assert out.getexif().get(0x0112, 1) == 1
    raw = (tmp_path / "m" / "deep.png").read_bytes()
    assert raw[24] == 16 and raw[25] == 2  # IHDR: 16-bit RGB
    px = decode_png16_rgb(raw)
    assert px.shape == (h, w, 3) and px.dtype == np.uint16
    ref = np.asarray(Image.open(tmp_path / "m" / "deep.png").convert("RGB"), dtype=int)  # Pillow reads it as 8-bit
    assert np.abs((px >> 8).astype(int) - ref).max() <= 1
    assert len(np.unique(px[..., 1] & 0xFF)) > 16  # the low byte carries real precision


def decode_png16_rgb(raw: bytes) -> np.ndarray:
    """Enough of a PNG reader for the files runtime.image.imageio.write_png16 writes (Up filter)."""
    f = io.BytesIO(raw[8:])
    idat, w, h = b"", 0, 0
    while True:
        n = int.from_bytes(f.read(4), "big")
        kind, body = f.read(4), f.read(n)
        f.read(4)
        if kind == b"IHDR":
            w, h = int.from_bytes(body[:4], "big"), int.from_bytes(body[4:8], "big")
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    rows = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, -1)
    assert (rows[:, 0] == 2).all()
    data = np.cumsum(rows[:, 1:].astype(np.uint64), axis=0).astype(np.uint8)  # undo 'Up' (mod 256)
    return data.view(">u2").reshape(h, w, 3).astype(np.uint16)


def test_info_lists_backends_and_model(capsys, tiny_bundle):
    code, out, _ = run(capsys, "info", "--model", tiny_bundle)
    assert code == 0
    for name in ("tensorrt", "torch-cuda", "onnxruntime", "torch-cpu"):
        assert name in out
    assert "depth=4" in out and "versions:" in out and "colour kernel" in out
    code, out, _ = run(capsys, "info", "--model", tiny_bundle, "--json")
    report = json.loads(out)
    assert report["backends"]["onnxruntime"]["available"] is True
    assert report["model"]["spec"]["depth"] == 4


def test_video_input_gets_a_hint(capsys, tmp_path, tiny_bundle):
    (tmp_path / "clip.mp4").write_bytes(b"\x00" * 64)
    code, _, err = run(capsys, tmp_path / "clip.mp4", "-o", tmp_path / "o", "--model", tiny_bundle)
    assert code == 1 and "colorize-gan video" in err


# -- Ctrl-C and output folders ---------------------------------------------------------------------------

@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_skip_existing_resumes(tmp_path, grey_image):
    """A real batch with the embedded model, interrupted after its first output: exit 130, one line, no traceback,
    no partial or temporary file; a rerun with --skip-existing does exactly the rest."""
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for i in range(30):
        Image.fromarray(np.roll(grey_image, 6 * i, axis=1)).save(src / f"p{i:02d}.png")
    cmd = colorize_gan_command() + [str(src), "-o", str(out)]
    code, _, err = interrupt_when(cmd, lambda _err: out.is_dir() and any(p.suffix == ".png" for p in out.iterdir()))
    assert code == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    lines = [ln for ln in err.splitlines() if "interrupted" in ln]
    assert len(lines) == 1, err
    m = re.fullmatch(r"colorize-gan: interrupted after (\d+) of 30; run again with --skip-existing to continue", lines[0])
    assert m, lines[0]
    written = sorted(p.name for p in out.iterdir())
    assert not [n for n in written if n.startswith(".") or not n.endswith(".png")], written  # no temporaries
    assert 1 <= len(written) < 30
    # The file whose write Ctrl-C may have followed by microseconds is complete, but was not counted yet.
    assert int(m.group(1)) <= len(written) <= int(m.group(1)) + 1
    for name in written:
        with Image.open(out / name) as im:
            im.load()  # every file there is complete
    proc = subprocess.run(cmd + ["--skip-existing", "--json", "-q"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)["summary"]
    assert summary["skipped"] == len(written) and summary["ok"] == 30 - len(written) and summary["error"] == 0
    assert sorted(p.name for p in out.iterdir()) == [f"p{i:02d}.png" for i in range(30)]


def test_interrupt_while_writing_leaves_no_temp_file(capsys, tmp_path, grey_image, tiny_bundle, monkeypatch):
    """Ctrl-C in the middle of a write (in-process, deterministic: raised in the worker after the temporary file is
    complete, before its rename): the temporary file goes too, and so does the output folder made for it."""
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    for name in ("a.png", "sub/b.png"):
        Image.fromarray(grey_image).save(src / name)
    out = tmp_path / "out"
    real_replace = os.replace
    seen = []

    def replace(a, b):
        if str(b).endswith("b.png"):
            seen.append(Path(a).read_bytes()[:8])  # the temporary file holds the whole picture by now
            raise KeyboardInterrupt
        return real_replace(a, b)

    monkeypatch.setattr(os, "replace", replace)
    code, _, err = run(capsys, src, "-o", out, "--model", tiny_bundle, "--workers", "1")
    assert seen == [b"\x89PNG\r\n\x1a\n"]
    assert code == 130, err
    assert "colorize-gan: interrupted after 1 of 2; run again with --skip-existing to continue" in err
    assert "Traceback" not in err
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["a.png"]


def test_early_folder_check_creates_nothing(capsys, tmp_path, grey_image, tiny_bundle):
    """An output location that cannot be created still fails at once (exit 2), and a writable one is not
    created before a file is written into it."""
    Image.fromarray(grey_image).save(tmp_path / "a.png")
    locked = tmp_path / "locked"
    locked.mkdir()
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file where a folder should be")
    code, _, err = run(capsys, tmp_path / "a.png", "-o", blocker / "deeper" / "out", "--model", tiny_bundle)
    assert code == 2 and err.count("\n") == 1 and "cannot create output folder" in err and str(blocker) in err
    if os.geteuid() != 0:  # root may write anywhere
        locked.chmod(0o500)
        code, _, err = run(capsys, tmp_path / "a.png", "-o", locked / "new" / "out", "--model", tiny_bundle)
        assert code == 2 and "cannot create output folder" in err and not (locked / "new").exists()
        code, _, err = run(capsys, tmp_path / "a.png", "-o", locked, "--model", tiny_bundle)
        assert code == 2 and "not writable" in err
    code, _, err = run(capsys, tmp_path / "a.png", "-o", tmp_path / "new" / "deeper", "--model", tiny_bundle)
    assert code == 0 and (tmp_path / "new" / "deeper" / "a.png").is_file()
