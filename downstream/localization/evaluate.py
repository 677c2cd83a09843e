"""Score a set of maps: MaxBoxAcc V1/V2, PxAP, CorLoc, always beside the centred-Gaussian baseline.

Used by both CLI modes (``--maps`` files and ``--checkpoint``) and usable directly::

    scorer = MapScorer(interval=0.001, with_masks=False)
    for m, gt in zip(maps, boxes):
        scorer.add(m, gt)
    scorer.compute()   # {"MaxBoxAccV2": ..., "MaxBoxAcc": ..., "CorLoc": ..., ...}
"""

from __future__ import annotations

import numpy as np
import torch

from downstream.localization.boxes import mass_boxes, to_continuous
from downstream.localization.metrics import (
    BoxAccumulator,
    PxAPAccumulator,
    corloc,
    normalize_map,
    thresholds_for,
)

__all__ = ["MapScorer", "centre_gaussian", "score_maps"]


def centre_gaussian(h: int, w: int, sigma: float = 0.25) -> np.ndarray:
    """Centred isotropic-in-relative-units Gaussian (H, W), std = ``sigma`` x side: the baseline map."""
    ys = (np.arange(h) + 0.5) / h - 0.5
    xs = (np.arange(w) + 0.5) / w - 0.5
    return np.exp(-(ys[:, None] ** 2 + xs[None] ** 2) / (2 * sigma**2)).astype(np.float32)


class MapScorer:
    """Accumulates every metric for full-resolution maps (H, W) with GT boxes in the same frame.

    CorLoc boxes come from ``corloc_boxes`` when given to :meth:`add` (e.g. patch-level 60%-mass
    or LOST boxes), else from the 60%-of-mass rule on the normalised map itself (pixel level),
    with the connected component picked by ``component`` (``largest`` or ``lost``).
    """

    def __init__(self, interval: float = 0.001, with_masks: bool = False, component: str = "largest") -> None:
        thr = thresholds_for(interval)
        self.component = component
        self.boxes = BoxAccumulator(thr)
        self.pxap = PxAPAccumulator(thr) if with_masks else None
        self.pred: list[np.ndarray] = []
        self.gt: list[np.ndarray] = []

    def add(self, score_map: np.ndarray, gt_boxes: np.ndarray, mask: np.ndarray | None = None, name: str = "image",
            corloc_box: np.ndarray | None = None) -> None:
        self.boxes.add(score_map, gt_boxes, name)
        if self.pxap is not None:
            if mask is None:
                raise ValueError(f"{name} has no mask but PxAP was requested: give masks for every image")
            self.pxap.add(score_map, mask, name)
        if corloc_box is None:
            norm = torch.from_numpy(normalize_map(score_map, name))
            corloc_box = mass_boxes(norm.view(1, -1), tuple(norm.shape), 1, tuple(norm.shape), rule=self.component)[0]
        self.pred.append(np.asarray(corloc_box, dtype=np.float64))
        self.gt.append(to_continuous(gt_boxes))

    def compute(self) -> dict:
        out = self.boxes.compute()
        out["CorLoc"] = corloc(self.pred, self.gt)
        if self.pxap is not None:
            out["PxAP"] = self.pxap.compute()
        return out


def score_maps(maps: np.ndarray, boxes: list[np.ndarray], masks: list[np.ndarray] | None = None,
               names: list[str] | None = None, interval: float = 0.001, baseline: bool = True,
               progress: bool = False, component: str = "largest") -> dict:
    """Score maps (N, H, W) against per-image GT boxes (inclusive, map frame); adds ``centre_baseline``.

    Raises:
        ValueError: counts or shapes disagree (the message names the image).
    """
    from tqdm.auto import tqdm

    maps = np.asarray(maps)
    if maps.ndim != 3:
        raise ValueError(f"maps must be (N, H, W), got shape {maps.shape}")
    if len(boxes) != len(maps):
        raise ValueError(f"{len(maps)} maps but {len(boxes)} box lists: one list of boxes per map")
    names = names or [f"image {i}" for i in range(len(maps))]
    model = MapScorer(interval, masks is not None, component)
    base = MapScorer(interval, masks is not None, component)
    gauss = centre_gaussian(*maps.shape[1:])
    for i in tqdm(range(len(maps)), desc="scoring maps", disable=not progress, leave=False):
        mask = masks[i] if masks is not None else None
        gt = np.asarray(boxes[i]).reshape(-1, 4)
        model.add(maps[i], gt, mask, names[i])
        if baseline:
            base.add(gauss, gt, mask, names[i])
    out = model.compute()
    if baseline:
        out["centre_baseline"] = base.compute()
    return out
