"""Vision Transformer backbone (Dosovitskiy et al., 2021) for DINO / iBOT pretraining.

Options: [CLS] / GAP / SimPool pooling, learned or fixed 2D sin-cos position embeddings,
register tokens (Darcet et al., 2024), an iBOT mask token, manifold keys (Meng et al., 2024),
and any patch and input size (learned position tables are resampled bicubically, by default
exactly as DINO / iBOT do: ``pos_embed_interp="dino"``).
Token order: [CLS] (absent with SimPool), registers, patches. Registers get no position
embedding (as in DINOv2), so the table is (1, [1 +] N, D).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

from pretrain.models.vit_features import ViTFeatures
from pretrain.models.attention import ATTENTION_MODES, ATTENTION_PATHS, KEY_VARIANTS, Keep, select_tokens
from pretrain.models.layers import Block, PatchEmbed
from pretrain.models.pooling import POOLINGS, SIMPOOL_BETAS, SimPool
from pretrain.models.pos_embed import POS_EMBED_INTERP, resample_pos_embed, sincos_2d

__all__ = ["ViTFeatures", "VisionTransformer"]

ImgSize = int | Sequence[int]


def _pair(size: ImgSize) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


def _check_options(**options: tuple[str, Sequence[str]]) -> None:
    """``name=(value, valid values)`` pairs; a value outside its valid ones is a ValueError naming them."""
    for arg, (val, ok) in options.items():
        if val not in ok:
            raise ValueError(f"unknown {arg} {val!r}; choose one of {ok}")

class VisionTransformer(nn.Module):
    """ViT backbone returning pooled and per-patch features.

    Args:
        img_size: default input size (int or (H, W)); the learned position table has its grid.
        patch_size: patch side p.
        in_chans: input channels C.
        embed_dim: token width D.
        depth: number of blocks.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width / D.
        qkv_bias: bias on q/k/v projections.
        pooling: ``cls``, ``gap`` (mean of patch tokens, [CLS] kept in the sequence) or
            ``simpool`` (no [CLS] token at all).
        pos_embed: ``learned`` or ``sincos`` (fixed, recomputed for every grid).
        key_variant: ``standard`` or a manifold-key variant (spatialk, kua, simplek, vanillak).
        num_charts: manifold-key charts H.
        num_registers: register tokens.
        drop_path_rate: stochastic depth, linearly increasing to this value over the blocks.
        simpool_gamma: SimPool exponent (None: plain attention pooling).
        extra_img_sizes: further input sizes a manifold key must support (e.g. 96 local crops).
        masked_im_modeling: create the learned iBOT ``mask_token``.
        attention: attention path of every block: ``"auto"`` (per call, from device, dtype and
            sequence length), ``"fused"`` (SDPA) or ``"explicit"``; see
            :func:`~pretrain.models.attention.choose_attention_path`.
        pos_embed_interp: how a learned table is resampled to another grid: ``"dino"`` (DINO /
            iBOT's ``interpolate_pos_encoding``, scale factor (g + 0.1) / g0; the default, so
            their checkpoints give their numbers at any input size) or ``"exact"`` (resize to
            exactly g x g; our behaviour before issue 11, which our older checkpoints keep).
        simpool_beta: SimPool's beta: ``"scalar"`` (one value, as the reference) or
            ``"channel"`` (one per channel, our older checkpoints).
    """

    def __init__(
        self,
        img_size: ImgSize = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 384,
        depth: int = 12,
        num_heads: int = 6,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        pooling: str = "cls",
        pos_embed: str = "learned",
        key_variant: str = "standard",
        num_charts: int = 4,
        num_registers: int = 0,
        drop_path_rate: float = 0.0,
        simpool_gamma: float | None = None,
        extra_img_sizes: Iterable[ImgSize] = (),
        masked_im_modeling: bool = False,
        attention: str = "auto",
        pos_embed_interp: str = "dino",
        simpool_beta: str = "scalar",
    ) -> None:
        super().__init__()
        _check_options(pooling=(pooling, POOLINGS), pos_embed=(pos_embed, ("learned", "sincos")),
                       key_variant=(key_variant, KEY_VARIANTS), attention=(attention, ATTENTION_PATHS),
                       pos_embed_interp=(pos_embed_interp, POS_EMBED_INTERP), simpool_beta=(simpool_beta, SIMPOOL_BETAS))
        self.embed_dim, self.num_heads, self.patch_size, self.depth = embed_dim, num_heads, patch_size, depth
        self.mlp_ratio, self.qkv_bias, self.img_hw = mlp_ratio, qkv_bias, _pair(img_size)
        self.pooling, self.pos_embed_type, self.key_variant = pooling, pos_embed, key_variant
        self.pos_embed_interp = pos_embed_interp
        # recorded by create_model even at their defaults: they change the model's outputs
        self.numeric_options = {"pos_embed_interp": pos_embed_interp, "simpool_beta": simpool_beta}
        self.num_cls = 0 if pooling == "simpool" else 1
        self.num_registers = num_registers
        self.num_prefix_tokens = self.num_cls + num_registers
        self.grid_hw = self.grid_for(self.img_hw)
        n = self.grid_hw[0] * self.grid_hw[1]

        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if self.num_cls else None
        self.reg_token = nn.Parameter(torch.zeros(1, num_registers, embed_dim)) if num_registers else None
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim)) if masked_im_modeling else None
        if pos_embed == "learned":
            self.pos_embed = nn.Parameter(torch.zeros(1, self.num_cls + n, embed_dim))
        else:
            self.register_buffer("pos_embed", sincos_2d(embed_dim, self.grid_hw, self.num_cls), persistent=False)

        grids = [self.grid_hw] + [self.grid_for(_pair(s)) for s in extra_img_sizes]
        counts = sorted({self.num_prefix_tokens + h * w for h, w in grids})
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias, drop_path_rate * i / max(depth - 1, 1),
                  key_variant, num_charts, counts, attention)
            for i in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.simpool = SimPool(embed_dim, simpool_gamma, beta=simpool_beta) if pooling == "simpool" else None
        self._init_weights()
        self._register_load_state_dict_pre_hook(self._rename_reference_keys)

    @staticmethod
    def _rename_reference_keys(state_dict: dict, prefix: str, *args) -> None:
        # iBOT names the mask token `masked_embed` (same (1, D) shape)
        old, new = prefix + "masked_embed", prefix + "mask_token"
        if old in state_dict and new not in state_dict:
            state_dict[new] = state_dict.pop(old)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for p in (self.cls_token, self.reg_token, self.pos_embed if self.pos_embed_type == "learned" else None):
            if p is not None:
                nn.init.trunc_normal_(p, std=0.02)

    def grid_for(self, img_hw: tuple[int, int]) -> tuple[int, int]:
        """Patch grid (H/p, W/p) of an input size; raises if p does not divide it."""
        h, w = img_hw
        p = self.patch_size
        if h % p or w % p:
            raise ValueError(f"input size {h}x{w} is not divisible by the patch size {p}; resize or crop it")
        return h // p, w // p

    def set_attention(self, attention: str) -> None:
        """Switch every block's attention path (``"auto"``, ``"fused"`` or ``"explicit"``)."""
        if attention not in ATTENTION_PATHS:
            raise ValueError(f"unknown attention path {attention!r}; choose one of {ATTENTION_PATHS}")
        for blk in self.blocks:
            blk.attn.attention = attention

    def add_img_size(self, img_size: ImgSize) -> None:
        """Let a manifold-key model accept another input size (fresh token-mixing weights)."""
        h, w = self.grid_for(_pair(img_size))
        for blk in self.blocks:
            if blk.attn.key_variant != "standard":
                blk.attn.key.add_token_count(self.num_prefix_tokens + h * w)

    def _pos_embed_for(self, grid: tuple[int, int], device: torch.device) -> torch.Tensor:
        if grid == self.grid_hw:
            return self.pos_embed
        if self.pos_embed_type == "sincos":
            return sincos_2d(self.embed_dim, grid, self.num_cls, device=device)
        return resample_pos_embed(self.pos_embed, self.num_cls, self.grid_hw, grid, self.pos_embed_interp)

    def prepare_tokens(self, x: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
        """Images (B, C, H, W) -> tokens (B, T, D) with position embeddings, T = P + N."""
        b = x.shape[0]
        grid = self.grid_for((x.shape[-2], x.shape[-1]))
        x = self.patch_embed(x)
        if masks is not None:
            if self.mask_token is None:
                raise ValueError("masks given but the model has no mask token: create it with masked_im_modeling=True")
            if masks.shape != x.shape[:2]:
                raise ValueError(f"masks must be (B, N) = {tuple(x.shape[:2])} bool, got {tuple(masks.shape)}")
            x = torch.where(masks.bool().unsqueeze(-1), self.mask_token.to(x.dtype), x)
        pos = self._pos_embed_for(grid, x.device)
        prefix = []
        if self.cls_token is not None:
            prefix.append((self.cls_token + pos[:, :1]).expand(b, -1, -1))
        if self.reg_token is not None:
            prefix.append(self.reg_token.expand(b, -1, -1))
        x = x + pos[:, self.num_cls:]
        return torch.cat(prefix + [x], dim=1) if prefix else x

    def forward_features(
        self, x: torch.Tensor, masks: torch.Tensor | None = None, return_attention: str | None = None,
        keep_patches: torch.Tensor | None = None,
    ) -> ViTFeatures:
        """Run the backbone.

        Args:
            x: (B, C, H, W) images, H and W divisible by the patch size.
            masks: optional (B, N) bool; True replaces that patch embedding by the mask token
                (before the position embedding is added).
            return_attention: None, ``"cls"`` ((B, N): the last block's [CLS] -> patch
                attention averaged over heads, registers excluded, from q_cls and K only;
                SimPool's map with pooling="simpool") or ``"full"`` ((B, h, T, T)).
            keep_patches: optional (B, M) long patch positions (0 .. N-1): only these patch
                tokens are returned (``patch_tokens`` is (B, M, D), in this order; M may be 0); or
                a (B, N) bool selection: ``patch_tokens`` is then flat (S, D), the S selected
                patches in row-major order (as ``tokens[keep_patches]``; S is read on the host).
                With [CLS] pooling the last block then computes only the prefix tokens and these
                (the other tokens are still its keys and values), which is the same function with
                fewer FLOPs; with GAP / SimPool pooling every token is computed and these are
                picked. For a student whose unmasked patch outputs no loss reads. A bool
                selection takes no ``return_attention``.

        Returns:
            :class:`ViTFeatures`.
        """
        if return_attention not in ATTENTION_MODES:
            raise ValueError(f"return_attention must be one of {ATTENTION_MODES}, got {return_attention!r}")
        block_attn_mode = None if (return_attention == "cls" and self.simpool is not None) else return_attention
        x = self.prepare_tokens(x, masks)
        b, p = x.shape[0], self.num_prefix_tokens
        keep = self._last_block_keep(keep_patches, b, p, x.shape[1] - p)
        attn = None
        last = len(self.blocks) - 1
        for i, blk in enumerate(self.blocks):
            x, attn = blk(x, block_attn_mode if i == last else None, keep if i == last else None)
        if isinstance(keep, tuple):  # flat (B * p + S, D): every image's prefix tokens, then the patches
            xn = self.norm(x)
            prefix = xn[: b * p].unflatten(0, (b, p))
            return ViTFeatures(pooled=prefix[:, 0], patch_tokens=xn[b * p:], prefix_tokens=prefix, attention=attn)
        xn = self.norm(x)
        if self.simpool is not None:
            pooled, pool_attn = self.simpool(x[:, p:])
            pooled = self.norm(pooled)
            if return_attention == "cls":
                attn = pool_attn
        else:
            pooled = xn[:, 0] if self.pooling == "cls" else xn[:, p:].mean(dim=1)
            if return_attention == "cls":
                attn = attn[:, :, p:].mean(dim=1)
        patches = xn[:, p:]
        if keep_patches is not None and keep is None:  # GAP / SimPool: every token computed, pick the patches
            patches = patches[keep_patches] if keep_patches.dtype == torch.bool else select_tokens(patches, keep_patches)
        return ViTFeatures(pooled=pooled, patch_tokens=patches, prefix_tokens=xn[:, :p], attention=attn)

    def _last_block_keep(self, keep_patches: torch.Tensor | None, batch: int, p: int, n: int) -> Keep | None:
        """The last block's ``keep`` (see :class:`~pretrain.models.layers.Block`) for ``keep_patches``."""
        if keep_patches is None:
            return None
        flat = keep_patches.dtype == torch.bool
        if keep_patches.ndim != 2 or keep_patches.shape[0] != batch or (flat and keep_patches.shape[1] != n):
            raise ValueError(f"keep_patches must be (B, M) = ({batch}, M) long or (B, N) bool, "
                             f"got {tuple(keep_patches.shape)} {keep_patches.dtype}")
        if self.pooling != "cls" or p == 0:  # the pooled vector reads every patch token
            return None
        if flat:
            rows, patches = keep_patches.nonzero(as_tuple=True)  # row-major, as tokens[keep_patches]
            prefix_rows = torch.arange(batch, device=rows.device).repeat_interleave(p)
            prefix_tokens = torch.arange(p, device=rows.device).repeat(batch)
            return torch.cat([prefix_rows, rows]), torch.cat([prefix_tokens, patches + p])
        if keep_patches.shape[1] == 0:
            return p  # prefix tokens only: a slice
        prefix = torch.arange(p, device=keep_patches.device).expand(batch, p)
        return torch.cat([prefix, keep_patches + p], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, D) pooled embedding after the final norm."""
        return self.forward_features(x).pooled

    def get_intermediate_layers(
        self, x: torch.Tensor, n: int = 4, masks: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """Outputs of the last ``n`` blocks, each (B, T, D) with the final norm applied."""
        x = self.prepare_tokens(x, masks)
        outs = []
        for i, blk in enumerate(self.blocks):
            x, _ = blk(x)
            if i >= len(self.blocks) - n:
                outs.append(self.norm(x))
        return outs
