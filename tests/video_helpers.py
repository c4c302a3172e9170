"""Helpers for the video tests: tiny generated clips (PyAV) and a numpy stand-in colorizer.

The stand-in implements the Colorizer step functions of docs/CONTRACTS.md (prepare / predict_ab /
finish) with a fixed function of L, so the video plumbing can be tested in milliseconds and
deterministically; the real model is exercised separately where the runtime provides it.
"""
from __future__ import annotations

from fractions import Fraction

import av
import numpy as np

from runtime.image.color import lab_to_rgb
from runtime.video import DEFAULT_ASS_HEADER as ASS_HEADER


class FakeColorizer:
    """ab = a fixed, clearly coloured function of L, predicted at ``render`` px on the long side."""

    def __init__(self, render: int = 64):
        self.render = render
        self.calls: list[int] = []  # batch sizes seen by predict_ab

    def prepare(self, L_full: np.ndarray):
        h, w = L_full.shape
        step = max(1, max(h, w) // self.render)
        net = L_full[::step, ::step]
        return net[None, None].astype(np.float32), (h, w, step)

    def predict_ab(self, net_L: np.ndarray) -> np.ndarray:
        self.calls.append(net_L.shape[0])
        L = net_L[:, 0]
        return np.stack([(L - 50) * 0.6, 30 - 0.3 * L], axis=1).astype(np.float32)

    def finish(self, L_full, ab_net, geom, saturation: float = 1.0):
        h, w, step = geom
        ab = np.repeat(np.repeat(ab_net, step, axis=1), step, axis=2)[:, :h, :w] * saturation
        lab = np.concatenate([L_full[None], ab], axis=0).transpose(1, 2, 0)
        return lab_to_rgb(lab)


def grey_pattern(i: int, w: int, h: int) -> np.ndarray:
    """A moving greyscale pattern (uint8 RGB, R = G = B) for frame ``i``."""
    y, x = np.mgrid[0:h, 0:w]
    v = 128 + 90 * np.sin((x + 3 * i) / 7.0) * np.cos((y - 2 * i) / 9.0)
    g = np.clip(v, 0, 255).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=2)


def write_clip(
    path,
    n_frames: int = 12,
    size: tuple[int, int] = (96, 64),
    fps: int = 12,
    codec: str = "libx264",
    audio: str | None = "aac",
    audio_rate: int = 48000,
    pts: list[int] | None = None,
    time_base: Fraction | None = None,
    rotation: int | None = None,
    subtitle: bool = False,
) -> None:
    """Write a small greyscale clip, optionally with a sine-tone audio track, custom (VFR) timestamps,
    a display rotation and a text subtitle stream."""
    w, h = size
    out = av.open(str(path), "w")
    vs = out.add_stream(codec, rate=fps)
    vs.width, vs.height = w, h
    vs.pix_fmt = "yuv420p" if codec != "ffv1" else "yuv444p"
    if time_base is not None:
        vs.codec_context.time_base = time_base
        vs.time_base = time_base
    if rotation is not None:
        vs.set_display_rotation(rotation)
    as_ = None
    if audio:
        as_ = out.add_stream(audio, rate=audio_rate)
        as_.layout = "mono"
    ss = None
    if subtitle:
        ss = out.add_stream("srt")
        ss.codec_context.subtitle_header = ASS_HEADER
        ss.time_base = Fraction(1, 1000)
    for i in range(n_frames):
        f = av.VideoFrame.from_ndarray(grey_pattern(i, w, h), format="rgb24")
        if pts is not None:
            f.pts, f.time_base = pts[i], time_base
        else:
            f.pts, f.time_base = i, Fraction(1, fps)
        out.mux(vs.encode(f))
    out.mux(vs.encode(None))
    if as_ is not None:
        seconds = n_frames / fps
        n = int(seconds * audio_rate)
        t = np.arange(n) / audio_rate
        tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        chunk = 1024
        for k in range(0, n, chunk):
            samples = tone[k:k + chunk]
            fmt = "fltp" if audio in ("aac", "libopus", "libmp3lame") else "s16"
            data = samples[None] if fmt == "fltp" else (samples * 32767).astype(np.int16)[None]
            af = av.AudioFrame.from_ndarray(data, format=fmt, layout="mono")
            af.sample_rate, af.pts, af.time_base = audio_rate, k, Fraction(1, audio_rate)
            out.mux(as_.encode(af))
        out.mux(as_.encode(None))
    if ss is not None:
        from av.subtitles.subtitle import SubtitleSet

        for k in range(2):
            sub = SubtitleSet.create(text=f"{k},0,Default,,0,0,0,,line {k}".encode(), start=0, end=400, pts=k * 500)
            pkt = ss.codec_context.encode_subtitle(sub)
            pkt.pts = pkt.dts = k * 500
            pkt.duration = 400
            pkt.time_base = Fraction(1, 1000)
            pkt.stream = ss
            out.mux(pkt)
    out.close()


def probe(path) -> dict:
    """Frame count, timestamps (s), size, rotation, audio packets and mean chroma of a file."""
    c = av.open(str(path))
    vs = c.streams.video[0]
    info = {"times": [], "chroma": [], "size": (vs.codec_context.width, vs.codec_context.height),
            "rotation": 0, "audio": [], "subs": 0, "rate": vs.average_rate,
            "streams": [s.type for s in c.streams]}
    for packet in c.demux():
        if packet.stream.type == "audio" and packet.size:
            info["audio"].append((packet.pts, bytes(packet)))
        elif packet.stream.type == "subtitle" and packet.size:
            info["subs"] += 1
        elif packet.stream.type == "video":
            for f in packet.decode():
                info["times"].append(float(f.pts * f.time_base))
                info["rotation"] = f.rotation
                rgb = f.to_ndarray(format="rgb24").astype(np.float32)
                info["chroma"].append(float(np.abs(rgb - rgb.mean(axis=2, keepdims=True)).mean()))
    info["duration"] = float(c.duration / 1e6) if c.duration else None
    c.close()
    return info
