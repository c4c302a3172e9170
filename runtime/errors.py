"""One-line error text: what the CLI, the backends and the model loader put after "cannot ...: ".

Exception messages from decoders, ONNX Runtime or ctypes can be long, multi-line or empty; every message the
project shows a user is one line (see the brief: bad input gets a clear one-line error).
"""
from __future__ import annotations


def one_line(exc: BaseException, limit: int | None = 200) -> str:
    """The first line of ``exc``'s message (cut to ``limit`` characters), or its type name when the message is empty."""
    lines = str(exc).strip().splitlines()
    return lines[0][:limit] if lines else type(exc).__name__
