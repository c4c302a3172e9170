"""The cffi C kernel against the pure-numpy path (same maths, independent code)."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from runtime.image import color
from runtime.image import fastcolor
from runtime.image.geometry import plan_geometry


@pytest.fixture(scope="module")
def kernel():
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler: only the numpy path exists here")
    status = fastcolor.kernel_status()
    assert status.startswith("C kernel"), status  # a compiler exists, so the kernel must build
    return status


def _case(full=(301, 517), multiple=16, render=128, seed=0):
    rng = np.random.default_rng(seed)
    g = plan_geometry(*full, multiple, render)
    L = rng.uniform(0, 100, full).astype(np.float32)
    ab = rng.uniform(-110, 110, (2, g.net_h, g.net_w)).astype(np.float32)
    return L, ab, g


@pytest.mark.parametrize("full", [(301, 517), (64, 64), (1, 7), (700, 90)])
def test_finish_kernel_matches_numpy(kernel, full):
    L, ab, g = _case(full)
    for sat in (1.0, 0.6):
        u8_c = fastcolor.finish(L, ab, g, sat, out="u8")
        u8_np = fastcolor.finish_reference(L, ab, g, sat, out="u8")
        assert u8_c.dtype == np.uint8 and u8_c.shape == full + (3,)
        diff = np.abs(u8_c.astype(int) - u8_np.astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 0.01
        f_c = fastcolor.finish(L, ab, g, sat, out="f32")
        f_np = fastcolor.finish_reference(L, ab, g, sat, out="f32")
        assert np.abs(f_c - f_np).max() < 2e-4


def test_finish_threads_split_rows_identically(kernel):
    L, ab, g = _case((1000, 300))
    one = fastcolor.finish(L, ab, g, out="u8", threads=1)
    three = fastcolor.finish(L, ab, g, out="u8", threads=3)
    assert np.array_equal(one, three)


def test_numpy_finish_is_lab_to_rgb_at_network_resolution():
    """No resize and no padding: finish is exactly color.lab_to_rgb of (L, ab)."""
    rng = np.random.default_rng(2)
    g = plan_geometry(32, 48, 16, 512)
    assert (g.net_h, g.net_w, g.top, g.left) == (32, 48, 0, 0)
    L = rng.uniform(0, 100, (32, 48)).astype(np.float32)
    ab = rng.uniform(-60, 60, (2, 32, 48)).astype(np.float32)
    want = color.lab_to_rgb(np.stack([L, ab[0], ab[1]], -1))
    got = fastcolor.finish_reference(L, ab, g, out="f32")
    assert np.abs(got - want).max() < 1e-6


def test_upsample_reads_padding_not_edges():
    i0, i1, w = fastcolor.upsample_tables(8, 4, 2, 8)  # 4 content pixels at offset 2 of 8, upsampled x2
    src = i0 + w
    assert np.allclose(src, np.arange(8) * 0.5 - 0.25 + 2)  # half-pixel centres; first sample is 1.75 (padding)


def test_luminance_kernels_match_color_module(kernel):
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (97, 131, 3), dtype=np.uint8)
    want = color.rgb_to_l(rgb.astype(np.float32) / 255)
    assert np.abs(fastcolor.rgb8_to_l(rgb) - want).max() < 2e-3
    assert np.abs(fastcolor.rgb8_to_l(rgb, use_kernel=False) - want).max() < 2e-3
    rgba = np.concatenate([rgb, rng.integers(0, 256, (97, 131, 1), dtype=np.uint8)], -1)
    assert np.array_equal(fastcolor.rgb8_to_l(rgba), fastcolor.rgb8_to_l(rgb))
    grey = rng.integers(0, 256, (50, 60), dtype=np.uint8)
    assert np.array_equal(fastcolor.grey8_to_l(grey), fastcolor.grey8_to_l(grey, use_kernel=False))
    assert np.abs(fastcolor.grey8_to_l(grey) - color.grey_to_l(grey / np.float32(255))).max() < 1e-4


def test_bad_arguments_raise():
    L, ab, g = _case((40, 40))
    with pytest.raises(ValueError):
        fastcolor.finish(L[:-1], ab, g)
    with pytest.raises(ValueError):
        fastcolor.finish(L, ab, g, saturation=-0.5)


@pytest.mark.parametrize("channels", [0, 3, 4])
def test_source_kernel_matches_float_path(kernel, channels):
    """The 8-bit fast path (reads source pixels) equals the float-L path within one level."""
    rng = np.random.default_rng(4)
    shape = (211, 333) if channels == 0 else (211, 333, channels)
    src = rng.integers(0, 256, shape, dtype=np.uint8)
    g = plan_geometry(211, 333, 16, 64)
    ab = rng.uniform(-110, 110, (2, g.net_h, g.net_w)).astype(np.float32)
    fast = fastcolor.finish_src(src, ab, g, 0.8)
    slow = fastcolor.finish_src(src, ab, g, 0.8, use_kernel=False)
    diff = np.abs(fast.astype(int) - slow.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01


def test_kernel_nan_ab_stays_in_table(kernel):
    """NaN in the network's ab map clamps to 0 in the kernel: never an out-of-range gamma-table read."""
    L, ab, g = _case((64, 80))
    ab[0, 3, 4] = np.nan
    ab[1, 10, :] = np.nan
    grey = np.full((64, 80), 128, np.uint8)
    for out in (fastcolor.finish(L, ab, g, out="u8"), fastcolor.finish_src(grey, ab, g),
                fastcolor.finish_src(np.stack([grey] * 3, -1), ab, g)):
        assert out.dtype == np.uint8 and out.shape == (64, 80, 3)
