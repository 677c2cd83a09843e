"""Weighted k-NN classification of frozen features (DINO protocol) and its command line.

Caron et al., "Emerging Properties in Self-Supervised Vision Transformers" (DINO), 2021, sec. 4:
features are L2-normalised; each test feature retrieves its k most cosine-similar training
features, which vote for their class with weight ``exp(sim / T)`` (T = 0.07); accuracy is
reported for k in {10, 20, 100, 200} as top-1 and top-5 in percent. The neighbour search runs once
with the largest k (see :mod:`downstream.knn_backends`); every smaller k votes from a prefix of
the same sorted list. Any number of classes works (DINO hard-codes 1000: issue #242).

Class-score ties are broken towards the smaller class index (a stable sort). Top-5 counts a
hit in the first ``min(5, k, C)`` ranked classes, as DINO does.

Usage::

    python -m downstream.knn --train-features train.npz --test-features test.npz --output knn.json
    python -m downstream.knn --checkpoint runs/x/checkpoint.pt train_data.root=... test_data.root=...
    python -m downstream.knn --config configs/downstream/knn.yaml fewshot.enabled=true
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Iterator, List, Optional, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from downstream.eval_cli import parse_with_aliases, save_beside
from downstream.eval_data import DataSpec
from downstream.features import ModelSpec, extract_dataset, load_features, resolve_device, save_features
from downstream.knn_backends import BACKENDS, Searcher, build_searcher
from downstream.tb import log_results, tensorboard_dir, write_json

log = logging.getLogger(__name__)

DEFAULT_KS: tuple[int, ...] = (10, 20, 100, 200)


def _as_tensor(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(x)) if isinstance(x, np.ndarray) else x


def check_labels(train_labels: torch.Tensor, test_labels: Optional[torch.Tensor] = None) -> int:
    """Validate integer labels >= 0 and return the number of classes C = max label + 1."""
    for name, lab in (("train", train_labels), ("test", test_labels)):
        if lab is None:
            continue
        if lab.ndim != 1 or lab.dtype.is_floating_point or lab.dtype == torch.bool:
            raise ValueError(f"{name} labels must be a 1-D integer array, got {lab.dtype} {tuple(lab.shape)}")
        if lab.numel() and int(lab.min()) < 0:
            raise ValueError(f"{name} labels contain negative values (e.g. -1 for 'unknown'); k-NN needs "
                             "class labels 0..C-1 for every sample")
    top = int(train_labels.max()) if train_labels.numel() else 0
    if test_labels is not None and test_labels.numel():
        top = max(top, int(test_labels.max()))
    return top + 1


def vote(sims: torch.Tensor, neighbour_labels: torch.Tensor, k: int, num_classes: int,
         temperature: float = 0.07, top: int = 5) -> torch.Tensor:
    """Class ranking from the k nearest neighbours' weighted votes.

    Args:
        sims: Cosine similarities (Q, K) sorted best first, K >= k.
        neighbour_labels: Their class labels (Q, K), int64.
        k: How many neighbours vote (the first k columns).
        num_classes: C.
        temperature: T in the vote weight exp(sim / T).
        top: How many ranked classes to return.

    Returns:
        int64 (Q, min(top, C)): classes by decreasing score, ties towards the smaller index.
    """
    weights = (sims[:, :k].double() / temperature).exp()
    scores = torch.zeros(sims.shape[0], num_classes, dtype=torch.float64)
    scores.scatter_add_(1, neighbour_labels[:, :k], weights)
    return scores.sort(dim=1, descending=True, stable=True).indices[:, :min(top, num_classes)]


def _chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def knn_predict(train_features: torch.Tensor | np.ndarray, train_labels: torch.Tensor | np.ndarray,
                test_features: torch.Tensor | np.ndarray, ks: Sequence[int] = DEFAULT_KS,
                temperature: float = 0.07, num_classes: Optional[int] = None,
                searcher: Optional[Searcher] = None, backend: str = "auto", device: str = "cpu",
                chunk_size: int = 1024, progress: bool = False) -> Iterator[tuple[slice, dict[int, torch.Tensor]]]:
    """Stream k-NN class rankings over test chunks (memory bounded by the chunk size).

    Args:
        train_features: (N, D) features of the labelled set (any scale: they are normalised).
        train_labels: (N,) int labels in 0..C-1.
        test_features: (M, D) features to classify.
        ks: Neighbour counts to evaluate; each is capped at N.
        temperature: Vote temperature T.
        num_classes: C; default max(train label) + 1.
        searcher: A prebuilt index over ``train_features`` (reused across calls, e.g. few-shot);
            built with ``backend``/``device`` when None.
        backend: See :data:`downstream.knn_backends.BACKENDS`.
        device: Torch device for the torch backend.
        chunk_size: Test features per search call.
        progress: Show a tqdm bar over chunks.

    Yields:
        (test slice, {k: int64 (chunk, min(5, k, C)) ranked classes}).
    """
    if not ks or min(ks) < 1:
        raise ValueError(f"ks must be a non-empty list of positive neighbour counts, got {list(ks)}")
    train_labels = _as_tensor(train_labels).long()
    num_classes = num_classes or check_labels(train_labels)
    n_train, n_test = int(train_labels.shape[0]), int(test_features.shape[0])
    if n_train == 0 or int(train_features.shape[0]) != n_train:
        raise ValueError(f"need one label per training feature and at least one: {train_features.shape[0]} "
                         f"features, {n_train} labels")
    if int(test_features.shape[1]) != int(train_features.shape[1]):
        raise ValueError(f"train features have dimension {train_features.shape[1]} but test features "
                         f"{test_features.shape[1]}: extract both with the same model and kind")
    if searcher is None:
        searcher = build_searcher(train_features, backend, device)
    k_max = min(max(ks), n_train)
    if max(ks) > n_train:
        log.warning("k up to %d asked but only %d training samples: using k=min(k, %d)", max(ks), n_train, n_train)
    bar = tqdm(total=n_test, desc=f"k-NN ({searcher.name})", unit="img", disable=not progress, leave=False)
    for part in _chunks(n_test, chunk_size):
        sims, idx = searcher.search(_as_tensor(test_features[part]), k_max)
        labels = train_labels[idx]
        yield part, {k: vote(sims, labels, min(k, n_train), num_classes, temperature, min(5, k)) for k in ks}
        bar.update(part.stop - part.start)
    bar.close()


def knn_classify(train_features: torch.Tensor | np.ndarray, train_labels: torch.Tensor | np.ndarray,
                 test_features: torch.Tensor | np.ndarray, test_labels: torch.Tensor | np.ndarray,
                 ks: Sequence[int] = DEFAULT_KS, temperature: float = 0.07, **kwargs) -> dict[str, dict[str, float]]:
    """Top-1 / top-5 accuracy (percent) of the weighted k-NN classifier for every k.

    Args:
        train_features, train_labels, test_features: As in :func:`knn_predict`.
        test_labels: (M,) int labels of the test set.
        ks, temperature: As in :func:`knn_predict`.
        **kwargs: Passed to :func:`knn_predict` (backend, device, chunk_size, searcher, num_classes, progress).

    Returns:
        ``{"k=10": {"top1": float, "top5": float}, ...}``.
    """
    test_labels = _as_tensor(test_labels).long()
    train_labels = _as_tensor(train_labels).long()
    kwargs.setdefault("num_classes", check_labels(train_labels, test_labels))
    if test_labels.shape[0] != test_features.shape[0]:
        raise ValueError(f"{test_features.shape[0]} test features but {test_labels.shape[0]} test labels")
    hits = {k: [0, 0] for k in ks}
    for part, ranked in knn_predict(train_features, train_labels, test_features, ks, temperature, **kwargs):
        target = test_labels[part].view(-1, 1)
        for k, classes in ranked.items():
            hit = classes == target
            hits[k][0] += int(hit[:, :1].sum())
            hits[k][1] += int(hit.sum())
    n = max(1, int(test_labels.shape[0]))
    return {f"k={k}": {"top1": 100.0 * h1 / n, "top5": 100.0 * h5 / n} for k, (h1, h5) in hits.items()}


# ----------------------------------------------------------------------------- command line


@dataclass
class FewShotConfig:
    enabled: bool = False
    shots: List[int] = field(default_factory=lambda: [1, 5, 10, 20])
    seeds: List[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])


@dataclass
class KnnConfig:
    """k-NN evaluation: from feature files, or from a checkpoint and two datasets."""

    train_features: str = ""  # .npz/.pt from downstream.features (then no model is run)
    test_features: str = ""
    checkpoint: str = ""
    model: ModelSpec = field(default_factory=ModelSpec)
    train_data: DataSpec = field(default_factory=DataSpec)
    test_data: DataSpec = field(default_factory=DataSpec)
    kind: str = "pooled"  # see downstream.features.KINDS
    ks: List[int] = field(default_factory=lambda: list(DEFAULT_KS))
    temperature: float = 0.07
    backend: str = "auto"  # auto | faiss_gpu | faiss_cpu | torch
    chunk_size: int = 1024  # test features per search call
    fewshot: FewShotConfig = field(default_factory=FewShotConfig)
    save_features: str = ""  # folder: also write the extracted train.npz / test.npz there
    output: str = ""  # result JSON
    tensorboard: str = ""  # event folder; default <folder of output>/tensorboard
    device: str = "auto"
    amp: str = "auto"
    progress: bool = True


CONFIG = KnnConfig


def load_sets(cfg: KnnConfig) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """((train features, labels), (test features, labels)) from files or by running the model."""
    if cfg.train_features or cfg.test_features:
        if not (cfg.train_features and cfg.test_features):
            raise ValueError("give both --train-features and --test-features (or neither, with a checkpoint)")
        return load_features(cfg.train_features), load_features(cfg.test_features)
    sets = []
    for role, data in (("train", cfg.train_data), ("test", cfg.test_data)):
        feats, labels = extract_dataset(cfg.checkpoint, cfg.model, data, [cfg.kind], role, cfg.device, cfg.amp,
                                        cfg.progress)
        if cfg.save_features:
            save_features(f"{cfg.save_features}/{role}.npz", feats[cfg.kind], labels)
        sets.append((torch.from_numpy(feats[cfg.kind]), torch.from_numpy(labels)))
    return sets[0], sets[1]


def run(cfg: KnnConfig) -> dict:
    """Evaluate; returns ``{"k=20": {"top1", "top5"}, ..., ["fewshot": {...}]}`` and writes JSON/TensorBoard."""
    from downstream.fewshot import few_shot_knn  # noqa: PLC0415 - fewshot imports this module

    if cfg.backend not in BACKENDS:
        raise ValueError(f"unknown backend {cfg.backend!r}; choose one of {', '.join(BACKENDS)}")
    (xtr, ytr), (xte, yte) = load_sets(cfg)
    log.info("k-NN: %d train, %d test features of dimension %d", len(ytr), len(yte), xtr.shape[1])
    kwargs = dict(backend=cfg.backend, device=str(resolve_device(cfg.device)), chunk_size=cfg.chunk_size,
                  progress=cfg.progress)
    results: dict = knn_classify(xtr, ytr, xte, yte, cfg.ks, cfg.temperature, **kwargs)
    if cfg.fewshot.enabled:
        results["fewshot"] = few_shot_knn(xtr, ytr, xte, yte, cfg.fewshot.shots, cfg.fewshot.seeds,
                                          cfg.temperature, **{**kwargs, "progress": False})
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


def main(argv: Optional[Sequence[str]] = None) -> None:
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
