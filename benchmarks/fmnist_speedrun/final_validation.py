"""The full validation protocol on finished runs' checkpoints (issue 25): k-NN of each readout and of the raw pixels.

The online monitor watches subsets (10k ``train_fit`` bank, 2k ``train_holdout`` queries); this scores
the final teacher of each run on the whole validation protocol the recipe search used: bank all 50k
``train_fit`` images, queries all 10k ``train_holdout`` images, weighted k-NN (k=20, T=0.07, the
evaluator of ``downstream.knn``), for the pooled vector and the 2x2-grid readout, next to the raw pixels
of the same images (85.23). No test images are read.

Usage:
    python -m benchmarks.fmnist_speedrun.final_validation --run "old demo recipe=runs/tp_old" \
        --run "fmnist_speedrun.yaml=runs/tp_speedrun" --out benchmarks/fmnist_speedrun/results
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from benchmarks.provenance import command_line, load_average, machine_line, utc_now, versions_line
from launchers.demo import fashion_batches, pixel_knn, top1
from pretrain.data.datasets import build_dataset
from pretrain.data.fashion_mnist import ensure_fashion_mnist
from pretrain.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from pretrain.features import extract
from pretrain.models import create_model_from_checkpoint

REPO = Path(__file__).resolve().parents[2]
KINDS = ("pooled", "grid2")
BANK, QUERIES = "train_fit", "train_holdout"


def validation_knn(checkpoint: Path, root: Path, kinds: tuple[str, ...] = KINDS) -> dict[str, float]:
    """{kind: k-NN top-1 (%)} of a checkpoint's teacher: bank ``train_fit``, queries ``train_holdout`` (28 px)."""
    model, _ = create_model_from_checkpoint(checkpoint, which="teacher")
    feats = [extract(model.eval(), fashion_batches(build_dataset("fashion_mnist", root, split), 28), kinds, "cpu",
                     "none", IMAGENET_MEAN, IMAGENET_STD, progress=False) for split in (BANK, QUERIES)]
    (bank, bank_y), (queries, query_y) = feats
    return {kind: top1(torch.from_numpy(bank[kind]), torch.from_numpy(bank_y), torch.from_numpy(queries[kind]),
                       torch.from_numpy(query_y)) for kind in kinds}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", action="append", required=True, help="LABEL=RUN_DIR (a finished pretraining output_dir)")
    p.add_argument("--root", type=Path, default=REPO / "data", help="Fashion-MNIST folder (fetched if missing)")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "fmnist_speedrun" / "results")
    a = p.parse_args(argv)
    runs = dict(r.rsplit("=", 1) for r in a.run)  # the label may hold "=" (optim.epochs=4)
    missing = [d for d in runs.values() if not (Path(d) / "checkpoint.pt").is_file()]
    if missing:
        raise SystemExit(f"no checkpoint.pt in {', '.join(missing)}: let those runs finish (or resume them) first")
    root = ensure_fashion_mnist(a.root)
    record = {"command": command_line(), "date": utc_now(), "machine": machine_line(), "versions": versions_line(),
              "load": load_average(), "bank": BANK, "queries": QUERIES, "k": 20, "temperature": 0.07,
              "pixels": pixel_knn(root, bank=BANK, queries=QUERIES),
              "runs": {label: {"run_dir": d, **validation_knn(Path(d) / "checkpoint.pt", root)}
                       for label, d in runs.items()}}
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "final_validation.json").write_text(json.dumps(record, indent=1))
    print(json.dumps({"pixels": record["pixels"], **record["runs"]}))


if __name__ == "__main__":
    main()
