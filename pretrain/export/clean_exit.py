"""Entry-point error handling: a user mistake is one ``error: ...`` line and exit status 2, no traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

__all__ = ["USER_ERRORS", "run_cleanly"]

T = TypeVar("T")

# bad paths, unreadable or foreign checkpoints (CheckpointError is a ValueError), refused options
USER_ERRORS = (OSError, ValueError)


def run_cleanly(fn: Callable[[], T]) -> T:
    """Call ``fn()``; on a :data:`USER_ERRORS` print its message to stderr and exit with status 2."""
    try:
        return fn()
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
