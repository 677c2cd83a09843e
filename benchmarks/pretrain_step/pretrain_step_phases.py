"""Where the milliseconds of one pretraining step go: CPU time per phase and the top operators.

The phases of `pretrain.step.forward_losses` + `optimizer_step` + `EMATeacher.update`, run one by
one on the network and synthetic crops of `benchmarks/pretrain_step.py`: teacher forward (with its
[CLS] attention), masks, student forward on the global crops (with the patch selection the step
uses, where this checkout has it), on the local crops, losses, backward, clipping, AdamW, EMA.
Process CPU time per phase, median over ``--steps`` steps after one warm-up step; then
``torch.profiler`` over ``--profile-steps`` steps for the top operators (self CPU time).
Runs in any checkout of this repository (older ones without the patch selection included), so
the same script profiles the step before and after a change.

Usage:
    OMP_NUM_THREADS=1 python benchmarks/pretrain_step_phases.py --regime demo:128 \\
        --strategies attmask_high,random --threads 1
Prints a markdown table (and writes it to ``--out`` if given).
"""

from __future__ import annotations

import argparse
import inspect
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pretrain.step as step_module
from pretrain_step import Regime
from provenance import command_line, load_average, machine_line, utc_now, versions_line

from pretrain.optim import cancel_last_layer_grads_, clip_gradients_, set_schedules_

PHASES = ("teacher", "masks", "student global", "student local", "losses", "backward", "clip", "AdamW", "EMA")


def one_step(r: Regime, strategy: str, index: int) -> dict[str, float]:
    """One step, phase by phase; CPU seconds per phase."""
    s = r.sched.at(index)
    masker, net = r.masker(strategy), r.student
    exact = "patch_selection" in inspect.signature(step_module.forward_losses).parameters
    grid = (r.glob.shape[-2] // net.backbone.patch_size, r.glob.shape[-1] // net.backbone.patch_size)
    ticks = [time.process_time()]
    with torch.no_grad():
        t_out = r.teacher.forward_global(r.glob, return_attention="cls")
    ticks.append(time.process_time())
    masks = masker(r.glob.shape[0], grid, scores=t_out.attention if masker.needs_attention else None,
                   generator=r.gen)
    ticks.append(time.process_time())
    keep = {"keep_patches": masks} if exact else {}
    s_glob = net.forward_global(r.glob, masks=masks, **keep)
    ticks.append(time.process_time())
    s_loc = net.forward_local(r.loc)
    ticks.append(time.process_time())
    extra = {"patch_index": masks} if exact else {}
    terms = r.losses(torch.cat([s_glob.cls_logits, s_loc]), t_out.cls_logits, s_glob.patch_logits,
                     t_out.patch_logits, masks, s["teacher_temp"], s["teacher_patch_temp"], **extra)
    ticks.append(time.process_time())
    set_schedules_(r.opt, s["lr"], s["wd"])
    r.opt.zero_grad(set_to_none=True)
    terms.total.backward()
    cancel_last_layer_grads_(net, index, 0)
    ticks.append(time.process_time())
    mode = getattr(r.cfg.optim, "clip_mode", None)  # absent in checkouts before the key existed
    clip_gradients_(net, r.cfg.optim.clip_grad, *([mode] if mode else []))
    ticks.append(time.process_time())
    r.opt.step()
    ticks.append(time.process_time())
    r.ema.update(s["momentum"])
    ticks.append(time.process_time())
    return {name: b - a for name, a, b in zip(PHASES, ticks, ticks[1:])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--regime", default="demo:128")
    ap.add_argument("--strategies", default="attmask_high,random")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--profile-steps", type=int, default=2)
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="", help="also write the table to this .md file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    name, batch = args.regime.split(":")
    r = Regime(name, int(batch), torch.device("cpu"), False)
    r.student.backbone.set_attention("auto")
    r.teacher.backbone.set_attention("auto")
    lines = [f"# Step phases ({args.regime}), {utc_now()}", "",
             f"Machine: {machine_line()}; {args.threads} torch thread(s); load {load_average()}.", "",
             f"Versions: {versions_line()}.", "", f"Command: `{command_line()}`", "",
             "CPU ms per phase (median of the steps):", "",
             "| strategy | " + " | ".join(PHASES) + " | total |", "|---|" + "---|" * (len(PHASES) + 1)]
    for strategy in args.strategies.split(","):
        one_step(r, strategy, 0)  # warm-up
        runs = [one_step(r, strategy, i) for i in range(args.steps)]
        med = {p: statistics.median(run[p] for run in runs) * 1e3 for p in PHASES}
        total = statistics.median(sum(run.values()) for run in runs) * 1e3
        lines.append(f"| {strategy} | " + " | ".join(f"{med[p]:.1f}" for p in PHASES) + f" | {total:.1f} |")
    from torch.profiler import ProfilerActivity, profile

    strategy = args.strategies.split(",")[0]
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(args.profile_steps):
            one_step(r, strategy, i)
    rows = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[: args.top]
    lines += ["", f"Top operators by self CPU time ({strategy}, per step, under the profiler):", "",
              "| operator | self CPU ms | calls |", "|---|---|---|"]
    lines += [f"| {e.key} | {e.self_cpu_time_total / 1e3 / args.profile_steps:.1f} | "
              f"{e.count // args.profile_steps} |" for e in rows]
    text = "\n".join(lines)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
