"""Colorize a video file, streaming: PyAV (FFmpeg) decode -> batched model -> temporal filter -> encode.

This module is the colorization pipeline: frame batching through the model, the temporal
stabilizer, progress, and ``colorize_video`` itself. Its options and result are in
runtime/video/options.py; the container and stream plumbing it drives (opening and probing the
input, the encoder, audio / subtitle passthrough, the temp path) is in runtime/video/container.py.

Memory stays bounded whatever the length: frames are read one packet at a time and only a batch of
``batch_size`` frames is held. The output is written to a hidden temp file beside the target and
renamed over it only when everything succeeded, so Ctrl-C or an error never leaves a half-written
file under the output name.

The colorizer is anything with the step functions of ``runtime.image.colorizer.Colorizer`` (see
docs/CONTRACTS.md): ``prepare``, ``predict_ab``, ``finish``. Chroma is predicted at render size and
combined with the full-resolution L of each frame; the input's own colour, if any, is discarded.
"""
from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..image import fastcolor
from .options import VideoError, VideoOptions, VideoResult
from . import stages
from .temporal import CutDetector, GateSmoother, TemporalStabilizer
from ..image.reference import apply_reference
from .container import (
    _describe,
    _expected_frames,
    _first_in_window,
    _iter_video_frames,
    _open_input,
    _Passthrough,
    _temp_path,
    _to_seconds,
    _VideoWriter,
)

def _l_from_frame(frame: Any) -> np.ndarray:
    # The decoder hands us the luma plane, and a greyscale frame's luma is its grey value, so L is one
    # table lookup per pixel (runtime.image.fastcolor's 8-bit grey table) instead of an sRGB->Lab conversion.
    return fastcolor.grey8_to_l(frame.to_ndarray(format="gray"))


def colorize_video(
    colorizer: Any,
    src: str | os.PathLike,
    dst: str | os.PathLike,
    opts: VideoOptions | None = None,
    log: Callable[[str], None] | None = None,
) -> VideoResult:
    """Colorize ``src`` into ``dst``; raise VideoError (one line) for bad input, leaving no ``dst``."""
    import av

    opts = opts or VideoOptions()
    opts.validate()
    log = log or (lambda msg: print(msg, file=sys.stderr))
    src, dst = str(src), Path(dst)
    if os.path.exists(src) and dst.exists() and os.path.samefile(src, dst):
        raise VideoError(f"{dst}: output would overwrite the input")
    if not dst.parent.is_dir():
        raise VideoError(f"{dst.parent}: output folder does not exist")

    inp = _open_input(src)
    tmp = _temp_path(dst)
    out = None
    bar = None
    ok = False
    t0 = time.perf_counter()
    try:
        vs = inp.streams.video[0]
        vs.thread_type = "AUTO"
        others = [s for s in inp.streams if s.index != vs.index and s.type in ("audio", "subtitle", "attachment")]
        tb = vs.time_base
        start, end = opts.start, (opts.start + opts.duration if opts.duration is not None else math.inf)
        if start > 0:
            try:
                inp.seek(int(start / tb), stream=vs, backward=True)
            except av.error.FFmpegError as exc:
                raise VideoError(f"{src}: cannot seek to {start:g} s ({exc.strerror or exc})") from None

        frames = _iter_video_frames(inp, vs, others, src)
        first = _first_in_window(frames, start, end, tb)
        if first is None:
            where = "" if start == 0 else f" at or after {start:g} s"
            raise VideoError(f"{src}: no video frames{where}")
        first_frame, early_packets = first
        first_s = _to_seconds(first_frame.pts, tb) or 0.0
        # Timestamps are shifted so the output starts at 0: from the cut point for previews,
        # otherwise from the earliest stream's start, so audio/video sync is kept exactly.
        if start > 0:
            origin = start
        else:
            origin = min(first_s, (inp.start_time / 1e6) if inp.start_time is not None else first_s)

        try:
            out = av.open(str(tmp), "w")
        except (ValueError, av.error.FFmpegError) as exc:
            raise VideoError(f"{dst}: cannot write this kind of file ({exc}); use .mp4, .mkv or .mov") from None
        writer = _VideoWriter(out, vs, first_frame, opts, log)
        passes = {s.index: _Passthrough(out, s, log) for s in others}

        total = _expected_frames(vs, inp, start, end)
        bar = _progress(total, opts.progress)
        stabilizer = TemporalStabilizer(opts.strength if opts.stabilize else 0.0)
        keyrefs, base_ref = _prepare_references(colorizer, opts)
        for note in _colourless(keyrefs, base_ref):
            log(note)
        # the cut detector, the reference in force, the key frames reached
        cuts, active, used = CutDetector(stabilizer.cut_threshold), base_ref, set()
        gate = GateSmoother()  # the reference's gate, steady within a shot
        # The encoder describes each frame for the matcher (its parts) and, for the clip's reference, as a whole.
        scene = colorizer.scene_encoder() if any(r.parts for r in [*keyrefs.values(), base_ref] if r is not None) else None
        batch: list[tuple[np.ndarray, Any, Any, int, int | None]] = []
        n_frames = 0
        origin_pts = int(round(origin / tb))

        finish_u8 = getattr(colorizer, "finish_u8", None)  # the fast path, where the colorizer has one
        # Three threads overlap (runtime/video/stages.py): decoding + each frame's L and network input (prefetch),
        # the network + stabilizer + colour kernel (here), RGB -> YUV + the encoder + the muxer (encoder). The
        # encoder thread gets the frames and the side streams' packets in the order they would have been written
        # one at a time, so the file is the same.

        def run_batch() -> None:
            nonlocal n_frames, active
            net = np.concatenate([b[1] for b in batch], axis=0)
            ab = colorizer.predict_ab(net)
            for i, (L_full, net_L, geom, pts, dur) in enumerate(batch):
                ab_i = ab[i]
                if keyrefs or base_ref is not None:  # a key frame's colour holds until the next key frame or cut
                    if cuts(net_L[0, 0]):
                        active = base_ref
                        gate.reset()
                    if n_frames + i in keyrefs:
                        active = keyrefs[n_frames + i]
                        used.add(n_frames + i)
                        gate.reset()
                    ab_i = apply_reference(ab[i:i + 1], net_L, active, gate_filter=gate, scene=scene)[0]
                ab_i = stabilizer.update(net_L[0, 0], ab_i) if opts.stabilize else ab_i
                if finish_u8 is not None:
                    rgb8 = finish_u8(L_full, ab_i, geom, saturation=opts.saturation)
                else:
                    rgb = colorizer.finish(L_full, ab_i, geom, saturation=opts.saturation)
                    rgb8 = (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)
                encoder.submit(writer.encode, out, rgb8, pts, dur)
            n_frames += len(batch)
            bar.update(len(batch))
            batch.clear()

        def take(frame: Any, L_full: np.ndarray, net_L: np.ndarray, geom: Any) -> None:
            pts = (frame.pts if frame.pts is not None else origin_pts + n_frames + len(batch)) - origin_pts
            batch.append((L_full, net_L, geom, pts, frame.duration or None))
            if len(batch) >= opts.batch_size:
                run_batch()

        def decoded(frame: Any) -> tuple[Any, ...]:
            L_full = _l_from_frame(frame)
            return (frame, L_full, *colorizer.prepare(L_full))

        encoder = stages.Serial(depth=opts.batch_size + 2)
        prefetch = None
        try:
            take(*decoded(first_frame))
            prefetch = stages.Prefetch(((f, pk, decoded(f) if f is not None else None) for f, pk in frames),
                                       depth=opts.batch_size + 2)
            for frame, packets, item in _chain([(None, early_packets, None)], prefetch):
                for packet in packets:  # side streams, in demux order
                    t = _to_seconds(packet.pts, packet.time_base)
                    # Without --start keep everything, priming packets with negative times included.
                    if t is None or (start == 0 or t >= start) and t < end:
                        encoder.submit(passes[packet.stream.index].write, out, packet, origin)
                if frame is None:
                    continue
                t = _to_seconds(frame.pts, tb)
                if t is not None and t >= end:
                    break
                if t is not None and t < start - 1e-6:
                    continue  # decoded from the key frame before the cut point
                take(*item)
            if batch:
                run_batch()
            encoder.finish()
        finally:
            if prefetch is not None:
                prefetch.close()
            encoder.close()  # before the containers close, whatever happened
        writer.flush(out)
        for n in sorted(set(keyrefs) - used):
            log(f"note: key frame {n} is past the last frame colorized ({n_frames} frames): not used")
        for p in passes.values():
            p.flush(out)
        out.close()
        out = None
        os.replace(tmp, dst)
        ok = True
        return VideoResult(
            output=str(dst), frames=n_frames, seconds=time.perf_counter() - t0,
            size=(writer.stream.width, writer.stream.height),
            copied=[_describe(p.in_stream) for p in passes.values() if p.mode == "copy"],
            reencoded=[_describe(p.in_stream) for p in passes.values() if p.mode == "reencode"],
            dropped=[_describe(p.in_stream) for p in passes.values() if p.mode == "drop"],
            scene_cuts=stabilizer.cuts if opts.stabilize else cuts.cuts,
            keyframes=len(used),
        )
    except av.error.FFmpegError as exc:
        raise VideoError(f"{src}: {exc.strerror or exc}") from None
    finally:
        # Nested so that the temp file goes even when a second Ctrl-C interrupts one of the steps before.
        try:
            if bar is not None:
                bar.close()  # ends the progress line, so a message after an error or Ctrl-C starts on its own line
            inp.close()
            if not ok and out is not None:
                try:
                    out.close()
                except Exception:  # the file is being deleted anyway; the first error is the one to report
                    pass
        finally:
            if not ok:
                tmp.unlink(missing_ok=True)


def _prepare_references(colorizer: Any, opts: VideoOptions) -> tuple[dict[int, Any], Any]:
    """The key frames' and the clip's reference, each prepared once (runtime.image.reference); VideoError (one line)
    for one that cannot be read."""
    def prepare(what: str, image: Any, **kw: Any) -> Any:
        try:
            return colorizer.reference(image, **kw)
        except Exception as exc:  # ImageError, ValueError, OSError: the user's file, one line
            raise VideoError(f"{what}: {exc}") from None

    if opts.keyframes or opts.reference is not None:
        try:
            getattr(colorizer, "scene_encoder", lambda: None)()  # a damaged scene graph: the model's error, said once
        except ValueError as exc:  # ModelError
            raise VideoError(str(exc)) from None
    # A key frame belongs to its shot: it is not compared with the shot as a whole.
    keyrefs = {n: prepare(f"--keyframe {n}:{img}", img, compare_scene=False) for n, img in sorted(opts.keyframes.items())}
    base = None if opts.reference is None else prepare(f"--reference {opts.reference}", opts.reference)
    return keyrefs, base


def _colourless(keyrefs: dict[int, Any], base: Any) -> list[str]:
    """Notes for references with no colour (e.g. an exported grey frame given back uncoloured): they change nothing."""
    notes = [f"note: key frame {n} has no colour; its shot stays automatic" for n, r in keyrefs.items() if r.colourless]
    if base is not None and base.colourless:
        notes.append("note: the --reference has no colour; it changes nothing")
    return notes


def _chain(*iterables):
    for it in iterables:
        yield from it


def _progress(total: int | None, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="frame", disable=not enabled, file=sys.stderr, dynamic_ncols=True,
                smoothing=0.1, bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}]")
