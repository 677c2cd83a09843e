"""Throughput of one iBOT pretraining step per masking strategy, side by side in one run.

Measures the full step (teacher forward, masks, student forward on all crops, losses,
backward, clipping, AdamW, EMA) on synthetic uint8 crops, so data loading is excluded.
Strategies are interleaved round-robin so machine noise hits all of them alike; the result
is reported as steps/s, img/s and the ratio to the first strategy. On CUDA it also counts the
FLOPs of one step (torch.utils.flop_counter) and reports MFU against the bf16 dense peak.

Usage:
    python benchmarks/pretrain_step.py                       # CPU demo recipe
    python benchmarks/pretrain_step.py --recipe configs/pretrain/ibot_vits16_attmask_high.yaml \
        --batch 64 --device cuda --compile                   # the paper setting on a GPU
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from pretrain.builder import (build_losses, build_masker_from, build_network, build_optimizer_from,
                              build_schedules)
from pretrain.config import PretrainConfig, load_config
from pretrain.models.teacher_student import EMATeacher
from pretrain.step import StudentCall, autocast_context, forward_losses, optimizer_step

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}


def build(cfg: PretrainConfig, device: torch.device, compile_: bool):
    student = build_network(cfg, True).to(device)
    teacher = build_network(cfg, False).to(device)
    ema = EMATeacher(student, teacher)
    if compile_:
        student.backbone.compile()
        teacher.backbone.compile()
    losses = build_losses(cfg).to(device)
    opt = build_optimizer_from(cfg, student, cfg.data.batch_size)
    sched = build_schedules(cfg, 1000, cfg.data.batch_size)
    return dict(call=StudentCall(student), teacher=teacher, ema=ema, losses=losses, opt=opt,
                sched=sched, student=student, masker=build_masker_from(cfg))


def fake_batch(cfg: PretrainConfig, device: torch.device):
    d, b = cfg.data, cfg.data.batch_size
    g = torch.randint(0, 256, (2 * b, 3, d.global_size, d.global_size), device=device).float().sub_(128).div_(64)
    loc = torch.randint(0, 256, (d.n_local * b, 3, d.local_size, d.local_size), device=device).float().sub_(128).div_(64)
    return g, (loc if d.n_local else None)


def one_step(m, cfg, batch, device, amp, gen, step):
    s = m["sched"].at(step)
    res = forward_losses(m["call"], m["teacher"], m["losses"], m["masker"], batch[0], batch[1],
                         s["teacher_temp"], 1.0, 1.0, gen, autocast_context(device, amp))
    optimizer_step(m["opt"], None, res.loss, m["student"], cfg.optim.clip_grad, s, step, 0)
    m["ema"].update(s["momentum"])


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def step_flops(m, cfg, batch, device, amp, gen) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        one_step(m, cfg, batch, device, amp, gen, 0)
    return float(counter.get_total_flops())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="configs/pretrain/demo_fmnist.yaml")
    ap.add_argument("--strategies", default="attmask_high,random,block")
    ap.add_argument("--batch", type=int, default=0, help="per-step batch (0: the recipe's)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--amp", default="auto")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=3, help="steps per strategy per round")
    ap.add_argument("--out", default="benchmarks/results/pretrain_step.json")
    args = ap.parse_args()
    device = torch.device(args.device)
    amp = ("bf16" if device.type == "cuda" else "none") if args.amp == "auto" else args.amp
    over = [f"data.batch_size={args.batch}"] if args.batch else []
    runs, times = {}, {}
    for strat in args.strategies.split(","):
        cfg = load_config(PretrainConfig, args.recipe, over + [f"mask.strategy={strat}"])
        runs[strat] = (cfg, build(cfg, device, args.compile), fake_batch(cfg, device),
                       torch.Generator(device=device).manual_seed(0))
        times[strat] = []
        for i in range(args.warmup):
            one_step(runs[strat][1], cfg, runs[strat][2], device, amp, runs[strat][3], i)
    for _ in range(args.rounds):
        for strat, (cfg, m, batch, gen) in runs.items():
            sync(device)
            t = time.perf_counter()
            for i in range(args.steps):
                one_step(m, cfg, batch, device, amp, gen, i)
            sync(device)
            times[strat].append((time.perf_counter() - t) / args.steps)
    first = next(iter(times))
    result = {"date": datetime.date.today().isoformat(), "recipe": args.recipe, "device": str(device),
              "machine": (torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
                          or platform.machine()), "cpus": torch.get_num_threads(), "torch": torch.__version__,
              "amp": amp, "compile": args.compile, "batch": runs[first][0].data.batch_size, "strategies": {}}
    for strat, ts in times.items():
        med = statistics.median(ts)
        cfg, m, batch, gen = runs[strat]
        entry = {"s_per_step": med, "steps_per_s": 1 / med, "img_per_s": cfg.data.batch_size / med,
                 "ratio_vs_" + first: statistics.median(times[first]) / med}
        if device.type == "cuda":
            flops = step_flops(m, cfg, batch, device, amp, gen)
            peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in result["machine"]), None)
            entry["gflop_per_img"] = flops / cfg.data.batch_size / 1e9
            if peak:
                entry["mfu"] = flops / med / (peak * 1e12)
        result["strategies"][strat] = entry
        print(f"{strat:14s} {entry['steps_per_s']:.3f} steps/s  {entry['img_per_s']:.1f} img/s  "
              f"x{entry['ratio_vs_' + first]:.2f} vs {first}" +
              (f"  MFU {entry['mfu']:.1%}" if "mfu" in entry else ""))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
