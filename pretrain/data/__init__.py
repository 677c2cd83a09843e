"""Data for pretraining and evaluation: multi-crop transforms, datasets, torchvision loaders.

Names are imported lazily (PEP 562) so that light entry points such as
``python -m pretrain.data.fashion_mnist`` do not pay for importing torch and torchvision.
The FFCV loaders live in `pretrain.data.ffcv` and import ffcv lazily.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "pretrain.data.datasets": ("FASHION_MNIST_CLASSES", "IMG_EXTENSIONS", "FashionMNIST", "ImageFolderDataset",
                               "build_dataset", "read_idx"),
    "pretrain.data.fashion_mnist": ("ensure_fashion_mnist",),
    "pretrain.data.loader": ("PretrainLoader", "build_eval_loader", "build_pretrain_loader", "epoch_indices",
                             "sample_seed"),
    "pretrain.data.transforms": ("IMAGENET_MEAN", "IMAGENET_STD", "CropView", "EvalTransform", "MultiCropSpec",
                                 "MultiCropTransform", "blur_kernel_size", "normalize_on_device", "to_rgb_uint8"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)

if TYPE_CHECKING:  # static analysers and IDEs see the real names
    from pretrain.data.datasets import (FASHION_MNIST_CLASSES, IMG_EXTENSIONS, FashionMNIST,  # noqa: F401
                                        ImageFolderDataset, build_dataset, read_idx)
    from pretrain.data.fashion_mnist import ensure_fashion_mnist  # noqa: F401
    from pretrain.data.loader import (PretrainLoader, build_eval_loader, build_pretrain_loader,  # noqa: F401
                                      epoch_indices, sample_seed)
    from pretrain.data.transforms import (IMAGENET_MEAN, IMAGENET_STD, CropView, EvalTransform,  # noqa: F401
                                          MultiCropSpec, MultiCropTransform, blur_kernel_size,
                                          normalize_on_device, to_rgb_uint8)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'pretrain.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
