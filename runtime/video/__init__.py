"""The video room: ``colorize_video(colorizer, src, dst, options)`` and its command.

``pipeline`` (decode -> batched model -> temporal stabilizer -> encode), ``options`` (VideoOptions,
VideoResult, VideoError), ``container`` (everything that talks to FFmpeg through PyAV about files: input
checks, demuxing, the encoder, audio / subtitle passthrough), ``temporal`` (the chroma stabilizer) and
``cli`` (``colorize-gan video``). PyAV is imported only when a video is opened.

May import: runtime.image, runtime.errors (and a Colorizer through runtime.image). Never the
command-line room; runtime.cli imports ``video.cli``, not the other way round.
"""
from __future__ import annotations

from .container import DEFAULT_ASS_HEADER
from .options import VideoError, VideoOptions, VideoResult
from .pipeline import colorize_video

__all__ = ["DEFAULT_ASS_HEADER", "VideoError", "VideoOptions", "VideoResult", "colorize_video"]
