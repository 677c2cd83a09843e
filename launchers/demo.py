"""`make demo`: iBOT + AttMask-High on Fashion-MNIST on a CPU, then k-NN against raw pixels.

Steps: fetch Fashion-MNIST without root (``apt-get download`` + ``dpkg -x``) unless it is
already there; pretrain the demo recipe (``configs/pretrain/demo_fmnist.yaml``); extract the
teacher's features of the full train and test splits; weighted k-NN (k=20, T=0.07) on those
features and on the raw pixels of the same split, with the evaluator of ``downstream.knn``.
The last line states both accuracies.

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

from downstream.knn import knn_classify
from pretrain.config import PretrainConfig, load_config
from pretrain.data.datasets import build_dataset
from pretrain.data.fashion_mnist import ensure_fashion_mnist
from pretrain.data.loader import build_eval_loader
from pretrain.data.transforms import IMAGENET_MEAN, IMAGENET_STD, EvalTransform
from pretrain.models import create_model_from_checkpoint
from pretrain.features import extract
from pretrain.train import run

log = logging.getLogger("demo")
RECIPE = Path(__file__).resolve().parents[1] / "configs" / "pretrain" / "demo_fmnist.yaml"


def top1(train_x, train_y, test_x, test_y, k: int = 20) -> float:
    """The evaluator's k-NN (downstream.knn: DINO protocol, automatic faiss/torch backend)."""
    return knn_classify(train_x, train_y, test_x, test_y, ks=(k,), progress=False)[f"k={k}"]["top1"]


def feature_knn(checkpoint: Path, root: Path, size: int, k: int = 20) -> float:
    """k-NN top-1 (%) of the teacher's pooled features, full train (bank) vs full test."""
    model, _ = create_model_from_checkpoint(checkpoint, which="teacher")
    tf = EvalTransform(size, resize=size)
    feats = {}
    for split in ("train", "test"):
        loader = build_eval_loader(build_dataset("fashion_mnist", root, split), tf, 512, 2)
        f, y = extract(model.eval(), loader, ("pooled",), "cpu", "none", IMAGENET_MEAN, IMAGENET_STD,
                       progress=False)
        feats[split] = (torch.from_numpy(f["pooled"]), torch.from_numpy(y))
    return top1(*feats["train"], *feats["test"], k=k)


def pixel_knn(root: Path, k: int = 20) -> float:
    """The same k-NN on the raw 28x28 pixels of the same split."""
    tr = build_dataset("fashion_mnist", root, "train")
    te = build_dataset("fashion_mnist", root, "test")

    def as_x(ds):
        return torch.from_numpy(ds.images.reshape(len(ds), -1).astype(np.float32))

    return top1(as_x(tr), torch.from_numpy(tr.labels), as_x(te), torch.from_numpy(te.labels), k=k)


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    overrides = list(sys.argv[1:] if argv is None else argv)
    t0 = time.perf_counter()
    root = ensure_fashion_mnist(Path("data"))
    cfg = load_config(PretrainConfig, str(RECIPE), [f"data.root={root}", f"knn.root={root}", *overrides])
    out = Path(cfg.run.output_dir)
    log.info("pretraining %s with %s masking into %s", cfg.model.name, cfg.mask.strategy, out)
    summary = run(cfg)
    t_train = time.perf_counter() - t0
    learned = feature_knn(out / "checkpoint.pt", root, cfg.data.global_size)
    raw = pixel_knn(root)
    print(f"pretraining: {summary['step']} steps in {t_train / 60:.1f} min; "
          f"TensorBoard logs: tensorboard --logdir {out / 'tensorboard'}")
    print(f"checkpoint: {out / 'checkpoint.pt'}  (total demo time {(time.perf_counter() - t0) / 60:.1f} min)")
    print(f"Fashion-MNIST k-NN top-1 (k=20, 60k train / 10k test): learned features {learned:.2f}% "
          f"vs raw pixels {raw:.2f}%")


if __name__ == "__main__":
    main()
