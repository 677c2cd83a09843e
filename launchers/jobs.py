"""The callables that submitit runs inside a job: one entry point, one config, some overrides.

A :class:`Job` is pickled at submission and executed by every task of the job. It

1. turns the SLURM (or submitit-local) task environment into ``RANK``/``WORLD_SIZE``/... so the
   entry point initialises torch.distributed itself (:mod:`launchers.env`);
2. loads the config *inside* the job, so a typo shows in the job's log with the valid keys;
3. refuses to start once the job has been requeued more than ``max_requeues`` times;
4. calls ``module.run(cfg)`` and returns its result dict.

Timeouts and preemption. SLURM sends ``SIGUSR2`` ``signal_delay_s`` before the time limit
(``sbatch --signal``), and ``SIGTERM`` before killing a job it preempts, requeues or cancels.

- Entry points exposing ``request_checkpoint(stop=True)`` (``pretrain.train``): on either
  signal the loop writes a step checkpoint at the next step boundary and raises its
  ``Preempted``; after ``SIGUSR2`` rank 0 then hands over to submitit, which calls
  :meth:`Job.checkpoint` (the same job again) and runs ``scontrol requeue``. Should the loop not
  stop within ``grace_s``, the requeue happens anyway (losing only the steps since the last
  periodic checkpoint).
- Other entry points: submitit's handler requeues at once (evaluations simply restart).

The job holds no training state of its own: the entry point resumes from the newest step
checkpoint in its output folder, so any requeue - ours, ``scontrol requeue``, node failure -
loses at most the steps since that checkpoint.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from launchers import env
from launchers.interrupts import Interrupts, preempt_signal, SignalOnlyInThisProcess
from pretrain.configuration import load_config

logger = logging.getLogger(__name__)

# Short task names accepted by the CLI -> modules exposing CONFIG, run(cfg) and main(argv).
ENTRY_POINTS = {
    "pretrain": "pretrain.train",
    "knn": "downstream.knn.cli",
    "linear": "downstream.linear.cli",
    "features": "downstream.features.cli",
    "pose": "downstream.pose.train",
    "localization": "downstream.localization.cli",
    "robustness": "downstream.robustness.cli",
    "finetune": "downstream.finetune.cli",
    "segmentation": "downstream.segmentation.cli",
}
LAUNCH_LOG = "launches.jsonl"


def resolve_entry_point(name: str) -> str:
    """Maps a task name ("pretrain", "knn", ...) or a dotted module path to a module path."""
    if name in ENTRY_POINTS:
        return ENTRY_POINTS[name]
    if all(part.isidentifier() for part in name.split(".")):
        return name
    raise ValueError(
        f"unknown task {name!r}: use one of {', '.join(ENTRY_POINTS)} or a module path "
        "exposing CONFIG and run(cfg) (e.g. pretrain.train)"
    )


def load_entry_point(module: str) -> ModuleType:
    """Imports an entry-point module and checks it exposes ``CONFIG`` and ``run``."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            raise ValueError(
                f"no module {module!r}: use one of {', '.join(ENTRY_POINTS)} or an importable module path"
            ) from exc
        raise
    missing = [name for name in ("CONFIG", "run") if not hasattr(mod, name)]
    if missing:
        raise TypeError(f"module {module} lacks {', '.join(missing)}: an entry point needs CONFIG and run(cfg)")
    return mod


class RequeueLimitError(RuntimeError):
    """The job was requeued more often than its config allows."""


class Job:
    """A checkpointable submitit callable running ``module.run(load_config(...))``.

    Args:
        module: Dotted module path of the entry point (e.g. ``"pretrain.train"``).
        config: YAML config path (made absolute here, so the job does not depend on its cwd).
        overrides: ``key=value`` config overrides.
        output_dir: The run's output folder; the launch history goes to ``launches.jsonl`` there.
        max_requeues: Requeues allowed (timeouts, preemptions, ``scontrol requeue``); the
            job fails with a clear message past it. Negative: unlimited.
        grace_s: After SIGUSR2, how long the loop may take to write its checkpoint and stop
            before the job is requeued regardless (keep it below ``signal_delay_s``).
    """

    def __init__(
        self,
        module: str,
        config: str | None = None,
        overrides: Sequence[str] = (),
        output_dir: str | None = None,
        max_requeues: int = 10,
        grace_s: float = 60.0,
    ) -> None:
        self.module = module
        self.config = str(Path(config).resolve()) if config else None
        self.overrides = list(overrides)
        self.output_dir = str(Path(output_dir).resolve()) if output_dir else None
        self.max_requeues = max_requeues
        self.grace_s = grace_s

    def __repr__(self) -> str:
        return f"Job({self.module}, config={self.config}, overrides={self.overrides})"

    def load(self) -> tuple[ModuleType, Any]:
        """Imports the entry point and builds its config (raises ConfigError on typos)."""
        mod = load_entry_point(self.module)
        return mod, load_config(mod.CONFIG, self.config, self.overrides)

    def __call__(self) -> Any:
        _configure_logging()
        dist = env.detect()
        if dist is not None:
            env.export(dist)
        rank = dist.rank if dist else 0
        restarts = env.restart_count()
        self._record_launch(rank, restarts)
        if 0 <= self.max_requeues < restarts:
            raise RequeueLimitError(
                f"job was requeued {restarts} times, more than max_requeues={self.max_requeues}: "
                f"look at the earlier logs for the cause, then resubmit (the run resumes from "
                f"{self.output_dir or 'its output folder'}) or raise slurm.max_requeues"
            )
        mod, cfg = self.load()
        logger.info("running %s (start %d of this job) on %s", self.module, restarts + 1, socket.gethostname())
        if not hasattr(mod, "request_checkpoint"):
            with SignalOnlyInThisProcess(preempt_signal()):
                return mod.run(cfg)
        with Interrupts(mod.request_checkpoint, rank, self.grace_s) as interrupts:
            try:
                return mod.run(cfg)
            except Exception as exc:
                if not (interrupts.received and isinstance(exc, getattr(mod, "Preempted", ()))):
                    raise
                logger.warning("stopped after a checkpoint on %s", interrupts.received)
        interrupts.hand_over()  # requeues (SIGUSR2, rank 0) or exits: never returns
        raise AssertionError("unreachable")

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """Called by submitit on timeout/preemption: requeue this same job.

        Nothing to save here: the entry point's step checkpoints are the state, and the
        requeued job resumes from the newest one.
        """
        import submitit  # only inside a submitit job

        logger.warning("%s interrupted: requeueing; it resumes from its newest step checkpoint", self)
        return submitit.helpers.DelayedSubmission(
            Job(self.module, self.config, self.overrides, self.output_dir, self.max_requeues, self.grace_s)
        )

    def _record_launch(self, rank: int, restarts: int) -> None:
        """Appends one line per start (rank 0) to ``<output_dir>/launches.jsonl``."""
        if rank != 0 or not self.output_dir:
            return
        path = Path(self.output_dir) / LAUNCH_LOG
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "job_id": os.environ.get("SLURM_JOB_ID") or os.environ.get("SUBMITIT_LOCAL_JOB_ID", ""),
            "array_task": os.environ.get("SLURM_ARRAY_TASK_ID", ""),
            "restart": restarts,
            "host": socket.gethostname(),
            "module": self.module,
        }
        with path.open("a") as f:
            f.write(json.dumps(record) + "\n")


def read_launches(output_dir: str | Path) -> list[dict]:
    """The launch history written by :class:`Job` (one dict per start of the job)."""
    path = Path(output_dir) / LAUNCH_LOG
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _configure_logging() -> None:
    """INFO logs to the job's stderr log (the entry point may reconfigure)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("submitit").propagate = False  # it has its own handler: no double lines
