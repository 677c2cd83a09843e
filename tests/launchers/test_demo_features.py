"""The demo's fast 28 px feature input equals what the evaluation loader delivers."""

from __future__ import annotations

from pathlib import Path

import torch

from launchers.demo import fashion_batches
from pretrain.data.datasets import FashionMNIST
from pretrain.data.loader import build_eval_loader
from pretrain.data.transforms import EvalTransform


def test_native_size_batches_equal_the_eval_transform_loader(fashion_mnist_root):
    split = FashionMNIST(fashion_mnist_root, "test")
    split.images, split.labels = split.images[:700], split.labels[:700]  # a slice keeps it fast
    fast = fashion_batches(split, 28, batch_size=256)
    slow = build_eval_loader(split, EvalTransform(28, resize=28), 256, 0)
    assert [x.shape[0] for x, _ in fast] == [256, 256, 188]
    for (xf, yf), (xs, ys) in zip(fast, slow, strict=True):
        assert xf.dtype == xs.dtype == torch.uint8 and xf.shape[1:] == (3, 28, 28)
        assert torch.equal(xf, xs) and torch.equal(yf, ys)
    other = fashion_batches(split, 56)  # any other size goes through the transform
    x, _ = next(iter(other))
    assert x.shape[1:] == (3, 56, 56)


def test_readme_quotes_the_demo_lines_of_the_recorded_run():
    # issue 22 item 11: the README's demo lines are what launchers.demo prints for the recorded seed-0 run
    import json

    from launchers.demo import result_lines

    repo = Path(__file__).resolve().parents[2]
    first = (repo / "benchmarks" / "fmnist_speedrun" / "results" / "test_results.jsonl").read_text().splitlines()[0]
    rec = json.loads(first)
    assert rec["command"] == "python -m launchers.demo run.seed=0"
    lines = result_lines({"grid2": (rec["knn_grid2"], rec["knn_grid2_random_init"]),
                          "pooled": (rec["knn_pooled"], rec["knn_pooled_random_init"])}, rec["raw_pixels"])
    assert lines[-1] == ("Fashion-MNIST k-NN top-1 (k=20, 60k train / 10k test, 2x2-grid features): learned features "
                         "85.49% vs random-init 80.39% vs raw pixels 84.59%")
    assert "\n".join(lines) in (repo / "README.md").read_text()
