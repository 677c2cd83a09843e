"""The backbone to export, from any checkpoint the evaluators load, through pretrain.models' loaders.

Our checkpoints record their architecture (:func:`~pretrain.models.create_model_from_checkpoint`);
DINO / iBOT / timm files do not, so the caller names it (``model.name=vit_small`` and further
``model.*`` keys, the fields of :class:`pretrain.config.ModelConfig`) and the weights go through
:func:`~pretrain.models.load_pretrained`. An export of a model whose tensors did not all load
would be random weights under a pretrained name, so that is an error here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pretrain.config import ModelConfig
from pretrain.models.registry import create_model
from pretrain.models.vit import VisionTransformer
from pretrain.models.weights import CheckpointError, create_model_from_checkpoint, load_pretrained

__all__ = ["ExportModel", "load_backbone", "records_architecture"]


@dataclass
class ExportModel(ModelConfig):
    """``model.*`` keys of the export: empty ``name`` = the architecture the checkpoint records."""

    name: str = ""
    img_size: int = 224  # input size of a model built from these keys (its position-table grid)


def records_architecture(ckpt: Any) -> bool:
    """True for our checkpoints (a ``"model": {"name", "kwargs"}`` entry)."""
    arch = ckpt.get("model") if isinstance(ckpt, Mapping) else None
    return isinstance(arch, Mapping) and "name" in arch


def _kwargs(spec: ExportModel) -> dict[str, Any]:
    """``create_model`` keyword arguments of ``spec`` (training-only drop path and 0 sizes left out)."""
    out = {f.name: getattr(spec, f.name) for f in dataclasses.fields(ExportModel)
           if f.name not in ("name", "drop_path_rate")}  # getattr: spec may be an OmegaConf view
    return {k: v for k, v in out.items() if not (k in ("embed_dim", "depth", "num_heads") and v <= 0)}


def load_backbone(path: str | Path, ckpt: Any, spec: ExportModel, which: str = "teacher") -> VisionTransformer:
    """The backbone of checkpoint ``path`` (already read as ``ckpt``), eval mode, no gradients.

    Raises:
        CheckpointError: a file recording no architecture and no ``spec.name`` (the message asks
            for ``model.*`` keys), or weights that do not all fit the named model.
    """
    if not spec.name:
        if not records_architecture(ckpt):
            raise CheckpointError(f"{path} records no architecture (not an attmask-ssl checkpoint): name it with "
                                  "model.* keys, e.g. model.name=vit_small model.patch_size=16 (model.pooling=..., "
                                  "see --help-config)")
        model, report = create_model_from_checkpoint(path, which)
    else:
        model = create_model(spec.name, **_kwargs(spec))
        report = load_pretrained(model, ckpt, which)
    if not report.complete:
        raise CheckpointError(f"{path} does not fill {model.model_name}: missing {report.missing[:5]}, shape "
                              f"mismatches {report.mismatched[:3]}; check model.name / model.patch_size / ...")
    return model.eval().requires_grad_(False)
