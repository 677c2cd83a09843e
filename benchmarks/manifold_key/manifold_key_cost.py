"""Parameter and FLOP cost of the manifold-key variants per ViT block, vs standard attention.

Counts with ``torch.utils.flop_counter.FlopCounterMode`` (matmul-type ops: linear, bmm,
einsum, SDPA; elementwise ops are not counted) on one block's forward, batch 1, and the
whole ViT-S/16 forward. Writes benchmarks/manifold_key/results/manifold_key_cost.md.

    python -m benchmarks.manifold_key.manifold_key_cost [--charts 4 8]
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from pretrain.models import create_model
from pretrain.models.attention import KEY_VARIANTS
from pretrain.models.layers import Block


def _flops(module: torch.nn.Module, x: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(x)
    return counter.get_total_flops()


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--charts", type=int, nargs="+", default=[4, 8])
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "manifold_key_cost.md"))
    args = ap.parse_args()
    dim, heads = 384, 6
    tokens = {224: 197, 96: 37}
    rows = [("| key variant | charts H | params / block | block GFLOP @224 (T=197) | x standard | "
            "block GFLOP @96 (T=37) | ViT-S/16 params (M) | ViT-S/16 GFLOP @224 |"), "|---" * 8 + "|"]
    base_block = None
    for variant in KEY_VARIANTS:
        for h in ([1] if variant == "standard" else args.charts):
            blk = Block(dim, heads, key_variant=variant, num_charts=h, token_counts=[197])
            blk96 = Block(dim, heads, key_variant=variant, num_charts=h, token_counts=[37])
            f224 = _flops(blk, torch.randn(1, tokens[224], dim))
            f96 = _flops(blk96, torch.randn(1, tokens[96], dim))
            base_block = base_block or f224
            with torch.device("meta"):
                model = create_model("vit_small", key_variant=variant, num_charts=h)
            with FlopCounterMode(display=False) as counter, torch.device("meta"):
                model(torch.empty(1, 3, 224, 224))
            rows.append(
                f"| {variant} | {'-' if variant == 'standard' else h} | {_params(blk) / 1e6:.3f} M | {f224 / 1e9:.3f} | "
                f"{f224 / base_block:.2f} | {f96 / 1e9:.4f} | {_params(model) / 1e6:.1f} | "
                f"{counter.get_total_flops() / 1e9:.2f} |"
            )
    text = "\n".join([
        "# Manifold-key cost per ViT-S/16 block (D=384, 6 heads, MLP 4x)",
        "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}; torch {torch.__version__}",
        ("- counted with torch.utils.flop_counter.FlopCounterMode (1 FLOP = 1 multiply or add; "
        "matmul-type ops only), forward pass, batch 1"),
        ("- params / block include the token-mixing weights for ONE token count (197); each extra "
        "registered token count T adds H*T^2 parameters per block (H matrices T x T, or SimpleK's T x H*T)"),
        "- the paper (Meng et al., Table 1) reports fvcore MACs: divide these FLOPs by 2 to compare",
        "",
        *rows,
        "",
    ])
    print(text)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
