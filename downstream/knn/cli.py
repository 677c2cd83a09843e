"""Command line of the weighted k-NN evaluation (DINO protocol) and of few-shot k-NN.

The algorithm is :mod:`downstream.weighted_knn` (``knn_classify`` is importable from here too),
few-shot sampling :mod:`downstream.fewshot`. Features come from two feature files, or from a
checkpoint run over two labelled datasets (unreadable images skipped and counted in
``"skipped"``). NaN / infinite features are an error naming the rows; ``nonfinite=drop`` leaves
them out and reports ``"dropped_nonfinite"``.

Usage::

    python -m downstream.knn --train-features train.npz --test-features test.npz --output knn.json
    python -m downstream.knn --checkpoint runs/x/checkpoint.pt train_data.root=... test_data.root=...
    python -m downstream.knn --config configs/downstream/knn.yaml fewshot.enabled=true
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from downstream.backbone import ModelSpec
from downstream.checks import NONFINITE, as_labels, handle_nonfinite
from downstream.eval_cli import parse_with_aliases, save_beside
from downstream.eval_data import DataSpec
from downstream.features.extraction import extract_dataset
from downstream.features.files import load_features, save_features
from downstream.knn.fewshot import few_shot_knn
from downstream.knn.backends import BACKENDS
from downstream.results import log_results, tensorboard_dir, write_json
from downstream.knn.weighted_knn import DEFAULT_KS, knn_classify
from downstream.settings import EvalSettings
from pretrain.configuration import ConfigError, choice, register_check
from pretrain.distributed import select_device
from pretrain.features import KINDS

__all__ = ["CONFIG", "KnnConfig", "knn_classify", "main", "run"]

log = logging.getLogger(__name__)


@dataclass
class FewShotConfig:
    enabled: bool = False
    shots: list[int] = field(default_factory=lambda: [1, 5, 10, 20])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])


@dataclass
class KnnConfig(EvalSettings):
    """k-NN evaluation: from feature files, or from a checkpoint and two datasets."""

    train_features: str = ""  # .npz/.pt from downstream.features (then no model is run)
    test_features: str = ""
    checkpoint: str = ""
    model: ModelSpec = field(default_factory=ModelSpec)
    train_data: DataSpec = field(default_factory=DataSpec)
    test_data: DataSpec = field(default_factory=DataSpec)
    kind: str = choice(*KINDS)  # see pretrain.features.KINDS
    ks: list[int] = field(default_factory=lambda: list(DEFAULT_KS))
    temperature: float = 0.07
    backend: str = choice(*BACKENDS)
    chunk_size: int = 1024  # test features per search call
    nonfinite: str = choice(*NONFINITE)  # error | drop: rows with NaN / inf features (dropped rows are counted)
    fewshot: FewShotConfig = field(default_factory=FewShotConfig)
    save_features: str = ""  # folder: also write the extracted train.npz / test.npz there


CONFIG = KnnConfig


def check_knn(cfg: KnnConfig) -> None:
    """Cross-field checks, run when the config is parsed (before any file is read)."""
    if bool(cfg.train_features) != bool(cfg.test_features):
        raise ConfigError("give both --train-features and --test-features (or neither, with a checkpoint)")
    if not cfg.ks or min(cfg.ks) <= 0 or cfg.chunk_size <= 0:
        raise ConfigError(f"ks={list(cfg.ks)} and chunk_size={cfg.chunk_size} must be positive")


register_check(KnnConfig, check_knn)


def load_sets(cfg: KnnConfig) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor], dict]:
    """((train features, labels), (test features, labels), unreadable files skipped per role).

    From feature files, or by running the model over ``train_data`` / ``test_data``.
    """
    if cfg.train_features or cfg.test_features:
        if not (cfg.train_features and cfg.test_features):
            raise ValueError("give both --train-features and --test-features (or neither, with a checkpoint)")
        return load_features(cfg.train_features), load_features(cfg.test_features), {}
    sets, skipped = [], {}
    for role, data in (("train", cfg.train_data), ("test", cfg.test_data)):
        feats, labels, skipped[role] = extract_dataset(cfg.checkpoint, cfg.model, data, [cfg.kind], role,
                                                       cfg.device, cfg.amp, cfg.progress)
        if cfg.save_features:
            save_features(f"{cfg.save_features}/{role}.npz", feats[cfg.kind], labels)
        sets.append((torch.from_numpy(feats[cfg.kind]), torch.from_numpy(labels)))
    return sets[0], sets[1], {role: len(paths) for role, paths in skipped.items()}


def run(cfg: KnnConfig) -> dict:
    """Evaluate; writes JSON / TensorBoard.

    Returns:
        ``{"k=20": {"top1", "top5"}, ...}``, plus ``"fewshot": {...}`` when enabled, ``"skipped":
        {"train": n, "test": m}`` (unreadable images) when features were extracted here, and
        ``"dropped_nonfinite": {"train": n, "test": m}`` with ``nonfinite=drop``.
    """
    if cfg.backend not in BACKENDS:
        raise ValueError(f"unknown backend {cfg.backend!r}; choose one of {', '.join(BACKENDS)}")
    if cfg.nonfinite not in NONFINITE:
        raise ValueError(f"nonfinite={cfg.nonfinite!r}: choose one of {', '.join(NONFINITE)}")
    (xtr, ytr), (xte, yte), skipped = load_sets(cfg)
    ytr, yte = as_labels(ytr, "train labels"), as_labels(yte, "test labels")
    # Drop (or reject) NaN / inf rows once, for the k-NN and the few-shot draws alike.
    xtr, ytr, bad_train = handle_nonfinite(xtr, ytr, "train features", cfg.nonfinite)
    xte, yte, bad_test = handle_nonfinite(xte, yte, "test features", cfg.nonfinite)
    log.info("k-NN: %d train, %d test features of dimension %d", len(ytr), len(yte), xtr.shape[1])
    kwargs = {"backend": cfg.backend, "device": str(select_device(cfg.device)), "chunk_size": cfg.chunk_size,
                  "progress": cfg.progress}
    results: dict = knn_classify(xtr, ytr, xte, yte, cfg.ks, cfg.temperature, **kwargs)
    if cfg.fewshot.enabled:
        results["fewshot"] = few_shot_knn(xtr, ytr, xte, yte, cfg.fewshot.shots, cfg.fewshot.seeds,
                                          cfg.temperature, **{**kwargs, "progress": False})
    if skipped:
        results["skipped"] = skipped
    if cfg.nonfinite == "drop":
        results["dropped_nonfinite"] = {"train": bad_train, "test": bad_test}
    if cfg.output:
        write_json(cfg.output, results)
        save_beside(cfg, cfg.output)
    log_results(tensorboard_dir(cfg.tensorboard, cfg.output), results, "knn")
    return results


def format_results(results: dict) -> str:
    """A small text table of the k-NN (and few-shot) results."""
    lines = [f"{key:>8}  top1 {val['top1']:6.2f}  top5 {val['top5']:6.2f}"
             for key, val in results.items() if key.startswith("k=")]
    for key, val in results.get("fewshot", {}).items():
        lines.append(f"{key:>8}  top1 {val['top1_mean']:6.2f} +- {val['top1_std']:.2f}  (k={val['k']}, "
                     f"{len(val['top1'])} seeds)")
    return "\n".join(lines)


ALIASES = {"--train-features": "train_features", "--test-features": "test_features", "--output": "output",
           "--checkpoint": "checkpoint", "--backend": "backend", "--device": "device"}


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m downstream.knn --config FILE key=value ... [--train-features F --test-features F]``.

    Returns None (a console script passes the return value to sys.exit).
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("faiss").setLevel(logging.WARNING)  # its loader logs every SIMD variant it tries
    cfg = parse_with_aliases(KnnConfig, argv, ALIASES, __doc__)
    results = run(cfg)
    print(format_results(results))


if __name__ == "__main__":
    main()
