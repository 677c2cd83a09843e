"""Scene equalisation of the training set (MS-Transformer's ``equalize_scenes``, Cambridge configs).

MS-Transformer (Shavit et al., ICCV 2021; ``datasets/CameraPoseDataset.py``) makes an epoch as long
as ``max_s n_s * S`` frames for S scenes of n_s training frames: every frame once, plus
``max_s n_s * S - sum_s n_s`` extra draws, each picking a scene s with probability
``(max n - n_s) / (number of extra draws)`` and then a frame of that scene uniformly. Small
scenes are seen about as often as the largest one. Here the draws come from an explicit
generator (one epoch's order depends on the seed and the epoch only, so resuming is exact).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler


def extra_draw_probabilities(counts: np.ndarray) -> np.ndarray:
    """(S,) scene probabilities of one extra draw: gap to the largest scene / total gap (zeros if none)."""
    counts = np.asarray(counts, dtype=np.float64)
    gap = counts.max() - counts
    return gap / gap.sum() if gap.sum() > 0 else np.zeros_like(gap)


def equalized_indices(scene: np.ndarray, gen: torch.Generator) -> np.ndarray:
    """Frame indices of one equalised epoch, before shuffling.

    Args:
        scene: (M,) scene id of every training frame.
        gen: Random draws of the extra frames.

    Returns:
        (max_s n_s * S,) indices: 0..M-1, then the extra draws.
    """
    scene = np.asarray(scene)
    ids = np.unique(scene)
    members = [np.flatnonzero(scene == s) for s in ids]
    counts = np.array([len(m) for m in members])
    n_extra = int(counts.max()) * len(ids) - len(scene)
    if len(ids) < 2 or n_extra == 0:
        return np.arange(len(scene))
    p = torch.from_numpy(extra_draw_probabilities(counts))
    which = torch.multinomial(p, n_extra, replacement=True, generator=gen).numpy()
    pick = torch.rand(n_extra, generator=gen, dtype=torch.float64).numpy()
    extra = np.array([members[s][min(int(u * counts[s]), counts[s] - 1)] for s, u in zip(which, pick)])
    return np.concatenate([np.arange(len(scene)), extra])


class EqualizedSampler(Sampler[int]):
    """Shuffled equalised epochs (see :func:`equalized_indices`); reseed ``gen`` per epoch for exact resumes."""

    def __init__(self, scene: np.ndarray, gen: torch.Generator) -> None:
        self.scene, self.gen = np.asarray(scene), gen
        counts = np.unique(self.scene, return_counts=True)[1]
        self.length = int(counts.max()) * len(counts)

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[int]:
        idx = equalized_indices(self.scene, self.gen)
        return iter(idx[torch.randperm(len(idx), generator=self.gen).numpy()].tolist())
