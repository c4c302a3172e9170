"""Video pipeline on small generated clips: frames, timestamps, audio/subtitles, rotation, sizes,
previews, bad input, interruption; and the CLI end to end with the tiny real model."""
from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from process_helpers import colorize_gan_command, interrupt_when
from runtime.video import VideoError, VideoOptions, colorize_video
from video_helpers import FakeColorizer, grey_pattern, probe, write_clip

QUIET = dict(progress=False)
VFR_PTS = [0, 40, 80, 200, 240, 500, 540, 580, 700, 1000]  # ms: bursts and gaps


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def audio_payload(path: Path) -> bytes:
    with av.open(str(path)) as c:
        return b"".join(bytes(p) for p in c.demux(audio=0) if p.size)


@pytest.fixture
def mp4_with_audio(tmp_path) -> Path:
    src = tmp_path / "in.mp4"
    write_clip(src, n_frames=14, fps=12, audio="aac")
    return src


def test_mp4_with_audio_roundtrip(tmp_path, mp4_with_audio):
    dst = tmp_path / "out.mp4"
    fake = FakeColorizer()
    result = colorize_video(fake, mp4_with_audio, dst, VideoOptions(**QUIET))
    a, b = probe(mp4_with_audio), probe(dst)
    assert result.frames == len(b["times"]) == 14
    assert b["times"] == pytest.approx(a["times"], abs=1e-6)
    assert b["rate"] == a["rate"] == 12
    assert b["duration"] == pytest.approx(a["duration"], abs=1e-3)
    assert b["size"] == a["size"] == (96, 64)
    # Audio: same packets, same times, same bytes (copied, not re-encoded).
    assert result.copied == ["#1 audio (aac)"] and not result.reencoded and not result.dropped
    assert b["audio"] == a["audio"] and len(a["audio"]) > 10
    # Colour: the input is grey, the output is not.
    assert max(a["chroma"]) < 1.0 and min(b["chroma"]) > 5.0
    assert fake.calls[:3] == [4, 4, 4]  # frames reach the model in batches
    assert leftovers(tmp_path, {"in.mp4", "out.mp4"}) == []


def test_vfr_rotation_subtitles_into_mp4(tmp_path):
    src, dst = tmp_path / "vfr.mkv", tmp_path / "out.mp4"
    write_clip(src, n_frames=10, audio="pcm_s16le", pts=VFR_PTS, time_base=Fraction(1, 1000), rotation=90, subtitle=True)
    logs: list[str] = []
    result = colorize_video(FakeColorizer(), src, dst, VideoOptions(**QUIET), log=logs.append)
    a, b = probe(src), probe(dst)
    assert b["times"] == pytest.approx([t / 1000 for t in VFR_PTS], abs=1e-6)
    assert b["duration"] == pytest.approx(a["duration"], abs=2e-3)  # last frame shown as long as before
    assert b["rotation"] == a["rotation"] == 90
    assert audio_payload(dst) == audio_payload(src)  # PCM copied bit for bit
    # SRT cannot go into MP4 as is: converted to mov_text, and the user is told.
    assert result.reencoded == ["#2 subtitle (srt)"] and "subtitle" in b["streams"]
    assert any("re-encoding" in line for line in logs)


def test_mkv_copies_everything(tmp_path):
    src, dst = tmp_path / "vfr.mkv", tmp_path / "out.mkv"
    write_clip(src, n_frames=10, audio="pcm_s16le", pts=VFR_PTS, time_base=Fraction(1, 1000), subtitle=True)
    result = colorize_video(FakeColorizer(), src, dst, VideoOptions(**QUIET))
    a, b = probe(src), probe(dst)
    assert sorted(result.copied) == ["#1 audio (pcm_s16le)", "#2 subtitle (srt)"]
    assert b["times"] == a["times"] and b["audio"] == a["audio"] and b["subs"] == a["subs"] == 2


def test_audio_reencoded_when_container_cannot_hold_it(tmp_path):
    src, dst = tmp_path / "in.mkv", tmp_path / "out.webm"
    write_clip(src, n_frames=8, audio="aac")
    result = colorize_video(FakeColorizer(), src, dst, VideoOptions(codec="libvpx-vp9", **QUIET))
    b = probe(dst)
    assert result.reencoded == ["#1 audio (aac)"]
    assert len(b["times"]) == 8 and len(b["audio"]) > 5


def test_odd_size_padded_or_kept(tmp_path):
    src = tmp_path / "odd.mkv"
    write_clip(src, n_frames=5, size=(95, 63), codec="ffv1", audio=None)
    logs: list[str] = []
    colorize_video(FakeColorizer(), src, tmp_path / "pad.mp4", VideoOptions(**QUIET), log=logs.append)
    assert probe(tmp_path / "pad.mp4")["size"] == (96, 64)
    assert any("odd" in line for line in logs)
    colorize_video(FakeColorizer(), src, tmp_path / "keep.mp4", VideoOptions(pix_fmt="yuv444p", **QUIET))
    assert probe(tmp_path / "keep.mp4")["size"] == (95, 63)


def test_start_and_duration_preview(tmp_path):
    src, dst = tmp_path / "in.mp4", tmp_path / "cut.mp4"
    write_clip(src, n_frames=36, fps=12, audio="aac")
    colorize_video(FakeColorizer(), src, dst, VideoOptions(start=1.0, duration=1.0, **QUIET))
    b = probe(dst)
    assert len(b["times"]) == 12
    assert b["times"][0] == pytest.approx(0.0, abs=1e-6)
    assert b["duration"] == pytest.approx(1.0, abs=0.05)
    assert 40 <= len(b["audio"]) <= 50  # ~1 s of 1024-sample AAC packets at 48 kHz


def test_stabilize_option_changes_output_only_when_on(tmp_path, mp4_with_audio):
    class Noisy(FakeColorizer):
        def __init__(self):
            super().__init__()
            self.rng = np.random.default_rng(0)

        def predict_ab(self, net_L):
            ab = super().predict_ab(net_L)
            return ab + self.rng.normal(0, 8, ab.shape).astype(np.float32)

    def frames(path):
        with av.open(str(path)) as c:
            return [f.to_ndarray(format="rgb24").astype(np.float32) for f in c.decode(video=0)]

    colorize_video(Noisy(), mp4_with_audio, tmp_path / "off.mp4", VideoOptions(stabilize=False, **QUIET))
    colorize_video(Noisy(), mp4_with_audio, tmp_path / "on.mp4", VideoOptions(strength=0.8, **QUIET))
    off, on = frames(tmp_path / "off.mp4"), frames(tmp_path / "on.mp4")
    assert np.abs(off[0] - on[0]).mean() < 3.0  # first frame: nothing to blend with (codec noise only)
    # later frames: the stabilized output moves less from frame to frame
    d_off = np.mean([np.abs(b - a).mean() for a, b in zip(off[4:], off[5:])])
    d_on = np.mean([np.abs(b - a).mean() for a, b in zip(on[4:], on[5:])])
    assert d_on < d_off


# -- bad input ----------------------------------------------------------------------------------
def expect_error(tmp_path, src, match, opts=None):
    dst = tmp_path / "out.mp4"
    before = set(p.name for p in tmp_path.iterdir())
    with pytest.raises(VideoError, match=match) as info:
        colorize_video(FakeColorizer(), src, dst, opts or VideoOptions(**QUIET))
    assert "\n" not in str(info.value)
    assert set(p.name for p in tmp_path.iterdir()) == before  # no output, no temp file


def test_not_a_video(tmp_path):
    src = tmp_path / "notes.mp4"
    src.write_text("this is not a video\n" * 50)
    expect_error(tmp_path, src, "cannot be read as a video")


@pytest.mark.parametrize("name", ["photo.jpg", "photo.png"])
def test_still_image_is_not_a_video(tmp_path, name):
    from PIL import Image

    src = tmp_path / name
    Image.fromarray(np.full((32, 48), 120, np.uint8)).save(src)
    expect_error(tmp_path, src, "is a still image, not a video")


def test_missing_file(tmp_path):
    expect_error(tmp_path, tmp_path / "nope.mp4", "no such file")


def test_no_video_stream(tmp_path):
    src = tmp_path / "tone.m4a"
    with av.open(str(src), "w") as out:
        s = out.add_stream("aac", rate=48000)
        s.layout = "mono"
        f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        f.sample_rate, f.pts = 48000, 0
        out.mux(s.encode(f))
        out.mux(s.encode(None))
    expect_error(tmp_path, src, "no video stream")


def test_zero_frames(tmp_path):
    src = tmp_path / "empty.avi"  # AVI keeps a video stream with no frames in it
    with av.open(str(src), "w") as out:
        s = out.add_stream("mpeg4", rate=10)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        out.start_encoding()
    expect_error(tmp_path, src, "no video frames")


@pytest.mark.parametrize("name,codec", [("cut.avi", "mpeg4"), ("cut.mkv", "libx264"), ("cut.mp4", "libx264")])
def test_truncated(tmp_path, name, codec):
    full = tmp_path / ("full" + Path(name).suffix)
    write_clip(full, n_frames=60, fps=12, codec=codec, audio=None, size=(160, 96))
    data = full.read_bytes()
    src = tmp_path / name
    src.write_bytes(data[: len(data) // 2])
    full.unlink()
    expect_error(tmp_path, src, "truncated|cannot be read")


def test_start_after_end(tmp_path, mp4_with_audio):
    expect_error(tmp_path, mp4_with_audio, "no video frames at or after", VideoOptions(start=100, **QUIET))


def test_bad_options(tmp_path, mp4_with_audio):
    expect_error(tmp_path, mp4_with_audio, "strength", VideoOptions(strength=2, **QUIET))
    expect_error(tmp_path, mp4_with_audio, "no CRF", VideoOptions(codec="mpeg4", crf=5, **QUIET))


def test_interrupt_leaves_no_file(tmp_path, mp4_with_audio):
    class Interrupting(FakeColorizer):
        def predict_ab(self, net_L):
            if len(self.calls) == 2:
                raise KeyboardInterrupt
            return super().predict_ab(net_L)

    dst = tmp_path / "out.mp4"
    with pytest.raises(KeyboardInterrupt):
        colorize_video(Interrupting(), mp4_with_audio, dst, VideoOptions(**QUIET))
    assert leftovers(tmp_path, {"in.mp4"}) == []


def test_existing_output_replaced_atomically(tmp_path, mp4_with_audio):
    dst = tmp_path / "out.mp4"
    dst.write_bytes(b"old")
    colorize_video(FakeColorizer(), mp4_with_audio, dst, VideoOptions(**QUIET))
    assert len(probe(dst)["times"]) == 14


# -- CLI, with the tiny real model ----------------------------------------------------------------
def cli(argv):
    from runtime.video.cli import main

    return main(["video", *map(str, argv)])


def test_cli_end_to_end_with_model(tmp_path, mp4_with_audio, tiny_bundle, capsys):
    dst = tmp_path / "out.mp4"
    rc = cli([mp4_with_audio, "-o", dst, "--model", tiny_bundle, "--backend", "cpu", "--no-progress",
              "--render-size", "64", "--duration", "0.5"])
    err = capsys.readouterr().err
    assert rc == 0, err
    b = probe(dst)
    assert len(b["times"]) == 6 and min(b["chroma"]) > 1.0 and b["audio"]
    assert "6 frames" in err


def test_cli_no_mirror_reaches_the_colorizer(tmp_path, mp4_with_audio, tiny_bundle, capsys, monkeypatch):
    from runtime.image.colorizer import Colorizer

    seen = []
    load = Colorizer.load
    monkeypatch.setattr(Colorizer, "load", classmethod(lambda cls, *a, **k: (seen.append(k["mirror"]), load(*a, **k))[1]))
    for flag in ((), ("--no-mirror",)):
        rc = cli([mp4_with_audio, "-o", tmp_path / f"m{len(flag)}.mp4", "--model", tiny_bundle, "--backend", "cpu",
                  "--no-progress", "--render-size", "64", "--duration", "0.2", *flag])
        assert rc == 0, capsys.readouterr().err
    assert seen == [True, False]


def test_cli_bad_input_one_line(tmp_path, capsys):
    src = tmp_path / "x.mp4"
    src.write_bytes(b"\x00" * 1000)
    rc = cli([src, "-o", tmp_path / "y.mp4", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.count("\n") == 1 and err.startswith("colorize-gan video: error:") and "Traceback" not in err
    assert not (tmp_path / "y.mp4").exists()


def test_cli_refuses_to_overwrite(tmp_path, mp4_with_audio, capsys):
    dst = tmp_path / "out.mp4"
    dst.write_bytes(b"keep me")
    assert cli([mp4_with_audio, "-o", dst, "--no-progress"]) == 1
    assert dst.read_bytes() == b"keep me"
    assert "exists" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_ctrl_c_leaves_nothing(tmp_path):
    """Ctrl-C to a real `colorize-gan video` (embedded model, progress bar on) once it is writing: exit 130, one
    line of its own after the progress bar, no traceback, neither the output nor its hidden temp file."""
    src = tmp_path / "in.mp4"
    write_clip(src, n_frames=240, fps=24, size=(160, 96), audio="aac")
    out = tmp_path / "out"
    out.mkdir()
    cmd = colorize_gan_command() + ["video", str(src), "-o", str(out / "colour.mp4")]

    def some_frames_done(err: str) -> bool:  # the progress bar says "N/240"; the temp file exists by then
        done = [int(n) for n in re.findall(r"(\d+)/240", err)]
        return bool(done) and max(done) >= 24 and any(out.iterdir())

    code, _, err = interrupt_when(cmd, some_frames_done)
    assert code == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    lines = [ln for ln in err.splitlines() if "interrupted" in ln]
    assert lines == [f"colorize-gan video: interrupted; {out / 'colour.mp4'} was not written"], err
    assert list(out.iterdir()) == []


def test_cli_failure_creates_no_folder(tmp_path, capsys):
    (tmp_path / "song.m4a").write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(100))
    rc = cli([tmp_path / "song.m4a", "-o", tmp_path / "newdir" / "out.mp4", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["song.m4a"]


# -- the three threads of the video pipeline (runtime/video/stages.py) -------------------------------------------

def test_prefetch_keeps_order_and_hands_over_the_producers_error():
    from runtime.video.stages import Prefetch

    assert list(Prefetch(range(50), depth=3)) == list(range(50))

    def broken():
        yield 1
        raise ValueError("truncated input")

    p = Prefetch(broken())
    got = []
    with pytest.raises(ValueError, match="truncated input"):
        for item in p:
            got.append(item)
    assert got == [1]
    p.close()
    endless = Prefetch(iter(int, 1), depth=2)  # an endless producer: close() stops it while it waits to put
    next(iter(endless))
    endless.close()
    assert not endless._thread.is_alive()


def test_serial_runs_in_order_and_raises_a_failure_at_the_next_call():
    import threading

    from runtime.video.stages import Serial

    done, threads = [], set()
    s = Serial(depth=2)
    for i in range(20):
        s.submit(lambda i=i: (done.append(i), threads.add(threading.get_ident())))
    s.finish()
    assert done == list(range(20)) and threading.get_ident() not in threads and len(threads) == 1

    def fail():
        raise OSError("disk full")

    s.submit(fail)
    s.submit(lambda: done.append("after"))  # dropped: it follows a failure
    with pytest.raises(OSError, match="disk full"):
        s.finish()
    s.close()
    assert "after" not in done


# -- key frames and references (issue 19) ---------------------------------------------------------------------

def _two_shot_clip(path, colour_frame0, second=None):
    """Shot A (frames 0-7): the grey of a red-and-blue scene, drifting; shot B (8-15): a dark, different pattern,
    or the grey of ``second`` (a colour picture of the same size). FFV1, lossless, so two runs can be compared frame by
    frame."""
    from runtime.image.color import lab_to_rgb, rgb_to_lab

    def grey_of(rgb):
        L = rgb_to_lab(rgb.astype(np.float32) / 255)[..., 0]
        return (lab_to_rgb(np.stack([L, 0 * L, 0 * L], -1), clip=True)[..., 0] * 255 + 0.5).astype(np.uint8)

    grey = grey_of(colour_frame0)
    grey_b = None if second is None else grey_of(second)
    h, w = grey.shape
    with av.open(str(path), "w") as out:
        vs = out.add_stream("ffv1", rate=12)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv444p"
        for i in range(16):
            g = np.roll(grey, i, axis=1) if i < 8 else (grey_pattern(i, w, h)[..., 0] // 3) if grey_b is None else grey_b
            f = av.VideoFrame.from_ndarray(np.repeat(g[..., None], 3, axis=2), format="rgb24")
            f.pts, f.time_base = i, Fraction(1, 12)
            out.mux(vs.encode(f))
        out.mux(vs.encode(None))


def _decoded(path):
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def test_a_key_frame_colours_its_shot_and_stops_at_the_cut(tmp_path, capsys):
    from PIL import Image

    from runtime.image.color import rgb_to_lab

    rng = np.random.default_rng(0)
    scene = np.zeros((64, 96, 3), np.float32)
    scene[:, :48] = (190, 50, 50)
    scene[:, 48:] = (60, 90, 190)
    scene = np.clip(scene + rng.normal(0, 4, scene.shape), 0, 255).astype(np.uint8)
    clip, key = tmp_path / "clip.mkv", tmp_path / "key.png"
    _two_shot_clip(clip, scene)
    Image.fromarray(scene).save(key)
    common = ["--codec", "ffv1", "--pix-fmt", "yuv444p", "--no-progress", "--backend", "cpu"]
    assert cli([clip, "-o", tmp_path / "auto.mkv", *common]) == 0
    assert cli([clip, "-o", tmp_path / "key.mkv", "--keyframe", f"0:{key}", *common]) == 0
    assert "1 key frames" in capsys.readouterr().err
    auto, keyed = _decoded(tmp_path / "auto.mkv"), _decoded(tmp_path / "key.mkv")
    for i in (1, 4, 7):  # shot A: the left half red, as the key frame says
        a = rgb_to_lab(keyed[i][:, 8:40].astype(np.float32) / 255)[..., 1].mean()
        assert a > 25, (i, a)
        assert abs(a - rgb_to_lab(scene[:, 8:40].astype(np.float32) / 255)[..., 1].mean()) < \
            abs(rgb_to_lab(auto[i][:, 8:40].astype(np.float32) / 255)[..., 1].mean() - a)
    for i in range(8, 16):  # shot B: after the cut, exactly the automatic colour
        assert np.array_equal(keyed[i], auto[i]), i


def test_a_clip_reference_is_compared_with_each_shot_and_key_frames_are_not(tmp_path):
    """The scene gate in films: the clip's --reference is compared with each frame as a whole, and frames that read
    as another kind of scene stay automatic; key frames belong to their shot and are never compared (their colour
    comes through whatever the comparison would say)."""
    from PIL import Image

    from runtime import Colorizer
    from runtime.backends.scene import SceneView

    rng = np.random.default_rng(0)
    scene = np.zeros((64, 96, 3), np.float32)
    scene[:, :48] = (190, 50, 50)
    scene[:, 48:] = (60, 90, 190)
    scene = np.clip(scene + rng.normal(0, 4, scene.shape), 0, 255).astype(np.uint8)
    second = scene.copy()
    second[:32] = 245  # shot B: the same red and blue under a white band (a cut: the histogram jumps)
    clip, ref = tmp_path / "clip.mkv", Image.fromarray(scene)
    _two_shot_clip(clip, scene, second)
    opts = dict(codec="ffv1", pix_fmt="yuv444p", **QUIET)
    with Colorizer.load(None, backend="onnxruntime") as c:
        real = c.scene_encoder()
        assert real is not None
        colorize_video(c, clip, tmp_path / "auto.mkv", VideoOptions(**opts))
        auto = _decoded(tmp_path / "auto.mkv")
        colorize_video(c, clip, tmp_path / "ref.mkv", VideoOptions(reference=ref, **opts))
        with_ref = _decoded(tmp_path / "ref.mkv")
        assert all(not np.array_equal(auto[i], with_ref[i]) for i in range(8))  # shot A took its colour
        seen = []

        def away(net_L):  # the first picture seen (the reference) as it is; every frame as another kind of scene
            v = real(net_L)
            seen.append(1)
            return v if len(seen) == 1 else SceneView(np.full_like(v.vector, -1 / np.sqrt(v.vector.size)), v.parts)

        c.scene_encoder = lambda: away
        colorize_video(c, clip, tmp_path / "away.mkv", VideoOptions(reference=ref, **opts))
        assert all(np.array_equal(a, b) for a, b in zip(auto, _decoded(tmp_path / "away.mkv")))
        seen.clear()
        colorize_video(c, clip, tmp_path / "key.mkv", VideoOptions(keyframes={0: ref}, **opts))
        keyed = _decoded(tmp_path / "key.mkv")
        assert all(not np.array_equal(keyed[i], auto[i]) for i in range(8))  # shot A coloured, not compared
        assert all(np.array_equal(keyed[i], auto[i]) for i in range(8, 16))  # shot B: after the cut, automatic


def test_export_frame_and_keyframe_arguments(tmp_path, capsys):
    clip = tmp_path / "c.mkv"
    write_clip(clip, n_frames=6, codec="ffv1", audio=None)
    assert cli([clip, "--export-frame", "4", "-o", tmp_path / "f4.png"]) == 0
    from PIL import Image

    with Image.open(tmp_path / "f4.png") as im:
        got = np.asarray(im.convert("RGB"))
    want = _decoded(clip)[4]
    assert got.shape == want.shape and np.abs(got.astype(int) - want.astype(int)).max() <= 2  # luma of a grey frame
    capsys.readouterr()
    assert cli([clip, "--export-frame", "6", "-o", tmp_path / "f6.png"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no frame 6 (the clip has 6 frames)" in err and not (tmp_path / "f6.png").exists()
    for bad, msg in (("x:key.png", "wants N:IMAGE"), ("3", "wants N:IMAGE"), (f"2:{tmp_path / 'none.png'}", "no such file")):
        assert cli([clip, "-o", tmp_path / "o.mkv", "--keyframe", bad]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and msg in err, err
    (tmp_path / "bad.png").write_text("no")
    assert cli([clip, "-o", tmp_path / "o.mkv", "--keyframe", f"0:{tmp_path / 'bad.png'}", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--keyframe 0:" in err and not (tmp_path / "o.mkv").exists()


def test_export_frame_is_upright_as_players_show_it(tmp_path, capsys):
    """A phone clip stored sideways with a display rotation: the exported frame is turned as a player turns it
    (PyAV's rotation is counter-clockwise, like np.rot90's)."""
    from PIL import Image

    clip = tmp_path / "r.mp4"
    write_clip(clip, n_frames=3, size=(96, 64), audio=None, rotation=90)
    with av.open(str(clip)) as c:
        frame = next(c.decode(video=0))
        assert frame.rotation == 90
    assert cli([clip, "--export-frame", "1", "-o", tmp_path / "f.png"]) == 0
    with Image.open(tmp_path / "f.png") as im:
        got = np.asarray(im.convert("L")).astype(int)
    assert got.shape == (96, 64)  # width and height swapped
    with av.open(str(clip)) as c:
        second = [f.to_ndarray(format="gray") for f in c.decode(video=0)][1]
    assert np.abs(got - np.rot90(second).astype(int)).max() <= 1
    assert np.abs(got - np.rot90(second, -1).astype(int)).mean() > 2  # the picture is not symmetric: the turn's direction shows
    capsys.readouterr()


def test_export_frame_into_a_missing_folder_is_one_line(tmp_path, capsys):
    clip = tmp_path / "c.mkv"
    write_clip(clip, n_frames=3, codec="ffv1", audio=None)
    assert cli([clip, "--export-frame", "1", "-o", tmp_path / "nodir" / "f.png"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "output folder does not exist" in err and not (tmp_path / "nodir").exists()
