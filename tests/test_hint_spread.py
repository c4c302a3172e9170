"""runtime/image/hint_spread.py: the edge-aware spreading of what the network left out of the hints."""
from __future__ import annotations

import numpy as np

from runtime.image import hint_spread as hs


def dense_solution(L, residual, mask, sigma=hs.SIGMA_L, reach=hs.REACH, strength=hs.STRENGTH):
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
    A[np.diag_indices(n)] += m + 1.0 / max(1.0, reach * max(h, w)) ** 2
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
