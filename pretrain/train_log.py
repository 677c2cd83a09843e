"""The pretraining log: on the console from the start, in ``<output_dir>/train.log`` once the run may start.

A run whose inputs are bad (missing data, another model in the folder, too little disk space) must
not leave a new output folder with a ``train.log`` behind. :func:`start_logging` therefore logs to
stderr at once and keeps rank 0's records in memory; :func:`open_train_log` is called once the inputs
are known to be good: it creates the folder and ``train.log`` and writes the kept records first, so
the file still holds everything from the first line.
"""

from __future__ import annotations

import logging
import sys
from logging.handlers import MemoryHandler
from pathlib import Path

__all__ = ["open_train_log", "start_logging"]

_FORMAT = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")


def _ours(handler: logging.Handler) -> bool:
    return getattr(handler, "_attmask", False)


def _add(handler: logging.Handler) -> None:
    handler.setFormatter(_FORMAT)
    handler._attmask = True  # type: ignore[attr-defined]
    logging.getLogger().addHandler(handler)


def start_logging(is_main: bool) -> None:
    """INFO to stderr on rank 0 (warnings only elsewhere); rank 0's records kept for ``train.log``.

    A console handler the caller already installed (e.g. ``launchers.demo``) is kept instead of a second
    one. The ``train.log`` of an earlier run in this process is closed: each run logs to its own folder.
    """
    root = logging.getLogger()
    root.setLevel(logging.INFO if is_main else logging.WARNING)
    for h in list(root.handlers):
        if _ours(h) and isinstance(h, (logging.FileHandler, MemoryHandler)):
            root.removeHandler(h)
            h.close()
    if not root.handlers:
        _add(logging.StreamHandler(sys.stderr))
    if is_main:
        _add(MemoryHandler(capacity=10**6, flushLevel=logging.CRITICAL + 1, target=None, flushOnClose=False))


def open_train_log(output_dir: Path, is_main: bool) -> None:
    """Creates ``output_dir`` and, on rank 0, ``train.log`` holding the records kept since :func:`start_logging`."""
    output_dir.mkdir(parents=True, exist_ok=True)
    if not is_main:
        return
    root = logging.getLogger()
    file_handler = logging.FileHandler(output_dir / "train.log")
    for buffer in [h for h in root.handlers if _ours(h) and isinstance(h, MemoryHandler)]:
        file_handler.setFormatter(_FORMAT)
        buffer.setTarget(file_handler)
        buffer.flush()
        root.removeHandler(buffer)
        buffer.close()
    _add(file_handler)
