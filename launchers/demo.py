"""`make demo`: self-supervised pretraining on Fashion-MNIST on a CPU, then k-NN against raw pixels.

Steps: fetch Fashion-MNIST without root (``apt-get download`` + ``dpkg -x``) unless it is
already there; pretrain the speedrun recipe (``configs/pretrain/fmnist_speedrun.yaml``: ViT-pico/7
with SimPool, DINO + KoLeo, 4 epochs of the 60k training images; chosen on the validation split, see
``benchmarks/fmnist_speedrun/README.md``); extract the teacher's features of the full train and test
splits (``READOUTS``); weighted k-NN (k=20, T=0.07) on those features, on the features of the same
architecture left at its random initialisation and read out the same way (the baseline that says what
pretraining added), and on the raw pixels of the same split, with the evaluator of ``downstream.knn``.
The last line states the three accuracies of the headline readout.

Usage:
    python -m launchers.demo [key=value ...]    # overrides of the demo recipe
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from downstream.knn.weighted_knn import knn_classify
from pretrain.config import PretrainConfig
from pretrain.configuration import load_config
from pretrain.data.datasets import build_dataset
from pretrain.data.fashion_mnist import ensure_fashion_mnist
from pretrain.data.loader import build_eval_loader
from pretrain.data.transforms import IMAGENET_MEAN, IMAGENET_STD, EvalTransform
from pretrain.features import extract
from pretrain.models import create_model, create_model_from_checkpoint
from pretrain.models.weights import read_checkpoint
from pretrain.train import run

log = logging.getLogger("demo")
RECIPE = Path(__file__).resolve().parents[1] / "configs" / "pretrain" / "fmnist_speedrun.yaml"
DEMO_OVERRIDES = ("run.output_dir=runs/demo",)  # command-line overrides win
# feature readouts (pretrain.features kinds), the headline first: the last block's patch tokens averaged
# on a 2x2 grid (keeps the coarse layout, as the pixels do; untrained it is 3-4 points below the pixels),
# and the pooled SimPool vector
READOUTS = ("grid2", "pooled")
READOUT_NAMES = {"grid2": "2x2-grid features", "pooled": "pooled vector"}


def top1(train_x, train_y, test_x, test_y, k: int = 20) -> float:
    """The evaluator's k-NN (downstream.knn: DINO protocol, automatic faiss/torch backend)."""
    return knn_classify(train_x, train_y, test_x, test_y, ks=(k,), progress=False)[f"k={k}"]["top1"]


def fashion_batches(split, size: int, batch_size: int = 1024):
    """(uint8 (B, 3, size, size), labels (B,)) batches of a Fashion-MNIST split, in order.

    At the native 28 px the eval transform (resize 28, centre crop 28, grey -> RGB) leaves the
    pixels unchanged, so the stored array is used directly (no per-image PIL work); other sizes
    go through `EvalTransform` and the evaluation loader.
    """
    if size == split.images.shape[-1]:
        images = torch.from_numpy(split.images.copy())  # writable: torch warns on a read-only array
        labels = torch.from_numpy(split.labels)
        return [(images[i:i + batch_size, None].expand(-1, 3, -1, -1), labels[i:i + batch_size])
                for i in range(0, len(labels), batch_size)]
    return build_eval_loader(split, EvalTransform(size, resize=size), 512, 2)


def feature_knn(checkpoint: Path, root: Path, size: int, kinds: tuple[str, ...], k: int = 20,
                seed: int = 0) -> dict[str, tuple[float, float]]:
    """k-NN top-1 (%) per feature kind of the teacher and of the same architecture at random init.

    Bank: the full train split; queries: the full test split. The random-init model is built from
    the checkpoint's recorded architecture with ``torch.manual_seed(seed)`` and no training; both
    models are read out the same way (``pretrain.features`` kinds, one forward pass per batch).

    Returns:
        {kind: (learned, random init)}.
    """
    learned, _ = create_model_from_checkpoint(checkpoint, which="teacher")
    arch = read_checkpoint(checkpoint)["model"]
    torch.manual_seed(seed)
    random_init = create_model(arch["name"], **dict(arch.get("kwargs") or {}))
    splits = {name: build_dataset("fashion_mnist", root, name) for name in ("train", "test")}
    acc: dict[str, list[float]] = {kind: [] for kind in kinds}
    for model in (learned, random_init):
        feats = {}
        for name, split in splits.items():
            feats[name] = extract(model.eval(), fashion_batches(split, size), kinds, "cpu", "none",
                                  IMAGENET_MEAN, IMAGENET_STD, progress=False)
        for kind in kinds:
            (tr_f, tr_y), (te_f, te_y) = feats["train"], feats["test"]
            acc[kind].append(top1(torch.from_numpy(tr_f[kind]), torch.from_numpy(tr_y),
                                  torch.from_numpy(te_f[kind]), torch.from_numpy(te_y), k=k))
    return {kind: (a[0], a[1]) for kind, a in acc.items()}


def pixel_knn(root: Path, k: int = 20, bank: str = "train", queries: str = "test") -> float:
    """The same k-NN on the raw 28x28 pixels: ``bank`` split as the bank, ``queries`` split as the queries."""
    tr = build_dataset("fashion_mnist", root, bank)
    te = build_dataset("fashion_mnist", root, queries)

    def as_x(ds):
        return torch.from_numpy(ds.images.reshape(len(ds), -1).astype(np.float32))

    return top1(as_x(tr), torch.from_numpy(tr.labels), as_x(te), torch.from_numpy(te.labels), k=k)


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    overrides = list(sys.argv[1:] if argv is None else argv)
    t0 = time.perf_counter()
    root = ensure_fashion_mnist(Path("data"))
    cfg = load_config(PretrainConfig, str(RECIPE), [f"data.root={root}", f"knn.root={root}", *DEMO_OVERRIDES,
                                                      *overrides])
    out = Path(cfg.run.output_dir)
    log.info("pretraining %s with %s masking into %s", cfg.model.name, cfg.mask.strategy, out)
    summary = run(cfg)
    t_train = time.perf_counter() - t0
    results = feature_knn(out / "checkpoint.pt", root, cfg.data.global_size, READOUTS, seed=cfg.run.seed)
    raw = pixel_knn(root)
    print(f"pretraining: {summary['step']} steps in {t_train / 60:.1f} min; "
          f"TensorBoard logs: tensorboard --logdir {out / 'tensorboard'}")
    print(f"checkpoint: {out / 'checkpoint.pt'}  (total demo time {(time.perf_counter() - t0) / 60:.1f} min)")
    print("\n".join(result_lines(results, raw)))


def result_lines(results: dict[str, tuple[float, float]], raw: float) -> list[str]:
    """The demo's last lines (quoted in README.md): each readout's k-NN top-1, learned vs random init,
    the headline readout last with the raw-pixel baseline.

    Args:
        results: ``{readout: (learned %, random-init %)}`` for every name in :data:`READOUTS`.
        raw: The raw-pixel k-NN top-1 (%).
    """
    lines = [f"  {READOUT_NAMES[kind]}: learned {results[kind][0]:.2f}% vs random-init {results[kind][1]:.2f}%"
             for kind in READOUTS[1:]]
    learned, random_init = results[READOUTS[0]]
    lines.append(f"Fashion-MNIST k-NN top-1 (k=20, 60k train / 10k test, {READOUT_NAMES[READOUTS[0]]}): learned "
                 f"features {learned:.2f}% vs random-init {random_init:.2f}% vs raw pixels {raw:.2f}%")
    return lines


if __name__ == "__main__":
    main()
