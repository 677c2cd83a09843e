"""Nothing silently wrong: unreadable images, NaN / inf features, bad labels, the model spec (issue 10, 9)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata

from downstream.linear import cli as linear
from downstream.backbone import ModelSpec, model_kwargs
from downstream.checks import as_labels
from downstream.features.cli import FeaturesConfig, run
from downstream.features.files import load_features, save_features
from downstream.knn.fewshot import few_shot_knn
from downstream.knn.weighted_knn import knn_classify, knn_predict
from pretrain.config import ModelConfig
from pretrain.data.transforms import EvalTransform

PHOTOS = {"animals": ["astronaut", "chelsea", "cat"], "things": ["camera", "coffee", "rocket", "coins"]}


def _photo_folder(root):
    """7 real photos in 2 classes + a truncated JPEG, a 0-byte and a text-as-JPEG file -> (readable (path, label))."""
    readable = []
    for label, (cls, names) in enumerate(PHOTOS.items()):
        (root / cls).mkdir(parents=True)
        for name in names:
            path = root / cls / f"{name}.jpg"
            Image.fromarray(getattr(skdata, name)()).save(path, quality=90)
            readable.append((str(path), label))
    full = (root / "animals" / "cat.jpg").read_bytes()
    (root / "animals" / "broken.jpg").write_bytes(full[: len(full) // 3])  # truncated real JPEG
    (root / "things" / "empty.jpg").write_bytes(b"")
    (root / "things" / "notes.jpg").write_text("plain text named like a JPEG")
    return sorted(readable)


@pytest.mark.parametrize("workers", [0, 2])
def test_features_skip_unreadable_files_rows_are_the_readable_images(tmp_path, workers):
    readable = _photo_folder(tmp_path / "imgs")
    cfg = FeaturesConfig(model=ModelSpec(name="pixels"), output=str(tmp_path / "f.npz"), progress=False,
                         device="cpu")
    cfg.data.root, cfg.data.image_size, cfg.data.batch_size = str(tmp_path / "imgs"), 16, 3
    cfg.data.num_workers = workers
    result = run(cfg)
    assert result["n"] == 7 and result["skipped"] == 3  # not 10 rows with 3 substitutes
    feats, labels = load_features(tmp_path / "f.npz")
    # Independent reference: each readable file on its own, in the folder's sorted order.
    tf = EvalTransform(16)
    expected = np.stack([tf(Image.open(p).convert("RGB")).numpy().reshape(-1) / 255.0 for p, _ in readable])
    assert labels.tolist() == [y for _, y in readable] == [0, 0, 0, 1, 1, 1, 1]
    np.testing.assert_allclose(feats.numpy(), expected, atol=1e-6)


def _clusters(n, seed):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    return (np.eye(3, 8)[labels] * 5 + rng.normal(size=(n, 8))).astype(np.float32), labels


@pytest.mark.parametrize("backend", ["torch", "faiss_cpu"])
def test_knn_rejects_nan_and_inf_rows_or_drops_them_counted(backend):
    if backend == "faiss_cpu":
        pytest.importorskip("faiss")
    xtr, ytr = _clusters(60, 0)
    xte, yte = _clusters(30, 1)
    xtr[ytr == 2] = np.nan  # a whole class of NaN rows (it used to "score" anyway)
    xte[4, 1] = np.inf
    with pytest.raises(ValueError, match=r"train features: 20 of 60 rows .*rows \[2, 5, 8, 11, 14\].*nonfinite=drop"):
        knn_classify(xtr, ytr, xte, yte, ks=(5,), backend=backend)
    with pytest.raises(ValueError, match=r"NaN or infinite"):
        next(knn_predict(np.nan_to_num(xtr), ytr, xte, ks=(5,), backend=backend))
    res = knn_classify(xtr, ytr, xte, yte, ks=(5,), backend=backend, nonfinite="drop")
    assert res["dropped_nonfinite"] == {"train": 20, "test": 1}
    keep_tr, keep_te = ytr != 2, np.arange(30) != 4
    clean = knn_classify(xtr[keep_tr], ytr[keep_tr], xte[keep_te], yte[keep_te], ks=(5,), backend=backend)
    assert res["k=5"] == clean["k=5"]
    # class 2 has no training row left: its 10 test rows are all wrong, the 19 others (row 4 of class 1
    # dropped) are well-separated clusters -> 19 / 29
    assert res["k=5"]["top1"] == pytest.approx(100 * 19 / 29)


def test_knn_labels_float_string_and_negative_are_clear_errors():
    x = np.eye(4, dtype=np.float32)
    with pytest.raises(ValueError, match=r"not whole numbers \(rows \[0, 2\]: \[0.5, 1.5\]\)"):
        knn_classify(x, np.array([0.5, 1.0, 1.5, 2.0]), x, np.arange(4), ks=(1,), backend="torch")
    with pytest.raises(ValueError, match=r"strings \(e.g. \['cat', 'dog', 'cat'\]\).*return_inverse"):
        knn_classify(x, np.array(["cat", "dog", "cat", "dog"]), x, np.arange(4), ks=(1,), backend="torch")
    with pytest.raises(ValueError, match=r"test labels contain negative values \(1 rows, e.g. \[3\]"):
        knn_classify(x, np.arange(4), x, np.array([0, 1, 2, -1]), ks=(1,), backend="torch")
    with pytest.raises(ValueError, match="strings"):
        few_shot_knn(x, np.array(list("abab")), x, np.arange(4), shots=(1,), seeds=(0,))
    # whole-number floats are class indices, not truncated fractions: same result as ints
    assert knn_classify(x, np.arange(4.0), x, np.arange(4), ks=(1,), backend="torch")["k=1"]["top1"] == 100.0
    assert as_labels(torch.tensor([2.0, 0.0])).tolist() == [2, 0]


def test_feature_files_with_fractional_labels_are_rejected(tmp_path):
    torch.save({"features": torch.zeros(2, 3), "labels": torch.tensor([0.5, 1.0])}, tmp_path / "f.pt")
    with pytest.raises(ValueError, match=r"labels of .*f.pt are floats"):
        load_features(tmp_path / "f.pt")
    with pytest.raises(ValueError, match="not whole numbers"):
        save_features(tmp_path / "g.npz", np.zeros((2, 3)), np.array([0.5, 1.0]))


def test_linear_probe_rejects_nan_rows_or_drops_them_counted(tmp_path, capsys):
    xtr, ytr = _clusters(90, 0)
    xte, yte = _clusters(30, 1)
    xtr[[3, 7]] = np.nan
    save_features(tmp_path / "tr.npz", xtr, ytr)
    save_features(tmp_path / "te.npz", xte, yte)
    args = ["--train-features", str(tmp_path / "tr.npz"), "--test-features", str(tmp_path / "te.npz"),
            "epochs=2", "batch_size=32", "lrs=[0.1]", "device=cpu", "progress=false", "val_fraction=0.2"]
    with pytest.raises(SystemExit) as stop:  # one error line naming the file's own rows (issue 22 item 9)
        linear.main(args)
    assert stop.value.code == 2
    assert f"error: train features ({tmp_path / 'tr.npz'}, file rows): 2 of 90 rows hold NaN or infinite values " \
           "(rows [3, 7])" in capsys.readouterr().err
    cfg = linear.LinearConfig(train_features=str(tmp_path / "tr.npz"), test_features=str(tmp_path / "te.npz"),
                              epochs=2, batch_size=32, lrs=[0.1], device="cpu", progress=False, nonfinite="drop")
    res = linear.run(cfg)
    assert res["dropped_nonfinite"] == {"train": 2, "val": 0, "test": 0}
    assert res["best"]["test_top1"] == 100.0


def test_model_spec_is_the_pretraining_model_config_plus_which():
    assert issubclass(ModelSpec, ModelConfig)
    assert {f.name for f in dataclasses.fields(ModelSpec)} == {f.name for f in dataclasses.fields(ModelConfig)} | {
        "which"}
    kwargs = model_kwargs(ModelSpec(name="vit_pico", patch_size=4, pooling="simpool", embed_dim=64, num_heads=2,
                                    pos_embed="sincos", num_registers=1), image_size=28)
    assert kwargs["img_size"] == 28 and kwargs["embed_dim"] == 64 and kwargs["pos_embed"] == "sincos"
    assert kwargs["num_registers"] == 1 and "depth" not in kwargs and "drop_path_rate" not in kwargs
    # every architecture field of ModelConfig reaches create_model (unless the backbone lacks it yet)
    from pretrain.models import create_model

    model = create_model("vit_pico", **kwargs)
    assert model.embed_dim == 64 and model.num_registers == 1 and model.pooling == "simpool"


def test_linear_probe_on_an_ffcv_file_says_to_extract_features_first():
    cfg = linear.LinearConfig(device="cpu", progress=False)
    cfg.train_data.dataset, cfg.train_data.ffcv_path = "ffcv", "train.beton"
    with pytest.raises(ValueError, match=r"train_data.dataset=ffcv: .*extract features from the FFCV file first"):
        linear.run(cfg)
