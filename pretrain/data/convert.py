"""Any decoded image (PIL mode, tensor or array) to the uint8 RGB tensor the augmentations expect."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def to_rgb_uint8(image: Image.Image | torch.Tensor | np.ndarray) -> torch.Tensor:
    """Convert an image in any common mode to a uint8 RGB tensor (3, H, W).

    PIL modes: gray ("L", "1") is replicated, alpha ("RGBA", "LA") is dropped, palettes ("P")
    are expanded, 16-bit images ("I;16", and "I" with values above 255) are mapped 0..65535 ->
    0..255, float images ("F") are clipped to 0..255 as Pillow does. Tensors/arrays: (H, W),
    (1|3|4, H, W) tensors or (H, W, 1|3|4) arrays; uint8 as is, wider integers as 16-bit,
    floats as 0..1 (torchvision's convention).
    """
    if isinstance(image, Image.Image):
        tensor = torch.from_numpy(_pil_to_array(image))
        tensor = tensor.unsqueeze(0) if tensor.ndim == 2 else tensor.permute(2, 0, 1)
    elif isinstance(image, np.ndarray):
        array = np.ascontiguousarray(image)
        tensor = torch.from_numpy(array if array.flags.writeable else array.copy())
        tensor = tensor.unsqueeze(0) if tensor.ndim == 2 else tensor.permute(2, 0, 1)
    elif isinstance(image, torch.Tensor):
        tensor = image.unsqueeze(0) if image.ndim == 2 else image
    else:
        raise TypeError(f"expected a PIL image, numpy array or tensor, got {type(image).__name__}")
    if tensor.ndim != 3 or tensor.shape[0] not in (1, 3, 4):
        raise ValueError(f"expected an image with 1, 3 or 4 channels, got shape {tuple(tensor.shape)}")
    tensor = _to_uint8(tensor)
    if tensor.shape[0] == 4:
        tensor = tensor[:3]
    elif tensor.shape[0] == 1:
        tensor = tensor.expand(3, -1, -1)
    return tensor.contiguous()


def _pil_to_array(image: Image.Image) -> np.ndarray:
    if image.mode in ("RGB", "L", "RGBA"):
        return np.array(image)  # a writable copy: torch refuses to wrap read-only buffers
    if image.mode == "F":  # Pillow's own convention for float images is the 0..255 scale
        return np.clip(np.asarray(image), 0, 255).round().astype(np.uint8)
    if image.mode == "I":
        # 32-bit "I" holds either 16-bit samples (some PNG/TIFF decoders) or 8-bit values
        # (e.g. after convert("I")): only rescale when the values exceed 8 bits.
        array = np.array(image)
        return array.astype(np.uint8) if array.size and 0 <= array.min() and array.max() <= 255 else array
    if image.mode.startswith("I;16"):
        return np.array(image)
    if image.mode == "P":  # expand the palette through RGBA so transparency entries are honoured
        return np.array(image.convert("RGBA"))
    return np.array(image.convert("RGB"))


def _to_uint8(tensor: torch.Tensor) -> torch.Tensor:
    if tensor.dtype == torch.uint8:
        return tensor
    if tensor.dtype == torch.bool:
        return tensor.to(torch.uint8) * 255
    if tensor.is_floating_point():
        return (tensor.float().clamp(0, 1) * 255).round().to(torch.uint8)
    # Wider integers come from 16-bit files (PNG/TIFF "I;16" or "I"): 65535 maps to 255.
    return (tensor.to(torch.int64).clamp(0, 65535) * 255 / 65535).round().to(torch.uint8)
