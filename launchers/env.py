"""SLURM task environment -> the torchrun-style variables that ``pretrain.distributed`` reads.

Inside an ``srun`` step every task is one process (one per GPU). SLURM describes it with
``SLURM_PROCID`` (global rank), ``SLURM_NTASKS`` (world size), ``SLURM_LOCALID`` (rank on the
node), ``SLURM_NODEID`` and ``SLURM_JOB_NODELIST``; torch.distributed wants ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``. This module translates
one into the other, so the training code never reads ``SLURM_*`` itself.

The two classic causes of a multi-node job hanging at ``init_process_group``:

- a master address that differs between tasks. Every task computes it the same way: the first
  host of ``scontrol show hostnames $SLURM_JOB_NODELIST`` (the node that runs rank 0).
- a port that another job on the same node already holds. The port is derived from the job id
  in ``[15000, 30000)``, below Linux's ephemeral range (32768-60999), so two jobs sharing a node
  get different ports and outgoing connections never steal it.

Jobs run by submitit's local executor (``--cluster local``) carry ``SUBMITIT_LOCAL_*``
variables instead; they map to a single-node world on 127.0.0.1.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass

logger = logging.getLogger(__name__)

PORT_RANGE = (15000, 30000)


@dataclass(frozen=True)
class DistributedEnv:
    """Where this process sits in a job: what torch.distributed needs to rendezvous."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    node_rank: int
    num_nodes: int
    master_addr: str
    master_port: int
    job_id: str

    def variables(self) -> dict[str, str]:
        """The torchrun-style environment variables for this process."""
        return {
            "RANK": str(self.rank),
            "WORLD_SIZE": str(self.world_size),
            "LOCAL_RANK": str(self.local_rank),
            "LOCAL_WORLD_SIZE": str(self.local_world_size),
            "GROUP_RANK": str(self.node_rank),
            "MASTER_ADDR": self.master_addr,
            "MASTER_PORT": str(self.master_port),
        }


def master_port_for_job(job_id: str | int, port_range: tuple[int, int] = PORT_RANGE) -> int:
    """A rendezvous port that is a pure function of the job id (same on every node).

    Args:
        job_id: SLURM job id ("1234", or "1234_5" for an array task: digits only are used).
        port_range: Half-open range of allowed ports, unprivileged and below the ephemeral range.

    Returns:
        A port in ``port_range``; consecutive job ids get consecutive ports.
    """
    digits = re.sub(r"\D", "", str(job_id))
    if not digits:
        raise ValueError(f"job id {job_id!r} holds no digits: cannot derive a port from it")
    low, high = port_range
    return low + int(digits) % (high - low)


def first_host(nodelist: str) -> str:
    """First host of a SLURM node list, e.g. ``"gpu[003-005,9],cpu1"`` -> ``"gpu003"``.

    Asks ``scontrol show hostnames`` (SLURM's own expansion); parses the list itself only when
    scontrol is unavailable (the same rules for the first entry: prefix + first number of the
    first range, keeping its zero padding).
    """
    try:
        out = subprocess.run(
            ["scontrol", "show", "hostnames", nodelist],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout.split()
        if out:
            return out[0]
    except (OSError, subprocess.SubprocessError) as exc:
        logger.debug("scontrol show hostnames failed (%s); parsing %r", exc, nodelist)
    return _first_host_of_pattern(nodelist)


def _first_host_of_pattern(nodelist: str) -> str:
    match = re.match(r"([^,\[]*)(?:\[([^\]]*)\])?", nodelist.strip())
    if not match or not match.group(0):
        raise ValueError(f"cannot read a host from node list {nodelist!r}")
    prefix, ranges = match.group(1), match.group(2)
    if ranges is None:
        return prefix
    first = ranges.split(",")[0].split("-")[0]
    return prefix + first


def _tasks_on_node(tasks_per_node: str, node_rank: int) -> int:
    """Reads ``SLURM_TASKS_PER_NODE`` (e.g. ``"2(x3),1"``) for one node."""
    counts: list[int] = []
    for part in tasks_per_node.split(","):
        m = re.fullmatch(r"(\d+)(?:\(x(\d+)\))?", part.strip())
        if not m:
            raise ValueError(f"cannot parse SLURM_TASKS_PER_NODE={tasks_per_node!r}")
        counts += [int(m.group(1))] * int(m.group(2) or 1)
    return counts[min(node_rank, len(counts) - 1)]


def from_slurm(environ: Mapping[str, str]) -> DistributedEnv:
    """Reads the environment of one task of an ``srun`` step.

    Raises:
        KeyError: When a SLURM variable is missing (not inside ``srun``).
    """
    job_id = environ["SLURM_JOB_ID"]
    world = int(environ.get("SLURM_STEP_NUM_TASKS") or environ["SLURM_NTASKS"])
    node_rank = int(environ.get("SLURM_NODEID", "0"))
    per_node = environ.get("SLURM_STEP_TASKS_PER_NODE") or environ.get("SLURM_TASKS_PER_NODE") or str(world)
    nodelist = environ.get("SLURM_STEP_NODELIST") or environ["SLURM_JOB_NODELIST"]
    return DistributedEnv(
        rank=int(environ["SLURM_PROCID"]),
        world_size=world,
        local_rank=int(environ.get("SLURM_LOCALID", "0")),
        local_world_size=_tasks_on_node(per_node, node_rank),
        node_rank=node_rank,
        num_nodes=int(environ.get("SLURM_STEP_NUM_NODES") or environ.get("SLURM_JOB_NUM_NODES", "1")),
        master_addr=first_host(nodelist),
        master_port=master_port_for_job(job_id),
        job_id=job_id,
    )


def from_submitit_local(environ: Mapping[str, str]) -> DistributedEnv:
    """Reads the environment of a task started by submitit's local executor (one node)."""
    world = int(environ["SUBMITIT_LOCAL_NTASKS"])
    job_id = environ["SUBMITIT_LOCAL_JOB_ID"]  # the controller's pid: unique while it runs
    return DistributedEnv(
        rank=int(environ["SUBMITIT_LOCAL_GLOBALID"]),
        world_size=world,
        local_rank=int(environ["SUBMITIT_LOCAL_LOCALID"]),
        local_world_size=world,
        node_rank=0,
        num_nodes=1,
        master_addr="127.0.0.1",
        master_port=master_port_for_job(job_id),
        job_id=job_id,
    )


def detect(environ: Mapping[str, str] | None = None) -> DistributedEnv | None:
    """The distributed environment of this process, or None outside SLURM/submitit tasks."""
    environ = os.environ if environ is None else environ
    if "SLURM_PROCID" in environ and "SLURM_JOB_ID" in environ:
        return from_slurm(environ)
    if "SUBMITIT_LOCAL_GLOBALID" in environ:
        return from_submitit_local(environ)
    return None


def export(dist: DistributedEnv, environ: MutableMapping[str, str] | None = None) -> None:
    """Writes the torchrun-style variables into ``environ`` (default: this process).

    Also caps intra-op threads at the task's CPUs (``OMP_NUM_THREADS`` from
    ``SLURM_CPUS_PER_TASK``, unless already set): otherwise every rank on a node starts one
    thread per core and they slow each other down.
    """
    environ = os.environ if environ is None else environ
    environ.update(dist.variables())
    if environ.get("SLURM_CPUS_PER_TASK") and "OMP_NUM_THREADS" not in environ:
        environ["OMP_NUM_THREADS"] = environ["SLURM_CPUS_PER_TASK"]
    logger.info(
        "distributed env: rank %d/%d (local %d/%d, node %d/%d), master %s:%d",
        dist.rank, dist.world_size, dist.local_rank, dist.local_world_size,
        dist.node_rank, dist.num_nodes, dist.master_addr, dist.master_port,
    )


def restart_count(environ: Mapping[str, str] | None = None) -> int:
    """How many times SLURM has requeued this job (0 on the first start, and outside SLURM)."""
    environ = os.environ if environ is None else environ
    return int(environ.get("SLURM_RESTART_COUNT", "0") or 0)
