"""The pipelined batch runner (runtime/image/pipeline.py, runtime/image/jobs.py): the same bytes as one photo at a
time, micro-batches that answer each photo with its own slice, bounded memory, errors that cost one photo, and a
stop that leaves only complete files."""
from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from runtime import Colorizer
from runtime.cli.main import main
from runtime.image import fastcolor
from runtime.image.imageio import encode_image
from runtime.image.jobs import FileJob, FileOptions, colorize_file
from runtime.image.pipeline import Folders, NetworkBatcher, PixelBudget, Stopped, run_pipeline


@pytest.fixture(scope="module")
def colorizer():
    with Colorizer.load(None, backend="onnxruntime") as c:
        yield c


def _photos(folder: Path, grey: np.ndarray) -> list[Path]:
    """Inputs of several sizes and kinds (grey and colour JPEG, grey PNG, RGBA PNG, 16-bit PNG, a hint sidecar)."""
    folder.mkdir(parents=True, exist_ok=True)
    g = grey
    items = {
        "a.jpg": Image.fromarray(g, "L"),
        "b.jpg": Image.fromarray(np.stack([g, g[::-1], g[:, ::-1]], -1), "RGB"),
        "c.png": Image.fromarray(np.kron(g, np.ones((3, 3), np.uint8)), "L"),
        "d.png": Image.fromarray(np.dstack([g, g, g, np.full_like(g, 200)]), "RGBA"),
        "e.png": Image.fromarray(g.astype(np.uint16) * 257),
        "f.jpg": Image.fromarray(g[:, : g.shape[1] // 2].copy(), "L"),
    }
    for name, im in items.items():
        im.save(folder / name)
    hint = np.zeros((*g.shape, 4), np.uint8)
    hint[10:16, 10:16] = (220, 30, 30, 255)
    Image.fromarray(hint, "RGBA").save(folder / "a.hints.png")
    return sorted(folder / n for n in items)


def test_folder_is_bit_identical_to_one_photo_at_a_time(tmp_path, grey_image, colorizer, capsys):
    """Every output of a pipelined folder run (default workers, micro-batches) has the bytes of the same file
    colorized alone, without the pipeline (no batcher, the colour kernel's default threads)."""
    src = tmp_path / "in"
    photos = _photos(src, grey_image)
    for fmt in ("same", "webp"):
        out = tmp_path / f"out-{fmt}"
        assert main([str(src), "-o", str(out), "--format", fmt, "-q"]) == 0
        for p in photos:
            name = p.with_suffix(".webp" if fmt == "webp" else p.suffix).name
            alone = tmp_path / f"alone-{fmt}" / name
            side = p.with_name(p.stem + ".hints.png")
            assert colorize_file(colorizer, FileJob(p, alone, side if side.exists() else None), FileOptions()) is None
            assert (out / name).read_bytes() == alone.read_bytes(), name


def test_batching_does_not_change_onnxruntime_answers(colorizer):
    """The premise of micro-batches on ONNX Runtime (Backend.batch_invariant): a photo's answer in a batch of three
    is its answer alone, bit for bit."""
    assert colorizer.backend.batch_invariant
    rng = np.random.default_rng(0)
    xs = [rng.uniform(0, 100, (1, 1, 64, 96)).astype(np.float32) for _ in range(3)]
    together = colorizer.network(np.concatenate(xs))
    for i, x in enumerate(xs):
        assert np.array_equal(colorizer.network(x)[0], together[i])


def test_batcher_answers_each_request_with_its_own_slice():
    calls = []
    gate = threading.Event()

    def network(L, hints):
        gate.wait(5)
        calls.append((L.shape, hints is None))
        return np.concatenate([L, L * 2], axis=1)

    b = NetworkBatcher(network, max_batch=3)
    results = {}

    def ask(i: int, shape: tuple[int, int]) -> None:
        L = np.full((1, 1, *shape), float(i), np.float32)
        results[i] = b.run(L)

    threads = [threading.Thread(target=ask, args=(i, (4, 4) if i % 3 else (8, 4))) for i in range(7)]
    for t in threads:
        t.start()
    time.sleep(0.3)  # all seven queued behind the first call
    gate.set()
    for t in threads:
        t.join(5)
    b.close()
    for i, ab in results.items():
        assert ab.shape == (1, 2, *((4, 4) if i % 3 else (8, 4)))
        assert np.all(ab[0, 0] == i) and np.all(ab[0, 1] == 2 * i)
    assert len(results) == 7
    assert all(shape[0] <= 3 for shape, _ in calls)  # never more than max_batch photos
    assert len(calls) < 7  # and some were answered together


def test_batcher_hands_a_network_error_to_every_waiting_worker():
    def network(L, hints):
        raise RuntimeError("backend broke")

    b = NetworkBatcher(network)
    with pytest.raises(RuntimeError, match="backend broke"):
        b.run(np.zeros((1, 1, 4, 4), np.float32))
    b.stop()
    with pytest.raises(Stopped):
        b.run(np.zeros((1, 1, 4, 4), np.float32))
    b.close()


class _FakeColorizer:
    """What run_pipeline needs of a Colorizer: a network and a backend to pick the batch size from."""

    class backend:
        device = "cpu"
        batch_invariant = True

    @staticmethod
    def network(L, hints):
        return np.zeros((L.shape[0], 2, *L.shape[2:]), np.float32)


def test_pixel_budget_bounds_what_is_in_flight():
    """At most as many pixels in flight as the budget allows, whatever the worker count; a photo larger than the
    whole budget runs alone; results in input order when asked."""
    lock = threading.Lock()
    state = {"now": 0, "peak": 0, "alone": True}
    sizes = [40, 40, 40, 250, 40, 40, 10, 10, 10]

    def work(px, stage):
        with lock:
            state["now"] += px
            if px > 100 and state["now"] != px:
                state["alone"] = False
            if px <= 100:
                state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.02)
        with lock:
            state["now"] -= px
        return px

    got = list(run_pipeline(_FakeColorizer(), ((px, px) for px in sizes), work, workers=6, pixels_in_flight=100,
                            ordered=True))
    assert [r for _, r in got] == sizes and [i for i, _ in got] == list(range(len(sizes)))
    assert state["alone"] and 80 <= state["peak"] <= 100  # the budget was used, never exceeded
    b = PixelBudget(100)
    assert b.try_take(80) and not b.try_take(30) and b.try_take(20)
    b.give(80), b.give(20)
    assert b.try_take(1000) and b.used == 100  # larger than everything: taken alone, counted as the whole budget


def test_a_fatal_error_in_a_worker_stops_the_batch():
    """A BaseException in one worker (a bug, or KeyboardInterrupt) is raised in the caller once the workers have
    stopped, and no job starts after it."""
    started = []

    def work(i, stage):
        started.append(i)
        if i == 2:
            raise KeyboardInterrupt
        time.sleep(0.05)
        stage.check()
        return i

    with pytest.raises(KeyboardInterrupt):
        list(run_pipeline(_FakeColorizer(), ((i, 1) for i in range(50)), work, workers=2))
    assert len(started) < 10


def test_colorize_many_is_colorize_in_input_order(tmp_path, grey_image, colorizer):
    """The API: PIL images, arrays and paths in; each result is what Colorizer.colorize gives for that input; a bad
    input is its own one-line error; with outputs, the files are written and no image is held."""
    photos = _photos(tmp_path / "in", grey_image)
    bad = tmp_path / "in" / "broken.jpg"
    bad.write_bytes(b"not a picture")
    inputs = [Image.open(photos[0]), np.asarray(Image.open(photos[1])), str(photos[2]), bad, photos[3]]
    hints = [[(20, 20, "#d02020")], None, None, None, None]
    results = list(colorizer.colorize_many(inputs, hints=hints))
    assert [r.index for r in results] == list(range(5))
    assert not results[3].ok and "not an image" in results[3].error and results[3].image is None
    for r, src, h in zip(results, [photos[0], photos[1], photos[2], None, photos[3]], hints):
        if src is None:
            continue
        with Image.open(src) as im:
            expected = colorizer.colorize(im, hints=h)
        assert r.ok and r.image.mode == expected.mode
        assert np.array_equal(np.asarray(r.image), np.asarray(expected))
    outs = [tmp_path / "out" / f"{i}.jpg" for i in range(2)]
    written = list(colorizer.colorize_many(photos[:2], outputs=outs))
    assert all(r.ok and r.image is None for r in written) and all(p.is_file() for p in outs)
    with pytest.raises(ValueError, match="must match"):
        list(colorizer.colorize_many(photos[:2], outputs=outs[:1]))


def test_rgbx_encodes_to_the_same_bytes():
    """The kernel's RGBX output goes to JPEG and WebP encoders without repacking; the files are those of RGB."""
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    rgbx = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    for fmt in ("JPEG", "WEBP", "PNG", "TIFF"):
        assert encode_image(rgbx, fmt) == encode_image(rgb, fmt), fmt
    with Image.open(io.BytesIO(encode_image(rgbx, "PNG"))) as im:
        assert im.mode == "RGB"


def test_rgbx_kernel_output_is_the_rgb_output_plus_255():
    from runtime.image.geometry import plan_geometry

    rng = np.random.default_rng(1)
    src = rng.integers(0, 256, (70, 90), dtype=np.uint8)
    g = plan_geometry(70, 90, 32, 64)
    ab = rng.uniform(-60, 60, (2, g.net_h, g.net_w)).astype(np.float32)
    rgb = fastcolor.finish_src(src, ab, g)
    rgbx = fastcolor.finish_src(src, ab, g, channels=4)
    assert np.array_equal(rgbx[..., :3], rgb) and np.all(rgbx[..., 3] == 255)


def test_failed_write_removes_only_the_folders_it_made(tmp_path):
    folders = Folders()
    target = tmp_path / "new" / "deeper" / "x.jpg"
    target.parent.parent.mkdir()
    (target.parent.parent / "deeper").mkdir()
    (target.parent / "x.jpg").mkdir()  # a folder where the file should go: the rename fails
    assert "cannot write" in folders.commit(target, b"data")
    assert target.parent.is_dir()  # existed before: stays
    other = tmp_path / "fresh" / "y.jpg"
    assert folders.commit(other, b"data") is None and other.read_bytes() == b"data"
    stop = threading.Event()
    stop.set()
    with pytest.raises(Stopped):
        folders.commit(tmp_path / "late" / "z.jpg", b"data", stop)
    assert not (tmp_path / "late").exists()


def test_batch_size_per_backend():
    """Several photos per network call only where that changes no photo's answer (batch-invariant CPU backends) or
    where the device is a GPU (there the batch is what keeps it busy)."""
    from types import SimpleNamespace

    from runtime.backends.registry import backend_class
    from runtime.image.pipeline import CPU_BATCH, GPU_BATCH, batch_size

    assert batch_size(backend_class("onnxruntime")) == CPU_BATCH > 1
    assert batch_size(backend_class("torch-cpu")) == 1  # torch's CPU convolutions differ in the last bits by batch
    for name in ("torch-cuda", "tensorrt"):
        assert batch_size(backend_class(name)) == GPU_BATCH
    assert batch_size(SimpleNamespace(device="cuda")) == GPU_BATCH


def test_header_reading_never_blocks_or_leaks_the_bomb_limit(tmp_path, grey_image):
    """pixels_of opens regular files only (a named pipe with no writer would block the batch for ever), counts
    16-bit sources 3x, and leaves Pillow's process-wide decompression-bomb limit as it found it."""
    import os

    from runtime.image.pipeline import pixels_of

    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    assert pixels_of(fifo) == 0
    Image.fromarray(grey_image).save(tmp_path / "g.png")
    Image.fromarray(grey_image.astype(np.uint16) * 257).save(tmp_path / "g16.png")
    h, w = grey_image.shape
    limit = Image.MAX_IMAGE_PIXELS
    assert pixels_of(tmp_path / "g.png") == h * w and pixels_of(tmp_path / "g16.png") == 3 * h * w
    assert Image.MAX_IMAGE_PIXELS == limit


def test_colorize_many_takes_arrays_of_any_depth_and_in_memory_hints_for_files(tmp_path, grey_image, colorizer):
    g16 = grey_image.astype(np.uint16) * 257
    rgb16 = np.dstack([g16, g16, g16])
    r = next(colorizer.colorize_many([rgb16]))
    assert r.ok and r.image.size == (grey_image.shape[1], grey_image.shape[0])
    expected = (np.clip(colorizer.colorize_array(rgb16), 0, 1) * 255 + 0.5).astype(np.uint8)
    assert np.array_equal(np.asarray(r.image), expected)
    src = tmp_path / "a.jpg"
    exif = Image.Exif()
    exif[0x010E] = "a description"
    Image.fromarray(grey_image).save(src, exif=exif)
    pts = [(20, 20, "#d02020", 6)]
    out = tmp_path / "out" / "a.jpg"
    assert next(colorizer.colorize_many([src], outputs=[out], hints=[pts])).ok
    with Image.open(out) as im:  # the command line's file path: EXIF kept, hints followed
        assert im.getexif().get(0x010E) == "a description"
        expected = colorizer.colorize(Image.open(src), hints=pts)
        assert np.abs(np.asarray(im, np.int16) - np.asarray(expected, np.int16)).mean() < 2  # JPEG round trip
