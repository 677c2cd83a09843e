"""Localization of a frozen ViT: batched attention maps -> MaxBoxAcc V1/V2, PxAP, CorLoc (+ baseline, heads, LOST).

Per batch: one forward gives every head's [CLS] (or SimPool) map of the chosen block; the map to
score (head mean, one head, or per image the best head) is upsampled bicubic to the image size and
fed to :class:`~downstream.localization.evaluate.MapScorer`. CorLoc uses the 60%-of-mass box of the
patch-level map (DINO-seg), per head as well, and LOST boxes from the last block's keys on request.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from downstream.localization.boxes import lost_boxes, mass_boxes, to_continuous
from downstream.localization.evaluate import MapScorer, centre_gaussian
from downstream.localization.maps import (
    attention_maps,
    patch_keys,
    patch_size_of,
    select_heads,
    upsample,
)
from downstream.localization.metrics import (
    boxes_at_thresholds,
    corloc,
    iou_inclusive,
    normalize_map,
    thresholds_for,
)
from pretrain.data.transforms import IMAGENET_MEAN, IMAGENET_STD, normalize_on_device

__all__ = ["Collected", "LocSettings", "evaluate_backbone"]


@dataclass
class Collected:
    """What a run keeps besides the numbers: maps to save and a few images for the picture grid."""

    maps: list[np.ndarray] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    picture_images: list[np.ndarray] = field(default_factory=list)  # (S, S, 3) uint8
    picture_maps: list[np.ndarray] = field(default_factory=list)
    picture_gt: list[np.ndarray] = field(default_factory=list)


def _best_head(head_maps: np.ndarray, gt: np.ndarray, thresholds: np.ndarray, name: str) -> int:
    """Index of the head whose map reaches the highest IoU with the GT over thresholds (oracle per image)."""
    scores = []
    for m in head_maps:
        boxes = boxes_at_thresholds(normalize_map(m, name), thresholds, multi_contour=True)
        scores.append(max(iou_inclusive(b, gt).max() for b in boxes))
    return int(np.argmax(scores))


@dataclass(frozen=True)
class LocSettings:
    """How :func:`evaluate_backbone` makes and scores the maps.

    Attributes:
        interval: Threshold step of the box metrics (wsolevaluation's ``cam_curve_interval``).
        block: Attention of this block (-1 = last).
        source: ``auto``, ``cls`` or ``simpool`` (see :func:`~downstream.localization.maps.attention_maps`).
        heads: ``mean``, ``all``, ``best`` or a head index (:func:`~downstream.localization.maps.parse_heads`).
        per_head: Also the CorLoc of every head and of the best head.
        lost: Also the CorLoc of LOST boxes.
        mass: Share of attention kept by the CorLoc box rule.
        mean, std: Normalisation of the 0..255 images.
        with_masks: Score PxAP (every sample has a mask).
        keep_maps: Keep every scored map (N, S, S) in the result's ``maps``.
        pictures: Images kept for the picture grid.
        progress: tqdm bar.
    """

    interval: float = 0.01
    block: int = -1
    source: str = "auto"
    heads: str | int = "mean"
    per_head: bool = True
    lost: bool = False
    mass: float = 0.6
    mean: tuple[float, ...] = tuple(IMAGENET_MEAN)
    std: tuple[float, ...] = tuple(IMAGENET_STD)
    with_masks: bool = False
    keep_maps: bool = False
    pictures: int = 0
    progress: bool = True


@torch.no_grad()
def evaluate_backbone(model: nn.Module, loader, settings: LocSettings = LocSettings(),
                      device: str | torch.device = "cpu") -> tuple[dict, Collected]:
    """Evaluate ``model``'s attention on a loader of :func:`~downstream.localization.dataset.collate` batches.

    Returns:
        (results, collected): results has MaxBoxAccV2, MaxBoxAccV2_IoU30/50/70 (+ best thresholds),
        MaxBoxAcc, CorLoc (60%-mass box), PxAP (masks), ``per_head`` / ``best_head`` CorLoc,
        ``CorLoc_LOST`` and ``centre_baseline`` (same metrics for the centred Gaussian).
    """
    device = torch.device(device)
    model = model.to(device)
    opts = settings
    thresholds = thresholds_for(opts.interval)
    scorer, base = MapScorer(opts.interval, opts.with_masks), MapScorer(opts.interval, opts.with_masks)
    head_pred: list[list[np.ndarray]] = []
    lost_pred: list[np.ndarray] = []
    gts: list[np.ndarray] = []
    got = Collected()
    p = patch_size_of(model)
    for images, samples in tqdm(loader, desc="localization", unit="batch", disable=not opts.progress, leave=False):
        x = normalize_on_device(images.to(device), tuple(opts.mean), tuple(opts.std))
        size = tuple(x.shape[-2:])
        grid = (size[0] // p, size[1] // p)
        att = attention_maps(model, x, block=opts.block, source=opts.source)  # (B, h, gh, gw)
        n_heads = att.shape[1]
        chosen = select_heads(att, opts.heads)
        full = upsample(chosen, size).cpu().numpy()  # (B, S, S) or (B, h, S, S)
        mass_att = att.mean(1) if chosen.dim() == 4 else chosen  # CorLoc of the scored map
        boxes_main = mass_boxes(mass_att.flatten(1), grid, p, size, opts.mass)
        if opts.per_head and n_heads > 1:
            per = [mass_boxes(att[:, h].flatten(1), grid, p, size, opts.mass) for h in range(n_heads)]
            head_pred.extend(np.stack(per, 1))
        if opts.lost:
            lost_pred.extend(lost_boxes(patch_keys(model, x), grid, p, size))
        gauss = centre_gaussian(*size)
        for i, s in enumerate(samples):
            m = full[i]
            if m.ndim == 3:  # heads=best (oracle per image) or all (scored as the mean)
                m = m[_best_head(m, s.boxes, thresholds, s.name)] if opts.heads == "best" else m.mean(0)
            scorer.add(m, s.boxes, s.mask, s.name, corloc_box=boxes_main[i])
            base.add(gauss, s.boxes, s.mask, s.name)
            gts.append(to_continuous(s.boxes))
            if opts.keep_maps:
                got.maps.append(m.astype(np.float32))
                got.names.append(s.name)
            if len(got.picture_images) < opts.pictures:
                got.picture_images.append(images[i].permute(1, 2, 0).cpu().numpy())
                got.picture_maps.append(m)
                got.picture_gt.append(s.boxes)
    results = scorer.compute()
    results["centre_baseline"] = base.compute()
    if head_pred:
        per_head_corloc = [corloc([hp[h] for hp in head_pred], gts) for h in range(len(head_pred[0]))]
        results["CorLoc_per_head"] = {f"head{h}": v for h, v in enumerate(per_head_corloc)}
        results["CorLoc_best_head"] = max(per_head_corloc)
    if opts.lost:
        results["CorLoc_LOST"] = corloc(lost_pred, gts)
    results["best_threshold"] = results["best_threshold_IoU50"]
    return results, got
