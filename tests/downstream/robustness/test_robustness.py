"""Robustness: the IN-1k -> IN-9 mapping and head, hiding the most-attended patches."""

from __future__ import annotations

import json

import pytest
import torch

from downstream.robustness.data import load_in_to_in9, map_to_in9
from downstream.robustness.masked import hide_patches, top_attended_mask
from pretrain.models import create_model


def test_in_to_in9_mapping(tmp_path):
    mapping = {str(i): -1 for i in range(1000)}
    mapping.update({"151": 0, "7": 1, "300": 8})
    (tmp_path / "in_to_in9.json").write_text(json.dumps(mapping))
    table = load_in_to_in9(tmp_path / "in_to_in9.json")
    logits = torch.zeros(3, 1000)
    logits[0, 151] = logits[1, 300] = logits[2, 999] = 1.0
    assert map_to_in9(logits, table).tolist() == [0, 8, -1]  # class 999 is outside IN-9: always wrong
    (tmp_path / "bad.json").write_text('{"5": 9}')
    with pytest.raises(ValueError, match="entry '5': 9"):
        load_in_to_in9(tmp_path / "bad.json")


def test_hide_patches_and_top_attended():
    images = torch.full((1, 3, 4, 6), 200, dtype=torch.uint8)
    mask = torch.tensor([[[False, True, False], [False, False, True]]])  # patch size 2 on a 2x3 grid
    out = hide_patches(images, mask, 2)
    expected = torch.full((4, 6), 200, dtype=torch.uint8)
    expected[0:2, 2:4] = 0
    expected[2:4, 4:6] = 0
    assert torch.equal(out[0, 0], expected) and torch.equal(out[0, 2], expected)
    torch.manual_seed(0)
    model = create_model("vit_pico", img_size=28, patch_size=7).eval()
    x = torch.randn(2, 3, 28, 28)
    m = top_attended_mask(model, x, 0.25)
    att = model.forward_features(x, return_attention="cls").attention  # (2, 16)
    assert m.shape == (2, 4, 4) and m.flatten(1).sum(1).tolist() == [4, 4]
    kept_min = torch.where(m.flatten(1), att, torch.inf).min(1).values
    dropped_max = torch.where(m.flatten(1), -torch.inf, att).max(1).values
    assert (kept_min >= dropped_max).all()  # the hidden patches are the 4 most attended ones


def test_in1k_head_classifier(tmp_path):
    from downstream.robustness.cli import RobustnessConfig, _classifier

    w = torch.zeros(1000, 2)
    w[151, 0] = w[999, 1] = 1.0  # feature 0 -> ImageNet 151 (IN-9 class 0); feature 1 -> 999 (no IN-9 class)
    torch.save({"head.weight": w, "head.bias": torch.zeros(1000)}, tmp_path / "head.pt")
    mapping = {str(i): -1 for i in range(1000)}
    mapping["151"] = 0
    (tmp_path / "map.json").write_text(json.dumps(mapping))
    cfg = RobustnessConfig(head="in1k", in1k_head=str(tmp_path / "head.pt"), in_to_in9=str(tmp_path / "map.json"))
    predict, info = _classifier(cfg, None, None, "cpu")
    assert predict(torch.tensor([[2.0, 0.0], [0.0, 3.0]])).tolist() == [0, -1]
    assert info["head"] == "in1k + in_to_in9"


# --- issue 22 item 2: no class left out silently, counts in the JSON, corrupt images skipped and counted -----

import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
CLASSES = ("00_dark", "01_mid", "02_bright")


def challenge(root: Path, variants=("original", "mixed_same", "mixed_rand"), per_class: int = 4) -> Path:
    """A tiny Backgrounds-Challenge tree: class c is a flat grey of level 40 + 80 c (+ noise), 8x8 px."""
    rng = np.random.default_rng(0)
    for v in variants:
        for split in (("train", "val") if v == "original" else ("val",)):
            for c, name in enumerate(CLASSES):
                folder = root / v / split / name
                folder.mkdir(parents=True)
                for i in range(per_class * (3 if split == "train" else 1)):
                    level = 40 + 80 * c + rng.integers(-10, 10, (8, 8, 3))
                    Image.fromarray(level.clip(0, 255).astype(np.uint8)).save(folder / f"{i}.png")
    return root


def robustness(root: Path, tmp_path: Path, *extra: str):
    from downstream.robustness.cli import RobustnessConfig, run
    from pretrain.configuration import load_config

    cfg = load_config(RobustnessConfig, None, [
        "model.name=pixels", f"data.root={root}", "data.image_size=8", "data.num_workers=0",
        "data.variants=[original,mixed_same,mixed_rand]", "masked_ratios=[]", "pictures=false", "epochs=30",
        "progress=false", "device=cpu", f"output={tmp_path / 'out' / 'robustness.json'}", *extra])
    return run(cfg)


def test_intact_set_reports_image_counts_per_variant(tmp_path):
    res = robustness(challenge(tmp_path / "bg"), tmp_path)
    assert res["images"] == {"train": 36, "original": 12, "mixed_same": 12, "mixed_rand": 12}
    assert res["skipped"] == {"train": 0, "original": 0, "mixed_same": 0, "mixed_rand": 0}
    assert res["top1"] == {"original": 100.0, "mixed_same": 100.0, "mixed_rand": 100.0} and res["BG_Gap"] == 0.0
    written = json.loads((tmp_path / "out" / "robustness.json").read_text())
    assert written["images"]["mixed_rand"] == 12


def test_an_empty_class_folder_in_a_variant_is_an_error_naming_it(tmp_path):
    root = challenge(tmp_path / "bg")
    for p in (root / "mixed_rand" / "val" / "01_mid").iterdir():
        p.unlink()
    with pytest.raises(FileNotFoundError, match=rf"class folder {root / 'mixed_rand' / 'val' / '01_mid'} holds no "
                                                r"image"):
        robustness(root, tmp_path)


def test_a_missing_class_folder_in_the_probe_training_set_is_an_error_naming_it(tmp_path):
    root = challenge(tmp_path / "bg")
    missing = root / "original" / "train" / "02_bright"
    for p in missing.iterdir():
        p.unlink()
    missing.rmdir()
    with pytest.raises(FileNotFoundError, match=rf"class folder {missing} is missing: every set needs the 3 classes"):
        robustness(root, tmp_path)


def test_a_corrupt_image_is_left_out_and_counted(tmp_path, caplog):
    root = challenge(tmp_path / "bg")
    broken = root / "mixed_same" / "val" / "01_mid" / "0.png"
    broken.write_bytes(b"not a png")
    caplog.set_level("WARNING")
    res = robustness(root, tmp_path)
    assert res["images"]["mixed_same"] == 11 and res["skipped"]["mixed_same"] == 1
    assert res["skipped"]["original"] == 0 and res["top1"]["mixed_same"] == 100.0
    assert f"skipping unreadable image {broken}" in caplog.text


def test_a_missing_variant_folder_is_one_error_line_exit_2(tmp_path):
    root = challenge(tmp_path / "bg", variants=("original", "mixed_same"))
    proc = subprocess.run([sys.executable, "-m", "downstream.robustness", "model.name=pixels", f"data.root={root}",
                           "data.image_size=8", "data.num_workers=0", "data.variants=[original,mixed_same,mixed_rand]",
                           "masked_ratios=[]", "device=cpu"],
                          cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: variant folder {root / 'mixed_rand' / 'val'} not found: build the benchmark with python -m "
        "downstream.localization.synth, or leave mixed_rand out of data.variants")
    assert "Traceback" not in proc.stderr
