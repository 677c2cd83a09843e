"""Localization metrics on hand-checkable maps (wsolevaluation's own test values, DESIGN 4b)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from downstream.localization.boxes import (
    lost_boxes,
    mass_boxes,
    mass_mask,
    to_continuous,
)
from downstream.localization.metrics import (
    BoxAccumulator,
    PxAPAccumulator,
    boxes_at_thresholds,
    corloc,
    iou_continuous,
    iou_inclusive,
    normalize_map,
    thresholds_for,
)

WSOL_MAP = np.array([[0, 0, 0, 0, 0], [0, .4, .4, .4, .6], [0, .4, 1, .8, .6], [0, .4, .4, .4, .6]],
                    dtype=np.float32)


def test_iou_inclusive_hand_value():
    assert iou_inclusive(np.array([[1, 2, 5, 6]]), np.array([[3, 1, 4, 5]]))[0, 0] == pytest.approx(8 / 27)
    # identical single-pixel boxes: inclusive area 1 each -> IoU 1; disjoint -> 0
    assert iou_inclusive(np.array([[2, 2, 2, 2]]), np.array([[2, 2, 2, 2], [4, 4, 5, 5]])).tolist() == [[1.0, 0.0]]


def test_boxes_at_thresholds_v1_hand_values():
    boxes = boxes_at_thresholds(WSOL_MAP, [0, .2, .4, .6, .8], multi_contour=False)
    assert [b[0].tolist() for b in boxes] == [[1, 1, 4, 3], [1, 1, 4, 3], [2, 1, 4, 3], [2, 2, 4, 3], [2, 2, 3, 3]]


def test_all_zero_map_gives_zero_box():
    boxes = boxes_at_thresholds(np.zeros((4, 5), np.float32), [0, .5], multi_contour=True)
    assert [b.tolist() for b in boxes] == [[[0, 0, 0, 0]], [[0, 0, 0, 0]]]


def two_blob_map() -> np.ndarray:
    m = np.zeros((20, 20), np.float32)
    m[2:10, 2:10] = 1.0  # large blob; wsolevaluation boxes end at x + w: [2, 2, 10, 10]
    m[14:17, 14:18] = 0.9  # small blob: [14, 14, 18, 17]
    return m


def test_two_blobs_two_boxes_in_v2_one_in_v1():
    m = two_blob_map()
    multi = boxes_at_thresholds(m, [0.5], multi_contour=True)[0]
    single = boxes_at_thresholds(m, [0.5], multi_contour=False)[0]
    assert sorted(b.tolist() for b in multi) == [[2, 2, 10, 10], [14, 14, 18, 17]]
    assert single.tolist() == [[2, 2, 10, 10]]
    # GT = the small blob: V2 finds it at IoU 1, V1 (largest contour only) never does.
    acc = BoxAccumulator(thresholds_for(0.1))
    acc.add(m, np.array([[14, 14, 18, 17]]))
    res = acc.compute()
    assert res["MaxBoxAccV2_IoU70"] == 100.0 and res["MaxBoxAccV2"] == 100.0
    assert res["MaxBoxAcc"] == 0.0


def test_max_box_acc_picks_best_threshold_per_delta():
    acc = BoxAccumulator([0, .2, .4, .6, .8])
    acc.add(WSOL_MAP, np.array([[2, 2, 3, 3]]))  # matches exactly the box at t = 0.8
    acc.add(WSOL_MAP * 3 + 1, np.array([[1, 1, 4, 3]]))  # any range: normalised; matches t = 0, 0.2
    res = acc.compute()
    assert res["MaxBoxAccV2_IoU70"] == 50.0  # no threshold serves both images at IoU 0.7
    # IoU([2,2,4,3],[2,2,3,3]) = 4/6 and IoU([2,2,4,3],[1,1,4,3]) = 6/12: t = 0.6 serves both at 0.5
    assert res["MaxBoxAccV2_IoU50"] == 100.0 and res["best_threshold_IoU50"] == pytest.approx(0.6)
    assert res["MaxBoxAccV2_IoU30"] == 100.0
    assert res["MaxBoxAccV2"] == pytest.approx(250 / 3)


def test_nan_map_error_names_image():
    m = WSOL_MAP.copy()
    m[0, 0] = np.nan
    with pytest.raises(ValueError, match="cat_017.jpg"):
        BoxAccumulator([0.5]).add(m, np.array([[0, 0, 1, 1]]), name="cat_017.jpg")


def test_bad_boxes_are_errors():
    acc = BoxAccumulator([0.5])
    with pytest.raises(ValueError, match="img3.*inside the 5x4 map"):
        acc.add(WSOL_MAP, np.array([[0, 0, 5, 3]]), name="img3")
    with pytest.raises(ValueError, match="img4 has no ground-truth box"):
        acc.add(WSOL_MAP, np.zeros((0, 4)), name="img4")
    with pytest.raises(ValueError, match=r"must be \(H, W\)"):
        normalize_map(np.zeros((2, 3, 4)), "x")


def test_constant_map_pxap_is_positive_fraction():
    mask = np.zeros((10, 10), np.uint8)
    mask[:3, :5] = 1  # 15 positives of 100
    acc = PxAPAccumulator(thresholds_for(0.01))
    acc.add(np.full((10, 10), 0.7), mask)
    assert acc.compute() == pytest.approx(15.0)


def test_pxap_perfect_and_ignored_pixels():
    mask = np.zeros((10, 10), np.uint8)
    mask[:3, :5] = 1
    mask[9, :] = 255  # ignored: their high scores must not count as false positives
    score = mask.astype(np.float32).copy()
    score[9, :] = 1.0
    acc = PxAPAccumulator(thresholds_for(0.01))
    acc.add(score, mask)
    assert acc.compute() == pytest.approx(100.0)


def test_corloc_continuous_iou():
    assert iou_continuous(np.array([0, 0, 10, 10]), np.array([[0, 0, 10, 5]]))[0, 0] == pytest.approx(0.5)
    preds = [np.array([0, 0, 10, 10]), np.array([0, 0, 10, 10])]
    gts = [np.array([[0, 0, 10, 5]]), np.array([[0, 0, 10, 4.9], [50, 50, 60, 60]])]
    assert corloc(preds, gts) == 50.0
    assert to_continuous(np.array([[1, 2, 3, 4]])).tolist() == [[1, 2, 4, 5]]


def test_mass_rule_keeps_sixty_percent():
    att = torch.tensor([[0.1, 0.4, 0.2, 0.3]])
    # ascending 0.1, 0.2, 0.3, 0.4: cumulative 0.1, 0.3, 0.6, 1.0 > 0.4 -> keep 0.3 and 0.4
    assert mass_mask(att).tolist() == [[False, True, False, True]]
    grid = torch.zeros(1, 4, 4)
    grid[0, 1:3, 2:4] = 1.0  # all mass in a 2x2 block at rows 1-2, cols 2-3
    grid[0, 0, 0] = 0.05  # a small isolated patch is dropped by the 60% rule
    box = mass_boxes(grid.view(1, 16), (4, 4), patch_size=7, img_hw=(28, 28))
    assert box.tolist() == [[14, 7, 28, 21]]


def test_lost_box_on_constructed_keys():
    grid = (4, 4)
    obj = torch.zeros(4, 4, dtype=torch.bool)
    obj[1:3, 0:2] = True  # the object: 4 patches, fewer positive correlations than the background
    keys = torch.where(obj.view(16, 1), torch.tensor([-1.0, 0.1]), torch.tensor([1.0, 0.0]))
    box = lost_boxes(keys[None], grid, patch_size=2, img_hw=(8, 8))
    assert box.tolist() == [[0, 2, 4, 6]]


@pytest.mark.slow  # imports the evaluator stack and TensorBoard (seconds on a busy machine)
def test_maps_mode_json_keys_and_baseline(tmp_path):
    from downstream.localization.cli import main

    maps = np.zeros((2, 20, 20), np.float32)
    maps[0, 2:10, 2:10] = 1.0
    maps[1, 5:15, 5:15] = 3.0
    np.savez(tmp_path / "maps.npz", maps=maps)
    (tmp_path / "boxes.json").write_text('{"boxes": [[[2, 2, 9, 9]], [[5, 5, 14, 14], [0, 0, 3, 3]]]}')
    out = tmp_path / "out.json"
    main(["--maps", str(tmp_path / "maps.npz"), "--boxes", str(tmp_path / "boxes.json"), "--output", str(out),
          "progress=false"])
    import json

    res = json.loads(out.read_text())
    for key in ("MaxBoxAccV2", "MaxBoxAcc", "CorLoc", "MaxBoxAccV2_IoU30", "MaxBoxAccV2_IoU50", "MaxBoxAccV2_IoU70"):
        assert key in res and key in res["centre_baseline"]
    # the box at t = 0 is [2, 2, 10, 10] vs GT [2, 2, 9, 9]: IoU 64/81 >= 0.7; map 2 likewise 100/121
    assert res["MaxBoxAccV2"] == 100.0 and res["MaxBoxAcc"] == 100.0
    assert (tmp_path / "out.config.yaml").is_file()
    (tmp_path / "boxes.json").write_text('{"boxes": [[[2, 2, 9, 9]]]}')
    with pytest.raises(SystemExit) as exc:  # one "error:" line, exit status 2 (tests/.../test_input_errors.py)
        main(["--maps", str(tmp_path / "maps.npz"), "--boxes", str(tmp_path / "boxes.json"), "progress=false"])
    assert exc.value.code == 2


def test_best_head_is_the_one_matching_the_object():
    from downstream.localization.backbone_eval import _best_head

    heads = np.zeros((3, 20, 20), np.float32)
    heads[0, 0:5, 0:5] = 1.0  # a corner
    heads[1, 8:16, 6:12] = 1.0  # the object
    heads[2] = np.random.default_rng(0).random((20, 20))
    assert _best_head(heads, np.array([[6, 8, 11, 15]]), thresholds_for(0.1), "img") == 1
