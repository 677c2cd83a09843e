"""Feature extraction from real checkpoints of every kind we accept, on Fashion-MNIST; feature files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from downstream.backbone import ModelSpec, build_backbone
from downstream.features.cli import main
from downstream.features.files import load_features, save_features
from pretrain.data import FashionMNIST
from pretrain.features import represent
from pretrain.models import create_model

PICO = {"patch_size": 4, "img_size": 28}


def _pico(**kw):
    torch.manual_seed(1)
    return create_model("vit_pico", **PICO, **kw).eval()


def _fmnist_args(root, n=24):
    return ["data.dataset=fashion_mnist", f"data.root={root}", "data.split=test", f"data.max_samples={n}",
            "data.resize=28", "data.num_workers=0", "data.batch_size=10", "progress=false", "device=cpu"]


def _expected_pooled(model, root, n=24):
    ds = FashionMNIST(root, "test", as_pil=False)
    keep = np.linspace(0, len(ds) - 1, n).round().astype(int)
    images = torch.from_numpy(ds.images[keep]).unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
    with torch.no_grad():
        return represent(model, images, ["pooled"], (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))["pooled"], \
            ds.labels[keep]


def test_our_checkpoint_rebuilds_its_model(tmp_path, fashion_mnist_root):
    model = _pico()
    teacher = {f"backbone.{k}": v for k, v in model.state_dict().items()}
    teacher["head.last_layer.weight"] = torch.zeros(3, 3)  # heads are dropped
    ckpt = {"format": "attmask-ssl/1", "model": {"name": "vit_pico", "kwargs": PICO},
            "teacher": teacher, "student": teacher}
    torch.save(ckpt, tmp_path / "checkpoint.pt")
    out = tmp_path / "f.npz"
    main(["--checkpoint", str(tmp_path / "checkpoint.pt"), "--output", str(out)] + _fmnist_args(fashion_mnist_root))
    feats, labels = load_features(out)
    expected, expected_labels = _expected_pooled(model, fashion_mnist_root)
    assert feats.shape == (24, 128)
    assert np.array_equal(labels.numpy(), expected_labels)
    torch.testing.assert_close(feats, expected, rtol=1e-4, atol=1e-4)


def test_dino_style_checkpoint_with_prefixes_needs_model_name(tmp_path, fashion_mnist_root):
    model = _pico()
    torch.save({"teacher": {f"module.backbone.{k}": v for k, v in model.state_dict().items()}}, tmp_path / "dino.pth")
    with pytest.raises(ValueError, match="model.name"):
        build_backbone(str(tmp_path / "dino.pth"), ModelSpec())
    out = tmp_path / "f.pt"
    main(["--checkpoint", str(tmp_path / "dino.pth"), "--output", str(out), "model.name=vit_pico",
          "model.patch_size=4", "data.image_size=28"] + _fmnist_args(fashion_mnist_root))
    feats, _ = load_features(out)
    torch.testing.assert_close(feats, _expected_pooled(model, fashion_mnist_root)[0], rtol=1e-4, atol=1e-4)


def test_wrong_architecture_is_an_error(tmp_path):
    torch.save({"foo.weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="no tensor"):
        build_backbone(str(tmp_path / "other.pth"), ModelSpec(name="vit_pico", patch_size=4), 28)


def test_feature_kinds():
    model, x = _pico(), torch.randint(0, 256, (2, 3, 28, 28), dtype=torch.uint8)
    feats = represent(model, x, ["pooled", "cls", "avg", "cls_avg", "cls4", "cls4_avg"], (0.5,) * 3, (0.5,) * 3)
    assert {k: v.shape[1] for k, v in feats.items()} == {"pooled": 128, "cls": 128, "avg": 128, "cls_avg": 256,
                                                         "cls4": 512, "cls4_avg": 640}
    torch.testing.assert_close(feats["pooled"], feats["cls"])  # pooling=cls: the pooled vector is [CLS]
    torch.testing.assert_close(feats["cls4_avg"][:, -128:], feats["avg"])
    simpool = _pico(pooling="simpool")
    with pytest.raises(ValueError, match="no.*CLS|has none"):
        represent(simpool, x, ["cls4"], (0.5,) * 3, (0.5,) * 3)
    assert represent(simpool, x, ["pooled", "avg"], (0.5,) * 3, (0.5,) * 3)["pooled"].shape == (2, 128)


def test_feature_files_round_trip_and_errors(tmp_path):
    feats, labels = np.random.rand(5, 3).astype(np.float32), np.arange(5)
    for name in ("a.npz", "a.pt"):
        save_features(tmp_path / name, feats, labels)
        f, lab = load_features(tmp_path / name)
        assert np.array_equal(f.numpy(), feats) and np.array_equal(lab.numpy(), labels)
    with pytest.raises(ValueError, match=".npz or .pt"):
        save_features(tmp_path / "a.txt", feats, labels)
    np.savez(tmp_path / "bad.npz", x=feats)
    with pytest.raises(ValueError, match="'features'"):
        load_features(tmp_path / "bad.npz")
    with pytest.raises(FileNotFoundError, match="downstream.features"):
        load_features(tmp_path / "missing.npz")


def test_extract_skips_empty_batches_and_matches_the_forward():
    """pretrain.features.extract: rows are the delivered images in order (an all-unreadable batch is empty)."""
    from pretrain.features import extract

    model = _pico()
    x = torch.randint(0, 256, (5, 3, 28, 28), dtype=torch.uint8)
    y = torch.tensor([4, 0, 3, 1, 2])
    loader = [(x[:3], y[:3]), (x[:0], y[:0]), (x[3:], y[3:])]
    feats, labels = extract(model, loader, ("pooled", "cls"), "cpu", "none", progress=False)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        reference = model((x.float() / 255 - mean) / std).numpy()
    assert labels.tolist() == [4, 0, 3, 1, 2] and feats["pooled"].dtype == np.float32
    np.testing.assert_allclose(feats["pooled"], reference, atol=1e-5)
    np.testing.assert_array_equal(feats["cls"], feats["pooled"])  # cls pooling: the same vector
    with pytest.raises(ValueError, match="amp='fp8'"):
        extract(model, loader, amp="fp8")
    with pytest.raises(ValueError, match="no image could be read"):
        extract(model, [(x[:0], y[:0])], progress=False)


def test_layout_kinds_grid2_and_patches():
    """grid2: the 2x2 block means of the patch grid (hand values); patches: every patch token, in grid order."""
    from pretrain.features import _grid_pool

    tokens = torch.arange(16, dtype=torch.float32).view(1, 16, 1)  # a 4x4 grid, row-major: value = 4 * row + col
    assert _grid_pool(tokens, torch.Size((28, 28)), 2).tolist() == [[2.5, 4.5, 10.5, 12.5]]
    wide = torch.arange(8, dtype=torch.float32).view(1, 8, 1)  # 2 rows x 4 cols (a 14 x 28 image)
    assert _grid_pool(wide, torch.Size((14, 28)), 2).tolist() == [[0.5, 2.5, 4.5, 6.5]]
    with pytest.raises(ValueError, match="at least 2x2"):
        _grid_pool(torch.zeros(1, 1, 3), torch.Size((7, 7)), 2)
    model, x = _pico(), torch.randint(0, 256, (2, 3, 28, 28), dtype=torch.uint8)
    feats = represent(model, x, ["avg", "grid2", "patches"], (0.5,) * 3, (0.5,) * 3)
    side = 28 // model.patch_size  # 7: adaptive pooling's first cell is rows / cols 0..3 (ceil(7 / 2))
    assert feats["grid2"].shape == (2, 4 * 128) and feats["patches"].shape == (2, side * side * 128)
    patches = feats["patches"].view(2, side * side, 128)
    torch.testing.assert_close(patches.mean(1), feats["avg"])  # the same tokens the patch mean averages
    top_left = patches.view(2, side, side, 128)[:, :4, :4].mean(dim=(1, 2))
    torch.testing.assert_close(feats["grid2"].view(2, 128, 4)[:, :, 0], top_left)
