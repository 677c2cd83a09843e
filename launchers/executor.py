"""SLURM resources as a typed config, and the submitit executor / sbatch script they make.

``configs/slurm/*.yaml`` override :class:`SlurmConfig`; the CLI adds ``slurm.<key>=value``.
One task per GPU: ``tasks_per_node`` defaults to ``gpus_per_node`` (1 on CPU-only jobs).
"""

from __future__ import annotations

import logging
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

CLUSTERS = ("slurm", "local", "debug")
REPO = Path(__file__).resolve().parents[1]


@dataclass
class SlurmConfig:
    cluster: str = "slurm"  # slurm | local (submitit's local executor) | debug (in this process)
    job_name: str = "attmask"
    partition: str = ""
    account: str = ""
    qos: str = ""
    constraint: str = ""
    nodes: int = 1
    gpus_per_node: int = 0
    tasks_per_node: int = 0  # 0: one task per GPU (1 without GPUs)
    cpus_per_task: int = 8
    mem_gb: float = 0.0  # 0: the partition's default
    time_min: int = 24 * 60
    exclusive: bool = False
    folder: str = ""  # submitit files and logs; "": <output_dir>/slurm
    signal_delay_s: int = 120  # SIGUSR2 this long before the time limit: checkpoint + requeue
    max_num_timeout: int = 10  # requeues on time limit (submitit)
    max_requeues: int = 20  # requeues of any cause (timeout, preemption, scontrol requeue, node failure)
    array_parallelism: int = 64  # sweep runs allowed to run at once
    setup: list[str] = field(default_factory=list)  # shell lines before srun (module load, exports)
    sbatch_extra: list[str] = field(default_factory=list)  # e.g. ["--mail-type=END", "--reservation=x"]
    srun_args: list[str] = field(default_factory=list)
    eval_gpus: int = 1  # GPUs for chained evaluation jobs (one task, one node)
    eval_time_min: int = 4 * 60


def tasks_per_node(cfg: SlurmConfig) -> int:
    """One task per GPU unless set explicitly."""
    if cfg.tasks_per_node > 0:
        return cfg.tasks_per_node
    return max(1, cfg.gpus_per_node)


def _extra_options(options: list[str]) -> dict[str, Any]:
    """``["--mail-type=END", "--requeue"]`` -> ``{"mail-type": "END", "requeue": True}``."""
    out: dict[str, Any] = {}
    for opt in options:
        key, sep, value = opt.lstrip("-").partition("=")
        if not key:
            raise ValueError(f"bad sbatch option {opt!r} in slurm.sbatch_extra: write it as --name=value")
        out[key] = value if sep else True
    return out


def sbatch_parameters(cfg: SlurmConfig, dependency: str | None = None) -> dict[str, Any]:
    """submitit SlurmExecutor parameters (sbatch names) for this config."""
    params: dict[str, Any] = {
        "job_name": cfg.job_name,
        "nodes": cfg.nodes,
        "ntasks_per_node": tasks_per_node(cfg),
        "cpus_per_task": cfg.cpus_per_task,
        "time": cfg.time_min,
        "signal_delay_s": cfg.signal_delay_s,
        "array_parallelism": cfg.array_parallelism,
        "stderr_to_stdout": False,
    }
    if cfg.gpus_per_node > 0:
        params["gpus_per_node"] = cfg.gpus_per_node
    if cfg.mem_gb > 0:
        params["mem"] = f"{int(cfg.mem_gb * 1024)}MB" if cfg.mem_gb != int(cfg.mem_gb) else f"{int(cfg.mem_gb)}GB"
    for key in ("partition", "account", "qos", "constraint"):
        if getattr(cfg, key):
            params[key] = getattr(cfg, key)
    if cfg.exclusive:
        params["exclusive"] = True
    if dependency:
        params["dependency"] = dependency
    # jobs import this checkout even when it is not pip-installed and sbatch ran elsewhere
    params["setup"] = [f"export PYTHONPATH={shlex.quote(str(REPO))}${{PYTHONPATH:+:$PYTHONPATH}}", *cfg.setup]
    if cfg.srun_args:
        params["srun_args"] = list(cfg.srun_args)
    # explicit, as sites with JobRequeue=0 would otherwise refuse the job's own `scontrol requeue`
    params["additional_parameters"] = {"requeue": True, **_extra_options(list(cfg.sbatch_extra))}
    return params


def eval_config(cfg: SlurmConfig) -> SlurmConfig:
    """Resources of a chained evaluation job: one node, one task, ``eval_gpus`` GPUs if any."""
    from dataclasses import replace

    gpus = min(cfg.eval_gpus, cfg.gpus_per_node) if cfg.gpus_per_node > 0 else 0
    return replace(
        cfg, nodes=1, tasks_per_node=1, gpus_per_node=gpus, time_min=cfg.eval_time_min,
        job_name=cfg.job_name, exclusive=False,
    )


def make_executor(cfg: SlurmConfig, folder: str | Path, dependency: str | None = None) -> Any:
    """A submitit executor for ``cfg.cluster`` with the resources of ``cfg``."""
    import submitit

    if cfg.cluster not in CLUSTERS:
        raise ValueError(f"slurm.cluster={cfg.cluster!r}: use one of {', '.join(CLUSTERS)}")
    if cfg.cluster == "slurm":
        executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=cfg.max_num_timeout)
        executor.update_parameters(**sbatch_parameters(cfg, dependency))
        return executor
    if cfg.cluster == "local":
        executor = submitit.LocalExecutor(folder=folder, max_num_timeout=cfg.max_num_timeout)
        executor.update_parameters(
            timeout_min=cfg.time_min, tasks_per_node=tasks_per_node(cfg) * cfg.nodes,
            gpus_per_node=cfg.gpus_per_node, signal_delay_s=cfg.signal_delay_s,
        )
        return executor
    return submitit.DebugExecutor(folder=folder)


def sbatch_script(cfg: SlurmConfig, folder: str | Path, dependency: str | None = None,
                  array_size: int | None = None) -> str:
    """The sbatch script submitit would submit (for ``--dry-run``; needs no SLURM install)."""
    import sys

    from submitit.slurm.slurm import _make_sbatch_string  # the very function submitit uses

    params = sbatch_parameters(cfg, dependency)
    command = " ".join([shlex.quote(sys.executable), "-u -m submitit.core._submit", shlex.quote(str(folder))])
    return _make_sbatch_string(command=command, folder=folder, map_count=array_size, **params)
