"""``colorize-gan video INPUT -o OUTPUT``: the command-line face of runtime/video/pipeline.py.

runtime/cli/main.py registers it with ``add_parser(subparsers)`` and dispatches to ``run(args)``. Bad
input of any kind (not a video, no video stream, zero frames, a truncated file, an unknown codec)
ends in one line on stderr and a non-zero exit, never a traceback, and never a partial output file.
Ctrl-C at any point (loading the model included) is one line and exit status 130, with no output
file and no temp file left.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..errors import one_line

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _seconds(text: str) -> float:
    """'90', '1.5', '1:30', '0:01:30.5' -> seconds."""
    try:
        parts = [float(p) for p in text.split(":")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time (seconds, or [H:]M:S)") from None
    if len(parts) > 3 or any(p < 0 for p in parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not a time (seconds, or [H:]M:S)")
    total = 0.0
    for p in parts:
        total = total * 60 + p
    return total


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "video",
        help="colorize a video file (audio and subtitles kept)",
        description="Colorize a greyscale video. Output keeps the input's resolution, frame timestamps, "
        "rotation and audio/subtitle streams; chroma is stabilized across frames unless --no-stabilize.",
    )
    p.add_argument("input", help="input video (any container/codec FFmpeg reads)")
    p.add_argument("-o", "--output", required=True, help="output file; its extension picks the container (.mp4 default H.264)")
    p.add_argument("--model", default=None, help="model bundle (.json/.onnx stem) or trainer checkpoint dir; default: embedded")
    p.add_argument("--backend", default="auto", help="auto, gpu, cpu, or a backend name (default: auto)")
    p.add_argument("--render-size", type=int, default=None, help="long side the network sees, px (default: the model's)")
    p.add_argument("--saturation", type=float, default=1.0, help="chroma scale: 0 grey, 1 as predicted (default 1)")
    p.add_argument("--no-mirror", dest="mirror", action="store_false",
                   help="one network pass per frame instead of the mean with its mirror image (faster)")
    p.add_argument("--stabilize", dest="stabilize", action="store_true", default=True, help="temporal chroma stabilization (default)")
    p.add_argument("--no-stabilize", dest="stabilize", action="store_false", help="colorize each frame on its own")
    p.add_argument("--strength", type=float, default=0.6, help="stabilization strength in [0, 1] (default 0.6)")
    p.add_argument("--start", type=_seconds, default=0.0, help="start at this time (seconds or [H:]M:S)")
    p.add_argument("--duration", type=_seconds, default=None, help="colorize only this long (seconds or [H:]M:S)")
    p.add_argument("--codec", default=None, help="video encoder, e.g. libx264, libx265, libvpx-vp9 (default: the container's)")
    p.add_argument("--crf", "--quality", dest="crf", type=float, default=None,
                   help="constant quality for x264/x265/vpx/aom: lower is better (default 18 for x264/x265)")
    p.add_argument("--bitrate", default=None, help="target bit rate, e.g. 4M (for encoders without a CRF mode)")
    p.add_argument("--preset", default=None, help="encoder speed preset, e.g. veryfast, slow (x264/x265)")
    p.add_argument("--pix-fmt", default=None, help="output pixel format (default yuv420p; yuv444p keeps odd sizes)")
    p.add_argument("--batch-size", type=int, default=4, help="frames per network call (default 4)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for the backend (default: all)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.add_argument("-y", "--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.add_argument("--keyframe", action="append", default=[], metavar="N:IMAGE",
                   help="frame N (0 = the first frame colorized) coloured by hand: each frame takes its colour from the "
                        "nearest key frame before it in the same shot; repeatable. Get the grey frame with --export-frame")
    p.add_argument("--reference", default=None, metavar="IMAGE",
                   help="a colour photo of the same scene for the whole clip (frames no key frame covers)")
    p.add_argument("--export-frame", type=int, default=None, metavar="N",
                   help="write grey frame N to OUTPUT (an image: .png keeps it lossless) to colour by hand, then stop")
    p.set_defaults(func=run)
    return p


def _error(msg: str) -> int:
    print(f"colorize-gan video: error: {msg}", file=sys.stderr)
    return EXIT_ERROR


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except KeyboardInterrupt:  # colorize_video removed its temp file; nothing was renamed into place
        print(f"colorize-gan video: interrupted; {args.output} was not written", file=sys.stderr)
        return EXIT_INTERRUPTED


def _run(args: argparse.Namespace) -> int:
    try:
        import av  # noqa: F401  (PyAV is an optional extra)
    except ImportError:
        return _error("video needs PyAV: pip install 'colorize-gan[video]'")
    from .pipeline import VideoError, VideoOptions, colorize_video

    out = Path(args.output)
    if args.export_frame is not None:
        from .container import export_frame

        if out.exists() and not args.overwrite:
            return _error(f"{out} exists (pass -y to replace it)")
        try:
            w, h = export_frame(args.input, args.export_frame, out, args.start)
        except VideoError as exc:
            return _error(str(exc))
        print(f"{out}: frame {args.export_frame}, {w}x{h} (colour it, then --keyframe {args.export_frame}:{out})",
              file=sys.stderr)
        return EXIT_OK
    try:
        keyframes = _keyframes(args.keyframe)
    except ValueError as exc:
        return _error(str(exc))
    if args.reference is not None and not os.path.isfile(args.reference):
        return _error(f"--reference {args.reference}: no such file")
    opts = VideoOptions(
        saturation=args.saturation, stabilize=args.stabilize, strength=args.strength, start=args.start,
        duration=args.duration, codec=args.codec, crf=args.crf, bitrate=args.bitrate, preset=args.preset,
        pix_fmt=args.pix_fmt, batch_size=args.batch_size, progress=args.progress, keyframes=keyframes,
        reference=args.reference,
    )
    if out.exists() and not args.overwrite:
        return _error(f"{out} exists (pass -y to replace it)")
    try:
        opts.validate()
        # Check the input before loading a model, so a typo fails in milliseconds.
        from .pipeline import _open_input

        _open_input(args.input).close()
        colorizer = _load_colorizer(args)
    except VideoError as exc:
        return _error(str(exc))
    except (ValueError, RuntimeError, OSError) as exc:  # model / backend problems: ModelError, BackendUnavailable
        return _error(one_line(exc, None))
    try:
        result = colorize_video(colorizer, args.input, out, opts)
    except VideoError as exc:
        return _error(str(exc))
    finally:
        colorizer.close()
    extra = f", {len(result.copied)} stream(s) copied" if result.copied else ""
    extra += f", {len(result.reencoded)} re-encoded" if result.reencoded else ""
    extra += f", {len(result.dropped)} DROPPED" if result.dropped else ""
    print(f"{result.output}: {result.frames} frames {result.size[0]}x{result.size[1]} in {result.seconds:.1f} s "
          f"({result.fps:.2f} fps, backend {colorizer.backend_name}, {result.scene_cuts} scene cuts"
          f"{f', {result.keyframes} key frames' if keyframes else ''}){extra}",
          file=sys.stderr)
    return EXIT_OK


def _keyframes(specs: list[str]) -> dict[int, str]:
    """['0:a.png', '1450:b.png'] -> {0: 'a.png', 1450: 'b.png'}; ValueError (one line) for a malformed one."""
    out: dict[int, str] = {}
    for spec in specs:
        number, sep, path = spec.partition(":")
        if not sep or not number.strip().isdigit() or not path:
            raise ValueError(f"--keyframe wants N:IMAGE (e.g. 0:frame0_colour.png), got {spec!r}")
        if int(number) in out:
            raise ValueError(f"--keyframe {number} given twice")
        if not os.path.isfile(path):
            raise ValueError(f"--keyframe {spec}: no such file")
        out[int(number)] = path
    return out


def _load_colorizer(args: argparse.Namespace):
    from ..image.colorizer import Colorizer

    return Colorizer.load(model=args.model, backend=args.backend, render_size=args.render_size, threads=args.threads,
                          mirror=args.mirror)


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m runtime.video.cli``) until / besides the main CLI's dispatch."""
    parser = argparse.ArgumentParser(prog="colorize-gan")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
