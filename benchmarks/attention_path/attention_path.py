"""Fused SDPA vs explicit softmax attention, forward + backward, per regime: which path is faster.

For each (dtype, token count T, head dim d, batch B x heads h) it times
``F.scaled_dot_product_attention(q, k, v)`` and ``softmax(q k^T / sqrt(d)) v`` (the two paths
of :class:`pretrain.models.attention.Attention`), forward and backward on the same inputs.
The two paths alternate inside one loop (so a busy machine slows both alike); the report gives
the median of each and the ratio explicit / fused (< 1: explicit is faster). The shapes are those
of our regimes: the demo recipe (ViT-pico/7, D=128, 4 heads of 32; 28 px globals: T=17, 14 px
locals: T=5; batch 128: 256 global and 768 local crops) and ViT-S/16 (6 heads of 64; 224 px: T=197,
96 px: T=37; batch 4: 8 global and 40 local crops), plus T in {50, 65, 257, 577}.

Usage:
    OMP_NUM_THREADS=1 python -m benchmarks.attention_path.attention_path --threads 1 --reps 15 \
        --out benchmarks/attention_path/results/attention_path.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmarks.provenance import command_line, cpu_name

# (label, batch*crops, heads, T, head dim)
CASES = [
    ("demo local 14px", 768, 4, 5, 32),
    ("demo global 28px", 256, 4, 17, 32),
    ("demo-width T=50", 256, 4, 50, 32),
    ("demo-width T=65", 256, 4, 65, 32),
    ("ViT-S local 96px", 40, 6, 37, 64),
    ("ViT-S T=50", 40, 6, 50, 64),
    ("ViT-S T=65", 40, 6, 65, 64),
    ("ViT-S global 224px", 8, 6, 197, 64),
    ("ViT-S T=257", 8, 6, 257, 64),
    ("ViT-S 384px T=577", 2, 6, 577, 64),
    ("d=32 T=197", 8, 6, 197, 32),
    ("d=64 T=17", 256, 4, 17, 64),
    ("d=64 T=5", 768, 4, 5, 64),
]


def explicit(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    scale = q.shape[-1] ** -0.5
    return torch.matmul(torch.matmul(q * scale, k.transpose(-2, -1)).softmax(dim=-1), v)


def fused(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return F.scaled_dot_product_attention(q, k, v)


def fwd_bwd(fn, q, k, v, grad) -> float:
    t0 = time.perf_counter()
    out = fn(q, k, v)
    out.backward(grad)
    t = time.perf_counter() - t0
    q.grad = k.grad = v.grad = None
    return t


def measure(b: int, h: int, t: int, d: int, dtype: torch.dtype, reps: int, device: str) -> tuple[float, float]:
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(b, h, t, d, generator=gen).to(device, dtype).requires_grad_() for _ in range(3))
    grad = torch.randn(b, h, t, d, generator=gen).to(device, dtype)
    for _ in range(3):  # warm-up
        fwd_bwd(fused, q, k, v, grad)
        fwd_bwd(explicit, q, k, v, grad)
    times = {"fused": [], "explicit": []}
    for i in range(reps):
        order = (("fused", fused), ("explicit", explicit)) if i % 2 == 0 else (("explicit", explicit), ("fused", fused))
        for name, fn in order:
            if device == "cuda":
                torch.cuda.synchronize()
            times[name].append(fwd_bwd(fn, q, k, v, grad))
            if device == "cuda":
                torch.cuda.synchronize()
    return statistics.median(times["fused"]), statistics.median(times["explicit"])



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--out", default="", help="write the markdown table here too")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    lines = [
        "# Attention path: fused SDPA vs explicit softmax, forward + backward",
        "",
        f"- date: {datetime.datetime.now().isoformat(timespec='minutes')}",
        (f"- machine: {cpu_name()} ({os.cpu_count()} cores, shared with other jobs), device {args.device}, "
        f"torch threads {torch.get_num_threads()}"),
        f"- torch {torch.__version__}, python {platform.python_version()}",
        f"- command: `{command_line()}`",
        f"- median of {args.reps} interleaved repetitions; ratio = explicit / fused (< 1: explicit faster)",
        "",
        "| regime | dtype | B*crops | heads | T | d | fused ms | explicit ms | explicit / fused |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    for dtype_name in args.dtypes.split(","):
        dtype = getattr(torch, dtype_name)
        for label, b, h, t, d in CASES:
            tf, te = measure(b, h, t, d, dtype, args.reps, args.device)
            row = (f"| {label} | {dtype_name} | {b} | {h} | {t} | {d} | {tf * 1e3:.2f} | {te * 1e3:.2f} | "
                   f"{te / tf:.2f} |")
            lines.append(row)
            print(row, flush=True)
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
