"""Readers of the standard localization layouts into one record type.

Formats (boxes become 0-based inclusive pixel boxes ``x0, y0, x1, y1`` in the original image):

* ``wsol``: wsolevaluation metadata (Choe et al. 2020): ``image_ids.txt`` (path),
  ``class_labels.txt`` (path,label), ``image_sizes.txt`` (path,w,h), ``localization.txt``
  (path,x0,y0,x1,y1 per box; or path,mask,ignore for mask sets), optional ``masks.txt`` (path,mask,ignore
  lines beside the boxes: our extension). Paths are relative to the image root.
* ``cub``: CUB-200-2011: ``images.txt`` (id path), ``bounding_boxes.txt`` (id x y w h, floats),
  ``train_test_split.txt`` (id is_train), ``image_class_labels.txt`` (id class, 1-based), ``images/``.
  ``cub_boxes="wsol"`` (default) ends a box at ``x + w, y + h`` as wsolevaluation's
  ``metadata/CUB/*/localization.txt`` does (CUB image 1, ``60 27 325 304``, is ``60,27,385,331``
  there); ``"inclusive"`` ends it on the last pixel, ``x + w - 1, y + h - 1``.
* ``voc``: PASCAL VOC (VOC07 / VOC12): ``Annotations/*.xml`` (1-based inclusive bndbox),
  ``JPEGImages/``, optional ``ImageSets/Main/<split>.txt`` and ``SegmentationObject/*.png``
  (instance masks, 255 = ignore border). Difficult and truncated objects are kept, as LOST
  evaluates by default; ``no_hard=True`` is LOST's ``--no_hard``: objects marked truncated *or*
  difficult are dropped, and so are the images left without an object (counted).
* ``coco``: COCO instances JSON (``images``, ``annotations`` with bbox x, y, w, h; crowd boxes skipped
  and counted). Corners are rounded as LOST rounds them: ``round(x), round(y)`` to
  ``round(x + w), round(y + h)`` (one past the last pixel).

Every problem (a missing file, a box outside its image, an image without boxes) raises an error that
names the file and line; boxes that reach past the border by less than one pixel (float
annotations) are clipped and counted in :attr:`Parsed.notes`.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["CUB_BOXES", "FORMATS", "LocRecord", "Parsed", "parse", "parse_coco", "parse_cub", "parse_voc", "parse_wsol"]

FORMATS = ("wsol", "cub", "voc", "coco")
CUB_BOXES = ("wsol", "inclusive")  # box end x + w (wsolevaluation's metadata) or x + w - 1


@dataclass
class LocRecord:
    """One image: file, size (W, H), boxes (K, 4) int inclusive, class label, optional mask files."""

    image: Path
    size: tuple[int, int]
    boxes: np.ndarray
    label: int = -1
    masks: list[Path] = field(default_factory=list)
    ignore: Path | None = None
    voc_masks: bool = False  # VOC instance PNGs (ids, 255 = ignore border) instead of binary masks (> 0)


@dataclass
class Parsed:
    records: list[LocRecord]
    notes: dict[str, int] = field(default_factory=dict)

    def count(self, what: str) -> None:
        self.notes[what] = self.notes.get(what, 0) + 1


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{what} {path} not found: check data.root / data.metadata (see docs/localization.md)")
    return path


def _numbers(values: list[str], where: str, what: str) -> list[float]:
    """Finite numbers from text fields; an error naming ``where`` (file:line) and the bad field otherwise."""
    out = []
    for v in values:
        try:
            x = float(v)
        except ValueError:
            raise ValueError(f"{where}: {what} field {v.strip()!r} is not a number: fix that line") from None
        if not np.isfinite(x):
            raise ValueError(f"{where}: {what} field {v.strip()!r} is not finite: fix that line")
        out.append(x)
    return out


def _check_box(box: list[float], size: tuple[int, int], where: str, parsed: Parsed) -> list[int]:
    """Clip a box that overshoots the border by < 1 px (counted); anything worse is an error."""
    w, h = size
    if len(box) != 4 or not np.isfinite(np.asarray(box, dtype=np.float64)).all():
        raise ValueError(f"{where}: box {list(box)} must be 4 finite numbers x0, y0, x1, y1: fix the annotation")
    x0, y0, x1, y1 = box
    if x0 > x1 or y0 > y1 or x0 < -1 or y0 < -1 or x1 > w or y1 > h:
        raise ValueError(f"{where}: box {[round(v, 2) for v in box]} is outside the {w}x{h} image or has "
                         "x0 > x1 / y0 > y1: fix the annotation")
    clipped = [max(0, int(x0)), max(0, int(y0)), min(w - 1, int(x1)), min(h - 1, int(y1))]
    if clipped != [int(v) for v in box]:
        parsed.count("boxes clipped to the image")
    return clipped


def _lines(path: Path) -> list[str]:
    return [ln for ln in _need(path, "annotation file").read_text().splitlines() if ln.strip()]


def parse_wsol(metadata: str | Path, image_root: str | Path) -> Parsed:
    """wsolevaluation metadata folder (e.g. ``metadata/CUB/test``) with images under ``image_root``."""
    meta, root, parsed = Path(metadata), Path(image_root), Parsed([])
    ids = [ln.strip() for ln in _lines(meta / "image_ids.txt")]
    sizes = {}
    for i, ln in enumerate(_lines(meta / "image_sizes.txt"), 1):
        parts = ln.strip().split(",")
        where = f"{meta / 'image_sizes.txt'}:{i}"
        if len(parts) != 3:
            raise ValueError(f"{where}: expected path,width,height, got {ln.strip()!r}")
        w, h = _numbers(parts[1:], where, "size")
        if w != int(w) or h != int(h) or w < 1 or h < 1:
            raise ValueError(f"{where}: image size {parts[1]}x{parts[2]} must be whole numbers >= 1")
        sizes[parts[0]] = (int(w), int(h))
    labels = {}
    if (meta / "class_labels.txt").exists():
        for i, ln in enumerate(_lines(meta / "class_labels.txt"), 1):
            parts = ln.strip().split(",")
            if len(parts) != 2 or not parts[1].strip().lstrip("-").isdigit():
                raise ValueError(f"{meta / 'class_labels.txt'}:{i}: expected path,class_index, got {ln.strip()!r}")
            labels[parts[0]] = int(parts[1])
    boxes: dict[str, list] = {i: [] for i in ids}
    masks: dict[str, list] = {i: [] for i in ids}
    ignores: dict[str, Path | None] = {}
    numbered = [(meta / "localization.txt", n, ln) for n, ln in enumerate(_lines(meta / "localization.txt"), 1)]
    if (meta / "masks.txt").exists():  # our extension: PxAP masks beside the boxes (path,mask,ignore)
        numbered += [(meta / "masks.txt", n, ln) for n, ln in enumerate(_lines(meta / "masks.txt"), 1)]
    for src, n, ln in numbered:
        parts = ln.strip().split(",")
        where = f"{src}:{n}"
        if parts[0] not in boxes:
            raise ValueError(f"{where}: image {parts[0]} is not listed in image_ids.txt")
        if len(parts) == 5:
            if parts[0] not in sizes:
                raise ValueError(f"{where}: image {parts[0]} has no line in image_sizes.txt")
            boxes[parts[0]].append(_check_box(_numbers(parts[1:], where, "box"), sizes[parts[0]], where, parsed))
        elif len(parts) == 3:
            masks[parts[0]].append(root / parts[1])
            if parts[2]:
                ignores[parts[0]] = root / parts[2]
        else:
            raise ValueError(f"{where}: expected path,x0,y0,x1,y1 or path,mask,ignore, got {ln!r}")
    for i in ids:
        if i not in sizes:
            raise ValueError(f"{meta / 'image_sizes.txt'} has no size for {i}")
        if not boxes[i] and not masks[i]:
            raise ValueError(f"{meta / 'localization.txt'} has no box or mask for {i}")
        if not (root / i).is_file():  # here, not in a loader worker: one clear line before any work
            raise FileNotFoundError(f"image {root / i} (listed in {meta / 'image_ids.txt'}) not found: data.root "
                                    "must be the folder the image_ids.txt paths are relative to")
        parsed.records.append(LocRecord(root / i, sizes[i], np.array(boxes[i], dtype=np.int64).reshape(-1, 4),
                                        labels.get(i, -1), masks[i], ignores.get(i)))
    return parsed


def parse_cub(root: str | Path, split: str = "test", cub_boxes: str = "wsol") -> Parsed:
    """CUB-200-2011 folder; ``split`` train | test | all; ``cub_boxes`` one of :data:`CUB_BOXES` (box end
    ``x + w`` as wsolevaluation's metadata, or ``x + w - 1``). Sizes are read from the image headers."""
    if cub_boxes not in CUB_BOXES:
        raise ValueError(f"cub_boxes={cub_boxes!r}: choose one of {', '.join(CUB_BOXES)}")
    end = 0.0 if cub_boxes == "wsol" else 1.0
    from PIL import Image

    root, parsed = Path(root), Parsed([])
    paths = dict(ln.split(maxsplit=1) for ln in _lines(root / "images.txt"))
    is_train = dict(ln.split() for ln in _lines(root / "train_test_split.txt"))
    labels = {}
    if (root / "image_class_labels.txt").exists():
        labels = {k: int(v) - 1 for k, v in (ln.split() for ln in _lines(root / "image_class_labels.txt"))}
    boxes = {}
    for n, ln in enumerate(_lines(root / "bounding_boxes.txt"), 1):
        parts = ln.split()
        where = f"{root / 'bounding_boxes.txt'}:{n}"
        if len(parts) != 5:
            raise ValueError(f"{where}: expected 'image_id x y width height', got {ln.strip()!r}")
        x, y, w, h = _numbers(parts[1:], where, "box")
        boxes.setdefault(parts[0], []).append((n, [x, y, x + w - end, y + h - end]))
    if split not in ("train", "test", "all"):
        raise ValueError(f"CUB split must be train, test or all, got {split!r}")
    for k, rel in paths.items():
        if split != "all" and (is_train.get(k) == "1") != (split == "train"):
            continue
        image = _need(root / "images" / rel.strip(), "image")
        with Image.open(image) as im:
            size = im.size
        if k not in boxes:
            raise ValueError(f"{root / 'bounding_boxes.txt'} has no box for image id {k} ({rel})")
        kb = [_check_box(b, size, f"{root / 'bounding_boxes.txt'}:{n}", parsed) for n, b in boxes[k]]
        parsed.records.append(LocRecord(image, size, np.array(kb, dtype=np.int64), labels.get(k, -1)))
    return parsed


def parse_voc(root: str | Path, split: str = "", no_hard: bool = False) -> Parsed:
    """VOC folder (``VOC2007`` / ``VOC2012``); ``split`` names ``ImageSets/Main/<split>.txt`` ("" = every XML).

    Every object is kept by default (LOST's default). ``no_hard`` is LOST's ``--no_hard``
    (``datasets.extract_gt_VOC`` with ``remove_hards``): objects with ``truncated`` or
    ``difficult`` = 1 are dropped, and an image left with no object is skipped (counted), as
    LOST skips it before counting.
    """
    root, parsed = Path(root), Parsed([])
    if split:
        names = [ln.split()[0] for ln in _lines(root / "ImageSets" / "Main" / f"{split}.txt")]
        xmls = [root / "Annotations" / f"{n}.xml" for n in names]
    else:
        xmls = sorted(_need(root / "Annotations", "annotation folder").glob("*.xml"))
    for xml in xmls:
        try:
            tree = ET.parse(_need(xml, "annotation file")).getroot()
        except ET.ParseError as exc:
            raise ValueError(f"{xml}: not valid XML ({exc}): fix or remove the file") from None
        fname = tree.findtext("filename") or f"{xml.stem}.jpg"
        w, h = _numbers([tree.findtext("size/width") or "", tree.findtext("size/height") or ""], str(xml), "size")
        size = (int(w), int(h))
        kb, objects = [], list(tree.iter("object"))
        for obj in objects:
            hard = any((obj.findtext(t) or "0").strip() == "1" for t in ("truncated", "difficult"))
            if no_hard and hard:
                parsed.count("truncated or difficult objects dropped (no_hard)")
                continue
            coords = [obj.findtext(f"bndbox/{t}") or "" for t in ("xmin", "ymin", "xmax", "ymax")]
            bb = [v - 1 for v in _numbers(coords, str(xml), "bndbox")]  # 1-based inclusive -> 0-based
            kb.append(_check_box(bb, size, str(xml), parsed))
        if not kb:
            parsed.count("images with only truncated or difficult objects skipped (no_hard)" if objects
                         else "images without objects skipped")
            continue
        seg = root / "SegmentationObject" / f"{xml.stem}.png"
        parsed.records.append(LocRecord(_need(root / "JPEGImages" / fname, "image"), size,
                                        np.array(kb, dtype=np.int64), masks=[seg] if seg.exists() else [],
                                        voc_masks=True))
    return parsed


def parse_coco(annotations: str | Path, image_root: str | Path = "") -> Parsed:
    """COCO instances JSON; images under ``image_root`` (default: the JSON's folder)."""
    ann_path = _need(Path(annotations), "COCO annotation file")
    root = Path(image_root) if image_root else ann_path.parent
    try:
        data, parsed = json.loads(ann_path.read_text()), Parsed([])
    except json.JSONDecodeError as exc:
        raise ValueError(f"{ann_path}: not valid JSON ({exc}): fix or re-export the annotation file") from None
    for key in ("images", "annotations"):
        if key not in data:
            raise ValueError(f"{ann_path} has no '{key}' list: not a COCO instances file")
    by_image: dict[int, list] = {im["id"]: [] for im in data["images"]}
    for ann in data["annotations"]:
        if ann.get("iscrowd", 0):
            parsed.count("crowd boxes skipped")
            continue
        by_image.setdefault(ann["image_id"], []).append(ann)
    for im in data["images"]:
        size = (int(im["width"]), int(im["height"]))
        kb = []
        for ann in by_image[im["id"]]:
            where = f"{ann_path} annotation {ann.get('id')}"
            if len(ann.get("bbox", [])) != 4:
                raise ValueError(f"{where}: bbox {ann.get('bbox')} must be [x, y, width, height]")
            x, y, w, h = _numbers([str(v) for v in ann["bbox"]], where, "bbox")
            # LOST (extract_gt_COCO): corners x, y, x + w, y + h rounded to whole pixels (Python's round);
            # the far corner is one past the last pixel: inclusive end = round(x + w) - 1
            kb.append(_check_box([round(x), round(y), round(x + w) - 1, round(y + h) - 1], size, where, parsed))
        if not kb:
            parsed.count("images without boxes skipped")
            continue
        parsed.records.append(LocRecord(_need(root / im["file_name"], "image"), size, np.array(kb, dtype=np.int64)))
    return parsed


def parse(fmt: str, root: str, metadata: str = "", split: str = "test", no_hard: bool = False,
          cub_boxes: str = "wsol") -> Parsed:
    """Dispatch on ``fmt`` (one of :data:`FORMATS`); ``no_hard`` applies to ``voc``, ``cub_boxes`` to ``cub``."""
    if fmt == "wsol":
        return parse_wsol(metadata or Path(root) / "metadata" / split, root)
    if fmt == "cub":
        return parse_cub(root, split, cub_boxes)
    if fmt == "voc":
        return parse_voc(root, "" if split == "all" else split, no_hard)
    if fmt == "coco":
        return parse_coco(metadata or Path(root) / "annotations.json", root)
    raise ValueError(f"unknown data.format {fmt!r}; choose one of {FORMATS}")
