"""Throughput of one full iBOT pretraining step, per regime, masking strategy, attention path, compile.

One step = teacher forward (with its [CLS] attention), masks, student forward on all crops,
losses, backward, gradient clipping, AdamW, EMA update: what `pretrain.train` runs per batch,
`pretrain.step.forward_losses` + `optimizer_step` + `EMATeacher.update`, on objects made by the
package's builders (`pretrain.build`: networks, objective, masker, AdamW, schedules; AMP and loss
scaler by `pretrain.amp`; patch selection and update settings by the trainer's `loop_settings`), on
synthetic crops (data loading excluded). All variants
of a regime share one network (the masking strategy and the attention path only switch modules),
and run round-robin, so machine noise hits all of them alike: read the ratios, which come from
one run. Reported per variant: seconds per step (median of the rounds), images/s, CPU seconds
per step (process time: all threads), ratios against the first variant and, for the masking
strategies, AttMask-High over random. ``--compile`` adds torch.compile'd twins of each variant
(separate networks, compiled backbones as ``run.compile=true`` does) and records the time of their
first step (compilation) next to the eager first step.

Regimes (NAME:BATCH):
    vits16  configs/pretrain/ibot_vits16_attmask_high.yaml, ViT-S/16, 2x224 + 10x96 (the papers')
    demo    configs/pretrain/demo_fmnist.yaml, ViT-pico/7 on 28 px, 2x28 + 6x14 (make demo)

Usage (from the repository root):
    python -m benchmarks.pretrain_step.pretrain_step --regimes vits16:4,demo:128     # CPU: both regimes
    python -m benchmarks.pretrain_step.pretrain_step --regimes vits16:4,demo:128 \\
        --strategies attmask_high --attention fused --compile                     # compile vs eager
    python -m benchmarks.pretrain_step.pretrain_step --regimes vits16:64 --device cuda --amp bf16 --flops
Writes OUT.json and OUT.md (default benchmarks/pretrain_step/results/pretrain_step).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

import torch

from benchmarks.provenance import command_line, load_average, machine_line, utc_now, versions_line, write_report
from pretrain.amp import autocast_context, grad_scaler, resolve_amp
from pretrain.build import (build_masker_from, build_network, build_optimizer_from, build_pretrain_loss,
                            build_schedules, compile_backbone)
from pretrain.config import PretrainConfig
from pretrain.configuration import load_config
from pretrain.models.teacher_student import EMATeacher
from pretrain.step import StepModules, StudentCall, forward_losses, optimizer_step
from pretrain.train import loop_settings

STEPS_PER_EPOCH = 1000  # of the schedules (their values do not change the cost of a step)
RECIPES = {"vits16": "configs/pretrain/ibot_vits16_attmask_high.yaml", "demo": "configs/pretrain/demo_fmnist.yaml"}
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # dense bf16 tensor-core peak


def recipe_config(name: str, overrides: list[str] | None = None) -> PretrainConfig:
    """The config of regime ``name`` (its recipe YAML) with ``key=value`` overrides."""
    return load_config(PretrainConfig, RECIPES[name], overrides or [])


class Regime:
    """What `pretrain.build.build_run` makes for one recipe (student, EMA teacher, objective, maskers,
    AdamW, loss scaler, schedules; no data), and synthetic crops of the recipe's sizes.

    Built with the same public builders as a training run, in the same order; ``amp`` is ``run.amp``.
    """

    def __init__(self, name: str, batch: int, device: torch.device, compiled: bool, backend: str = "inductor",
                 amp: str = "none") -> None:
        self.name, self.device, self.compiled = name, device, compiled
        self.overrides = [f"data.batch_size={batch}", f"run.amp={amp}"]
        cfg = self.cfg = recipe_config(name, self.overrides)
        self.student = build_network(cfg, True).to(device)
        self.teacher = build_network(cfg, False).to(device)
        self.ema = EMATeacher(self.student, self.teacher)
        self.losses = build_pretrain_loss(cfg).to(device)
        self.opt = build_optimizer_from(cfg, self.student, batch)
        self.amp = resolve_amp(cfg.run.amp, device)
        if compiled:
            compile_backbone(self.student.backbone, backend)
            compile_backbone(self.teacher.backbone, backend)
        self.call = StudentCall(self.student)
        self.scaler = grad_scaler(device, self.amp)
        self.sched = build_schedules(cfg, STEPS_PER_EPOCH, batch)
        settings = loop_settings(cfg, STEPS_PER_EPOCH)  # the trainer's patch selection and update settings
        self.patch_selection = settings.patch_selection
        # the steady state: past the first epoch(s), whose frozen last layer skips part of the update
        self.update = dataclasses.replace(settings.update, freeze_last_layer_steps=0)
        self.gen = torch.Generator(device=device).manual_seed(0)
        d = cfg.data
        crops = torch.Generator().manual_seed(0)
        self.glob = (torch.randint(0, 256, (2 * batch, 3, d.global_size, d.global_size), generator=crops)
                     .float().sub_(128).div_(64).to(device))
        self.loc = (torch.randint(0, 256, (d.n_local * batch, 3, d.local_size, d.local_size), generator=crops)
                    .float().sub_(128).div_(64).to(device)) if d.n_local else None
        self.maskers = {}

    def masker(self, strategy: str):
        """The recipe's masker with ``mask.strategy=strategy`` (`pretrain.build.build_masker_from`)."""
        if strategy not in self.maskers:
            self.maskers[strategy] = build_masker_from(
                recipe_config(self.name, [*self.overrides, f"mask.strategy={strategy}"]))
        return self.maskers[strategy]

    def step(self, strategy: str, attention: str, index: int) -> None:
        """One training step as `pretrain.train` runs it (its ``_train_step`` without the logging)."""
        self.student.backbone.set_attention(attention)  # the model.attention config key
        self.teacher.backbone.set_attention(attention)
        s = self.sched.at(index)
        modules = StepModules(self.call, self.teacher, self.losses, self.masker(strategy), self.gen)
        res = forward_losses(modules, self.glob, self.loc, s["teacher_temp"], s["teacher_patch_temp"],
                             autocast_context(self.device, self.amp), self.patch_selection)
        optimizer_step(self.opt, self.scaler, self.student, res.loss, s, index, self.update)
        self.ema.update(s["momentum"])

    def flops(self, strategy: str, attention: str) -> float:
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            self.step(strategy, attention, 0)
        return float(counter.get_total_flops())


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of ``fn()``, the device synchronised around it."""
    sync(device)
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    sync(device)
    return time.perf_counter() - wall, time.process_time() - cpu


def measure(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    amp = resolve_amp(args.amp, device)  # as run.amp resolves
    strategies, paths = args.strategies.split(","), args.attention.split(",")
    result = {"date": utc_now(), "command": command_line(), "machine": machine_line(), "versions": versions_line(),
              "torch_threads": torch.get_num_threads(), "device": str(device), "amp": amp,
              "load_start": load_average(), "regimes": {}}
    for spec in args.regimes.split(","):
        name, batch = spec.split(":")
        builds = {False: Regime(name, int(batch), device, False, amp=amp)}
        if args.compile:
            builds[True] = Regime(name, int(batch), device, True, args.compile_backend, amp=amp)
        variants = [(s, p, c) for c in builds for p in paths for s in strategies]
        first_step = {}
        for s, p, c in variants:  # warm-up; the first step of a compiled variant includes its compilation
            first_step[(s, p, c)] = timed(lambda b=builds[c], s=s, p=p: b.step(s, p, 0), device)
            for i in range(1, args.warmup):
                builds[c].step(s, p, i)
        walls = {v: [] for v in variants}
        cpus = {v: [] for v in variants}
        peak_mem = dict.fromkeys(variants, 0.0)
        for _ in range(args.rounds):
            for s, p, c in variants:
                def run(b=builds[c], s=s, p=p):
                    for i in range(args.steps):
                        b.step(s, p, i)
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                wall, cpu = timed(run, device)
                walls[(s, p, c)].append(wall / args.steps)
                cpus[(s, p, c)].append(cpu / args.steps)
                if device.type == "cuda":
                    peak_mem[(s, p, c)] = max(peak_mem[(s, p, c)], torch.cuda.max_memory_allocated(device) / 2**30)
        flops = {}  # counted on the eager network: the compiled one does the same arithmetic
        if args.flops:
            for s, p in {(s, p) for s, p, _ in variants}:
                flops[(s, p)] = builds[False].flops(s, p)
        rows = {}
        for v in variants:
            s, p, c = v
            med = statistics.median(walls[v])
            row = {"strategy": s, "attention": p, "compiled": c, "s_per_step": med, "img_per_s": int(batch) / med,
                   "cpu_s_per_step": statistics.median(cpus[v]), "first_step_s": first_step[v][0],
                   "first_step_cpu_s": first_step[v][1],
                   "rounds_s_per_step": walls[v]}
            if args.flops:
                row["gflop_per_img"] = flops[(s, p)] / int(batch) / 1e9
                row["tflop_per_s"] = flops[(s, p)] / med / 1e12
                peak = next((t for k, t in PEAK_BF16_TFLOPS.items() if k in machine_line()), None)
                if peak and device.type == "cuda":
                    row["mfu"] = flops[(s, p)] / med / (peak * 1e12)
            if device.type == "cuda":
                row["peak_mem_gib"] = peak_mem[v]
            rows["/".join([s, p, "compiled" if c else "eager"])] = row
        result["regimes"][spec] = rows
        print(f"{spec}: " + ", ".join(f"{k} {r['s_per_step']:.3f} s" for k, r in rows.items()), flush=True)
        builds.clear()  # free this regime's networks before the next one
    result["load_end"] = load_average()
    return result


def markdown(result: dict) -> str:
    # On a CPU shared with other jobs the process CPU time is the robust measure (wall time waits
    # for the other jobs); on a GPU the wall time is the measure (the host mostly waits).
    key = "cpu_s_per_step" if result["device"] == "cpu" else "s_per_step"
    basis = "CPU time" if key == "cpu_s_per_step" else "wall time"
    compiled = any(r["compiled"] for rows in result["regimes"].values() for r in rows.values())
    lines = ["# Pretraining step throughput (ours): regimes x masking x attention path" + (" x compile" * compiled),
             "",
             (f"Date: {result['date']}. Machine: {result['machine']}; torch threads {result['torch_threads']}, "
              f"device {result['device']}, amp {result['amp']}. Load average (1, 5, 15 min): "
              f"{result['load_start']} at the start, {result['load_end']} at the end."),
             "",
             f"Versions: {result['versions']}.",
             "",
             f"Command: `{result['command']}`",
             "",
             f"Ratios below use the median {basis} per step.",
             ""]
    for spec, rows in result["regimes"].items():
        first = next(iter(rows.values()))
        lines += [f"## {spec} ({RECIPES[spec.split(':')[0]]}, batch {spec.split(':')[1]})", "",
                  f"| variant | wall s/step | img/s | CPU s/step | vs first ({basis}) | first step wall (s) |" +
                  (" GFLOP/img | MFU |" if "gflop_per_img" in first else "") +
                  (" peak mem (GiB) |" if "peak_mem_gib" in first else ""),
                  "|---|---|---|---|---|---|" + ("---|---|" if "gflop_per_img" in first else "") +
                  ("---|" if "peak_mem_gib" in first else "")]
        for name, r in rows.items():
            cells = [name, f"{r['s_per_step']:.3f}", f"{r['img_per_s']:.1f}", f"{r['cpu_s_per_step']:.3f}",
                     f"{first[key] / r[key]:.2f}x", f"{r['first_step_s']:.1f}"]
            if "gflop_per_img" in r:
                cells += [f"{r['gflop_per_img']:.1f}", f"{r['mfu']:.1%}" if "mfu" in r else "n/a"]
            if "peak_mem_gib" in r:
                cells.append(f"{r['peak_mem_gib']:.1f}")
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", *summary(rows, key), ""]
    return "\n".join(lines)


def summary(rows: dict, key: str = "s_per_step") -> list[str]:
    """The ratios the issue asks for: explicit vs fused, AttMask-High over random, compiled vs eager."""
    out = []
    for name, r in rows.items():
        s, p, c = name.split("/")
        if p == "explicit" and f"{s}/fused/{c}" in rows:
            out.append(f"- {s}, {c}: explicit attention is {rows[f'{s}/fused/{c}'][key] / r[key]:.2f}x "
                       "the speed of fused")
        if s == "attmask_high" and f"random/{p}/{c}" in rows:
            over = r[key] / rows[f"random/{p}/{c}"][key] - 1
            out.append(f"- {p}, {c}: AttMask-High costs {over:+.1%} per step over random masking")
        if c == "compiled" and f"{s}/{p}/eager" in rows:
            eager = rows[f"{s}/{p}/eager"]
            first_cpu = (f" (CPU {r['first_step_cpu_s']:.1f} s vs {eager['first_step_cpu_s']:.1f} s)"
                         if "first_step_cpu_s" in r else "")
            out.append(f"- {s}, {p}: compiled is {eager[key] / r[key]:.2f}x eager in steady state; "
                       f"first step {r['first_step_s']:.1f} s compiled vs {eager['first_step_s']:.1f} s eager"
                       + first_cpu)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--regimes", default="vits16:4,demo:128", help="comma list of NAME:BATCH, NAME in "
                    f"{sorted(RECIPES)}")
    ap.add_argument("--strategies", default="none,random,block,attmask_high")
    ap.add_argument("--attention", default="fused,explicit")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--amp", default="auto", choices=["auto", "none", "bf16", "fp16"], help="run.amp")
    ap.add_argument("--compile", action="store_true", help="add torch.compile'd twins of every variant")
    ap.add_argument("--compile-backend", default="inductor", help="torch.compile backend (aot_eager: a quick check)")
    ap.add_argument("--flops", action="store_true", help="count the FLOPs of one step (and MFU on a GPU)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps per variant (the first is recorded)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=2, help="steps per variant per round")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--out", default="benchmarks/pretrain_step/results/pretrain_step", help="OUT.json and OUT.md")
    ap.add_argument("--report-only", action="store_true", help="rewrite OUT.md from OUT.json, measure nothing")
    args = ap.parse_args()
    out = Path(args.out)
    if args.report_only:
        out.with_suffix(".md").write_text(markdown(json.loads(out.with_suffix(".json").read_text())) + "\n")
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    for spec in args.regimes.split(","):
        if spec.count(":") != 1 or spec.split(":")[0] not in RECIPES or not spec.split(":")[1].isdigit():
            ap.error(f"--regimes entry {spec!r} must be NAME:BATCH with NAME in {sorted(RECIPES)}")
    write_report(out, measure(args), markdown)


if __name__ == "__main__":
    main()
