"""Export a backbone as a state-dict file that timm's own ``VisionTransformer`` loads.

The key mapping is :func:`pretrain.models.export_to_timm` (our block layout is timm's); this
module decides which timm architecture a backbone is, refuses what timm's ViT cannot compute
the same way, and writes the file. Load it with::

    timm.create_model("vit_small_patch16_224", pretrained=True, num_classes=0,
                      pretrained_cfg_overlay=dict(file="vit_small.safetensors"))
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from pretrain.models.vit import VisionTransformer
from pretrain.models.timm_export import export_to_timm

log = logging.getLogger(__name__)

__all__ = ["TIMM_SIZES", "export_timm", "timm_name"]

# (embed_dim, depth, num_heads) -> timm's size word; timm names vit_<size>_patch<p>_224
TIMM_SIZES = {(192, 12, 3): "tiny", (384, 12, 6): "small", (768, 12, 12): "base", (1024, 24, 16): "large"}
_OPTIONS = ("pooling='cls'", "pos_embed='learned'", "key_variant='standard'", "num_registers=0", "mlp_ratio=4",
            "qkv_bias=True")


def _unsupported(model: VisionTransformer) -> list[str]:
    """The options of ``model`` that timm's plain ViT does not have, as ``name=value`` strings."""
    checks = (("pooling", model.pooling, "cls"), ("pos_embed", model.pos_embed_type, "learned"),
              ("key_variant", model.key_variant, "standard"), ("num_registers", model.num_registers, 0),
              ("mlp_ratio", model.mlp_ratio, 4.0), ("qkv_bias", model.qkv_bias, True))
    return [f"{name}={value!r}" for name, value, ok in checks if value != ok]


def timm_name(model: VisionTransformer) -> str:
    """The timm architecture ``vit_<size>_patch<p>_224`` that computes ``model``'s function.

    Raises:
        ValueError: naming the options or sizes timm has no model for, and what can be exported.
    """
    import timm

    wanted = "; exportable: " + ", ".join(f"vit_{s}_patch<p>_224 (D={d}, depth {n}, {h} heads)"
                                           for (d, n, h), s in TIMM_SIZES.items()) + \
        " for the patch sizes timm names, with " + ", ".join(_OPTIONS)
    bad = _unsupported(model)
    if bad:
        raise ValueError(f"cannot export to timm: {', '.join(bad)} has no timm ViT equivalent{wanted}")
    size = TIMM_SIZES.get((model.embed_dim, model.depth, model.num_heads))
    name = f"vit_{size}_patch{model.patch_size}_224"
    if size is None or not timm.is_model(name):
        raise ValueError(f"cannot export to timm: no timm model for D={model.embed_dim}, depth {model.depth}, "
                         f"{model.num_heads} heads, patch {model.patch_size} "
                         f"({getattr(model, 'model_name', 'this model')}){wanted}")
    return name


def export_timm(model: VisionTransformer, path: str | Path) -> tuple[Path, str]:
    """Write ``model``'s weights in timm layout (``.safetensors`` by suffix, else ``torch.save``).

    Args:
        model: the backbone; see :func:`timm_name` for what is accepted.
        path: output file.

    Returns:
        (the file, the ``timm.create_model`` call that loads it).

    Raises:
        ValueError: for a backbone timm cannot express (see :func:`timm_name`).
    """
    name = timm_name(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in export_to_timm(model).items()}
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save(state, path)
    img = "" if model.img_hw == (224, 224) else f", img_size={model.img_hw}"
    call = (f"timm.create_model({name!r}, pretrained=True, num_classes=0{img}, "
            f"pretrained_cfg_overlay=dict(file={str(path)!r}))")
    log.info("timm weights written to %s; load with %s", path, call)
    return path, call
