"""Collects the parts of `benchmarks/gpu_suite/gpu_suite.sh` into gpu_suite.md and gpu_suite.json.

Reads PARTS/step.json, attention.json, knn.json (written by `benchmarks.pretrain_step.pretrain_step` /
`benchmarks.knn.knn_gpu`)
and ffcv.md where present, checks the issue-12 goals (>= 2,000 img/s per H100-class GPU,
>= 40% MFU, AttMask-High <= 3% over random) and writes one report with machine, versions, date
and the command.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.provenance import load_average, machine_line, utc_now, versions_line

GOAL_IMG_S, GOAL_MFU, GOAL_ATTMASK_OVERHEAD = 2000.0, 0.40, 0.03


def goal_lines(step: dict) -> list[str]:
    """Goal checks on the first regime of the step part (the ViT-S/16 one on a GPU)."""
    rows = next(iter(step["regimes"].values()))
    lines = []
    for mode in ("compiled", "eager"):
        att, rnd = rows.get(f"attmask_high/fused/{mode}"), rows.get(f"random/fused/{mode}")
        if att is None:
            continue
        ok = "met" if att["img_per_s"] >= GOAL_IMG_S else "NOT met"
        lines.append(f"- {mode}: {att['img_per_s']:.0f} img/s per GPU with AttMask-High "
                     f"(goal >= {GOAL_IMG_S:.0f}: {ok})")
        if "mfu" in att:
            ok = "met" if att["mfu"] >= GOAL_MFU else "NOT met"
            lines.append(f"- {mode}: MFU {att['mfu']:.1%} (goal >= {GOAL_MFU:.0%}: {ok}), "
                         f"{att['gflop_per_img']:.1f} GFLOP per image per step")
        if rnd is not None:
            over = att["s_per_step"] / rnd["s_per_step"] - 1
            ok = "met" if over <= GOAL_ATTMASK_OVERHEAD else "NOT met"
            lines.append(f"- {mode}: AttMask-High {over:+.1%} per step over random (goal <= "
                         f"{GOAL_ATTMASK_OVERHEAD:.0%}: {ok})")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--command", required=True)
    ap.add_argument("--seconds", type=int, required=True)
    ap.add_argument("--smoke", default="0")
    ap.add_argument("--status", nargs="*", default=[])
    args = ap.parse_args()
    parts, results = Path(args.parts), Path(args.results)
    smoke = args.smoke == "1"
    data = {name: json.loads((parts / f"{name}.json").read_text())
            for name in ("step", "attention", "knn") if (parts / f"{name}.json").exists()}
    summary = {"date": utc_now(), "command": args.command, "machine": machine_line(), "versions": versions_line(),
               "load_average_end": load_average(), "seconds": args.seconds, "smoke": smoke,
               "status": dict(s.split("=", 1) for s in args.status), "parts": data}
    lines = ["# GPU suite (issue 12): pretraining step, attention path, k-NN, FFCV loader", "",
             (f"Date: {summary['date']}. Machine: {summary['machine']}. Load average at the end: "
             f"{summary['load_average_end']}."), "",
             f"Versions: {summary['versions']}.", "",
             f"Command: `{args.command}` ({args.seconds} s in all).", ""]
    if smoke:
        lines += [("**CPU smoke run**: every part shrunk and run on the CPU to check the suite end to end. "
                  "These are not GPU numbers: the GPU numbers await a GPU."), ""]
    lines += ["Parts: " + "; ".join(f"{k}: {v}" for k, v in summary["status"].items()), ""]
    if "step" in data:
        lines += ["## Goals", "", *goal_lines(data["step"]), ""]
    for name, title in (("step", "Step: AttMask-High vs random, eager vs compiled"),
                        ("attention", "Step: fused vs explicit attention (eager)"), ("knn", "k-NN")):
        md = parts / f"{name}.md"
        if md.exists():
            body = md.read_text().split("\n", 1)[1]  # drop the part's own title
            lines += [f"## {title}", body]
    if (parts / "ffcv.md").exists():
        lines += ["## FFCV loader, colour ops on the device", (parts / "ffcv.md").read_text().split("\n", 1)[1]]
    results.mkdir(parents=True, exist_ok=True)
    (results / "gpu_suite.json").write_text(json.dumps(summary, indent=2))
    (results / "gpu_suite.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
