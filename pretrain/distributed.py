"""torch.distributed set-up from torchrun-style environment variables.

The launchers (torchrun, or ``launchers/`` for SLURM) export ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; this module only reads those, so the
training code never depends on how it was launched. NCCL on CUDA, gloo on CPU.
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from pretrain.configuration import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device, timeout_s: int = 1800) -> DistInfo:
    """Joins the process group described by the environment (no-op for a single process).

    Args:
        device: The device this process trains on; selects NCCL (cuda) or gloo (cpu).
        timeout_s: Collective timeout; a rank that never arrives fails loudly after it.

    Returns:
        This process's rank, world size and local rank.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise RuntimeError(
            f"WORLD_SIZE={world_size} but {', '.join(missing)} not set: launch with torchrun "
            "or launchers.slurm, which export the rendezvous address"
        )
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        log.info(
            "joining process group: rank %d/%d via %s at %s:%s",
            rank, world_size, backend, os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"],
        )
        dist.init_process_group(
            backend=backend,
            rank=rank,
            world_size=world_size,
            timeout=datetime.timedelta(seconds=timeout_s),
        )
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank)


def select_device(requested: str, local_rank: int = 0) -> torch.device:
    """Resolves ``run.device`` (``auto``/``cpu``/``cuda``) to this process's device.

    The project's one device resolution for training: ``auto`` is CUDA when visible, else the
    CPU; ``cuda`` picks GPU ``local_rank`` (modulo the visible count) and makes it current.
    """
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError("run.device=cuda but no CUDA device is visible; use run.device=cpu or auto")
        device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
        return device
    return torch.device(requested)


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def all_gather_objects(obj: Any) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` (``[obj]`` without a process group). Collective."""
    if not is_dist():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def max_over_ranks(value: int, device: torch.device) -> int:
    """The largest ``value`` over all ranks (a host read: call it at agreed steps only)."""
    if not is_dist():
        return value
    t = torch.tensor([float(value)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def barrier() -> None:
    if is_dist():
        dist.barrier()


def cleanup() -> None:
    if is_dist():
        dist.destroy_process_group()
