"""Attention maps of a frozen ViT, batched: [CLS] -> patch attention per head, head mean, any block, SimPool.

The maps come from a forward pre-hook on ``model.blocks[i].attn``: it keeps the block's
normalised input tokens, from which the [CLS] query and the keys are recomputed with the
module's own projection, so only the [CLS] row (B, h, T) is formed (no T x T map) and the model
code is not touched. This works for our :class:`~pretrain.models.VisionTransformer` (also with a
manifold key: its ``_split_heads``), DINO / iBOT weights loaded into it, and timm ViTs (``qkv``,
``q_norm``, ``k_norm``). LOST needs the keys of the last block: :func:`patch_keys`.
SimPool models (Psomas et al., ICCV 2023) have no [CLS]: their map is SimPool's attention.

DINO's ``visualize_attention.py`` and LOST go one image at a time; here a batch is one forward.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pretrain.models.attention import cls_attention

__all__ = ["HEAD_MODES", "attention_maps", "parse_heads", "patch_keys", "patch_size_of", "save_maps", "select_heads",
           "upsample"]

HEAD_MODES = ("mean", "all", "best")  # or an int: one head


def patch_size_of(model: nn.Module) -> int:
    """The model's (square) patch size."""
    ps = getattr(model, "patch_size", None) or getattr(getattr(model, "patch_embed", None), "patch_size", None)
    if ps is None:
        raise ValueError(f"{type(model).__name__} has no patch_size / patch_embed.patch_size: not a ViT?")
    return int(ps[0] if isinstance(ps, (tuple, list)) else ps)


def _prefix_tokens(model: nn.Module) -> int:
    return int(getattr(model, "num_prefix_tokens", 1))


def _queries_keys(attn: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(q, k) each (B, h, T, d) from an attention module's input x (B, T, D)."""
    if hasattr(attn, "_split_heads"):  # ours (standard or manifold key)
        q, k, _ = attn._split_heads(x)
        return q, k
    if hasattr(attn, "qkv") and hasattr(attn, "num_heads"):  # timm / DINO layout
        b, t, _ = x.shape
        h = attn.num_heads
        q, k, _ = attn.qkv(x).reshape(b, t, 3, h, -1).permute(2, 0, 3, 1, 4).unbind(0)
        if hasattr(attn, "q_norm"):
            q, k = attn.q_norm(q), attn.k_norm(k)
        return q, k
    raise ValueError(f"cannot read queries/keys from {type(attn).__name__}: expected ours or a timm Attention")


@contextmanager
def _block_input(model: nn.Module, block: int) -> Iterator[dict]:
    blocks = getattr(model, "blocks", None)
    if blocks is None:
        raise ValueError(f"{type(model).__name__} has no .blocks: attention maps need a ViT")
    if not -len(blocks) <= block < len(blocks):
        raise ValueError(f"block={block} but the model has {len(blocks)} blocks (use 0..{len(blocks) - 1} or -1)")
    store: dict = {}
    handle = blocks[block].attn.register_forward_pre_hook(lambda _m, args: store.__setitem__("x", args[0]))
    try:
        yield store
    finally:
        handle.remove()


def _grid(model: nn.Module, images: torch.Tensor) -> tuple[int, int]:
    p = patch_size_of(model)
    h, w = images.shape[-2:]
    if h % p or w % p:
        raise ValueError(f"image size {h}x{w} is not divisible by the patch size {p}: resize or crop the images")
    return h // p, w // p


def _features(model: nn.Module, images: torch.Tensor, simpool: bool):
    if simpool:
        return model.forward_features(images, return_attention="cls").attention
    return model.forward_features(images)


@torch.no_grad()
def attention_maps(model: nn.Module, images: torch.Tensor, block: int = -1, source: str = "auto") -> torch.Tensor:
    """[CLS] -> patch attention of every head of one block, for a batch.

    Args:
        model: a ViT (ours, DINO/iBOT loaded into ours, or timm).
        images: (B, 3, H, W) normalised images, H and W divisible by the patch size.
        block: block index (-1 = last).
        source: ``cls`` ([CLS] query), ``simpool`` (SimPool's attention, one "head"), or ``auto``
            (SimPool when the model pools with it, else [CLS]).

    Returns:
        (B, h, gh, gw) float32 attention over the patch grid (each head sums to <= 1 over patches).
    """
    grid = _grid(model, images)
    use_simpool = source == "simpool" or (source == "auto" and getattr(model, "simpool", None) is not None)
    if source not in ("auto", "cls", "simpool"):
        raise ValueError(f"source must be auto, cls or simpool, got {source!r}")
    if use_simpool:
        if getattr(model, "simpool", None) is None:
            raise ValueError("source=simpool but the model has no SimPool (train with model.pooling=simpool)")
        att = _features(model, images, simpool=True)  # (B, N)
        return att.float().view(images.shape[0], 1, *grid)
    if _prefix_tokens(model) == 0 or getattr(model, "num_cls", 1) == 0:
        raise ValueError("this model has no [CLS] token: use source=simpool (or a model with pooling=cls)")
    with _block_input(model, block) as store:
        _features(model, images, simpool=False)
    q, k = _queries_keys(_block_attn(model, block), store["x"])
    scale = q.shape[-1] ** -0.5
    att = cls_attention(q, k, scale)[:, :, _prefix_tokens(model):]  # (B, h, N)
    return att.float().reshape(att.shape[0], att.shape[1], *grid)


def _block_attn(model: nn.Module, block: int) -> nn.Module:
    return model.blocks[block].attn


@torch.no_grad()
def patch_keys(model: nn.Module, images: torch.Tensor, block: int = -1) -> torch.Tensor:
    """Keys of the patch tokens of one block (heads concatenated), as LOST uses them: (B, N, D)."""
    _grid(model, images)
    with _block_input(model, block) as store:
        model.forward_features(images)
    _, k = _queries_keys(_block_attn(model, block), store["x"])  # (B, h, T, d)
    k = k[:, :, _prefix_tokens(model):]
    return k.transpose(1, 2).reshape(k.shape[0], k.shape[2], -1).float()


def parse_heads(text: str | int) -> str | int:
    """The ``heads=`` setting as a typed value: one of :data:`HEAD_MODES`, or a head index (int).

    Raises:
        ValueError: Neither a mode nor a whole number (names the valid values).
    """
    if isinstance(text, int) or text in HEAD_MODES:
        return text
    if text.strip().lstrip("-").isdigit():
        return int(text)
    raise ValueError(f"heads={text!r} is neither one of {', '.join(HEAD_MODES)} nor a head index (e.g. heads=0)")


def select_heads(maps: torch.Tensor, heads: str | int = "mean") -> torch.Tensor:
    """(B, h, gh, gw) -> (B, gh, gw) head mean / one head, or (B, h, gh, gw) for ``all`` / ``best``.

    ``best`` keeps every head: the best one per image needs the ground truth (the evaluator picks it).
    """
    if heads == "mean":
        return maps.mean(dim=1)
    if heads in ("all", "best"):
        return maps
    if isinstance(heads, str) and not heads.lstrip("-").isdigit():
        raise ValueError(f"heads must be one of {HEAD_MODES} or a head index, got {heads!r}")
    i = int(heads)
    if not -maps.shape[1] <= i < maps.shape[1]:
        raise ValueError(f"head {i} does not exist: the model has {maps.shape[1]} heads")
    return maps[:, i]


def upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bicubic resize of (B, gh, gw) or (B, h, gh, gw) maps to ``size`` (H, W) (same leading dims)."""
    lead = maps.shape[:-2]
    flat = maps.reshape(-1, 1, *maps.shape[-2:]).float()
    out = F.interpolate(flat, size=size, mode="bicubic", align_corners=False)
    return out.reshape(*lead, *size)


def save_maps(path: str | Path, maps: np.ndarray | torch.Tensor, names: list[str] | None = None) -> Path:
    """Write maps (N, H, W) (or (N, h, H, W)) as ``.npz`` with key ``maps`` (and ``names``), the --maps format."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = maps.cpu().numpy() if isinstance(maps, torch.Tensor) else np.asarray(maps)
    extra = {"names": np.asarray(names)} if names is not None else {}
    np.savez_compressed(path, maps=arr.astype(np.float32), **extra)
    return path
