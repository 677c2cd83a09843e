"""Input checks shared by the evaluators: class labels and finite features.

Nothing is repaired silently: labels that are not whole class indices are an error (a float
label 1.5 would otherwise be truncated to class 1), and NaN / infinite feature rows are an
error unless the caller asks to drop them, in which case the count is returned for the report.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

log = logging.getLogger(__name__)

NONFINITE: tuple[str, ...] = ("error", "drop")
_BLOCK = 65536  # rows checked at a time: bounded memory on memory-mapped features


def as_labels(labels: torch.Tensor | np.ndarray | list, name: str = "labels") -> torch.Tensor:
    """Class labels as an int64 tensor (N,), validated.

    Integer arrays pass; float arrays pass only when every value is a whole number (e.g. 3.0
    read back from a float file); strings, booleans, fractions (0.5), NaN and negative values
    are errors naming the rows and the fix.

    Raises:
        ValueError: Labels that are not class indices 0..C-1 in a 1-D array.
    """
    if isinstance(labels, torch.Tensor):
        if labels.dtype == torch.bool:
            raise ValueError(f"{name} are booleans; give class indices 0..C-1 (e.g. labels.long())")
        array = labels.detach().cpu().numpy() if labels.dtype != torch.bfloat16 else labels.float().numpy()
    else:
        array = np.asarray(labels)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array (N,), got shape {array.shape}")
    if array.dtype.kind in "USO":
        example = array[:3].tolist()
        what = "objects" if array.dtype.kind == "O" else "strings"
        raise ValueError(f"{name} are {what} (e.g. {example}); "
                         "class labels must be integers 0..C-1: map class names to indices first, e.g. "
                         "np.unique(names, return_inverse=True)[1]")
    if array.dtype.kind == "b":
        raise ValueError(f"{name} are booleans; give class indices 0..C-1")
    if array.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(array) | (array != np.round(array)))
        if bad.size:
            raise ValueError(f"{name} are floats and {bad.size} are not whole numbers (rows {bad[:5].tolist()}: "
                             f"{array[bad[:5]].tolist()}); class labels must be integers 0..C-1, they are never "
                             "rounded or truncated here")
    elif array.dtype.kind not in "iu":
        raise ValueError(f"{name} have dtype {array.dtype}; class labels must be integers 0..C-1")
    out = torch.from_numpy(array.astype(np.int64))
    if out.numel() and int(out.min()) < 0:
        rows = torch.nonzero(out < 0).flatten()
        raise ValueError(f"{name} contain negative values ({rows.numel()} rows, e.g. {rows[:5].tolist()}; -1 often "
                         "means 'unknown'); evaluation needs a class 0..C-1 for every sample: drop those rows")
    return out


def num_classes(*label_sets: torch.Tensor | None) -> int:
    """C = largest label + 1 over the given (validated) label tensors."""
    tops = [int(lab.max()) for lab in label_sets if lab is not None and lab.numel()]
    return max(tops, default=0) + 1


def nonfinite_rows(features: torch.Tensor | np.ndarray) -> np.ndarray:
    """Indices (int64) of the rows of ``features`` (N, D) holding a NaN or an infinity."""
    bad = []
    for start in range(0, int(features.shape[0]), _BLOCK):
        block = features[start:start + _BLOCK]
        block = torch.from_numpy(np.asarray(block)) if not isinstance(block, torch.Tensor) else block
        bad.append(torch.nonzero(~torch.isfinite(block).all(dim=1)).flatten().cpu().numpy() + start)
    return np.concatenate(bad) if bad else np.zeros(0, dtype=np.int64)


def nonfinite_message(name: str, bad: np.ndarray, total: int) -> str:
    """The error for NaN / inf rows: how many, the first indices, and the two ways out."""
    more = " ..." if bad.size > 5 else ""
    return (f"{name}: {bad.size} of {total} rows hold NaN or infinite values (rows {bad[:5].tolist()}{more}); "
            "the backbone diverged or the file is broken: re-extract them, or pass nonfinite=drop to leave "
            "those rows out (counted in the result)")


def handle_nonfinite(features: torch.Tensor | dict[str, torch.Tensor], labels: torch.Tensor, name: str,
                     mode: str = "error") -> tuple[torch.Tensor | dict[str, torch.Tensor], torch.Tensor, int]:
    """Reject or drop feature rows with NaN / inf.

    Args:
        features: (N, D), or {variant: (N, D_v)} (a row is bad if any variant's row is).
        labels: (N,).
        name: Which set, for messages ("train features").
        mode: ``error`` (default) raises; ``drop`` removes those rows and their labels.

    Returns:
        (features, labels, number of rows dropped).

    Raises:
        ValueError: ``mode`` is ``error`` and some row is not finite (rows named), or an unknown mode.
    """
    if mode not in NONFINITE:
        raise ValueError(f"nonfinite={mode!r}: choose one of {', '.join(NONFINITE)}")
    parts = list(features.values()) if isinstance(features, dict) else [features]
    bad = np.unique(np.concatenate([nonfinite_rows(p) for p in parts]))
    total = int(labels.shape[0])
    if bad.size == 0:
        return features, labels, 0
    if mode == "error":
        raise ValueError(nonfinite_message(name, bad, total))
    keep = torch.ones(total, dtype=torch.bool)
    keep[torch.from_numpy(bad)] = False
    log.warning("%s: dropped %d of %d rows with NaN or infinite values (rows %s%s)", name, bad.size, total,
                bad[:5].tolist(), " ..." if bad.size > 5 else "")
    if isinstance(features, dict):
        features = {k: v[keep.to(v.device)] for k, v in features.items()}
    else:
        features = features[keep.to(features.device)]
    return features, labels[keep.to(labels.device)], int(bad.size)
