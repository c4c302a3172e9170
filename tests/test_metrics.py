"""trainer.metrics: the published facts each metric must reproduce."""
from __future__ import annotations

import math

import numpy as np
import pytest

from trainer.metrics import SCORE_KEYS, ciede2000, colourfulness, psnr, score_image, ssim, summarize

# Sharma, Wu & Dalal (2005), "The CIEDE2000 color-difference formula: implementation notes, supplementary
# test data, and mathematical observations", Color Res. Appl. 30(1), Table 1: L1 a1 b1, L2 a2 b2, dE00.
SHARMA_2005 = [
    (50.0000, 2.6772, -79.7751, 50.0000, 0.0000, -82.7485, 2.0425),
    (50.0000, 3.1571, -77.2803, 50.0000, 0.0000, -82.7485, 2.8615),
    (50.0000, 2.8361, -74.0200, 50.0000, 0.0000, -82.7485, 3.4412),
    (50.0000, -1.3802, -84.2814, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, -1.1848, -84.8006, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, -0.9009, -85.5211, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, 0.0000, 0.0000, 50.0000, -1.0000, 2.0000, 2.3669),
    (50.0000, -1.0000, 2.0000, 50.0000, 0.0000, 0.0000, 2.3669),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0009, 7.1792),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0010, 7.1792),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0011, 7.2195),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0012, 7.2195),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0009, -2.4900, 4.8045),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0010, -2.4900, 4.8045),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0011, -2.4900, 4.7461),
    (50.0000, 2.5000, 0.0000, 50.0000, 0.0000, -2.5000, 4.3065),
    (50.0000, 2.5000, 0.0000, 73.0000, 25.0000, -18.0000, 27.1492),
    (50.0000, 2.5000, 0.0000, 61.0000, -5.0000, 29.0000, 22.8977),
    (50.0000, 2.5000, 0.0000, 56.0000, -27.0000, -3.0000, 31.9030),
    (50.0000, 2.5000, 0.0000, 58.0000, 24.0000, 15.0000, 19.4535),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.1736, 0.5854, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.2972, 0.0000, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 1.8634, 0.5757, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.2592, 0.3350, 1.0000),
    (60.2574, -34.0099, 36.2677, 60.4626, -34.1751, 39.4387, 1.2644),
    (63.0109, -31.0961, -5.8663, 62.8187, -29.7946, -4.0864, 1.2630),
    (61.2901, 3.7196, -5.3901, 61.4292, 2.2480, -4.9620, 1.8731),
    (35.0831, -44.1164, 3.7933, 35.0232, -40.0716, 1.5901, 1.8645),
    (22.7233, 20.0904, -46.6940, 23.0331, 14.9730, -42.5619, 2.0373),
    (36.4612, 47.8580, 18.3852, 36.2715, 50.5065, 21.2231, 1.4146),
    (90.8027, -2.0831, 1.4410, 91.1528, -1.6435, 0.0447, 1.4441),
    (90.9257, -0.5406, -0.9208, 88.6381, -0.8985, -0.7239, 1.5381),
    (6.7747, -0.2908, -2.4247, 5.8714, -0.0985, -2.2286, 0.6377),
    (2.0776, 0.0795, -1.1350, 0.9033, -0.0636, -0.5514, 0.9082),
]


def _rng_image(seed: int, shape=(40, 52, 3)) -> np.ndarray:
    return np.random.default_rng(seed).random(shape)


def test_ciede2000_matches_sharma_2005_table():
    data = np.array(SHARMA_2005)
    assert data.shape == (34, 7)
    got = ciede2000(data[:, 0:3], data[:, 3:6])
    # The table is printed to 4 decimals: every value must round to it.
    np.testing.assert_allclose(got, data[:, 6], atol=5e-5, rtol=0)


def test_ciede2000_is_symmetric_vectorized_and_zero_on_equal_colours():
    data = np.array(SHARMA_2005)
    image1 = data[:, 0:3].reshape(2, 17, 3)  # any leading shape works
    image2 = data[:, 3:6].reshape(2, 17, 3)
    forward, backward = ciede2000(image1, image2), ciede2000(image2, image1)
    assert forward.shape == (2, 17)
    np.testing.assert_allclose(forward, backward, atol=1e-12)
    np.testing.assert_array_equal(ciede2000(image1, image1), 0.0)


def test_ciede2000_agrees_with_skimage_on_random_colours():
    skcolor = pytest.importorskip("skimage.color")
    rng = np.random.default_rng(1)
    lo, hi = [0, -110, -110], [100, 110, 110]
    lab1, lab2 = rng.uniform(lo, hi, (500, 3)), rng.uniform(lo, hi, (500, 3))
    np.testing.assert_allclose(ciede2000(lab1, lab2), skcolor.deltaE_ciede2000(lab1, lab2), atol=1e-9)


def test_psnr_identical_is_inf_and_known_value():
    img = _rng_image(2)
    assert psnr(img, img) == math.inf
    # Uniform error of 0.1 on every value: MSE 0.01 -> 20 dB at data_range 1.
    shifted = np.full((8, 8, 3), 0.5)
    assert psnr(shifted + 0.1, shifted) == pytest.approx(20.0, abs=1e-9)
    assert psnr((shifted + 0.1) * 255, shifted * 255, data_range=255) == pytest.approx(20.0, abs=1e-9)


def test_psnr_shape_mismatch_raises():
    with pytest.raises(ValueError, match="shape mismatch"):
        psnr(np.zeros((4, 4, 3)), np.zeros((4, 5, 3)))


@pytest.mark.parametrize("seed", [3, 4])
def test_ssim_matches_skimage_with_the_stated_settings(seed):
    metrics = pytest.importorskip("skimage.metrics")
    truth = _rng_image(seed)
    pred = np.clip(truth + 0.15 * np.random.default_rng(seed + 10).standard_normal(truth.shape), 0, 1)
    expected = metrics.structural_similarity(
        pred, truth, channel_axis=-1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0
    )
    assert ssim(pred, truth) == pytest.approx(expected, abs=1e-10)
    assert ssim(truth, truth) == pytest.approx(1.0, abs=1e-12)


def test_ssim_rejects_images_smaller_than_the_window():
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(np.zeros((10, 20, 3)), np.zeros((10, 20, 3)))


@pytest.mark.parametrize("value", [0.0, 0.37, 1.0])
def test_colourfulness_of_flat_grey_is_zero(value):
    assert colourfulness(np.full((9, 7, 3), value)) == 0.0
    # A neutral image with varying brightness is still colourless.
    ramp = np.repeat(np.linspace(0, 1, 30)[:, None, None], 3, axis=2) * np.ones((30, 5, 3))
    assert colourfulness(ramp) == pytest.approx(0.0, abs=1e-12)


def test_colourfulness_known_cases_by_hand():
    # Uniform pure red (255, 0, 0): rg = 255, yb = 127.5, no spread -> 0.3 * sqrt(255^2 + 127.5^2).
    red = np.zeros((4, 4, 3))
    red[..., 0] = 1.0
    assert colourfulness(red) == pytest.approx(0.3 * math.hypot(255, 127.5), abs=1e-9)  # 85.5308...
    # Half red, half black: rg in {255, 0}, yb in {127.5, 0}; std = mean = half of each
    # -> sigma = mu = hypot(127.5, 63.75), CF = 1.3 * that.
    half = np.zeros((2, 2, 3), dtype=np.uint8)
    half[0, :, 0] = 255
    assert colourfulness(half) == pytest.approx(1.3 * math.hypot(127.5, 63.75), abs=1e-9)  # 185.31...
    # uint8 input is taken as 0..255, float as 0..1: both scales agree.
    assert colourfulness(half) == pytest.approx(colourfulness(half / 255.0), abs=1e-9)


def test_score_image_and_summary():
    truth = _rng_image(5)
    grey = np.repeat(truth.mean(axis=2, keepdims=True), 3, axis=2)
    perfect, baseline = score_image(truth, truth), score_image(grey, truth)
    assert set(perfect) == set(SCORE_KEYS) == {"psnr", "ssim", "ciede2000", "cf_pred", "cf_truth"}
    assert perfect["psnr"] == math.inf and perfect["ciede2000"] == pytest.approx(0.0, abs=1e-9)
    assert perfect["cf_pred"] == perfect["cf_truth"] > 0
    assert baseline["cf_pred"] == pytest.approx(0.0, abs=1e-9)
    assert 0 < baseline["psnr"] < 60 and baseline["ciede2000"] > 1

    other = score_image(np.clip(truth * 0.5, 0, 1), truth)
    summary = summarize([baseline, other])
    assert summary["psnr"] == pytest.approx((baseline["psnr"] + other["psnr"]) / 2)
    # A ratio of means, not a mean of ratios.
    cf_pred_mean = (baseline["cf_pred"] + other["cf_pred"]) / 2
    assert summary["cf_ratio"] == pytest.approx(cf_pred_mean / colourfulness(truth))
    with pytest.raises(ValueError):
        summarize([])

