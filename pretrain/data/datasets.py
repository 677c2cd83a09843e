"""Image datasets for pretraining and evaluation: a robust image folder, and Fashion-MNIST
(:mod:`pretrain.data.fashion_mnist_dataset`, importable from here too).

Both expose ``targets`` (numpy int64, one label per sample) and ``classes`` for evaluation code,
and return ``(image, label)`` where ``image`` is a PIL image (or ``transform(image)``).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pretrain.data.fashion_mnist_dataset import FASHION_MNIST_CLASSES, FASHION_MNIST_SPLITS, FashionMNIST, read_idx

__all__ = ["FASHION_MNIST_CLASSES", "FASHION_MNIST_SPLITS", "IMG_EXTENSIONS", "FashionMNIST", "ImageFolderDataset",
           "build_dataset", "read_idx"]

log = logging.getLogger(__name__)

IMG_EXTENSIONS: tuple[str, ...] = (
    ".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif",
)

_LAYOUT = "root/<class name>/<image file>, e.g. root/dog/0001.jpg"


class ImageFolderDataset:
    """Images in ``root/<class>/<image>`` (subfolders below a class are searched too).

    A file that fails to decode (corrupt, truncated, not an image) is logged once with its path
    and the reason and counted in ``skipped``. For pretraining (``skip_unreadable=False``) it is
    replaced by the next decodable sample in index order, so a batch never crashes and the
    substitution is the same in every worker. For evaluation (``skip_unreadable=True``) the item
    is ``None`` instead: the evaluation loader drops it, so features and labels are exactly the
    readable images (see `pretrain.data.loader.build_eval_loader`).

    Symbolic links are followed, but each real folder is entered once and each real file counts
    once (a link loop such as ``cls/up -> ..`` adds nothing); what was left out is logged.

    Args:
        root: Dataset folder with one subfolder per class.
        transform: Optional callable applied to the PIL image.
        extensions: File name endings (lower case) that count as images.
        skip_unreadable: Return None for an unreadable file instead of a substitute.

    Raises:
        FileNotFoundError: ``root`` is missing, holds no image, or a class folder holds no image
            (named in the message, as torchvision's ImageFolder does).
    """

    def __init__(self, root: str | os.PathLike, transform: Callable | None = None,
                 extensions: tuple[str, ...] = IMG_EXTENSIONS, skip_unreadable: bool = False) -> None:
        self.root = Path(root)
        self.transform = transform
        self.skip_unreadable = skip_unreadable
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder {self.root} does not exist; expected layout {_LAYOUT}")
        self.classes = sorted(d.name for d in os.scandir(self.root) if d.is_dir() and not d.name.startswith("."))
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        self.samples = _scan_classes(self.root, self.classes, extensions)
        if not self.samples:
            raise FileNotFoundError(
                f"no images ({', '.join(extensions)}) found in {self.root}; expected layout {_LAYOUT}")
        counts = np.bincount([label for _, label in self.samples], minlength=len(self.classes))
        empty = [self.classes[i] for i in np.flatnonzero(counts == 0)]
        if empty:  # as torchvision's ImageFolder: an empty class would be a class no sample can have
            raise FileNotFoundError(
                f"class folder {self.root / empty[0]} holds no image ({', '.join(extensions)})"
                + (f" (nor do {len(empty) - 1} more: {', '.join(empty[1:4])})" if len(empty) > 1 else "")
                + " (or only images already counted under another class through a link); put images in it or "
                "remove it (every subfolder of the root is a class)")
        self.targets = np.array([label for _, label in self.samples], dtype=np.int64)
        # One flag per file in shared memory: a bad file found by one DataLoader worker is counted
        # once, skipped by all workers, and visible to the main process. No lock (a lock made in
        # one multiprocessing context cannot travel to spawn workers): two workers failing on the
        # same file at the same instant may both log it, the count stays exact.
        self._bad = multiprocessing.RawArray("b", len(self.samples))

    @property
    def skipped(self) -> int:
        """How many distinct unreadable files were met so far (in any process)."""
        return int(np.frombuffer(self._bad, dtype=np.int8).sum())

    @property
    def skipped_paths(self) -> list[str]:
        """The unreadable files met so far (in any process), in dataset order."""
        flags = np.frombuffer(self._bad, dtype=np.int8)
        return [self.samples[i][0] for i in np.flatnonzero(flags)]

    @property
    def labels(self) -> np.ndarray:
        return self.targets

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, int] | None:
        n = len(self.samples)
        if self.skip_unreadable:
            image = self._read(index)
            if image is None:
                return None
            return (self.transform(image) if self.transform else image), self.samples[index][1]
        for offset in range(n):
            i = (index + offset) % n
            image = self._read(i)
            if image is None:
                continue
            return (self.transform(image) if self.transform else image), self.samples[i][1]
        raise RuntimeError(f"none of the {n} files under {self.root} could be decoded as an image")

    def _read(self, i: int) -> Image.Image | None:
        """The decoded image of sample ``i``, or None (logged and flagged once) if unreadable."""
        if self._bad[i]:
            return None
        path = self.samples[i][0]
        try:
            return _load_image(path)
        except Exception as err:  # noqa: BLE001 - any decoder failure: PIL raises OSError, ValueError, SyntaxError...
            first, self._bad[i] = not self._bad[i], 1
            if first:
                log.warning("skipping unreadable image %s (%s: %s)", path, type(err).__name__, err)
            return None


def _scan_classes(root: Path, classes: list[str], extensions: tuple[str, ...]) -> list[tuple[str, int]]:
    """(path, label) of every image below ``root/<class>``, each real file and directory once.

    Symbolic links are followed (a dataset may link folders or files from elsewhere), but a
    directory already visited (same (st_dev, st_ino): a loop such as ``dir/up -> ..``, or a
    second link to the same folder) is not entered again, and a file reached by two paths counts
    once (first in sorted class / path order). The root and every class folder count as visited
    from the start, so a link back into the tree never re-labels another class's images.
    What was skipped is logged once.
    """
    def key(path: str) -> tuple[int, int] | None:
        try:
            st = os.stat(path)
        except OSError:  # dangling link
            return None
        return st.st_dev, st.st_ino

    tops = {key(str(root / name)) for name in classes} | {key(str(root))}
    visited_dirs: set = set()
    seen_files: set = set()
    skipped_dirs: list[str] = []
    skipped_files: list[str] = []
    samples: list[tuple[str, int]] = []
    for label, name in enumerate(classes):
        top = str(root / name)
        visited_dirs.add(key(top))
        for dirpath, dirnames, filenames in os.walk(top, followlinks=True):
            dirnames.sort()
            keep = []
            for d in dirnames:
                k = key(os.path.join(dirpath, d))
                if k is None or k in visited_dirs or k in tops:
                    skipped_dirs.append(os.path.join(dirpath, d))
                    continue
                visited_dirs.add(k)
                keep.append(d)
            dirnames[:] = keep  # os.walk (top-down) descends only into these
            for f in sorted(filenames):
                if not f.lower().endswith(extensions) or f.startswith("."):
                    continue
                path = os.path.join(dirpath, f)
                k = key(path)
                if k is None or k in seen_files:
                    skipped_files.append(path)
                    continue
                seen_files.add(k)
                samples.append((path, label))
    if skipped_dirs or skipped_files:
        log.warning("%s: not entered %d folder(s) already visited or unreachable (symlink loop or second link, "
                    "e.g. %s); skipped %d file(s) reached twice or dangling (e.g. %s): each real file counts once",
                    root, len(skipped_dirs), skipped_dirs[:3], len(skipped_files), skipped_files[:3])
    return samples


def _load_image(path: str) -> Image.Image:
    with Image.open(path) as image:
        image.load()  # decode now, so truncation errors surface here and not in the transform
        return image


def build_dataset(name: str, root: str | os.PathLike, split: str | None = None,
                  transform: Callable | None = None,
                  skip_unreadable: bool = False) -> ImageFolderDataset | FashionMNIST:
    """Build a dataset by name.

    Args:
        name: "imagefolder" or "fashion_mnist".
        root: Dataset folder.
        split: imagefolder: None uses ``root`` itself, otherwise ``root/<split>`` (which must exist);
            fashion_mnist: "train" (default), "test", "train_fit" or "train_holdout" (see `FashionMNIST`).
        transform: Optional callable applied to each PIL image.
        skip_unreadable: imagefolder: an unreadable file gives None (evaluation) instead of a
            substitute sample (pretraining); see `ImageFolderDataset`.
    """
    if name == "imagefolder":
        folder = Path(root) if split is None else Path(root) / split
        return ImageFolderDataset(folder, transform=transform, skip_unreadable=skip_unreadable)
    if name == "fashion_mnist":
        return FashionMNIST(root, split=split or "train", transform=transform)
    raise ValueError(f"unknown dataset {name!r}; use 'imagefolder' or 'fashion_mnist'")
