"""The pipelined batch runner: many photos through one Colorizer with every core busy.

Each photo goes through five stages: read + decode -> prepare (L at the render size, hints on the same grid)
-> the network -> merge (ab upsampled and merged with the full-resolution L, Lab -> sRGB in the C kernel) ->
encode + atomic write. Run one photo at a time, the decoder and the encoder use one core while the other
waits; here a pool of worker threads carries several photos through their stages at once, and the network
is one thread of its own (``NetworkBatcher``) that takes the prepared photos waiting for it as one backend
call. Threads are enough: Pillow's decoders and encoders, ONNX Runtime, torch and the cffi colour kernel
all release the GIL for their work (docs/benchmarks-batch.md has the measurements).

What stays exactly as before, and why:
- The pixels, bit for bit: each photo takes the same steps as ``Colorizer.colorize_planes``; the network
  batches several photos in one call only on backends whose answer for a photo does not depend on its
  batch (``Backend.batch_invariant``: ONNX Runtime on the CPU, checked in tests/test_pipeline.py); the colour
  kernel splits rows, never changes them, so its thread count does not matter either.
- Errors cost one photo (the worker returns its one-line reason); anything else (a bug raised as
  BaseException, Ctrl-C) stops the batch: photos not started are dropped, photos in flight finish their
  current stage and are dropped before they write, so what is on disk is complete.
- Memory is bounded: a photo takes its pixel count (read from the file header) from a budget before it is
  decoded and gives it back when it is written (or, for images handed back to the caller, when the caller
  takes it), so a folder of 150 MP scans holds only a few at once. A photo larger than the whole budget
  runs alone.
- Output folders are made only right before a file is written into them, and removed again if that write
  fails and they are still empty; ``Folders`` does this under one lock so that two workers writing into the
  same new folder never remove it from under each other.
"""
from __future__ import annotations

import os
import queue
import stat
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from ..backends.base import available_cores

# Photos in flight at once, counted in pixels: ~10 bytes a pixel of working memory (source, RGB(X) out, the
# encoder's copy, encoded bytes), so ~1 GB. A photo larger than this runs alone.
DEFAULT_PIXELS_IN_FLIGHT = 100_000_000
# Photos per network call on batch-invariant backends. On 2 CPU cores a batch is no faster per photo than one
# photo (measured: docs/benchmarks-batch.md), but it costs nothing either and lets many-core machines and GPUs
# feed their cores; GPU backends take larger batches (NetworkBatcher).
CPU_BATCH = 4
GPU_BATCH = 16


class Stopped(Exception):
    """Raised inside a worker when the batch was stopped (Ctrl-C, a fatal error elsewhere)."""


# -- the network stage ------------------------------------------------------------------------------
@dataclass
class _Request:
    net_L: np.ndarray
    net_hints: np.ndarray | None
    done: threading.Event = field(default_factory=threading.Event)
    ab: np.ndarray | None = None
    error: BaseException | None = None

    @property
    def key(self) -> tuple:
        return self.net_L.shape[1:], self.net_hints is None


class NetworkBatcher:
    """The network as one thread: ``run(net_L, net_hints)`` (called by workers) queues a request and waits for
    its answer; the thread takes the oldest request and whatever other requests of the same grid size are
    already waiting (up to ``max_batch`` photos) and answers them with one call of ``network``. No request
    waits for a batch to fill: under load the queue fills while the network runs, so batches grow by
    themselves."""

    def __init__(self, network: Callable[[np.ndarray, np.ndarray | None], np.ndarray], max_batch: int = 1):
        self._network = network
        self.max_batch = max(1, int(max_batch))
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name="colorize-gan-network", daemon=True)
        self._thread.start()

    def run(self, net_L: np.ndarray, net_hints: np.ndarray | None = None) -> np.ndarray:
        if self._stopped:
            raise Stopped()
        req = _Request(net_L, net_hints)
        self._queue.put(req)
        req.done.wait()
        if req.error is not None:
            raise req.error
        return req.ab

    def _loop(self) -> None:
        held: list[_Request] = []  # taken from the queue but of another grid size than the batch being formed
        while True:
            first = held.pop(0) if held else self._queue.get()
            if first is None:
                break
            batch, rest = [first], []
            for r in held:
                (batch if r.key == first.key and len(batch) < self.max_batch else rest).append(r)
            held = rest
            end = False
            while len(batch) < self.max_batch:
                try:
                    r = self._queue.get_nowait()
                except queue.Empty:
                    break
                if r is None:
                    end = True
                    break
                (batch if r.key == first.key else held).append(r)
            self._answer(batch)
            if end:
                for r in held:
                    self._answer([r])
                break

    def _answer(self, batch: list[_Request]) -> None:
        try:
            if self._stopped:
                raise Stopped()
            L = batch[0].net_L if len(batch) == 1 else np.concatenate([r.net_L for r in batch])
            hints = None
            if batch[0].net_hints is not None:
                hints = batch[0].net_hints if len(batch) == 1 else np.concatenate([r.net_hints for r in batch])
            ab = self._network(L, hints)
            start = 0
            for r in batch:
                n = r.net_L.shape[0]
                r.ab = ab[start:start + n]
                start += n
        except BaseException as exc:  # handed to the waiting workers, who raise it in their own threads
            for r in batch:
                r.error = exc
        for r in batch:
            r.done.set()

    def stop(self) -> None:
        """From now on, requests (queued or new) fail with Stopped; a network call under way finishes."""
        self._stopped = True

    def close(self) -> None:
        """Answer what is queued and end the thread."""
        self._queue.put(None)
        self._thread.join()


def batch_size(backend: Any) -> int:
    """Photos per network call for ``backend``: several only where batching leaves each photo's answer as it is
    (``batch_invariant``) or where the device is a GPU (there a batch is the whole point; its answers match the
    one-photo path within the backends' parity tolerance, not bit for bit)."""
    if getattr(backend, "device", "cpu") != "cpu":
        return GPU_BATCH
    return CPU_BATCH if getattr(backend, "batch_invariant", False) else 1


# -- the memory budget -------------------------------------------------------------------------------
class PixelBudget:
    """A semaphore counted in pixels. ``try_take(n)`` never blocks; a photo larger than the whole budget is
    let in when nothing else is in flight."""

    def __init__(self, capacity: int):
        self.capacity = max(1, int(capacity))
        self.used = 0

    def try_take(self, n: int) -> bool:
        n = min(max(0, n), self.capacity)
        if self.used and self.used + n > self.capacity:
            return False
        self.used += n
        return True

    def give(self, n: int) -> None:
        self.used -= min(max(0, n), self.capacity)


# 16-bit sources take the float L plane, float RGB and 16-bit RGB on the way to a 16-bit PNG: ~3x the memory a pixel
WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def pixels_of(source: Any) -> int:
    """A photo's cost for the budget without decoding it: its pixel count (from a file's header; an image's or
    array's size), 3x for 16-bit sources; 0 if unknown (the worker then finds out what is wrong with it). Only
    regular files are opened here (a named pipe would block)."""
    if isinstance(source, (str, os.PathLike)):
        from .imageio import open_unguarded

        try:
            if not stat.S_ISREG(os.stat(source).st_mode):
                return 0
            with open_unguarded(source) as im:
                w, h = im.size
                wide = im.mode in WIDE_MODES
            return w * h * (3 if wide else 1)
        except Exception:  # not an image, unreadable: the worker reports it
            return 0
    size = getattr(source, "size", None)
    if isinstance(size, tuple) and len(size) == 2:  # PIL
        return int(size[0]) * int(size[1])
    shape = getattr(source, "shape", None)
    return int(shape[0]) * int(shape[1]) if shape is not None and len(shape) >= 2 else 0


# -- output folders ----------------------------------------------------------------------------------
class Folders:
    """Output folders made only right before a file is written into them, and removed again (deepest first,
    while empty) when that write fails. One lock around making, writing and removing: the write itself is
    only the encoded bytes going to the page cache, so holding the lock is cheap, and no worker removes a
    folder another is about to write into."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def commit(self, dst: Path, data: bytes, stop: threading.Event | None = None) -> str | None:
        """Write ``data`` to ``dst`` atomically, making its folder first; None, or the one-line reason. Raises
        Stopped, writing nothing, when ``stop`` is set by the time the lock is ours: after a stop at most the one
        write under way completes."""
        from .imageio import write_bytes

        with self._lock:
            if stop is not None and stop.is_set():
                raise Stopped()
            try:
                created = make_folders(dst.parent)
            except OSError as exc:
                return f"cannot create output folder {dst.parent} ({exc.strerror or exc})"
            try:
                write_bytes(dst, data)
                created = []
            except OSError as exc:
                return f"cannot write {dst} ({exc.strerror or exc})"
            finally:  # the write failed or was interrupted: folders made for it go too
                remove_folders(created)
        return None


def make_folders(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; return the ones this call created, deepest first."""
    missing = []
    while not folder.is_dir() and folder.parent != folder:
        missing.append(folder)
        folder = folder.parent
    created: list[Path] = []
    try:
        for d in reversed(missing):
            try:
                d.mkdir()
            except FileExistsError:  # made meanwhile by another job of a sharded batch: not ours to remove
                if not d.is_dir():
                    raise
                continue
            created.insert(0, d)
    except BaseException:
        remove_folders(created)
        raise
    return created


def remove_folders(created: list[Path]) -> None:
    """Remove folders ``make_folders`` created (deepest first) as long as they are empty."""
    for d in created:
        try:
            d.rmdir()
        except OSError:  # not empty (another job wrote into it) or already gone: leave it and its parents
            break


# -- the engine ----------------------------------------------------------------------------------------
@dataclass
class Stage:
    """What a worker needs besides its job: the shared network, the colour kernel's thread count, the output
    folders and the stop flag (``check()`` between stages)."""

    network: Callable[[np.ndarray, np.ndarray | None], np.ndarray]
    kernel_threads: int | None
    folders: Folders
    stop: threading.Event

    def check(self) -> None:
        if self.stop.is_set():
            raise Stopped()

    @classmethod
    def alone(cls, colorizer: Any) -> "Stage":
        """One photo outside a batch: the Colorizer's own network and kernel threads, a stop flag never set."""
        return cls(colorizer.network, None, Folders(), threading.Event())


def run_pipeline(colorizer: Any, jobs: Iterable[tuple[Any, int]], work: Callable[[Any, Stage], Any], *,
                 workers: int | None = None, pixels_in_flight: int | None = None, ordered: bool = False,
                 holds_pixels: Callable[[Any], bool] = lambda result: False, count: int | None = None,
                 on_done: Callable[[int, Any], None] | None = None) -> Iterator[tuple[int, Any]]:
    """Run ``work(job, stage)`` for every ``(job, pixels)`` of ``jobs`` on a pool of worker threads, the network
    shared through one NetworkBatcher; yield ``(position, result)`` as each finishes (``ordered``: in input
    order). ``holds_pixels(result)``: whether a result still holds its photo (an image handed back), so its
    pixels return to the budget only when it is yielded. ``count``: how many jobs there are, if known (one job
    gets the colour kernel's threads; several run it single-threaded, one photo per worker). ``on_done(position,
    result)`` is called in the worker's thread as each job ends (one at a time), so a caller that counts finished
    jobs there counts every file written, even when the batch is stopped before it could collect them.

    Stops at the first BaseException a worker raises (a bug, or a KeyboardInterrupt) and at Ctrl-C in the
    caller's thread: queued jobs are dropped, running ones end at their next stage without writing, the
    network thread ends, and the exception is re-raised here."""
    n_workers = max(1, workers or available_cores() + 1)
    if count == 1:
        n_workers = 1
    budget = PixelBudget(pixels_in_flight or DEFAULT_PIXELS_IN_FLIGHT)
    batcher = NetworkBatcher(colorizer.network, batch_size(colorizer.backend))
    # One worker: the colour kernel keeps its threads (the Colorizer's); several: one photo per worker, one thread each.
    stage = Stage(batcher.run, None if n_workers == 1 else 1, Folders(), threading.Event())
    pool = ThreadPoolExecutor(n_workers, thread_name_prefix="colorize-gan")
    done_lock = threading.Lock()

    def run_one(pos: int, job: Any) -> Any:
        result = work(job, stage)
        if on_done is not None:
            with done_lock:
                on_done(pos, result)
        return result

    pending: dict[Future, tuple[int, int]] = {}
    finished: dict[int, tuple[Any, int]] = {}  # ordered: results waiting for an earlier one
    source = iter(enumerate(jobs))
    upcoming: tuple[int, Any, int] | None = None
    next_out = 0
    ok = False
    try:
        while True:
            while len(pending) < n_workers + 1:  # one queued ahead, so a worker never waits for the caller
                if upcoming is None:
                    nxt = next(source, None)
                    if nxt is None:
                        break
                    pos, (job, px) = nxt
                    upcoming = (pos, job, px)
                pos, job, px = upcoming
                if not budget.try_take(px):
                    break
                pending[pool.submit(run_one, pos, job)] = (pos, px)
                upcoming = None
            if not pending and upcoming is None and not finished:
                break
            if pending:
                done, _ = wait(list(pending), timeout=0.5, return_when=FIRST_COMPLETED)
            else:
                done = set()
            for fut in done:
                pos, px = pending.pop(fut)
                result = fut.result()  # a worker's BaseException goes to the finally below
                held = holds_pixels(result)
                if not held:
                    budget.give(px)
                if ordered:
                    finished[pos] = (result, px if held else 0)
                else:
                    yield pos, result
                    budget.give(px if held else 0)
            while ordered and next_out in finished:
                result, px = finished.pop(next_out)
                yield next_out, result
                budget.give(px)
                next_out += 1
        ok = True
    finally:
        if not ok:  # workers end at their next check, queued network requests fail with Stopped
            stage.stop.set()
            batcher.stop()
        try:
            pool.shutdown(wait=True, cancel_futures=not ok)
        finally:  # even when a second Ctrl-C cuts the wait short: the network thread ends before the backend closes
            batcher.close()
