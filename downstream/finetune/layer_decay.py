"""AdamW parameter groups with layer-wise learning-rate decay (BEiT, Bao et al., ICLR 2022).

Layer ids of a ViT with L blocks: patch embedding, position table, [CLS] / register / mask tokens
= 0; block i = i + 1; everything else (final norm, SimPool, the classifier) = L + 1. Layer l
trains at ``lr * decay ** (L + 1 - l)`` (BEiT / iBOT ``run_class_finetuning.py``: the values
``layer_decay ** (num_layers + 1 - i)``), so the head gets the full rate and the patch embedding the
smallest. Weight decay is off for biases, norms, 1-D parameters and the position table / tokens,
by the rule pretraining uses (:data:`pretrain.optim.NO_DECAY_NAME_PARTS`).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from pretrain.optim import NO_DECAY_NAME_PARTS

_EMBEDDING_PARTS = ("patch_embed", *NO_DECAY_NAME_PARTS)


def layer_id(name: str, num_blocks: int, prefix: str = "backbone.") -> int:
    """The layer id (0 .. num_blocks + 1) of parameter ``name`` of a classifier whose ViT is ``prefix``."""
    if name.startswith(prefix):
        inner = name[len(prefix):]
        if inner.startswith("blocks."):
            return int(inner.split(".")[1]) + 1
        if any(inner.startswith(part) for part in _EMBEDDING_PARTS):
            return 0
    return num_blocks + 1


def _no_decay(name: str, ndim: int) -> bool:
    return ndim <= 1 or name.endswith(".bias") or any(part in name for part in NO_DECAY_NAME_PARTS)


def layer_decay_groups(model: nn.Module, num_blocks: int, weight_decay: float, decay: float,
                       prefix: str = "backbone.") -> list[dict[str, Any]]:
    """Optimizer groups: one per (layer, decayed or not), each with ``lr_scale`` and ``apply_wd``.

    Args:
        model: The classifier (its backbone's parameters named ``prefix + ...``).
        num_blocks: L, the number of transformer blocks.
        weight_decay: Weight decay of the decayed groups.
        decay: Layer decay factor (1.0: every layer at the full rate).

    Returns:
        Param-group dicts with ``params``, ``weight_decay``, ``lr_scale``, ``layer`` and ``name``;
        frozen parameters are left out. :func:`set_lr_` multiplies ``lr_scale`` in.
    """
    groups: dict[str, dict[str, Any]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        layer = layer_id(name, num_blocks, prefix)
        no_decay = _no_decay(name, param.ndim)
        key = f"layer_{layer}_{'no_decay' if no_decay else 'decay'}"
        if key not in groups:
            groups[key] = {"name": key, "params": [], "layer": layer, "lr_scale": decay ** (num_blocks + 1 - layer),
                           "weight_decay": 0.0 if no_decay else weight_decay, "apply_wd": not no_decay}
        groups[key]["params"].append(param)
    return sorted(groups.values(), key=lambda g: (g["layer"], g["name"]))


def set_lr_(optimizer: Any, lr: float) -> None:
    """This step's learning rate times each group's ``lr_scale`` (1 where a group has none)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
