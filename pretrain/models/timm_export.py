"""Our ViT's weights in timm's ``VisionTransformer`` layout, and the keyword arguments to build it."""

from __future__ import annotations

import logging
from typing import Any

import torch

from pretrain.models.vit import VisionTransformer

__all__ = ["export_to_timm", "timm_kwargs"]

logger = logging.getLogger(__name__)


def timm_kwargs(model: VisionTransformer) -> dict[str, Any]:
    """Keyword arguments for ``timm.models.vision_transformer.VisionTransformer`` matching
    :func:`export_to_timm` (no classifier: ``num_classes=0``)."""
    return {
        "img_size": model.img_hw, "patch_size": model.patch_size, "in_chans": model.patch_embed.proj.in_channels,
        "embed_dim": model.embed_dim, "depth": model.depth, "num_heads": model.num_heads, "mlp_ratio": model.mlp_ratio,
        "qkv_bias": model.qkv_bias, "class_token": model.num_cls == 1, "reg_tokens": model.num_registers,
        "no_embed_class": False, "global_pool": "token" if model.pooling == "cls" else "avg", "fc_norm": False,
        "num_classes": 0,
    }


def export_to_timm(model: VisionTransformer) -> dict[str, torch.Tensor]:
    """State dict in timm ``VisionTransformer`` layout (build it with :func:`timm_kwargs`).

    Register tokens get zero rows in the position table (timm's layout with
    ``no_embed_class=False``), the mask token and SimPool (which timm lacks; timm would
    average-pool instead) are left out.

    Raises:
        ValueError: for manifold-key models (timm has no such attention).
    """
    if model.key_variant != "standard":
        raise ValueError(f"cannot export key_variant={model.key_variant!r}: timm has only standard attention")
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()
          if not k.startswith(("simpool.", "mask_token"))}
    if model.simpool is not None:
        logger.warning("export_to_timm: SimPool weights are not exported (timm has no SimPool)")
    pos = model.pos_embed.detach().clone()
    if model.num_registers and model.num_cls:
        pos = torch.cat([pos[:, :1], pos.new_zeros(1, model.num_registers, pos.shape[-1]), pos[:, 1:]], dim=1)
    sd["pos_embed"] = pos
    return sd
