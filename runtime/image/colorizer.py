"""The public API: ``Colorizer.load(model=None, backend="auto").colorize(image)``.

It wraps a backend (which only maps L -> ab on padded batches) with the image side of the job:
the network runs at a render size (the longer side scaled down to ``render_size``, aspect ratio
kept, reflect-padded to the size multiple and cropped back, never stretched); its ab is upsampled
bilinearly to full resolution and merged with the full-resolution L of the input, converted to
sRGB and clipped to the gamut. Deterministic: eval-mode network, no randomness anywhere.

The step functions ``prepare`` / ``predict_ab`` / ``finish`` let video and GIMP frame modes batch
and stabilise ab between frames (docs/CONTRACTS.md).
"""
from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from . import fastcolor
from ..backends.base import Backend, BackendUnavailable, ModelFiles
from ..backends.registry import backend_class, candidates
from .color import grey_to_l, rgb_to_l
from .hint_spread import spread_hints
from .reference import Reference, apply_reference, prepare_reference
from .geometry import Geometry, network_input, prepare_l, prepare_src8
from ..model.bundle import resolve
from ..model.spec import ModelSpec

if TYPE_CHECKING:
    from PIL import Image

# Chosen by measurement with the first trained default model on its 10 held-out validation photos at full
# resolution: render 256 scored best on PSNR, CIEDE2000 and colourfulness alike (384, 512 and 768 were each worse:
# the model sees the whole scene at about the scale it was trained on), and its network time is ~1/3 of 512's
# (docs/benchmarks.md). Checked again for the second default on TRAINING photos (tools/choose_render_size.py,
# docs/default-model/history/effnet-s4-gain1.73, "Mirror averaging and the render size"): 224 scored 0.1 dB better on
# 289 small photos of mix/, 256 0.2 dB better on 30 of the larger photos/, which are closer to what users bring; and
# for the blend default (docs/default-model/README.md): 256 0.03 dB better than 224 on the 289; 256 stays.
DEFAULT_RENDER_SIZE = 256
# Who follows colour hints. "spread": the automatic answer plus the hints spread along the photo's edges (local: a
# dot's colour stops at clear edges, joins up with other dots between them, and beyond them fades over about a fifth
# of the picture, where parts that look like a hinted one take its colour); "network": the model's own hint input.
# The default models' hint input follows hints weakly and not locally (the previous default: +0.24 dB at 10 points,
# and five dots on a small grey square turn the sky above it orange; docs/default-model/history/effnet-s4-gain1.73),
# so "spread" is the default (docs/default-model/README.md: +3.33 dB at 10 points with the blend default).
HINT_MODES = ("spread", "network")
# The automatic colour is the mean of the network's answers for the picture and its mirror image (test-time
# augmentation): where the two disagree the colour is a guess, and averaging tones guesses down while colours the
# network is sure of stay. Chosen on TRAINING photos (docs/default-model/history/effnet-s4-gain1.73, "Mirror averaging
# and the render size"): +0.18 dB PSNR on 289 photos of mix/ and +0.10 dB on 30 larger photos at render 256, for
# 1.5-2.5 % less colour; for the blend default +0.16 dB on the 289 (docs/default-model/README.md). It costs a second
# network pass. mirror=False (CLI --no-mirror) runs one pass.


def load_backend(files: ModelFiles, backend: str = "auto", threads: int | None = None) -> Backend:
    """The first backend of ``backend``'s candidates that loads; BackendUnavailable lists why each failed."""
    reasons = []
    for name in candidates(backend):
        try:
            cls = backend_class(name)
            cls.check()
            return cls(files, threads=threads)
        except BackendUnavailable as exc:
            reasons.append(f"{name}: {exc}")
    raise BackendUnavailable(f"no usable backend for '{backend}' ({'; '.join(reasons)})")


class Colorizer:
    """A loaded model on one backend. Thread-compatible, not thread-safe: use one per thread."""

    def __init__(self, backend: Backend, files: ModelFiles, render_size: int | None = None, threads: int | None = None,
                 hint_mode: str = "spread", mirror: bool = True):
        self.backend = backend
        self.files = files
        self.spec: ModelSpec = files.spec
        self.threads = threads
        if hint_mode not in HINT_MODES:
            raise ValueError(f"hint_mode must be one of {', '.join(HINT_MODES)}, got {hint_mode!r}")
        self.hint_mode = hint_mode
        self.mirror = bool(mirror)
        self.render_size = self._check_render_size(render_size or DEFAULT_RENDER_SIZE)
        self._scene: Any = None  # the scene encoder (False: none; an exception: it failed), built on first use
        self._scene_lock = threading.Lock()

    @classmethod
    def load(cls, model: str | None = None, backend: str = "auto", render_size: int | None = None,
             threads: int | None = None, hint_mode: str = "spread", mirror: bool = True) -> "Colorizer":
        files = resolve(model)
        return cls(load_backend(files, backend, threads), files, render_size, threads, hint_mode, mirror)

    @property
    def backend_name(self) -> str:
        return self.backend.name

    def _check_render_size(self, size: int) -> int:
        if int(size) < self.spec.size_multiple:
            raise ValueError(f"render size must be >= {self.spec.size_multiple} (the model's size multiple), got {size}")
        return int(size)

    def _render_size(self, render_size: int | None) -> int:
        """A call's render size: its own (checked) or the Colorizer's."""
        return self._check_render_size(render_size) if render_size else self.render_size

    # -- step functions -------------------------------------------------------------------------
    def prepare(self, L_full: np.ndarray, render_size: int | None = None) -> tuple[np.ndarray, Geometry]:
        return prepare_l(L_full, self.spec.size_multiple, self._render_size(render_size))

    def prepare_src8(self, src8: np.ndarray, render_size: int | None = None) -> tuple[np.ndarray, Geometry]:
        """As :meth:`prepare` from 8-bit grey/RGB pixels (runtime.image.geometry.prepare_src8)."""
        return prepare_src8(src8, self.spec.size_multiple, self._render_size(render_size))

    @property
    def takes_hints(self) -> bool:
        """Whether the model takes colour hints (``spec.hints``)."""
        return bool(self.spec.hints)

    def hint_input(self, hints: Any, geom: Geometry) -> np.ndarray | None:
        """Hints (runtime.image.hints: an RGBA image or a point list, full-resolution coordinates) -> the network's hint
        input for a frame of ``geom``, or None when there are none. A model without hint inputs refuses hints."""
        from .hints import HintError, hint_input

        net = hint_input(hints, geom)
        if net is not None and not self.takes_hints:
            raise HintError("this model takes no colour hints (its spec has hints: false)")
        return net

    def predict_ab(self, net_L: np.ndarray, net_hints: np.ndarray | None = None, network: Any = None,
                   reference: Any = None) -> np.ndarray:
        """(N,1,h,w) L [+ (N,3,h,w) hint input] -> (N,2,h,w) ab. No hints is the automatic result, bit for bit.
        With hints, ``hint_mode`` says who follows them: "spread" (the default) takes the network's automatic answer
        and spreads the hints over it along the photo's edges (runtime.image.hint_spread); "network" feeds them to the
        model's hint input and returns its answer (see HINT_MODES). ``network``: what runs :meth:`network` (the batch
        runner passes its shared network thread, runtime.image.pipeline.NetworkBatcher.run). ``reference``: a
        prepared reference (:meth:`reference`), whose colour is spread in first (runtime.image.reference); hints are
        followed after it, so where both speak the hints win."""
        network = network or self.network
        ab = network(net_L, net_hints if net_hints is not None and self.hint_mode == "network" else None)
        if reference is not None:
            ab = apply_reference(ab, net_L, reference, scene=self.scene_encoder() if reference.parts else None)
        if net_hints is None or (self.hint_mode == "network" and reference is None):
            return ab
        # Spread mode, or network mode with a reference: the hints are spread over the result last, so they win.
        return spread_hints(ab, net_L, net_hints)

    def reference(self, image: Any, network: Any = None, render_size: int | None = None,
                  max_pixels: int | None = 150_000_000, compare_scene: bool = True) -> Reference:
        """A colour reference (a PIL image, an array or a path) prepared for :meth:`colorize`'s ``reference`` at
        ``render_size`` (default the Colorizer's; pictures must use the same): prepare it once and pass it for every
        picture it belongs to (a film's frames, a folder). A bad file raises runtime.image.imageio.ImageError, a bad
        array or a prepared reference of another render size ValueError; each message is one line. ``compare_scene``
        False: the reference is not compared with pictures as wholes (a film's key frame, which belongs to its shot)."""
        size = self._render_size(render_size)
        if isinstance(image, Reference):
            if image.render_size and image.render_size != size:
                raise ValueError(f"the reference was prepared at render size {image.render_size}, the picture is seen "
                                 f"at {size}: prepare it with render_size={size}")
            return image
        if isinstance(image, (str, os.PathLike)):
            from .imageio import read_image

            image = read_image(image, max_pixels).image
        return prepare_reference(image, lambda rgb: self.prepare_src8(rgb, size), network or self.network, size,
                                 self.scene_encoder(), compare_scene)

    def scene_encoder(self) -> Any:
        """net L (1, 1, h, w) -> the picture as the encoder sees it (runtime.backends.scene.SceneView: the whole as a
        unit vector, the parts at 1/8 scale), built on first use; None for a model without a scene graph (the
        reference matcher then describes cells by the automatic colour and does not compare scenes). A damaged one
        raises runtime.model.bundle.ModelError, each time it is asked for (it is not loaded again)."""
        with self._scene_lock:
            if self._scene is None:
                from ..backends.scene import scene_encoder

                try:
                    self._scene = scene_encoder(self.files, self.threads) or False
                except ValueError as exc:  # ModelError
                    self._scene = exc
            if isinstance(self._scene, Exception):
                raise self._scene
            return self._scene or None

    def network(self, net_L: np.ndarray, net_hints: np.ndarray | None = None) -> np.ndarray:
        """The backend's answer; with ``mirror`` (the default) the mean of its answers for the picture and for its
        mirror image, mirrored back (the note on mirror averaging at the top of this module). Both go through the
        backend as one batch of 2N (on 2 CPU cores ~20 % faster than two calls; GPU backends split big batches)."""
        if not self.mirror:
            return self.backend.run(net_L, net_hints)
        n = net_L.shape[0]
        both_L = np.concatenate([net_L, net_L[..., ::-1]])
        both_h = None if net_hints is None else np.concatenate([net_hints, net_hints[..., ::-1]])
        ab = self.backend.run(both_L, both_h)
        return ((ab[:n] + ab[n:, :, :, ::-1]) * np.float32(0.5)).astype(np.float32, copy=False)

    def finish(self, L_full: np.ndarray, ab_net: np.ndarray, geom: Geometry, saturation: float = 1.0) -> np.ndarray:
        """L (H, W) + network ab (2, net_h, net_w) -> sRGB float32 (H, W, 3) in [0, 1]."""
        return fastcolor.finish(L_full, ab_net, geom, saturation, out="f32", threads=self.threads)

    def finish_u8(self, L_full: np.ndarray, ab_net: np.ndarray, geom: Geometry, saturation: float = 1.0) -> np.ndarray:
        """As :meth:`finish`, straight to uint8 (the fast path for 8-bit outputs)."""
        return fastcolor.finish(L_full, ab_net, geom, saturation, out="u8", threads=self.threads)

    # -- whole images ----------------------------------------------------------------------------
    def colorize_array(self, image: np.ndarray, saturation: float = 1.0, render_size: int | None = None,
                       hints: Any = None, reference: Any = None) -> np.ndarray:
        """Grey (H, W) or RGB(A) (H, W, 3|4) array -> sRGB float32 (H, W, 3) in [0, 1].
        uint8 and uint16 are scaled by their range; floats are taken as [0, 1]. ``hints``: as :meth:`colorize`."""
        a = np.asarray(image)
        if a.ndim == 3 and a.shape[2] == 4:
            a = a[..., :3]
        if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] != 3):
            raise ValueError(f"expected a grey (H, W) or RGB (H, W, 3) array, got shape {a.shape}")
        if a.dtype == np.uint8:
            L = fastcolor.src8_to_l(a)
        else:
            scale = 65535.0 if a.dtype == np.uint16 else 1.0
            f = np.clip(a.astype(np.float32) / np.float32(scale), 0, 1)
            L = grey_to_l(f) if f.ndim == 2 else rgb_to_l(f)
        net_L, geom = self.prepare(L, render_size)
        ref = None if reference is None else self.reference(reference, render_size=render_size)
        return self.finish(L, self.predict_ab(net_L, self.hint_input(hints, geom), reference=ref)[0], geom, saturation)

    def colorize(self, img: "Image.Image", saturation: float = 1.0, render_size: int | None = None,
                 hints: Any = None, reference: Any = None) -> "Image.Image":
        """A PIL image of any supported mode -> a colour PIL image of the same size (RGB, or RGBA if
        it had alpha; 16-bit grey inputs give an RGB image quantised to 8 bits: use
        :meth:`colorize_planes` for 16-bit output). EXIF orientation is the caller's business
        (runtime.image.imageio.read_image applies it).

        ``hints`` (models with ``spec.hints``): an RGBA image the size of ``img`` whose opaque pixels are
        hint colours, or a list of points ``(x, y, colour[, radius])`` / runtime.image.hints.HintPoint. None, an
        empty list or a fully transparent image give the automatic result, bit for bit.

        ``reference``: a colour photo of the same scene, person or object (any size and framing; a PIL image, array,
        path, or one prepared with :meth:`reference`): where parts of the picture match parts of it, they take its
        colour (runtime.image.reference); elsewhere the automatic colour stays. None, or a reference without colour,
        gives the automatic result, bit for bit. With hints too, the hints win where they are."""
        from . import imageio

        planes = imageio.split_luminance(img)
        rgb = self.colorize_planes(planes, saturation, render_size, bits=8, hints=hints, reference=reference)
        return imageio.merge_planes(rgb, planes.alpha)

    def colorize_planes(self, planes: Any, saturation: float = 1.0, render_size: int | None = None,
                        bits: int = 8, timings: dict[str, float] | None = None, hints: Any = None, *,
                        network: Any = None, threads: int | None = None, rgbx: bool = False,
                        reference: Any = None) -> np.ndarray:
        """The image path, top to bottom, from a decoded picture's luminance planes (runtime.image.imageio.Planes,
        L at full resolution) to uint8 or uint16 RGB. The batch runner wraps it in decoding and encoding
        (runtime.image.jobs.colorize_file), and :meth:`colorize` calls it too; video and GIMP frames use the same
        steps one by one (:meth:`prepare`, :meth:`predict_ab`, :meth:`finish`) to stabilise ab between frames.
        ``network`` and ``threads`` (the colour kernel's; default the Colorizer's): the batch runner's shared
        network thread and one kernel thread per photo. ``rgbx``: 8-bit output as RGBX (fastcolor.merge).
        ``reference``: as :meth:`colorize` (prepared once here if it is not a prepared one)."""
        t0 = time.perf_counter()
        # 1. The network's input at the render size (resized, reflect-padded to the size multiple) and its geometry.
        net_L, geom = network_input(planes, self.spec.size_multiple, self._render_size(render_size), bits)
        # 2. The user's colour hints, if any, on the same grid.
        net_hints = self.hint_input(hints, geom)
        t1 = time.perf_counter()
        # 3. The backend: L -> ab at the render size (with hints: followed as hint_mode says).
        ref = None if reference is None else self.reference(reference, network, render_size)
        ab = self.predict_ab(net_L, net_hints, network, ref)[0]
        t2 = time.perf_counter()
        # 4. ab upsampled to full resolution and merged with the full-resolution L -> sRGB, in the C kernel.
        rgb = fastcolor.merge(planes, ab, geom, saturation, bits, threads=threads or self.threads, rgbx=rgbx)
        if timings is not None:
            timings["resize"] = timings.get("resize", 0.0) + t1 - t0
            timings["network"] = timings.get("network", 0.0) + t2 - t1
            timings["to_rgb"] = timings.get("to_rgb", 0.0) + time.perf_counter() - t2
        return rgb

    def colorize_many(self, inputs: Any, outputs: Any = None, hints: Any = None, saturation: float = 1.0,
                      quality: int = 92, max_pixels: int | None = 150_000_000, workers: int | None = None,
                      pixels_in_flight: int | None = None, reference: Any = None) -> Any:
        """Colorize many photos with every core busy; an iterator of runtime.image.jobs.BatchResult, one per input,
        in input order (``index``, ``input``, ``output``, ``image``, ``error``, ``seconds``, ``ok``).

        ``inputs``: paths, PIL images or arrays (uint8 as :meth:`colorize` of the same image; uint16 and float as
        :meth:`colorize_array` takes them). ``outputs``: None (each result carries the colorized PIL image, 8-bit, as
        :meth:`colorize` returns it) or one path per input (written atomically in the format its suffix names; a path
        input is handled exactly as the command line does it: ICC profile and EXIF kept, 16-bit PNG for 16-bit
        grey; ``image`` is then None). ``hints``: None or one hint per input
        (None, an RGBA image, a point list or a hint-image path). ``reference``: one colour reference for every
        input (as :meth:`colorize`; prepared once). A bad input is that result's one-line ``error``;
        the rest go on. The pixels are those of :meth:`colorize` / the command line for the same input, bit for bit
        on the CPU backends. Decoding, the network (micro-batches of several photos where that changes no answer,
        larger on GPUs), the colour kernel and encoding overlap on ``workers`` threads (default: cores + 1), and at
        most ``pixels_in_flight`` pixels (default 100 MP) are held at once (runtime/image/pipeline.py)."""
        from .jobs import FileOptions, colorize_many

        return colorize_many(self, inputs, outputs, hints, FileOptions(saturation, quality, max_pixels or None),
                             workers=workers, pixels_in_flight=pixels_in_flight, reference=reference)

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()

    def __enter__(self) -> "Colorizer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
