"""Evaluator results to TensorBoard: every numeric leaf of a nested result dict becomes a scalar."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterator, Optional

log = logging.getLogger(__name__)


def flatten_scalars(results: dict, prefix: str = "") -> Iterator[tuple[str, float]]:
    """(tag, value) for every int/float leaf, tags joined with "/" (lists and strings skipped)."""
    for key, value in results.items():
        tag = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, dict):
            yield from flatten_scalars(value, tag)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            yield tag, float(value)


def tensorboard_dir(explicit: str, output: str) -> Optional[Path]:
    """Where events go: ``explicit`` if set, else ``<folder of output>/tensorboard``, else None."""
    if explicit:
        return Path(explicit)
    if output:
        return Path(output).resolve().parent / "tensorboard"
    return None


def log_results(log_dir: Optional[str | Path], results: dict, prefix: str, step: int = 0) -> Optional[Path]:
    """Write the scalars of ``results`` under ``prefix`` (e.g. "knn") to ``log_dir``; no-op when None."""
    if log_dir is None:
        return None
    from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415 - only when asked for

    log_dir = Path(log_dir)
    with SummaryWriter(str(log_dir)) as writer:
        for tag, value in flatten_scalars(results, prefix):
            writer.add_scalar(tag, value, step)
    log.info("results written to TensorBoard in %s", log_dir)
    return log_dir


def write_json(path: str, results: Any) -> None:
    """Results as indented JSON (parent folders created)."""
    import json  # noqa: PLC0415

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    log.info("results written to %s", out)
