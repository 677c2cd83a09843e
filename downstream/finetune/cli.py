"""``python -m downstream.finetune --checkpoint CKPT ...``: full fine-tuning for classification.

Usage::

    python -m downstream.finetune --checkpoint runs/x/checkpoints/step_00001000.pt \
        data.dataset=fashion_mnist data.root=data/fashion-mnist data.train_split=train_fit \
        data.val_split=train_holdout data.test_split=test optim.epochs=10 --output ft.json

Recipe (defaults): BEiT / iBOT ``run_class_finetuning.py`` - AdamW, layer-wise lr decay, drop path
0.1, RandAugment, mixup 0.8 / CutMix 1.0, label smoothing 0.1, random erasing 0.25, warm-up + cosine
per step; see docs/finetune_segmentation.md for the reference values per model size and where they
differ. ``model.init=random`` (or no checkpoint and ``model.name=...``) trains the same architecture
from random weights: the baseline. Re-running the same command resumes from ``run.output_dir``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from downstream.eval_cli import parse_with_aliases, save_beside
from downstream.finetune.classifier import Classifier, build_backbone
from downstream.finetune.data import EpochBatches, Plain, SeededItems, eval_transform, train_transform
from downstream.finetune.evaluate import accuracy
from downstream.finetune.layer_decay import layer_decay_groups
from downstream.finetune.loop import LoopSpec, fit
from downstream.finetune.mixup import MixupCutmix
from downstream.results import write_json
from pretrain.configuration import ConfigError, choice, register_check, save_config
from pretrain.data.datasets import FASHION_MNIST_SPLITS, build_dataset
from pretrain.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from pretrain.distributed import select_device
from pretrain.optim import build_optimizer, reference_cosine_schedule
from pretrain.preemption import run_resumable

log = logging.getLogger(__name__)

__all__ = ["CONFIG", "FinetuneConfig", "main", "run"]


@dataclass
class FtModelConfig:
    init: str = choice("pretrained", "random")  # random: the same architecture from random weights
    which: str = choice("teacher", "student")
    name: str = ""  # without a checkpoint: a registry name (vit_small ...), built with the two below
    patch_size: int = 16
    pooling: str = choice("cls", "gap", "simpool")
    drop_path_rate: float = 0.1


@dataclass
class FtHeadConfig:
    pool: str = choice("pooled", "cls", "avg")  # pooled: the backbone's own ([CLS] / GAP / SimPool)
    init_scale: float = 0.001


@dataclass
class FtDataConfig:
    dataset: str = choice("imagefolder", "fashion_mnist")
    root: str = ""
    train_split: str = "train"  # imagefolder: subfolder of root; fashion_mnist: train | train_fit
    val_split: str = "val"  # chosen on every epoch; fashion_mnist: train_holdout
    test_split: str = ""  # evaluated once at the end ("" = none); fashion_mnist: test
    image_size: int = 0  # 0: the model's input size
    batch_size: int = 128  # per step
    num_workers: int = 4
    mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))


@dataclass
class FtAugConfig:
    randaug_ops: int = 2
    randaug_magnitude: int = 9
    erase_p: float = 0.25
    mixup: float = 0.8
    cutmix: float = 1.0
    mix_prob: float = 1.0
    switch_prob: float = 0.5
    smoothing: float = 0.1


@dataclass
class FtOptimConfig:
    epochs: int = 100
    lr: float = 1e-3  # per 256 images, scaled linearly (= iBOT's unscaled 4e-3 at its batch of 1024)
    lr_scaling: str = choice("linear", "none")
    min_lr: float = 1e-6
    warmup_epochs: int = 20
    weight_decay: float = 0.05
    layer_decay: float = 0.65  # iBOT: 0.65 ViT-B/16, 0.75 ViT-S/16
    clip_grad: float = 0.0  # 0: none (the reference's default)


@dataclass
class FtRunConfig:
    output_dir: str = "runs/finetune"
    seed: int = 0
    device: str = choice("auto", "cpu", "cuda")
    max_steps: int = 0
    ckpt_every_steps: int = 500
    keep_last: int = 2
    log_every_steps: int = 20
    val_every_epochs: int = 1


@dataclass
class FinetuneConfig:
    checkpoint: str = ""
    model: FtModelConfig = field(default_factory=FtModelConfig)
    head: FtHeadConfig = field(default_factory=FtHeadConfig)
    data: FtDataConfig = field(default_factory=FtDataConfig)
    aug: FtAugConfig = field(default_factory=FtAugConfig)
    optim: FtOptimConfig = field(default_factory=FtOptimConfig)
    run: FtRunConfig = field(default_factory=FtRunConfig)
    output: str = ""  # results JSON (default <run.output_dir>/finetune.json)


CONFIG = FinetuneConfig


def check_finetune(cfg: FinetuneConfig) -> None:
    """Cross-field checks, before any data or weights are read."""
    d, o = cfg.data, cfg.optim
    if not cfg.checkpoint and not cfg.model.name:
        raise ConfigError("give --checkpoint CKPT, or model.name=vit_small etc. (random initialisation)")
    if not d.root:
        raise ConfigError("data.root is empty: point it at the image folder or the Fashion-MNIST IDX files")
    if d.dataset == "fashion_mnist":
        for key in ("train_split", "val_split", "test_split"):
            split = getattr(d, key)
            if split and split not in FASHION_MNIST_SPLITS:
                raise ConfigError(f"data.{key}={split!r} is not a Fashion-MNIST split: choose one of "
                                  f"{', '.join(FASHION_MNIST_SPLITS)}")
    for key, value in {"data.batch_size": d.batch_size, "optim.epochs": o.epochs, "optim.lr": o.lr,
                       "run.ckpt_every_steps": cfg.run.ckpt_every_steps,
                       "run.log_every_steps": cfg.run.log_every_steps}.items():
        if value <= 0:
            raise ConfigError(f"{key}={value} must be > 0")
    if not 0 <= o.warmup_epochs <= o.epochs:
        raise ConfigError(f"optim.warmup_epochs={o.warmup_epochs} must be in 0..optim.epochs={o.epochs}")
    if not 0 < o.layer_decay <= 1:
        raise ConfigError(f"optim.layer_decay={o.layer_decay} must be in (0, 1] (1: no decay)")
    a = cfg.aug
    for key, p in {"smoothing": a.smoothing, "erase_p": a.erase_p, "mix_prob": a.mix_prob,
                   "switch_prob": a.switch_prob}.items():
        if not 0 <= p <= 1:
            raise ConfigError(f"aug.{key}={p} must be in [0, 1]")


register_check(FinetuneConfig, check_finetune)


def _datasets(cfg: FinetuneConfig, size: int) -> tuple[SeededItems, dict[str, Plain]]:
    d, a = cfg.data, cfg.aug

    def load(split: str):  # imagefolder: root/<split>; fashion_mnist: a named split
        return build_dataset(d.dataset, d.root, split)

    train = SeededItems(load(d.train_split), train_transform(size, d.mean, d.std, a.randaug_magnitude,
                                                             a.randaug_ops, a.erase_p))
    evals = {role: Plain(load(split), eval_transform(size, d.mean, d.std))
             for role, split in (("val", d.val_split), ("test", d.test_split)) if split}
    return train, evals


def _backbone(cfg: FinetuneConfig):
    m = cfg.model
    return build_backbone(cfg.checkpoint, m.init, m.which, m.drop_path_rate, m.name,
                          {"img_size": cfg.data.image_size or 224, "patch_size": m.patch_size, "pooling": m.pooling})


def _loop_spec(cfg: FinetuneConfig, train_size: int) -> tuple[LoopSpec, float]:
    """The loop's lengths and per-step learning rates; the peak lr (after linear scaling)."""
    o, d = cfg.optim, cfg.data
    lr = o.lr * d.batch_size / 256 if o.lr_scaling == "linear" else o.lr
    steps = train_size // d.batch_size
    if steps == 0:
        raise ValueError(f"{train_size} training images give no full batch of data.batch_size={d.batch_size}")
    schedule = reference_cosine_schedule(lr, o.min_lr, o.epochs, steps, o.warmup_epochs)
    return LoopSpec(o.epochs, steps, schedule, cfg.run.seed, cfg.run.max_steps, o.clip_grad,
                    cfg.run.ckpt_every_steps, cfg.run.keep_last, cfg.run.log_every_steps), lr


def run(cfg: FinetuneConfig) -> dict:
    """Fine-tune, validate every ``run.val_every_epochs``, test once; returns (and writes) the results.

    Raises:
        Preempted: A stop was requested; the checkpoint is written and re-running resumes.
    """
    t0, out, d, a = time.time(), Path(cfg.run.output_dir), cfg.data, cfg.aug
    device = select_device(cfg.run.device)
    torch.manual_seed(cfg.run.seed)
    backbone = _backbone(cfg)
    train, evals = _datasets(cfg, d.image_size or int(backbone.img_hw[0]))
    num_classes = len(train.dataset.classes)
    model = Classifier(backbone, num_classes, cfg.head.pool, cfg.head.init_scale).to(device)
    save_config(cfg, out / "config.yaml")
    spec, lr = _loop_spec(cfg, len(train))
    groups = layer_decay_groups(model, len(backbone.blocks), cfg.optim.weight_decay, cfg.optim.layer_decay)
    optimizer = build_optimizer(groups, lr, fused=False)
    mix = MixupCutmix(num_classes, a.mixup, a.cutmix, a.mix_prob, a.switch_prob, a.smoothing)
    loaders = {role: DataLoader(ds, batch_size=d.batch_size, num_workers=d.num_workers) for role, ds in evals.items()}

    def batches(epoch: int, start: int) -> DataLoader:
        return DataLoader(train, batch_sampler=EpochBatches(len(train), d.batch_size, cfg.run.seed, epoch, start),
                          num_workers=d.num_workers)

    from torch.utils.tensorboard import SummaryWriter  # only here: it imports tensorboard

    history: list[dict] = []
    with SummaryWriter(str(out / "tensorboard")) as writer:
        def on_epoch_end(epoch: int) -> None:
            if "val" in loaders and (epoch + 1) % cfg.run.val_every_epochs == 0:
                history.append({"epoch": epoch + 1, **accuracy(model, loaders["val"], device)})
                writer.add_scalar("val/top1", history[-1]["top1"], (epoch + 1) * spec.steps_per_epoch)
                log.info("epoch %d: val top-1 %.2f%%", epoch + 1, history[-1]["top1"])

        step = fit(model, optimizer, batches, mix, spec, out, device, on_epoch_end, writer)
    results = _results(cfg, model, loaders, device, step, spec.steps_per_epoch, history)
    results.update(peak_lr=lr, time_s=round(time.time() - t0, 1))
    write_json(cfg.output or str(out / "finetune.json"), results)
    save_beside(cfg, cfg.output)
    return results


def _results(cfg: FinetuneConfig, model: Classifier, loaders: dict, device: torch.device, step: int,
             steps_per_epoch: int, history: list[dict]) -> dict:
    results = {"checkpoint": cfg.checkpoint, "init": cfg.model.init if cfg.checkpoint else "random",
               "pool": cfg.head.pool, "steps": step, "epochs": step / steps_per_epoch,
               "val_history": history}
    for role, loader in loaders.items():  # the test split once, with the final weights
        results[role] = accuracy(model, loader, device)
    torch.save(model.state_dict(), Path(cfg.run.output_dir) / "finetuned.pt")
    return results


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: ``config error:`` lines for bad settings; SIGTERM / SIGUSR2 checkpoint and stop."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = parse_with_aliases(FinetuneConfig, argv, {"--checkpoint": "checkpoint", "--output": "output"}, __doc__)
    run_resumable(run, cfg)


if __name__ == "__main__":
    main()
