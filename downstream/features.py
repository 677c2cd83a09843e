"""Extract frozen-backbone features from a checkpoint on a labelled dataset, and save/load them.

Any checkpoint :func:`pretrain.models.load_pretrained` accepts works: our training checkpoints
(``<output_dir>/checkpoint.pt``; the architecture is read from the file), timm ViT state dicts and
DINO / iBOT / DINOv2 checkpoints (these carry no architecture: set ``model.name``,
``model.patch_size``, ...). Prefixes such as ``module.`` / ``backbone.`` are stripped and the
load report (missing / unexpected keys) is logged; a load that matches nothing is an error.

Feature kinds: see :mod:`pretrain.features` (``pooled``, ``cls``, ``avg``, ``cls_avg``, ``cls4``,
``cls4_avg``); the backbone: :mod:`downstream.backbone`.

Unreadable image files are skipped, not replaced: the rows and labels are exactly the readable
images, and the result reports ``skipped`` (their number; the paths are logged once each).

Usage::

    python -m downstream.features --checkpoint runs/x/checkpoint.pt data.dataset=fashion_mnist \
        data.root=/usr/share/datasets/fashion-mnist data.split=test --output test.npz
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from downstream.backbone import ModelSpec, build_backbone, input_size
from downstream.checks import as_labels
from downstream.eval_cli import parse_with_aliases, save_beside
from downstream.eval_data import DataSpec, build_eval_loader_for, skipped_files
from pretrain.distributed import select_device
from pretrain.features import extract

log = logging.getLogger(__name__)


@dataclass
class FeaturesConfig:
    checkpoint: str = ""
    model: ModelSpec = field(default_factory=ModelSpec)
    data: DataSpec = field(default_factory=DataSpec)
    kind: str = "pooled"  # see pretrain.features.KINDS
    output: str = ""  # .npz or .pt
    device: str = "auto"  # auto | cpu | cuda
    amp: str = "auto"  # auto (bf16 on CUDA) | bf16 | none
    progress: bool = True


CONFIG = FeaturesConfig


class Extracted(NamedTuple):
    """Features of one labelled set: ({kind: float32 (N, D)}, labels int64 (N,), unreadable files skipped)."""

    features: dict[str, np.ndarray]
    labels: np.ndarray
    skipped: list[str]


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
        with np.load(path) as data:
            content = {k: torch.from_numpy(data[k]) for k in data.files}
    elif path.suffix == ".pt":
        content = torch.load(path, map_location="cpu", weights_only=True)
    else:
        raise ValueError(f"feature file {path} must end in .npz or .pt")
    if not isinstance(content, dict) or "features" not in content or "labels" not in content:
        raise ValueError(f"{path} must hold 'features' (N, D) and 'labels' (N,); found {sorted(content)}")
    feats, labels = content["features"].float(), as_labels(content["labels"], f"labels of {path}")
    if feats.ndim != 2 or labels.shape != (feats.shape[0],):
        raise ValueError(f"{path}: features {tuple(feats.shape)} and labels {tuple(labels.shape)} do not match")
    return feats, labels


def extract_dataset(checkpoint: str, model_spec: ModelSpec, data: DataSpec, kinds: Sequence[str],
                    role: str, device: str = "auto", amp: str = "auto", progress: bool = True) -> Extracted:
    """Build the backbone and the evaluation loader for ``role`` (train/test) and extract features.

    Unreadable image files are left out (rows and labels are exactly the readable images) and
    listed in the result's ``skipped``.
    """
    dev = select_device(device)
    model = build_backbone(checkpoint, model_spec, data.image_size)
    loader = build_eval_loader_for(data, role, input_size(model, data.image_size), pin_memory=dev.type == "cuda")
    feats, labels = extract(model, loader, kinds, dev, amp, data.mean, data.std, progress, desc=f"{role} features")
    skipped = skipped_files(loader)
    if skipped:
        log.warning("%s data: %d unreadable file(s) skipped, %d images used (e.g. %s)", role, len(skipped),
                    len(labels), skipped[:3])
    return Extracted(feats, labels, skipped)


def run(cfg: FeaturesConfig) -> dict:
    """Extract ``cfg.kind`` features of ``cfg.data`` and write them to ``cfg.output``.

    Returns:
        ``{"n": rows, "dim": D, "kind": kind, "skipped": unreadable files left out[, "output": path]}``.
    """
    # role "train" only sets the default split; data.split=test / val picks another one.
    feats, labels, skipped = extract_dataset(cfg.checkpoint, cfg.model, cfg.data, [cfg.kind], "train",
                                             cfg.device, cfg.amp, cfg.progress)
    result = {"n": int(labels.shape[0]), "dim": int(feats[cfg.kind].shape[1]), "kind": cfg.kind,
              "skipped": len(skipped)}
    if cfg.output:
        result["output"] = str(save_features(cfg.output, feats[cfg.kind], labels))
        save_beside(cfg, cfg.output)
    else:
        log.warning("no output= given: features were computed but not saved")
    return result


ALIASES = {"--checkpoint": "checkpoint", "--output": "output", "--kind": "kind", "--device": "device"}


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m downstream.features --config FILE key=value ... [--checkpoint F --output F.npz]``.

    Returns None (a console script passes the return value to sys.exit).
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = parse_with_aliases(FeaturesConfig, argv, ALIASES, __doc__)
    result = run(cfg)
    print(result, file=sys.stdout)


if __name__ == "__main__":
    main()
