"""Localization metrics: MaxBoxAcc (V1), MaxBoxAccV2, PxAP (Choe et al., CVPR 2020) and CorLoc.

Definitions follow clovaai/wsolevaluation (``evaluation.py``) exactly:

* a score map (H, W) is min-max normalised to [0, 1] (NaN: error; constant: zeros) and
  quantised ``uint8(map * 255)`` (truncation);
* at threshold t a pixel is on iff its value is strictly above ``int(t * img.max())``;
* boxes come from OpenCV contours (RETR_TREE, CHAIN_APPROX_SIMPLE) as
  ``[x, y, min(x + w, W - 1), min(y + h, H - 1)]``; no contour gives ``[0, 0, 0, 0]``;
* IoU counts inclusive pixels (``+ 1``);
* MaxBoxAcc(delta) = max over t of the fraction of images whose best IoU >= delta;
  V1 = largest contour, delta = 0.5; V2 = every contour, mean over delta in {0.3, 0.5, 0.7}.

CorLoc (Deselaers et al. 2010; LOST, Simeoni et al. 2021) scores one box per image with the
continuous IoU (no ``+ 1``) >= 0.5 against any ground-truth box.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "BoxAccumulator",
    "PxAPAccumulator",
    "boxes_at_thresholds",
    "contour_boxes",
    "corloc",
    "iou_continuous",
    "iou_inclusive",
    "normalize_map",
    "thresholds_for",
]


def _cv2():
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("the localization metrics need OpenCV: pip install 'attmask-ssl[localization]' "
                          "(opencv-python-headless) or opencv-python") from exc
    return cv2


def thresholds_for(interval: float) -> np.ndarray:
    """``arange(0, 1, interval)``: the score-map thresholds (0.001 -> 1000 values, wsolevaluation's default)."""
    if not 0 < interval < 1:
        raise ValueError(f"cam_curve_interval must be in (0, 1), got {interval}")
    return np.arange(0, 1, interval)


def normalize_map(score_map: np.ndarray, name: str = "map") -> np.ndarray:
    """Min-max normalise one score map (H, W) to float32 [0, 1]; a constant map becomes zeros.

    Raises:
        ValueError: the map is not 2-D or holds NaN / inf (the message names ``name``).
    """
    m = np.asarray(score_map, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"score map of {name} must be (H, W), got shape {m.shape}")
    if not np.isfinite(m).all():
        raise ValueError(f"score map of {name} holds NaN or inf values: fix the model output for this image")
    lo, hi = m.min(), m.max()
    if hi <= lo:
        return np.zeros(m.shape, dtype=np.float32)
    return ((m - lo) / (hi - lo)).astype(np.float32)


def iou_inclusive(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """IoU of every pair of boxes with inclusive pixel coordinates (wsolevaluation's ``+ 1``).

    Args:
        boxes_a: (A, 4) int boxes x0, y0, x1, y1.
        boxes_b: (B, 4) int boxes.

    Returns:
        (A, B) float64 IoU; a degenerate pair (non-positive union) gives 0.
    """
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)[:, None]
    b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)[None]
    iw = np.maximum(0, np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1)
    ih = np.maximum(0, np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
    area_b = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def iou_continuous(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """IoU of every pair of boxes in continuous coordinates (no ``+ 1``; LOST's CorLoc): (A, B)."""
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)[:, None]
    b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)[None]
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def contour_boxes(norm_map: np.ndarray, thresholds: Sequence[float]) -> list[tuple[np.ndarray, int]]:
    """Per threshold: (boxes of every contour (K, 4) int, index of the largest contour); one findContours each.

    No contour gives ``([[0, 0, 0, 0]], 0)``.
    """
    cv2 = _cv2()
    h, w = norm_map.shape
    img = (norm_map * 255).astype(np.uint8)
    peak = int(img.max())
    out = []
    for t in thresholds:
        binary = (img > int(t * peak)).astype(np.uint8) * 255
        contours = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
        if len(contours) == 0:
            out.append((np.zeros((1, 4), dtype=np.int64), 0))
            continue
        largest = max(range(len(contours)), key=lambda i: cv2.contourArea(contours[i]))
        rects = np.array([cv2.boundingRect(c) for c in contours], dtype=np.int64)  # (K, 4) x, y, w, h
        boxes = np.stack([rects[:, 0], rects[:, 1], np.minimum(rects[:, 0] + rects[:, 2], w - 1),
                          np.minimum(rects[:, 1] + rects[:, 3], h - 1)], axis=1)
        out.append((boxes, largest))
    return out


def boxes_at_thresholds(norm_map: np.ndarray, thresholds: Sequence[float],
                        multi_contour: bool) -> list[np.ndarray]:
    """Boxes of a normalised map (H, W) in [0, 1] at each threshold.

    Returns:
        One int array per threshold: (1, 4) for the largest contour (V1) or (K, 4) with a box per
        contour (V2); ``[[0, 0, 0, 0]]`` when nothing is above the threshold.
    """
    found = contour_boxes(norm_map, thresholds)
    return [b if multi_contour else b[i:i + 1] for b, i in found]


def check_boxes(boxes: np.ndarray, hw: tuple[int, int], name: str) -> np.ndarray:
    """(K, 4) int boxes inside an image of size ``hw``; raises naming ``name`` otherwise."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if b.shape[0] == 0:
        raise ValueError(f"{name} has no ground-truth box: give at least one box per image (or drop the image)")
    finite = np.isfinite(b).all(1)
    if not finite.all():
        raise ValueError(f"{name}: box {b[~finite][0].tolist()} holds NaN or inf: every ground-truth box needs 4 "
                         "finite coordinates x0, y0, x1, y1")
    h, w = hw
    bad = (b[:, 0] > b[:, 2]) | (b[:, 1] > b[:, 3]) | (b[:, :2] < 0).any(1) | (b[:, 2] > w - 1) | (b[:, 3] > h - 1)
    if bad.any():
        raise ValueError(f"{name}: box {b[bad][0].tolist()} is not x0<=x1, y0<=y1 inside the {w}x{h} map "
                         "(inclusive pixel coordinates in the map's own frame)")
    return b.astype(np.int64)


class BoxAccumulator:
    """Accumulates MaxBoxAcc / MaxBoxAccV2 over images (wsolevaluation's BoxEvaluator, both versions).

    Args:
        thresholds: score-map thresholds (see :func:`thresholds_for`).
        iou_thresholds: deltas in percent for V2 (default 30, 50, 70).
    """

    def __init__(self, thresholds: Sequence[float], iou_thresholds: Sequence[int] = (30, 50, 70)) -> None:
        self.thresholds = np.asarray(thresholds, dtype=np.float64)
        self.deltas = tuple(int(d) for d in iou_thresholds)
        self.correct_v2 = np.zeros((len(self.deltas), len(self.thresholds)), dtype=np.int64)
        self.correct_v1 = np.zeros(len(self.thresholds), dtype=np.int64)
        self.count = 0
        self.last_boxes: list[np.ndarray] = []  # V2 boxes per threshold of the last image (pictures)

    def add(self, score_map: np.ndarray, gt_boxes: np.ndarray, name: str = "image") -> None:
        """One image: ``score_map`` (H, W) any range; ``gt_boxes`` (K, 4) inclusive, in the map frame."""
        norm = normalize_map(score_map, name)
        gt = check_boxes(gt_boxes, norm.shape, name)
        found = contour_boxes(norm, self.thresholds)  # V1 and V2 share the contours
        multi = [b for b, _ in found]
        single = [b[i:i + 1] for b, i in found]
        best_v2 = np.array([iou_inclusive(b, gt).max() for b in multi])  # (T,)
        best_v1 = iou_inclusive(np.concatenate(single), gt).max(1)  # (T,)
        self.correct_v2 += best_v2[None] >= np.array(self.deltas)[:, None] / 100.0
        self.correct_v1 += best_v1 >= 0.5
        self.count += 1
        self.last_boxes = multi

    def compute(self) -> dict:
        """Percentages: MaxBoxAccV2, MaxBoxAccV2_IoU<d>, its best threshold, MaxBoxAcc (V1) and its threshold."""
        if self.count == 0:
            raise ValueError("no image was scored: the evaluation set is empty")
        acc_v2 = 100.0 * self.correct_v2 / self.count  # (D, T)
        acc_v1 = 100.0 * self.correct_v1 / self.count
        out: dict = {}
        for i, d in enumerate(self.deltas):
            out[f"MaxBoxAccV2_IoU{d}"] = float(acc_v2[i].max())
            out[f"best_threshold_IoU{d}"] = float(self.thresholds[int(acc_v2[i].argmax())])
        out["MaxBoxAccV2"] = float(np.mean([out[f"MaxBoxAccV2_IoU{d}"] for d in self.deltas]))
        out["MaxBoxAcc"] = float(acc_v1.max())
        out["best_threshold_V1"] = float(self.thresholds[int(acc_v1.argmax())])
        out["num_images"] = self.count
        return out


class PxAPAccumulator:
    """Pixel average precision (area under the pixel precision-recall curve), wsolevaluation's MaskEvaluator.

    Scores are binned at ``thresholds`` (+ edges 1, 2, 3); mask pixels == 1 are positives, 0
    negatives, anything else (255: "ignore") is excluded.
    """

    def __init__(self, thresholds: Sequence[float]) -> None:
        self.edges = np.append(np.asarray(thresholds, dtype=np.float64), [1.0, 2.0, 3.0])
        self.pos_hist = np.zeros(len(self.edges) - 1)
        self.neg_hist = np.zeros(len(self.edges) - 1)

    def add(self, score_map: np.ndarray, mask: np.ndarray, name: str = "image") -> None:
        """``score_map`` (H, W) any range; ``mask`` (H, W) uint8 with 1 = object, 0 = background, 255 = ignore."""
        from downstream.localization.masks import check_mask_values

        norm = normalize_map(score_map, name)
        mask = check_mask_values(mask, name)
        if mask.shape != norm.shape:
            raise ValueError(f"{name}: mask shape {mask.shape} differs from the map shape {norm.shape}")
        self.pos_hist += np.histogram(norm[mask == 1], bins=self.edges)[0]
        self.neg_hist += np.histogram(norm[mask == 0], bins=self.edges)[0]

    def compute(self) -> float:
        """PxAP in percent."""
        tp = self.pos_hist[::-1].cumsum()
        fp = self.neg_hist[::-1].cumsum()
        fn = self.pos_hist.sum() - tp
        if self.pos_hist.sum() <= 0:
            raise ValueError("no positive mask pixel in the evaluation set: PxAP is undefined")
        predicted = tp + fp
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = tp / predicted
            recall = tp / (tp + fn)
        keep = predicted[1:] != 0
        return float(100.0 * (precision[1:] * np.diff(recall))[keep].sum())


def corloc(pred_boxes: Sequence[np.ndarray], gt_boxes: Sequence[np.ndarray], threshold: float = 0.5) -> float:
    """CorLoc in percent: share of images whose single predicted box has continuous IoU >= 0.5 with a GT box.

    Args:
        pred_boxes: one (4,) box per image.
        gt_boxes: one (K, 4) array per image.
    """
    if len(pred_boxes) != len(gt_boxes):
        raise ValueError(f"{len(pred_boxes)} predicted boxes for {len(gt_boxes)} images")
    if not pred_boxes:
        raise ValueError("no image to score")
    hits = [iou_continuous(p, g).max() >= threshold for p, g in zip(pred_boxes, gt_boxes)]
    return 100.0 * float(np.mean(hits))
