"""Budgets, run folders, the pretraining child process and the results JSONL of the study.

A budget (:func:`budget_key`: recipe, training images, epochs, ``--set`` overrides) names one
comparison. One folder per run, ``<runs>/<variant>_<budget>_s<seed>``; a run whose ``result.json``
exists, or whose row is in the JSONL, is finished. Rows are keyed by (variant, seed, budget).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from pretrain.config import PretrainConfig
from pretrain.configuration import load_config
from pretrain.data.datasets import FashionMNIST
from pretrain.data.fashion_mnist import write_train_subset
from pretrain.metrics_file import read_metrics

REPO = Path(__file__).resolve().parents[2]

# masked variants train iBOT's patch loss (a no-op for the iBOT recipes; the DINO speedrun recipe needs it);
# "none" keeps the recipe's method
VARIANTS: dict[str, list[str]] = {
    "none": ["mask.strategy=none"], "random": ["mask.strategy=random", "loss.method=ibot"],
    "block": ["mask.strategy=block", "loss.method=ibot"],
    "attmask_high": ["mask.strategy=attmask_high", "loss.method=ibot"],
    "attmask_hint": ["mask.strategy=attmask_hint", "loss.method=ibot"],
    "attmask_low": ["mask.strategy=attmask_low", "loss.method=ibot"],
    "simpool_attmask_high": ["mask.strategy=attmask_high", "loss.method=ibot", "model.pooling=simpool"],
}
# untrained baselines: the architecture of this variant's run, evaluated at its random initialisation
INIT_BASELINES: dict[str, str] = {"random_init": "attmask_high", "random_init_simpool": "simpool_attmask_high",
                                  "raw_pixels": ""}  # raw_pixels: no model, one row


def init_baseline_of(variant: str) -> str:
    """The random-init baseline row that shares ``variant``'s architecture (SimPool or the recipe's own)."""
    return "random_init_simpool" if "model.pooling=simpool" in VARIANTS[variant] else "random_init"


SUBSET_SEED = 0  # the training subset is the same for every run: only the run seed varies


def budget_key(a: argparse.Namespace) -> str:
    """Names what every run of one comparison shares: recipe, training images, epochs, extra overrides."""
    key = f"{Path(a.recipe).stem}_n{a.train_size}_e{a.epochs}"
    if a.set:  # same overrides, same name; other overrides never mix into this comparison
        key += "_" + hashlib.sha1(" ".join(sorted(a.set)).encode()).hexdigest()[:6]
    return key


def run_dir(a: argparse.Namespace, variant: str, seed: int) -> Path:
    return a.runs / f"{variant}_{budget_key(a)}_s{seed}"


def train_subset(root: Path, size: int, dest: Path) -> Path:
    """A data folder whose "train" split is ``size`` images of train_fit (fixed seed), class-mixed."""
    if (dest / "train-labels-idx1-ubyte").is_file():
        return dest
    fit = FashionMNIST(root, "train_fit", as_pil=False)
    rows = np.sort(np.random.default_rng(SUBSET_SEED).choice(len(fit), size=min(size, len(fit)), replace=False))
    return write_train_subset(fit.images[rows], fit.labels[rows], dest, root)


def pretrain(variant: str, seed: int, a: argparse.Namespace, root: Path, data: Path, out: Path) -> None:
    """Pretrains one run in a child process (its own ``train.log`` and memory); resumes ``out`` if it exists."""
    overrides = [f"data.root={data}", f"knn.root={root}", "knn.train_split=train_fit", "knn.test_split=train_holdout",
                 f"knn.max_train={a.knn_bank}", f"knn.max_test={a.knn_queries}", "knn.every_epochs=1",
                 f"optim.epochs={a.epochs}", f"run.seed={seed}", f"run.output_dir={out}", "run.progress=false",
                 f"data.num_workers={a.workers}", *VARIANTS[variant], *a.set]
    load_config(PretrainConfig, str(a.recipe), overrides)  # a bad override fails here, not in the child
    subprocess.run([sys.executable, "-m", "pretrain.train", "--config", str(a.recipe), *overrides],
                   cwd=REPO, check=True)


def knn_curve(out: Path) -> list[float]:
    """Online k-NN top-1 per epoch (validation subset), as the trainer wrote it to ``metrics.jsonl``."""
    return [r["value"] for r in read_metrics(out, "knn/top1")]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def append_jsonl(path: Path, row: dict) -> None:
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")


def recorded_keys(path: Path) -> set[tuple[str, int, str]]:
    return {(r["variant"], r["seed"], r["budget"]) for r in read_jsonl(path)}


def record(jsonl: Path, out: Path) -> bool:
    """Appends the run's result.json to the JSONL unless it is there already; False if the run is unfinished."""
    result_file = out / "result.json"
    if not result_file.is_file():
        return False
    result = json.loads(result_file.read_text())
    if (result["variant"], result["seed"], result["budget"]) not in recorded_keys(jsonl):
        append_jsonl(jsonl, result)
    return True
