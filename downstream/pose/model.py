"""MS-Transformer-style multi-scene pose head on a ViT's patch tokens.

Shavit et al., "Learning Multi-Scene Absolute Pose Regression with Transformers" (ICCV 2021):
a position branch and an orientation branch, each a pre-norm DETR transformer whose decoder has
one learned query per scene; a scene classifier ``Linear(2 * 256 -> 1)`` scores each scene from
its two latents (log-softmax over scenes, trained with NLL); the latent of the true scene
(training, teacher forcing) or of the argmax scene (test) goes to the MLP regressors
``Linear(256 -> 1024) - GELU - Linear(1024 -> 3 | 4)``. Here both branches read the same ViT
patch tokens (B, N, D_backbone) through their own linear projection to the model width
(MS-Transformer projects two EfficientNet levels with 1x1 convolutions). Lee et al. (NeurIPS
2024) add the QKA loss on every encoder layer and a fixed sine positional encoding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from downstream.pose.initialization import initialize
from downstream.pose.losses import query_key_alignment
from downstream.pose.pos_encoding import PositionEncoding
from downstream.pose.transformer import AttentionRecord, PoseTransformer


class Regressor(nn.Sequential):
    """Linear(dim -> 1024) - GELU - Linear(1024 -> out)."""

    def __init__(self, dim: int, out: int, hidden: int = 1024) -> None:
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, out))


@dataclass
class PoseOutput:
    """Head outputs. ``x`` (B, 3), ``q`` (B, 4) unnormalised, ``scene_logp`` (B, S), ``scene`` (B,) used.

    ``records``: {"position" | "orientation": per-encoder-layer q, k [, attn]};
    ``cross``: {branch: last decoder cross-attention (B, heads, S, N)} when attention was asked.
    """

    x: torch.Tensor
    q: torch.Tensor
    scene_logp: torch.Tensor
    scene: torch.Tensor
    records: dict[str, list[AttentionRecord]]
    cross: dict[str, torch.Tensor | None]

    def qka(self) -> dict[str, torch.Tensor]:
        """QKA distance per branch: the mean over its encoder layers of :func:`query_key_alignment`."""
        return {b: torch.stack([query_key_alignment(r.q, r.k) for r in recs]).mean()
                for b, recs in self.records.items() if recs}


class PoseHead(nn.Module):
    """The two-branch multi-scene head.

    Args:
        num_scenes: S (one decoder query per scene).
        in_dim: Backbone token width D.
        grid_hw: (H, W) of the token grid (for the positional encoding).
        dim, heads, ffn, dropout: Transformer width 256, 8 heads, FFN 256, dropout 0.1.
        layers_x: (encoder, decoder) layers of the position branch (6, 6).
        layers_q: (encoder, decoder) layers of the orientation branch (4, 4 on 7Scenes).
        pos_encoding: ``learned`` (MS-Transformer) or ``sine`` (fixed DETR sine).
        shared_pos: One learned position table for both branches (MS-Transformer's backbone
            ``Joiner`` applies one embedding module to both feature levels) or one per branch (ours
            before; ``head.pos_table=per_branch``). Irrelevant for ``sine`` (no parameters).
        init: ``ms_transformer`` or ``xavier_all`` (:mod:`downstream.pose.initialization`).
    """

    def __init__(self, num_scenes: int, in_dim: int, grid_hw: tuple[int, int], dim: int = 256, heads: int = 8,
                 ffn: int = 256, dropout: float = 0.1, layers_x: tuple[int, int] = (6, 6),
                 layers_q: tuple[int, int] = (4, 4), pos_encoding: str = "learned", shared_pos: bool = True,
                 init: str = "ms_transformer") -> None:
        super().__init__()
        if num_scenes < 1:
            raise ValueError("need at least one scene")
        self.num_scenes, self.grid_hw = num_scenes, tuple(grid_hw)
        self.proj = nn.ModuleDict({b: nn.Linear(in_dim, dim) for b in ("position", "orientation")})
        tables = ("shared",) if shared_pos else ("position", "orientation")
        self.pos = nn.ModuleDict({t: PositionEncoding(pos_encoding, grid_hw, dim) for t in tables})
        self.pos_of = {b: "shared" if shared_pos else b for b in ("position", "orientation")}
        self.branch = nn.ModuleDict({
            "position": PoseTransformer(dim, heads, ffn, dropout, *layers_x),
            "orientation": PoseTransformer(dim, heads, ffn, dropout, *layers_q)})
        self.queries = nn.ParameterDict({b: nn.Parameter(torch.randn(num_scenes, dim))
                                         for b in ("position", "orientation")})
        self.scene_embed = nn.Linear(2 * dim, 1)
        self.reg_x, self.reg_q = Regressor(dim, 3), Regressor(dim, 4)
        initialize(self, init)

    def forward(self, tokens: torch.Tensor, scene: torch.Tensor | None = None,
                want_attn: bool = False) -> PoseOutput:
        """Args:
            tokens: (B, N, D) backbone patch tokens, N = H * W of ``grid_hw``.
            scene: (B,) true scene ids (teacher forcing, training) or None (argmax of the classifier).
            want_attn: Keep attention probabilities (diagnostics, pictures).
        """
        if tokens.shape[1] != self.grid_hw[0] * self.grid_hw[1]:
            raise ValueError(f"the head was built for a {self.grid_hw} token grid ({self.grid_hw[0] * self.grid_hw[1]} "
                             f"tokens), got {tokens.shape[1]}: use the training image size")
        latents, records, cross = {}, {}, {}
        for b, branch in self.branch.items():
            latents[b], records[b], cross[b] = branch(self.proj[b](tokens), self.pos[self.pos_of[b]](), self.queries[b], want_attn)
        scores = self.scene_embed(torch.cat([latents["position"], latents["orientation"]], dim=-1)).squeeze(-1)
        logp = torch.log_softmax(scores, dim=1)  # (B, S)
        chosen = logp.argmax(dim=1) if scene is None else scene
        idx = chosen.view(-1, 1, 1).expand(-1, 1, latents["position"].shape[-1])
        x = self.reg_x(latents["position"].gather(1, idx).squeeze(1))
        q = self.reg_q(latents["orientation"].gather(1, idx).squeeze(1))
        return PoseOutput(x, q, logp, chosen, records, cross)
