"""KoLeo regulariser: spread the features of a batch uniformly over the sphere.

Sablayrolles et al., "Spreading vectors for similarity search", ICLR 2019 (the Kozachenko-Leonenko
differential-entropy estimator), used by DINOv2 (Oquab et al., TMLR 2024, section 4) on the
student's [CLS] vectors of each global crop with weight 0.1. Pushing each vector away from its
nearest neighbour in the batch makes nearest-neighbour retrieval (our k-NN evaluation) better
conditioned; it adds one (B, B) similarity matrix per crop.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def koleo_loss(x: Tensor, eps: float = 1e-8) -> Tensor:
    """``-mean_i log(min_{j != i} ||x_i - x_j|| + eps)`` on L2-normalised rows.

    Args:
        x: (B, D) features of one view (B >= 2).
        eps: added to each distance (DINOv2's 1e-8), so duplicates give a large finite loss.

    Returns:
        Scalar float32 loss.
    """
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"koleo_loss needs (B >= 2, D) features, got {tuple(x.shape)}")
    z = F.normalize(x.float(), dim=-1, eps=eps)
    with torch.no_grad():
        sim = z @ z.T
        sim.fill_diagonal_(-2.0)  # below any cosine: never one's own neighbour
        nearest = sim.argmax(1)
    dist = (z - z[nearest] + eps).norm(dim=-1)  # torch's pairwise_distance adds eps to the difference
    return -torch.log(dist + eps).mean()
