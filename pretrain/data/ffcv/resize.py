"""Numba crop-and-resize kernel of the FFCV multi-crop pipeline (area interpolation).

`resize_crop_area` cuts a box out of a decoded uint8 (H, W, 3) image and resizes it to a square
(S, S, 3) in one separable pass per axis: the rows first (each output row a weighted sum of at
most ``ceil(h / S) + 1`` contiguous source rows, a loop LLVM vectorises), then the columns.

Weights, per axis:

- shrinking (source extent n >= S): area averaging, output cell i is the mean of the source over
  ``[i * n / S, (i + 1) * n / S)`` with fractional edge cells (OpenCV's ``INTER_AREA``);
- enlarging (n < S): OpenCV's ``INTER_AREA`` enlarging rule, a linear blend whose weight is
  snapped to source cells (``fx = (i + 1) - (floor(i * n / S) + 1) * S / n``, kept when in (0, 1)).

When both axes shrink or both enlarge the result equals ``cv2.resize(..., INTER_AREA)`` up to
rounding (tested). When one shrinks and the other enlarges, OpenCV switches both axes to the
enlarging rule (so the shrinking axis is point-sampled); here each axis keeps its own rule, which
anti-aliases that axis like the torchvision path's antialiased resize does.

Why not ffcv's ``resize_crop`` (OpenCV ``cv::resize`` in the system libopencv that libffcv links):
for the 1x-2x shrink factors of multi-crop on ~500 px images OpenCV takes its generic area path,
which measured 1.7x slower than this kernel on the benchmark photos (benchmarks/ffcv_loader/results/ffcv_loader.md).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, fastmath=True)
def axis_weights(n: int, m: int, starts: np.ndarray, weights: np.ndarray) -> int:
    """Resampling weights of ``n`` source cells onto ``m`` output cells along one axis.

    Args:
        n: Source extent (>= 1). m: Output extent (>= 1).
        starts: int64 (m,) output: first source cell of each output cell.
        weights: float32 (m, >= ceil(n / m) + 1) output: weight of source cell ``starts[i] + t``.

    Returns:
        The number of taps T used: output i = sum_t weights[i, t] * source[starts[i] + t], t < T,
        and ``starts[i] + t < n`` always holds.
    """
    scale = n / m
    if scale >= 1.0:
        taps = min(math.ceil(scale) + 1, n)
        inv = 1.0 / scale
        for i in range(m):
            lo, hi = i * scale, (i + 1) * scale
            j0 = min(math.floor(lo), n - taps)
            starts[i] = j0
            for t in range(taps):
                j = j0 + t
                weights[i, t] = max(min(j + 1.0, hi) - max(float(j), lo), 0.0) * inv
        return taps
    taps = 2 if n > 1 else 1
    for i in range(m):
        j0 = math.floor(i * scale)
        f = (i + 1) - (j0 + 1) / scale
        f = 0.0 if f <= 0.0 else f - math.floor(f)
        if j0 >= n - 1:  # the last cell: clamp (OpenCV replicates the border)
            j0, f = n - taps, (1.0 if taps == 2 else 0.0)
        starts[i] = j0
        weights[i, 0] = 1.0 - f
        if taps == 2:
            weights[i, 1] = f
    return taps


@njit(cache=True, nogil=True, fastmath=True)
def resize_crop_area(image: np.ndarray, top: int, left: int, h: int, w: int, out: np.ndarray,
                     rows: np.ndarray) -> None:
    """Resize the box ``image[top: top + h, left: left + w]`` into ``out`` (area interpolation).

    Args:
        image: uint8 (H, W, 3) C-contiguous decoded image; the box must lie inside it.
        top, left, h, w: The crop box (h, w >= 1).
        out: uint8 (S, S, 3) destination.
        rows: float32 scratch of at least ``S * 3 * w`` elements (the row-resized crop).
    """
    size = out.shape[0]
    ys, xs = np.empty(size, np.int64), np.empty(size, np.int64)
    wy = np.zeros((size, h // size + 3), np.float32)
    wx = np.zeros((size, w // size + 3), np.float32)
    ty = axis_weights(h, size, ys, wy)
    tx = axis_weights(w, size, xs, wx)
    flat = image.reshape(image.shape[0], -1)
    width3 = 3 * w
    tmp = rows[: size * width3].reshape(size, width3)
    for y in range(size):  # rows: contiguous axpy over the crop's 3 * w values
        acc = tmp[y]
        acc[:] = 0.0
        for t in range(ty):
            weight = wy[y, t]
            if weight != 0.0:
                src = flat[top + ys[y] + t, 3 * left: 3 * left + width3]
                for k in range(width3):
                    acc[k] += weight * src[k]
    half, top_value = np.float32(0.5), np.float32(255.0)
    for y in range(size):  # columns
        acc = tmp[y]
        for x in range(size):
            base = 3 * xs[x]
            r = g = b = np.float32(0.0)
            for t in range(tx):
                weight = wx[x, t]
                r += weight * acc[base + 3 * t]
                g += weight * acc[base + 3 * t + 1]
                b += weight * acc[base + 3 * t + 2]
            out[y, x, 0] = np.uint8(min(max(r + half, 0.0), top_value))
            out[y, x, 1] = np.uint8(min(max(g + half, 0.0), top_value))
            out[y, x, 2] = np.uint8(min(max(b + half, 0.0), top_value))
