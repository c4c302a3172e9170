"""What a batch worker does with one photo (runtime/image/pipeline.py runs many of them at once).

``colorize_file``: a file to a file, as the command line does it: decode (EXIF orientation, ICC profile and
EXIF kept), the photo's hint image if it has one, the image path (``Colorizer.colorize_planes``), encode in
memory, then the atomic write into an output folder made only now. Never raises for bad input: it returns
the one-line reason, and writes nothing when anything about the input or its hints is wrong.

``colorize_item``: what ``Colorizer.colorize_many`` does with one input (a path, a PIL image or an array):
the same steps, handing back a PIL image or writing a file. ``run_files`` and ``colorize_many`` feed them to
the pipeline.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from .imageio import DEFAULT_MAX_PIXELS
from .pipeline import Stage, Stopped, pixels_of, run_pipeline


@dataclass(frozen=True)
class FileOptions:
    saturation: float = 1.0
    quality: int = 92  # JPEG / WebP
    max_pixels: int | None = DEFAULT_MAX_PIXELS  # the decompression-bomb guard; None = no limit


@dataclass(frozen=True)
class FileJob:
    input: Path
    output: Path
    # A hint image file (RGBA, the photo's size: --hints or the NAME.hints.png sidecar), or hints already in memory
    # (a point list or an RGBA image: Colorizer.colorize_many).
    hints: Any = None
    # A colour reference: a file (the NAME.ref.jpg sidecar, prepared here) or one prepared once for a whole batch.
    reference: Any = None


def colorize_file(colorizer: Any, job: FileJob, opts: FileOptions, stage: Stage | None = None) -> str | None:
    """Colorize one file (with its hint image, if any); None on success, else the one-line reason. ``stage``:
    the batch runner's (shared network, stop flag, output folders); None runs it alone (``Stage.alone``)."""
    from .hints import HintError, load_hint_image
    from .imageio import ImageError, encode_image, format_for, read_image, split_luminance

    stage = stage or Stage.alone(colorizer)
    src, dst, hints_path = job.input, Path(job.output), job.hints
    try:
        fmt = format_for(dst)
        decoded = read_image(src, opts.max_pixels)
        reference = job.reference
        if isinstance(reference, (str, os.PathLike)):
            try:
                reference = colorizer.reference(reference, stage.network, max_pixels=opts.max_pixels)
            except (ImageError, ValueError) as exc:
                return f"reference {job.reference}: {exc}"
        hints = hints_path
        if isinstance(hints_path, (str, os.PathLike)):
            try:
                hints = load_hint_image(hints_path, decoded.image.size)
            except HintError as exc:
                return f"hints {hints_path}: {exc}"
        planes = split_luminance(decoded.image)
        bits = 16 if planes.bits == 16 and fmt == "PNG" else 8
        # RGBX: JPEG and WebP encoders read it without repacking the pixels (imageio.encode_image).
        rgbx = fmt in ("JPEG", "WEBP") and planes.alpha is None
        stage.check()
        rgb = colorizer.colorize_planes(planes, opts.saturation, bits=bits, hints=hints, rgbx=rgbx, reference=reference,
                                        network=stage.network, threads=stage.kernel_threads)
    except Stopped:
        raise
    except ImageError as exc:
        return str(exc)
    except HintError as exc:
        return f"hints {hints_path}: {exc}" if isinstance(hints_path, (str, os.PathLike)) else f"hints: {exc}"
    except MemoryError:
        return "out of memory (try a smaller --max-pixels or a machine with more RAM)"
    except Exception as exc:  # a bug or an odd file must cost one file, not the batch; COLORIZE_GAN_DEBUG=1 re-raises
        if os.environ.get("COLORIZE_GAN_DEBUG"):
            raise
        return f"unexpected error {type(exc).__name__}: {_first_line(exc)}"
    stage.check()
    try:
        data = encode_image(rgb, fmt, planes.alpha, opts.quality, decoded.icc, decoded.exif)
    except ImageError as exc:
        return str(exc)
    except MemoryError:
        return "out of memory (try a smaller --max-pixels or a machine with more RAM)"
    except OSError as exc:
        return f"cannot write {dst} ({exc.strerror or exc})"
    except Exception as exc:  # e.g. an encoder's ValueError; nothing was written
        if os.environ.get("COLORIZE_GAN_DEBUG"):
            raise
        return f"cannot write {dst} ({type(exc).__name__}: {_first_line(exc)})"
    del rgb, planes, decoded
    return stage.folders.commit(dst, data, stage.stop)  # checks the stop flag under its lock


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else ""


def run_files(colorizer: Any, jobs: Sequence[FileJob], opts: FileOptions,
              on_done: Callable[[int, str | None, float], None], *, workers: int | None = None,
              pixels_in_flight: int | None = None) -> None:
    """Colorize ``jobs`` through the pipeline; ``on_done(position in jobs, error or None, seconds)`` as each
    finishes, in its worker's thread, one at a time (completion order: the command line sorts its report back
    into input order). Ctrl-C or a fatal error stops the batch (runtime.image.pipeline.run_pipeline) and is
    re-raised once every worker has stopped: by then every file written has been passed to ``on_done``."""

    def work(job: FileJob, stage: Stage) -> tuple[str | None, float]:
        t0 = time.perf_counter()
        err = colorize_file(colorizer, job, opts, stage)
        return err, time.perf_counter() - t0

    feed = ((job, pixels_of(job.input)) for job in jobs)
    runner = run_pipeline(colorizer, feed, work, workers=workers, pixels_in_flight=pixels_in_flight, count=len(jobs),
                          on_done=lambda pos, r: on_done(pos, *r))
    try:
        for _ in runner:
            pass
    finally:
        runner.close()  # on Ctrl-C here: stops and waits for the workers before the exception goes on


# -- the API: Colorizer.colorize_many ---------------------------------------------------------------------
@dataclass
class BatchResult:
    """One input of ``Colorizer.colorize_many``: the colorized ``image`` (PIL; None when it was written to
    ``output`` or failed) or the one-line ``error``."""

    index: int
    input: Any
    output: Path | None
    image: Any = None
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


def colorize_item(colorizer: Any, index: int, source: Any, output: Any, hints: Any, opts: FileOptions,
                  stage: Stage, reference: Any = None) -> BatchResult:
    t0 = time.perf_counter()
    res = BatchResult(index, source, Path(output) if output is not None else None)
    if isinstance(source, (str, os.PathLike)) and output is not None:  # file to file: exactly the command line's way
        hint = Path(hints) if isinstance(hints, (str, os.PathLike)) else hints
        res.error = colorize_file(colorizer, FileJob(Path(source), Path(output), hint, reference), opts, stage)
    else:
        try:
            res.image = _colorize_image(colorizer, source, hints, opts, stage, reference)
            if output is not None:
                res.error = _write(res.image, Path(output), opts, stage)
                res.image = None
        except Stopped:
            raise
        except Exception as exc:  # as colorize_file: one input's problem is that input's one-line error
            from .imageio import ImageError

            if os.environ.get("COLORIZE_GAN_DEBUG") and not isinstance(exc, (ImageError, ValueError)):
                raise
            res.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    res.seconds = time.perf_counter() - t0
    return res


def _colorize_image(colorizer: Any, source: Any, hints: Any, opts: FileOptions, stage: Stage, reference: Any) -> Any:
    import numpy as np
    from PIL import Image

    from .hints import load_hint_image
    from .imageio import merge_planes, read_image, split_luminance

    if isinstance(source, (str, os.PathLike)):
        source = read_image(source, opts.max_pixels).image
    elif isinstance(source, np.ndarray) and source.dtype != np.uint8:  # uint16, float: as colorize_array takes them
        if isinstance(hints, (str, os.PathLike)):
            hints = load_hint_image(hints, (source.shape[1], source.shape[0]))
        rgb = colorizer.colorize_array(source, opts.saturation, hints=hints, reference=reference)
        return Image.fromarray((np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8), "RGB")
    elif isinstance(source, np.ndarray):
        source = Image.fromarray(source)
    elif not isinstance(source, Image.Image):
        raise ValueError(f"expected a path, a PIL image or an array, got {type(source).__name__}")
    if isinstance(hints, (str, os.PathLike)):
        hints = load_hint_image(hints, source.size)
    planes = split_luminance(source)
    stage.check()
    rgb = colorizer.colorize_planes(planes, opts.saturation, bits=8, hints=hints, network=stage.network,
                                    threads=stage.kernel_threads, reference=reference)
    return merge_planes(rgb, planes.alpha)


def _write(image: Any, dst: Path, opts: FileOptions, stage: Stage) -> str | None:
    import numpy as np

    from .imageio import encode_image, format_for

    alpha = image.getchannel("A") if image.mode == "RGBA" else None
    data = encode_image(np.asarray(image.convert("RGB")), format_for(dst), alpha, opts.quality)
    return stage.folders.commit(dst, data, stage.stop)


def colorize_many(colorizer: Any, inputs: Iterable[Any], outputs: Iterable[Any] | None = None,
                  hints: Iterable[Any] | None = None, opts: FileOptions = FileOptions(), *,
                  workers: int | None = None, pixels_in_flight: int | None = None,
                  reference: Any = None) -> Iterator[BatchResult]:
    """The body of ``Colorizer.colorize_many`` (its docstring says what it does)."""
    inputs = list(inputs)
    reference = None if reference is None else colorizer.reference(reference, max_pixels=opts.max_pixels)  # once
    outs = list(outputs) if outputs is not None else [None] * len(inputs)
    hint_list = list(hints) if hints is not None else [None] * len(inputs)
    if len(outs) != len(inputs) or len(hint_list) != len(inputs):
        raise ValueError(f"outputs and hints must match inputs: {len(inputs)} inputs, {len(outs)} outputs, "
                         f"{len(hint_list)} hints")

    def work(i: int, stage: Stage) -> BatchResult:
        return colorize_item(colorizer, i, inputs[i], outs[i], hint_list[i], opts, stage, reference)

    feed = ((i, pixels_of(src)) for i, src in enumerate(inputs))
    for _, result in run_pipeline(colorizer, feed, work, workers=workers, pixels_in_flight=pixels_in_flight,
                                  ordered=True, holds_pixels=lambda r: r.image is not None, count=len(inputs)):
        yield result
