"""Where AttMask-High's step overhead over random masking goes: each masker, and the step profile.

Part 1 times each regime's masker alone (the recipe's ``mask`` settings with ``mask.strategy``
switched, built by `pretrain.build.build_masker_from`) per strategy on the shapes of both regimes
(teacher scores (G*B, N)), interleaved, median per call. Part 2 profiles one full demo-regime
training step per strategy (`Regime.step` of `benchmarks.pretrain_step.pretrain_step`: the public
`forward_losses` + `optimizer_step` + EMA on objects made by the package's builders) with
torch.profiler and lists, per operator, the self CPU time that AttMask-High spends beyond random
masking (the operators where the two steps differ most).

Usage (from the repository root):
    python -m benchmarks.masking_cost.masking_cost [--calls 200] [--profile-steps 3]
Writes benchmarks/masking_cost/results/masking_cost.md (or --out).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from benchmarks.pretrain_step.pretrain_step import Regime, recipe_config
from benchmarks.provenance import command_line, load_average, machine_line, utc_now, versions_line
from pretrain.build import build_masker_from

SHAPES = {"vits16:4": (8, (14, 14)), "demo:128": (256, (4, 4))}  # (G*B crops, patch grid)
STRATEGIES = ("random", "block", "attmask_high")


def masker_costs(calls: int) -> dict[str, dict[str, float]]:
    """Median microseconds per masker call, per regime shape and strategy."""
    gen = torch.Generator().manual_seed(0)
    out = {}
    for regime, (crops, grid) in SHAPES.items():
        scores = torch.rand(crops, grid[0] * grid[1], generator=gen).softmax(-1)
        maskers = {s: build_masker_from(recipe_config(regime.split(":")[0], [f"mask.strategy={s}"]))
                   for s in STRATEGIES}
        times = {s: [] for s in STRATEGIES}
        for _ in range(calls):
            for s, m in maskers.items():
                t = time.perf_counter()
                m(crops, grid, scores=scores if m.needs_attention else None, generator=gen)
                times[s].append(time.perf_counter() - t)
        out[regime] = {s: 1e6 * statistics.median(t) for s, t in times.items()}
    return out


def profile_diff(steps: int, top: int = 12) -> tuple[dict[str, float], list[tuple[str, float, float]]]:
    """Self CPU ms per step of every operator, AttMask-High vs random, demo regime (eager, fused)."""
    from torch.profiler import ProfilerActivity, profile

    regime = Regime("demo", 128, torch.device("cpu"), compiled=False)
    per_op: dict[str, dict[str, float]] = {}
    totals = {}
    for s in ("random", "attmask_high", "random", "attmask_high"):  # the second pass of each is kept
        regime.step(s, "fused", 0)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for i in range(steps):
                regime.step(s, "fused", i)
        per_op[s] = {e.key: e.self_cpu_time_total / 1000.0 / steps for e in prof.key_averages()}
        totals[s] = sum(per_op[s].values())
    keys = set(per_op["random"]) | set(per_op["attmask_high"])
    diffs = [(k, per_op["random"].get(k, 0.0), per_op["attmask_high"].get(k, 0.0)) for k in keys]
    diffs.sort(key=lambda d: -abs(d[2] - d[1]))
    return totals, diffs[:top]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--profile-steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/masking_cost/results/masking_cost.md")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load_start = load_average()
    costs = masker_costs(args.calls)
    totals, diffs = profile_diff(args.profile_steps)
    lines = ["# Cost of the masking strategies", "",
             (f"Date: {utc_now()}. Machine: {machine_line()}; torch threads {args.threads}. Load average: "
              f"{load_start} at the start, {load_average()} at the end."), "",
             f"Versions: {versions_line()}.", "", f"Command: `{command_line()}`", "",
             "## Masker alone (median microseconds per call, strategies interleaved)", "",
             "| regime (crops x grid) | " + " | ".join(STRATEGIES) + " |", "|---|" + "---|" * len(STRATEGIES)]
    for regime, row in costs.items():
        crops, grid = SHAPES[regime]
        lines.append(f"| {regime} ({crops} x {grid[0]}x{grid[1]}) | " + " | ".join(f"{row[s]:.0f}" for s in STRATEGIES)
                     + " |")
    lines += ["", f"## Profile of one demo step (self CPU ms per step, mean of {args.profile_steps} steps)", "",
              (f"Total self CPU per step: random {totals['random']:.1f} ms, AttMask-High {totals['attmask_high']:.1f} ms "
              f"({totals['attmask_high'] / totals['random'] - 1:+.1%}). Operators that differ most:"), "",
              "| operator | random (ms) | AttMask-High (ms) | difference (ms) |", "|---|---|---|---|"]
    lines += [f"| `{k}` | {r:.2f} | {a:.2f} | {a - r:+.2f} |" for k, r, a in diffs]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
