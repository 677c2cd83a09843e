"""The FFCV loader's numba crop-and-resize kernel against OpenCV and a brute-force area average."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")
cv2 = pytest.importorskip("cv2")

from pretrain.data.ffcv.resize import resize_crop_area  # noqa: E402 (after the cv2 skip)


def smooth_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A random uint8 (H, W, 3) image with structure at several scales (blurred noise + a ramp)."""
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), (5, 5), 1.5)
    ramp = np.linspace(0, 60, width, dtype=np.float32)[None, :, None]
    return np.clip(noise.astype(np.float32) * 0.75 + ramp, 0, 255).astype(np.uint8)


def run_kernel(image: np.ndarray, box: tuple[int, int, int, int], size: int) -> np.ndarray:
    top, left, h, w = box
    out = np.empty((size, size, 3), np.uint8)
    rows = np.empty(size * 3 * w, np.float32)
    resize_crop_area(image, top, left, h, w, out, rows)
    return out


@pytest.mark.parametrize("box,size", [
    ((10, 20, 200, 300), 96),   # shrink 2.08 x 3.1
    ((0, 0, 150, 160), 96),     # shrink 1.56 x 1.67 (the usual multi-crop factors)
    ((33, 7, 192, 192), 96),    # integer factor 2
    ((5, 5, 96, 96), 96),       # identity
    ((1, 2, 349, 430), 224),    # global crop of a whole image
    ((50, 60, 80, 70), 96),     # enlarge both axes
    ((0, 0, 1, 1), 14),         # a single source pixel
])
def test_matches_opencv_inter_area_when_both_axes_shrink_or_both_grow(box, size):
    image = smooth_image(360, 440)
    top, left, h, w = box
    reference = cv2.resize(np.ascontiguousarray(image[top: top + h, left: left + w]), (size, size),
                           interpolation=cv2.INTER_AREA)
    out = run_kernel(image, box, size)
    diff = np.abs(out.astype(int) - reference.astype(int))
    assert diff.max() <= 1, f"max difference {diff.max()} to cv2.resize(INTER_AREA)"
    assert diff.mean() < 0.1  # rounding only (OpenCV enlarges in 11-bit fixed point)


def brute_force_area(profile: np.ndarray, size: int) -> np.ndarray:
    """Area average of a 1-D profile onto ``size`` cells: repeat every source cell ``size`` times,
    then average blocks of ``len(profile)`` (exact, no fractional bookkeeping)."""
    fine = np.repeat(profile.astype(np.float64), size)
    return fine.reshape(size, len(profile)).mean(axis=1)


def test_mixed_case_area_averages_the_shrinking_axis():
    """Columns shrink 150 -> 96 while rows grow 80 -> 96: every output row is the exact area
    average of the column profile (an image constant along rows makes the growing rule moot)."""
    width, size = 150, 96
    profile = np.random.default_rng(1).integers(0, 256, width).astype(np.uint8)
    image = np.ascontiguousarray(np.broadcast_to(profile[None, :, None], (80, width, 3)))
    out = run_kernel(image, (0, 0, 80, width), size)
    expected = brute_force_area(profile, size)
    assert np.abs(out[:, :, 1].astype(float) - expected[None, :]).max() <= 0.51
    assert (out == out[:1]).all()  # constant along the rows, every channel alike


def test_constant_image_stays_constant_at_every_scale():
    image = np.full((300, 400, 3), (17, 130, 250), np.uint8)
    for box, size in [((0, 0, 300, 400), 224), ((100, 100, 37, 51), 96), ((3, 4, 120, 90), 96)]:
        out = run_kernel(image, box, size)
        assert (out == np.array([17, 130, 250], np.uint8)).all()
