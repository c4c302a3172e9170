"""What a video run is asked to do and what it did: ``VideoOptions`` (checked by ``validate``),
``VideoResult``, and ``VideoError`` (every user-facing video failure; ``str()`` is one line)."""
from __future__ import annotations

from dataclasses import dataclass, field


class VideoError(Exception):
    """A problem with the user's input or output that deserves one clear line, not a traceback."""


@dataclass
class VideoOptions:
    saturation: float = 1.0
    stabilize: bool = True
    strength: float = 0.6
    start: float = 0.0  # seconds into the input
    duration: float | None = None  # seconds to colorize from ``start``; None = to the end
    codec: str | None = None  # encoder name; None = the container's default video codec
    crf: float | None = None  # constant-quality factor for encoders that have one (x264/x265/vpx/aom)
    bitrate: str | None = None  # e.g. "4M"; for encoders without a CRF mode, or to cap size
    preset: str | None = None  # encoder speed preset (x264/x265), e.g. "veryfast"
    pix_fmt: str | None = None  # None = yuv420p where the encoder has it (plays everywhere)
    batch_size: int = 4
    progress: bool = True
    # Colour from references (runtime/image/reference.py): key frames, {frame number (0 = the first frame colorized):
    # a colour image of that frame (path, PIL image or array)}: each frame takes its colour from the nearest key frame
    # before it in the same shot; ``reference``: one colour image for the frames no key frame covers.
    keyframes: dict = field(default_factory=dict)
    reference: object = None

    def validate(self) -> None:
        if self.saturation < 0:
            raise VideoError(f"--saturation must be >= 0, got {self.saturation}")
        if not 0.0 <= self.strength <= 1.0:
            raise VideoError(f"--strength must be in [0, 1], got {self.strength}")
        if self.start < 0:
            raise VideoError(f"--start must be >= 0, got {self.start}")
        if self.duration is not None and self.duration <= 0:
            raise VideoError(f"--duration must be > 0, got {self.duration}")
        if self.batch_size < 1:
            raise VideoError(f"batch size must be >= 1, got {self.batch_size}")
        bad = [n for n in self.keyframes if not isinstance(n, int) or n < 0]
        if bad:
            raise VideoError(f"--keyframe frame numbers must be integers >= 0, got {bad[0]!r}")
        if self.crf is not None and self.crf < 0:
            raise VideoError(f"--crf must be >= 0, got {self.crf}")


@dataclass
class VideoResult:
    output: str
    frames: int
    seconds: float  # wall time
    size: tuple[int, int]  # (width, height) written
    copied: list[str] = field(default_factory=list)  # streams copied without re-encoding
    reencoded: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # streams the output cannot hold (warned)
    scene_cuts: int = 0
    keyframes: int = 0  # key frames reached (each colours its shot from there on)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0
