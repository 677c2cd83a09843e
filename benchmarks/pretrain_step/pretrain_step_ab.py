"""Before/after: the step benchmark (`benchmarks.pretrain_step.pretrain_step`) of two checkouts, interleaved.

Each round runs the step benchmark once in the BASE checkout (e.g. a copy of main made with
``git archive main | tar -x -C /tmp/base``) and once in this one, each in its own process
(each imports its own ``pretrain``), with the same arguments, one after the other, so machine
load drifts hit both alike. Reported per regime and variant: the median over rounds of the
process CPU time per step (robust on a shared machine with one torch thread), the wall time,
and the speed-up ``base / ours``.

A base checkout from before the benchmarks became topic folders runs its
``benchmarks/pretrain_step.py`` script instead (same arguments).

Usage (from the repository root):
    python -m benchmarks.pretrain_step.pretrain_step_ab --base /tmp/base --regimes demo:128,vits16:4 \\
        --strategies attmask_high,random,block --rounds 3
Writes OUT.json and OUT.md (default benchmarks/pretrain_step/results/before_after_speedup).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.provenance import REPO, command_line, load_average, machine_line, utc_now, versions_line, write_report

MODULE = "benchmarks.pretrain_step.pretrain_step"
LEGACY_SCRIPT = "benchmarks/pretrain_step.py"  # checkouts from before the topic folders


def step_command(tree: Path) -> list[str]:
    """How ``tree`` runs its step benchmark: as a module, or (older checkouts) as a script; [] if it has none."""
    if (tree / "benchmarks" / "pretrain_step" / "pretrain_step.py").exists():
        return [sys.executable, "-m", MODULE]
    if (tree / LEGACY_SCRIPT).exists():
        return [sys.executable, LEGACY_SCRIPT]
    return []


def git_commit(tree: Path) -> str:
    """HEAD of ``tree`` if it is a git checkout, else ``"(no git)"``."""
    out = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 and (tree / ".git").exists() else "(no git)"


def run_once(tree: Path, args: argparse.Namespace, spec: str, out: Path) -> dict:
    """One process of ``tree``'s step benchmark on regime ``spec``; its per-variant rows."""
    cmd = [*step_command(tree), "--regimes", spec, "--strategies", args.strategies,
           "--attention", args.attention, "--threads", str(args.threads), "--warmup", str(args.warmup),
           "--rounds", "1", "--steps", str(args.steps), "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(tree)}
    subprocess.run(cmd, cwd=tree, env=env, check=True, capture_output=True, text=True)
    return json.loads(out.with_suffix(".json").read_text())["regimes"][spec]


def measure(args: argparse.Namespace) -> dict:
    trees = {"base": Path(args.base).resolve(), "ours": REPO}
    result = {"date": utc_now(), "command": command_line(), "machine": machine_line(), "versions": versions_line(),
              "trees": {k: f"{v} ({git_commit(v)})" for k, v in trees.items()}, "threads": args.threads,
              "load_start": load_average(), "regimes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.regimes.split(","):
            rows: dict[str, dict[str, dict[str, list[float]]]] = {}
            for r in range(args.rounds):
                for name, tree in trees.items():
                    got = run_once(tree, args, spec, Path(tmp) / f"{name}_{r}")
                    for variant, row in got.items():
                        cell = rows.setdefault(variant, {}).setdefault(name, {"cpu": [], "wall": []})
                        cell["cpu"].append(row["cpu_s_per_step"])
                        cell["wall"].append(row["s_per_step"])
                print(f"{spec} round {r + 1}/{args.rounds} done", flush=True)
            result["regimes"][spec] = {
                v: {name: {"cpu_s_per_step": statistics.median(c["cpu"]), "wall_s_per_step": statistics.median(c["wall"]),
                           "rounds_cpu_s": c["cpu"]} for name, c in cells.items()} | {
                    "speedup_cpu": statistics.median(cells["base"]["cpu"]) / statistics.median(cells["ours"]["cpu"])}
                for v, cells in rows.items()}
    result["load_end"] = load_average()
    return result


def markdown(result: dict) -> str:
    lines = ["# Pretraining step: before / after (interleaved processes, one torch thread)", "",
             f"Date: {result['date']}. Machine: {result['machine']}. Load average (1, 5, 15 min): "
             f"{result['load_start']} at the start, {result['load_end']} at the end.", "",
             f"Versions: {result['versions']}.", "",
             f"Base: {result['trees']['base']}. Ours: {result['trees']['ours']}.", "",
             f"Command: `{result['command']}`", "",
             "Median over rounds of the process CPU time per step (s); speed-up = base / ours.", "",
             "| regime | variant | base CPU s/step | ours CPU s/step | speed-up | base wall | ours wall |",
             "|---|---|---|---|---|---|---|"]
    for spec, rows in result["regimes"].items():
        for variant, r in rows.items():
            lines.append(f"| {spec} | {variant} | {r['base']['cpu_s_per_step']:.3f} | {r['ours']['cpu_s_per_step']:.3f} | "
                         f"{r['speedup_cpu']:.2f}x | {r['base']['wall_s_per_step']:.3f} | "
                         f"{r['ours']['wall_s_per_step']:.3f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="the other checkout (its step benchmark is run)")
    ap.add_argument("--regimes", default="demo:128,vits16:4")
    ap.add_argument("--strategies", default="attmask_high,random,block")
    ap.add_argument("--attention", default="auto")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--steps", type=int, default=1, help="timed steps per variant per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default="benchmarks/pretrain_step/results/before_after_speedup")
    args = ap.parse_args()
    if not step_command(Path(args.base)):
        ap.error(f"--base {args.base} has no step benchmark ({MODULE} or {LEGACY_SCRIPT}): give a checkout "
                 "of this repository")
    write_report(args.out, measure(args), markdown)


if __name__ == "__main__":
    main()
