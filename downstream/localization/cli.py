"""Localization evaluator: MaxBoxAcc (V1), MaxBoxAccV2, PxAP and CorLoc of a backbone's attention or of given maps.

Usage::

    python -m downstream.localization --checkpoint runs/x/checkpoint.pt data.format=wsol \
        data.root=bench/wsol data.metadata=bench/wsol/metadata/test --output loc.json
    python -m downstream.localization --maps maps.npz --boxes boxes.json --output out.json

``maps.npz`` holds ``maps`` float (N, H, W) (any range); ``boxes.json`` is
``{"boxes": [[[x0, y0, x1, y1], ...], ...]}`` (inclusive pixels in the map frame, one list per
image); an optional ``--masks masks.npz`` (``masks`` uint8 (N, H, W), 1 object / 0 background /
255 ignore) adds PxAP. Every result also holds ``centre_baseline`` (a centred Gaussian map).
Definitions: docs/localization.md.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from downstream.eval_cli import parse_with_aliases, save_beside
from downstream.backbone import ModelSpec, build_backbone
from downstream.image_input import ImageInput
from pretrain.distributed import select_device
from downstream.results import log_results, tensorboard_dir, write_json
from downstream.settings import EvalSettings, check_float32_only
from downstream.localization.protocol import resolve_component, resolve_geometry
from pretrain.configuration import ConfigError, choice, register_check
from pretrain.export.clean_exit import run_cleanly

log = logging.getLogger(__name__)

__all__ = ["CONFIG", "LocDataConfig", "LocalizationConfig", "main", "run", "score_files"]


@dataclass
class LocDataConfig(ImageInput):
    """Images with boxes in a standard layout (see :mod:`downstream.localization.parsers`)."""

    format: str = choice("wsol", "cub", "voc", "coco")
    root: str = ""  # image root (wsol: paths in image_ids.txt are relative to it)
    metadata: str = ""  # wsol: metadata folder (default root/metadata/<split>); coco: the JSON
    split: str = "test"  # cub: train | test | all; voc: ImageSets/Main/<split>.txt ("all": every XML)
    image_size: int = 224  # geometry=square: images (and boxes) are resized to image_size x image_size
    # square: resize to image_size (wsolevaluation); pad: own size, zero-padded to the patch size (LOST);
    # auto: pad for voc / coco, square for wsol / cub
    geometry: str = choice("auto", "square", "pad")
    no_hard: bool = False  # voc: drop truncated or difficult objects and images left without any (LOST's --no_hard)
    cub_boxes: str = choice("wsol", "inclusive")  # cub box end: x + w (wsolevaluation's metadata) or x + w - 1
    batch_size: int = 32
    max_images: int = 0  # > 0: the first max_images images
    masks: bool = True  # PxAP when the layout has masks


@dataclass
class LocalizationConfig(EvalSettings):
    checkpoint: str = ""
    model: ModelSpec = field(default_factory=ModelSpec)
    data: LocDataConfig = field(default_factory=LocDataConfig)
    maps: str = ""  # score these maps (.npz, key "maps") instead of a model's attention
    boxes: str = ""  # boxes.json for maps=
    masks: str = ""  # optional masks .npz for maps= (PxAP)
    block: int = -1  # attention of this block (-1 = last)
    source: str = choice("auto", "cls", "simpool")
    heads: str = "mean"  # mean | best (oracle per image) | all (mean of all) | <head index>
    per_head: bool = True  # CorLoc of every head and of the best head (oracle: CorLoc_best_head_oracle)
    lost: bool = False  # also CorLoc of LOST boxes (last block keys)
    mass: float = 0.6  # share of attention kept by the CorLoc box rule
    # connected component of the CorLoc box: largest (ours) or lost (LOST's dino_seg); auto: lost for voc / coco
    component: str = choice("auto", "largest", "lost")
    dinoseg_head: int = 4  # also CorLoc of this one head (LOST's DINO-seg: head 4 of ViT-S/16); -1: off
    cam_curve_interval: float = 0.001  # threshold step (wsolevaluation's default)
    save_maps: str = ""  # write the scored maps (N, S, S) to this .npz
    pictures: int = 16  # images in the PNG grid beside output (0: none)


CONFIG = LocalizationConfig


def check_localization(cfg: LocalizationConfig) -> None:
    """Cross-field checks, run when the config is parsed (before any file is read)."""
    from downstream.localization.maps import parse_heads

    try:
        parse_heads(cfg.heads)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if bool(cfg.maps) != bool(cfg.boxes):
        raise ConfigError("give both maps=<maps.npz> and boxes=<boxes.json> (or neither, with a checkpoint)")
    check_float32_only(cfg, "localization (attention maps)")
    if cfg.dinoseg_head < -1:
        raise ConfigError(f"dinoseg_head={cfg.dinoseg_head}: give a head index >= 0, or -1 for none")
    if cfg.save_maps and not cfg.maps and resolve_geometry(cfg.data.geometry, cfg.data.format) == "pad":
        raise ConfigError("save_maps needs maps of one size, but data.geometry resolves to pad (images at their own "
                          f"sizes, the default for data.format={cfg.data.format}): set data.geometry=square")
    if not 0 < cfg.mass <= 1 or not 0 < cfg.cam_curve_interval < 1:
        raise ConfigError(f"need 0 < mass <= 1 and 0 < cam_curve_interval < 1, got {cfg.mass}, {cfg.cam_curve_interval}")


register_check(LocalizationConfig, check_localization)


def score_files(maps: str, boxes: str, masks: str = "", interval: float = 0.001, progress: bool = True,
                component: str = "largest") -> dict:
    """The ``--maps --boxes`` mode as a function: results dict (percent). Files are checked
    (:mod:`downstream.localization.map_files`)."""
    from downstream.localization.evaluate import score_maps
    from downstream.localization.map_files import load_boxes, load_maps, load_masks

    arr = load_maps(maps)
    mask_list = load_masks(masks, arr.shape) if masks else None
    gt = load_boxes(boxes, arr.shape[0])
    return score_maps(arr, gt, mask_list, interval=interval, progress=progress, component=component)


def _run_model(cfg: LocalizationConfig) -> tuple[dict, object]:
    import torch

    from downstream.localization.backbone_eval import LocSettings, evaluate_backbone
    from downstream.localization.maps import parse_heads, patch_size_of
    from downstream.localization.dataset import LocDataset, collate
    from downstream.localization.padding import size_batches
    from downstream.localization.parsers import parse

    d = cfg.data
    if not d.root:
        raise ValueError("give data.root=<folder> (and data.format=wsol|cub|voc|coco), or --maps/--boxes")
    parsed = parse(d.format, d.root, d.metadata, d.split, no_hard=d.no_hard, cub_boxes=d.cub_boxes)
    records = parsed.records[: d.max_images] if d.max_images > 0 else parsed.records
    if not records:
        raise ValueError(f"no image with boxes found in {d.root} ({d.format}, split {d.split})")
    with_masks = d.masks and all(r.masks for r in records)
    device = select_device(cfg.device)
    model = build_backbone(cfg.checkpoint, cfg.model, d.image_size)
    geometry = resolve_geometry(d.geometry, d.format)
    dataset = LocDataset(records, d.image_size, geometry)
    if geometry == "pad":  # images of one padded size per batch (LOST goes one image at a time)
        sizes = [(r.size[1], r.size[0]) for r in records]
        batches = size_batches(sizes, patch_size_of(model), d.batch_size)
        loader = torch.utils.data.DataLoader(dataset, batch_sampler=batches, num_workers=d.num_workers,
                                             collate_fn=collate)
    else:
        loader = torch.utils.data.DataLoader(dataset, batch_size=d.batch_size, num_workers=d.num_workers,
                                             collate_fn=collate)
    settings = LocSettings(cfg.cam_curve_interval, cfg.block, cfg.source, parse_heads(cfg.heads), cfg.per_head,
                           cfg.lost, cfg.mass, resolve_component(cfg.component, d.format), cfg.dinoseg_head,
                           geometry, tuple(d.mean), tuple(d.std), with_masks, bool(cfg.save_maps),
                           cfg.pictures, cfg.progress)
    results, got = evaluate_backbone(model, loader, settings, device)
    results["num_images"] = len(records)
    results["skipped"] = parsed.notes
    if cfg.save_maps:
        from downstream.localization.maps import save_maps

        save_maps(cfg.save_maps, np.stack(got.maps), got.names)
    return results, got


def run(cfg: LocalizationConfig) -> dict:
    """Evaluate maps (``maps=``) or a backbone's attention (``checkpoint=`` / ``model.name=``); writes outputs."""
    if cfg.maps or cfg.boxes:
        if not (cfg.maps and cfg.boxes):
            raise ValueError("the maps mode needs both --maps maps.npz and --boxes boxes.json")
        component = "largest" if cfg.component == "auto" else cfg.component
        results, got = score_files(cfg.maps, cfg.boxes, cfg.masks, cfg.cam_curve_interval, cfg.progress,
                                   component), None
    else:
        results, got = _run_model(cfg)
    tb = tensorboard_dir(cfg.tensorboard, cfg.output)
    if cfg.output:
        write_json(cfg.output, results)
        save_beside(cfg, cfg.output)
    scalars = {k: v for k, v in results.items() if k != "skipped"}
    log_results(tb, scalars, "localization")
    if got is not None and got.picture_images and cfg.output:
        _pictures(got, results, cfg.output, tb)
    return results


def _pictures(got, results: dict, output: str, tb) -> None:
    from downstream.localization.pictures import localization_grid, save_grid

    grid = localization_grid(got.picture_images, got.picture_maps, got.picture_gt, results["best_threshold_IoU50"])
    side = got.picture_images[0].shape[0]
    path = save_grid(grid, Path(output).with_suffix(".png"), scale=max(1, 224 // side))
    log.info("picture grid written to %s", path)
    if tb is not None:
        from torch.utils.tensorboard import SummaryWriter

        with SummaryWriter(str(tb)) as writer:
            writer.add_image("localization/grid", grid, 0, dataformats="HWC")


ALIASES = {"--checkpoint": "checkpoint", "--output": "output", "--maps": "maps", "--boxes": "boxes",
           "--masks": "masks", "--device": "device"}


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m downstream.localization --config FILE key=value ...``; prints the headline numbers.

    A bad setting is one ``config error:`` line, bad input data (a missing file, a NaN box, a mask
    value outside 0 / 1 / 255, broken JSON ...) one ``error:`` line naming the file / line / image;
    both exit with status 2, without a traceback.
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = parse_with_aliases(LocalizationConfig, argv, ALIASES, __doc__)
    res = run_cleanly(lambda: run(cfg))
    base = res.get("centre_baseline", {})
    line = "  ".join(f"{k} {res[k]:.2f} (centre {base.get(k, float('nan')):.2f})"
                     for k in ("MaxBoxAccV2", "MaxBoxAcc", "CorLoc", "PxAP") if k in res)
    print(line, file=sys.stdout)


if __name__ == "__main__":
    main()
