"""The online k-NN monitor: the DINO weighted vote by hand, and every readout it scores checked against
features computed here from the model's own tokens with numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pretrain.config import PretrainConfig
from pretrain.configuration import ConfigError, load_config
from pretrain.models import create_model
from pretrain.online_knn import KnnMonitor, knn_tag, weighted_knn_top1


def test_weighted_vote_by_hand():
    # bank: two class-0 points near the x axis, one class-1 point on the y axis; k = 2, T = 1.
    bank = torch.tensor([[1.0, 0.0], [1.0, 0.2], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 1])
    # query 1 (0.6, 0.8): its two nearest are the y-axis point (sim 0.8) and (1, 0.2) (sim 0.745);
    # votes exp(0.8) for class 1 > exp(0.745) for class 0 -> class 1. Query 2 on the x axis -> class 0.
    queries = torch.tensor([[0.6, 0.8], [2.0, 0.0]])
    assert weighted_knn_top1(bank, labels, queries, torch.tensor([1, 0]), k=2, temperature=1.0) == 100.0
    assert weighted_knn_top1(bank, labels, queries, torch.tensor([0, 0]), k=2, temperature=1.0) == 50.0
    # k = 3, T = 1: query 1 gets exp(0.8) for class 1 vs exp(0.6) + exp(0.745) for class 0 -> class 0.
    assert weighted_knn_top1(bank, labels, queries, torch.tensor([0, 0]), k=3, temperature=1.0) == 100.0


def _numpy_knn(bank: np.ndarray, bank_y: np.ndarray, queries: np.ndarray, query_y: np.ndarray,
               k: int = 20, t: float = 0.07) -> float:
    bank = bank / np.linalg.norm(bank, axis=1, keepdims=True)
    queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    sim = queries @ bank.T
    nearest = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    votes = np.zeros((len(queries), int(bank_y.max()) + 1))
    for row, idx in enumerate(nearest):
        np.add.at(votes[row], bank_y[idx], np.exp(sim[row, idx] / t))
    return 100.0 * float((votes.argmax(1) == query_y).mean())


@pytest.mark.slow
def test_monitor_scores_pooled_and_grid2_readouts(fashion_mnist_root):
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    monitor = KnnMonitor("fashion_mnist", str(fashion_mnist_root), "train", "test", 200, 60, 28, 20, 0.07,
                         batch_size=64, num_workers=0, mean=mean, std=std, features=("grid2", "pooled"))
    model = create_model("vit_pico", patch_size=7, pooling="simpool").eval()
    scores = monitor.evaluate(model, torch.device("cpu"), "none")
    assert list(scores) == ["grid2", "pooled"]  # the config's order: the first is the headline

    def features(loader):
        pooled, grid, labels = [], [], []
        for images, y in loader:  # uint8 (B, 3, 28, 28)
            x = (images.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
            with torch.no_grad():
                pooled.append(model.forward_features(x).pooled.numpy())
                tokens = model.get_intermediate_layers(x, n=1)[-1][:, model.num_prefix_tokens:].numpy()
            cells = tokens.reshape(len(x), 2, 2, 2, 2, -1)  # (B, row half, row, col half, col, D) of the 4x4 grid
            grid.append(cells.mean(axis=(2, 4)).reshape(len(x), -1))
            labels.append(np.asarray(y))
        return np.concatenate(pooled), np.concatenate(grid), np.concatenate(labels)

    (bp, bg, by), (qp, qg, qy) = features(monitor.train), features(monitor.test)
    assert len(by) == 200 and len(qy) == 60
    assert scores["pooled"] == pytest.approx(_numpy_knn(bp, by, qp, qy), abs=1e-9)
    assert scores["grid2"] == pytest.approx(_numpy_knn(bg, by, qg, qy), abs=1e-9)
    assert scores["grid2"] != scores["pooled"]  # two readouts, not one number twice


def test_tag_names():
    assert knn_tag("pooled") == "knn/top1" and knn_tag("grid2") == "knn/top1_grid2"


@pytest.mark.parametrize("value, needle", [("[pooled,grid3]", "'grid3' is not one"), ("[]", "at least one"),
                                           ("[grid2,grid2]", "distinct")])
def test_bad_feature_lists_are_config_errors(value, needle):
    with pytest.raises(ConfigError, match=needle):
        load_config(PretrainConfig, None, [f"knn.features={value}"])


@pytest.mark.parametrize("overrides, needle", [
    (["model.pooling=simpool", "knn.features=[pooled,cls]"], "cls read a \\[CLS\\] token"),
    (["model.patch_size=16", "knn.image_size=28", "knn.features=[grid2]"], "gives 1x1")])
def test_readouts_the_model_cannot_give_are_config_errors_before_training(overrides, needle):
    with pytest.raises(ConfigError, match=needle):
        load_config(PretrainConfig, None, ["knn.every_epochs=1", *overrides])
    load_config(PretrainConfig, None, ["knn.every_epochs=0", *overrides])  # no monitor: nothing to refuse
