"""Numba kernels of the FFCV multi-crop pipeline: per-sample RNG, crop boxes, colour augmentation.

The kernels mirror `pretrain.data.transforms.MultiCropTransform` (DINO / iBOT recipe: random
resized crop, flip, colour jitter in random order, grayscale, Gaussian blur, solarize) on one
crop at a time, in float32 scratch buffers small enough to stay in cache. They are compiled
once and cached on disk (``cache=True``); the ctypes calls into ffcv's JPEG decoder and resizer
live in the (uncached) decoder closure of `pretrain.data.ffcv.decoder`.

Randomness is a splitmix64 stream seeded from (seed, epoch, dataset index), so the crops of a
sample do not depend on the number of threads, the batch it lands in, or where an epoch resumed.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MUL1 = np.uint64(0xBF58476D1CE4E5B9)
_MUL2 = np.uint64(0x94D049BB133111EB)
_TO_UNIT = 1.0 / 9007199254740992.0  # 2**-53: 53 random bits -> [0, 1)


@njit(cache=True, nogil=True)
def _mix(z: np.uint64) -> np.uint64:
    z = (z ^ (z >> np.uint64(30))) * _MUL1
    z = (z ^ (z >> np.uint64(27))) * _MUL2
    return z ^ (z >> np.uint64(31))


@njit(cache=True, nogil=True)
def sample_state(seed: int, epoch: int, index: int) -> np.ndarray:
    """RNG state (uint64 array of 1) of one sample's augmentation, a hash of (seed, epoch, index)."""
    z = _mix(np.uint64(seed) + _GOLDEN)
    z = _mix(z ^ (np.uint64(epoch) * _MUL1 + _GOLDEN))
    z = _mix(z ^ (np.uint64(index) * _MUL2 + _GOLDEN))
    state = np.empty(1, np.uint64)
    state[0] = z
    return state


@njit(cache=True, nogil=True)
def uniform(state: np.ndarray, low: float, high: float) -> float:
    """One draw from U[low, high) advancing ``state`` in place."""
    state[0] += _GOLDEN
    u = np.float64(_mix(state[0]) >> np.uint64(11)) * _TO_UNIT
    return low + (high - low) * u


@njit(cache=True, nogil=True)
def crop_box(state: np.ndarray, height: int, width: int, scale_lo: float, scale_hi: float,
             ratio_lo: float, ratio_hi: float) -> tuple[int, int, int, int]:
    """torchvision's RandomResizedCrop box: (top, left, h, w), 10 tries, then a centre crop."""
    area = float(height) * float(width)
    log_lo, log_hi = math.log(ratio_lo), math.log(ratio_hi)
    for _ in range(10):
        target = area * uniform(state, scale_lo, scale_hi)
        aspect = math.exp(uniform(state, log_lo, log_hi))
        w = int(round(math.sqrt(target * aspect)))  # noqa: RUF046 - numba types the result only through int()
        h = int(round(math.sqrt(target / aspect)))  # noqa: RUF046 - numba types the result only through int()
        if 0 < w <= width and 0 < h <= height:
            top = int(uniform(state, 0.0, height - h + 1.0))
            left = int(uniform(state, 0.0, width - w + 1.0))
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < ratio_lo:
        w, h = width, int(round(width / ratio_lo))  # noqa: RUF046 - numba types the result only through int()
    elif in_ratio > ratio_hi:
        h, w = height, int(round(height * ratio_hi))  # noqa: RUF046 - numba types the result only through int()
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


_R, _G, _B = np.float32(0.299), np.float32(0.587), np.float32(0.114)  # ITU-R 601 luma, as torchvision
_ZERO, _ONE, _MAX = np.float32(0.0), np.float32(1.0), np.float32(255.0)


@njit(cache=True, nogil=True, fastmath=True)
def _brightness(planes: np.ndarray, factor: np.float32) -> None:
    for c in range(3):
        for p in range(planes.shape[1]):
            planes[c, p] = min(max(planes[c, p] * factor, _ZERO), _MAX)


@njit(cache=True, nogil=True, fastmath=True)
def _contrast(planes: np.ndarray, factor: np.float32) -> None:
    """Blend with the mean luma of the whole crop (torchvision adjust_contrast)."""
    total = np.float32(0.0)
    for p in range(planes.shape[1]):
        total += _R * planes[0, p] + _G * planes[1, p] + _B * planes[2, p]
    mean = total / np.float32(planes.shape[1])
    for c in range(3):
        for p in range(planes.shape[1]):
            planes[c, p] = min(max(mean + factor * (planes[c, p] - mean), _ZERO), _MAX)


@njit(cache=True, nogil=True, fastmath=True)
def _luma(planes: np.ndarray, out: np.ndarray) -> None:
    for p in range(planes.shape[1]):
        out[p] = _R * planes[0, p] + _G * planes[1, p] + _B * planes[2, p]


@njit(cache=True, nogil=True, fastmath=True)
def _saturation(planes: np.ndarray, factor: np.float32, scratch: np.ndarray) -> None:
    """Blend with the per-pixel luma. Like all multi-channel ops here it runs as one pass that
    only reads the planes, then one single-channel pass per plane: loops LLVM can vectorise."""
    luma = scratch[0]
    _luma(planes, luma)
    for c in range(3):
        for p in range(planes.shape[1]):
            planes[c, p] = min(max(luma[p] + factor * (planes[c, p] - luma[p]), _ZERO), _MAX)


@njit(cache=True, nogil=True, fastmath=True)
def _grayscale(planes: np.ndarray, scratch: np.ndarray) -> None:
    luma = scratch[0]
    _luma(planes, luma)
    for c in range(3):
        planes[c, :] = luma


@njit(cache=True, nogil=True, fastmath=True)
def _hue(planes: np.ndarray, shift: np.float32, scratch: np.ndarray) -> None:
    """RGB -> HSV, rotate the hue by ``shift`` turns, -> RGB (torchvision's formulas).

    The HSV -> RGB step uses the branch-free form channel_n = v - v*s*clamp(min(k, 4-k), 0, 1)
    with k = (n + 6h) mod 6, n = 5, 3, 1 for R, G, B.
    """
    sixth, six, four = np.float32(1.0 / 6.0), np.float32(6.0), np.float32(4.0)
    value, chroma, h6 = scratch[0], scratch[1], scratch[2]
    for p in range(planes.shape[1]):
        r, g, b = planes[0, p], planes[1, p], planes[2, p]
        maxc = max(r, g, b)
        span = maxc - min(r, g, b)  # = v * s
        inv = _ONE / (span if span > _ZERO else _ONE)
        hue = np.float32(4.0) + (r - g) * inv  # torchvision's 4 + gc - rc, simplified
        hue = np.float32(2.0) + (b - r) * inv if maxc == g else hue
        hue = (g - b) * inv if maxc == r else hue
        value[p], chroma[p] = maxc, span
        h6[p] = hue + six + six * shift  # >= 2: hue in [-1, 5], shift in [-0.5, 0.5]
    for c in range(3):
        offset = np.float32(5 - 2 * c)
        for p in range(planes.shape[1]):
            k = offset + h6[p]
            k -= six * np.floor(k * sixth)  # k mod 6 without a division
            planes[c, p] = value[p] - chroma[p] * min(max(min(k, four - k), _ZERO), _ONE)


@njit(cache=True, nogil=True, fastmath=True)
def _gaussian_blur(work: np.ndarray, tmp: np.ndarray, sigma: float, ksize: int) -> None:
    """Separable Gaussian blur with reflect padding, in place on planar ``work`` (3, S, S).

    The kernel has torchvision's side ``ksize`` but is truncated at 3 sigma: the dropped taps
    hold < 0.3% of the weight and small sigmas (most draws) then cost a fraction of the work.
    """
    radius = min(ksize // 2, int(math.ceil(3.0 * sigma)))  # noqa: RUF046 - numba types the result only through int()
    taps = 2 * radius + 1
    weights = np.empty(taps, np.float32)
    for k in range(taps):
        weights[k] = math.exp(-0.5 * ((k - radius) / sigma) ** 2)
    weights /= weights.sum()
    height, width = work.shape[1], work.shape[2]
    padded = np.empty(width + 2 * radius, np.float32)
    for c in range(3):
        for y in range(height):  # horizontal: reflect-pad one row, then one contiguous axpy per tap
            padded[radius: radius + width] = work[c, y]
            for x in range(radius):  # reflect padding: only the 2 * radius border cells need it
                padded[x] = work[c, y, _reflect(x - radius, width)]
                padded[radius + width + x] = work[c, y, _reflect(width + x, width)]
            row = tmp[c, y]
            row[:] = 0.0
            for k in range(taps):
                w = weights[k]
                for x in range(width):
                    row[x] += w * padded[k + x]
        for y in range(height):  # vertical: accumulate whole rows
            out = work[c, y]
            out[:] = 0.0
            for k in range(taps):
                w = weights[k]
                src = tmp[c, _reflect(y + k - radius, height)]
                for x in range(width):
                    out[x] += w * src[x]


@njit(cache=True, nogil=True, fastmath=True)
def _reflect(i: int, n: int) -> int:
    if i < 0:
        i = -i
    if i >= n:
        i = 2 * n - 2 - i
    return min(max(i, 0), n - 1)


@njit(cache=True, nogil=True, fastmath=True)
def _jitter_params(state: np.ndarray, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ColorJitter's random op order (Fisher-Yates) and its 4 factors."""
    order = np.arange(4)
    for i in range(3, 0, -1):
        j = int(uniform(state, 0.0, i + 1.0))
        order[i], order[j] = order[j], order[i]
    factors = np.empty(4, np.float32)
    for op in range(3):
        factors[op] = uniform(state, max(0.0, 1.0 - params[2 + op]), 1.0 + params[2 + op])
    factors[3] = uniform(state, -params[5], params[5])
    return order, factors


@njit(cache=True, nogil=True, fastmath=True)
def _jitter(work: np.ndarray, order: np.ndarray, factors: np.ndarray, params: np.ndarray,
            scratch: np.ndarray) -> None:
    """ColorJitter: brightness, contrast, saturation, hue, applied in ``order``."""
    planes = work.reshape(3, -1)
    for i in range(4):
        op = order[i]
        if params[2 + op] <= 0:
            continue
        if op == 0:
            _brightness(planes, factors[0])
        elif op == 1:
            _contrast(planes, factors[1])
        elif op == 2:
            _saturation(planes, factors[2], scratch)
        else:
            _hue(planes, factors[3], scratch)


@njit(cache=True, nogil=True, fastmath=True)
def augment_crop(src: np.ndarray, dst: np.ndarray, state: np.ndarray, work: np.ndarray, tmp: np.ndarray,
                 params: np.ndarray, blur_ksize: int, colour: bool) -> None:
    """Flip (+ colour augment) one resized crop and write it channel-first.

    Args:
        src: uint8 (S, S, 3) the resized crop.
        dst: uint8 (3, S, S) its slot in the output batch.
        state: The sample's RNG state (advanced in place).
        work, tmp: float32 (3, S, S) scratch (planar, so every per-pixel loop is contiguous).
        params: float64 (11,) flip_p, jitter_p, brightness, contrast, saturation, hue, gray_p,
            blur_p, sigma_lo, sigma_hi, solarize_p (the `MultiCropSpec` values of this view).
        blur_ksize: Odd blur kernel side (`transforms.blur_kernel_size` of this view).
        colour: False: flip only (the colour ops then run on the device).
    """
    size = src.shape[0]
    # Every parameter is drawn whether used or not: the stream, hence the next crop's box, is then
    # the same with colour on or off (colour_on_device gives the same crops as the CPU path).
    flip = uniform(state, 0.0, 1.0) < params[0]
    jitter = uniform(state, 0.0, 1.0) < params[1]
    order, factors = _jitter_params(state, params)
    gray = uniform(state, 0.0, 1.0) < params[6]
    blur = uniform(state, 0.0, 1.0) < params[7]
    sigma = uniform(state, params[8], params[9])
    solarize = uniform(state, 0.0, 1.0) < params[10]
    if not colour:
        for c in range(3):
            for y in range(size):
                for x in range(size):
                    dst[c, y, x] = src[y, size - 1 - x if flip else x, c]
        return
    for c in range(3):
        for y in range(size):
            for x in range(size):
                work[c, y, x] = src[y, x, c]
    scratch = tmp.reshape(3, -1)  # free until the blur needs it
    if jitter:
        _jitter(work, order, factors, params, scratch)
    if gray:
        _grayscale(work.reshape(3, -1), scratch)
    if blur:
        _gaussian_blur(work, tmp, sigma, blur_ksize)
    half, threshold = np.float32(0.5), np.float32(128.0 if solarize else 256.0)  # solarize: v >= 128 -> 255 - v
    for c in range(3):
        for y in range(size):
            out = dst[c, y]
            if flip:
                row = work[c, y, ::-1]
                for x in range(size):
                    v = np.floor(min(max(row[x] + half, _ZERO), _MAX))
                    out[x] = np.int32(_MAX - v if v >= threshold else v)
            else:
                row2 = work[c, y]
                for x in range(size):
                    v = np.floor(min(max(row2[x] + half, _ZERO), _MAX))
                    out[x] = np.int32(_MAX - v if v >= threshold else v)
