"""A self-contained pretrained-model folder: ``model.safetensors`` + ``config.json`` (+ ``README.md``).

``config.json`` holds the architecture twice over: ``model`` (the registry name and the exact
``create_model`` keyword arguments the backbone was built with, which :func:`from_pretrained`
uses) and ``model_config`` (every :class:`pretrain.config.ModelConfig` key with the backbone's
value, so the folder also reads as a ``model:`` section of a training config). The weights are
the backbone's ``state_dict`` (no heads), loaded strictly: the rebuilt model computes the same
function as the one saved.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from pretrain.config import ModelConfig
from pretrain.models.registry import create_model
from pretrain.models.vit import VisionTransformer

__all__ = ["CONFIG_FILE", "EXPORT_FORMAT", "WEIGHTS_FILE", "from_pretrained", "model_config", "save_pretrained"]

EXPORT_FORMAT = "attmask-ssl-pretrained/1"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def _plain(value: Any) -> Any:
    """JSON-ready copy of a kwarg value (tuples -> lists)."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def model_config(model: VisionTransformer) -> dict[str, Any]:
    """Every :class:`ModelConfig` key with ``model``'s value (sizes filled in, never 0)."""
    kwargs = dict(getattr(model, "model_kwargs", {}))
    cfg = dataclasses.asdict(ModelConfig())
    cfg.update({k: _plain(v) for k, v in kwargs.items() if k in cfg})
    cfg.update(name=getattr(model, "model_name", cfg["name"]), patch_size=model.patch_size,
               embed_dim=model.embed_dim, depth=model.depth, num_heads=model.num_heads, pooling=model.pooling,
               pos_embed=model.pos_embed_type, key_variant=model.key_variant,
               num_registers=model.num_registers, pos_embed_interp=model.pos_embed_interp,
               simpool_beta=model.numeric_options.get("simpool_beta", cfg["simpool_beta"]),
               simpool_gamma=model.simpool.gamma if model.simpool is not None else None)
    return cfg


def save_pretrained(model: VisionTransformer, folder: str | Path, card: str | None = None,
                    extra: dict[str, Any] | None = None) -> Path:
    """Write ``folder/model.safetensors``, ``folder/config.json`` and, if given, the ``README.md`` card.

    Args:
        model: a backbone built by :func:`~pretrain.models.create_model` (it records its name
            and keyword arguments).
        folder: output folder (created).
        card: model-card markdown.
        extra: more JSON-ready entries for ``config.json`` (e.g. the source checkpoint).

    Raises:
        ValueError: if the model records no registry name.
    """
    from safetensors.torch import save_file

    if not hasattr(model, "model_name"):
        raise ValueError("the model records no registry name: build it with pretrain.models.create_model(...)")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_FILE), metadata={"format": EXPORT_FORMAT})
    config = {"format": EXPORT_FORMAT,
              "model": {"name": model.model_name, "kwargs": {k: _plain(v) for k, v in model.model_kwargs.items()}},
              "model_config": model_config(model), "img_size": list(model.img_hw), **(extra or {})}
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    if card is not None:
        (folder / "README.md").write_text(card)
    return folder


def from_pretrained(folder: str | Path) -> VisionTransformer:
    """Build the backbone saved by :func:`save_pretrained` from the folder alone, in eval mode.

    Raises:
        FileNotFoundError: if ``config.json`` or ``model.safetensors`` is missing.
        ValueError: if ``config.json`` is not this format.
    """
    from safetensors.torch import load_file

    folder = Path(folder)
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name} not found: not a folder written by `pretrain.export "
                                    "--format safetensors`")
    config = json.loads((folder / CONFIG_FILE).read_text())
    arch = config.get("model") if isinstance(config, dict) else None
    if config.get("format") != EXPORT_FORMAT or not isinstance(arch, dict) or "name" not in arch:
        raise ValueError(f"{folder / CONFIG_FILE} is not a {EXPORT_FORMAT} config (no 'model': {{'name', 'kwargs'}})")
    model = create_model(arch["name"], **arch.get("kwargs", {}))
    model.load_state_dict(load_file(str(folder / WEIGHTS_FILE)), strict=True)
    return model.eval()
