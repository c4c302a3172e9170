"""Colour from a reference photo: "colour it like this one" (issue 19; a first, hand-built matcher).

A reference is a colour photo of the same scene, person or object, in any framing. Its colour reaches the grey
picture the way hints do: the runtime finds, for each part of the picture, the part of the reference that looks the
same, takes the reference's colour there as a hint where the match is trusted, and spreads those hints over the
automatic colour along the picture's edges (runtime/image/hint_spread.py); where nothing matches, the automatic
colour stays. The reference's luminance is compared with the picture's, never its colour.

How parts are compared. Both pictures go through the network at the render size (the reference once, however many
pictures use it) and are cut into cells of ``CELL`` x ``CELL`` network pixels. A cell is described by its lightness
(mean, and the mean over two larger neighbourhoods), its texture (standard deviation and mean gradient of L) and
what the model's encoder sees there: its features at 1/8 scale (the scene graph's ``parts``,
runtime/backends/scene.py; 40 channels for EfficientNet-Lite0), brought to the cells' grid and made a unit vector
times ``PARTS_WEIGHT``. Lightness and texture are scaled so that a difference of 1 is about what separates a match
from a near miss. A model without a scene graph describes a cell by its automatic a and b instead (cells the network
colours alike are, to it, the same kind of thing): the first matcher's way, which a distribution head's decoded
colour makes unsteady (a near-tie between two bins flips a flat region's b by ~6 under a 5-pixel shift, and the
matches with it; docs/default-model/campaign.md). The encoder's parts do not depend on how colour is decoded, and
match better: key frames of tree.avi +8.48 -> +10.35 dB, vtest.avi +4.81 -> +7.95 dB (docs/video.md).

Which matches are trusted. A cell takes the colour of its nearest reference cell when their feature distance is
below ``TAU``. Whether the reference as a whole belongs to the picture is judged by mutual matches (a cell whose
nearest reference cell has that cell, or one as close, as its own nearest): a related reference has many, an
unrelated one few (with the first matcher's cells, in a first look at 28 photos: 35-78 % of cells with the reference
moved, scaled and mirrored, against 0-36 %, mostly under 25 %). The reference's contribution is scaled by ``gate``
from 0 at ``GATE_LOW`` mutual matches to 1 at ``GATE_HIGH`` (``COLOUR_GATE`` for cells described by the automatic
colour), so an unrelated photo changes little. A reference with no colour (mean chroma under
``GREY_CHROMA``, the trainer's rule for a greyscale photo) is ignored: the result is the automatic one, bit for bit.

Whether the two show the same kind of scene. Mutual matches compare parts; an unrelated photo whose tones and
textures happen to match (a kitchen's wooden cabinets and a forest) passes them and washes the whole picture with
its colour. So the pictures are also compared as wholes: the model's encoder (ImageNet-pretrained) describes each
by its features pooled over the picture (the scene graph, runtime/backends/scene.py), and the gate is multiplied by
``scene_factor``: 0 below ``SCENE_LOW`` cosine similarity, 1 above ``SCENE_HIGH``. Measured with the embedded model:
unrelated photo pairs score 0.04-0.34 (median 0.16), frames of one shot 0.47-0.90, a photo and a crop of it
0.29-0.86 (median 0.65) (tools/scene_similarity.py; docs/default-model/reference_scene_similarity.json). A model
without a scene graph skips the comparison.

Numpy only; deterministic on one machine (near-ties between two reference cells may break differently on another
CPU's arithmetic). TAU and the first matcher's gate were chosen on 40 TRAINING photos (tools/evaluate_reference.py --split
training --tune; docs/default-model/reference_tuning.json): of 9 settings, the one with the smallest loss on
unrelated references (-0.06 dB) that keeps +4.35 dB on related ones. A longer TAU or a lower gate gains ~0.2 dB on
related references and loses 0.2-0.4 dB on unrelated ones. The scene ramp was chosen on 100 TRAINING photos the same
way (--tune-scene; docs/default-model/reference_scene_tuning.json): 0.2-0.3 is the lowest ramp under which no unrelated
photo lost anything (the worst had lost 5.0 dB), at -0.002 dB on related ones; 0.15-0.25 let one lose 0.07 dB.
PARTS_WEIGHT with the gate on 60 TRAINING photos (--tune-parts; docs/default-model/reference_parts_tuning.json): 1.0
and a gate of 0.15-0.3 give +6.38 dB on related references and no loss on any unrelated one (0.1-0.25 gains nothing
more and lets one lose 0.68 dB; with the first matcher's 0.25-0.4, +5.85); 0.7 gains more on related ones but lets
unrelated ones lose up to 6.6 dB, 1.4 matches too little (+2.12). The first matcher's TAU and gate (COLOUR_GATE) stay
for cells described by the automatic colour.

What it does not know: matching compares lightness and texture, so the grey photo's tones should follow the
reference's luminance (a print whose exposure or film response differs much matches less, and the gate then keeps
it close to automatic); it finds the same *kind* of thing (sky, skin, a wall) rather than the same object, so two
similar objects of different colour can swap; colour crosses weak edges as hint colours do. The scene ramp was
chosen with crops of the picture's own colour original as related references; a different photo of the same place
scores lower than a crop (frames of one shot: from 0.47), and one far from the picture in content or framing (a
close-up for a wide view) may fall under the ramp and be ignored.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .hint_features import SCALES, box_mean
from .hint_spread import spread_hints

CELL = 4  # network pixels per cell side
TAU = 1.0  # feature distance below which a match is trusted
MUTUAL_SLACK = 0.15  # a match is mutual if no picture cell is closer to its reference cell by more than this
CHUNK = 2048  # picture cells matched at a time: the distance block stays ~16 MB however large the render size
GATE_LOW, GATE_HIGH = 0.15, 0.3  # mutual-match fraction at which a reference starts to count / counts fully
COLOUR_GATE = (0.25, 0.4)  # the same for cells described by the automatic colour (a model without a scene graph)
GREY_CHROMA = 4.0  # mean chroma (Lab units) under which a reference has no colour to give
SCENE_LOW, SCENE_HIGH = 0.2, 0.3  # scene similarity (cosine) at which a reference starts to count / counts fully
PARTS_WEIGHT = 1.0  # the weight of the encoder's part features (a unit vector per cell) among the cell features
# Scales of the cell features (lightness, its means over 5x5 and 11x11 cells, texture: std and gradient, automatic a
# and b): hint_features.SCALES, where the hint fill describes pixels the same way.


@dataclass(frozen=True)
class Reference:
    """A reference prepared for matching (``prepare_reference``): its cells' features and colours."""

    features: np.ndarray  # (M, F) float32
    ab: np.ndarray  # (M, 2) float32: the reference's own colour, mean over each cell
    colourless: bool  # no colour to give: ignored
    render_size: int = 0  # the render size it was seen at: pictures must be seen at the same one (features are scale-bound)
    scene: np.ndarray | None = None  # its unit scene vector (runtime/backends/scene.py); None: not compared
    parts: bool = False  # whether its cells are described by the encoder's part features (else by the automatic colour)


def _pool(x: np.ndarray, k: int = CELL) -> np.ndarray:
    """Mean over k x k cells of (..., h, w) (the last rows / columns that do not fill a cell are left out)."""
    h, w = x.shape[-2] // k, x.shape[-1] // k
    return x[..., : h * k, : w * k].reshape(*x.shape[:-2], h, k, w, k).mean(axis=(-3, -1))


def upsample2(x: np.ndarray) -> np.ndarray:
    """(C, h, w) -> (C, 2h, 2w), bilinear with half-pixel centres (torch's align_corners=False), edges clamped."""
    def axis(a: np.ndarray, k: int) -> np.ndarray:
        prev = np.concatenate([a.take([0], k), a.take(range(a.shape[k] - 1), k)], k)
        nxt = np.concatenate([a.take(range(1, a.shape[k]), k), a.take([a.shape[k] - 1], k)], k)
        out = np.stack([0.75 * a + 0.25 * prev, 0.75 * a + 0.25 * nxt], k + 1)
        return out.reshape(*a.shape[:k], 2 * a.shape[k], *a.shape[k + 1:])

    return axis(axis(np.asarray(x, np.float32), 1), 2)


def cell_features(L: np.ndarray, ab: np.ndarray | None, parts: np.ndarray | None = None) -> np.ndarray:
    """Network L (h, w) in [0, 100] and the network's ab (2, h, w; unused with ``parts``) -> cell features
    (H * W, F), row-major cells:
    lightness and texture, then what the network makes of the cell: with ``parts`` (the encoder's features at 1/8
    scale, (C, h/8, w/8)) those at the cell, as a unit vector times PARTS_WEIGHT; else its automatic a and b."""
    L = np.asarray(L, np.float32)
    Lm = _pool(L)
    sd = np.sqrt(np.maximum(_pool(L * L) - Lm * Lm, 0))
    gy, gx = np.gradient(L)
    grad = _pool(np.hypot(gy, gx))
    near, far = box_mean(Lm[None], 2)[0], box_mean(Lm[None], 5)[0]
    if parts is None:
        abm = _pool(np.asarray(ab, np.float32))
        f = np.stack([Lm, near, far, sd, grad, abm[0], abm[1]]) / SCALES[:, None, None]
    else:
        f = np.stack([Lm, near, far, sd, grad]) / SCALES[:5, None, None]
        p = upsample2(parts)[:, : Lm.shape[0], : Lm.shape[1]]  # at 1/8 -> the 4x4 cells' grid
        p = p * (np.float32(PARTS_WEIGHT) / np.maximum(np.sqrt((p * p).sum(0, keepdims=True)), np.float32(1e-6)))
        f = np.concatenate([f, p])
    return np.ascontiguousarray(f.reshape(f.shape[0], -1).T, dtype=np.float32)


def as_rgb8(image: Any) -> np.ndarray:
    """A PIL image or an array (uint8; uint16 scaled by 65535; float taken as [0, 1]; grey, RGB or RGBA) -> uint8
    (H, W, 3) RGB."""
    from PIL import Image

    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    a = np.asarray(image)
    if a.dtype != np.uint8:
        scale = 65535.0 if a.dtype == np.uint16 else 1.0
        a = (np.clip(a.astype(np.float32) / np.float32(scale), 0, 1) * 255 + 0.5).astype(np.uint8)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ValueError(f"a reference must be a grey, RGB or RGBA picture, got an array of shape {a.shape}")
    return np.ascontiguousarray(a[..., :3])


def prepare_reference(image: Any, prepare_src8: Callable, network: Callable, render_size: int = 0,
                      scene: Callable | None = None, compare_scene: bool = True) -> Reference:
    """A colour reference (PIL image or array, see ``as_rgb8``) -> Reference. ``prepare_src8`` (taking the picture)
    and ``network`` are the Colorizer's, ``render_size`` the size they see it at (recorded: pictures must use it),
    ``scene`` its scene encoder (runtime.backends.scene; None: cells are described by the automatic colour and the
    scenes are not compared), ``compare_scene`` False: the encoder describes the cells but the reference is not
    compared with pictures as a whole (a film's key frame)."""
    from PIL import Image

    from .color import rgb_to_lab

    rgb = as_rgb8(image)
    net_L, g = prepare_src8(rgb)
    small = np.asarray(Image.fromarray(rgb).resize((g.w, g.h), Image.Resampling.BILINEAR, reducing_gap=3.0))
    lab = rgb_to_lab(small.astype(np.float32) / np.float32(255))
    pad = ((g.top, g.net_h - g.h - g.top), (g.left, g.net_w - g.w - g.left))
    true_ab = np.stack([np.pad(lab[..., c], pad, mode="reflect") for c in (1, 2)]).astype(np.float32)
    chroma = float(np.hypot(lab[..., 1], lab[..., 2]).mean())
    ab = _pool(true_ab).reshape(2, -1).T
    view = None if scene is None or chroma < GREY_CHROMA else scene(net_L)
    # The network's automatic colour describes the cells only where the encoder's parts do not.
    features = cell_features(net_L[0, 0], network(net_L)[0]) if view is None else cell_features(net_L[0, 0], None, view.parts)
    return Reference(features,
                     np.ascontiguousarray(ab, np.float32), chroma < GREY_CHROMA, render_size,
                     view.vector if view is not None and compare_scene else None, view is not None)


def match(ref: Reference, L: np.ndarray, ab: np.ndarray,
          parts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """For each cell of the picture (network L (h, w), automatic ab (2, h, w), the encoder's ``parts`` where the
    reference has them): the index of its nearest reference cell, whether that match is trusted, whether it is
    mutual; and the fraction of mutual trusted matches. The distances are computed ``CHUNK`` picture cells at a time
    (memory stays small at any render size)."""
    if ref.parts != (parts is not None):
        raise ValueError("the picture and the reference must be described alike (both with the scene encoder or neither)")
    f = cell_features(L, ab, parts)
    r2 = (ref.features * ref.features).sum(1)
    j = np.empty(len(f), np.int64)
    d = np.empty(len(f), np.float32)
    col = np.full(len(ref.features), np.inf, np.float32)  # each reference cell's distance to its nearest picture cell
    for start in range(0, len(f), CHUNK):
        fc = f[start:start + CHUNK]
        d2 = (fc * fc).sum(1)[:, None] + r2[None] - 2 * fc @ ref.features.T
        np.maximum(d2, 0, out=d2)
        jc = d2.argmin(1)
        j[start:start + CHUNK] = jc
        d[start:start + CHUNK] = np.sqrt(d2[np.arange(len(jc)), jc])
        np.minimum(col, d2.min(0), out=col)
    trusted = d < TAU
    mutual = trusted & (np.sqrt(col[j]) >= d - MUTUAL_SLACK)
    return j, trusted, mutual, float(mutual.mean()) if len(j) else 0.0


def scene_factor(ref: Reference, scene: np.ndarray | None) -> float:
    """How much the picture's scene (its unit scene vector, or None) lets the reference count: 0 below SCENE_LOW
    cosine similarity, 1 above SCENE_HIGH, linear between; 1 when either side has no scene vector."""
    if scene is None or ref.scene is None:
        return 1.0
    return float(np.clip((float(ref.scene @ scene) - SCENE_LOW) / (SCENE_HIGH - SCENE_LOW), 0.0, 1.0))


def reference_hints(ref: Reference, L: np.ndarray, ab: np.ndarray,
                    view: Any = None) -> tuple[np.ndarray | None, float]:
    """The reference's colour as hints on the network grid (1, 3, h, w) [a, b, mask] (one hinted pixel at the centre
    of each trusted cell) and the gate (0..1) to apply them with: the mutual matches' gate times ``scene_factor``.
    ``view``: the picture as the scene encoder sees it (runtime.backends.scene.SceneView), needed where the reference
    was prepared with one. (None, 0) when the reference gives nothing (no colour, no trusted cell). The hints come
    back even where the gate is 0: a caller that smooths the gate over frames (runtime/video) may still apply them."""
    if ref.colourless or not len(ref.features):
        return None, 0.0
    j, trusted, _, mutual_fraction = match(ref, L, ab, None if view is None or not ref.parts else view.parts)
    low, high = (GATE_LOW, GATE_HIGH) if ref.parts else COLOUR_GATE
    gate = float(np.clip((mutual_fraction - low) / (high - low), 0.0, 1.0))
    gate *= scene_factor(ref, None if view is None else view.vector)
    if not trusted.any():
        return None, 0.0
    w = L.shape[1] // CELL
    ys, xs = np.divmod(np.nonzero(trusted)[0], w)
    cy, cx = ys * CELL + CELL // 2, xs * CELL + CELL // 2
    hints = np.zeros((1, 3, *L.shape), np.float32)
    colours = ref.ab[j[trusted]]
    hints[0, 0, cy, cx] = colours[:, 0]
    hints[0, 1, cy, cx] = colours[:, 1]
    hints[0, 2, cy, cx] = 1.0
    return hints, gate


def apply_reference(ab: np.ndarray, net_L: np.ndarray, ref: Reference | None,
                    gate_filter: Callable[[float], float] | None = None, scene: Callable | None = None) -> np.ndarray:
    """Network ab (N, 2, h, w) and L (N, 1, h, w) -> ab with the reference's colour spread in (each frame on its
    own); the same array when the reference gives nothing anywhere. ``gate_filter`` (video) maps each frame's gate to
    the one applied (e.g. smoothed within a shot); it sees the frames where the reference has trusted matches.
    ``scene``: the scene encoder (net L (1, 1, h, w) -> SceneView), needed for a reference prepared with one."""
    if ref is None or ref.colourless:
        return ab
    if ref.parts and scene is None:
        raise ValueError("this reference was prepared with the scene encoder: pass it (scene=...)")
    out = None
    for i in range(ab.shape[0]):
        view = scene(net_L[i:i + 1]) if ref.parts else None
        hints, gate = reference_hints(ref, net_L[i, 0], ab[i], view)
        if hints is None:  # no colour, no trusted cell: nothing to apply (and nothing for a filter to learn from)
            continue
        if gate_filter is not None:
            gate = gate_filter(gate)
        if gate == 0.0:
            continue
        # Neither the feature-space fill (runtime/image/hint_features.py: the matcher has already found what looks
        # alike, and the fill over a reference's hundreds of matched cells would cost several times the network) nor
        # the competition between hint colours (a reference gives hundreds of colours, not a few groups).
        spread = spread_hints(ab[i:i + 1], net_L[i:i + 1], hints, fill=False, sharpen=None)[0]
        if out is None:
            out = np.array(ab, dtype=np.float32, copy=True)
        out[i] = ab[i] + np.float32(gate) * (spread - ab[i])
    return ab if out is None else out
