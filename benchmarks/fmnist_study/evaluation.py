"""k-NN and linear probe of a run's teacher on the validation split (or, once, the test split).

k-NN: weighted, k=20, T=0.07 (:func:`downstream.knn.weighted_knn.knn_classify`), bank = evenly spaced
images of ``train_fit``. Linear probe: :func:`downstream.linear.probe.fit_cached_probe` (the one
probe fit of the toolkit), its learning rate chosen on a stratified tenth of the bank.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from downstream.knn.weighted_knn import knn_classify
from downstream.linear.data import stratified_split
from downstream.linear.probe import DEFAULT_LRS, fit_cached_probe, head_accuracy
from pretrain.data.datasets import FashionMNIST
from pretrain.data.loader import build_eval_loader
from pretrain.data.transforms import IMAGENET_MEAN, IMAGENET_STD, EvalTransform
from pretrain.features import extract
from pretrain.models import create_model, create_model_from_checkpoint
from pretrain.models.weights import read_checkpoint

Labelled = tuple[torch.Tensor, torch.Tensor]


def features(model, root: Path, split: str, limit: int, size: int,
             kinds: tuple[str, ...] = ("pooled",)) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Teacher features {kind: (N, D_kind)} and labels (N,) of ``limit`` evenly spaced images of a split (0: all).

    Kinds needing [CLS] are left out for a model without one (SimPool)."""
    ds = FashionMNIST(root, split)
    if 0 < limit < len(ds):
        ds = torch.utils.data.Subset(ds, np.linspace(0, len(ds) - 1, limit).round().astype(int).tolist())
    loader = build_eval_loader(ds, EvalTransform(size, resize=size), 512, 0)
    if getattr(model, "num_cls", 1) == 0:
        kinds = tuple(k for k in kinds if not k.startswith("cls"))
    f, y = extract(model.eval(), loader, kinds, "cpu", "none", IMAGENET_MEAN, IMAGENET_STD, progress=False)
    return {k: torch.from_numpy(v) for k, v in f.items()}, torch.from_numpy(y)


def linear_probe(train: Labelled, test: Labelled, epochs: int, seed: int = 0) -> float:
    """Top-1 (%) on ``test`` of the linear head whose learning rate won on a stratified tenth of ``train``."""
    x, y = train
    keep, held = stratified_split(y.numpy(), 0.1, seed)
    fit = fit_cached_probe((x[keep], y[keep]), (x[held], y[held]), 10, DEFAULT_LRS, epochs, 256, seed=seed)
    return float(head_accuracy(fit.heads, {fit.variant: test[0]}, test[1])[fit.variant][fit.index, 0])


def pixel_baseline(root: Path, a: argparse.Namespace) -> dict:
    """k-NN and linear probe on the raw 784 pixels, same bank / validation images as :func:`evaluate`."""
    sets = []
    for split, limit in (("train_fit", a.bank_size), ("train_holdout", a.val_size)):
        ds = FashionMNIST(root, split, as_pil=False)
        rows = np.linspace(0, len(ds) - 1, limit).round().astype(int) if 0 < limit < len(ds) else np.arange(len(ds))
        sets.append((torch.from_numpy(ds.images[rows].reshape(len(rows), -1).astype(np.float32) / 255),
                     torch.from_numpy(ds.labels[rows])))
    (bx, by), (qx, qy) = sets
    knn = knn_classify(bx, by, qx, qy, ks=(20,), progress=False)["k=20"]["top1"]
    return {"knn_top1": knn, "linear_top1": linear_probe((bx, by), (qx, qy), a.linear_epochs),
            "knn_by_kind": {"pixels": knn}, "bank": len(by), "queries": len(qy), "split": "train_holdout"}


def untrained_model(checkpoint: Path, seed: int):
    """The checkpoint's architecture at its random initialisation (``torch.manual_seed(seed)``)."""
    arch = read_checkpoint(checkpoint)["model"]
    torch.manual_seed(seed)
    return create_model(arch["name"], **dict(arch.get("kwargs") or {}))


def evaluate(checkpoint: Path, root: Path, a: argparse.Namespace, test: bool = False,
             init_seed: int | None = None) -> dict:
    """k-NN (k=20) and linear-probe top-1 of a checkpoint's teacher on the validation (or test) split.

    ``knn_top1`` / ``linear_top1`` use the pooled feature; ``knn_by_kind`` adds the k-NN of every
    kind in ``a.kinds`` (e.g. the 2x2 grid) from the same forward pass. With ``init_seed`` the
    checkpoint's architecture is evaluated untrained: the random-init baseline.
    """
    if init_seed is None:
        model, _ = create_model_from_checkpoint(checkpoint, which="teacher")
    else:
        model = untrained_model(checkpoint, init_seed)
    kinds = tuple(dict.fromkeys(("pooled", *a.kinds)))
    bank = features(model, root, "train" if test else "train_fit", 0 if test else a.bank_size, a.image_size, kinds)
    queries = features(model, root, "test" if test else "train_holdout", 0 if test else a.val_size,
                       a.image_size, kinds)
    by_kind = {k: knn_classify(bank[0][k], bank[1], queries[0][k], queries[1], ks=(20,), progress=False)["k=20"]["top1"]
               for k in bank[0]}
    linear = linear_probe((bank[0]["pooled"], bank[1]), (queries[0]["pooled"], queries[1]), a.linear_epochs)
    return {"knn_top1": by_kind["pooled"], "linear_top1": linear, "knn_by_kind": by_kind,
            "bank": len(bank[1]), "queries": len(queries[1]), "split": "test" if test else "train_holdout"}
