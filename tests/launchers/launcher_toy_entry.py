"""A tiny entry point with the contract of ``pretrain.train`` (for the launcher tests).

``CONFIG``, ``run(cfg)``, ``request_checkpoint(stop)`` and ``Preempted``, a gloo all-reduce per
step, step checkpoints every ``ckpt_every`` steps in ``<output_dir>/checkpoints``, resume from
the newest one, and ``<output_dir>/steps.jsonl`` recording every start and every step done, so
a test can tell exactly which steps a requeue lost. Imported by name inside SLURM jobs (the
tests put this folder on PYTHONPATH).
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist


@dataclass
class ToyConfig:
    output_dir: str = "runs/toy"
    steps: int = 20
    ckpt_every: int = 5
    step_s: float = 0.05
    fail: bool = False
    checkpoint: str = ""  # evaluation mode (as a chained job): read it, write `output`
    output: str = ""


CONFIG = ToyConfig
_REQUEST, _STOP = threading.Event(), threading.Event()


class Preempted(RuntimeError):
    pass


def request_checkpoint(stop: bool = False) -> None:
    if stop:
        _STOP.set()
    _REQUEST.set()


def _newest_step(folder: Path) -> int:
    steps = [int(p.stem.split("_")[1]) for p in folder.glob("step_*.json")]
    return max(steps, default=0)


def _record(out: Path, rank: int, **entry) -> None:
    if rank == 0:
        with (out / "steps.jsonl").open("a") as f:
            f.write(json.dumps(entry) + "\n")


def run(cfg: ToyConfig) -> dict:
    if cfg.fail:
        raise ValueError("toy failure requested (fail=true)")
    if cfg.checkpoint:
        return _evaluate(cfg)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        dist.init_process_group("gloo", rank=rank, world_size=world)
    out, ckpts = Path(cfg.output_dir), Path(cfg.output_dir) / "checkpoints"
    ckpts.mkdir(parents=True, exist_ok=True)
    start = _newest_step(ckpts)
    _record(out, rank, event="start", step=start, world=world, pid=os.getpid())
    (out / "pids").mkdir(exist_ok=True)
    (out / "pids" / str(rank)).write_text(str(os.getpid()))  # lets a test signal every task
    total = torch.zeros(1)
    for step in range(start + 1, cfg.steps + 1):
        x = torch.ones(1)
        if world > 1:
            dist.all_reduce(x)
        total += x
        time.sleep(cfg.step_s)
        _record(out, rank, event="step", step=step)
        # every rank must agree on the request before acting on it
        flag = torch.tensor([1.0 if _REQUEST.is_set() else 0.0])
        if world > 1:
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if step % cfg.ckpt_every == 0 or flag.item() > 0:
            if rank == 0:
                (ckpts / f"step_{step:08d}.json").write_text(json.dumps({"step": step}))
            if world > 1:
                dist.barrier()
            if flag.item() > 0:
                _REQUEST.clear()
                _record(out, rank, event="checkpoint_on_request", step=step)
                if _STOP.is_set():
                    raise Preempted(f"stopped at step {step}")
    if rank == 0:
        (out / "checkpoint.pt").write_text(json.dumps({"step": cfg.steps, "time": time.time()}))
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return {"step": cfg.steps, "resumed_from": start, "world_size": world, "sum": float(total)}


def _evaluate(cfg: ToyConfig) -> dict:
    path = Path(cfg.checkpoint)  # missing if the pretraining did not finish
    try:
        step = json.loads(path.read_text())["step"]  # the toy's own checkpoint
    except UnicodeDecodeError:  # a real pretrain.train checkpoint
        step = torch.load(path, map_location="cpu", weights_only=True)["step"]
    result = {"evaluated_step": step, "checkpoint_time": path.stat().st_mtime, "time": time.time()}
    Path(cfg.output).parent.mkdir(parents=True, exist_ok=True)
    Path(cfg.output).write_text(json.dumps(result))
    return result
