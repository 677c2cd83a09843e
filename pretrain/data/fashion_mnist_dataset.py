"""Fashion-MNIST from its IDX files (Debian's ``dataset-fashion-mnist`` layout), and the IDX reader.

Splits ``train`` (60k), ``test`` (10k), and the fixed validation split carved out of the 60k
training images: ``train_fit`` (50k) and ``train_holdout`` (10k).
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pretrain.data.fashion_mnist import holdout_split

__all__ = ["FASHION_MNIST_CLASSES", "FASHION_MNIST_SPLITS", "FashionMNIST", "read_idx"]

FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# Splits carved out of the 60k training images (see `pretrain.data.fashion_mnist.holdout_split`):
# "train_fit" (50k) to train / as the k-NN bank, "train_holdout" (10k) to validate on.
# Not named "val": downstream code may read "val" as "the test split" for Fashion-MNIST.
FASHION_MNIST_SPLITS: tuple[str, ...] = ("train", "test", "train_fit", "train_holdout")


class FashionMNIST:
    """Fashion-MNIST from its IDX files (gzip-compressed or raw), 28x28 gray, 10 classes.

    Xiao et al., "Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine Learning
    Algorithms", 2017. Files: ``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``,
    ``t10k-images-idx3-ubyte[.gz]``, ``t10k-labels-idx1-ubyte[.gz]``, as installed by Debian's
    ``dataset-fashion-mnist`` under /usr/share/datasets/fashion-mnist
    (see `pretrain.data.fashion_mnist.ensure_fashion_mnist`).

    Args:
        root: Folder with the IDX files (a ``dpkg -x`` extraction root also works).
        split: "train" (60000 images), "test" (10000), or the validation split held out from
            "train" by `pretrain.data.fashion_mnist.holdout_split` (stratified, fixed seed):
            "train_fit" (the other 50000) and "train_holdout" (10000, 1000 per class).
        transform: Optional callable applied to each image.
        as_pil: Return PIL "L" images (default) or uint8 arrays (28, 28).

    Attributes:
        images: uint8 array (N, 28, 28). labels / targets: int64 array (N,). classes: 10 names.
        indices: for "train_fit" / "train_holdout", the rows of the 60k train split taken (N,).
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", transform: Callable | None = None,
                 as_pil: bool = True) -> None:
        if split not in FASHION_MNIST_SPLITS:
            raise ValueError(f"Fashion-MNIST split must be one of {', '.join(FASHION_MNIST_SPLITS)}, got {split!r}")
        self.root = _fashion_dir(Path(root))
        self.split, self.transform, self.as_pil = split, transform, as_pil
        self.indices: np.ndarray | None = None
        image_name, label_name = _IDX_FILES["test" if split == "test" else "train"]
        self.images = read_idx(_find_idx(self.root, image_name), ndim=3)
        self.labels = read_idx(_find_idx(self.root, label_name), ndim=1).astype(np.int64)
        if len(self.images) != len(self.labels):
            raise ValueError(f"{self.root}: {len(self.images)} images but {len(self.labels)} labels in split {split}")
        if self.labels.size and not 0 <= self.labels.min() <= self.labels.max() < len(FASHION_MNIST_CLASSES):
            raise ValueError(f"{self.root}: labels outside 0..9 in split {split}; the label file is not Fashion-MNIST")
        if split in ("train_fit", "train_holdout"):
            fit, held = holdout_split(self.labels)
            self.indices = fit if split == "train_fit" else held
            self.images, self.labels = self.images[self.indices], self.labels[self.indices]
        self.classes = list(FASHION_MNIST_CLASSES)

    @property
    def targets(self) -> np.ndarray:
        return self.labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image: Any = self.images[index]
        if self.as_pil:
            image = Image.fromarray(image)  # a 2-D uint8 array gives mode "L"
        return (self.transform(image) if self.transform else image), int(self.labels[index])


def _fashion_dir(root: Path) -> Path:
    nested = root / "usr" / "share" / "datasets" / "fashion-mnist"
    if not any(root.glob("*-ubyte*")) and nested.is_dir():
        return nested
    return root


def _find_idx(root: Path, name: str) -> Path:
    for candidate in (root / name, root / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"{name}[.gz] not found in {root}; get Fashion-MNIST with "
        f"`python -m pretrain.data.fashion_mnist DEST` (Debian package dataset-fashion-mnist)")


def read_idx(path: str | os.PathLike, ndim: int | None = None) -> np.ndarray:
    """Read an unsigned-byte IDX file (gzip or raw) into a uint8 array, validating its header.

    Args:
        path: The file.
        ndim: Expected number of dimensions (3 for images, 1 for labels), or None for any.

    Raises:
        ValueError: Bad magic number, unexpected element type or dimensions, truncated data.
    """
    path = Path(path)
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, gzip.BadGzipFile) as err:
            raise ValueError(f"{path}: corrupt or truncated gzip file ({err}); download it again") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic number {raw[:4].hex()})")
    dtype_code, dims = raw[2], raw[3]
    if dtype_code != 0x08:
        raise ValueError(f"{path}: IDX element type 0x{dtype_code:02x} is not unsigned byte (0x08)")
    if ndim is not None and dims != ndim:
        raise ValueError(f"{path}: IDX file has {dims} dimensions, expected {ndim}")
    header = 4 + 4 * dims
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    expected = int(np.prod(shape, dtype=np.int64))
    if len(raw) - header != expected:
        raise ValueError(f"{path}: IDX data has {len(raw) - header} bytes but header shape {shape} needs "
                         f"{expected}; the file is truncated or corrupt, download it again")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)
