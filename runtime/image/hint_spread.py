"""Spreading colour hints over the objects they sit on, along the photo's edges.

The runtime's default way of following hints (runtime.image.colorizer.HINT_MODES): the network gives its automatic
ab, and where a hint asks for a colour that ab does not have around it, the difference (the hint's residual:
``hint_ab`` minus the ab in a small window around the hint, hinted pixels left out) is spread to the pixels around it
along paths of similar lightness and added; the hinted pixels themselves get exactly the hint's colour. It is the
optimisation of Levin, Lischinski and Weiss, "Colorization using Optimization" (SIGGRAPH 2004), applied to the
residual instead of the colour, with a screening term so that a hint's reach fades with distance:

    minimise  sum_hinted (r - r_hint)^2 * STRENGTH  +  sum_neighbours w_ij (r_i - r_j)^2  +  sum_all r^2 / reach^2
    w_ij = exp(-(L_i - L_j)^2 / (2 sigma_L^2))

so a residual flows freely inside a region of even lightness, hardly across an edge (a lightness step of 4 sigma_L
passes 0.03 % of it), and fades over about ``reach`` pixels where there are no edges at all. It runs on the network
grid (the render size, so it costs the same for any photo size), by Jacobi-preconditioned conjugate gradients,
coarse to fine. No hints: nothing runs and the network's ab is returned as it is.

Five refinements over that plain form, each measured on training photos:
- **Between hints colours join up.** Inside the convex hull of all hinted pixels the screening is that of
  ``REACH_BETWEEN`` (the whole picture) instead of ``REACH``: between a restorer's dots, and between points hinted all
  over a photo, the residual is interpolated instead of fading; beyond the outermost dots it fades as before.
- **A dot colours its surroundings fully, then fades.** A small dot on a 2-D grid loses most of its pull within a
  few pixels (the spread of a point falls off like a logarithm), so the plain solution r paints a pale halo. The same
  system is also solved for the hint weight d (1 at every hinted pixel, 0 residual elsewhere: how much hint reaches a
  pixel), and the residual added is r / max(d, FLOOR): where enough hint reaches (d >= FLOOR) it is the hints' own
  weighted mean, in full; farther out it fades like d. The solver carries the channels (a, b, d and those below) at
  once.
- **What looks like a hinted part takes its colour.** Where d has fallen below FLOOR (beyond the dots' reach, or
  behind an edge), a feature-space fill adds the residual of the hinted parts that look like the pixel (lightness
  around it, texture, the network's automatic colour), with a confidence that is high only for close matches and
  that fades with the distance to the nearest hint (runtime/image/hint_features.py): the rest of a wall cut by a
  post, the other sleeve.
- **Where two colours meet, one wins.** The plain solution is the d-weighted mean of the hints' residuals, so where a
  red cup's dot and a blue saucer's dots both reach, the saucer turns purple. The hints are put into at most GROUPS
  colour groups, the same system is solved for each group's weight d_k (the probability that a walk from the pixel
  first meets that group's hints: Grady's random walker, 2006), and the residual moves from the mean towards the
  groups' own by (d_k^SHARPEN / sum d_j^SHARPEN - d_k / sum d_j) times each group's mean residual: a pixel mostly
  owned by one group takes mostly its colour; with one colour, SHARPEN 1, or more colours than GROUPS can stand
  for (colour_groups), nothing changes.
- **Where the hints own a pixel, it takes their colour.** A hint says what colour a thing is, not how far the
  network was off at the dot: where the network's colour varies over the hinted object (half a shirt right, half
  wrong), adding the dot's residual keeps that variation. So the hints' own colour c is spread too, and the colour
  added moves from the residual's r / max(d, FLOOR) (where the pull fades) to c / d - ab (where d >= FLOOR: the
  d-weighted mean hint colour itself), by t = min(d / FLOOR, 1): (1 - t) r + t (c - d ab), over max(d, FLOOR); where
  colours compete, the shift towards the owning group moves alike from its mean residual to its mean colour.
  Levin et al. spread the colour itself; the fading residual keeps a few dots from painting beyond their object.
  Hints at 10 points on training photos: 25.31 -> 26.11 dB, the bleed out of traced objects unchanged.

The constants were chosen on training photos (tools/tune_hint_spread.py, docs/default-model/history/effnet-s4-gain1.73/README.md): a longer
reach, a lower floor score higher on photos hinted all over from the truth, but carry a few dots' colour out of
their object on smoothly textured surroundings; they were chosen to keep a hinted square's far surroundings within
a few delta ab of the automatic result (tests/test_hints.py allows 6). SIGMA_L and the fill's constants were chosen
again with the fill (2026-12-06, docs/hints/README.md): with it, sigma_L 2.8, 3.2 and 4 score alike on training
photos, and 3.2 lets less colour out of hand-traced objects than 4.

Numpy only; deterministic.
"""
from __future__ import annotations

import numpy as np

from .hint_features import box_mean, fill as feature_fill, guide_features

SIGMA_L = 3.2  # lightness difference (L units) at which a neighbour link has weight exp(-1/2)
REACH = 0.2  # a hint's reach in flat regions, as a fraction of the grid's longer side (see above)
REACH_BETWEEN = 1.0  # the same inside the convex hull of all hints: between hints colours join up instead of fading
FLOOR = 0.7  # a hint's colour holds fully where its spread weight is at least this, and fades beyond (see spread_hints)
STRENGTH = 10.0  # how hard a hinted pixel holds its residual (against the smoothness and screening terms)
MAX_ITERATIONS = 400
TOLERANCE = 3e-4  # relative residual norm at which the solver stops
WINDOW = 6  # the ab around a hint is averaged over (2 WINDOW + 1)^2 grid pixels, hinted pixels left out
SHARPEN = 2.0  # where hint colours compete, each group's weight is raised to this power (1: the plain mean)
GROUPS = 4  # at most this many colour groups of hints compete (each one more channel in the solver)
GROUP_TOL = 12.0  # hint colours closer than this (delta ab) are one group
COARSEST = 48  # coarse-to-fine: grids whose shorter side is at least twice this start from the half-size solution


def edge_weights(L: np.ndarray, sigma: float = SIGMA_L) -> tuple[np.ndarray, np.ndarray]:
    """Weights of the links between vertical (h-1, w) and horizontal (h, w-1) neighbours of L (h, w)."""
    L = L.astype(np.float32)
    k = np.float32(-0.5 / (sigma * sigma))
    wy = np.exp(k * (L[1:] - L[:-1]) ** 2)
    wx = np.exp(k * (L[:, 1:] - L[:, :-1]) ** 2)
    return wy, wx


def _apply(x: np.ndarray, wy: np.ndarray, wx: np.ndarray, base: np.ndarray) -> np.ndarray:
    """(diag(base) + weighted graph Laplacian) @ x for x (c, h, w): the Laplacian as sum_j w_ij (x_i - x_j)."""
    out = base * x
    dy = wy * (x[:, 1:] - x[:, :-1])
    out[:, 1:] += dy
    out[:, :-1] -= dy
    dx = wx * (x[:, :, 1:] - x[:, :, :-1])
    out[:, :, 1:] += dx
    out[:, :, :-1] -= dx
    return out


def _halve(L: np.ndarray, residual: np.ndarray, mask: np.ndarray, inside: np.ndarray | None
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """The problem on a grid of half the size (even crop): mean L, hinted-mean residual, any-hint mask, and
    any-inside (between hints) mask."""
    h, w = (L.shape[0] // 2) * 2, (L.shape[1] // 2) * 2

    def blocks(a: np.ndarray) -> np.ndarray:  # (..., h, w) -> (..., h/2, 2, w/2, 2): reduce over axes (-3, -1)
        return a[..., :h, :w].reshape(*a.shape[:-2], h // 2, 2, w // 2, 2)
    m = mask[:h, :w].astype(np.float32)
    count = blocks(m).sum(axis=(-3, -1))
    total = blocks(residual[:, :h, :w] * m).sum(axis=(-3, -1))
    half_inside = None if inside is None else blocks(inside).any(axis=(-3, -1))
    return (blocks(L).mean(axis=(-3, -1)), np.where(count > 0, total / np.maximum(count, 1), 0).astype(np.float32),
            count > 0, half_inside)


def _screen(reach: float, h: int, w: int) -> np.float32:
    """The screening weight that makes a residual fade over ``reach`` of the grid's longer side."""
    return np.float32(1.0 / max(1.0, reach * max(h, w)) ** 2)


def _double(x: np.ndarray, h: int, w: int) -> np.ndarray:
    """A half-size solution (c, h/2, w/2) repeated up to (c, h, w) (an odd last row/column copies its neighbour)."""
    up = x.repeat(2, axis=1).repeat(2, axis=2)
    return np.pad(up, ((0, 0), (0, h - up.shape[1]), (0, w - up.shape[2])), mode="edge")


def between_hints(mask: np.ndarray) -> np.ndarray:
    """The pixels (h, w) inside the convex hull of the hinted pixels of mask (none when they lie on one line)."""
    rows = np.flatnonzero(mask.any(axis=1))
    first = mask[rows].argmax(axis=1)  # each row's leftmost and rightmost hinted pixel: the same hull, few points
    last = mask.shape[1] - 1 - mask[rows, ::-1].argmax(axis=1)
    points = sorted(set(zip(first.tolist(), rows.tolist())) | set(zip(last.tolist(), rows.tolist())))

    def chain(pts: list[tuple[int, int]]) -> list[tuple[int, int]]:  # one half of Andrew's monotone chain
        out: list[tuple[int, int]] = []
        for p in pts:
            while len(out) >= 2 and ((out[-1][0] - out[-2][0]) * (p[1] - out[-2][1])
                                     - (out[-1][1] - out[-2][1]) * (p[0] - out[-2][0])) <= 0:
                out.pop()
            out.append(p)
        return out[:-1]
    hull = chain(points) + chain(points[::-1]) if len(points) >= 3 else []
    inside = np.zeros(mask.shape, bool)
    if len(hull) >= 3:
        yy, xx = np.mgrid[0:mask.shape[0], 0:mask.shape[1]]
        inside[:] = True
        for (x0, y0), (x1, y1) in zip(hull, hull[1:] + hull[:1]):
            inside &= (x1 - x0) * (yy - y0) - (y1 - y0) * (xx - x0) >= 0
    return inside


def spread_residual(L: np.ndarray, residual: np.ndarray, mask: np.ndarray, sigma: float = SIGMA_L,
                    reach: float = REACH, strength: float = STRENGTH, inside: np.ndarray | None = None,
                    reach_between: float = REACH_BETWEEN) -> np.ndarray:
    """Solve for the spread residual r (c, h, w) given the hinted residual (c, h, w), where mask (h, w) > 0;
    where ``inside`` (h, w) is True the screening is that of ``reach_between`` instead of ``reach``.
    Coarse to fine: the half-size problem's solution is the starting point, so few iterations remain here."""
    h, w = L.shape
    x0 = None
    if min(h, w) >= 2 * COARSEST:
        L2, residual2, mask2, inside2 = _halve(L, residual, mask, inside)
        x0 = _double(spread_residual(L2, residual2, mask2, sigma, reach, strength, inside2, reach_between), h, w)
    wy, wx = edge_weights(L, sigma)
    degree = np.zeros((h, w), np.float32)
    degree[1:] += wy
    degree[:-1] += wy
    degree[:, 1:] += wx
    degree[:, :-1] += wx
    screen = _screen(reach, h, w)
    if inside is not None:
        screen = np.where(inside, _screen(reach_between, h, w), screen)
    m = (mask > 0).astype(np.float32) * np.float32(strength)
    base = screen + m
    diag = degree + base  # the Jacobi preconditioner
    b = (m * residual).astype(np.float32)
    x = np.zeros_like(b) if x0 is None else x0.astype(np.float32)
    r = b - _apply(x, wy, wx, base)
    z = r / diag
    p = z.copy()
    rz = (r * z).sum(axis=(1, 2))
    b_norm = np.sqrt((b * b).sum(axis=(1, 2))) + 1e-12
    for _ in range(MAX_ITERATIONS):
        q = _apply(p, wy, wx, base)
        alpha = rz / np.maximum((p * q).sum(axis=(1, 2)), 1e-30)
        x += alpha[:, None, None] * p
        r -= alpha[:, None, None] * q
        if np.all(np.sqrt((r * r).sum(axis=(1, 2))) <= TOLERANCE * b_norm):
            break
        z = r / diag
        rz_new = (r * z).sum(axis=(1, 2))
        beta = rz_new / np.maximum(rz, 1e-30)
        rz = rz_new
        p = z + beta[:, None, None] * p
    return x


def around_hints(ab: np.ndarray, mask: np.ndarray, radius: int = WINDOW) -> np.ndarray:
    """The network's ab (2, h, w) averaged over a window around each pixel, hinted pixels left out (where a window
    holds only hinted pixels, the network's own ab there)."""
    free = (~mask).astype(np.float32)
    weight = box_mean(free, radius)
    mean = box_mean(ab * free, radius) / np.maximum(weight, 1e-6)
    return np.where(weight > 1e-6, mean, ab).astype(np.float32)


def colour_groups(hint_ab: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, int]:
    """The hinted pixels' colour groups: labels (h, w) (-1 where not hinted) and their number. Seeds are taken
    farthest-first among the distinct hint colours (ab, 0.1 apart), at most GROUPS, none within GROUP_TOL of another;
    each hinted pixel joins its nearest seed. If some hint colour is still farther than GROUP_TOL from its seed (more
    colours than GROUPS), the hints are one group: a group's mean would then stand for colours it does not hold, so
    the colours do not compete (dots sampled all over a photo). Deterministic."""
    colours = hint_ab[:, mask].T.astype(np.float64)
    distinct = np.unique(np.round(colours, 1), axis=0)
    seeds = [distinct[0]]
    while len(seeds) < GROUPS:
        gap = np.linalg.norm(distinct[:, None] - np.array(seeds)[None], axis=-1).min(axis=1)
        far = int(np.argmax(gap))
        if gap[far] < GROUP_TOL:
            break
        seeds.append(distinct[far])
    gaps = np.linalg.norm(colours[:, None] - np.array(seeds)[None], axis=-1)
    labels = np.full(mask.shape, -1)
    if gaps.min(axis=1).max() > GROUP_TOL:
        labels[mask] = 0
        return labels, 1
    labels[mask] = gaps.argmin(axis=1)
    return labels, len(seeds)


def _ownership(weights: np.ndarray, sharpen: float) -> np.ndarray:
    """How far each group's say moves from the mean towards the owning groups' (K, h, w): share_k^sharpen
    normalised - share_k, for the spread group weights (K, h, w). Times each group's mean residual (or colour)
    and summed over k, it is the shift from the mean towards the owning groups' (``_shift``)."""
    d = np.maximum(weights, 0) + np.float32(1e-12)
    share = d / d.sum(axis=0, keepdims=True)
    owned = (d / d.max(axis=0, keepdims=True)) ** np.float32(sharpen)  # scaled first: no underflow to 0 / 0
    owned /= owned.sum(axis=0, keepdims=True)
    return owned - share


def _shift(ownership: np.ndarray, values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """sum_k ownership_k (K, h, w) * the mean of values (2, h, w) over group k's hinted pixels -> (2, h, w)."""
    means = np.stack([values[:, labels == k].mean(axis=1) for k in range(len(ownership))])  # (K, 2)
    return np.einsum("khw,kc->chw", ownership, means).astype(np.float32)


def spread_frame(ab: np.ndarray, L: np.ndarray, hint_ab: np.ndarray, mask: np.ndarray, sigma: float = SIGMA_L,
                 reach: float = REACH, reach_between: float | None = REACH_BETWEEN, floor: float | None = FLOOR,
                 sharpen: float | None = SHARPEN, weight: bool = True, owned: bool = True
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One frame's spreading without the fill: network ab (2, h, w), L (h, w), the hints' ab (2, h, w) at mask (h, w,
    some True) -> what to add to ab (2, h, w), the hints' residuals (2, h, w; zero off the mask) and the spread hint
    weight d (h, w; None unless ``floor`` or ``weight``). spread_hints adds the fill where d < FLOOR. ``owned``:
    where the hints own a pixel (d >= floor) it takes their colour, not its own ab plus their residual (the module
    docstring); False, or no ``floor`` (no plateau, so nothing is owned), spreads the residual everywhere (the
    spreading before the fifth session of 2026-12-06)."""
    residual = np.where(mask[None], hint_ab - around_hints(ab, mask), 0.0).astype(np.float32)
    inside = None if reach_between is None else between_hints(mask)
    channels = [residual]
    weighted = floor is not None or weight
    if weighted:  # the hint weight d as a third channel: r / max(d, floor), and where to fill
        channels.append(mask[None].astype(np.float32))
    labels, groups = colour_groups(hint_ab, mask) if sharpen and sharpen != 1 else (None, 1)
    if groups > 1:  # each colour group's own weight d_k
        channels.append(np.stack([labels == k for k in range(groups)]).astype(np.float32))
    owned = owned and bool(floor)  # a hint owns the pixels of its full-colour plateau (d >= floor)
    if owned:  # the hints' own colour, spread alike: the d-weighted mean hint colour is colour / d
        colours = np.where(mask[None], hint_ab, 0.0).astype(np.float32)
        channels.append(colours)
    spread = spread_residual(L, np.concatenate(channels), mask, sigma, reach, STRENGTH, inside, reach_between or reach)
    mean = spread[:2]
    if owned:  # from the residual where the hints' pull fades to their colour where they own the pixel
        colour, spread = spread[-2:], spread[:-2]
        t = np.minimum(spread[2:3] / np.float32(floor), np.float32(1.0))
        mean = (1 - t) * mean + t * (colour - spread[2:3] * ab)
    if groups > 1:
        d = spread[2] if weighted else spread[-groups:].sum(axis=0)
        ownership = _ownership(spread[-groups:], sharpen)
        shift = _shift(ownership, residual, labels)
        if owned:  # towards the owning group's colour (not its residual) where the hints own the pixel
            shift = (1 - t) * shift + t * _shift(ownership, colours, labels)
        mean = mean + np.maximum(d, np.float32(1e-12)) * shift
    added = mean if floor is None else mean / np.maximum(spread[2:3], np.float32(floor))
    return added, residual, spread[2] if weighted else None


def fill_share(d: np.ndarray, floor: float | None = FLOOR) -> np.ndarray:
    """How much of the feature-space fill a pixel takes (h, w): none where the spread hint weight d reaches the floor
    (FLOOR when there is none), growing to all of it where d is 0."""
    return 1.0 - np.minimum(d / np.float32(floor or FLOOR), 1.0)


def spread_hints(ab: np.ndarray, L: np.ndarray, hints: np.ndarray | None, sigma: float = SIGMA_L,
                 reach: float = REACH, reach_between: float | None = REACH_BETWEEN,
                 floor: float | None = FLOOR, fill: bool = True, sharpen: float | None = SHARPEN,
                 owned: bool = True) -> np.ndarray:
    """Network ab (N, 2, h, w) + its input L (N, 1, h, w) in [0, 100] + hints (N, 3, h, w) [a, b, mask] in Lab
    units -> ab with each frame's hints spread edge-aware (their colour where they own a pixel, their residual
    beyond). Frames without hints are returned unchanged (the same array when no frame has any).
    ``reach_between=None`` turns off the joining up between hints, ``floor=None`` the full-colour plateau around them
    (and with it the hints' own colour), ``fill=False`` the feature-space fill beyond the hints' reach,
    ``sharpen=None`` the competition between hint colours and ``owned=False`` the hints' own colour where they own a
    pixel (the residual is spread everywhere); the module docstring says what they are."""
    if sharpen is not None and sharpen <= 0:
        raise ValueError(f"sharpen must be positive (1: the plain mean), got {sharpen}")
    if hints is None or not np.any(hints[:, 2] > 0):
        return ab
    out = np.array(ab, dtype=np.float32, copy=True)
    for i in range(ab.shape[0]):
        mask = hints[i, 2] > 0
        if not mask.any():
            continue
        added, residual, d = spread_frame(ab[i], L[i, 0], hints[i, :2], mask, sigma, reach, reach_between, floor,
                                          sharpen, weight=fill, owned=owned)
        out[i] += added
        if fill:  # where the spread hint weight d falls below the floor, the fill takes over
            colour, confidence = feature_fill(guide_features(L[i, 0], ab[i]), residual, mask)
            out[i] += (fill_share(d, floor) * confidence)[None] * colour
        out[i][:, mask] = hints[i, :2][:, mask]
    return out
