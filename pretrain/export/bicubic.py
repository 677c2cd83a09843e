"""Bicubic resampling of a position table written with plain tensor ops, so it traces to ONNX.

PyTorch's ``F.interpolate(..., mode="bicubic", align_corners=False)`` (Keys' cubic kernel,
A = -0.75, border samples clamped) is separable: resampling a (D, g0h, g0w) grid is
``Wy @ grid @ Wx^T`` with one (out, in) weight matrix per axis. The matrices are built here from
the output length, which may be a traced (dynamic) size, so an exported graph resamples the table
for any input size with Range / Floor / Clip / Equal / MatMul, the same formula as PyTorch's
kernel (the sums run in another order: differences are float rounding, ~1e-7).
"""

from __future__ import annotations

import torch

__all__ = ["CUBIC_A", "cubic_weights", "resample_grid"]

CUBIC_A = -0.75  # PyTorch's (and OpenCV's) cubic convolution constant


def _near(t: torch.Tensor) -> torch.Tensor:
    """Keys' kernel for |x| <= 1."""
    a = CUBIC_A
    return ((a + 2) * t - (a + 3)) * t * t + 1


def _far(t: torch.Tensor) -> torch.Tensor:
    """Keys' kernel for 1 < |x| < 2."""
    a = CUBIC_A
    return ((a * t - 5 * a) * t + 8 * a) * t - 4 * a


def cubic_weights(out_len: torch.Tensor | int, in_len: int, scale: torch.Tensor | float) -> torch.Tensor:
    """(out_len, in_len) weights of 1-D bicubic resampling, as PyTorch's ``upsample_bicubic2d``.

    Output sample i reads the input at ``(i + 0.5) / scale - 0.5`` (``align_corners=False``; with
    ``size=`` PyTorch uses ``scale = out_len / in_len``, with ``scale_factor=`` that factor), from
    the four neighbours ``floor(x) - 1 .. floor(x) + 2`` clamped to ``0 .. in_len - 1``.

    Args:
        out_len: output length (an int or a 0-d integer tensor, e.g. a traced size).
        in_len: input length.
        scale: output / input scale (float or 0-d float tensor).

    Returns:
        (out_len, in_len) float32; each row sums to 1.
    """
    i = torch.arange(out_len, dtype=torch.float32)
    src = (i + 0.5) * (1.0 / scale) - 0.5  # PyTorch multiplies by the inverse scale
    base = torch.floor(src)
    t = src - base
    coeffs = (_far(t + 1), _near(t), _near(1 - t), _far(2 - t))
    columns = torch.arange(in_len, dtype=torch.float32)
    weights = torch.zeros_like(src).unsqueeze(1) * columns  # (out, in) zeros of the traced size
    for k, c in enumerate(coeffs):
        idx = torch.clamp(base + (k - 1), 0, in_len - 1)
        weights = weights + c.unsqueeze(1) * (idx.unsqueeze(1) == columns).to(torch.float32)
    return weights


def resample_grid(grid: torch.Tensor, out_hw: tuple, scale_hw: tuple) -> torch.Tensor:
    """Bicubic resampling of (D, h0, w0) to (D, h, w) through :func:`cubic_weights` on each axis.

    Args:
        grid: (D, h0, w0) float32 table.
        out_hw: (h, w) ints or 0-d tensors.
        scale_hw: (h / h0-like, w / w0-like) scales (see :func:`cubic_weights`).

    Returns:
        (D, h, w) float32.
    """
    wy = cubic_weights(out_hw[0], grid.shape[1], scale_hw[0])
    wx = cubic_weights(out_hw[1], grid.shape[2], scale_hw[1])
    return torch.matmul(torch.matmul(wy, grid), wx.transpose(0, 1))
