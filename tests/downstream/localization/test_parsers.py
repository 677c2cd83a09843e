"""Parsers on real photos: Debian labelme-examples (3 VOC 2011 photos: VOC XML, COCO JSON, instance PNGs)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from downstream.localization.debian import LABELME_EXAMPLES, fetch_package
from downstream.localization.metrics import iou_inclusive
from downstream.localization.parsers import parse, parse_coco, parse_voc

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def examples() -> Path:
    try:
        return fetch_package(*LABELME_EXAMPLES, REPO / "data" / "debian")
    except RuntimeError as exc:
        pytest.skip(f"labelme-examples unavailable: {exc}")


def test_voc_xml_boxes(examples):
    parsed = parse_voc(examples / "bbox_detection" / "data_dataset_voc")
    recs = {r.image.name: r for r in parsed.records}
    assert sorted(recs) == ["2011_000003.jpg", "2011_000006.jpg", "2011_000025.jpg"]
    r = recs["2011_000003.jpg"]
    assert r.size == (500, 338)
    # XML: (191.0, 107.369, 313.0, 329.369) and (365, 83, 500, 333), 1-based -> 0-based inclusive
    assert r.boxes.tolist() == [[190, 106, 312, 328], [364, 82, 499, 332]]
    assert parsed.notes == {}


def test_coco_json_agrees_with_voc_and_instance_masks(examples):
    coco_dir = examples / "instance_segmentation" / "data_dataset_coco"
    parsed = parse_coco(coco_dir / "annotations.json")
    recs = {r.image.name: r for r in parsed.records}
    r = recs["2011_000003.jpg"]
    assert r.boxes.tolist() == [[191, 107, 313, 327], [365, 87, 499, 337], [369, 159, 387, 212]]
    # The two people match the VOC XML of the same photo (another converter) closely.
    voc = {x.image.name: x for x in parse_voc(examples / "bbox_detection" / "data_dataset_voc").records}
    assert iou_inclusive(voc["2011_000003.jpg"].boxes, r.boxes[:2]).diagonal().min() > 0.95
    # Independent check: instance 1 of the instance PNG spans the first COCO box.
    inst = np.array(Image.open(examples / "instance_segmentation" / "data_dataset_voc" / "SegmentationObjectPNG" /
                               "2011_000003.png"))
    ys, xs = np.nonzero(inst == 1)
    assert iou_inclusive(np.array([[xs.min(), ys.min(), xs.max(), ys.max()]]), r.boxes[:1])[0, 0] > 0.95


def test_cub_and_wsol_layouts_written_from_the_photos(examples, tmp_path):
    coco = parse_coco(examples / "instance_segmentation" / "data_dataset_coco" / "annotations.json").records
    cub = tmp_path / "CUB_200_2011"
    (cub / "images" / "001.Person").mkdir(parents=True)
    meta = tmp_path / "metadata"
    meta.mkdir()
    lines = {k: [] for k in ("images", "bb", "split", "labels", "ids", "cls", "sizes", "loc")}
    for i, r in enumerate(coco, 1):
        rel = f"001.Person/{r.image.name}"
        shutil.copy(r.image, cub / "images" / rel)
        x0, y0, x1, y1 = r.boxes[0].tolist()
        lines["images"].append(f"{i} {rel}")
        lines["bb"].append(f"{i} {x0}.0 {y0}.0 {x1 - x0 + 1}.0 {y1 - y0 + 1}.0")
        lines["split"].append(f"{i} {int(i == 1)}")
        lines["labels"].append(f"{i} 1")
        lines["ids"].append(f"images/{rel}")
        lines["cls"].append(f"images/{rel},0")
        lines["sizes"].append(f"images/{rel},{r.size[0]},{r.size[1]}")
        lines["loc"] += [f"images/{rel},{','.join(map(str, b))}" for b in r.boxes.tolist()]
    for name, key in (("images.txt", "images"), ("bounding_boxes.txt", "bb"), ("train_test_split.txt", "split"),
                      ("image_class_labels.txt", "labels")):
        (cub / name).write_text("\n".join(lines[key]) + "\n")
    for name, key in (("image_ids.txt", "ids"), ("class_labels.txt", "cls"), ("image_sizes.txt", "sizes"),
                      ("localization.txt", "loc")):
        (meta / name).write_text("\n".join(lines[key]) + "\n")

    test = parse("cub", str(cub), split="test", cub_boxes="inclusive").records
    assert len(test) == 2 and [r.boxes.tolist() for r in test] == [coco[1].boxes[:1].tolist(),
                                                                   coco[2].boxes[:1].tolist()]
    assert test[0].size == coco[1].size and test[0].label == 0
    # default: wsolevaluation's convention ends the box at x + w, y + h (one past the last pixel),
    # clipped to the image (W - 1, H - 1) when that reaches the border (the 500 x 375 photo's y1 = 374)
    parsed = parse("cub", str(cub), split="test")
    want = [[x0, y0, min(x1 + 1, r.size[0] - 1), min(y1 + 1, r.size[1] - 1)]
            for r in coco[1:] for x0, y0, x1, y1 in r.boxes[:1].tolist()]
    assert [r.boxes[0].tolist() for r in parsed.records] == want
    assert parsed.notes == {"boxes clipped to the image": 1}
    wsol = parse("wsol", str(cub), metadata=str(meta)).records
    assert [r.boxes.tolist() for r in wsol] == [r.boxes.tolist() for r in coco]

    (meta / "localization.txt").write_text(lines["loc"][0].rsplit(",", 1)[0] + ",9999\n")
    with pytest.raises(ValueError, match=r"localization.txt:1: box .* outside the 500x338 image"):
        parse("wsol", str(cub), metadata=str(meta))
    (meta / "localization.txt").write_text(lines["loc"][0] + "\n")
    with pytest.raises(ValueError, match="no box or mask for images/001.Person/2011_000025.jpg"):
        parse("wsol", str(cub), metadata=str(meta))
    (meta / "localization.txt").unlink()
    with pytest.raises(FileNotFoundError, match="localization.txt not found"):
        parse("wsol", str(cub), metadata=str(meta))
