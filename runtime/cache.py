"""The project's one per-user cache folder: compiled colour kernels (runtime.image.fastcolor) and TensorRT
engines (runtime.backends.gpu.engine_cache) live under it. Standard library only."""
from __future__ import annotations

import os
import sys
from pathlib import Path

ENV_CACHE = "COLORIZE_GAN_CACHE"


def cache_dir() -> Path:
    """$COLORIZE_GAN_CACHE, else the platform's per-user cache folder, plus ``colorize-gan``."""
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE])
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "colorize-gan"
