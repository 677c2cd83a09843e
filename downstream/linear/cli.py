"""Command line of the linear probe: its config, ``run`` and ``main``.

The probe itself (heads, training, choice on a held-out split) is :mod:`downstream.linear.probe`;
its feature batches :mod:`downstream.linear.data`.

Usage::


    python -m downstream.linear --checkpoint runs/x/checkpoint.pt train_data.root=... test_data.root=...
    python -m downstream.linear --train-features tr.npz --test-features te.npz --output linear.json
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from downstream.backbone import ModelSpec
from downstream.checks import NONFINITE
from downstream.eval_cli import parse_with_aliases, save_beside
from downstream.eval_data import DataSpec, skipped_files
from downstream.linear.data import prepare
from downstream.linear.probe import DEFAULT_LRS, fit_probe, head_accuracy
from downstream.results import log_results, tensorboard_dir, write_json
from downstream.settings import EvalSettings
from pretrain.configuration import ConfigError, choice, register_check
from pretrain.distributed import select_device
from pretrain.export.clean_exit import run_cleanly
from pretrain.features import KINDS

log = logging.getLogger(__name__)


@dataclass
class LinearConfig(EvalSettings):
    """Linear probe: from feature files, or from a checkpoint (cached or augmented mode)."""

    train_features: str = ""  # .npz/.pt from downstream.features (one variant, named "features")
    val_features: str = ""  # optional; default: hold out val_fraction of the training set
    test_features: str = ""
    checkpoint: str = ""
    model: ModelSpec = field(default_factory=ModelSpec)
    train_data: DataSpec = field(default_factory=DataSpec)
    val_data: DataSpec = field(default_factory=DataSpec)  # root empty: hold out val_fraction of train
    test_data: DataSpec = field(default_factory=DataSpec)
    mode: str = choice("cached", "augmented")  # cached (encode once, fast) | augmented (re-crop every epoch, DINO's protocol)
    # empty: cls, cls_avg, cls4, cls4_avg for [CLS]-pooled models, else pooled, avg (SimPool / GAP)
    variants: list[str] = field(default_factory=list)
    lrs: list[float] = field(default_factory=lambda: list(DEFAULT_LRS))  # per 256 samples
    epochs: int = 100
    batch_size: int = 1024
    val_fraction: float = 0.1
    seed: int = 0
    nonfinite: str = choice(*NONFINITE)  # error | drop: feature rows with NaN / inf (dropped rows are counted)


CONFIG = LinearConfig


def check_linear(cfg: LinearConfig) -> None:
    """Cross-field checks, run when the config is parsed (before any file is read)."""
    unknown = [v for v in cfg.variants if v not in KINDS]
    if unknown:
        raise ConfigError(f"variants: {unknown} unknown; choose from {', '.join(KINDS)}")
    if bool(cfg.train_features) != bool(cfg.test_features):
        raise ConfigError("give both --train-features and --test-features (or neither, with a checkpoint)")
    if cfg.mode == "augmented" and cfg.train_features:
        raise ConfigError("mode=augmented needs images: give checkpoint + train_data, not feature files")


register_check(LinearConfig, check_linear)


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
    fit = fit_probe(data.source, data.dims, data.num_classes, data.steps_per_epoch, *data.val, cfg.lrs, cfg.epochs,
                    cfg.batch_size, device, cfg.seed, cfg.progress)
    heads, losses, val, variant, h = fit.heads, fit.losses, fit.val, fit.variant, fit.index
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
    results = run_cleanly(lambda: run(cfg))  # bad files, labels or rows: one error line, exit status 2
    best = results["best"]
    print(f"best head: {best['variant']} lr={best['lr']:g}  val top1 {best['val_top1']:.2f}  "
          f"test top1 {best['test_top1']:.2f}  top5 {best['test_top5']:.2f}")


if __name__ == "__main__":
    main()
