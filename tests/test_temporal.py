"""TemporalStabilizer: off is identity, static scenes are smoothed, motion and cuts are respected."""
from __future__ import annotations

import numpy as np
import pytest

from runtime.video.temporal import TemporalStabilizer, box_filter, estimate_translation, shift_image


def scene(h: int = 64, w: int = 96, seed: int = 0) -> np.ndarray:
    """A smooth random L field (0..100) with texture for motion estimation."""
    rng = np.random.default_rng(seed)
    L = box_filter(rng.uniform(0, 100, (h, w)).astype(np.float32), 3)
    return (L - L.min()) / (L.max() - L.min()) * 80 + 10


def noisy_ab(shape, rng, base: float = 20.0, noise: float = 6.0) -> np.ndarray:
    return (base + rng.normal(0, noise, (2, *shape))).astype(np.float32)


def flicker(seq: list[np.ndarray]) -> float:
    return float(np.mean([np.abs(b - a).mean() for a, b in zip(seq, seq[1:])]))


def test_strength_zero_is_identity():
    st = TemporalStabilizer(0.0)
    rng = np.random.default_rng(1)
    L = scene()
    for _ in range(3):
        ab = noisy_ab(L.shape, rng)
        assert np.array_equal(st.update(L, ab), ab)


def test_static_scene_flicker_drops_and_mean_is_kept():
    rng = np.random.default_rng(2)
    L = scene()
    raw = [noisy_ab(L.shape, rng) for _ in range(30)]
    st = TemporalStabilizer(0.6)
    out = [st.update(L, ab) for ab in raw]
    assert flicker(out) < 0.5 * flicker(raw)
    # A blend of predictions: no drift of the colour itself.
    assert abs(np.mean(out[5:]) - np.mean(raw[5:])) < 1.0


def test_changed_pixels_take_the_new_prediction():
    L0 = scene()
    L1 = L0.copy()
    L1[20:40, 30:60] = np.where(L0[20:40, 30:60] > 50, L0[20:40, 30:60] - 40, L0[20:40, 30:60] + 40)  # an object
    st = TemporalStabilizer(0.8, motion=False)
    st.update(L0, np.zeros((2, *L0.shape), np.float32))
    out = st.update(L1, np.full((2, *L0.shape), 50, np.float32))
    assert np.allclose(out[:, 25:35, 38:52], 50, atol=1.0)  # moved region: trusts the new frame
    assert np.allclose(out[:, 50:, :20], 0.2 * 50, atol=1.0)  # static region: blended with history


def test_scene_cut_resets():
    rng = np.random.default_rng(3)
    L0, L1 = scene(seed=0) * 0.4, scene(seed=1) * 0.4 + 55  # dark shot, then a bright one
    st = TemporalStabilizer(0.9)
    st.update(L0, noisy_ab(L0.shape, rng, base=-30))
    new = noisy_ab(L1.shape, rng, base=30)
    assert np.array_equal(st.update(L1, new), new)
    assert st.cuts == 1


@pytest.mark.parametrize("dy,dx", [(2.0, -3.0), (-1.5, 4.25), (0.0, 0.0)])
def test_translation_estimate(dy, dx):
    big = scene(128, 160, seed=4)
    prev = big[20:100, 20:140]
    cur = shift_image(big, dy, dx)[0][20:100, 20:140]
    ey, ex = estimate_translation(prev, cur)
    assert abs(ey - dy) < 0.35 and abs(ex - dx) < 0.35


def test_panning_camera_history_follows_the_motion():
    """With motion compensation a pan keeps the filter on (smooth output); without it, textured
    pixels look 'changed' and the filter mostly passes the noise through."""
    rng = np.random.default_rng(5)
    big = scene(128, 192, seed=6)
    frames = [big[30:94, 10 + 2 * t: 106 + 2 * t] for t in range(20)]
    truth = [np.stack([f - 50, 50 - f]) for f in frames]  # colour tied to the surface
    raw = [t + rng.normal(0, 6, t.shape).astype(np.float32) for t in truth]

    def err(st):
        out = [st.update(L, ab) for L, ab in zip(frames, raw)]
        return float(np.mean([np.abs(o - t)[:, :, :-8].mean() for o, t in zip(out[5:], truth[5:])]))

    with_motion, without = err(TemporalStabilizer(0.7)), err(TemporalStabilizer(0.7, motion=False))
    per_frame = float(np.mean([np.abs(r - t)[:, :, :-8].mean() for r, t in zip(raw[5:], truth[5:])]))
    assert with_motion < 0.8 * per_frame
    assert with_motion < without


def test_bad_arguments():
    with pytest.raises(ValueError):
        TemporalStabilizer(1.5)
    with pytest.raises(ValueError):
        TemporalStabilizer(0.5).update(np.zeros((4, 4)), np.zeros((2, 5, 4)))


def test_deterministic():
    rng = np.random.default_rng(7)
    L = scene()
    raw = [noisy_ab(L.shape, rng) for _ in range(5)]
    a = [TemporalStabilizer(0.6).update(L, r) for r in raw]
    b = [TemporalStabilizer(0.6).update(L, r) for r in raw]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_gate_smoother_steadies_a_flicking_gate_within_a_shot_and_restarts_at_cuts():
    from runtime.video.temporal import GateSmoother

    g = GateSmoother(rate=0.35)
    raw = [0.9, 0.1, 0.9, 0.1, 0.9, 0.1, 0.9, 0.1]
    out = [g(x) for x in raw]
    assert out[0] == 0.9  # the first frame of a shot takes its own gate, as a still would
    assert max(np.abs(np.diff(out))) < 0.5 * max(np.abs(np.diff(raw)))  # the flicker is damped
    steady = GateSmoother(rate=0.35)
    for _ in range(6):
        last = steady(0.2)
    assert last == pytest.approx(0.2)  # a steady gate is kept as it is
    g.reset()
    assert g(0.3) == 0.3  # after a cut or a new key frame: the new shot's own gate
    change = GateSmoother(rate=0.35)
    change(1.0)
    for _ in range(6):
        v = change(0.0)
    assert v < 0.1  # a real change comes through within a few frames

