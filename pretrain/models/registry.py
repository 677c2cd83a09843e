"""Name -> constructor registry for backbones (timm style).

Constructors are plain typed functions; ``create_model`` records the name and the keyword
arguments on the model (``model.model_name``, ``model.model_kwargs``, plus the model's
``numeric_options`` such as ``pos_embed_interp`` even at their defaults) so a checkpoint can
rebuild the architecture.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import TypeVar

from torch import nn

__all__ = ["create_model", "is_model", "list_models", "register_model"]

_MODELS: dict[str, Callable[..., nn.Module]] = {}
F = TypeVar("F", bound=Callable[..., nn.Module])


def register_model(fn: F) -> F:
    """Decorator: register ``fn`` under its ``__name__``.

    Raises:
        ValueError: if the name is already registered.
    """
    name = fn.__name__
    if name in _MODELS and _MODELS[name] is not fn:
        raise ValueError(f"model {name!r} is already registered")
    _MODELS[name] = fn
    return fn


def list_models(pattern: str = "*") -> list[str]:
    """Sorted registered names matching a shell-style ``pattern`` (e.g. ``"vit_*"``)."""
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))


def is_model(name: str) -> bool:
    """True if ``name`` is registered."""
    return name in _MODELS


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model.

    Args:
        name: registry name, e.g. ``"vit_small"`` (see :func:`list_models`).
        **kwargs: forwarded to the constructor (e.g. ``patch_size=16, pooling="simpool"``).

    Raises:
        ValueError: for an unknown name (the message lists the valid ones).
    """
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; registered models: {', '.join(list_models())}")
    model = _MODELS[name](**kwargs)
    model.model_name = name
    # options that change a model's numbers are recorded even when left at their defaults, so a
    # checkpoint rebuilds the same function after a default changes (see VisionTransformer)
    model.model_kwargs = {**dict(getattr(model, "numeric_options", {})), **kwargs}
    return model
