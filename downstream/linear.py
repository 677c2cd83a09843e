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

Usage::

    python -m downstream.linear --checkpoint runs/x/checkpoint.pt train_data.root=... test_data.root=...
    python -m downstream.linear --train-features tr.npz --test-features te.npz --output linear.json
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from downstream.backbone import ModelSpec
from downstream.checks import NONFINITE
from downstream.eval_cli import parse_with_aliases, save_beside
from downstream.eval_data import DataSpec, skipped_files
from downstream.linear_data import prepare
from downstream.results import log_results, tensorboard_dir, write_json
from pretrain.distributed import select_device

log = logging.getLogger(__name__)

DEFAULT_LRS: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)


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


def train_heads(source, dims: dict[str, int], num_classes: int, lrs: Sequence[float], epochs: int,
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


# ----------------------------------------------------------------------------- command line


@dataclass
class LinearConfig:
    """Linear probe: from feature files, or from a checkpoint (cached or augmented mode)."""

    train_features: str = ""  # .npz/.pt from downstream.features (one variant, named "features")
    val_features: str = ""  # optional; default: hold out val_fraction of the training set
    test_features: str = ""
    checkpoint: str = ""
    model: ModelSpec = field(default_factory=ModelSpec)
    train_data: DataSpec = field(default_factory=DataSpec)
    val_data: DataSpec = field(default_factory=DataSpec)  # root empty: hold out val_fraction of train
    test_data: DataSpec = field(default_factory=DataSpec)
    mode: str = "cached"  # cached (encode once, fast) | augmented (re-crop every epoch, DINO's protocol)
    # empty: cls, cls_avg, cls4, cls4_avg for [CLS]-pooled models, else pooled, avg (SimPool / GAP)
    variants: list[str] = field(default_factory=list)
    lrs: list[float] = field(default_factory=lambda: list(DEFAULT_LRS))  # per 256 samples
    epochs: int = 100
    batch_size: int = 1024
    val_fraction: float = 0.1
    seed: int = 0
    nonfinite: str = "error"  # error | drop: feature rows with NaN / inf (dropped rows are counted)
    output: str = ""
    tensorboard: str = ""  # default <folder of output>/tensorboard
    device: str = "auto"
    amp: str = "auto"
    progress: bool = True


CONFIG = LinearConfig


def run(cfg: LinearConfig) -> dict:
    """Train the head grid, select on validation, report test accuracy; writes JSON / TensorBoard.

    Returns:
        ``{"best": {variant, lr, val_top1, val_top5, test_top1, test_top5}, "val_top1": {variant: {"lr=..":
        top1}}, "mode", "epochs", "train_loss": [per epoch]}``, plus ``"skipped": {set: unreadable
        images}`` when images were read, and ``"dropped_nonfinite": {set: rows}`` with ``nonfinite=drop``.
    """
    if cfg.mode not in ("cached", "augmented"):
        raise ValueError(f"mode must be 'cached' or 'augmented', got {cfg.mode!r}")
    if cfg.nonfinite not in NONFINITE:
        raise ValueError(f"nonfinite={cfg.nonfinite!r}: choose one of {', '.join(NONFINITE)}")
    device = select_device(cfg.device)
    data = prepare(cfg, device)
    heads, losses = train_heads(data.source, data.dims, data.num_classes, cfg.lrs, cfg.epochs, cfg.batch_size,
                                data.steps_per_epoch, device, cfg.seed, cfg.progress)
    val = head_accuracy(heads, *data.val)
    variant, h = select_best(val, cfg.lrs)
    test = head_accuracy(heads, *data.test)[variant][h]
    results = {
        "best": {"variant": variant, "lr": cfg.lrs[h], "val_top1": float(val[variant][h, 0]),
                 "val_top5": float(val[variant][h, 1]), "test_top1": float(test[0]), "test_top5": float(test[1])},
        "val_top1": {v: {f"lr={lr:g}": float(acc[i, 0]) for i, lr in enumerate(cfg.lrs)} for v, acc in val.items()},
        "mode": cfg.mode, "epochs": cfg.epochs, "train_loss": losses,
    }
    skipped, dropped = dict(data.skipped), dict(data.dropped_nonfinite)
    if data.augmented is not None:
        skipped["train"] = len(skipped_files(data.augmented.dataset))
        dropped["train"] = data.augmented.dropped
    if skipped:
        results["skipped"] = skipped
    if cfg.nonfinite == "drop":
        results["dropped_nonfinite"] = dropped
    if cfg.output:
        write_json(cfg.output, results)
        save_beside(cfg, cfg.output)
    log_results(tensorboard_dir(cfg.tensorboard, cfg.output), {k: results[k] for k in ("best", "val_top1")}, "linear")
    return results


ALIASES = {"--train-features": "train_features", "--val-features": "val_features", "--test-features": "test_features",
           "--output": "output", "--checkpoint": "checkpoint", "--mode": "mode", "--device": "device"}


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m downstream.linear --config FILE key=value ...``.

    Returns None (a console script passes the return value to sys.exit).
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = parse_with_aliases(LinearConfig, argv, ALIASES, __doc__)
    results = run(cfg)
    best = results["best"]
    print(f"best head: {best['variant']} lr={best['lr']:g}  val top1 {best['val_top1']:.2f}  "
          f"test top1 {best['test_top1']:.2f}  top5 {best['test_top5']:.2f}")


if __name__ == "__main__":
    main()
