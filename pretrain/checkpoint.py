"""Atomic training checkpoints: write, rotate, find the newest good one, RNG state.

Layout under ``<output_dir>/checkpoints/``: ``step_00001234.pt`` files, each complete
(student, teacher, optimizer, scaler, loss centers, step, RNG, data position). A file is written
to a temporary name, flushed and fsync'ed, then renamed, so a crash never leaves a half-written
file under a real name; a file truncated some other way (full disk, copied by hand) is detected
on load and skipped in favour of the previous one. Everything is loadable with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import logging
import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)

FORMAT = "attmask-ssl/1"
_STEP_FILE = re.compile(r"^step_(\d{8,})\.pt$")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used, with the path and what to do.

    The project's one checkpoint error: training checkpoints here, pretrained-weight files in
    :mod:`pretrain.models.weights`.
    """


def checkpoint_dir(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints"


def atomic_save(obj: Any, path: str | Path) -> Path:
    """Saves ``obj`` with torch.save via a temporary file + fsync + rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as fh:
        torch.save(obj, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Loads one of our checkpoints (weights_only) or raises :class:`CheckpointError`."""
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, bad pickle, wrong file: all mean "unusable"
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(exc).__name__}: {exc}); "
                              "it may be truncated - delete it to resume from an older one") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a training checkpoint of this project (format {FORMAT})")
    return ckpt


def list_step_checkpoints(output_dir: str | Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every step checkpoint, oldest first."""
    folder = checkpoint_dir(output_dir)
    found = []
    if folder.is_dir():
        for p in folder.iterdir():
            m = _STEP_FILE.match(p.name)
            if m:
                found.append((int(m.group(1)), p))
    return sorted(found)


def latest_good_checkpoint(output_dir: str | Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest step checkpoint that loads, skipping (and reporting) broken ones."""
    for step, path in reversed(list_step_checkpoints(output_dir)):
        try:
            return path, load_checkpoint(path)
        except CheckpointError as exc:
            log.warning("skipping checkpoint at step %d: %s", step, exc)
    return None


def save_step_checkpoint(state: dict[str, Any], output_dir: str | Path, keep_last: int) -> Path:
    """Writes ``step_<step>.pt`` atomically and deletes all but the newest ``keep_last``."""
    path = atomic_save({"format": FORMAT, **state},
                       checkpoint_dir(output_dir) / f"step_{state['step']:08d}.pt")
    for _, old in list_step_checkpoints(output_dir)[:-max(1, keep_last)]:
        old.unlink(missing_ok=True)
    return path


def rng_state() -> dict[str, Any]:
    """All RNG states as tensors and plain values (weights_only-loadable)."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "python": list(random.getstate()[1]) + [random.getstate()[2]],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restores what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"])
    npst = state["numpy"]
    np.random.set_state(("MT19937", npst["keys"].numpy().astype(np.uint32), npst["pos"],
                         npst["has_gauss"], npst["gauss"]))
    py = state["python"]
    random.setstate((3, tuple(py[:-1]), py[-1]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
