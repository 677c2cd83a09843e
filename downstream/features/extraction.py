"""Features of a labelled evaluation set: the backbone, the evaluation loader and :func:`pretrain.features.extract`.

Any checkpoint :func:`pretrain.models.load_pretrained` accepts works (see
:mod:`downstream.backbone`); feature kinds are :data:`pretrain.features.KINDS`. Unreadable image
files are skipped, not replaced: the rows and labels are exactly the readable images, and the
result lists the skipped files (their paths are logged).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from downstream.backbone import ModelSpec, build_backbone, input_size
from downstream.eval_data import DataSpec, build_eval_loader_for, skipped_files
from pretrain.distributed import select_device
from pretrain.features import extract

log = logging.getLogger(__name__)


class Extracted(NamedTuple):
    """Features of one labelled set: ({kind: float32 (N, D)}, labels int64 (N,), unreadable files skipped)."""

    features: dict[str, np.ndarray]
    labels: np.ndarray
    skipped: list[str]


def extract_dataset(checkpoint: str, model_spec: ModelSpec, data: DataSpec, kinds: Sequence[str],
                    role: str, device: str = "auto", amp: str = "auto", progress: bool = True) -> Extracted:
    """Build the backbone and the evaluation loader for ``role`` (train/test) and extract features.

    Unreadable image files are left out (rows and labels are exactly the readable images) and
    listed in the result's ``skipped``.
    """
    dev = select_device(device)
    model = build_backbone(checkpoint, model_spec, data.image_size)
    loader = build_eval_loader_for(data, role, input_size(model, data.image_size), pin_memory=dev.type == "cuda")
    feats, labels = extract(model, loader, kinds, dev, amp, data.mean, data.std, progress, desc=f"{role} features")
    skipped = skipped_files(loader)
    if skipped:
        log.warning("%s data: %d unreadable file(s) skipped, %d images used (e.g. %s)", role, len(skipped),
                    len(labels), skipped[:3])
    return Extracted(feats, labels, skipped)
