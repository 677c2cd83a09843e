"""Evaluation datasets: default splits, subsets, clear errors (ImageFolder of real photos, Fashion-MNIST)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from PIL import Image

from downstream.eval_cli import rewrite_aliases
from downstream.eval_data import (
    DataSpec,
    build_eval_dataset,
    build_eval_loader_for,
    dataset_targets,
)


def _photo_folder(root, split):
    from skimage import data  # real photos shipped with scikit-image

    for cls, name in enumerate(["astronaut", "coffee", "chelsea"]):
        folder = root / split / f"class{cls}"
        folder.mkdir(parents=True)
        for i in range(2):
            Image.fromarray(getattr(data, name)()).save(folder / f"{i}.jpg")


def test_imagefolder_default_splits_and_loader(tmp_path):
    _photo_folder(tmp_path, "train")
    _photo_folder(tmp_path, "val")
    spec = DataSpec(root=str(tmp_path), batch_size=4, num_workers=0)
    assert build_eval_dataset(spec, "train").root == tmp_path / "train"
    assert build_eval_dataset(spec, "test").root == tmp_path / "val"
    batches = list(build_eval_loader_for(spec, "test", image_size=32))
    assert batches[0][0].shape == (4, 3, 32, 32) and batches[0][0].dtype.is_floating_point is False
    assert np.concatenate([b[1].numpy() for b in batches]).tolist() == [0, 0, 1, 1, 2, 2]


def test_fashion_mnist_subset_keeps_labels(fashion_mnist_root):
    spec = DataSpec(dataset="fashion_mnist", root=str(fashion_mnist_root), max_samples=100)
    ds = build_eval_dataset(spec, "test")
    assert len(ds) == 100
    assert np.array_equal(dataset_targets(ds), [ds[i][1] for i in range(100)])


def test_fashion_mnist_val_is_refused_not_the_test_split(fashion_mnist_root):
    """'val' used to mean the test split: selecting on it tuned on the test set."""
    with pytest.raises(ValueError, match="train_holdout"):
        build_eval_dataset(DataSpec(dataset="fashion_mnist", root=str(fashion_mnist_root), split="val"), "test")
    held = build_eval_dataset(DataSpec(dataset="fashion_mnist", root=str(fashion_mnist_root),
                                       split="train_holdout"), "test")
    assert len(held) == 10000


def test_errors_name_the_fix(tmp_path):
    with pytest.raises(ValueError, match="train_data.root"):
        build_eval_dataset(DataSpec(), "train")
    with pytest.raises(ValueError, match="choose one of"):
        build_eval_dataset(DataSpec(dataset="cifar", root="x"), "train")
    if importlib.util.find_spec("ffcv") is None:  # without the ffcv extra: an error naming it
        with pytest.raises(ValueError, match="FFCV"):
            build_eval_loader_for(DataSpec(dataset="ffcv", ffcv_path=str(tmp_path / "x.beton")), "train", 32)


def test_flag_aliases():
    aliases = {"--output": "output", "--train-features": "train_features"}
    assert rewrite_aliases(["--output", "a.json", "--train-features=t.npz", "k=1"], aliases) == [
        "output=a.json", "train_features=t.npz", "k=1"]
    with pytest.raises(SystemExit, match="needs a value"):
        rewrite_aliases(["--output"], aliases)
