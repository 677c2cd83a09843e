"""Linear probe on frozen features with a grid of learning rates trained in one pass.

DINO (Caron et al. 2021) trains one linear layer on the [CLS] tokens of the last 4 blocks
(ViT-S) or on [CLS] + average-pooled patch tokens (ViT-B); DINOv2 (Oquab et al. 2023) trains many
such heads at once, one per (feature variant, learning rate), and keeps the best on a
validation split. This module does the same: every batch is encoded once and feeds all heads;
the head with the best validation top-1 is reported with its test accuracy.

One SGD (momentum 0.9, no weight decay) steps all heads; head h's loss is scaled by its
learning rate lr_h and the optimiser runs at lr 1 x cosine(t). Without weight decay this is
exactly SGD at lr_h x cosine(t) for each head, but the heads of a variant share one batched
matmul. Learning rates are per 256 samples and scale with the batch size (DINO's rule).

Used by the linear-probe command (:mod:`downstream.linear.cli`) and the robustness evaluator;
:func:`fit_probe` is the one fit: train the grid, pick the head on a held-out split.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import torch
from torch import nn
from tqdm.auto import tqdm

DEFAULT_LRS: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)

Batch = tuple[dict[str, torch.Tensor], torch.Tensor]
# (batch_size, generator) -> one epoch of ({variant: (B, D_v)}, labels (B,)) batches
BatchSource = Callable[[int, torch.Generator], Iterator[Batch]]


class LinearHeads(nn.Module):
    """H linear classifiers on the same input: weight (H, C, D), bias (H, C); N(0, 0.01) init as DINO.

    Forward: x (B, D) -> logits (B, H, C).
    """

    def __init__(self, dim: int, num_classes: int, num_heads: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num_heads, num_classes, dim) * 0.01)
        self.bias = nn.Parameter(torch.zeros(num_heads, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, c, d = self.weight.shape
        # One (B, D) x (D, H*C) matmul for all heads.
        return (x @ self.weight.reshape(h * c, d).T + self.bias.reshape(-1)).view(-1, h, c)


def train_heads(source: BatchSource, dims: dict[str, int], num_classes: int, lrs: Sequence[float], epochs: int,
                batch_size: int, steps_per_epoch: int, device: torch.device | str = "cpu", seed: int = 0,
                progress: bool = False) -> tuple[nn.ModuleDict, list[float]]:
    """Train one :class:`LinearHeads` per feature variant, one head per learning rate.

    Args:
        source: Callable ``(batch_size, generator) -> iterator of ({variant: (B, D_v)}, labels (B,))``,
            one call per epoch.
        dims: Feature width per variant.
        num_classes: C.
        lrs: Base learning rates (per 256 samples).
        epochs: Passes over the data.
        batch_size: Samples per step (also the lr scaling factor / 256).
        steps_per_epoch: Batches per epoch (for the cosine schedule).
        device: Where the heads live.
        seed: Seeds the head initialisation and the shuffling.
        progress: tqdm bar over epochs.

    Returns:
        (heads, per epoch the mean training loss of the head that trained best that epoch).
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    heads = nn.ModuleDict({v: LinearHeads(d, num_classes, len(lrs)) for v, d in dims.items()}).to(device)
    scale = torch.tensor([lr * batch_size / 256 for lr in lrs], device=device)
    optimizer = torch.optim.SGD(heads.parameters(), lr=1.0, momentum=0.9, weight_decay=0.0)
    total, step, losses = max(1, epochs * steps_per_epoch), 0, []
    for _ in tqdm(range(epochs), desc="linear probe", unit="epoch", disable=not progress, leave=False):
        running, batches = torch.zeros(len(heads), len(lrs), device=device), 0
        for feats, labels in source(batch_size, generator):
            for group in optimizer.param_groups:
                group["lr"] = 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
            labels = labels.to(device)
            loss = torch.zeros((), device=device)
            for v, (variant, module) in enumerate(heads.items()):
                logits = module(feats[variant].to(device))  # (B, H, C)
                per_head = nn.functional.cross_entropy(logits.transpose(1, 2), labels[:, None].expand(-1, len(lrs)),
                                                       reduction="none").mean(0)  # (H,)
                loss = loss + (per_head * scale).sum()
                running[v] += per_head.detach()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step, batches = step + 1, batches + 1
        # A diverged head (too large a rate) has a NaN / inf loss: it must not hide the good ones.
        losses.append(float(running.nan_to_num(nan=math.inf).min()) / max(1, batches))
    return heads, losses


@torch.no_grad()
def head_accuracy(heads: nn.ModuleDict, features: dict[str, torch.Tensor], labels: torch.Tensor,
                  batch_size: int = 4096) -> dict[str, torch.Tensor]:
    """Top-1 and top-5 accuracy (percent) of every head: {variant: (H, 2)}."""
    out = {}
    for variant, module in heads.items():
        device = module.weight.device
        hits = torch.zeros(module.weight.shape[0], 2, device=device)
        for start in range(0, labels.shape[0], batch_size):
            x = features[variant][start:start + batch_size].to(device)
            y = labels[start:start + batch_size].to(device)
            logits = module(x)  # (B, H, C)
            top = logits.topk(min(5, logits.shape[-1]), dim=-1).indices  # (B, H, 5)
            correct = top == y[:, None, None]
            hits[:, 0] += correct[..., 0].sum(0)
            hits[:, 1] += correct.any(-1).sum(0)
        out[variant] = (100.0 * hits / max(1, labels.shape[0])).cpu()
    return out


def select_best(val_acc: dict[str, torch.Tensor], lrs: Sequence[float]) -> tuple[str, int]:
    """(variant, head index) with the best validation top-1 (first one on ties)."""
    best = max(((v, h) for v in val_acc for h in range(len(lrs))), key=lambda vh: float(val_acc[vh[0]][vh[1], 0]))
    return best


def cached_batches(features: dict[str, torch.Tensor], labels: torch.Tensor, batch_size: int,
                   generator: torch.Generator) -> Iterator[Batch]:
    """One shuffled epoch over cached features: ({variant: (B, D_v)}, labels (B,))."""
    order = torch.randperm(labels.shape[0], generator=generator)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        yield {k: v[idx] for k, v in features.items()}, labels[idx]


class ProbeFit(NamedTuple):
    """A trained head grid and the head chosen on the held-out split.

    ``val`` holds every head's held-out (top-1, top-5) in percent, {variant: (H, 2)}; ``losses``
    the per-epoch training loss of :func:`train_heads`.
    """

    heads: nn.ModuleDict
    variant: str
    index: int
    val: dict[str, torch.Tensor]
    losses: list[float]

    @property
    def head(self) -> LinearHeads:
        """The chosen variant's heads; ``fit.head(x)[:, fit.index]`` are the chosen head's logits (B, C)."""
        return self.heads[self.variant]  # type: ignore[return-value]


def fit_probe(source: BatchSource, dims: dict[str, int], num_classes: int, steps_per_epoch: int,
              val_features: dict[str, torch.Tensor], val_labels: torch.Tensor, lrs: Sequence[float],
              epochs: int, batch_size: int, device: torch.device | str = "cpu", seed: int = 0,
              progress: bool = False) -> ProbeFit:
    """The linear-probe fit: a head per (variant, learning rate), the best chosen on held-out features.

    Args:
        source: One epoch of training batches per call (:data:`BatchSource`).
        dims: Feature width per variant.
        num_classes: C.
        steps_per_epoch: Batches per epoch (the cosine schedule's length).
        val_features: Held-out features {variant: (N_val, D_v)}.
        val_labels: Held-out labels (N_val,).
        lrs: Base learning rates per 256 samples (:data:`DEFAULT_LRS`).
        epochs: Passes over the training data.
        batch_size: Samples per step.
        device: Where the heads train.
        seed: Seeds the heads' initialisation and the shuffling.
        progress: tqdm bar over epochs.

    Returns:
        The heads, the chosen (variant, head index) (first on ties), every head's held-out accuracy
        and the training losses.
    """
    heads, losses = train_heads(source, dims, num_classes, lrs, epochs, batch_size, steps_per_epoch, device, seed,
                                progress)
    val = head_accuracy(heads, val_features, val_labels)
    variant, index = select_best(val, lrs)
    return ProbeFit(heads, variant, index, val, losses)


def fit_cached_probe(train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor],
                     num_classes: int, lrs: Sequence[float] = DEFAULT_LRS, epochs: int = 100,
                     batch_size: int = 256, device: torch.device | str = "cpu", seed: int = 0,
                     progress: bool = False) -> ProbeFit:
    """:func:`fit_probe` on one cached feature matrix (variant ``"features"``).

    Args:
        train: (features (N, D), labels (N,)) to train on, shuffled each epoch.
        val: (features (M, D), labels (M,)) that choose the learning rate.
        num_classes: C.
        lrs, epochs, batch_size, device, seed, progress: As in :func:`fit_probe`.
    """
    x, y = train
    source = lambda bs, g: cached_batches({"features": x}, y, bs, g)  # noqa: E731
    return fit_probe(source, {"features": x.shape[1]}, num_classes, -(-len(y) // batch_size), {"features": val[0]},
                     val[1], lrs, epochs, batch_size, device, seed, progress)
