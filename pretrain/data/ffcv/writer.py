"""Write an image folder or Fashion-MNIST to an FFCV ``.beton`` for `pretrain.data.ffcv.loader`.

Usage::

    attmask-write-beton --dataset imagefolder --root data/imagenet/train --out train.beton \\
        --write-mode jpg --max-resolution 512 --jpeg-quality 90 --workers 8
    python -m pretrain.data.ffcv.writer --dataset fashion_mnist --root /usr/share/datasets/fashion-mnist \\
        --split train --out fmnist.beton

Every image file is decoded once up front (in parallel, with a progress bar); unreadable or
corrupt files are listed with their path and reason, counted, and left out of the beton, so the
ffcv writer itself (whose worker crash would hang it) only ever sees good images. Fields:
``image`` (RGBImageField; gray images are replicated to RGB) and ``label`` (IntField).
A ``<out>.json`` sidecar records the classes, the counts and every skipped file.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import multiprocessing
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from pretrain.data.datasets import FashionMNIST, ImageFolderDataset
from pretrain.data.ffcv.support import import_ffcv

log = logging.getLogger(__name__)

_MAX_SIDE = 65535  # ffcv stores width and height as uint16


@dataclass
class WriteReport:
    """What `write_beton` did: samples written, files skipped (path, reason), class names."""

    out: str
    written: int
    skipped: list[tuple[str, str]] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)


def load_rgb(path: str, max_resolution: int | None) -> np.ndarray:
    """Decode an image file to uint8 RGB (H, W, 3), letting JPEGs decode at a reduced scale when
    the result would still be at least ``max_resolution`` on each side (ffcv then downsizes it)."""
    with Image.open(path) as image:
        if max_resolution:
            image.draft("RGB", (max_resolution, max_resolution))
        rgb = _rgb_array(image)
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError("image has zero width or height")
    if max_resolution is None and max(rgb.shape[:2]) > _MAX_SIDE:
        raise ValueError(f"side {max(rgb.shape[:2])} exceeds ffcv's {_MAX_SIDE}; pass --max-resolution")
    return rgb


def _rgb_array(image: Image.Image) -> np.ndarray:
    """uint8 (H, W, 3) with `transforms.to_rgb_uint8`'s conventions (16-bit 0..65535 -> 0..255,
    float "F" clipped to 0..255, alpha dropped, gray replicated), in numpy only: this runs in
    ffcv's forked writer processes, where torch's thread pool can deadlock."""
    if image.mode.startswith("I;16") or image.mode == "I":
        values = np.asarray(image).astype(np.int64)
        if image.mode != "I" or values.size == 0 or values.min() < 0 or values.max() > 255:
            values = np.round(np.clip(values, 0, 65535) * 255 / 65535)
        gray = values.astype(np.uint8)
    elif image.mode == "F":
        gray = np.clip(np.asarray(image), 0, 255).round().astype(np.uint8)
    else:
        return np.asarray(image.convert("RGB"))
    return np.repeat(gray[:, :, None], 3, axis=2)


def _check(job: tuple[str, int | None]) -> str | None:
    try:
        load_rgb(*job)
    except Exception as err:  # noqa: BLE001 - PIL raises OSError, ValueError, SyntaxError, DecompressionBombError...
        return f"{type(err).__name__}: {err}"
    return None


def scan_images(paths: list[str], max_resolution: int | None, workers: int,
                progress: bool = True) -> list[str | None]:
    """Decode every file in parallel; returns per file None (fine) or the reason it is unreadable."""
    jobs = [(p, max_resolution) for p in paths]
    bar = {"total": len(jobs), "desc": "checking images", "unit": "img", "disable": not progress}
    if workers <= 1:
        return [_check(j) for j in tqdm(jobs, **bar)]
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        return list(tqdm(pool.imap(_check, jobs, chunksize=32), **bar))


class _FolderSource:
    """Indexable (image uint8 (H, W, 3), label) over checked files, for ffcv's writer processes."""

    def __init__(self, samples: list[tuple[str, int]], max_resolution: int | None) -> None:
        self.samples, self.max_resolution = samples, max_resolution

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        path, label = self.samples[index]
        try:
            return load_rgb(path, self.max_resolution), label
        except Exception as err:  # noqa: BLE001 - changed after the check: raising here would hang the writer
            log.error("%s became unreadable after the check (%s); writing a black 8x8 image for it", path, err)
            return np.zeros((8, 8, 3), np.uint8), label


class _ArraySource:
    """Indexable (gray image replicated to RGB, label) over in-memory uint8 images (N, H, W)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        return np.repeat(self.images[index][:, :, None], 3, axis=2), int(self.labels[index])


def write_beton(out: str | os.PathLike, dataset: str, root: str | os.PathLike, split: str | None = None,
                write_mode: str | None = None, max_resolution: int | None = 512, jpeg_quality: int = 90,
                workers: int = 0, progress: bool = True) -> WriteReport:
    """Write a dataset to ``out`` (.beton) with fields ``image`` and ``label``.

    Args:
        out: Output file.
        dataset: "imagefolder" (``root/<class>/<image>``) or "fashion_mnist" (IDX files in ``root``).
        root: Dataset folder.
        split: imagefolder: None uses ``root``, else ``root/<split>``; fashion_mnist: "train" / "test".
        write_mode: "jpg" or "raw" pixels; None: jpg for image folders, raw for Fashion-MNIST.
        max_resolution: Longest stored side (larger images are downsized, area interpolation);
            None keeps the original size.
        jpeg_quality: JPEG quality (1-100) for write_mode "jpg".
        workers: Processes for checking and writing (0: all cores).
        progress: Show progress bars.

    Returns:
        A `WriteReport`; skipped files are also logged (warning) with their reasons.
    """
    import_ffcv()  # a clear install hint when ffcv is missing
    from ffcv.fields import IntField, RGBImageField
    from ffcv.writer import DatasetWriter

    workers = workers if workers > 0 else os.cpu_count() or 1
    if not 1 <= jpeg_quality <= 100:
        raise ValueError(f"jpeg_quality must be in 1..100, got {jpeg_quality}")
    mode = write_mode or ("raw" if dataset == "fashion_mnist" else "jpg")
    if mode not in ("jpg", "raw"):
        raise ValueError(f"write_mode must be 'jpg' or 'raw', got {mode!r}")
    source, skipped, classes = _source(dataset, root, split, max_resolution, workers, progress)
    for path, reason in skipped:
        log.warning("skipping unreadable image %s (%s)", path, reason)
    if len(source) == 0:
        raise ValueError(f"no readable images under {root}: all {len(skipped)} files failed to decode")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fields = {"image": RGBImageField(write_mode=mode, max_resolution=max_resolution, jpeg_quality=jpeg_quality),
              "label": IntField()}
    log.info("writing %d images to %s (%s, max side %s)", len(source), out, mode, max_resolution)
    with _ffcv_progress(progress):
        DatasetWriter(str(out), fields, num_workers=workers).from_indexed_dataset(source, chunksize=64)
    report = WriteReport(str(out), len(source), skipped, classes)
    Path(f"{out}.json").write_text(json.dumps(asdict(report) | {"dataset": dataset, "root": str(root),
                                                                 "write_mode": mode,
                                                                 "max_resolution": max_resolution}, indent=1))
    return report


@contextlib.contextmanager
def _ffcv_progress(enabled: bool):
    """ffcv's writer always draws its own tqdm bar; silence it when progress is off."""
    import ffcv.writer

    original = ffcv.writer.tqdm
    if not enabled:
        ffcv.writer.tqdm = functools.partial(original, disable=True)
    try:
        yield
    finally:
        ffcv.writer.tqdm = original


def _source(dataset: str, root: str | os.PathLike, split: str | None, max_resolution: int | None,
            workers: int, progress: bool):
    if dataset == "fashion_mnist":
        data = FashionMNIST(root, split=split or "train", as_pil=False)
        return _ArraySource(data.images, data.labels), [], list(data.classes)
    if dataset != "imagefolder":
        raise ValueError(f"unknown dataset {dataset!r}; use 'imagefolder' or 'fashion_mnist'")
    folder = ImageFolderDataset(Path(root) if split is None else Path(root) / split)
    reasons = scan_images([p for p, _ in folder.samples], max_resolution, workers, progress)
    good = [s for s, r in zip(folder.samples, reasons) if r is None]
    skipped = [(s[0], r) for s, r in zip(folder.samples, reasons) if r is not None]
    return _FolderSource(good, max_resolution), skipped, list(folder.classes)


def main(argv: list[str] | None = None) -> int:
    """Console entry point ``attmask-write-beton``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--dataset", choices=["imagefolder", "fashion_mnist"], default="imagefolder")
    parser.add_argument("--root", required=True, help="image folder (root/<class>/<image>) or IDX folder")
    parser.add_argument("--split", default=None, help="imagefolder: subfolder; fashion_mnist: train|test")
    parser.add_argument("--out", required=True, help="output .beton file")
    parser.add_argument("--write-mode", choices=["jpg", "raw"], default=None,
                        help="default: jpg for image folders, raw for Fashion-MNIST")
    parser.add_argument("--max-resolution", type=int, default=512, help="longest stored side; 0 keeps originals")
    parser.add_argument("--jpeg-quality", type=int, default=90)
    parser.add_argument("--workers", type=int, default=0, help="processes (0: all cores)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        report = write_beton(args.out, args.dataset, args.root, args.split, args.write_mode,
                             args.max_resolution or None, args.jpeg_quality, args.workers, not args.no_progress)
    except (ImportError, FileNotFoundError, ValueError) as err:
        parser.exit(2, f"error: {err}\n")
    print(f"wrote {report.written} images to {report.out}; skipped {len(report.skipped)} unreadable file(s)")
    for path, reason in report.skipped:
        print(f"  skipped {path}: {reason}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
