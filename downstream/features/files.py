"""Feature files: ``.npz`` or ``.pt`` holding ``features`` float32 (N, D) and ``labels`` int64 (N,).

Written by ``python -m downstream.features`` (and ``save_features=`` of the k-NN), read by the
k-NN and the linear probe (``--train-features`` / ``--test-features``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from downstream.checks import as_labels


def save_features(path: str | Path, features: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor) -> Path:
    """Write ``features`` (N, D) and ``labels`` (N,) to ``.npz`` or ``.pt`` (by suffix)."""
    path = Path(path)
    features, labels = np.asarray(features, dtype=np.float32), as_labels(labels).numpy()
    if features.ndim != 2 or labels.shape != (features.shape[0],):
        raise ValueError(f"need features (N, D) and labels (N,), got {features.shape} and {labels.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npz":
        np.savez(path, features=features, labels=labels)
    elif path.suffix == ".pt":
        torch.save({"features": torch.from_numpy(features), "labels": torch.from_numpy(labels)}, path)
    else:
        raise ValueError(f"feature file {path} must end in .npz or .pt")
    return path


def load_features(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Read a feature file written by :func:`save_features`: (features float32 (N, D), labels int64 (N,))."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"feature file {path} not found (write one with python -m downstream.features)")
    if path.suffix == ".npz":
        with np.load(path) as data:  # labels stay numpy until checked: string labels have no torch dtype
            content = {k: torch.from_numpy(data[k]) if data[k].dtype.kind in "biuf" else data[k] for k in data.files}
    elif path.suffix == ".pt":
        content = torch.load(path, map_location="cpu", weights_only=True)
    else:
        raise ValueError(f"feature file {path} must end in .npz or .pt")
    if not isinstance(content, dict) or "features" not in content or "labels" not in content:
        raise ValueError(f"{path} must hold 'features' (N, D) and 'labels' (N,); found {sorted(content)}")
    if not isinstance(content["features"], torch.Tensor):
        raise ValueError(f"{path}: features have dtype {content['features'].dtype}; they must be numbers (N, D)")
    feats, labels = content["features"].float(), as_labels(content["labels"], f"labels of {path}")
    if feats.ndim != 2 or labels.shape != (feats.shape[0],):
        raise ValueError(f"{path}: features {tuple(feats.shape)} and labels {tuple(labels.shape)} do not match")
    return feats, labels
