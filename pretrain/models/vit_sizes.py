"""The registered ViT sizes: ``vit_pico``, ``vit_tiny``, ``vit_small``, ``vit_base``.

Each is a :class:`pretrain.models.vit.VisionTransformer` with the size's width, depth and heads;
``create_model(name, ...)`` finds them through :func:`pretrain.models.registry.register_model`.
"""

from __future__ import annotations

from pretrain.models.registry import register_model
from pretrain.models.vit import VisionTransformer

__all__ = ["vit_base", "vit_pico", "vit_small", "vit_tiny"]


def _vit(embed_dim: int, depth: int, num_heads: int, kwargs: dict) -> VisionTransformer:
    # the name gives the defaults; explicit embed_dim / depth / num_heads override them (as in timm)
    arch = {"embed_dim": embed_dim, "depth": depth, "num_heads": num_heads}
    return VisionTransformer(**{**arch, **kwargs})


@register_model
def vit_pico(**kwargs) -> VisionTransformer:
    """ViT-Pico (D=128, 4 blocks, 4 heads): CPU demos and tests. kwargs: see VisionTransformer."""
    return _vit(128, 4, 4, kwargs)


@register_model
def vit_tiny(**kwargs) -> VisionTransformer:
    """ViT-Ti (D=192, 12 blocks, 3 heads). kwargs: see VisionTransformer."""
    return _vit(192, 12, 3, kwargs)


@register_model
def vit_small(**kwargs) -> VisionTransformer:
    """ViT-S (D=384, 12 blocks, 6 heads). kwargs: see VisionTransformer."""
    return _vit(384, 12, 6, kwargs)


@register_model
def vit_base(**kwargs) -> VisionTransformer:
    """ViT-B (D=768, 12 blocks, 12 heads). kwargs: see VisionTransformer."""
    return _vit(768, 12, 12, kwargs)
