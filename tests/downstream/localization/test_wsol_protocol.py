"""wsolevaluation's defaults (clovaai/wsolevaluation, restated in DESIGN 4b): threshold step, CUB boxes, masks."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from downstream.localization.dataset import LocDataset
from downstream.localization.masks import resize_nearest, source_index
from downstream.localization.metrics import thresholds_for
from downstream.localization.parsers import LocRecord, parse_cub


def test_threshold_step_defaults_to_wsolevaluations():
    from downstream.localization.backbone_eval import LocSettings
    from downstream.localization.cli import LocalizationConfig
    from downstream.localization.evaluate import MapScorer

    assert LocalizationConfig().cam_curve_interval == 0.001 and LocSettings().interval == 0.001
    assert len(MapScorer().boxes.thresholds) == 1000 == len(thresholds_for(0.001))


def _cub(root, size, line):
    (root / "images" / "001.A").mkdir(parents=True)
    Image.new("RGB", size).save(root / "images" / "001.A" / "a.jpg")
    (root / "images.txt").write_text("1 001.A/a.jpg\n")
    (root / "train_test_split.txt").write_text("1 0\n")
    (root / "bounding_boxes.txt").write_text(line + "\n")
    return root


def test_cub_box_ends_at_x_plus_w_as_wsolevaluations_metadata(tmp_path):
    # CUB-200-2011 image 1 (Black_Footed_Albatross_0046_18) has "60.0 27.0 325.0 304.0"; wsolevaluation's
    # metadata/CUB/test/localization.txt lists it as 60,27,385,331 = x, y, x + w, y + h
    root = _cub(tmp_path, (500, 400), "1 60.0 27.0 325.0 304.0")
    assert parse_cub(root).records[0].boxes.tolist() == [[60, 27, 385, 331]]
    assert parse_cub(root, cub_boxes="inclusive").records[0].boxes.tolist() == [[60, 27, 384, 330]]
    with pytest.raises(ValueError, match="cub_boxes='x'"):
        parse_cub(root, cub_boxes="x")


def test_cub_boxes_is_a_checked_choice():
    from pretrain.configuration import ConfigError, load_config
    from downstream.localization.cli import LocalizationConfig

    with pytest.raises(ConfigError, match="data.cub_boxes"):
        load_config(LocalizationConfig, None, ["data.cub_boxes=exclusive"])
    with pytest.raises(ConfigError, match="component"):
        load_config(LocalizationConfig, None, ["component=biggest"])
    with pytest.raises(ConfigError, match="data.geometry"):
        load_config(LocalizationConfig, None, ["data.geometry=crop"])


def test_nearest_index_rule_hand_values():
    # OpenCV INTER_NEAREST: source index floor(i * src / dst), capped at src - 1 (top-left sampling)
    assert source_index(4, 2).tolist() == [0, 0, 1, 1]
    assert source_index(2, 5).tolist() == [0, 2]  # floor(0), floor(2.5); PIL's centre rule takes 1, 3
    assert source_index(3, 7).tolist() == [0, 2, 4]  # 7/3 = 2.33: 0, 2.33, 4.67
    m = np.arange(10).reshape(2, 5)
    assert resize_nearest(m, (1, 2)).tolist() == [[0, 2]]


def test_nearest_resize_equals_opencv():
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    for (h, w) in ((375, 500), (13, 7), (56, 56), (333, 224), (5, 9)):
        src = (rng.random((h, w)) * 255).astype(np.uint8)
        for (dh, dw) in ((224, 224), (56, 56), (112, 37), (1, 3), (500, 375)):
            ref = cv2.resize(src, (dw, dh), interpolation=cv2.INTER_NEAREST)
            assert np.array_equal(resize_nearest(src, (dh, dw)), ref), ((h, w), (dh, dw))
    pil = np.array(Image.fromarray(src).resize((3, 1), Image.NEAREST))  # the centre rule differs
    assert not np.array_equal(pil, resize_nearest(src, (1, 3)))


def _record(tmp_path, mask: Image.Image, ignore: Image.Image | None) -> LocRecord:
    Image.new("RGB", mask.size).save(tmp_path / "img.png")
    mask.save(tmp_path / ("mask.tif" if mask.mode == "F" else "mask.png"))
    ign = None
    if ignore is not None:
        ign = tmp_path / ("ignore.tif" if ignore.mode == "F" else "ignore.png")
        ignore.save(ign)
    mpath = tmp_path / ("mask.tif" if mask.mode == "F" else "mask.png")
    return LocRecord(tmp_path / "img.png", mask.size, np.array([[0, 0, 1, 1]]), masks=[mpath], ignore=ign)


def test_masks_and_ignore_thresholded_above_half_8_bit(tmp_path):
    # wsolevaluation: value > 0.5 of the grey value as read: for 8-bit files any non-zero value
    mask = np.zeros((4, 4), np.uint8)
    mask[0, 0], mask[0, 1] = 1, 255  # both are object pixels
    ignore = np.zeros((4, 4), np.uint8)
    ignore[3, 3], ignore[3, 2], ignore[0, 0] = 1, 127, 255  # ignore where > 0.5, minus the object
    rec = _record(tmp_path, Image.fromarray(mask), Image.fromarray(ignore))
    out = LocDataset([rec], 4)[0].mask
    want = np.zeros((4, 4), np.uint8)
    want[0, 0] = want[0, 1] = 1
    want[3, 3] = want[3, 2] = 255
    assert out.tolist() == want.tolist()


def test_masks_and_ignore_thresholded_above_half_float(tmp_path):
    mask = np.zeros((4, 4), np.float32)
    mask[0, 0], mask[0, 1], mask[0, 2] = 0.4, 0.6, 1.0  # 0.4 is background in a float mask
    ignore = np.zeros((4, 4), np.float32)
    ignore[3, 3], ignore[3, 2] = 0.5, 0.51  # 0.5 is not > 0.5
    rec = _record(tmp_path, Image.fromarray(mask, mode="F"), Image.fromarray(ignore, mode="F"))
    out = LocDataset([rec], 4)[0].mask
    want = np.zeros((4, 4), np.uint8)
    want[0, 1] = want[0, 2] = 1
    want[3, 2] = 255
    assert out.tolist() == want.tolist()


def test_masks_resized_with_opencvs_nearest_rule(tmp_path):
    mask = np.zeros((5, 5), np.uint8)
    mask[:, 1] = 255  # column 1 only: OpenCV's rule samples columns 0, 2 for 2 outputs -> no object
    mask[:, 2] = 0
    rec = _record(tmp_path, Image.fromarray(mask), None)
    assert LocDataset([rec], 2)[0].mask.tolist() == [[0, 0], [0, 0]]
    mask2 = np.zeros((5, 5), np.uint8)
    mask2[2, 2] = 255  # the sampled rows / cols are 0, 2: pixel (2, 2) lands on output (1, 1)
    rec = _record(tmp_path, Image.fromarray(mask2), None)
    assert LocDataset([rec], 2)[0].mask.tolist() == [[0, 0], [0, 1]]
