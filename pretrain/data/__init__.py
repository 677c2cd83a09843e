"""Data for pretraining and evaluation: multi-crop transforms, datasets, torchvision loaders.

The FFCV loaders live in `pretrain.data.ffcv_*` and import ffcv lazily.
"""

from pretrain.data.datasets import FASHION_MNIST_CLASSES, FashionMNIST, ImageFolderDataset, build_dataset, read_idx
from pretrain.data.fashion_mnist import ensure_fashion_mnist
from pretrain.data.loader import PretrainLoader, build_eval_loader, build_pretrain_loader, epoch_indices, sample_seed
from pretrain.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CropView,
    EvalTransform,
    MultiCropSpec,
    MultiCropTransform,
    blur_kernel_size,
    normalize_on_device,
    to_rgb_uint8,
)

__all__ = [
    "FASHION_MNIST_CLASSES", "IMAGENET_MEAN", "IMAGENET_STD", "CropView", "EvalTransform", "FashionMNIST",
    "ImageFolderDataset", "MultiCropSpec", "MultiCropTransform", "PretrainLoader", "blur_kernel_size",
    "build_dataset", "build_eval_loader", "build_pretrain_loader", "ensure_fashion_mnist", "epoch_indices",
    "normalize_on_device", "read_idx", "sample_seed", "to_rgb_uint8",
]
