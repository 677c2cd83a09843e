"""Sweeps: ``--grid key=v1,v2`` axes -> one override list and one output folder per combination."""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence

from pretrain.configuration import ConfigError


def expand_grid(grid: Sequence[str]) -> list[list[str]]:
    """``["a=1,2", "b=x,y"]`` -> the 4 override lists of the cartesian product (in order)."""
    axes = []
    for item in grid:
        key, sep, values = item.partition("=")
        if not sep or not values:
            raise ConfigError(f"--grid {item!r} is not of the form key=v1,v2,... (e.g. run.seed=0,1,2)")
        axes.append([f"{key}={v}" for v in values.split(",")])
    return [list(combo) for combo in itertools.product(*axes)] if axes else [[]]


def run_name(overrides: Sequence[str]) -> str:
    """A folder name for one sweep combination: ``mask.strategy=block,run.seed=1`` -> ``strategy-block_seed-1``."""
    parts = []
    for item in overrides:
        key, _, value = item.partition("=")
        parts.append(f"{key.rsplit('.', 1)[-1]}-{re.sub(r'[^A-Za-z0-9._-]', '_', value)}")
    return "_".join(parts) or "run"
