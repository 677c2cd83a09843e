"""Turns a :class:`PretrainConfig` into the typed objects training needs.

This is the one place that reads the config for model, loss, masking and optimiser
construction; everything it builds takes plain arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict

import numpy as np
import torch
from torch import nn

from pretrain.config import ConfigError, PretrainConfig
from pretrain.losses import DINOLoss, iBOTPatchLoss
from pretrain.masking import build_masker
from pretrain.models import DINOHead, create_model
from pretrain.models.teacher_student import MultiCropNetwork
from pretrain.optim import build_optimizer, cosine_schedule, param_groups, teacher_temp_schedule

METHODS = ("ibot", "dino")


def backbone_kwargs(cfg: PretrainConfig, drop_path: float) -> Dict[str, Any]:
    """``create_model`` keyword arguments for the configured backbone."""
    m = cfg.model
    extra: list = []
    if m.key_variant != "standard" and cfg.data.n_local > 0:
        extra = [cfg.data.local_size]  # the token-mixing conv needs every token count up front
    sizes = {k: getattr(m, k) for k in ("embed_dim", "depth", "num_heads") if getattr(m, k) > 0}
    return dict(
        **sizes, patch_size=m.patch_size, img_size=cfg.data.global_size, pooling=m.pooling,
        pos_embed=m.pos_embed, key_variant=m.key_variant, num_charts=m.num_charts,
        num_registers=m.num_registers, drop_path_rate=drop_path, simpool_gamma=m.simpool_gamma,
        extra_img_sizes=extra, masked_im_modeling=cfg.loss.method == "ibot",
    )


def validate(cfg: PretrainConfig) -> None:
    """Cross-field checks that a dataclass type cannot express."""
    if cfg.loss.method not in METHODS:
        raise ConfigError(f"loss.method={cfg.loss.method!r}: choose one of {METHODS}")
    if cfg.loss.method == "dino" and cfg.mask.strategy != "none":
        raise ConfigError("loss.method=dino has no masked-token loss: set mask.strategy=none "
                          "(or use loss.method=ibot)")
    for name, size in (("data.global_size", cfg.data.global_size), ("data.local_size", cfg.data.local_size)):
        if size % cfg.model.patch_size:
            raise ConfigError(f"{name}={size} is not a multiple of model.patch_size={cfg.model.patch_size}")


def build_network(cfg: PretrainConfig, student: bool) -> MultiCropNetwork:
    """Student (with drop path) or teacher (without) backbone plus heads."""
    drop = cfg.model.drop_path_rate if student else 0.0
    backbone = create_model(cfg.model.name, **backbone_kwargs(cfg, drop))
    h = cfg.head
    head = DINOHead(backbone.embed_dim, h.out_dim, hidden_dim=h.hidden_dim,
                    bottleneck_dim=h.bottleneck_dim, nlayers=h.nlayers,
                    norm_last_layer=h.norm_last_layer)
    ibot = cfg.loss.method == "ibot"
    patch_head = None
    if ibot and (not h.shared_head or h.patch_out_dim != h.out_dim):
        patch_head = DINOHead(backbone.embed_dim, h.patch_out_dim, hidden_dim=h.hidden_dim,
                              bottleneck_dim=h.bottleneck_dim, nlayers=h.nlayers,
                              norm_last_layer=h.norm_last_layer)
    return MultiCropNetwork(backbone, head, patch_head, with_patch=ibot)


def build_losses(cfg: PretrainConfig) -> nn.ModuleDict:
    """``{"cls": DINOLoss, "patch": iBOTPatchLoss}`` (no patch loss for DINO)."""
    losses = nn.ModuleDict({"cls": DINOLoss(cfg.head.out_dim, n_global=2, n_local=cfg.data.n_local,
                                            student_temp=cfg.loss.student_temp,
                                            center_momentum=cfg.loss.center_momentum)})
    if cfg.loss.method == "ibot":
        losses["patch"] = iBOTPatchLoss(cfg.head.patch_out_dim, student_temp=cfg.loss.student_temp,
                                        center_momentum=cfg.loss.center_momentum)
    return losses


def build_masker_from(cfg: PretrainConfig):
    m = cfg.mask
    return build_masker(m.strategy, prob=m.prob, ratio_range=(m.ratio_min, m.ratio_max),
                        show_max=m.show_max)


def build_optimizer_from(cfg: PretrainConfig, student: nn.Module,
                         total_batch: int) -> torch.optim.Optimizer:
    """AdamW with the linearly scaled learning rate (lr x total batch / 256)."""
    return build_optimizer(param_groups(student, cfg.optim.weight_decay),
                           cfg.optim.lr * total_batch / 256.0)


@dataclass
class Schedules:
    """Per-step values (host arrays: reading them never syncs the device)."""

    lr: np.ndarray
    wd: np.ndarray
    momentum: np.ndarray
    teacher_temp: np.ndarray

    def at(self, step: int) -> Dict[str, float]:
        i = min(step, len(self.lr) - 1)
        return {"lr": float(self.lr[i]), "wd": float(self.wd[i]),
                "momentum": float(self.momentum[i]), "teacher_temp": float(self.teacher_temp[i])}


def build_schedules(cfg: PretrainConfig, steps_per_epoch: int, total_batch: int) -> Schedules:
    o, lc = cfg.optim, cfg.loss
    total = o.epochs * steps_per_epoch
    return Schedules(
        lr=cosine_schedule(o.lr * total_batch / 256.0, o.min_lr, total,
                           warmup_steps=o.warmup_epochs * steps_per_epoch),
        wd=cosine_schedule(o.weight_decay, o.weight_decay_end, total),
        momentum=cosine_schedule(o.momentum_teacher, 1.0, total),
        teacher_temp=teacher_temp_schedule(lc.warmup_teacher_temp, lc.teacher_temp,
                                           lc.warmup_teacher_temp_epochs * steps_per_epoch, total),
    )
