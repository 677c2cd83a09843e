"""Numba kernels of the FFCV multi-crop pipeline: per-sample RNG, crop boxes, colour augmentation.

The kernels mirror `pretrain.data.transforms.MultiCropTransform` (DINO / iBOT recipe: random
resized crop, flip, colour jitter in random order, grayscale, Gaussian blur, solarize) on one
crop at a time, in float32 scratch buffers small enough to stay in cache. They are compiled
once and cached on disk (``cache=True``); the ctypes calls into ffcv's JPEG decoder and resizer
live in the (uncached) decoder closure of `pretrain.data.ffcv_decoder`.

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
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(uniform(state, 0.0, height - h + 1.0))
            left = int(uniform(state, 0.0, width - w + 1.0))
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < ratio_lo:
        w, h = width, int(round(width / ratio_lo))
    elif in_ratio > ratio_hi:
        h, w = height, int(round(height * ratio_hi))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


@njit(cache=True, nogil=True, fastmath=True)
def _blend_gray_mean(work: np.ndarray, factor: float) -> None:
    """Contrast: blend with the mean luma of the whole crop (torchvision adjust_contrast)."""
    flat = work.reshape(-1, 3)
    total = 0.0
    for p in range(flat.shape[0]):
        total += 0.299 * flat[p, 0] + 0.587 * flat[p, 1] + 0.114 * flat[p, 2]
    mean = total / flat.shape[0]
    for p in range(flat.shape[0]):
        for c in range(3):
            flat[p, c] = min(max(mean + factor * (flat[p, c] - mean), 0.0), 255.0)


@njit(cache=True, nogil=True, fastmath=True)
def _jitter_op(work: np.ndarray, op: int, factor: float) -> None:
    """One colour-jitter op in place: 0 brightness, 1 contrast, 2 saturation, 3 hue."""
    if op == 1:
        _blend_gray_mean(work, factor)
        return
    flat = work.reshape(-1, 3)
    for p in range(flat.shape[0]):
        r, g, b = flat[p, 0], flat[p, 1], flat[p, 2]
        if op == 0:
            r, g, b = r * factor, g * factor, b * factor
        elif op == 2:
            luma = 0.299 * r + 0.587 * g + 0.114 * b
            r, g, b = luma + factor * (r - luma), luma + factor * (g - luma), luma + factor * (b - luma)
        else:
            r, g, b = _shift_hue(r, g, b, factor)
        flat[p, 0] = min(max(r, 0.0), 255.0)
        flat[p, 1] = min(max(g, 0.0), 255.0)
        flat[p, 2] = min(max(b, 0.0), 255.0)


@njit(cache=True, nogil=True, fastmath=True)
def _shift_hue(r: float, g: float, b: float, shift: float) -> tuple[float, float, float]:
    """RGB -> HSV, rotate hue by ``shift`` turns, -> RGB (torchvision's formulas, 0..255 scale)."""
    maxc, minc = max(r, g, b), min(r, g, b)
    chroma = maxc - minc
    if chroma <= 0.0:
        return r, g, b  # gray pixels have no hue to rotate
    sat = chroma / maxc
    rc, gc, bc = (maxc - r) / chroma, (maxc - g) / chroma, (maxc - b) / chroma
    if maxc == r:
        hue = bc - gc
    elif maxc == g:
        hue = 2.0 + rc - bc
    else:
        hue = 4.0 + gc - rc
    hue = (hue / 6.0 + 1.0 + shift) % 1.0
    h6 = hue * 6.0
    sector = int(math.floor(h6)) % 6
    frac = h6 - math.floor(h6)
    v = maxc
    p, q, t = v * (1.0 - sat), v * (1.0 - sat * frac), v * (1.0 - sat * (1.0 - frac))
    if sector == 0:
        return v, t, p
    if sector == 1:
        return q, v, p
    if sector == 2:
        return p, v, t
    if sector == 3:
        return p, q, v
    if sector == 4:
        return t, p, v
    return v, p, q


@njit(cache=True, nogil=True, fastmath=True)
def _reflect(i: int, n: int) -> int:
    if i < 0:
        i = -i
    if i >= n:
        i = 2 * n - 2 - i
    return min(max(i, 0), n - 1)


@njit(cache=True, nogil=True, fastmath=True)
def _gaussian_blur(work: np.ndarray, tmp: np.ndarray, sigma: float, ksize: int) -> None:
    """Separable Gaussian blur with reflect padding, kernel ``ksize`` (odd), in place on ``work``."""
    radius = ksize // 2
    weights = np.empty(ksize, np.float32)
    total = 0.0
    for k in range(ksize):
        weights[k] = math.exp(-0.5 * ((k - radius) / sigma) ** 2)
        total += weights[k]
    weights /= total
    height, width = work.shape[0], work.shape[1]
    for y in range(height):
        for x in range(width):
            r = g = b = 0.0
            for k in range(ksize):
                xx = _reflect(x + k - radius, width)
                r += weights[k] * work[y, xx, 0]
                g += weights[k] * work[y, xx, 1]
                b += weights[k] * work[y, xx, 2]
            tmp[y, x, 0], tmp[y, x, 1], tmp[y, x, 2] = r, g, b
    for y in range(height):
        for x in range(width):
            r = g = b = 0.0
            for k in range(ksize):
                yy = _reflect(y + k - radius, height)
                r += weights[k] * tmp[yy, x, 0]
                g += weights[k] * tmp[yy, x, 1]
                b += weights[k] * tmp[yy, x, 2]
            work[y, x, 0], work[y, x, 1], work[y, x, 2] = r, g, b


@njit(cache=True, nogil=True, fastmath=True)
def augment_crop(src: np.ndarray, dst: np.ndarray, state: np.ndarray, work: np.ndarray, tmp: np.ndarray,
                 params: np.ndarray, blur_ksize: int, colour: bool) -> None:
    """Flip (+ colour augment) one resized crop and write it channel-first.

    Args:
        src: uint8 (S, S, 3) the resized crop.
        dst: uint8 (3, S, S) its slot in the output batch.
        state: The sample's RNG state (advanced in place).
        work, tmp: float32 (S, S, 3) scratch.
        params: float64 (11,) flip_p, jitter_p, brightness, contrast, saturation, hue, gray_p,
            blur_p, sigma_lo, sigma_hi, solarize_p (the `MultiCropSpec` values of this view).
        blur_ksize: Odd blur kernel side (`transforms.blur_kernel_size` of this view).
        colour: False: flip only (the colour ops then run on the device).
    """
    size = src.shape[0]
    flip = uniform(state, 0.0, 1.0) < params[0]
    solarize = False
    if colour:
        for y in range(size):
            for x in range(size):
                for c in range(3):
                    work[y, x, c] = src[y, x, c]
        if uniform(state, 0.0, 1.0) < params[1]:
            order = np.arange(4)
            for i in range(3, 0, -1):  # Fisher-Yates: ColorJitter applies its 4 ops in random order
                j = int(uniform(state, 0.0, i + 1.0))
                order[i], order[j] = order[j], order[i]
            factors = np.empty(4)
            for op in range(3):
                factors[op] = uniform(state, max(0.0, 1.0 - params[2 + op]), 1.0 + params[2 + op])
            factors[3] = uniform(state, -params[5], params[5])
            for i in range(4):
                if params[2 + order[i]] > 0:
                    _jitter_op(work, order[i], factors[order[i]])
        if uniform(state, 0.0, 1.0) < params[6]:
            flat = work.reshape(-1, 3)
            for p in range(flat.shape[0]):
                luma = 0.299 * flat[p, 0] + 0.587 * flat[p, 1] + 0.114 * flat[p, 2]
                flat[p, 0] = flat[p, 1] = flat[p, 2] = luma
        if uniform(state, 0.0, 1.0) < params[7]:
            _gaussian_blur(work, tmp, uniform(state, params[8], params[9]), blur_ksize)
        solarize = uniform(state, 0.0, 1.0) < params[10]
    for c in range(3):
        for y in range(size):
            for x in range(size):
                sx = size - 1 - x if flip else x
                if colour:
                    v = np.uint8(min(max(work[y, sx, c] + 0.5, 0.0), 255.0))
                    dst[c, y, x] = 255 - v if solarize and v >= 128 else v
                else:
                    dst[c, y, x] = src[y, sx, c]
