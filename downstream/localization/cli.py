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

import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from downstream.eval_cli import parse_with_aliases, save_beside
from downstream.backbone import ModelSpec, build_backbone
from pretrain.distributed import select_device
from downstream.results import log_results, tensorboard_dir, write_json
from downstream.settings import EvalSettings, check_float32_only
from pretrain.configuration import ConfigError, choice, register_check
from pretrain.data.transforms import IMAGENET_MEAN, IMAGENET_STD

log = logging.getLogger(__name__)

__all__ = ["CONFIG", "LocDataConfig", "LocalizationConfig", "main", "run", "score_files"]


@dataclass
class LocDataConfig:
    """Images with boxes in a standard layout (see :mod:`downstream.localization.parsers`)."""

    format: str = choice("wsol", "cub", "voc", "coco")
    root: str = ""  # image root (wsol: paths in image_ids.txt are relative to it)
    metadata: str = ""  # wsol: metadata folder (default root/metadata/<split>); coco: the JSON
    split: str = "test"  # cub: train | test | all; voc: ImageSets/Main/<split>.txt ("all": every XML)
    image_size: int = 224  # images (and boxes) are resized to image_size x image_size
    batch_size: int = 32
    num_workers: int = 2
    max_images: int = 0  # > 0: the first max_images images
    masks: bool = True  # PxAP when the layout has masks
    mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))


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
    per_head: bool = True  # CorLoc of every head and of the best head
    lost: bool = False  # also CorLoc of LOST boxes (last block keys)
    mass: float = 0.6  # share of attention kept by the CorLoc box rule
    cam_curve_interval: float = 0.01  # threshold step (wsolevaluation's config: 0.001)
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
    if not 0 < cfg.mass <= 1 or not 0 < cfg.cam_curve_interval < 1:
        raise ConfigError(f"need 0 < mass <= 1 and 0 < cam_curve_interval < 1, got {cfg.mass}, {cfg.cam_curve_interval}")


register_check(LocalizationConfig, check_localization)


def _load_boxes(path: str, n: int) -> list[np.ndarray]:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"boxes file {p} not found (give --boxes boxes.json)")
    data = json.loads(p.read_text())
    if not isinstance(data, dict) or "boxes" not in data:
        raise ValueError(f'{p} must be {{"boxes": [[[x0, y0, x1, y1], ...], ...]}} with one list per image')
    if len(data["boxes"]) != n:
        raise ValueError(f"{p} has {len(data['boxes'])} box lists but the maps file has {n} maps")
    return [np.asarray(b, dtype=np.float64).reshape(-1, 4) for b in data["boxes"]]


def _load_npz(path: str, key: str) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{key} file {p} not found")
    with np.load(p) as data:
        if key not in data.files:
            raise ValueError(f"{p} has no array {key!r} (found {data.files}): save it with np.savez(path, {key}=...)")
        return data[key]


def score_files(maps: str, boxes: str, masks: str = "", interval: float = 0.01, progress: bool = True) -> dict:
    """The ``--maps --boxes`` mode as a function: results dict (percent)."""
    from downstream.localization.evaluate import score_maps

    arr = _load_npz(maps, "maps")
    if arr.ndim != 3:
        raise ValueError(f"{maps}: maps must be (N, H, W), got {arr.shape}")
    mask_arr = _load_npz(masks, "masks") if masks else None
    if mask_arr is not None and mask_arr.shape != arr.shape:
        raise ValueError(f"{masks}: masks {mask_arr.shape} must match maps {arr.shape}")
    gt = _load_boxes(boxes, arr.shape[0])
    return score_maps(arr, gt, list(mask_arr) if mask_arr is not None else None, interval=interval,
                      progress=progress)


def _run_model(cfg: LocalizationConfig) -> tuple[dict, object]:
    import torch

    from downstream.localization.backbone_eval import LocSettings, evaluate_backbone
    from downstream.localization.maps import parse_heads
    from downstream.localization.dataset import LocDataset, collate
    from downstream.localization.parsers import parse

    d = cfg.data
    if not d.root:
        raise ValueError("give data.root=<folder> (and data.format=wsol|cub|voc|coco), or --maps/--boxes")
    parsed = parse(d.format, d.root, d.metadata, d.split)
    records = parsed.records[: d.max_images] if d.max_images > 0 else parsed.records
    if not records:
        raise ValueError(f"no image with boxes found in {d.root} ({d.format}, split {d.split})")
    with_masks = d.masks and all(r.masks for r in records)
    device = select_device(cfg.device)
    model = build_backbone(cfg.checkpoint, cfg.model, d.image_size)
    loader = torch.utils.data.DataLoader(LocDataset(records, d.image_size), batch_size=d.batch_size,
                                         num_workers=d.num_workers, collate_fn=collate)
    settings = LocSettings(cfg.cam_curve_interval, cfg.block, cfg.source, parse_heads(cfg.heads), cfg.per_head,
                           cfg.lost, cfg.mass, tuple(d.mean), tuple(d.std), with_masks, bool(cfg.save_maps),
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
        results, got = score_files(cfg.maps, cfg.boxes, cfg.masks, cfg.cam_curve_interval, cfg.progress), None
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
    """``python -m downstream.localization --config FILE key=value ...``; prints the headline numbers."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = parse_with_aliases(LocalizationConfig, argv, ALIASES, __doc__)
    res = run(cfg)
    base = res.get("centre_baseline", {})
    line = "  ".join(f"{k} {res[k]:.2f} (centre {base.get(k, float('nan')):.2f})"
                     for k in ("MaxBoxAccV2", "MaxBoxAcc", "CorLoc", "PxAP") if k in res)
    print(line, file=sys.stdout)


if __name__ == "__main__":
    main()
