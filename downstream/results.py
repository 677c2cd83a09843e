"""Where evaluator results go: a JSON file and TensorBoard scalars (every numeric leaf of the result dict)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def flatten_scalars(results: dict, prefix: str = "") -> Iterator[tuple[str, float]]:
    """(tag, value) for every int/float leaf, tags joined with "/" (lists and strings skipped)."""
    for key, value in results.items():
        tag = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, dict):
            yield from flatten_scalars(value, tag)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            yield tag, float(value)


def tensorboard_dir(explicit: str, output: str) -> Path | None:
    """Where events go: ``explicit`` if set, else ``<folder of output>/tensorboard``, else None."""
    if explicit:
        return Path(explicit)
    if output:
        return Path(output).resolve().parent / "tensorboard"
    return None


def log_results(log_dir: str | Path | None, results: dict, prefix: str, step: int = 0) -> Path | None:
    """Write the scalars of ``results`` under ``prefix`` (e.g. "knn") to ``log_dir``; no-op when None."""
    if log_dir is None:
        return None
    from torch.utils.tensorboard import (
        SummaryWriter,  # only when asked for: it imports tensorboard
    )

    log_dir = Path(log_dir)
    with SummaryWriter(str(log_dir)) as writer:
        for tag, value in flatten_scalars(results, prefix):
            writer.add_scalar(tag, value, step)
    log.info("results written to TensorBoard in %s", log_dir)
    return log_dir


def write_json(path: str, results: Any) -> None:
    """Results as indented JSON (parent folders created)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    log.info("results written to %s", out)
