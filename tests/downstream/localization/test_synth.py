"""The offline benchmark: deterministic, exact boxes/masks, consistent variants, and scored end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from downstream.localization.synth import BG_VARIANTS, CLASSES, SynthConfig, build

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    try:
        build(SynthConfig(out=str(out), fashion_mnist=str(REPO / "data"), size=56, train_per_class=1,
                          val_per_class=1, loc_images=10, progress=False))
    except RuntimeError as exc:
        pytest.skip(f"Fashion-MNIST unavailable: {exc}")
    return out


@pytest.mark.slow
def test_deterministic_by_seed(bench, tmp_path):
    build(SynthConfig(out=str(tmp_path), fashion_mnist=str(REPO / "data"), size=56, train_per_class=1,
                      val_per_class=1, loc_images=10, progress=False))
    for rel in ("wsol/images/test/00003.png", "bg/mixed_rand/val/04_coat/00000.png"):
        assert np.array_equal(np.array(Image.open(bench / rel)), np.array(Image.open(tmp_path / rel)))
    assert (bench / "wsol/metadata/test/localization.txt").read_text() == \
        (tmp_path / "wsol/metadata/test/localization.txt").read_text()


def test_boxes_are_the_mask_extent(bench):
    for line in (bench / "wsol/metadata/test/localization.txt").read_text().splitlines():
        path, *box = line.split(",")
        mask = np.array(Image.open(bench / "wsol" / path.replace("images", "masks"))) > 0
        ys, xs = np.nonzero(mask)
        assert [int(v) for v in box] == [xs.min(), ys.min(), xs.max(), ys.max()]


def test_background_variants_agree_with_the_mask(bench):
    for cname in CLASSES:
        fg = np.load(bench / "bg/fg_mask/val" / cname / "00000.npy")
        imgs = {v: np.array(Image.open(bench / "bg" / v / "val" / cname / "00000.png")).astype(int)
                for v in BG_VARIANTS}
        assert np.array_equal(imgs["only_fg"].any(-1), fg)  # object pixels are > 40: never black
        assert (imgs["no_fg"][fg] == 0).all()
        for v in ("original", "mixed_same", "mixed_rand", "mixed_next"):
            assert np.array_equal(imgs[v][fg], imgs["only_fg"][fg])
        assert np.array_equal(imgs["original"][~fg], imgs["no_fg"][~fg])
    assert len(list((bench / "bg/original/train").iterdir())) == 10


@pytest.mark.slow
def test_localization_cli_on_the_benchmark(bench, tmp_path):
    from downstream.localization.cli import main

    out = tmp_path / "loc.json"
    main([f"data.root={bench / 'wsol'}", "data.format=wsol", "data.image_size=56", "model.name=vit_pico",
          "model.patch_size=7", "lost=true", "--output", str(out), "progress=false", "data.num_workers=0"])
    res = json.loads(out.read_text())
    assert res["num_images"] == 10 and 0 <= res["PxAP"] <= 100 and "PxAP" in res["centre_baseline"]
    assert set(res["CorLoc_per_head"]) == {"head0", "head1", "head2", "head3"} and "CorLoc_LOST" in res
    assert out.with_suffix(".png").is_file()


@pytest.mark.slow
def test_robustness_cli_on_the_benchmark(bench, tmp_path):
    from downstream.robustness.cli import main

    out = tmp_path / "rob.json"
    main([f"data.root={bench / 'bg'}", "data.image_size=28", "model.name=vit_pico", "model.patch_size=7",
          "epochs=2", "masked_ratios=[0.5]", "data.num_workers=0", "progress=false", "--output", str(out)])
    res = json.loads(out.read_text())
    assert set(res["top1"]) == {"original", "only_fg", "no_fg", "only_bg_b", "only_bg_t", "mixed_same",
                                "mixed_rand", "mixed_next"}
    assert res["BG_Gap"] == pytest.approx(res["top1"]["mixed_same"] - res["top1"]["mixed_rand"])
    # 10 validation images per variant: every accuracy is a multiple of 10 %
    assert all(abs(v / 10 - round(v / 10)) < 1e-6 for v in res["top1"].values())
    assert "top_attended_drop" in res["masked"]["ratio=0.5"] and out.with_suffix(".png").is_file()
