"""FFCV evaluation loader: a ``.beton`` read in file order with `EvalTransform`'s resize + center crop.

The downstream evaluators (`downstream.features`, `downstream.knn`, `downstream.linear`) read an
FFCV file through `build_ffcv_eval_loader` when ``dataset=ffcv``. Batches are ``(uint8 images
(B, 3, S, S), int64 labels (B,))`` in the order the samples were written, the last partial batch
included, exactly the format of `pretrain.data.loader.build_eval_loader`.

Preprocessing is `pretrain.data.transforms.EvalTransform`'s: resize the short side to ``resize``,
center crop ``S``. When every image in the file has the same size (Fashion-MNIST, CIFAR-like
sets) ffcv only decodes and the very same torchvision resize + crop runs on the whole batch, so
the pixels equal the torchvision path's. Files of mixed sizes (image folders) are cropped while
decoding: `_eval_crop` maps torchvision's crop window (its output-size and offset rounding
included) back to source pixels, rounded to whole pixels, and ffcv resizes it to ``S`` with
OpenCV's area interpolation, so pixels differ slightly (resampling only). ffcv's own
``CenterCropRGBImageDecoder`` is not used: it truncates the crop and splits the margins
differently, a half-pixel shift at the output that is visible on small crops.

Reference: Leclerc et al., "FFCV: Accelerating Training by Removing Data Bottlenecks", CVPR 2023.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torchvision.transforms import v2

from pretrain.data.ffcv.support import decoding_threads, import_ffcv

log = logging.getLogger(__name__)

_FIELDS = ("image", "label")


class FFCVEvalLoader:
    """Sequential, re-iterable loader of center-cropped evaluation batches from a ``.beton``.

    Args:
        path: The ``.beton`` with fields ``image`` (RGBImageField) and ``label`` (IntField), as
            written by `pretrain.data.ffcv.writer` (``attmask-write-beton``).
        image_size: Side ``S`` of the square output crops.
        batch_size: Samples per batch (the last batch may be smaller).
        num_workers: Decoding threads (clipped to 1 .. numba's thread limit, the CPU count by default).
        resize: Short side before the center crop; None: ``round(S / 0.875)`` (256 for 224).
        interpolation: "bicubic", "bilinear" or "nearest" for same-size files (mixed sizes: area).

    Raises:
        ImportError: ffcv is not installed (with install instructions).
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``resize < image_size``, a bad size or interpolation, or the file lacks the
            ``image`` / ``label`` fields.
    """

    def __init__(self, path: str | Path, image_size: int, batch_size: int, num_workers: int,
                 resize: int | None = None, interpolation: str = "bicubic") -> None:
        import_ffcv()
        if not Path(path).is_file():
            raise FileNotFoundError(f"FFCV file {path} does not exist; write it with `attmask-write-beton` "
                                    f"(python -m pretrain.data.ffcv.writer --help)")
        if image_size <= 0 or batch_size <= 0:
            raise ValueError(f"image_size and batch_size must be positive, got {image_size} and {batch_size}")
        self.path, self.image_size, self.batch_size = str(path), int(image_size), int(batch_size)
        self.resize = int(resize) if resize else round(image_size / 0.875)
        if self.resize < self.image_size:
            raise ValueError(f"resize ({self.resize}) must be >= image_size ({image_size}) for a center crop")
        if interpolation not in ("bicubic", "bilinear", "nearest"):
            raise ValueError(f"interpolation {interpolation!r} unknown; use bicubic, bilinear or nearest")
        self.num_samples, self.same_size = _inspect(self.path)
        # Same-size files: decode only, then EvalTransform's own resize + crop on each batch.
        self._transform = v2.Compose([
            v2.Resize(self.resize, interpolation=v2.InterpolationMode[interpolation.upper()], antialias=True),
            v2.CenterCrop(self.image_size),
        ]) if self.same_size else None
        self._loader = self._build(decoding_threads(num_workers))

    def _build(self, num_workers: int):
        from ffcv.fields.basics import IntDecoder
        from ffcv.fields.rgb_image import SimpleRGBImageDecoder
        from ffcv.loader import Loader, OrderOption

        threads = torch.get_num_threads()
        if self.same_size:
            decoder = SimpleRGBImageDecoder()
        else:
            decoder = _eval_crop_decoder(self.image_size, self.resize)
        loader = Loader(self.path, batch_size=self.batch_size, num_workers=num_workers,
                        order=OrderOption.SEQUENTIAL, drop_last=False,
                        pipelines={"image": [decoder], "label": [IntDecoder()]})
        torch.set_num_threads(threads)  # ffcv's Compiler sets torch's thread count to num_workers
        return loader

    def __len__(self) -> int:
        return (self.num_samples + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        threads = torch.get_num_threads()
        iterator = iter(self._loader)
        torch.set_num_threads(threads)  # ffcv's Loader.__iter__ resets it to num_workers
        return self._batches(iterator, threads)

    def _batches(self, iterator, threads: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        try:
            for images, labels in iterator:
                torch.set_num_threads(threads)
                # (B, S, S, 3) -> (B, 3, S, S); the copies matter: ffcv reuses its buffers a few batches on.
                images = torch.from_numpy(images).permute(0, 3, 1, 2)
                images = self._transform(images).contiguous() if self._transform else images.contiguous()
                yield images, torch.from_numpy(labels).reshape(-1).to(torch.int64, copy=True)
        finally:
            iterator.close()  # an abandoned pass must not leave ffcv's decoding thread running
            iterator.join(timeout=30)

    def __repr__(self) -> str:
        return (f"FFCVEvalLoader({self.path!r}, image_size={self.image_size}, resize={self.resize}, "
                f"batch_size={self.batch_size}, samples={self.num_samples}, same_size={self.same_size})")


def _eval_crop(height, width, resize, size):
    """Source window (top, left, rows, cols) that torchvision's Resize(resize) + CenterCrop(size) keeps.

    Runs in ffcv's decoder (numba-compiled): ``resize`` and ``size`` arrive as the decoder's
    ``scale`` and ``ratio`` slots.
    """
    h, w = float(height), float(width)
    # torchvision: the short side becomes `resize`, the long one int(resize * long / short).
    new_h = resize if h <= w else float(int(resize * h / w))
    new_w = resize if w <= h else float(int(resize * w / h))
    top, left = float(round((new_h - size) / 2.0)), float(round((new_w - size) / 2.0))
    y0, y1 = round(top * h / new_h), round((top + size) * h / new_h)
    x0, x1 = round(left * w / new_w), round((left + size) * w / new_w)
    return y0, x0, max(y1 - y0, 1), max(x1 - x0, 1)


def _eval_crop_decoder(size: int, resize: int):
    """An ffcv decoder that decodes and crops `_eval_crop`'s window, resized to (size, size, 3)."""
    from ffcv.fields.rgb_image import ResizedCropRGBImageDecoder

    class EvalCropRGBImageDecoder(ResizedCropRGBImageDecoder):
        def __init__(self) -> None:
            super().__init__((size, size))
            self.scale, self.ratio = float(resize), float(size)

        @property
        def get_crop_generator(self):
            return _eval_crop

    return EvalCropRGBImageDecoder()


def _inspect(path: str) -> tuple[int, bool]:
    """(number of samples, whether all images share one size) of a beton, after checking its fields."""
    from ffcv.reader import Reader

    reader = Reader(path)
    missing = [name for name in _FIELDS if name not in reader.handlers]
    if missing:
        raise ValueError(f"{path} lacks the field(s) {missing} (it has {sorted(reader.handlers)}); write it "
                         f"with `attmask-write-beton`, which stores 'image' and 'label'")
    meta = reader.metadata[f"f{list(reader.handlers).index('image')}"]  # numpy fields are named f0, f1, ...
    same_size = bool(np.all(meta["width"] == meta["width"][0]) and np.all(meta["height"] == meta["height"][0]))
    return int(reader.num_samples), same_size


def build_ffcv_eval_loader(path: str | Path, image_size: int, batch_size: int, num_workers: int,
                           resize: int | None = None, interpolation: str = "bicubic") -> FFCVEvalLoader:
    """Build the FFCV evaluation loader (see `FFCVEvalLoader` for the arguments)."""
    loader = FFCVEvalLoader(path, image_size, batch_size, num_workers, resize, interpolation)
    log.info("%r", loader)
    return loader
