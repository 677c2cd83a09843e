"""Linear probe: separable data, the one-pass learning-rate grid, validation selection, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from downstream.features.files import save_features
from downstream.linear.cli import main
from downstream.linear.probe import LinearHeads, cached_batches, head_accuracy, select_best, train_heads
from downstream.linear.data import stratified_split


def _blobs(n, classes, dim, seed):
    centers = np.random.default_rng(99).normal(size=(classes, dim)) * 5
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    return (centers[y] + rng.normal(size=(n, dim))).astype(np.float32), y


def test_loss_scaling_equals_per_head_learning_rate():
    """One SGD at lr 1 with head losses scaled by lr_h == separate SGD runs at lr_h (no weight decay)."""
    x, y = map(torch.from_numpy, _blobs(256, 3, 8, 0))
    lrs = [0.01, 0.5]
    heads, _ = train_heads(lambda bs, g: cached_batches({"f": x}, y, bs, g), {"f": 8}, 3, lrs, epochs=2,
                           batch_size=64, steps_per_epoch=4, seed=5)
    for h, lr in enumerate(lrs):
        torch.manual_seed(5)
        ref = LinearHeads(8, 3, len(lrs))  # same initialisation draw
        w, b = nn.Parameter(ref.weight[h].detach().clone()), nn.Parameter(ref.bias[h].detach().clone())
        opt = torch.optim.SGD([w, b], lr=lr * 64 / 256, momentum=0.9)
        gen, step = torch.Generator().manual_seed(5), 0
        for _ in range(2):
            for xb, yb in cached_batches({"f": x}, y, 64, gen):
                for group in opt.param_groups:
                    group["lr"] = lr * 64 / 256 * 0.5 * (1 + np.cos(np.pi * step / 8))
                loss = nn.functional.cross_entropy(xb["f"] @ w.T + b, yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                step += 1
        torch.testing.assert_close(heads["f"].weight[h], w.detach(), rtol=1e-4, atol=1e-5)


def test_separable_data_is_learned_and_best_head_selected():
    xtr, ytr = map(torch.from_numpy, _blobs(600, 4, 10, 1))
    xte, yte = map(torch.from_numpy, _blobs(200, 4, 10, 2))
    lrs = [1e-6, 0.1]  # the tiny rate cannot move the heads far from their N(0, 0.01) start
    feats = {"a": xtr, "b": xtr[:, :2] * 0}  # variant "b" carries no information
    heads, losses = train_heads(lambda bs, g: cached_batches(feats, ytr, bs, g), {"a": 10, "b": 2}, 4, lrs,
                                epochs=10, batch_size=64, steps_per_epoch=10)
    assert losses[-1] < losses[0]
    acc = head_accuracy(heads, {"a": xte, "b": xte[:, :2] * 0}, yte)
    assert select_best(acc, lrs) == ("a", 1)
    assert float(acc["a"][1, 0]) == 100.0
    assert float(acc["b"][1, 0]) < 50.0


def test_stratified_split():
    labels = np.repeat(np.arange(3), [50, 20, 2])
    keep, held = stratified_split(labels, 0.1, seed=0)
    assert len(np.intersect1d(keep, held)) == 0 and len(keep) + len(held) == len(labels)
    assert np.bincount(labels[held]).tolist() == [5, 2, 1]
    with pytest.raises(ValueError, match="val_fraction"):
        stratified_split(labels, 1.5, seed=0)


def test_cli_from_feature_files(tmp_path):
    xtr, ytr = _blobs(500, 3, 6, 3)
    xte, yte = _blobs(150, 3, 6, 4)
    save_features(tmp_path / "tr.npz", xtr, ytr)
    save_features(tmp_path / "te.pt", xte, yte)
    out = tmp_path / "res" / "linear.json"
    main(["--train-features", str(tmp_path / "tr.npz"), "--test-features", str(tmp_path / "te.pt"),
          "--output", str(out), "epochs=5", "batch_size=64", "lrs=[0.001,0.1]", "device=cpu", "progress=false"])
    saved = json.loads(out.read_text())
    assert saved["best"]["variant"] == "features"
    assert saved["best"]["test_top1"] == 100.0
    assert set(saved["val_top1"]["features"]) == {"lr=0.001", "lr=0.1"}
    assert any((tmp_path / "res" / "tensorboard").iterdir())


def test_default_variants_follow_the_pooling():
    from downstream.backbone import RawPixels
    from downstream.linear.data import default_variants
    from pretrain.models import create_model

    assert default_variants(create_model("vit_pico", patch_size=4, img_size=28)) == ["cls", "cls_avg", "cls4",
                                                                                      "cls4_avg"]
    assert default_variants(create_model("vit_pico", patch_size=4, img_size=28, pooling="simpool")) == ["pooled",
                                                                                                        "avg"]
    assert default_variants(RawPixels()) == ["pooled"]


def test_fit_cached_probe_is_the_grid_fit_with_the_choice_on_held_out_rows():
    from downstream.linear.probe import DEFAULT_LRS, fit_cached_probe

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(120, 8, generator=g), torch.arange(120) % 3
    x[:, 0] += 3 * y  # separable along one axis
    fit = fit_cached_probe((x[:100], y[:100]), (x[100:], y[100:]), 3, epochs=3, batch_size=32)
    heads, _ = train_heads(lambda bs, gen: cached_batches({"features": x[:100]}, y[:100], bs, gen),
                           {"features": 8}, 3, DEFAULT_LRS, 3, 32, -(-100 // 32))
    val = head_accuracy(heads, {"features": x[100:]}, y[100:])
    assert (fit.variant, fit.index) == select_best(val, DEFAULT_LRS)
    torch.testing.assert_close(fit.val["features"], val["features"], rtol=0, atol=0)
    assert fit.head(x[100:]).shape == (20, len(DEFAULT_LRS), 3)


# --- issue 22 item 9: file rows in the non-finite error, string labels, a model of another architecture ------

import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[3]


def _feature_files(tmp_path, bad_rows=()):
    x, y = _blobs(40, 2, 4, 0)
    x[list(bad_rows)] = np.nan
    np.savez(tmp_path / "tr.npz", features=x, labels=y)
    xt, yt = _blobs(20, 2, 4, 1)
    np.savez(tmp_path / "te.npz", features=xt, labels=yt)
    return tmp_path / "tr.npz", tmp_path / "te.npz"


def _linear(*args):
    return subprocess.run([sys.executable, "-m", "downstream.linear", "epochs=2", "device=cpu", "progress=false",
                           *map(str, args)], cwd=REPO, capture_output=True, text=True, timeout=300, check=False)


def test_nonfinite_rows_are_named_by_their_row_in_the_file(tmp_path):
    from downstream.linear.cli import LinearConfig, run
    from pretrain.configuration import load_config

    tr, te = _feature_files(tmp_path, bad_rows=(7, 20))
    cfg = load_config(LinearConfig, None, [f"train_features={tr}", f"test_features={te}", "epochs=2",
                                           "device=cpu", "progress=false"])
    with pytest.raises(ValueError, match=r"train features \(.*tr.npz, file rows\): 2 of 40 rows hold NaN or "
                                         r"infinite values \(rows \[7, 20\]\)"):
        run(cfg)
    dropped = run(load_config(LinearConfig, None, [f"train_features={tr}", f"test_features={te}", "epochs=2",
                                                   "device=cpu", "progress=false", "nonfinite=drop"]))
    assert dropped["dropped_nonfinite"] == {"train": 2, "val": 0, "test": 0}


def test_string_labels_are_one_clear_error_line(tmp_path):
    x, _ = _blobs(10, 2, 4, 0)
    _, te = _feature_files(tmp_path)
    np.savez(tmp_path / "names.npz", features=x, labels=np.array(["cat", "dog"] * 5))
    proc = _linear(f"--train-features={tmp_path / 'names.npz'}", f"--test-features={te}")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: labels of {tmp_path / 'names.npz'} are strings (e.g. ['cat', 'dog', 'cat']); class labels must be "
        "integers 0..C-1: map class names to indices first, e.g. np.unique(names, return_inverse=True)[1]")
    assert "Traceback" not in proc.stderr


def test_a_checkpoint_of_another_architecture_names_the_fields_that_differ(tmp_path):
    from downstream.backbone import ModelSpec, build_backbone
    from tests.tiny_checkpoint import write_checkpoint

    path, _, _ = write_checkpoint(tmp_path / "pico.pt", "vit_pico", masked_im_modeling=True)  # has a mask_token
    with pytest.raises(ValueError) as err:
        build_backbone(str(path), ModelSpec(name="vit_tiny", patch_size=8), 32)
    message = str(err.value)
    assert "the checkpoint records 'vit_pico' and this model differs in model.embed_dim: checkpoint 128, " \
           "requested 192" in message
    assert "tensors have other shapes (e.g. backbone.cls_token: checkpoint (1, 1, 128), model (1, 1, 192)" in message
    assert "mask_token" not in message  # a pretraining-only tensor, not the cause
    # one field off and every other tensor loads: still refused (patch_embed would stay random)
    with pytest.raises(ValueError, match=r"model.patch_size: checkpoint 8, requested 4; 1 tensors have other shapes "
                                         r"\(e.g. backbone.patch_embed.proj.weight"):
        build_backbone(str(path), ModelSpec(name="vit_pico", patch_size=4), 32)
    assert build_backbone(str(path), ModelSpec(name="vit_pico", patch_size=8), 32) is not None
    assert build_backbone(str(path), ModelSpec(), 0) is not None  # the recorded model
