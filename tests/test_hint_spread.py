"""runtime/image/hint_spread.py: the edge-aware spreading of what the network left out of the hints."""
from __future__ import annotations

import numpy as np

from runtime.image import hint_spread as hs


def dense_solution(L, residual, mask, sigma=hs.SIGMA_L, reach=hs.REACH, strength=hs.STRENGTH, inside=None,
                   reach_between=hs.REACH_BETWEEN):
    """The same system solved directly (small grids only)."""
    h, w = L.shape
    n = h * w
    A = np.zeros((n, n))
    idx = np.arange(n).reshape(h, w)
    wy, wx = hs.edge_weights(L, sigma)
    for (i0, i1), wt in ((( idx[1:], idx[:-1]), wy), ((idx[:, 1:], idx[:, :-1]), wx)):
        for a, b, c in zip(i0.ravel(), i1.ravel(), wt.ravel()):
            A[a, a] += c
            A[b, b] += c
            A[a, b] -= c
            A[b, a] -= c
    m = (mask > 0).astype(float).ravel() * strength
    screen = np.full(n, 1.0 / max(1.0, reach * max(h, w)) ** 2)
    if inside is not None:
        screen[inside.ravel()] = 1.0 / max(1.0, reach_between * max(h, w)) ** 2
    A[np.diag_indices(n)] += m + screen
    return np.stack([np.linalg.solve(A, m * residual[c].ravel()).reshape(h, w) for c in range(residual.shape[0])])


def two_regions(h=40, w=50):
    L = np.full((h, w), 40.0, np.float32)
    L[:, w // 2:] = 70.0  # a strong edge down the middle
    L += np.random.default_rng(0).normal(0, 0.5, L.shape).astype(np.float32)
    return L


def test_solver_matches_a_direct_solve():
    L = two_regions(12, 14)
    mask = np.zeros((12, 14), bool)
    mask[3, 2] = mask[8, 10] = True
    res = np.zeros((2, 12, 14), np.float32)
    res[:, 3, 2] = (30, -10)
    res[:, 8, 10] = (-20, 25)
    got = hs.spread_residual(L, res, mask)
    want = dense_solution(L, res, mask)
    assert np.abs(got - want).max() < 0.05 * np.abs(res).max()
    inside = np.zeros(mask.shape, bool)
    inside[2:10, 1:12] = True
    got = hs.spread_residual(L, res, mask, reach=0.05, inside=inside, reach_between=2.0)
    want = dense_solution(L, res, mask, reach=0.05, inside=inside, reach_between=2.0)
    assert np.abs(got - want).max() < 0.05 * np.abs(res).max()


def test_coarse_to_fine_agrees_with_the_plain_solve(monkeypatch):
    L = two_regions(120, 150)
    mask = np.zeros(L.shape, bool)
    mask[30:33, 20:23] = True
    res = np.zeros((2, *L.shape), np.float32)
    res[:, mask] = np.array([[25.0], [-15.0]])
    fast = hs.spread_residual(L, res, mask)  # 120 >= 2 * COARSEST: starts from the half-size solution
    monkeypatch.setattr(hs, "COARSEST", 10**6)
    monkeypatch.setattr(hs, "TOLERANCE", 1e-7)
    monkeypatch.setattr(hs, "MAX_ITERATIONS", 5000)
    exact = hs.spread_residual(L, res, mask)
    assert np.abs(fast - exact).mean() < 0.5 and np.abs(fast - exact).max() < 3.0


def test_residual_fills_its_region_and_stops_at_an_edge():
    L = two_regions()
    ab = np.zeros((1, 2, 40, 50), np.float32)
    hints = np.zeros((1, 3, 40, 50), np.float32)
    hints[0, :2, 18:21, 10:13] = np.array([40.0, 20.0])[:, None, None]
    hints[0, 2, 18:21, 10:13] = 1
    out = hs.spread_hints(ab, L[None, None], hints)
    assert np.array_equal(out[0, :, 18:21, 10:13], hints[0, :2, 18:21, 10:13])  # the dot is the hint's colour exactly
    near, right = out[0, 0, 14:25, 6:17].mean(), np.abs(out[0, :, :, 26:]).max()
    assert near > 20 and out[0, 0, :, :25].min() > 0.5, near  # the whole left region leans to the hint
    assert right < 1e-3 * near, right  # across the edge: nothing


def test_no_hints_return_the_network_answer_itself():
    ab = np.random.default_rng(1).normal(0, 20, (2, 2, 16, 16)).astype(np.float32)
    L = np.full((2, 1, 16, 16), 50.0, np.float32)
    assert hs.spread_hints(ab, L, None) is ab
    assert hs.spread_hints(ab, L, np.zeros((2, 3, 16, 16), np.float32)) is ab
    hints = np.zeros((2, 3, 16, 16), np.float32)
    hints[1, :, 4, 4] = (30, 30, 1)
    out = hs.spread_hints(ab, L, hints)
    assert np.array_equal(out[0], ab[0]) and not np.array_equal(out[1], ab[1])  # only the hinted frame changes


def test_reference_around_a_hint_leaves_hinted_pixels_out():
    ab = np.zeros((2, 9, 9), np.float32)
    ab[:, 4, 4] = 100.0  # the network's over-painted dot
    ab[:, :, :] += 10.0
    mask = np.zeros((9, 9), bool)
    mask[4, 4] = True
    ref = hs.around_hints(ab, mask, radius=2)
    assert np.allclose(ref[:, 4, 4], 10.0)
    x = np.random.default_rng(2).random((2, 7, 8)).astype(np.float32)
    brute = np.stack([[[x[c, max(0, i - 1):i + 2, max(0, j - 1):j + 2].mean() for j in range(8)] for i in range(7)] for c in range(2)])
    assert np.allclose(hs.box_mean(x, 1), brute, atol=1e-6)


def test_between_hints_is_the_convex_hull_of_the_hinted_pixels():
    mask = np.zeros((30, 40), bool)
    corners = np.array([(3, 4), (25, 8), (12, 35)])  # (y, x)
    mask[tuple(corners.T)] = True
    mask[12, 15] = True  # a point inside changes nothing
    got = hs.between_hints(mask)
    (y0, x0), (y1, x1), (y2, x2) = corners
    yy, xx = np.mgrid[0:30, 0:40]
    det = (y1 - y2) * (x0 - x2) + (x2 - x1) * (y0 - y2)
    l0 = ((y1 - y2) * (xx - x2) + (x2 - x1) * (yy - y2)) / det
    l1 = ((y2 - y0) * (xx - x2) + (x0 - x2) * (yy - y2)) / det
    want = (l0 >= -1e-9) & (l1 >= -1e-9) & (1 - l0 - l1 >= -1e-9)  # barycentric point-in-triangle
    assert np.array_equal(got, want) and got.sum() > 100
    line = np.zeros((30, 40), bool)
    line[[2, 10, 18], [3, 11, 19]] = True  # on one line: no inside
    assert not hs.between_hints(line).any()
    assert not hs.between_hints(np.zeros((30, 40), bool)).any()


def test_between_hints_colours_join_up_and_beyond_them_they_fade():
    """Three far-apart dots asking for the same colour on a flat picture: the middle between them takes clearly
    more of it than with the outside's fading everywhere; far outside them it fades to nearly nothing either way."""
    h, w = 160, 200
    L = np.full((1, 1, h, w), 50.0, np.float32)
    ab = np.zeros((1, 2, h, w), np.float32)
    hints = np.zeros((1, 3, h, w), np.float32)
    for y, x in ((20, 30), (20, 110), (100, 70)):
        hints[0, :, y - 1:y + 2, x - 1:x + 2] = np.array([30.0, 0.0, 1.0])[:, None, None]
    joined = hs.spread_hints(ab, L, hints, fill=False)[0, 0]  # the spreading alone (on a flat picture every pixel
    fading = hs.spread_hints(ab, L, hints, reach_between=None, fill=False)[0, 0]  # looks like the hints: all filled)
    middle, outside = joined[47, 70], joined[150, 190]
    assert middle > 1.3 * fading[47, 70], (middle, fading[47, 70])
    assert outside < 0.1 * 30 and abs(outside - fading[150, 190]) < 0.5, (outside, fading[150, 190])


def test_a_dot_colours_its_surroundings_fully_then_fades():
    h, w = 120, 160
    L = np.full((1, 1, h, w), 50.0, np.float32)
    ab = np.zeros((1, 2, h, w), np.float32)
    hints = np.zeros((1, 3, h, w), np.float32)
    hints[0, :, 59:62, 79:82] = np.array([0.0, -40.0, 1.0])[:, None, None]
    plateau = hs.spread_hints(ab, L, hints, fill=False)[0, 1]  # the spreading alone (as above)
    plain = hs.spread_hints(ab, L, hints, floor=None, fill=False)[0, 1]
    assert plateau[60, 84] < -0.9 * 40 and plain[60, 84] > -0.7 * 40, (plateau[60, 84], plain[60, 84])  # 3 px away
    assert (np.abs(plateau) <= 40 + 1e-3).all()  # never beyond the hint's own colour
    assert abs(plateau[5, 5]) < 0.1 * 40  # far away it has faded
    weight = hs.spread_residual(L[0, 0], (hints[0, 2:] > 0).astype(np.float32), hints[0, 2] > 0)[0]
    far = weight < hs.FLOOR
    assert np.allclose(plateau[far], plain[far] / hs.FLOOR, atol=1e-3)  # beyond the plateau: the plain fade, rescaled


def test_where_a_hint_owns_a_pixel_it_gives_its_colour_not_a_shift_of_the_network_colour():
    """The network's a ramps from -60 to +60 across a flat region; a dot asks for a = 30. Where the dot's pull is
    full (d >= FLOOR) every pixel takes a = 30; spreading only the residual would keep the ramp (30 plus the
    network's a minus its value around the dot); where the pull fades the two agree again."""
    h, w = 120, 160
    L = np.full((1, 1, h, w), 50.0, np.float32)
    ab = np.zeros((1, 2, h, w), np.float32)
    ab[0, 0] = np.linspace(-60, 60, w, dtype=np.float32)[None]
    hints = np.zeros((1, 3, h, w), np.float32)
    hints[0, :, 59:62, 79:82] = np.array([30.0, 0.0, 1.0])[:, None, None]
    hints[0, 0, 59:62, 79:82] = 30.0
    owned = hs.spread_hints(ab, L, hints, fill=False)[0]
    residual = hs.spread_hints(ab, L, hints, fill=False, owned=False)[0]
    d = hs.spread_residual(L[0, 0], (hints[0, 2:] > 0).astype(np.float32), hints[0, 2] > 0)[0]
    full = d >= hs.FLOOR
    assert full.sum() > 30 and np.ptp(ab[0, 0][full]) > 2.0  # the plateau spans part of the ramp
    assert np.abs(owned[0][full] - 30.0).max() < 0.05, np.abs(owned[0][full] - 30.0).max()
    assert np.ptp(residual[0][full]) > 0.8 * np.ptp(ab[0, 0][full])  # the residual alone keeps the ramp
    assert np.abs(owned[1]).max() < 1e-4  # b: the hint's 0 is the network's 0
    far = d < 0.1 * hs.FLOOR  # where little pull arrives the two agree (both close to the network's colour)
    assert far.sum() > h * w // 3 and np.abs(owned[0][far] - residual[0][far]).max() < 1.0
    assert np.abs(owned[0][far] - ab[0, 0][far]).max() < 0.15 * 30


def test_owned_pixels_between_two_hint_colours_take_the_owning_groups_colours():
    """Red dots and blue dots over a network colour that runs from +40 to -40 in a: where the hints own a pixel it is
    the mix of the two groups' colours by ownership (SHARPEN), not of their residuals (up to 3.8 off before); and
    where the pull fades (d < FLOOR) the colour moves from the residual's to the owned one by t = d / FLOOR."""
    h, w = 40, 90
    L = np.full((h, w), 50.0, np.float32)
    ab = np.stack([np.tile(np.linspace(40, -40, w, dtype=np.float32), (h, 1)), np.zeros((h, w), np.float32)])
    hint, mask = np.zeros((2, h, w), np.float32), np.zeros((h, w), bool)
    for y in range(2, 38, 4):
        mask[y:y + 2, 30:32], hint[:, y:y + 2, 30:32] = True, np.array([50.0, 30.0])[:, None, None]
        mask[y:y + 2, 58:60], hint[:, y:y + 2, 58:60] = True, np.array([10.0, -50.0])[:, None, None]
    added, _, d = hs.spread_frame(ab, L, hint, mask)
    labels, groups = hs.colour_groups(hint, mask)
    assert groups == 2
    weights = hs.spread_residual(L, np.stack([labels == k for k in range(groups)]).astype(np.float32), mask,
                                 inside=hs.between_hints(mask))
    owned = (np.maximum(weights, 0) + 1e-12) ** hs.SHARPEN
    owned /= owned.sum(axis=0)
    colours = np.stack([hint[:, labels == k].mean(axis=1) for k in range(groups)])  # (K, 2), the groups' order
    ideal = np.einsum("khw,kc->chw", owned, colours)
    full = (d >= hs.FLOOR) & ~mask
    assert full.sum() > 1000 and np.abs((ab + added - ideal)[:, full]).max() < 0.5
    # the fading band: the blend of the residual-only answer and the colour answer
    residual_only = hs.spread_frame(ab, L, hint, mask, owned=False)[0]
    t = np.minimum(d / hs.FLOOR, 1.0)
    band = (d < hs.FLOOR) & (d > 0.1 * hs.FLOOR)
    assert band.sum() > 100
    colour_only = (ideal - ab) * np.minimum(d / hs.FLOOR, 1.0)  # full colour, faded like the residual
    mix = (1 - t) * residual_only + t * colour_only
    assert np.abs((added - mix)[:, band]).max() < 0.3, np.abs((added - mix)[:, band]).max()


def bands(h=40, w=60, cut=(25, 35)):
    """Dark | light | dark vertical bands (L 40 | 70 | 40): the two dark bands look alike but no path of even
    lightness joins them."""
    L = np.full((h, w), 40.0, np.float32)
    L[:, cut[0]:cut[1]] = 70.0
    return L + np.random.default_rng(0).normal(0, 0.3, L.shape).astype(np.float32)


def test_the_fill_colours_what_looks_like_the_hinted_part_and_nothing_else():
    L = bands(cut=(22, 28))
    ab = np.zeros((1, 2, 40, 60), np.float32)
    hints = np.zeros((1, 3, 40, 60), np.float32)
    hints[0, :, 18:21, 16:19] = np.array([40.0, 0.0, 1.0])[:, None, None]
    filled = hs.spread_hints(ab, L[None, None], hints)[0, 0]
    plain = hs.spread_hints(ab, L[None, None], hints, fill=False)[0, 0]
    twin, between = (slice(None), slice(32, 45)), (slice(None), slice(23, 27))
    assert np.abs(plain[twin]).max() < 0.5  # the spreading alone stops at the light band
    assert filled[twin].mean() > 5 and filled[twin].max() <= 40 + 1e-3, filled[twin].mean()  # the fill reaches the twin
    assert np.abs(filled[between]).max() < 0.5  # and not the light band, which looks like nothing hinted


def test_the_fill_fades_with_distance_from_the_hints():
    L = bands(40, 200, (25, 35))
    ab = np.zeros((1, 2, 40, 200), np.float32)
    hints = np.zeros((1, 3, 40, 200), np.float32)
    hints[0, :, 18:21, 8:11] = np.array([40.0, 0.0, 1.0])[:, None, None]
    out = hs.spread_hints(ab, L[None, None], hints)[0, 0]
    near, far = out[:, 40:60].mean(), out[:, 180:].mean()
    assert near > 5 and far < 0.2 * near, (near, far)


def test_the_fill_pools_hinted_pixels_into_a_bounded_number_of_samples():
    from runtime.image import hint_features as hf

    L = np.random.default_rng(2).uniform(0, 100, (256, 256)).astype(np.float32)
    guide = hf.guide_features(L, np.zeros((2, 256, 256), np.float32))
    mask = np.ones((256, 256), bool)
    residual = np.full((2, 256, 256), 7.0, np.float32)
    colour, confidence = hf.fill(guide, residual, mask)
    assert hf._samples(guide, residual, mask)[0].shape[0] == hf.MAX_SAMPLES < (256 // hf.CELL) ** 2
    matched = confidence > 1e-3  # a pixel like some hinted cell takes their residual, and only that
    assert matched.mean() > 0.5 and np.allclose(colour[:, matched], 7.0, atol=1e-3) and (confidence < 1).all()


def test_a_lone_dot_keeps_its_sample_beside_a_painted_area():
    """A painted area of thousands of hinted cells and one dot elsewhere: the samples are capped, but by growing the
    cells, so the dot still speaks for what looks like it (and the distance fade is measured from it)."""
    from runtime.image import hint_features as hf

    h, w = 128, 256
    L = np.full((h, w), 30.0, np.float32)
    L[:, 200:] = 80.0  # the dot's region: bright, like nothing painted
    L[:, 180:200] = 55.0
    guide = hf.guide_features(L, np.zeros((2, h, w), np.float32))
    mask = np.zeros((h, w), bool)
    mask[:, :150] = True  # painted: the dark left
    mask[60:63, 220:223] = True  # one dot in the bright right
    residual = np.zeros((2, h, w), np.float32)
    residual[0][mask] = 10.0
    residual[0, 60:63, 220:223] = -30.0
    feats, res, centres = hf._samples(guide, residual, mask)
    assert len(feats) <= hf.MAX_SAMPLES < (150 // hf.CELL) * (h // hf.CELL)
    assert (res[:, 0] < -25).any()  # the dot's own sample survived
    colour, confidence = hf.fill(guide, residual, mask)
    assert colour[0, 100:, 240:].mean() < -25 and confidence[100:, 240:].mean() > 0.2


def test_the_fill_of_no_hints_is_nothing():
    from runtime.image import hint_features as hf

    guide = hf.guide_features(np.full((20, 30), 50.0, np.float32), np.zeros((2, 20, 30), np.float32))
    colour, confidence = hf.fill(guide, np.zeros((2, 20, 30), np.float32), np.zeros((20, 30), bool))
    assert not colour.any() and not confidence.any()


def test_features_do_not_depend_on_the_grid_size():
    """The same smooth picture on a 128- and a 256-pixel grid: the features (windows and the gradient scale with the
    grid) agree where the picture is smooth."""
    from runtime.image import hint_features as hf

    yy, xx = np.mgrid[0:256, 0:256].astype(np.float32)
    big = 50 + 30 * np.sin(xx / 40.0) * np.cos(yy / 50.0)
    small = big.reshape(128, 2, 128, 2).mean(axis=(1, 3))
    f_big = hf.guide_features(big, np.zeros((2, 256, 256), np.float32)).reshape(7, 128, 2, 128, 2).mean(axis=(2, 4))
    f_small = hf.guide_features(small, np.zeros((2, 128, 128), np.float32))
    inner = (slice(None), slice(16, -16), slice(16, -16))
    assert np.abs(f_big[inner] - f_small[inner]).max() < 0.1, np.abs(f_big[inner] - f_small[inner]).max(axis=(1, 2))


def test_where_two_hint_colours_meet_the_owner_wins():
    """A red dot and a blue dot on one even region (no edge between them): the plain mean paints the ground between
    them purple; with the colours competing, a pixel nearer the red dot is clearly redder, nearer the blue one
    bluer, and one colour alone spreads exactly as before."""
    h, w = 40, 90
    L = np.full((1, 1, h, w), 50.0, np.float32)
    ab = np.zeros((1, 2, h, w), np.float32)
    hints = np.zeros((1, 3, h, w), np.float32)
    hints[0, :, 18:21, 10:13] = np.array([50.0, 30.0, 1.0])[:, None, None]  # red
    hints[0, :, 18:21, 77:80] = np.array([10.0, -50.0, 1.0])[:, None, None]  # blue
    owned = hs.spread_hints(ab, L, hints, fill=False)[0]
    mean = hs.spread_hints(ab, L, hints, fill=False, sharpen=None)[0]
    near_red, near_blue = (slice(10, 30), slice(30, 36)), (slice(10, 30), slice(54, 60))
    assert owned[1][near_red].mean() > mean[1][near_red].mean() + 2  # b: red's +30 against blue's -50
    assert owned[1][near_blue].mean() < mean[1][near_blue].mean() - 2
    plain = hs.spread_hints(ab, L, hints, fill=False, floor=None)[0]  # without the hint weight channel: the same shift
    plain_mean = hs.spread_hints(ab, L, hints, fill=False, floor=None, sharpen=None)[0]
    assert np.isfinite(plain).all() and plain[1][near_red].mean() > plain_mean[1][near_red].mean() + 1
    one = hints.copy()
    one[0, :, 18:21, 77:80] = 0
    assert np.array_equal(hs.spread_hints(ab, L, one, fill=False), hs.spread_hints(ab, L, one, fill=False, sharpen=None))


def test_sharpen_must_be_positive():
    import pytest

    hints = np.zeros((1, 3, 8, 8), np.float32)
    hints[0, :, 4, 4] = (10, 10, 1)
    with pytest.raises(ValueError, match="sharpen"):
        hs.spread_hints(np.zeros((1, 2, 8, 8), np.float32), np.full((1, 1, 8, 8), 50.0, np.float32), hints, sharpen=-2)


def test_colour_groups_are_few_and_far_apart():
    mask = np.zeros((10, 10), bool)
    mask[0, :8] = True
    hint_ab = np.zeros((2, 10, 10), np.float32)
    hint_ab[:, 0, :8] = np.array([[-41, -40, 30, 31, 60, 61, 90, 91], [0, 0, 0, 0, 60, 60, 90, 90]], np.float32)
    labels, n = hs.colour_groups(hint_ab, mask)  # four groups far apart, each colour within GROUP_TOL of its seed
    assert n == hs.GROUPS == 4 and (labels[~mask] == -1).all()
    assert labels[0, :8].tolist() == [0, 0, 2, 2, 3, 3, 1, 1]  # seeds from (-41, 0): (91, 90), (31, 0), (60, 60)
    close = hint_ab.copy()
    close[:, 0, :8] = np.array([[0, 5, 0, 5, 0, 5, 0, 5], [0] * 8], np.float32)
    assert hs.colour_groups(close, mask)[1] == 1  # colours 5 apart: one group
    many = hint_ab.copy()
    many[0, 0, :8] = np.arange(8) * 30.0  # eight colours 30 apart: more than four groups could stand for
    labels, n = hs.colour_groups(many, mask)
    assert n == 1 and (labels[mask] == 0).all()


def test_the_fill_learner_rebuilds_the_runtime_fill(monkeypatch):
    """tools/learn_hint_fill.py learns the fill's constants on a torch copy of hint_features.fill: at the same
    constants the copy must give the runtime's colour and confidence, or it would learn something else. Uneven
    feature weights and other eps and reach than the runtime's, so each of them must be applied alike."""
    import sys
    from pathlib import Path

    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    import learn_hint_fill

    from runtime.image import hint_features as hf

    monkeypatch.setattr(hf, "FILL_WEIGHTS", np.array([0.5, 0.9, 1.2, 1.6, 1.7, 1.3, 0.6], np.float32))
    monkeypatch.setattr(hf, "FILL_EPS", 0.6)
    monkeypatch.setattr(hf, "FILL_REACH", 0.45)
    rng = np.random.default_rng(4)
    L = bands(48, 64, (20, 30)) + rng.uniform(0, 20, (48, 64)).astype(np.float32)
    ab = rng.normal(0, 5, (2, 48, 64)).astype(np.float32)
    guide = hf.guide_features(L, ab)
    mask = np.zeros((48, 64), bool)
    mask[5:9, 5:9] = mask[30:33, 50:53] = True
    residual = np.where(mask[None], rng.normal(0, 20, (2, 48, 64)), 0).astype(np.float32)
    colour, confidence = hf.fill(guide, residual, mask)
    f, r, centres = hf._samples(guide, residual, mask)  # unweighted: the weights scale (g - f) in the copy
    yy, xx = np.mgrid[0:48, 0:64].reshape(2, -1)
    near2 = ((yy[:, None] - centres[None, :, 0]) ** 2 + (xx[:, None] - centres[None, :, 1]) ** 2).min(1)
    got_colour, got_conf = learn_hint_fill.torch_fill(
        torch.from_numpy(guide.reshape(7, -1).T.copy()), torch.from_numpy(f), torch.from_numpy(r),
        torch.from_numpy(near2.astype(np.float32)), 64.0, torch.from_numpy(hf.FILL_WEIGHTS), hf.FILL_EPS, hf.FILL_REACH, hf.FILL_SIGMA)
    assert np.allclose(got_colour.numpy().T.reshape(2, 48, 64), colour, atol=1e-3)
    assert np.allclose(got_conf.numpy().reshape(48, 64), confidence, atol=1e-5)


def test_the_fill_learners_loss_is_the_runtimes_colour_error(tmp_path, monkeypatch):
    """What tools/learn_hint_fill.py minimises, at the runtime's constants and with every pixel of the fill zone
    kept, is the runtime's own squared ab error on the network grid (spread mode, the embedded model): the cases'
    bookkeeping (the zone, the error outside it, the truth on the padded grid) adds up."""
    import sys
    from pathlib import Path

    from PIL import Image

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    import learn_hint_fill

    from runtime import Colorizer

    yy, xx = np.mgrid[0:150, 0:200]
    rgb = np.stack([120 + 100 * np.sin(xx / 17.0), 90 + 60 * np.cos(yy / 11.0), 60 + 50 * (xx > 120)], -1)
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(tmp_path / "photo.png")  # 200x150: padded grid
    monkeypatch.setattr(learn_hint_fill, "PIXELS", 10 ** 6)
    with Colorizer.load(None) as c:
        check_cases(c, learn_hint_fill, tmp_path / "photo.png")


def check_cases(c, learn_hint_fill, photo) -> None:
    import torch
    from PIL import Image

    from runtime.image import hint_features as hf
    from runtime.image.color import rgb_to_l, rgb_to_lab
    from runtime.image.geometry import prepare_l
    from trainer.evaluate import grey_baseline, load_colour

    cases = learn_hint_fill.make_cases(c, [photo], seed=0)
    assert {case["kind"] for case in cases} == {"points", "cluster"}
    truth = load_colour(photo)
    L_full = rgb_to_l(grey_baseline(truth))
    net_L, g = prepare_l(L_full, c.spec.size_multiple, c.render_size)
    assert (g.net_h, g.net_w) != (g.h, g.w)  # the truth must be placed inside the padding
    for case in cases:
        case["t"] = {k: torch.from_numpy(np.ascontiguousarray(case[k], np.float32))
                     for k in ("g", "share", "near2", "base", "truth", "f", "r")}
        loss = learn_hint_fill.case_losses([case], torch.from_numpy(hf.FILL_WEIGHTS), hf.FILL_EPS, hf.FILL_REACH,
                                           hf.FILL_SIGMA)
        hints = (learn_hint_fill.hint_image(truth, learn_hint_fill.POINTS[0], 100_000, learn_hint_fill.PATCH)
                 if case["kind"] == "points" else learn_hint_fill.cluster_hints(truth, 200_000))
        ab = c.predict_ab(net_L, c.hint_input(hints, g))[0][:, g.top:g.top + g.h, g.left:g.left + g.w]
        small = np.stack([np.asarray(Image.fromarray(truth[..., k], mode="F").resize((g.w, g.h), Image.Resampling.BILINEAR))
                          for k in range(3)], -1)
        truth_ab = rgb_to_lab(np.clip(small, 0, 1))[..., 1:].transpose(2, 0, 1)
        mse = ((ab - truth_ab) ** 2).sum(0).mean()
        assert np.isclose(np.exp(loss.item()), mse, rtol=1e-4), (case["kind"], np.exp(loss.item()), mse)
