"""Multi-crop augmentation (DINO / iBOT) on uint8 tensors, and normalisation on the device.

References: Caron et al., "Emerging Properties in Self-Supervised Vision Transformers" (DINO),
2021; Zhou et al., "iBOT: Image BERT Pre-Training with Online Tokenizer", 2022.

Workers only crop, flip, jitter, blur and solarize uint8 images; the float conversion and the
mean/std normalisation happen on the device (`normalize_on_device`), which keeps the batches that
cross process and host-device boundaries four times smaller.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
from PIL import Image
from torchvision.transforms import v2

from pretrain.data.convert import to_rgb_uint8

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "CropView", "EvalTransform", "MultiCropSpec", "MultiCropTransform",
           "RandomGaussianBlur", "blur_kernel_size", "normalize_on_device", "to_rgb_uint8"]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

_INTERPOLATIONS = {
    "bicubic": v2.InterpolationMode.BICUBIC,
    "bilinear": v2.InterpolationMode.BILINEAR,
    "nearest": v2.InterpolationMode.NEAREST,
}


@dataclass(frozen=True)
class CropView:
    """The recipe of one crop of the multi-crop set (what an FFCV pipeline needs to mirror it)."""

    size: int
    scale: tuple[float, float]
    blur_p: float
    solarize_p: float


@dataclass(frozen=True)
class MultiCropSpec:
    """Parameters of the multi-crop augmentation; the defaults are iBOT's ImageNet recipe.

    Global crop i uses view type 1 when i is even and type 2 when i is odd: type 1 is always
    blurred (``blur_p[0]``), type 2 is rarely blurred (``blur_p[1]``) and may be solarized
    (``solarize_p``); local crops use ``blur_p[2]`` and are never solarized. With the default
    ``n_global=2`` this is exactly DINO's "global1 / global2 / local" split.

    Attributes:
        global_size: Side of the square global crops in pixels.
        local_size: Side of the square local crops in pixels.
        n_global: Number of global crops (>= 1).
        n_local: Number of local crops (>= 0).
        global_scale: Area fraction range of RandomResizedCrop for global crops.
        local_scale: Area fraction range of RandomResizedCrop for local crops.
        flip_p: Horizontal flip probability.
        color_jitter: (brightness, contrast, saturation, hue) strengths.
        jitter_p: Probability of applying the colour jitter.
        gray_p: Probability of converting to grayscale (kept as 3 channels).
        blur_p: Gaussian blur probability for (global type 1, global type 2, local).
        blur_sigma: Range of the blur's standard deviation in pixels.
        solarize_p: Solarization probability of global type-2 crops (threshold 128).
        interpolation: "bicubic", "bilinear" or "nearest".
        mean: Per-channel mean for `normalize_on_device`.
        std: Per-channel std for `normalize_on_device`.
    """

    global_size: int = 224
    local_size: int = 96
    n_global: int = 2
    n_local: int = 10
    global_scale: tuple[float, float] = (0.25, 1.0)
    local_scale: tuple[float, float] = (0.05, 0.25)
    flip_p: float = 0.5
    color_jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.2, 0.1)
    jitter_p: float = 0.8
    gray_p: float = 0.2
    blur_p: tuple[float, float, float] = (1.0, 0.1, 0.5)
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize_p: float = 0.2
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        # Configs (OmegaConf) hand over lists: store tuples so the spec stays hashable and immutable.
        for name in ("global_scale", "local_scale", "color_jitter", "blur_p", "blur_sigma", "mean", "std"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        if self.n_global < 1 or self.n_local < 0:
            raise ValueError(f"need n_global >= 1 and n_local >= 0, got {self.n_global}, {self.n_local}")
        if self.global_size < 1 or self.local_size < 1:
            raise ValueError(f"crop sizes must be positive, got {self.global_size}, {self.local_size}")
        if self.interpolation not in _INTERPOLATIONS:
            raise ValueError(f"interpolation {self.interpolation!r} unknown; use one of {sorted(_INTERPOLATIONS)}")
        for name in ("global_scale", "local_scale", "blur_sigma"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(f"{name} must satisfy 0 < low <= high, got {(low, high)}")
        if len(self.blur_p) != 3:
            raise ValueError(f"blur_p needs 3 probabilities (global1, global2, local), got {self.blur_p}")

    def views(self) -> list[CropView]:
        """All crops in output order: the n_global global views, then the n_local local views."""
        out = []
        for i in range(self.n_global):
            second = i % 2 == 1
            out.append(CropView(self.global_size, self.global_scale,
                                self.blur_p[1] if second else self.blur_p[0],
                                self.solarize_p if second else 0.0))
        out += [CropView(self.local_size, self.local_scale, self.blur_p[2], 0.0)] * self.n_local
        return out


def blur_kernel_size(image_size: int, sigma_max: float) -> int:
    """Odd Gaussian kernel side covering +-3 sigma_max, capped to the crop side.

    The cap keeps tiny crops (e.g. 16 px locals on Fashion-MNIST) valid for reflect padding,
    while 224 px crops get the full-support kernel.
    """
    k = 2 * math.ceil(3 * sigma_max) + 1
    cap = image_size if image_size % 2 == 1 else image_size - 1
    return max(1, min(k, cap))


class RandomGaussianBlur:
    """Separable Gaussian blur of a uint8 image (C, H, W) with probability ``p``, sigma ~ U(sigma).

    Two 1-D convolutions instead of torchvision's k x k one: 13-tap kernels cost 26 instead of
    169 multiply-adds per pixel, the largest single cost of a 224 px global crop otherwise.
    """

    def __init__(self, kernel_size: int, sigma: tuple[float, float], p: float = 1.0) -> None:
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd number, got {kernel_size}")
        self.kernel_size, self.sigma, self.p = kernel_size, (float(sigma[0]), float(sigma[1])), p

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        if self.p < 1.0 and float(torch.rand(())) >= self.p:
            return image
        sigma = torch.empty(()).uniform_(*self.sigma)
        half = self.kernel_size // 2
        taps = torch.exp(-0.5 * (torch.arange(-half, half + 1, dtype=torch.float32) / sigma) ** 2)
        taps /= taps.sum()
        channels = image.shape[-3]
        x = torch.nn.functional.pad(image.float()[None], (half, half, half, half), mode="reflect")
        x = torch.nn.functional.conv2d(x, taps.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
        x = torch.nn.functional.conv2d(x, taps.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)
        return x[0].round_().clamp_(0, 255).to(torch.uint8)

    def __repr__(self) -> str:
        return f"RandomGaussianBlur(kernel_size={self.kernel_size}, sigma={self.sigma}, p={self.p})"


def _view_pipeline(view: CropView, spec: MultiCropSpec) -> v2.Compose:
    ops: list[v2.Transform] = [
        v2.RandomResizedCrop(view.size, scale=view.scale, interpolation=_INTERPOLATIONS[spec.interpolation],
                             antialias=True),
        v2.RandomHorizontalFlip(spec.flip_p),
        v2.RandomApply([v2.ColorJitter(*spec.color_jitter)], p=spec.jitter_p),
        v2.RandomGrayscale(spec.gray_p),
    ]
    if view.blur_p > 0:
        ops.append(RandomGaussianBlur(blur_kernel_size(view.size, spec.blur_sigma[1]), spec.blur_sigma, view.blur_p))
    if view.solarize_p > 0:
        ops.append(v2.RandomSolarize(threshold=128, p=view.solarize_p))
    return v2.Compose(ops)


class MultiCropTransform:
    """Map one image to ``n_global`` global and ``n_local`` local uint8 crops.

    Randomness comes from torch's global generator; the pretraining loader seeds it per sample
    (see `pretrain.data.loader`), so the crops are a function of (seed, epoch, sample index).

    Args:
        spec: The augmentation parameters.

    Call:
        image: PIL image (any mode), or uint8 tensor (C, H, W) / (H, W).
        Returns (globals, locals): lists of uint8 tensors (3, Hg, Wg) and (3, Hl, Wl).
    """

    def __init__(self, spec: MultiCropSpec | None = None) -> None:
        self.spec = spec if spec is not None else MultiCropSpec()
        views = self.spec.views()
        self._global = [_view_pipeline(v, self.spec) for v in views[: self.spec.n_global]]
        # All local views share one recipe: one pipeline object, called n_local times.
        self._local = _view_pipeline(views[-1], self.spec) if self.spec.n_local else None

    def __call__(self, image: Image.Image | torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        rgb = to_rgb_uint8(image)
        globals_ = [pipeline(rgb) for pipeline in self._global]
        locals_ = [self._local(rgb) for _ in range(self.spec.n_local)] if self._local is not None else []
        return globals_, locals_

    def __repr__(self) -> str:
        return f"MultiCropTransform({self.spec})"


class EvalTransform:
    """Evaluation preprocessing: resize the short side, center crop, uint8 RGB (3, size, size).

    Args:
        size: Side of the output crop.
        resize: Short side after resizing; None gives the usual 256/224 ratio (``round(size / 0.875)``).
        interpolation: "bicubic", "bilinear" or "nearest".
    """

    def __init__(self, size: int = 224, resize: int | None = None, interpolation: str = "bicubic") -> None:
        if interpolation not in _INTERPOLATIONS:
            raise ValueError(f"interpolation {interpolation!r} unknown; use one of {sorted(_INTERPOLATIONS)}")
        self.size = size
        self.resize = resize if resize is not None else round(size / 0.875)
        if self.resize < size:
            raise ValueError(f"resize ({self.resize}) must be >= size ({size}) for a center crop")
        self._pipeline = v2.Compose([
            v2.Resize(self.resize, interpolation=_INTERPOLATIONS[interpolation], antialias=True),
            v2.CenterCrop(size),
        ])

    def __call__(self, image: Image.Image | torch.Tensor) -> torch.Tensor:
        return self._pipeline(to_rgb_uint8(image))

    def __repr__(self) -> str:
        return f"EvalTransform(size={self.size}, resize={self.resize})"


@functools.lru_cache(maxsize=32)
def _affine(mean: tuple[float, ...], std: tuple[float, ...], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    mean_t = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
    return (1.0 / (255.0 * std_t)).to(device), (-mean_t / std_t).to(device)


def normalize_on_device(
    x: torch.Tensor,
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] = IMAGENET_STD,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Normalise uint8 images where they live: ``(x / 255 - mean) / std``.

    Args:
        x: uint8 tensor (..., C, H, W), typically already on the GPU.
        mean: Per-channel mean in 0..1 units, length C.
        std: Per-channel std in 0..1 units, length C.
        dtype: Output dtype; the arithmetic runs in float32 first so bf16 outputs lose nothing extra.

    Returns:
        Tensor (..., C, H, W) of ``dtype`` on ``x.device``.
    """
    if x.ndim < 3 or x.shape[-3] != len(mean) or len(mean) != len(std):
        raise ValueError(f"expected (..., {len(mean)}, H, W) images, got shape {tuple(x.shape)}")
    scale, shift = _affine(tuple(float(m) for m in mean), tuple(float(s) for s in std), x.device)
    return torch.addcmul(shift, x.to(torch.float32), scale).to(dtype)
