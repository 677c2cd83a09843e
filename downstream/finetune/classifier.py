"""A ViT with a linear classification head, built from one of our checkpoints or at random.

Pooling of the head (``head.pool``): ``pooled`` (the backbone's own pooled vector: [CLS], GAP or
SimPool, whatever it was pretrained with), ``cls`` (the normed [CLS] token; iBOT's ``--use_cls``) or
``avg`` (the mean of the normed patch tokens; BEiT's default mean pooling, which adds an extra
``fc_norm`` LayerNorm that we leave out). The head is initialised as BEiT's: truncated normal
(std 0.02) times ``init_scale`` (0.001), bias 0.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from pretrain.models import VisionTransformer, create_model, create_model_from_checkpoint

log = logging.getLogger(__name__)

POOLS = ("pooled", "cls", "avg")


class Classifier(nn.Module):
    """``backbone`` -> pooled (B, D) -> ``head`` -> logits (B, num_classes)."""

    def __init__(self, backbone: VisionTransformer, num_classes: int, pool: str = "pooled",
                 init_scale: float = 0.001) -> None:
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"pool {pool!r}: choose one of {POOLS}")
        if pool == "cls" and backbone.num_cls == 0:
            raise ValueError("head.pool=cls needs a [CLS] token but this backbone pools with SimPool (no [CLS]); "
                             "use head.pool=pooled or avg")
        self.backbone, self.pool = backbone, pool
        self.head = nn.Linear(backbone.embed_dim, num_classes)
        nn.init.trunc_normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)
        with torch.no_grad():
            self.head.weight.mul_(init_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) normalised images -> (B, num_classes) logits."""
        feats = self.backbone.forward_features(x)
        if self.pool == "pooled":
            z = feats.pooled
        elif self.pool == "cls":
            z = feats.prefix_tokens[:, 0]
        else:
            z = feats.patch_tokens.mean(dim=1)
        return self.head(z)


def build_backbone(checkpoint: str, init: str, which: str, drop_path: float, name: str = "",
                   arch: dict | None = None) -> VisionTransformer:
    """The trainable backbone: a checkpoint's architecture and (``init=pretrained``) its weights.

    ``init=random`` with a checkpoint rebuilds the same architecture with fresh weights (the
    baseline at equal architecture); without a checkpoint ``name`` (a registry name) is built with
    the keyword arguments ``arch`` (``img_size``, ``patch_size``, ``pooling`` ...). Drop path is set to ``drop_path`` (stochastic depth, linear over the blocks).

    Raises:
        ValueError: Neither a checkpoint nor a model name, or a checkpoint of which nothing loaded.
    """
    if checkpoint:
        loaded, report = create_model_from_checkpoint(checkpoint, which=which)
        if report.loaded == 0:
            raise ValueError(f"no tensor of {checkpoint} matched its recorded model")
        kwargs = {**loaded.model_kwargs, "drop_path_rate": drop_path}
        model = create_model(loaded.model_name, **kwargs)
        if init == "pretrained":
            model.load_state_dict(loaded.state_dict())
            log.info("fine-tuning %s from %s (%s, %d tensors)", loaded.model_name, checkpoint, which, report.loaded)
        else:
            log.info("model.init=random: %s with the architecture of %s, fresh weights", loaded.model_name, checkpoint)
        return model
    if not name:
        raise ValueError("give --checkpoint CKPT (our checkpoint records its model) or model.name=vit_small etc. "
                         "for a randomly initialised model")
    if init == "pretrained":
        log.warning("no checkpoint given: training a randomly initialised %s", name)
    return create_model(name, **{**(arch or {}), "drop_path_rate": drop_path})
