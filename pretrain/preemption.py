"""The checkpoint-request protocol: signals and launchers ask, the loop answers at a step boundary.

A signal handler may run at any bytecode of the main thread, so it only sets a flag; the training
loop polls the flags after each step (:meth:`CheckpointRequests.poll`), writes a checkpoint and,
for a stop request, raises :class:`Preempted`. With several ranks the flags are combined with a
max-reduction, so every rank writes/stops at the same step and their collectives keep matching.

Entry points: ``python -m pretrain.train`` installs :func:`install_signal_handlers` (SIGTERM and
SIGUSR2 -> checkpoint and stop); the SLURM launcher calls :func:`request_checkpoint` itself.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

import torch

from pretrain.distributed import max_over_ranks

log = logging.getLogger(__name__)

NOTHING, CHECKPOINT, CHECKPOINT_AND_STOP = 0, 1, 2


class Preempted(RuntimeError):
    """Raised after a requested checkpoint was written with ``stop=True``."""


class CheckpointRequests:
    """Two thread- and signal-safe flags: "write a checkpoint" and "then stop"."""

    def __init__(self) -> None:
        self._checkpoint = threading.Event()
        self._stop = threading.Event()

    def request(self, stop: bool = False) -> None:
        """Asks for a checkpoint at the next step boundary (and a stop after it)."""
        if stop:
            self._stop.set()
        self._checkpoint.set()

    def local(self) -> int:
        """This process's request: NOTHING, CHECKPOINT or CHECKPOINT_AND_STOP."""
        if not self._checkpoint.is_set():
            return NOTHING
        return CHECKPOINT_AND_STOP if self._stop.is_set() else CHECKPOINT

    def poll(self, world_size: int, device: torch.device, step: int, every: int) -> int:
        """The request all ranks agree on after ``step`` (the maximum over ranks).

        Alone, the flags are read every step. With several ranks they are compared every step on
        the CPU (cheap) and every ``every`` steps on GPUs (a host sync), so a preemption costs at
        most that many steps of latency.
        """
        if world_size == 1:
            return self.local()
        if device.type == "cuda" and step % every:
            return NOTHING
        agreed = max_over_ranks(self.local(), device)
        if agreed:
            self.request(stop=agreed == CHECKPOINT_AND_STOP)
        return agreed

    def answered(self, step: int) -> None:
        """Called once the checkpoint of a request is written; raises :class:`Preempted` on a stop."""
        if not self._checkpoint.is_set():
            return
        self._checkpoint.clear()
        if self._stop.is_set():
            self._stop.clear()
            raise Preempted(f"checkpoint written at step {step}; stopping as requested")

    def clear(self) -> None:
        self._checkpoint.clear()
        self._stop.clear()


# The process-wide instance: signal handlers and launchers have no other way to reach the loop.
REQUESTS = CheckpointRequests()


def request_checkpoint(stop: bool = False) -> None:
    """Asks the running loop for a checkpoint at the next step boundary (signal-safe).

    With ``stop=True`` the loop then raises :class:`Preempted`, e.g. on a preemption signal,
    so a launcher can requeue the job knowing nothing since is lost.
    """
    REQUESTS.request(stop)


def install_signal_handlers(signals: Iterable[signal.Signals] = (signal.SIGTERM, signal.SIGUSR2)) -> None:
    """SIGTERM / SIGUSR2 -> checkpoint at the next step boundary, then stop cleanly.

    Only the process that installed the handlers acts; forked children (DataLoader workers)
    inherit them and ignore the signal, leaving the decision to the training process.
    Must be called from the main thread.
    """
    owner = os.getpid()

    def handler(signum: int, frame: Any) -> None:
        if os.getpid() == owner:
            REQUESTS.request(stop=True)

    for sig in signals:
        signal.signal(sig, handler)


def run_resumable(run: Callable[[Any], Any], cfg: Any) -> None:
    """A resumable command's body: signal handlers installed, ``run(cfg)`` called; a config error
    becomes one ``config error:`` line and exit status 2, a checkpoint that cannot be written (disk
    full) one ``error:`` line and exit status 2, a requested stop (checkpoint written) a warning saying
    how to resume. Shared by ``pretrain.train`` and ``downstream.finetune``."""
    from pretrain.checkpoint import CheckpointError
    from pretrain.configuration import ConfigError

    install_signal_handlers()
    try:
        run(cfg)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except Preempted as exc:
        log.warning("%s; run the same command again to resume from it", exc)
