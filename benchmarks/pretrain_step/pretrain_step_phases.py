"""Where the milliseconds of one pretraining step go: CPU time per phase and the top operators.

The step is the training step itself, `Regime.step` of `benchmarks.pretrain_step.pretrain_step`
(`pretrain.step.forward_losses` + `optimizer_step` + `EMATeacher.update` on objects made by the
package's builders), not a copy of it split into pieces: probes on its modules stamp the process
CPU time as the step passes them (end of the teacher forward, start and end of the student's
global forward, end of its local forward, end of the objective, the optimiser's ``zero_grad``, the
last gradient accumulated, the start and end of AdamW's step). The phases are the spans between
the stamps: teacher forward (with its [CLS] attention), masks, student forward on the global
crops, on the local crops, losses, backward, clipping, AdamW, EMA. Median over ``--steps`` steps
after one warm-up step; then ``torch.profiler`` over ``--profile-steps`` steps for the top
operators (self CPU time).

Usage (from the repository root):
    OMP_NUM_THREADS=1 python -m benchmarks.pretrain_step.pretrain_step_phases --regime demo:128 \\
        --strategies attmask_high,random --threads 1
Prints a markdown table (and writes it to ``--out`` if given).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from benchmarks.pretrain_step.pretrain_step import Regime
from benchmarks.provenance import command_line, load_average, machine_line, utc_now, versions_line

# (phase, the stamp that ends it); the first phase starts when the step is called
PHASES = (("teacher", "teacher done"), ("masks", "student global start"), ("student global", "student global done"),
          ("student local", "student local done"), ("losses", "zero_grad"), ("backward", "last gradient"),
          ("clip", "AdamW start"), ("AdamW", "AdamW done"), ("EMA", "step done"))


class Stamps:
    """Process CPU time stamps, by name, of the step in progress."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}

    def mark(self, name: str) -> None:
        self.at[name] = time.process_time()


def _after(fn: Callable, stamps: Stamps, end: str, start: str | None = None) -> Callable:
    def probe(*args, **kwargs):
        if start is not None:
            stamps.mark(start)
        out = fn(*args, **kwargs)
        stamps.mark(end)
        return out
    return probe


def install_probes(r: Regime, stamps: Stamps) -> None:
    """Stamps at the phase boundaries of ``r.step``, from hooks and wrapped methods (the step is unchanged)."""
    # instance attributes shadow the methods that forward_losses / StudentCall / optimizer_step call
    r.teacher.forward_global = _after(r.teacher.forward_global, stamps, "teacher done")
    r.student.forward_global = _after(r.student.forward_global, stamps, "student global done", "student global start")
    r.student.forward_local = _after(r.student.forward_local, stamps, "student local done")
    r.opt.zero_grad = _after(r.opt.zero_grad, stamps, "zero_grad done", "zero_grad")
    for p in r.student.parameters():  # the last one to fire ends the backward pass
        if p.requires_grad:
            p.register_post_accumulate_grad_hook(lambda _p: stamps.mark("last gradient"))
    r.opt.register_step_pre_hook(lambda *_: stamps.mark("AdamW start"))
    r.opt.register_step_post_hook(lambda *_: stamps.mark("AdamW done"))


def one_step(r: Regime, stamps: Stamps, strategy: str, index: int) -> dict[str, float]:
    """One training step (``model.attention=auto``); CPU seconds per phase."""
    stamps.at.clear()
    stamps.mark("start")
    r.step(strategy, "auto", index)
    stamps.mark("step done")
    times, begin = {}, stamps.at["start"]
    for phase, end in PHASES:
        stop = stamps.at.get(end, begin)  # a phase the step skipped (no local crops) takes 0
        times[phase], begin = stop - begin, stop
    return times


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
    stamps = Stamps()
    install_probes(r, stamps)
    names = [p for p, _ in PHASES]
    lines = [f"# Step phases ({args.regime}), {utc_now()}", "",
             f"Machine: {machine_line()}; {args.threads} torch thread(s); load {load_average()}.", "",
             f"Versions: {versions_line()}.", "", f"Command: `{command_line()}`", "",
             "CPU ms per phase (median of the steps):", "",
             "| strategy | " + " | ".join(names) + " | total |", "|---|" + "---|" * (len(names) + 1)]
    for strategy in args.strategies.split(","):
        one_step(r, stamps, strategy, 0)  # warm-up
        runs = [one_step(r, stamps, strategy, i) for i in range(args.steps)]
        med = {p: statistics.median(run[p] for run in runs) * 1e3 for p in names}
        total = statistics.median(sum(run.values()) for run in runs) * 1e3
        lines.append(f"| {strategy} | " + " | ".join(f"{med[p]:.1f}" for p in names) + f" | {total:.1f} |")
    from torch.profiler import ProfilerActivity, profile

    strategy = args.strategies.split(",")[0]
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(args.profile_steps):
            one_step(r, stamps, strategy, i)
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
