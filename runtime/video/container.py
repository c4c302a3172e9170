"""Container and stream plumbing for runtime/video/pipeline.py: everything that talks to FFmpeg about files.

Opening and checking the input (not a video, no video stream, a still image), demuxing it in order
with truncation detection, estimating its frame count, the output video encoder (codec, pixel
format, padding to legal sizes, quality options, timestamps, display matrix), the audio / subtitle
passthrough, and the hidden temp path the output is written to before its atomic rename.

What it keeps from the input: resolution, frame count, every frame's timestamp (so variable frame
rate survives), the display matrix (rotation / flips), the sample aspect ratio, and the audio and
subtitle streams (packets copied as they are where the output container can hold the codec, else
decoded and re-encoded to the container's default, and never dropped without a warning).
"""
from __future__ import annotations

import math
import os
import uuid
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .options import VideoError, VideoOptions  # noqa: F401  (VideoError is raised here too)

# Pixel formats whose chroma planes are subsampled, by (horizontal, vertical) factor: encoders
# reject odd sizes in the subsampled directions (H.264 4:2:0 needs even width and height).
_SUBSAMPLING = {"yuv420p": (2, 2), "yuvj420p": (2, 2), "nv12": (2, 2), "nv21": (2, 2),
                "yuv422p": (2, 1), "yuvj422p": (2, 1), "yuv420p10le": (2, 2), "yuv422p10le": (2, 1)}

# Containers whose muxer takes mov_text subtitles although FFmpeg reports no default subtitle codec.
_MOV_TEXT_FORMATS = ("mp4", "mov", "ipod", "3gp")


# FFmpeg's default ASS header (styles) for text subtitles that come without one.
DEFAULT_ASS_HEADER = (
    b"[Script Info]\nScriptType: v4.00+\nPlayResX: 384\nPlayResY: 288\n\n[V4+ Styles]\n"
    b"Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, "
    b"Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, "
    b"MarginL, MarginR, MarginV, Encoding\n"
    b"Style: Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,0\n\n"
    b"[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
)


def _describe(stream: Any) -> str:
    name = stream.codec_context.name if stream.codec_context is not None else "?"
    return f"#{stream.index} {stream.type} ({name})"


def _open_input(path: str):
    import av

    if not os.path.exists(path):
        raise VideoError(f"{path}: no such file")
    if os.path.isdir(path):
        raise VideoError(f"{path}: is a directory, not a video file")
    try:
        container = av.open(path, metadata_errors="replace")
    except av.error.FFmpegError as exc:
        raise VideoError(f"{path}: cannot be read as a video: not a video file, or damaged/truncated "
                         f"(FFmpeg: {exc.strerror or exc})") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: has no video stream")
    fmt = container.format.name
    if fmt == "image2" or fmt.endswith("_pipe"):  # FFmpeg's still-image demuxers read a photo as a 1-frame video
        container.close()
        raise VideoError(f"{path}: is a still image, not a video: colorize it with 'colorize-gan {os.path.basename(path)} -o OUTPUT'")
    return container


def _temp_path(dst: Path) -> Path:
    # Same folder (so the final rename is atomic), hidden, and the real suffix kept so that FFmpeg
    # picks the container from it.
    return dst.with_name(f".{dst.stem}.{os.getpid()}-{uuid.uuid4().hex[:8]}.partial{dst.suffix}")


def _display_matrix(frame: Any) -> list[int] | None:
    for sd in frame.side_data:
        if getattr(sd.type, "name", str(sd.type)).upper() == "DISPLAYMATRIX":
            return np.frombuffer(bytes(sd), dtype="<i4")[:9].tolist()
    return None


def _quarter_turns(m: list[int] | None) -> int:
    """Counter-clockwise quarter turns a player applies for display matrix ``m`` (FFmpeg's av_display_rotation_get,
    rounded); 0 for none, and for a mirrored matrix (flips are left as stored)."""
    if m is None or m[0] * m[4] - m[1] * m[3] < 0:
        return 0
    return int(round(-math.degrees(math.atan2(m[1], m[0])) / 90)) % 4


def _to_seconds(value: int | None, time_base: Fraction | None) -> float | None:
    if value is None or time_base is None:
        return None
    return float(value * time_base)


class _VideoWriter:
    """Owns the output video stream: encoder setup, padding to legal sizes, timestamps."""

    def __init__(self, out: Any, in_stream: Any, first: Any, opts: VideoOptions, log: Callable[[str], None]):
        import av

        codec = opts.codec or out.default_video_codec
        if not codec or codec == "none":
            raise VideoError(f"the {out.format.name} container has no default video codec; pass --codec")
        try:
            self.stream = out.add_stream(codec, rate=in_stream.average_rate or in_stream.guessed_rate or 25)
        except (ValueError, av.error.FFmpegError) as exc:
            raise VideoError(f"cannot encode {codec!r} into {out.format.name}: {exc}") from None
        cc = self.stream.codec_context
        formats = [f.name for f in (cc.codec.video_formats or ())]
        pix_fmt = opts.pix_fmt or ("yuv420p" if not formats or "yuv420p" in formats else formats[0])
        if formats and pix_fmt not in formats:
            raise VideoError(f"encoder {cc.name} cannot take pixel format {pix_fmt}; it takes {', '.join(formats)}")
        sx, sy = _SUBSAMPLING.get(pix_fmt, (1, 1))
        self.width, self.height = first.width, first.height
        self.pad = (-self.width % sx, -self.height % sy)
        if any(self.pad):
            log(f"note: {self.width}x{self.height} has an odd side, which {pix_fmt} cannot encode; padding to "
                f"{self.width + self.pad[0]}x{self.height + self.pad[1]} by repeating the edge "
                f"(--pix-fmt yuv444p keeps the exact size but fewer players handle it)")
        self.stream.width, self.stream.height = self.width + self.pad[0], self.height + self.pad[1]
        self.stream.pix_fmt = pix_fmt
        # Timestamps are copied from the input, so the encoder counts in the input's time base.
        self.time_base = in_stream.time_base or Fraction(1, 1000)
        cc.time_base = self.time_base
        self.stream.time_base = self.time_base
        if in_stream.sample_aspect_ratio:
            cc.sample_aspect_ratio = in_stream.sample_aspect_ratio
        # We convert RGB->YUV ourselves with BT.709 and say so, rather than leave players to guess.
        cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range = 1, 1, 1, 1
        private = {o.name for o in cc.supported_options.private} if cc.supported_options else set()
        options: dict[str, str] = {}
        if opts.crf is not None:
            if "crf" not in private:
                raise VideoError(f"encoder {cc.name} has no CRF mode; use --bitrate instead of --crf")
            options["crf"] = f"{opts.crf:g}"
        elif "crf" in private and opts.bitrate is None:
            options["crf"] = "18" if cc.name in ("libx264", "libx265") else "30"
        if opts.bitrate is not None:
            try:
                cc.bit_rate = _parse_bitrate(opts.bitrate)
            except ValueError as exc:
                raise VideoError(str(exc)) from None
        if opts.preset is not None:
            if "preset" not in private:
                raise VideoError(f"encoder {cc.name} has no --preset option")
            options["preset"] = opts.preset
        if cc.name.startswith("libvpx") and "crf" in options:
            cc.bit_rate = 0  # VP9 constant quality needs b=0
        cc.options = options
        matrix = _display_matrix(first)
        if matrix is not None:
            self.stream.set_display_matrix(matrix)
        self.pix_fmt = pix_fmt
        self.last_pts: int | None = None
        self.end_pts = 0  # where the last frame stops being displayed, in time_base units
        self.held: Any = None  # the newest packet, held back so its duration can be fixed at the end
        self.first_dts: int | None = None
        self.first_pts: int | None = None
        self.fix_last_duration = out.format.name.split(",")[0] in _MOV_TEXT_FORMATS

    def encode(self, out: Any, rgb: np.ndarray, pts: int, duration: int | None) -> None:
        import av

        if any(self.pad):
            rgb = np.pad(rgb, ((0, self.pad[1]), (0, self.pad[0]), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame = frame.reformat(format=self.pix_fmt, dst_colorspace="ITU709", dst_color_range="MPEG")
        # Encoders require strictly increasing timestamps; broken inputs can repeat one.
        if self.last_pts is not None and pts <= self.last_pts:
            pts = self.last_pts + 1
        self.last_pts = pts
        frame.pts, frame.time_base = pts, self.time_base
        if duration:
            frame.duration = duration
        self.end_pts = max(self.end_pts, pts + (duration or 1))
        self._mux(out, self.stream.encode(frame))

    def _mux(self, out: Any, packets: list) -> None:
        for packet in packets:
            if self.first_dts is None and packet.dts is not None:
                self.first_dts = packet.dts
            if packet.pts is not None:
                self.first_pts = packet.pts if self.first_pts is None else min(self.first_pts, packet.pts)
            if self.held is not None:
                out.mux(self.held)
            self.held = packet

    def flush(self, out: Any) -> None:
        self._mux(out, self.stream.encode(None))
        if self.held is not None:
            # MP4 derives a track's length from decode times (last dts + its duration - first dts);
            # with B-frames and a variable frame rate that can end before the last frame is shown,
            # and players cut the end. Size the last packet's duration so the track's length is
            # exactly first display time -> end of the last frame's display.
            h = self.held
            if self.fix_last_duration and None not in (h.dts, self.first_dts, self.first_pts):
                h.duration = max(1, (self.end_pts - self.first_pts) - (h.dts - self.first_dts))
            out.mux(self.held)
            self.held = None


def _parse_bitrate(text: str) -> int:
    units = {"k": 1e3, "K": 1e3, "m": 1e6, "M": 1e6, "g": 1e9, "G": 1e9}
    try:
        if text and text[-1] in units:
            return int(float(text[:-1]) * units[text[-1]])
        return int(float(text))
    except ValueError:
        raise ValueError(f"--bitrate {text!r} is not a bit rate like 4M or 800k") from None


class _Passthrough:
    """Audio / subtitle / attachment streams: packet copy where the container allows, else re-encode."""

    def __init__(self, out: Any, in_stream: Any, log: Callable[[str], None]):
        import av

        self.in_stream, self.mode, self.out_stream = in_stream, "drop", None
        self.resampler = None
        try:
            self.out_stream = out.add_stream_from_template(in_stream)
            self.mode = "copy"
            return
        except (ValueError, av.error.FFmpegError):
            pass
        target = None
        if in_stream.type == "audio":
            target = out.default_audio_codec
        elif in_stream.type == "subtitle" and in_stream.codec_context is not None:
            text = in_stream.codec_context.codec.text_sub
            if text:
                target = "mov_text" if out.format.name.split(",")[0] in _MOV_TEXT_FORMATS else out.default_subtitle_codec
        if target and target != "none":
            try:
                if in_stream.type == "audio":
                    cc = in_stream.codec_context
                    self.out_stream = out.add_stream(target, rate=cc.sample_rate)
                    self.out_stream.layout = cc.layout
                else:
                    self.out_stream = out.add_stream(target)
                    # Text-subtitle encoders parse styles from an ASS header; the decoder only has one
                    # once opened, so open it now.
                    in_stream.codec_context.open(strict=False)
                    header = in_stream.codec_context.subtitle_header or DEFAULT_ASS_HEADER
                    self.out_stream.codec_context.subtitle_header = header
                    self.out_stream.time_base = in_stream.time_base
                self.mode = "reencode"
                log(f"note: {out.format.name} cannot hold {_describe(in_stream)}; re-encoding it to {target}")
                return
            except (ValueError, av.error.FFmpegError):
                self.out_stream = None
        log(f"warning: {out.format.name} cannot hold {_describe(in_stream)} and it cannot be converted; "
            f"it is NOT in the output (write .mkv to keep it)")

    def write(self, out: Any, packet: Any, offset_s: float) -> None:
        if self.mode == "drop" or packet.size == 0:
            return
        tb = packet.time_base
        shift = int(round(offset_s / tb)) if tb else 0
        if self.mode == "copy":
            if packet.pts is not None:
                packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
            packet.stream = self.out_stream
            out.mux(packet)
        elif self.in_stream.type == "audio":
            for frame in packet.decode():
                if frame.pts is not None:
                    frame.pts -= int(round(offset_s / frame.time_base))
                out.mux(self.out_stream.encode(frame))
        else:
            subs = self.in_stream.codec_context.decode2(packet)
            if subs is not None and len(subs):
                pkt = self.out_stream.codec_context.encode_subtitle(subs)
                pkt.pts = pkt.dts = (packet.pts or 0) - shift
                pkt.duration = packet.duration
                pkt.time_base = tb
                pkt.stream = self.out_stream
                out.mux(pkt)

    def flush(self, out: Any) -> None:
        if self.mode == "reencode" and self.in_stream.type == "audio":
            out.mux(self.out_stream.encode(None))


def _iter_video_frames(inp: Any, vs: Any, others: list, src: str):
    """Yield (video_frame_or_None, side_packets) in demux order; detect truncated files.

    Side-stream packets are handed out with the next video frame (or with None) so the caller can
    mux them in order. A file whose header promises more video packets than it holds is truncated.
    """
    import av

    pending: list = []
    n_packets = 0
    # Entries of the file's own index (AVI idx1, MP4 sample table), read at open, before demuxing
    # adds to it. An index that lists every packet we read means the file ends where its writer
    # ended it, even when a header count or duration says otherwise (opencv-doc's tree.avi declares
    # 444 frames and indexes, and holds, 68); a truncated file has lost its trailing index.
    indexed = len(vs.index_entries)
    last_end = None  # seconds at which the last video packet stops
    try:
        for packet in inp.demux(vs, *others):
            if packet.stream.index != vs.index:
                pending.append(packet)
                if len(pending) > 64:  # bound memory on audio-heavy stretches without video
                    yield None, pending
                    pending = []
                continue
            if packet.size:
                n_packets += 1
                if packet.pts is not None and packet.time_base:
                    end = float((packet.pts + (packet.duration or 0)) * packet.time_base)
                    last_end = end if last_end is None else max(last_end, end)
            for frame in packet.decode():
                yield frame, pending
                pending = []
    except av.error.FFmpegError as exc:
        raise VideoError(f"{src}: cannot decode ({exc.strerror or exc}); the file may be damaged or truncated") from None
    if pending:
        yield None, pending
    if n_packets > 1 and indexed == n_packets:
        return
    declared = vs.frames
    if declared and n_packets < declared:
        raise VideoError(f"{src}: truncated: the file declares {declared} video frames but holds only {n_packets}")
    # Containers that do not count frames (Matroska, ...) still state a duration; the video stream's
    # own, or the file's when video is all it holds (audio may legitimately outlast the picture).
    if vs.duration and vs.time_base:
        declared_s = float((vs.duration + (vs.start_time or 0)) * vs.time_base)
    elif len(inp.streams) == 1 and inp.duration:
        declared_s = inp.duration / 1e6 + (inp.start_time or 0) / 1e6
    else:
        declared_s = None
    rate = float(vs.average_rate or vs.guessed_rate or 25)
    if declared_s and last_end is not None and last_end < declared_s - max(0.5, 3 / rate):
        raise VideoError(f"{src}: truncated: video stops at {last_end:.2f} s of the {declared_s:.2f} s the file declares")


def _first_in_window(frames, start: float, end: float, tb: Fraction):
    """Advance to the first frame at or after ``start``; return it with the side packets read so far."""
    side: list = []
    for frame, packets in frames:
        side.extend(packets)
        if frame is None:
            continue
        t = _to_seconds(frame.pts, tb)
        if t is not None and t < start - 1e-6:
            continue
        if t is not None and t >= end:
            return None
        return frame, side
    return None


def _expected_frames(vs: Any, inp: Any, start: float, end: float) -> int | None:
    rate = vs.average_rate or vs.guessed_rate
    length = _to_seconds(vs.duration, vs.time_base) or (inp.duration / 1e6 if inp.duration else None)
    if vs.frames and start == 0 and end == math.inf:
        return vs.frames
    if rate and length:
        return max(1, int(round((min(length, end) - start) * float(rate))))
    return None


def export_frame(src: str, number: int, dst: str | os.PathLike, start: float = 0.0) -> tuple[int, int]:
    """Write frame ``number`` (0 = the first frame at or after ``start`` seconds, as ``--keyframe`` counts them) of
    ``src`` as a grey RGB image file (any format runtime.image.imageio writes; PNG keeps it lossless), upright as a
    player shows it (the display rotation applied; flips are not), the frame to colour by hand (in GIMP, with hint dots) and give back as a key frame. Returns its (width, height); VideoError
    (one line) when the clip has no such frame; nothing is written then."""
    import av

    from ..image.imageio import ImageError, format_for, write_image

    if number < 0:
        raise VideoError(f"--export-frame must be >= 0, got {number}")
    try:
        format_for(dst)
    except ImageError as exc:
        raise VideoError(f"{dst}: {exc}") from None
    if not Path(dst).parent.is_dir():
        raise VideoError(f"{Path(dst).parent}: output folder does not exist")
    inp = _open_input(src)
    try:
        vs = inp.streams.video[0]
        vs.thread_type = "AUTO"
        tb = vs.time_base
        if start > 0:
            inp.seek(int(start / tb), stream=vs, backward=True)
        seen = 0
        for frame, _ in _iter_video_frames(inp, vs, [], src):
            t = None if frame is None else _to_seconds(frame.pts, tb)
            if frame is None or (t is not None and t < start - 1e-6):
                continue
            if seen == number:  # upright, as players show it (the display rotation; the matching needs no alignment)
                grey = np.rot90(frame.to_ndarray(format="gray"), _quarter_turns(_display_matrix(frame)))
                try:
                    write_image(dst, np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2)))
                except (ImageError, OSError) as exc:
                    raise VideoError(f"cannot write {dst} ({getattr(exc, 'strerror', None) or exc})") from None
                return grey.shape[1], grey.shape[0]
            seen += 1
        raise VideoError(f"{src}: no frame {number} (the clip has {seen} frames" + (f" after {start:g} s)" if start else ")"))
    except av.error.FFmpegError as exc:
        raise VideoError(f"{src}: {exc.strerror or exc}") from None
    finally:
        inp.close()
