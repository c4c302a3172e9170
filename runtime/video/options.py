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

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0
