"""``python -m downstream.segmentation --checkpoint CKPT data.root=DIR --output seg.json``: linear segmentation.

Frozen backbone; DINOv2's ``linear`` head (BatchNorm2d + 1x1 conv) on the last block's patch tokens
(``head.blocks=4``: the last 4 blocks concatenated); logits upsampled bilinearly to the label size;
cross-entropy, 255 ignored. Reports mIoU, per-class IoU and pixel accuracy (percent) from a confusion
matrix accumulated over the evaluation split, next to the majority-class baseline (``mIoU_majority``:
the most frequent training class predicted everywhere), and writes a PNG of images, truth and
predictions. Layouts: ``data.layout=voc`` or ``ade20k`` (docs/finetune_segmentation.md).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


from downstream.backbone import ModelSpec, build_backbone, input_size
from downstream.eval_cli import parse_with_aliases, save_beside
from downstream.results import log_results, tensorboard_dir, write_json
from downstream.segmentation.data import ade_samples, read_pair, voc_samples
from downstream.segmentation.loader import SegmentationSet, segmentation_loader
from downstream.segmentation.metrics import majority_confusion, scores
from downstream.segmentation.pictures import results_picture
from downstream.segmentation.train import cache_features, class_counts, evaluate, train_head
from pretrain.configuration import ConfigError, choice, register_check
from pretrain.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from pretrain.distributed import select_device

log = logging.getLogger(__name__)

__all__ = ["CONFIG", "SegmentationConfig", "main", "run"]


@dataclass
class SegDataConfig:
    layout: str = choice("voc", "ade20k")
    root: str = ""
    train_split: str = "train"
    val_split: str = "val"
    num_classes: int = 21  # VOC: 21 (background + 20); ADE20K: 150
    image_size: int = 0  # 0: the model's input size; images are resized to it (square)
    batch_size: int = 16
    num_workers: int = 2
    mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))


@dataclass
class SegHeadConfig:
    blocks: int = 1  # 1: the last block's patch tokens; 4: the last 4 concatenated
    epochs: int = 20
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 16


@dataclass
class SegmentationConfig:
    checkpoint: str = ""
    model: ModelSpec = field(default_factory=ModelSpec)
    data: SegDataConfig = field(default_factory=SegDataConfig)
    head: SegHeadConfig = field(default_factory=SegHeadConfig)
    seed: int = 0
    device: str = choice("auto", "cpu", "cuda")
    pictures: int = 6  # images in the PNG (0: none)
    output: str = ""
    tensorboard: str = ""


CONFIG = SegmentationConfig


def check_segmentation(cfg: SegmentationConfig) -> None:
    """Cross-field checks before any data is read."""
    if cfg.head.blocks not in (1, 4):
        raise ConfigError(f"head.blocks={cfg.head.blocks} is not a valid value: choose one of 1, 4")
    if not cfg.data.root:
        raise ConfigError("data.root is empty: point it at a VOC (JPEGImages/ ...) or ADE20K (images/ ...) folder")
    if not 2 <= cfg.data.num_classes <= 255:
        raise ConfigError(f"data.num_classes={cfg.data.num_classes} must be in 2..255 (255 is the ignore label)")
    for key, value in {"head.epochs": cfg.head.epochs, "head.lr": cfg.head.lr, "head.batch_size": cfg.head.batch_size,
                       "data.batch_size": cfg.data.batch_size}.items():
        if value <= 0:
            raise ConfigError(f"{key}={value} must be > 0")


register_check(SegmentationConfig, check_segmentation)


def _sets(cfg: SegmentationConfig, size: int) -> dict[str, SegmentationSet]:
    d = cfg.data
    find = voc_samples if d.layout == "voc" else ade_samples
    out = {}
    for role, split in (("train", d.train_split), ("val", d.val_split)):
        out[role] = SegmentationSet(find(d.root, split), d.num_classes, d.layout == "ade20k", size, d.mean, d.std)
    return out


def run(cfg: SegmentationConfig) -> dict:
    """Train the head on the training split, evaluate on the validation split; returns the results."""
    t0, d, h = time.time(), cfg.data, cfg.head
    device = select_device(cfg.device)
    backbone = build_backbone(cfg.checkpoint, cfg.model, d.image_size).to(device)
    size = input_size(backbone, d.image_size)
    sets = _sets(cfg, size)  # layout and split errors before any feature is computed
    loaders = {r: segmentation_loader(s, d.batch_size, d.num_workers) for r, s in sets.items()}
    features, labels = cache_features(backbone, loaders["train"], h.blocks, device)
    counts = class_counts(labels, d.num_classes)
    head = train_head(features, labels, d.num_classes, h.epochs, h.lr, h.weight_decay, h.batch_size, cfg.seed, device)
    confusion, kept = evaluate(backbone, head, loaders["val"], d.num_classes, h.blocks, device, cfg.pictures)
    model_scores = scores(confusion)
    majority = int(counts.argmax())
    base = scores(majority_confusion(confusion, majority))
    results = {"checkpoint": cfg.checkpoint, "layout": d.layout, "blocks": h.blocks, "image_size": size,
               "train_images": len(sets["train"]), "val_images": len(sets["val"]), **model_scores,
               "mIoU_majority": base["mIoU"], "pixel_acc_majority": base["pixel_acc"], "majority_class": majority,
               "confusion": confusion.tolist(), "time_s": round(time.time() - t0, 1)}
    if cfg.output:
        write_json(cfg.output, results)
        save_beside(cfg, cfg.output)
        if kept:
            rows = [(read_pair(sets["val"].samples[i], d.num_classes, d.layout == "ade20k")[0], t, p)
                    for i, (t, p) in enumerate(kept)]
            results_picture(rows, Path(cfg.output).with_suffix(".png"), d.num_classes)
    log_results(tensorboard_dir(cfg.tensorboard, cfg.output), {k: v for k, v in results.items() if k != "confusion"},
                "segmentation")
    log.info("mIoU %.2f (majority class %.2f), pixel accuracy %.2f", results["mIoU"], base["mIoU"],
             results["pixel_acc"])
    return results


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: ``config error:`` lines for bad settings, one-line errors for bad data."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = parse_with_aliases(SegmentationConfig, argv, {"--checkpoint": "checkpoint", "--output": "output"}, __doc__)
    try:
        run(cfg)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
