"""torch.hub entry points: one per registered backbone (``pretrain.models.list_models()``).

    model = torch.hub.load("/path/to/checkout", "vit_small", source="local", weights="runs/x/checkpoint.pt")
    model = torch.hub.load("/path/to/checkout", "vit_small", source="local", weights="exported/vit_small")

``weights`` is one of our training checkpoints (its recorded architecture is used), a folder
written by ``python -m pretrain.export --format safetensors``, a DINO / iBOT / timm file (built
from the entry point's name and ``**kwargs``: ``model.*`` keys such as ``patch_size=8``,
``img_size=224``), or None (random weights). Works offline; the
model comes back in eval mode.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

dependencies = ["torch", "numpy", "omegaconf", "yaml", "safetensors"]


def _load(name: str, weights: str | Path | None, which: str, kwargs: dict):
    from pretrain.export.source import ExportModel, load_backbone, records_architecture
    from pretrain.models import create_model, from_pretrained
    from pretrain.models.weights import read_checkpoint

    if weights is None:
        return create_model(name, **kwargs).eval()
    path = Path(weights)
    if path.is_dir():
        model = from_pretrained(path)
    else:
        ckpt = read_checkpoint(path)
        spec = ExportModel(**kwargs) if records_architecture(ckpt) else ExportModel(name=name, **kwargs)
        model = load_backbone(path, ckpt, spec, which)
    if model.model_name != name:
        raise ValueError(f"{path} holds a {model.model_name}, not a {name}: load it with '{model.model_name}'")
    return model.eval()


def _entry_point(name: str) -> Callable:
    def entry(weights: str | Path | None = None, which: str = "teacher", **kwargs):
        return _load(name, weights, which, kwargs)

    entry.__name__ = name
    entry.__doc__ = (f"{name} backbone in eval mode. weights: our checkpoint, an exported safetensors folder, "
                     "a DINO / iBOT / timm file (kwargs: architecture options) or None; which: teacher | student.")
    return entry


def _register_all() -> None:
    from pretrain.models import list_models

    for model_name in list_models():
        globals()[model_name] = _entry_point(model_name)


_register_all()
