"""The frozen backbone an evaluator runs: from our checkpoint, a foreign checkpoint, or raw pixels.

The architecture options are the pretraining ones: :class:`ModelSpec` subclasses
:class:`pretrain.config.ModelConfig`, so every backbone option added there (and accepted by the
backbone constructor) reaches ``model.<option>=...`` of every evaluator without an edit here.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from pretrain.config import ModelConfig
from pretrain.configuration import choice
from pretrain.models import (
    VisionTransformer,
    create_model,
    create_model_from_checkpoint,
    load_pretrained,
)

log = logging.getLogger(__name__)

# Training-only fields of ModelConfig: not architecture, or meaningless for a frozen backbone.
_TRAINING_ONLY_FIELDS = ("name", "which", "drop_path_rate")
_SIZES = ("embed_dim", "depth", "num_heads")  # 0 = the registry entry's value


@dataclass
class ModelSpec(ModelConfig):
    """Backbone to evaluate: the pretraining model options plus ``which``.

    ``name`` empty: rebuild the model recorded in our checkpoint (the other fields are ignored);
    ``pixels``: raw pixels, the k-NN baseline; otherwise a registry name (``vit_small`` ...) for
    random weights, timm or DINO / iBOT checkpoints, built with the fields below.
    """

    name: str = ""
    which: str = choice("teacher", "student")  # checkpoints holding both


class RawPixels(nn.Module):
    """A 'backbone' whose features are the image pixels scaled to 0..1: the k-NN baseline."""

    takes_uint8 = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float().flatten(1) / 255.0


def input_size(model: nn.Module, requested: int) -> int:
    """The evaluation image side: ``requested`` if > 0, else the model's own input size (224 for pixels)."""
    if requested > 0:
        return requested
    return int(getattr(model, "img_hw", (224, 224))[0])


def model_kwargs(spec: ModelConfig, image_size: int = 0) -> dict[str, Any]:
    """``create_model`` keyword arguments of a frozen backbone described by ``spec``.

    Every :class:`ModelConfig` field is passed on by name, except the training-only ones (name,
    drop path) and sizes left at 0. A field the backbone constructor does not take yet is left
    out while it has its default, and is an error otherwise (it would be silently ignored).

    Raises:
        ValueError: A non-default option the backbone does not accept.
    """
    accepted = set(inspect.signature(VisionTransformer.__init__).parameters)
    defaults = ModelConfig()
    kwargs: dict[str, Any] = {"img_size": image_size or 224}
    for f in dataclasses.fields(ModelConfig):
        value = getattr(spec, f.name)
        if f.name in _TRAINING_ONLY_FIELDS or (f.name in _SIZES and value <= 0):
            continue
        if f.name not in accepted:
            if value != getattr(defaults, f.name):
                raise ValueError(f"model.{f.name}={value!r} is not supported by the backbone yet; "
                                 f"leave it at {getattr(defaults, f.name)!r}")
            continue
        kwargs[f.name] = value
    return kwargs


def build_backbone(checkpoint: str, spec: ModelSpec, image_size: int = 0) -> nn.Module:
    """The frozen backbone in eval mode, with the checkpoint's weights.

    Args:
        checkpoint: Weights file ("" = random initialisation, with a warning).
        spec: Architecture (ignored for our checkpoints when ``spec.name`` is empty).
        image_size: Input size of a model built from ``spec`` (0 = 224).

    Raises:
        ValueError: No model name for a checkpoint without architecture, or nothing loaded.
    """
    if spec.name == "pixels":
        return RawPixels().eval()
    if not spec.name:
        if not checkpoint:
            raise ValueError("give checkpoint=<file> (our checkpoint records its model), or model.name=vit_small "
                             "etc. for random weights / timm / DINO checkpoints, or model.name=pixels")
        try:
            model, report = create_model_from_checkpoint(checkpoint, which=spec.which)
        except ValueError as exc:  # CheckpointError: no architecture recorded
            raise ValueError(f"{exc}\nSet model.name (e.g. vit_small), model.patch_size, model.pooling ... for "
                             "this checkpoint") from None
    else:
        model = create_model(spec.name, **model_kwargs(spec, image_size))
        report = load_pretrained(model, checkpoint, which=spec.which) if checkpoint else None
        if report is None:
            log.warning("no checkpoint given: evaluating a randomly initialised %s", spec.name)
    if report is not None and (report.loaded == 0 or report.mismatched):
        raise ValueError(architecture_mismatch(checkpoint, model, report))
    return model.eval().requires_grad_(False)


# the fields of a built ViT that decide its tensors' shapes: (config key, attribute)
_ARCHITECTURE = (("patch_size", "patch_size"), ("embed_dim", "embed_dim"), ("depth", "depth"),
                 ("num_heads", "num_heads"), ("pooling", "pooling"), ("pos_embed", "pos_embed_type"),
                 ("key_variant", "key_variant"), ("num_registers", "num_registers"))


def architecture_mismatch(checkpoint: str, model: nn.Module, report: Any) -> str:
    """Why ``checkpoint`` does not fit ``model``: the architecture fields that differ from the model the
    checkpoint records (our checkpoints: its name and kwargs, resolved through the registry), the tensors
    of other shapes, and the fix.

    A frozen backbone with tensors left at their random initialisation would be evaluated silently,
    so any shape mismatch is refused (a position table is resampled, never a mismatch).
    """
    from pretrain.models.weights import read_checkpoint

    try:
        arch = read_checkpoint(checkpoint).get("model")
        with torch.device("meta"):  # the recorded model's sizes without allocating its weights
            recorded = create_model(arch["name"], **dict(arch.get("kwargs") or {}))
    except Exception:  # noqa: BLE001 - only for the message: a foreign file records no architecture
        arch = recorded = None
    if recorded is not None:
        differ = [f"model.{key}: checkpoint {getattr(recorded, attr)!r}, requested {getattr(model, attr)!r}"
                  for key, attr in _ARCHITECTURE if getattr(recorded, attr, None) != getattr(model, attr, None)]
        name = f"the checkpoint records {arch['name']!r}" + (f" and this model differs in {'; '.join(differ)}"
                                                               if differ else "")
        fix = "leave model.name empty to rebuild the recorded model, or set those keys to the recorded values"
    else:
        name = "the checkpoint records no architecture"
        fix = "set model.name / model.patch_size / model.pooling ... to the checkpoint's"
    shapes = "; ".join(f"{k}: checkpoint {tuple(a)}, model {tuple(b)}" for k, a, b in report.mismatched[:2])
    counts = (f"{len(report.mismatched)} tensors have other shapes (e.g. {shapes})" if report.mismatched
              else f"no tensor matched ({len(report.unexpected)} unused keys, e.g. {report.unexpected[:3]})")
    return f"{checkpoint} does not fit the requested model: {name}; {counts}. Fix: {fix}"
