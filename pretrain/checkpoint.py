"""Atomic training checkpoints: write, rotate, find the newest good one, RNG state.

Layout under ``<output_dir>/checkpoints/``: ``step_00001234.pt`` files, each complete
(student, teacher, optimizer, scaler, loss centers, step, RNG, data position). A file is written
to a temporary name, flushed and fsync'ed, then renamed, so a crash never leaves a half-written
file under a real name; a file truncated some other way (copied by hand) is detected on load and
skipped in favour of the previous one. Everything is loadable with ``torch.load(weights_only=True)``.

Full disks: before writing, the free space of the target folder is compared with the size of
the tensors to write (a clear ``disk full: need N MB in DIR, M MB free`` error instead of a
partial file); a write that fails anyway removes its temporary file. Old checkpoints are deleted
only after the new one is complete, so the last good checkpoint always survives. Temporaries
left by a process killed during a write are removed by :func:`remove_stale_temporaries`, which
the trainer calls once at start.
"""

from __future__ import annotations

import errno
import logging
import os
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)

FORMAT = "attmask-ssl/1"
_STEP_FILE = re.compile(r"^step_(\d{8,})\.pt$")
_TEMPORARY = re.compile(r"^\..+\.tmp\d+$")  # what atomic_save writes before the rename
_MB = 2**20


class CheckpointError(ValueError):
    """A checkpoint that cannot be used, with the path and what to do.

    The project's one checkpoint error: training checkpoints here, pretrained-weight files in
    :mod:`pretrain.models.weights`.
    """


def checkpoint_dir(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints"


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def estimate_bytes(obj: Any) -> int:
    """Bytes :func:`torch.save` needs for ``obj``: every distinct tensor storage, plus 1 KiB per tensor
    and 1 MiB for the archive's records and pickle (an upper estimate, never below the real size
    for tensor-heavy objects such as checkpoints)."""
    storages: dict[tuple[int, int], int] = {}
    count, stack = 0, [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, torch.Tensor):
            storage = item.untyped_storage()
            storages[(storage.data_ptr(), storage.nbytes())] = storage.nbytes()
            count += 1
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return sum(storages.values()) + 1024 * count + _MB


def free_bytes(folder: str | Path) -> int:
    """Bytes an unprivileged writer may still use in ``folder``'s file system."""
    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize


def _kept_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint file in ``folder`` or its ``checkpoints/`` (None if there is none)."""
    found = [p for d in (folder, folder / "checkpoints") if d.is_dir() for p in d.iterdir()
             if p.suffix == ".pt" and p.is_file() and not _TEMPORARY.match(p.name)]
    return max(found, key=lambda p: p.stat().st_mtime_ns, default=None)


def _disk_full(folder: Path, need: int, free: int) -> CheckpointError:
    kept = _kept_checkpoint(folder)
    state = (f"the last good checkpoint {kept} is kept. Free space (or lower run.keep_last, or set run.output_dir "
             "to a larger disk) and resume" if kept is not None else
             "no checkpoint has been written yet, so there is nothing to resume from. Free space, or set "
             "run.output_dir to a larger disk, and start again")
    return CheckpointError(f"disk full: need {need / _MB:.1f} MB in {folder}, {free / _MB:.1f} MB free; {state}")


def files_per_run(keep_last: int) -> int:
    """Checkpoint files a run holds at its peak: ``keep_last`` step files, the next one while it is written
    (older ones are deleted only after it is complete), and the final ``checkpoint.pt``."""
    return max(1, keep_last) + 2


def space_needed(per_file: int, keep_last: int, held: int, margin: float = 0.1) -> int:
    """Bytes still to find for a run's checkpoints: :func:`files_per_run` files of ``per_file`` bytes plus
    ``margin``, less the ``held`` bytes of checkpoint files already in the folder (they are replaced)."""
    return max(0, int(per_file * files_per_run(keep_last) * (1 + margin)) - held)


def held_bytes(output_dir: str | Path) -> int:
    """Bytes of the checkpoint files a run in ``output_dir`` will replace (step files and checkpoint.pt)."""
    files = [p for _, p in list_step_checkpoints(output_dir)] + [Path(output_dir) / "checkpoint.pt"]
    return sum(p.stat().st_size for p in files if p.is_file())


def existing_folder(path: str | Path) -> Path:
    """``path`` or its nearest existing parent (where a folder about to be created would live)."""
    path = Path(path).absolute()
    return next(p for p in (path, *path.parents) if p.exists())


def atomic_save(obj: Any, path: str | Path, check_space: bool = True) -> Path:
    """Saves ``obj`` with torch.save via a temporary file + fsync + rename.

    Args:
        obj: What to save.
        path: Final file name; its folder is created.
        check_space: Compare the free space with :func:`estimate_bytes` first.

    Raises:
        CheckpointError: ``disk full: need N MB in DIR, M MB free`` before writing when the
            space is short, or when the write itself ran out of space. The temporary file is
            removed on any failure; an existing file at ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    need = estimate_bytes(obj) if check_space else 0
    if check_space and need > free_bytes(path.parent):
        raise _disk_full(path.parent, need, free_bytes(path.parent))
    tmp = _temporary(path)
    try:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        need = need or estimate_bytes(obj)
        if _out_of_space(exc) or (isinstance(exc, (OSError, RuntimeError)) and free_bytes(path.parent) < need):
            raise _disk_full(path.parent, need, free_bytes(path.parent)) from exc
        raise
    return path


def _out_of_space(exc: BaseException | None) -> bool:
    """ENOSPC anywhere in the exception chain: torch reports a full disk as "RuntimeError: [enforce
    fail at inline_container.cc] unexpected pos" raised while handling the OSError."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def remove_stale_temporaries(output_dir: str | Path) -> list[Path]:
    """Delete the temporary files (``.NAME.tmpPID``) a process killed during a write left behind.

    Looks in ``output_dir`` and its ``checkpoints/`` folder. Call it once at start, before any
    process of this run writes a checkpoint (only rank 0 writes).

    Returns:
        The removed paths (each logged with its size).
    """
    removed = []
    for folder in (Path(output_dir), checkpoint_dir(output_dir)):
        if not folder.is_dir():
            continue
        for p in sorted(folder.iterdir()):
            if _TEMPORARY.match(p.name) and p.is_file():
                size = p.stat().st_size
                p.unlink(missing_ok=True)
                removed.append(p)
                log.warning("removed stale temporary %s (%.1f MB) left by an interrupted checkpoint write",
                            p, size / _MB)
    return removed


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


def numbered_files(folder: str | Path, pattern: re.Pattern[str]) -> list[tuple[int, Path]]:
    """``(number, path)`` of every file in ``folder`` whose name matches ``pattern`` (group 1: the number),
    oldest (lowest number) first; empty if the folder does not exist."""
    folder = Path(folder)
    found = [(int(m.group(1)), p) for p in (folder.iterdir() if folder.is_dir() else ()) if (m := pattern.match(p.name))]
    return sorted(found)


def newest_loadable(files: list[tuple[int, Path]], load: Callable[[Path], dict[str, Any]],
                    unit: str = "step") -> tuple[Path, dict[str, Any]] | None:
    """The newest of ``files`` (from :func:`numbered_files`) that ``load`` accepts, skipping (and
    reporting, numbered by ``unit``) the ones it rejects with a ``ValueError``; None if none loads."""
    for number, path in reversed(files):
        try:
            return path, load(path)
        except ValueError as exc:
            log.warning("skipping checkpoint at %s %d: %s", unit, number, exc)
    return None


def prune(files: list[tuple[int, Path]], keep_last: int) -> None:
    """Deletes all but the newest ``keep_last`` (at least 1) of ``files``."""
    for _, old in files[:-max(1, keep_last)]:
        old.unlink(missing_ok=True)


def list_step_checkpoints(output_dir: str | Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every step checkpoint, oldest first."""
    return numbered_files(checkpoint_dir(output_dir), _STEP_FILE)


def latest_good_checkpoint(output_dir: str | Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest step checkpoint that loads, skipping (and reporting) broken ones."""
    return newest_loadable(list_step_checkpoints(output_dir), load_checkpoint)


def save_step_checkpoint(state: dict[str, Any], output_dir: str | Path, keep_last: int) -> Path:
    """Writes ``step_<step>.pt`` atomically, then deletes all but the newest ``keep_last``.

    Old files are deleted only after the new one is complete; a write that fails (e.g. ``disk
    full``, :class:`CheckpointError`) leaves the existing checkpoints as they were.
    """
    path = atomic_save({"format": FORMAT, **state},
                       checkpoint_dir(output_dir) / f"step_{state['step']:08d}.pt")
    prune(list_step_checkpoints(output_dir), keep_last)
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
