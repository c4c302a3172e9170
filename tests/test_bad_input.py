"""Bad input never gives a traceback: one line naming the file and the reason, a non-zero exit,
no partial output, and inputs left byte-identical."""
from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from runtime.cli.main import main


def digest(folder: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def _jpeg(grey: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _png(grey: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, "PNG")
    return buf.getvalue()


def _corrupt_png(grey: np.ndarray) -> bytes:
    data = bytearray(_png(grey))
    i = data.index(b"IDAT") + 40
    data[i:i + 40] = bytes(40)  # damage compressed pixel data (and its CRC no longer matches)
    return bytes(data)


def _float_tiff(grey: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(grey.astype(np.float32) / 255).save(buf, "TIFF")
    return buf.getvalue()


CASES = {
    "truncated.jpg": (lambda g: _jpeg(g)[: len(_jpeg(g)) // 2], "truncated"),
    "corrupt.png": (_corrupt_png, "corrupt"),
    "empty.png": (lambda g: b"", "empty file"),
    "text.jpg": (lambda g: b"hello, I am not a picture\n" * 20, "not an image"),
    "float.tif": (_float_tiff, "not supported"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_file_one_line_no_output(capsys, tmp_path, grey_image, tiny_bundle, name):
    make, reason = CASES[name]
    src = tmp_path / "in"
    src.mkdir()
    (src / name).write_bytes(make(grey_image))
    (src / "good.png").write_bytes(_png(grey_image))
    before = digest(src)
    out = tmp_path / "out"
    code = main([str(src), "-o", str(out), "--model", str(tiny_bundle)])
    err = capsys.readouterr().err
    assert code == 1
    lines = [ln for ln in err.splitlines() if str(src / name) in ln]
    assert len(lines) == 1 and reason in lines[0].lower(), err
    assert "Traceback" not in err
    assert digest(src) == before
    produced = sorted(p.name for p in out.iterdir())
    assert produced == ["good.png"]  # the batch went on past the bad file, nothing partial left
    assert "1 colorized, 0 skipped, 1 failed" in err


def test_missing_path(capsys, tmp_path, tiny_bundle):
    code = main([str(tmp_path / "nope.jpg"), "-o", str(tmp_path / "out"), "--model", str(tiny_bundle)])
    err = capsys.readouterr().err
    assert code == 1 and f"{tmp_path / 'nope.jpg'}: no such file or directory" in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_unwritable_output_folder(capsys, tmp_path, grey_image, tiny_bundle):
    (tmp_path / "a.png").write_bytes(_png(grey_image))
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file where a folder should be")
    code = main([str(tmp_path / "a.png"), "-o", str(blocker / "out"), "--model", str(tiny_bundle)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "cannot create output folder" in err[0] and str(blocker) in err[0]


def test_write_failure_leaves_nothing(capsys, tmp_path, grey_image, tiny_bundle, monkeypatch):
    """An encoder failing half-way (disk full, say) must not leave a partial file at the target."""
    from runtime.image import imageio

    (tmp_path / "a.png").write_bytes(_png(grey_image))
    out = tmp_path / "out"

    def broken_save(self, fp, *args, **kwargs):
        fp.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    code = main([str(tmp_path / "a.png"), "-o", str(out), "--model", str(tiny_bundle)])
    err = capsys.readouterr().err
    assert code == 1 and "No space left on device" in err and "Traceback" not in err
    assert not out.exists()  # neither a partial file nor the temporary one, nor the folder made for them
    assert imageio  # the module under test wrote through a temporary file


@pytest.mark.parametrize("name, data, output", [
    ("song.m4a", b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00" + bytes(200), "out.mp4"),  # not an image: -o is a folder
    ("broken.jpg", b"\xff\xd8\xff\xe0 not really a JPEG" * 3, "newdir/"),
    ("broken.png", b"\x89PNG\r\n\x1a\n" + bytes(40), "newdir/deeper/one.png"),
])
def test_a_run_that_writes_nothing_creates_nothing(capsys, tmp_path, tiny_bundle, name, data, output):
    (tmp_path / name).write_bytes(data)
    code = main([str(tmp_path / name), "-o", str(tmp_path / output), "--model", str(tiny_bundle)])
    err = capsys.readouterr().err
    assert code == 1 and f"{tmp_path / name}: " in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no output folder, empty or not


def test_setup_failure_creates_nothing(capsys, tmp_path, grey_image):
    (tmp_path / "a.png").write_bytes(_png(grey_image))
    code = main([str(tmp_path / "a.png"), "-o", str(tmp_path / "new" / "out"), "--model", str(tmp_path / "missing.json")])
    assert code == 2 and "missing.json" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def test_decompression_bomb_guard(capsys, tmp_path, grey_image, tiny_bundle):
    (tmp_path / "big.png").write_bytes(_png(grey_image))
    code = main([str(tmp_path / "big.png"), "-o", str(tmp_path / "o"), "--model", str(tiny_bundle), "--max-pixels", "1000"])
    err = capsys.readouterr().err
    assert code == 1 and "--max-pixels" in err and "decompression-bomb" in err
    assert main([str(tmp_path / "big.png"), "-o", str(tmp_path / "o"), "--model", str(tiny_bundle), "--max-pixels", "0"]) == 0


def test_bad_model_and_options(capsys, tmp_path, grey_image):
    (tmp_path / "a.png").write_bytes(_png(grey_image))
    (tmp_path / "m.json").write_text("{not json")
    code = main([str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--model", str(tmp_path / "m.json")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "m.json" in err[0]
    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--saturation", "-1"])
    assert exc.value.code == 2
