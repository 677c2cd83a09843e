"""Localization of a frozen ViT: batched attention maps -> MaxBoxAcc V1/V2, PxAP, CorLoc (+ baseline, heads, LOST).

Per batch: one forward gives every head's [CLS] (or SimPool) map of the chosen block; the map to
score (head mean, one head, or per image the best head) is upsampled bicubic to the image size and
fed to :class:`~downstream.localization.evaluate.MapScorer`. CorLoc uses the 60%-of-mass box of the
patch-level map (DINO-seg), per head as well, and LOST boxes from the last block's keys on request.

With ``geometry="pad"`` (LOST's protocol) the images come at their own sizes; a batch (of one
padded size, :func:`~downstream.localization.padding.size_batches`) is normalised, zero-padded to
a multiple of the patch size, and each map is upsampled to the padded size and cropped back to
its image, so every metric is computed in the image's own frame.
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
from downstream.localization.padding import pad_normalised
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
        per_head: Also the CorLoc of every head and of the best head (an oracle: chosen with the GT).
        lost: Also the CorLoc of LOST boxes.
        mass: Share of attention kept by the CorLoc box rule.
        component: Which connected component gives the CorLoc box: ``largest`` or ``lost``
            (:data:`~downstream.localization.boxes.COMPONENT_RULES`).
        dinoseg_head: Also the CorLoc of this one head (LOST's DINO-seg uses head 4 of ViT-S/16;
            -1: none); skipped, and said so in the result, when the model has fewer heads.
        geometry: ``square`` (images resized to S x S) or ``pad`` (own size, padded as LOST).
        mean, std: Normalisation of the 0..255 images.
        with_masks: Score PxAP (every sample has a mask).
        keep_maps: Keep every scored map (N, S, S) in the result's ``maps``.
        pictures: Images kept for the picture grid.
        progress: tqdm bar.
    """

    interval: float = 0.001
    block: int = -1
    source: str = "auto"
    heads: str | int = "mean"
    per_head: bool = True
    lost: bool = False
    mass: float = 0.6
    component: str = "largest"
    dinoseg_head: int = -1
    geometry: str = "square"
    mean: tuple[float, ...] = tuple(IMAGENET_MEAN)
    std: tuple[float, ...] = tuple(IMAGENET_STD)
    with_masks: bool = False
    keep_maps: bool = False
    pictures: int = 0
    progress: bool = True


def _inputs(images: torch.Tensor, samples: list, opts: LocSettings, p: int, device) -> torch.Tensor:
    """Normalised model input (B, 3, H, W): as loaded (square) or zero-padded after normalising (pad)."""
    x = normalize_on_device(images.to(device), tuple(opts.mean), tuple(opts.std))
    if opts.geometry == "pad":
        return pad_normalised(x, [s.hw for s in samples], p)
    return x


class _CorLocBoxes:
    """The CorLoc boxes of every image: scored map, each head, LOST's single head, LOST; then the percentages."""

    def __init__(self, opts: LocSettings) -> None:
        self.opts = opts
        self.heads: list[np.ndarray] = []  # (h, 4) per image
        self.single: list[np.ndarray] = []
        self.lost: list[np.ndarray] = []
        self.gts: list[np.ndarray] = []
        self.n_heads = 0

    def add(self, model, x, att: torch.Tensor, grid, p: int, sizes: list[tuple[int, int]]) -> None:
        opts = self.opts
        self.n_heads = att.shape[1]
        if opts.per_head and self.n_heads > 1:
            per = [mass_boxes(att[:, h].flatten(1), grid, p, sizes, opts.mass, opts.component)
                   for h in range(self.n_heads)]
            self.heads.extend(np.stack(per, 1))
        if 0 <= opts.dinoseg_head < self.n_heads:
            self.single.extend(mass_boxes(att[:, opts.dinoseg_head].flatten(1), grid, p, sizes, opts.mass,
                                          opts.component))
        if opts.lost:
            self.lost.extend(lost_boxes(patch_keys(model, x), grid, p, sizes))

    def results(self) -> dict:
        out: dict = {}
        opts = self.opts
        if self.heads:
            per_head = [corloc([hp[h] for hp in self.heads], self.gts) for h in range(len(self.heads[0]))]
            out["CorLoc_per_head"] = {f"head{h}": v for h, v in enumerate(per_head)}
            # the head is picked with the evaluation set's ground truth: an upper bound, never a result
            out["CorLoc_best_head_oracle"] = max(per_head)
        if opts.dinoseg_head >= 0:
            out["dinoseg_head"] = opts.dinoseg_head
            if self.single:
                out["CorLoc_dinoseg_head"] = corloc(self.single, self.gts)
            else:
                out["dinoseg_head_note"] = (f"head {opts.dinoseg_head} does not exist: the model has {self.n_heads} "
                                            "head(s) (LOST's DINO-seg uses head 4 of ViT-S/16's 6)")
        if opts.lost:
            out["CorLoc_LOST"] = corloc(self.lost, self.gts)
        return out


def _crop_maps(full: np.ndarray, sizes: list[tuple[int, int]]) -> list[np.ndarray]:
    """Each image's map cut out of the padded frame: (S, S) / (h, S, S) -> its own (H, W) (last two dims)."""
    return [m[..., :h, :w] for m, (h, w) in zip(full, sizes)]


@torch.no_grad()
def evaluate_backbone(model: nn.Module, loader, settings: LocSettings = LocSettings(),
                      device: str | torch.device = "cpu") -> tuple[dict, Collected]:
    """Evaluate ``model``'s attention on a loader of :func:`~downstream.localization.dataset.collate` batches.

    Returns:
        (results, collected): results has MaxBoxAccV2, MaxBoxAccV2_IoU30/50/70 (+ best thresholds),
        MaxBoxAcc, CorLoc (60%-mass box of the scored map), PxAP (masks), ``CorLoc_per_head``,
        ``CorLoc_best_head_oracle``, ``CorLoc_dinoseg_head``, ``CorLoc_LOST`` and ``centre_baseline``
        (same metrics for the centred Gaussian).
    """
    device = torch.device(device)
    model = model.to(device)
    opts = settings
    thresholds = thresholds_for(opts.interval)
    scorer, base = MapScorer(opts.interval, opts.with_masks), MapScorer(opts.interval, opts.with_masks)
    boxes = _CorLocBoxes(opts)
    got = Collected()
    p = patch_size_of(model)
    for images, samples in tqdm(loader, desc="localization", unit="batch", disable=not opts.progress, leave=False):
        x = _inputs(images, samples, opts, p, device)
        padded = tuple(x.shape[-2:])
        grid = (padded[0] // p, padded[1] // p)
        sizes = [s.hw for s in samples]
        att = attention_maps(model, x, block=opts.block, source=opts.source)  # (B, h, gh, gw)
        chosen = select_heads(att, opts.heads)
        maps = _crop_maps(upsample(chosen, padded).cpu().numpy(), sizes)  # (H, W) or (h, H, W) each
        mass_att = att.mean(1) if chosen.dim() == 4 else chosen  # CorLoc of the scored map
        boxes_main = mass_boxes(mass_att.flatten(1), grid, p, sizes, opts.mass, opts.component)
        boxes.add(model, x, att, grid, p, sizes)
        for i, s in enumerate(samples):
            m = maps[i]
            if m.ndim == 3:  # heads=best (oracle per image) or all (scored as the mean)
                m = m[_best_head(m, s.boxes, thresholds, s.name)] if opts.heads == "best" else m.mean(0)
            scorer.add(m, s.boxes, s.mask, s.name, corloc_box=boxes_main[i])
            base.add(centre_gaussian(*s.hw), s.boxes, s.mask, s.name)
            boxes.gts.append(to_continuous(s.boxes))
            if opts.keep_maps:
                got.maps.append(m.astype(np.float32))
                got.names.append(s.name)
            if len(got.picture_images) < opts.pictures:
                got.picture_images.append(images[i, :, : s.hw[0], : s.hw[1]].permute(1, 2, 0).cpu().numpy())
                got.picture_maps.append(m)
                got.picture_gt.append(s.boxes)
    results = scorer.compute()
    results["centre_baseline"] = base.compute()
    results.update(boxes.results())
    results["best_threshold"] = results["best_threshold_IoU50"]
    results["geometry"], results["component"] = opts.geometry, opts.component
    if opts.heads == "best":
        results["oracle"] = ("heads=best: every metric above uses, per image, the head chosen with that image's "
                             "ground truth: an upper bound, not a result")
    return results, got
