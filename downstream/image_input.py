"""The part of every evaluator's ``data`` section that says how images reach the backbone.

One schema for all of them (k-NN / linear probe / features :class:`downstream.eval_data.DataSpec`,
localization, background robustness, pose): the same key names with the same meaning, so
``data.image_size=112 data.num_workers=0`` means one thing in every evaluator. Each evaluator's data
class extends it (and may change a default: ``image_size`` 0 in ``DataSpec`` is the model's own size).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pretrain.data.transforms import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["ImageInput"]


@dataclass
class ImageInput:
    """``image_size``: input side in pixels; ``num_workers``: loader processes (0: in the main process);
    ``mean`` / ``std``: per-channel normalisation of [0, 1] RGB (ImageNet's by default)."""

    image_size: int = 224
    num_workers: int = 2
    mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))
