"""Image inputs of the pose head: MS-Transformer's published transforms, and our square crop.

MS-Transformer (Shavit et al., ICCV 2021; ``util/utils.py`` of its repository, reused unchanged by
ActMST, Lee et al., NeurIPS 2024) feeds the network

- training: short side resized to 256 (bilinear, antialiased), a random 224 x 224 crop, colour
  jitter (brightness 0.5, contrast 0.5, saturation 0.5, hue 0.2, always applied, the four
  adjustments in a random order); with the config key ``no_augment`` (both Cambridge configs)
  the test transform is used for training instead;
- testing: short side resized to 256, the centre 224 x 224 crop.

``short_side_crop`` is ours, kept for the small rendered CPU benchmark: short side resized to the
crop size (OpenCV area interpolation) and the centre crop, no augmentation, so a frozen
backbone's tokens can be cached once.

Every random draw comes from an explicit ``torch.Generator``, so a run (and its resume) sees the
same crops and colours for the same seed, epoch and frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF

TRANSFORMS: tuple[str, ...] = ("ms_transformer", "short_side_crop")


def resized_shape(height: int, width: int, short: int) -> tuple[int, int]:
    """Size after resizing the short side to ``short`` (torchvision ``Resize(int)``: long side truncated).

    E.g. a 480 x 640 7Scenes frame and 256 -> (256, 341).
    """
    if height <= width:
        return short, int(short * width / height)
    return int(short * height / width), short


def center_offsets(height: int, width: int, crop: int) -> tuple[int, int]:
    """(top, left) of the centre ``crop`` x ``crop`` window (torchvision ``CenterCrop``: rounded half to even)."""
    return int(round((height - crop) / 2.0)), int(round((width - crop) / 2.0))


@dataclass(frozen=True)
class ColorJitter:
    """Random brightness / contrast / saturation / hue, each always applied, in a random order.

    Factors: brightness, contrast, saturation uniform in [max(0, 1 - v), 1 + v]; hue shift uniform
    in [-v, v] (fraction of a turn, v <= 0.5). MS-Transformer: (0.5, 0.5, 0.5, 0.2).
    """

    brightness: float = 0.5
    contrast: float = 0.5
    saturation: float = 0.5
    hue: float = 0.2

    def __call__(self, img: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """uint8 (3, H, W) -> uint8 (3, H, W)."""
        order = torch.randperm(4, generator=gen).tolist()
        draw = torch.rand(4, generator=gen, dtype=torch.float64).tolist()
        for i in order:
            v = (self.brightness, self.contrast, self.saturation, self.hue)[i]
            if v == 0:
                continue
            if i == 3:
                img = TF.adjust_hue(img, (2 * draw[i] - 1) * v)
                continue
            lo, hi = max(0.0, 1.0 - v), 1.0 + v
            factor = lo + (hi - lo) * draw[i]
            img = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation)[i](img, factor)
        return img


@dataclass(frozen=True)
class PoseTransform:
    """uint8 (C, H, W) -> uint8 (C, crop, crop).

    Args:
        kind: ``ms_transformer`` (resize the short side to ``resize``, then crop) or
            ``short_side_crop`` (ours: short side to ``crop``, centre crop; ``resize`` unused).
        crop: Output side (224 published).
        resize: Short side before cropping (256 published).
        random_crop: Random instead of centre crop (MS-Transformer training).
        jitter: Colour jitter, or None.
    """

    kind: str = "ms_transformer"
    crop: int = 224
    resize: int = 256
    random_crop: bool = False
    jitter: ColorJitter | None = None

    def __post_init__(self) -> None:
        if self.kind not in TRANSFORMS:
            raise ValueError(f"data.transform must be one of {', '.join(TRANSFORMS)}, got {self.kind!r}")
        if self.kind == "ms_transformer" and self.resize < self.crop:
            raise ValueError(f"data.resize={self.resize} is smaller than data.image_size={self.crop}: the crop "
                             "must fit in the resized image (MS-Transformer: 256 then 224)")

    @property
    def is_random(self) -> bool:
        """Whether two calls may differ (then a frozen backbone's tokens cannot be cached)."""
        return self.kind == "ms_transformer" and (self.random_crop or self.jitter is not None)

    def __call__(self, img: np.ndarray | torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        img = torch.as_tensor(img)
        if self.kind == "short_side_crop":
            return torch.from_numpy(square_crop(img.numpy(), self.crop))
        if self.is_random and gen is None:
            raise ValueError("a random pose transform needs a torch.Generator")
        h, w = resized_shape(img.shape[-2], img.shape[-1], self.resize)
        img = TF.resize(img, [h, w], interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
        if self.random_crop:
            top = int(torch.randint(0, h - self.crop + 1, (1,), generator=gen))
            left = int(torch.randint(0, w - self.crop + 1, (1,), generator=gen))
        else:
            top, left = center_offsets(h, w, self.crop)
        img = img[..., top:top + self.crop, left:left + self.crop]
        if self.jitter is not None and img.shape[0] == 3:
            img = self.jitter(img, gen)
        return img.contiguous()


def square_crop(img: np.ndarray, size: int) -> np.ndarray:
    """Ours: uint8 (C, H, W), short side resized to ``size`` (area interpolation), centre ``size`` crop."""
    import cv2

    hwc = np.ascontiguousarray(img.transpose(1, 2, 0))
    h, w = hwc.shape[:2]
    scale = size / min(h, w)
    hwc = cv2.resize(hwc, (max(size, round(w * scale)), max(size, round(h * scale))), interpolation=cv2.INTER_AREA)
    if hwc.ndim == 2:
        hwc = hwc[..., None]
    top, left = (hwc.shape[0] - size) // 2, (hwc.shape[1] - size) // 2
    return np.ascontiguousarray(hwc[top:top + size, left:left + size].transpose(2, 0, 1))


def train_and_test_transforms(kind: str, crop: int, resize: int, augment: bool,
                              jitter: tuple[float, float, float, float]) -> tuple[PoseTransform, PoseTransform]:
    """(training, test) transforms of a setting.

    Args:
        kind: ``ms_transformer`` or ``short_side_crop``.
        crop, resize: Output side and short side before the crop.
        augment: MS-Transformer training augmentation (random crop + colour jitter); False is
            its ``no_augment`` (train on the test transform). Ignored by ``short_side_crop``.
        jitter: (brightness, contrast, saturation, hue); all zero = no jitter.
    """
    test = PoseTransform(kind, crop, resize)
    if kind != "ms_transformer" or not augment:
        return test, test
    cj = ColorJitter(*jitter) if any(v > 0 for v in jitter) else None
    return PoseTransform(kind, crop, resize, random_crop=True, jitter=cj), test
