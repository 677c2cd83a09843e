"""LOST's protocol (valeoai/LOST; restated in DESIGN 4b): padding, --no_hard, dino_seg's component, single head."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from downstream.localization.boxes import _components, component_box, lost_component, mass_boxes
from downstream.localization.padding import pad_normalised, padded_hw, size_batches
from downstream.localization.parsers import parse_voc
from downstream.localization.protocol import resolve_component, resolve_geometry


def test_padded_size_is_the_next_multiple_of_the_patch():
    # LOST: ceil(H / p) * p, ceil(W / p) * p; an exact multiple stays
    assert padded_hw((30, 45), 7) == (35, 49)
    assert padded_hw((28, 28), 7) == (28, 28)
    assert padded_hw((1, 8), 16) == (16, 16)


def test_padding_is_zero_after_normalisation_right_and_bottom():
    x = torch.full((2, 3, 10, 12), 5.0)  # two normalised images; the second is only 9 x 8 (collate padding)
    x[1, :, 9:, :] = -7.0
    x[1, :, :, 8:] = -7.0
    out = pad_normalised(x, [(10, 12), (9, 8)], patch_size=7)
    assert out.shape == (2, 3, 14, 14)
    assert (out[0, :, :10, :12] == 5).all() and (out[0, :, 10:] == 0).all() and (out[0, :, :, 12:] == 0).all()
    assert (out[1, :, :9, :8] == 5).all() and out[1].sum() == 5 * 3 * 9 * 8  # the rest is 0, not -7
    with pytest.raises(ValueError, match="padded sizes"):
        pad_normalised(x, [(10, 12), (6, 6)], patch_size=7)  # 14 x 14 and 7 x 7 cannot share a batch


def test_size_batches_group_by_padded_size_in_order():
    sizes = [(30, 45), (28, 28), (33, 49), (27, 22), (35, 43)]
    # padded (p = 7): (35, 49), (28, 28), (35, 49), (28, 28), (35, 49)
    assert size_batches(sizes, 7, batch_size=2) == [[0, 2], [4], [1, 3]]
    assert size_batches(sizes, 7, batch_size=1) == [[0], [2], [4], [1], [3]]


def test_components_numbered_in_raster_order_like_scipy():
    from scipy import ndimage

    rng = np.random.default_rng(0)
    for _ in range(20):
        mask = rng.random((9, 11)) > 0.55
        ours = _components(mask)
        ref = ndimage.label(mask)[0]  # 4-connectivity by default, as LOST calls it
        assert np.array_equal(ours, ref)


def test_lost_component_rule_hand_values():
    # LOST's dino_seg: sizes of labels range(max) = 0 .. max - 1; largest of 1 .. max - 1, else label 0
    two = np.zeros((4, 6), bool)
    two[0, 0] = True  # label 1: 1 patch
    two[2:4, 2:6] = True  # label 2: 8 patches (the true largest, and the last label)
    labels = _components(two)
    assert labels[0, 0] == 1 and labels[3, 5] == 2
    assert lost_component(labels) == 1  # skips label 2
    # the box of label 1 (patch size 16, image 64 x 96): [0, 0, 16, 16]; the true largest: [32, 32, 96, 64]
    assert component_box(two, 16, (64, 96), rule="lost").tolist() == [0, 0, 16, 16]
    assert component_box(two, 16, (64, 96), rule="largest").tolist() == [32, 32, 96, 64]
    one = np.zeros((4, 6), bool)
    one[1:3, 1:3] = True  # a single component: LOST takes label 0, the unselected patches (the whole grid here)
    assert lost_component(_components(one)) == 0
    assert component_box(one, 16, (64, 96), rule="lost").tolist() == [0, 0, 96, 64]
    three = np.zeros((5, 5), bool)
    three[0, 0] = three[0, 2] = True  # labels 1, 2: one patch each
    three[2:5, 0:5] = True  # label 3: 15 patches
    assert lost_component(_components(three)) == 1  # argmax over labels 1, 2 (tie: the first)


def test_lost_rule_box_is_not_clipped_to_the_unpadded_image():
    # a 20 x 20 image padded to 28 x 28 (p = 7, grid 4 x 4); three components in raster order:
    # A = patches (0, 3), (1, 3) (pixels x 21..28: in the padding), B = (2, 0), C = (3, 2), (3, 3)
    grid = torch.zeros(4, 4)
    for r, c in ((0, 3), (1, 3), (2, 0), (3, 2), (3, 3)):
        grid[r, c] = 1.0
    att = grid.view(1, 16)
    # LOST's rule: labels 1..max-1 = A (2 patches), B (1): A, box unclipped
    assert mass_boxes(att, (4, 4), 7, [(20, 20)], mass=0.99, rule="lost").tolist() == [[21, 0, 28, 14]]
    # ours: the largest (A and C tie at 2: the first, A), clipped to the 20 x 20 image
    assert mass_boxes(att, (4, 4), 7, [(20, 20)], mass=0.99, rule="largest").tolist() == [[20, 0, 20, 14]]
    only = torch.zeros(1, 16)
    only[0, 5] = 1.0  # one component, patch (1, 1): LOST's rule takes label 0, every other patch: the padded grid
    assert mass_boxes(only, (4, 4), 7, [(20, 20)], rule="lost").tolist() == [[0, 0, 28, 28]]
    assert mass_boxes(only, (4, 4), 7, [(20, 20)], rule="largest").tolist() == [[7, 7, 14, 14]]


def test_auto_settings_follow_the_reference_of_the_format():
    assert [resolve_geometry("auto", f) for f in ("voc", "coco", "wsol", "cub")] == ["pad", "pad", "square", "square"]
    assert [resolve_component("auto", f) for f in ("voc", "coco", "wsol", "cub")] == ["lost", "lost", "largest",
                                                                                     "largest"]
    assert resolve_geometry("square", "voc") == "square" and resolve_component("largest", "coco") == "largest"


def _voc(root, objects_per_image: dict[str, list[tuple[int, int, tuple[int, int, int, int]]]],
         sizes: dict[str, tuple[int, int]]):
    """A VOC folder: per image a list of (truncated, difficult, (xmin, ymin, xmax, ymax)) (1-based)."""
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    rng = np.random.default_rng(0)
    for name, objs in objects_per_image.items():
        w, h = sizes[name]
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / "JPEGImages" / f"{name}.jpg")
        xml = [f"<annotation><filename>{name}.jpg</filename><size><width>{w}</width><height>{h}</height>"
               "<depth>3</depth></size>"]
        for t, d, (x0, y0, x1, y1) in objs:
            xml.append(f"<object><name>cat</name><truncated>{t}</truncated><difficult>{d}</difficult><bndbox>"
                       f"<xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>")
        xml.append("</annotation>")
        (root / "Annotations" / f"{name}.xml").write_text("".join(xml))
    return root


HARD = {"a": [(0, 0, (1, 1, 10, 10)), (1, 0, (5, 5, 20, 20)), (0, 1, (2, 3, 8, 9))],  # one of each
        "b": [(0, 1, (3, 3, 12, 12))],  # only a difficult object
        "c": [(1, 0, (1, 1, 30, 20))],  # only a truncated object
        "d": [(1, 1, (4, 4, 9, 9)), (0, 0, (6, 6, 16, 16))]}
SIZES = {"a": (40, 30), "b": (33, 21), "c": (30, 20), "d": (45, 26)}


def test_voc_keeps_hard_objects_by_default_and_no_hard_drops_them_as_lost(tmp_path):
    root = _voc(tmp_path / "VOC2007", HARD, SIZES)
    kept = {r.image.stem: r.boxes.tolist() for r in parse_voc(root).records}
    # LOST's extract_gt_VOC without remove_hards: every object, (xmin - 1, ymin - 1, xmax, ymax) continuous,
    # which is (xmin - 1, ymin - 1, xmax - 1, ymax - 1) inclusive here
    assert kept == {"a": [[0, 0, 9, 9], [4, 4, 19, 19], [1, 2, 7, 8]], "b": [[2, 2, 11, 11]], "c": [[0, 0, 29, 19]],
                    "d": [[3, 3, 8, 8], [5, 5, 15, 15]]}
    dropped = parse_voc(root, no_hard=True)
    # --no_hard: truncated OR difficult objects go; images left with none (b, c) are not evaluated
    assert {r.image.stem: r.boxes.tolist() for r in dropped.records} == {"a": [[0, 0, 9, 9]], "d": [[5, 5, 15, 15]]}
    assert dropped.notes == {"truncated or difficult objects dropped (no_hard)": 5,
                             "images with only truncated or difficult objects skipped (no_hard)": 2}


def test_coco_corners_rounded_as_lost(tmp_path):
    from downstream.localization.parsers import parse_coco

    Image.new("RGB", (40, 30)).save(tmp_path / "a.jpg")
    ann = {"images": [{"id": 1, "file_name": "a.jpg", "width": 40, "height": 30}],
           "annotations": [{"id": 7, "image_id": 1, "bbox": [10.5, 3.4, 5.2, 7.7], "iscrowd": 0},
                           {"id": 8, "image_id": 1, "bbox": [0, 0, 40, 30], "iscrowd": 1}]}
    (tmp_path / "ann.json").write_text(json.dumps(ann))
    parsed = parse_coco(tmp_path / "ann.json")
    # LOST: [round(10.5), round(3.4), round(15.7), round(11.1)] = [10, 3, 16, 11] continuous (Python rounds
    # half to even) = [10, 3, 15, 10] inclusive; truncation would have given [10, 3, 14, 10]
    assert parsed.records[0].boxes.tolist() == [[10, 3, 15, 10]]
    assert parsed.notes == {"crowd boxes skipped": 1}


@pytest.mark.slow
def test_voc_evaluated_at_own_sizes_with_lost_settings(tmp_path):
    """End to end on VOC images of four sizes: pad geometry, LOST's rule, boxes in each image's frame."""
    from downstream.localization.cli import main

    root = _voc(tmp_path / "VOC2007", HARD, SIZES)
    out = tmp_path / "loc.json"
    torch.manual_seed(0)  # the same random ViT in both runs
    main([f"data.root={root}", "data.format=voc", "data.split=all", "model.name=vit_pico", "model.patch_size=7",
          "model.num_heads=8", "lost=true", "data.num_workers=0", "progress=false", "--output", str(out)])
    res = json.loads(out.read_text())
    assert res["geometry"] == "pad" and res["component"] == "lost" and res["num_images"] == 4
    assert res["dinoseg_head"] == 4 and 0 <= res["CorLoc_dinoseg_head"] <= 100
    assert "CorLoc_best_head_oracle" in res and "CorLoc_best_head" not in res
    assert res["CorLoc_dinoseg_head"] == res["CorLoc_per_head"]["head4"]
    assert all(v % 25 == 0 for v in (res["CorLoc"], res["CorLoc_LOST"], res["MaxBoxAcc"]))  # 4 images
    # images b (33 x 21) and c (30 x 20) share the padded size 35 x 21: batched together they give what one
    # image at a time (LOST's loop) gives
    torch.manual_seed(0)
    main([f"data.root={root}", "data.format=voc", "data.split=all", "model.name=vit_pico", "model.patch_size=7",
          "model.num_heads=8", "lost=true", "data.num_workers=0", "progress=false", "data.batch_size=1",
          "--output", str(tmp_path / "one.json")])
    one = json.loads((tmp_path / "one.json").read_text())
    for key in ("MaxBoxAccV2", "MaxBoxAcc", "CorLoc", "CorLoc_LOST", "CorLoc_per_head", "CorLoc_dinoseg_head"):
        assert one[key] == res[key], key


def test_batched_padded_maps_equal_one_image_at_a_time():
    from downstream.backbone import ModelSpec, build_backbone
    from downstream.localization.maps import attention_maps
    from pretrain.data.transforms import normalize_on_device

    torch.manual_seed(0)
    model = build_backbone("", ModelSpec(name="vit_pico", patch_size=7), 28)
    rng = np.random.default_rng(0)
    big = torch.from_numpy(rng.integers(0, 255, (3, 33, 21), dtype=np.uint8))
    small = torch.from_numpy(rng.integers(0, 255, (3, 30, 20), dtype=np.uint8))  # same padded size 35 x 21
    pair = torch.zeros(2, 3, 33, 21, dtype=torch.uint8)  # what collate hands over: black right of / below small
    pair[0], pair[1, :, :30, :20] = big, small
    batched = attention_maps(model, pad_normalised(normalize_on_device(pair), [(33, 21), (30, 20)], 7))
    alone = attention_maps(model, pad_normalised(normalize_on_device(small[None]), [(30, 20)], 7))
    assert batched.shape == (2, 4, 5, 3) and torch.allclose(batched[1], alone[0], atol=1e-5)
    # control: padding with black pixels (normalised: not zero) changes the maps, so the check above can fail
    black = attention_maps(model, torch.nn.functional.pad(normalize_on_device(pair), (0, 0, 0, 2)))
    assert not torch.allclose(black[1], alone[0], atol=1e-5)
