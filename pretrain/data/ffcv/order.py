"""FFCV traversal order that follows `FFCVPretrainLoader`'s epoch, rank and resume position.

ffcv counts epochs itself and knows nothing about resuming mid-epoch; this order ignores ffcv's
epoch counter and returns the owner's `epoch_order()` (the torchvision path's order, minus the
batches already consumed), so skipped batches are never read nor decoded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ffcv.traversal_order.base import TraversalOrder


class EpochOrder(TraversalOrder):
    """Traversal order delegating to ``owner.epoch_order()``.

    Args:
        owner: Object with an ``epoch_order() -> np.ndarray`` method (uint64 dataset indices).
    """

    def __init__(self, owner: Any) -> None:  # no super().__init__: the ffcv loader does not exist yet
        self.owner = owner
        self.loader = None

    def __call__(self, loader: Any) -> EpochOrder:
        # ffcv.Loader "instantiates" a TraversalOrder instance by calling it with itself.
        self.loader = loader
        self.indices, self.seed, self.distributed, self.sampler = loader.indices, loader.seed, False, None
        return self

    def sample_order(self, epoch: int) -> Sequence[int]:
        del epoch  # ffcv's own counter; the owner's set_epoch decides
        return self.owner.epoch_order()
