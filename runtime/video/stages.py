"""Two threads around the video pipeline's own, so decoding, the network and encoding overlap.

``Prefetch`` runs an iterator (demux + decode + each frame's L and network input) a few items ahead in a thread
of its own; ``Serial`` runs calls (RGB -> YUV, the encoder, the muxer, side-stream packets) one after another, in
the order given, in another. Both are bounded (a few frames: 1080p RGB is 6 MB a frame), both hand an exception
from their thread to the caller's at the next call, and both stop cleanly on ``close()`` (Ctrl-C: the caller
closes them before it closes the containers). PyAV and FFmpeg release the GIL while they decode, convert and
encode, as ONNX Runtime does while the network runs, so threads are enough.
"""
from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Iterable, Iterator

_END = object()


class Prefetch:
    """``for item in Prefetch(iterable, depth)``: the items of ``iterable``, produced in a thread of its own up to
    ``depth`` ahead; the producer's exception is raised here, where the item would have been."""

    def __init__(self, iterable: Iterable[Any], depth: int = 4):
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(iter(iterable),), name="colorize-gan-decode", daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, it: Iterator[Any]) -> None:
        try:
            for item in it:
                if not self._put((item, None)):
                    return
            self._put((_END, None))
        except BaseException as exc:  # handed to the consumer's thread
            self._put((_END, exc))

    def __iter__(self) -> Iterator[Any]:
        while True:
            item, exc = self._queue.get()
            if exc is not None:
                raise exc
            if item is _END:
                return
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class Serial:
    """``submit(fn, *args)`` runs the calls one after another, in order, in a thread of its own, at most ``depth``
    waiting; ``finish()`` waits for all of them. An exception in a call is raised by the next ``submit`` or
    ``finish``, and the calls after it are dropped."""

    def __init__(self, depth: int = 4):
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="colorize-gan-encode", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            call = self._queue.get()
            if call is _END:
                return
            if self._error is not None or self._stop.is_set():
                continue  # drop what follows a failure or a stop; keep draining so submit never blocks for ever
            fn, args = call
            try:
                fn(*args)
            except BaseException as exc:
                self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            self._stop.set()  # first: nothing queued after the failure may run once the error is taken
            exc, self._error = self._error, None
            raise exc

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        self._raise()
        self._queue.put((fn, args))

    def finish(self) -> None:
        """Wait for every call submitted so far; raise the first failure."""
        done = threading.Event()
        self._queue.put((done.set, ()))
        while not done.wait(0.1):
            if self._error is not None or not self._thread.is_alive():
                break
        self._raise()

    def close(self) -> None:
        """Drop the calls not started, let the one under way end, and stop the thread."""
        self._stop.set()
        self._queue.put(_END)
        self._thread.join()
