"""The run's scalars as data: ``<output_dir>/metrics.jsonl``, one JSON object per logged step.

TensorBoard holds the same numbers for people; this file is for programs (the Fashion-MNIST study,
the time-to-pixels plot), which should not parse ``train.log`` text or event protobufs. Each line::

    {"step": 1200, "epoch": 3, "wall_time": 1765100000.5, "scalars": {"train/loss": 6.1, ...}}

``wall_time`` is Unix seconds when the line was written; ``epoch`` is the number of finished epochs.
A resumed run appends to the same file: steps trained again after a crash (between the last
checkpoint and the crash) appear twice, and a reader keeps the last line per ``(step, tag)``
(:func:`read_metrics` does).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

__all__ = ["MetricsFile", "read_metrics"]

FILE_NAME = "metrics.jsonl"


class MetricsFile:
    """Appends one line per :meth:`write`; a no-op when ``enabled`` is false (ranks other than 0)."""

    def __init__(self, output_dir: Path, enabled: bool) -> None:
        self.path = Path(output_dir) / FILE_NAME
        self.enabled = enabled

    def write(self, step: int, epoch: int, scalars: dict[str, float]) -> None:
        """One line: the step, finished epochs, the wall time and ``scalars`` (non-finite values as null)."""
        if not self.enabled or not scalars:
            return
        clean = {k: (float(v) if math.isfinite(float(v)) else None) for k, v in scalars.items()}
        line = json.dumps({"step": int(step), "epoch": int(epoch), "wall_time": round(time.time(), 3),
                           "scalars": clean})
        with self.path.open("a") as f:
            f.write(line + "\n")


def read_metrics(run_dir: str | Path, tag: str) -> list[dict]:
    """``[{"step", "epoch", "wall_time", "value"}]`` of one tag, by step, the last line per step winning.

    A line cut short by a crash (the last one, unterminated) is ignored. Missing file: ``[]``.
    """
    path = Path(run_dir) / FILE_NAME
    by_step: dict[int, dict] = {}
    if not path.is_file():
        return []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a partial last line of a killed run
        if tag in row.get("scalars", {}):
            by_step[row["step"]] = {"step": row["step"], "epoch": row["epoch"], "wall_time": row["wall_time"],
                                    "value": row["scalars"][tag]}
    return [by_step[s] for s in sorted(by_step)]
