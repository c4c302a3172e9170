"""colorize-gan runtime: colorize greyscale images with the embedded model.

    from runtime import Colorizer
    c = Colorizer.load()            # embedded default model, best available backend
    colour = c.colorize(pil_image)

``Colorizer`` is imported lazily (PEP 562) so that ``import runtime`` and ``colorize-gan --help``
stay fast and work without numpy-heavy or torch imports.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Colorizer", "__version__"]

if TYPE_CHECKING:
    from .image.colorizer import Colorizer


def __getattr__(name: str) -> Any:
    if name == "Colorizer":
        from .image.colorizer import Colorizer

        return Colorizer
    raise AttributeError(f"module 'runtime' has no attribute {name!r}")
