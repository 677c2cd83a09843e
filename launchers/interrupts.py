"""Signals inside a job: SLURM's SIGUSR2 (time limit) and SIGTERM (preemption) -> a checkpoint, then a requeue.

:class:`Interrupts` asks an entry point exposing ``request_checkpoint(stop=True)`` for a checkpoint at its
next step boundary and, after ``SIGUSR2``, hands over to submitit's requeue (at once should the loop not
stop within ``grace_s``); :class:`SignalOnlyInThisProcess` keeps submitit's handler from acting in
data-loader workers. Used by :class:`launchers.jobs.Job`.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("launchers.jobs")  # the job log's logger, as before the split


def preempt_signal() -> signal.Signals:
    # submitit's timeout/preemption signal (USR2 unless SUBMITIT_PREEMPT_SIGNAL says otherwise)
    return getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"))


class SignalOnlyInThisProcess:
    """Lets only this process act on ``sig``; forked children (DataLoader workers) ignore it.

    SLURM signals every process of the step, DataLoader workers included. Forked workers
    inherit submitit's handler, and would each checkpoint, requeue and exit (or, with spawned
    workers, die of the signal). Wrapping the handler with a pid check leaves the decision
    to the task's main process.
    """

    def __init__(self, sig: signal.Signals) -> None:
        self.sig = sig
        self.previous: Any = None

    def __enter__(self) -> None:
        self.previous = signal.getsignal(self.sig)
        if not callable(self.previous):
            return  # nobody handles it here (not a submitit job): leave the default
        owner, handler = os.getpid(), self.previous

        def guarded(signum: int, frame: Any, _handler: Callable = handler) -> None:
            if os.getpid() == owner:
                _handler(signum, frame)

        signal.signal(self.sig, guarded)

    def __exit__(self, *exc: object) -> None:
        if callable(self.previous):
            signal.signal(self.sig, self.previous)


class Interrupts:
    """Routes SIGUSR2 / SIGTERM of the task's main process to ``request_checkpoint(stop=True)``.

    submitit's own SIGUSR2 handler (checkpoint + ``scontrol requeue`` + exit, rank 0 only) is
    kept and called by :meth:`hand_over` once the loop has stopped, or by a timer after
    ``grace_s`` if it has not.
    """

    def __init__(self, request_checkpoint: Callable[..., None], rank: int, grace_s: float) -> None:
        self.request_checkpoint, self.rank, self.grace_s = request_checkpoint, rank, grace_s
        self.usr_sig = preempt_signal()
        self.owner = os.getpid()
        self.received: str | None = None
        self.previous: dict[int, Any] = {}
        self.timer: threading.Timer | None = None

    def __enter__(self) -> Interrupts:  # noqa: PYI034 - never subclassed
        for sig in (self.usr_sig, signal.SIGTERM):
            self.previous[sig] = signal.getsignal(sig)
            signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.timer is not None:
            self.timer.cancel()
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: Any) -> None:
        if os.getpid() != self.owner:
            return  # a forked DataLoader worker: the main process decides
        name = signal.Signals(signum).name
        if self.received is None or signum == self.usr_sig:
            self.received = name
        logger.warning("%s received: asking for a checkpoint at the next step", name)
        self.request_checkpoint(stop=True)
        if signum == self.usr_sig and self.rank == 0 and self.timer is None:
            self.timer = threading.Timer(self.grace_s, self._requeue_from_thread)
            self.timer.daemon = True
            self.timer.start()

    def _submitit_handler(self) -> Callable | None:
        handler = self.previous.get(self.usr_sig)
        return handler if callable(handler) else None

    def _requeue_from_thread(self) -> None:
        logger.warning("no checkpoint within %.0f s of %s: requeueing now", self.grace_s, self.received)
        try:
            self.hand_over()
        except SystemExit as exc:  # sys.exit in a thread ends only the thread
            os._exit(exc.code if isinstance(exc.code, int) else 1)

    def hand_over(self) -> None:
        """After the loop stopped: requeue (SIGUSR2 on rank 0) or just exit."""
        if self.timer is not None:
            self.timer.cancel()
        handler = self._submitit_handler()
        if self.received == self.usr_sig.name and self.rank == 0 and handler is not None:
            handler(self.usr_sig, None)  # submitit: Job.checkpoint() + scontrol requeue + exit
        # other ranks (rank 0 requeues the whole job), or SIGTERM (SLURM requeues/cancels itself)
        sys.exit(143 if self.received == "SIGTERM" else 0)
