"""Multi-crop colour augmentation on the device, for batches that the FFCV loader only cropped.

With ``FFCVPretrainLoader(..., colour_on_device=True)`` the loader threads decode, crop, resize
and flip; this module then applies the rest of the `MultiCropSpec` recipe to whole uint8 crop
batches where they live (GPU): colour jitter (p=jitter_p), grayscale, Gaussian blur (per view
type probability), solarize (second global view type). All per-crop parameters are drawn on the
device from a generator seeded by (seed, epoch, rank, batch index), so there is no host
synchronisation and a resumed epoch gets the same parameters.

Difference from the per-crop recipe: the order of the four jitter ops is drawn once per batch and
view group (as kornia does) instead of per crop, which keeps the work at one pass per op.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pretrain.data.transforms import MultiCropSpec, blur_kernel_size

_LUMA = (0.299, 0.587, 0.114)


def _luma(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) -> (N, 1, H, W) ITU-R 601 luma."""
    return (_LUMA[0] * x[:, 0] + _LUMA[1] * x[:, 1] + _LUMA[2] * x[:, 2]).unsqueeze(1)


def _shift_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the HSV hue of (N, 3, H, W) images in 0..255 by ``shift`` (N,) turns."""
    r, g, b = x.unbind(1)
    maxc, _ = x.max(1)
    chroma = maxc - x.min(1).values
    inv = 1.0 / torch.where(chroma > 0, chroma, torch.ones_like(chroma))
    hue = torch.where(maxc == r, (g - b) * inv, torch.where(maxc == g, 2.0 + (b - r) * inv, 4.0 + (r - g) * inv))
    h6 = hue + 6.0 + 6.0 * shift.view(-1, 1, 1)
    n = torch.tensor([5.0, 3.0, 1.0], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    k = torch.remainder(n + h6.unsqueeze(1), 6.0)
    return maxc.unsqueeze(1) - chroma.unsqueeze(1) * torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0)


def _blur(x: torch.Tensor, sigma: torch.Tensor, ksize: int) -> torch.Tensor:
    """Separable Gaussian blur with per-image sigma (N,), reflect padding, kernel side ``ksize``."""
    n, c, h, w = x.shape
    offsets = torch.arange(ksize, device=x.device, dtype=x.dtype) - ksize // 2
    kernel = torch.exp(-0.5 * (offsets.view(1, -1) / sigma.view(-1, 1)) ** 2)
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (N*C, ksize)
    pad = ksize // 2
    flat = x.reshape(1, n * c, h, w)
    flat = F.conv2d(F.pad(flat, (pad, pad, 0, 0), mode="reflect"), kernel.view(n * c, 1, 1, ksize), groups=n * c)
    flat = F.conv2d(F.pad(flat, (0, 0, pad, pad), mode="reflect"), kernel.view(n * c, 1, ksize, 1), groups=n * c)
    return flat.view(n, c, h, w)


class DeviceColourAugment:
    """Apply jitter / grayscale / blur / solarize of a `MultiCropSpec` to crop-major uint8 batches.

    Args:
        spec: The augmentation parameters.
        seed: Base seed; the batch generator is seeded from (seed, epoch, rank, batch index).

    Call:
        global_crops: uint8 (G, B, 3, Hg, Wg); local_crops: uint8 (L, B, 3, Hl, Wl); epoch, step
        (batch index within the epoch), rank: ints. Returns the two tensors augmented, same shapes.
    """

    def __init__(self, spec: MultiCropSpec, seed: int) -> None:
        self.spec, self.seed = spec, int(seed)
        views = spec.views()
        self._blur_p = [v.blur_p for v in views]
        self._solarize_p = [v.solarize_p for v in views]

    def __call__(self, global_crops: torch.Tensor, local_crops: torch.Tensor, epoch: int, step: int,
                 rank: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        # Tuples of ints hash the same in every process (only str hashing is salted).
        key = hash((self.seed, epoch, rank, step)) & 0x7FFFFFFFFFFFFFFF
        gen = torch.Generator(device=global_crops.device)
        gen.manual_seed(key)
        order_gen = torch.Generator().manual_seed(key)  # the op order lives on the host: no device sync
        n_global = global_crops.shape[0]
        out_global = self._group(global_crops, self._blur_p[:n_global], self._solarize_p[:n_global], gen, order_gen)
        if local_crops.shape[0] == 0:
            return out_global, local_crops
        out_local = self._group(local_crops, self._blur_p[n_global:], self._solarize_p[n_global:], gen, order_gen)
        return out_global, out_local

    def _group(self, crops: torch.Tensor, blur_p: list[float], solarize_p: list[float],
               gen: torch.Generator, order_gen: torch.Generator) -> torch.Tensor:
        spec, (views, batch, c, h, w) = self.spec, crops.shape
        dev, n = crops.device, views * batch
        x = crops.reshape(n, c, h, w).float()

        def draw(*shape: int) -> torch.Tensor:
            return torch.rand(*shape, generator=gen, device=dev)

        def per_crop(values: list[float]) -> torch.Tensor:  # view-level probabilities -> (N,)
            return torch.tensor(values, device=dev).repeat_interleave(batch)

        jitter = draw(n) < spec.jitter_p
        bri, con, sat, hue = spec.color_jitter
        factors = [(1.0 + (2 * draw(n) - 1) * s).clamp_min(0.0) for s in (bri, con, sat)] + [(2 * draw(n) - 1) * hue]
        factors = [torch.where(jitter, f, torch.full_like(f, 0.0 if i == 3 else 1.0)) for i, f in enumerate(factors)]
        for op in torch.randperm(4, generator=order_gen).tolist():  # one order per batch and view group
            if spec.color_jitter[op] <= 0:
                continue
            f = factors[op].view(-1, 1, 1, 1)
            if op == 0:
                x = x * f
            elif op == 1:
                mean = _luma(x).mean((1, 2, 3), keepdim=True)
                x = mean + f * (x - mean)
            elif op == 2:
                gray = _luma(x)
                x = gray + f * (x - gray)
            else:
                x = _shift_hue(x, factors[3])
            x = x.clamp(0.0, 255.0)
        gray = (draw(n) < spec.gray_p).view(-1, 1, 1, 1)
        x = torch.where(gray, _luma(x).expand_as(x), x)
        blur = draw(n) < per_crop(blur_p)
        sigma = spec.blur_sigma[0] + draw(n) * (spec.blur_sigma[1] - spec.blur_sigma[0])
        sigma = torch.where(blur, sigma, torch.full_like(sigma, 1e-3))  # ~a delta kernel: no blur
        x = _blur(x, sigma, blur_kernel_size(h, spec.blur_sigma[1]))
        x = x.add(0.5).clamp(0.0, 255.0).floor()
        solarize = (draw(n) < per_crop(solarize_p)).view(-1, 1, 1, 1) & (x >= 128)
        x = torch.where(solarize, 255.0 - x, x)
        return x.to(torch.uint8).view(views, batch, c, h, w)
