"""Pose benchmark: learned vs fixed PE, with and without QKA, on rendered rooms with the demo backbone.

Renders (or reuses) a multi-scene set, trains the CPU-sized head of configs/downstream/pose_cpu.yaml
on the frozen backbone's cached tokens for every variant and seed, and writes
``benchmarks/pose/results/pose.md`` / ``pose.json`` plus pictures (``pose_*.png``). Also measures the
renderer's frames/s.

    OMP_NUM_THREADS=1 python -m benchmarks.pose.pose --checkpoint runs/demo/checkpoint.pt --data /tmp/rooms
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from downstream.pose import pictures
from downstream.pose.config import PoseConfig
from downstream.pose.render import render_dataset
from downstream.pose.train import run
from pretrain.configuration import load_config

VARIANTS = {  # name -> overrides (Lee et al. 2024, Table 7 ablation)
    "learned PE (MS-T)": ["head.pos_encoding=learned", "head.qka_weight=0.0"],
    "fixed sine PE": ["head.pos_encoding=sine", "head.qka_weight=0.0"],
    "learned PE + QKA": ["head.pos_encoding=learned", "head.qka_weight=0.1"],
    "sine PE + QKA": ["head.pos_encoding=sine", "head.qka_weight=0.1"],
}
RESULTS = Path(__file__).parent / "results"


def render_speed(size: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        return render_dataset(tmp, scenes=1, size=size, train_frames=80, test_frames=20, progress=False)


def summarize(runs: list[dict]) -> dict:
    def stat(values):
        return {"mean": float(np.mean(values)), "std": float(np.std(values)), "values": [float(v) for v in values]}

    o = [r["overall"] for r in runs]
    out = {k: stat([x[k] for x in o]) for k in ("mean_of_median_pos_m", "mean_of_median_ori_deg",
                                                  "mean_of_mean_pos_m", "mean_of_mean_ori_deg", "scene_accuracy")}
    out["recall"] = {k: stat([x["recall"][k] for x in o]) for k in o[0]["recall"]}
    out["attention"] = {b: [{key: stat([r["attention"][b][i][key] for r in runs])["mean"]
                             for key in ("entropy", "qka_distance", "purity")} for i in range(len(layers))]
                        for b, layers in runs[0]["attention"].items()}
    out["train_frames_per_s"] = stat([r["train"]["frames_per_s"] for r in runs])
    return out


def fmt(stat: dict, digits: int = 3) -> str:
    return f"{stat['mean']:.{digits}f} +- {stat['std']:.{digits}f}"


def write_markdown(report: dict, path: Path) -> Path:
    """The results table of ``pose.json`` as markdown (numbers only; the discussion is added by hand)."""
    meta, summary = report["meta"], report["summary"]
    lines = ["# Pose benchmark: learned vs fixed PE, with and without QKA", "",
             f"Date: {meta['date']}  ", (f"Machine: {meta['machine']}, nproc={meta['nproc']}, torch {meta['torch']}, "
             f"torch threads={meta['torch_threads']}; load average at start {meta['load_avg_start'][0]:.1f}, at end "
             f"{meta['load_avg_end'][0]:.1f} (other jobs shared the 2 cores); {meta['minutes']:.0f} min in all.  "),
             (f"Backbone: `{meta['checkpoint']}` (frozen, tokens cached). Head: configs/downstream/pose_cpu.yaml, "
             f"{meta['epochs']} epochs, seeds {meta['seeds']}, overrides {meta['overrides'] or 'none'}.  "),
             (f"Data: {meta['data'].get('scenes')} rendered rooms, {meta['data'].get('frames')} frames at "
             f"{meta['data'].get('size')} px (train 300 / test 100 per scene), fed at 56 px (8 x 8 tokens).  "),
             "Renderer: " + ", ".join(f"{v:.0f} frames/s at {k}" for k, v in meta["render_speed"].items()) + ".  ",
             f"Command: `{meta.get('command', 'OMP_NUM_THREADS=1 python -m benchmarks.pose.pose --checkpoint ... --data ...')}`",
             "",
             ("Mean over seeds +- std of the mean over the 4 scenes of the per-scene medians; recall and scene "
             "accuracy pooled over test frames. The mean-pose baseline predicts, for every test frame, its scene's "
             "training mean position and mean orientation (Markley eigenvector mean; downstream/pose/baseline.py): "
             "deterministic, the same for every seed and variant."), "",
             ("| variant | median pos (m) | median ori (deg) | mean pos (m) | mean ori (deg) | R(0.25 m, 2 deg) | "
             "R(0.5 m, 5 deg) | R(5 m, 10 deg) | scene acc | train frames/s |"), "|---|---|---|---|---|---|---|---|---|---|"]
    for name, s in summary.items():
        r = list(s["recall"].values())
        lines.append(f"| {name} | {fmt(s['mean_of_median_pos_m'])} | {fmt(s['mean_of_median_ori_deg'], 2)} | "
                     f"{fmt(s['mean_of_mean_pos_m'])} | {fmt(s['mean_of_mean_ori_deg'], 2)} | {fmt(r[0])} | "
                     f"{fmt(r[1])} | {fmt(r[2])} | {fmt(s['scene_accuracy'])} | {s['train_frames_per_s']['mean']:.0f} |")
    base = report.get("mean_pose_baseline")
    if base:
        o, r = base["overall"], list(base["overall"]["recall"].values())
        lines.append(f"| mean pose (baseline: training mean per scene) | {o['mean_of_median_pos_m']:.3f} | "
                     f"{o['mean_of_median_ori_deg']:.2f} | {o['mean_of_mean_pos_m']:.3f} | "
                     f"{o['mean_of_mean_ori_deg']:.2f} | {r[0]:.3f} | {r[1]:.3f} | {r[2]:.3f} | - (true scene given) | - |")
    lines += ["", "Attention diagnostics (mean over seeds; entropy in nats, log N = log 64 = 4.16 is uniform):", "",
              "| variant | branch | entropy per layer | QKA distance per layer | query-region purity per layer |",
              "|---|---|---|---|---|"]
    for name, s in summary.items():
        for branch, layers in s["attention"].items():
            cols = [" / ".join(f"{d[k]:.2f}" for d in layers) for k in ("entropy", "qka_distance", "purity")]
            lines.append(f"| {name} | {branch} | " + " | ".join(cols) + " |")
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="runs/demo/checkpoint.pt")
    ap.add_argument("--data", default="/tmp/pose_rooms", help="rendered set (made if missing)")
    ap.add_argument("--work", default="/tmp/pose_bench_runs", help="run folders (checkpoints)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--overrides", nargs="*", default=[])
    ap.add_argument("--report-only", action="store_true", help="rewrite pose.md from pose.json")
    args = ap.parse_args()
    if args.report_only:
        write_markdown(json.loads((RESULTS / "pose.json").read_text()), RESULTS / "pose.md")
        return
    torch.set_num_threads(1)
    load0 = os.getloadavg()
    data = Path(args.data)
    if not (data / "poses.csv").is_file():
        render_dataset(data, scenes=4, size=112, train_frames=300, test_frames=100, seed=0)
    speed = {f"{s}px": render_speed(s) for s in (64, 112)}
    all_runs: dict[str, list[dict]] = {}
    t0 = time.time()
    for name, ov in VARIANTS.items():
        for seed in args.seeds:
            tag = f"{name.split()[0]}_{'qka' if 'QKA' in name else 'noqka'}_s{seed}".replace(" ", "")
            work = Path(args.work) / tag
            shutil.rmtree(work, ignore_errors=True)
            cfg = load_config(PoseConfig, "configs/downstream/pose_cpu.yaml",
                              [f"checkpoint={args.checkpoint}", f"data.root={data}", f"output_dir={work}",
                               f"seed={seed}", f"optim.epochs={args.epochs}", "progress=false",
                               f"pictures={seed == args.seeds[0]}", *ov, *args.overrides])
            res = run(cfg)
            print(f"{name} seed {seed}: {res['overall']['mean_of_median_pos_m']:.3f} m "
                  f"{res['overall']['mean_of_median_ori_deg']:.2f} deg", flush=True)
            all_runs.setdefault(name, []).append(res)
            if seed == args.seeds[0]:
                for pic in ("trajectories", "query_attention"):
                    shutil.copy(work / f"{pic}.png", RESULTS / f"pose_{pic}_{tag.rsplit('_', 1)[0]}.png")
    summary = {name: summarize(runs) for name, runs in all_runs.items()}
    pictures.entropy_bars({n: all_runs[n][0]["attention"] for n in all_runs}, RESULTS / "pose_entropy.png")
    pictures.entropy_bars({n: all_runs[n][0]["attention"] for n in all_runs}, RESULTS / "pose_purity.png", "purity")
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": platform.processor() or
            platform.machine(), "nproc": os.cpu_count(), "torch": torch.__version__, "torch_threads": 1,
            "load_avg_start": load0, "load_avg_end": os.getloadavg(), "minutes": (time.time() - t0) / 60,
            "checkpoint": args.checkpoint, "epochs": args.epochs, "seeds": args.seeds,
            "overrides": args.overrides, "data": json.loads((data / "render_info.json").read_text()) if (data / "render_info.json").is_file() else {},
            "render_speed": {k: v["frames_per_s"] for k, v in speed.items()}}
    meta["command"] = "OMP_NUM_THREADS=1 nice -n 5 python -m benchmarks.pose.pose " + " ".join(sys.argv[1:])
    baseline = next(iter(all_runs.values()))[0]["mean_pose_baseline"]
    report = {"meta": meta, "summary": summary, "mean_pose_baseline": baseline, "runs": all_runs}
    (RESULTS / "pose.json").write_text(json.dumps(report, indent=1))
    write_markdown(report, RESULTS / "pose.md")
    print(json.dumps({"meta": meta, "summary": {n: {k: s[k] for k in ("mean_of_median_pos_m", "mean_of_median_ori_deg")}
                                                 for n, s in summary.items()}}, indent=1))


if __name__ == "__main__":
    main()
