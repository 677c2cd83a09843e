"""End-to-end: k-NN and linear probe from a checkpoint / model and real Fashion-MNIST images."""

from __future__ import annotations

import json

import pytest
import torch

from downstream.knn import cli as knn
from downstream.linear import cli as linear
from pretrain.models import create_model


def _data(prefix, root, n, split=""):
    args = [f"{prefix}.dataset=fashion_mnist", f"{prefix}.root={root}", f"{prefix}.max_samples={n}",
            f"{prefix}.resize=28", f"{prefix}.num_workers=0", f"{prefix}.batch_size=100"]
    return args + ([f"{prefix}.split={split}"] if split else [])


def test_knn_on_raw_pixels_from_images(tmp_path, fashion_mnist_root):
    """model.name=pixels runs the whole image path (dataset, eval transform, extraction, search)."""
    out = tmp_path / "knn.json"
    knn.main(["model.name=pixels", "train_data.image_size=28", "test_data.image_size=28", "progress=false",
                    "ks=[10,20]", "--output", str(out), "save_features=" + str(tmp_path / "feats")]
                   + _data("train_data", fashion_mnist_root, 3000) + _data("test_data", fashion_mnist_root, 500))
    res = json.loads(out.read_text())
    assert 70 < res["k=20"]["top1"] < 92
    # saved features reproduce the result through the feature-file path
    knn.main(["--train-features", str(tmp_path / "feats/train.npz"), "--test-features",
              str(tmp_path / "feats/test.npz"), "ks=[10,20]", "progress=false", "--output", str(tmp_path / "2.json")])
    assert res.pop("skipped") == {"train": 0, "test": 0}  # Fashion-MNIST has no unreadable file
    assert json.loads((tmp_path / "2.json").read_text()) == res


@pytest.mark.parametrize("mode", ["cached", "augmented"])
def test_linear_probe_on_a_checkpoint(tmp_path, fashion_mnist_root, mode):
    torch.manual_seed(0)
    model = create_model("vit_pico", patch_size=4, img_size=28)
    ckpt = {"format": "attmask-ssl/1", "model": {"name": "vit_pico", "kwargs": {"patch_size": 4, "img_size": 28}},
            "teacher": {f"backbone.{k}": v for k, v in model.state_dict().items()}}
    torch.save(ckpt, tmp_path / "checkpoint.pt")
    out = tmp_path / f"{mode}.json"
    epochs = 20 if mode == "cached" else 3  # augmented re-encodes every epoch: keep it short
    linear.main(["--checkpoint", str(tmp_path / "checkpoint.pt"), "--output", str(out), f"mode={mode}",
                 f"epochs={epochs}", "batch_size=64", "lrs=[0.01,1.0]", "progress=false", "device=cpu"]
                + _data("train_data", fashion_mnist_root, 300) + _data("test_data", fashion_mnist_root, 100))
    res = json.loads(out.read_text())
    assert set(res["val_top1"]) == {"cls", "cls_avg", "cls4", "cls4_avg"}  # DINO's variants for a [CLS] model
    assert res["best"]["val_top1"] == max(max(v.values()) for v in res["val_top1"].values())
    assert res["train_loss"][-1] < res["train_loss"][0]
    if mode == "cached":
        assert res["best"]["test_top1"] > 25  # 10 classes: chance is 10%; random ViT features beat it
    assert res["mode"] == mode
