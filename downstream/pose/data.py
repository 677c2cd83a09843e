"""The MS-Transformer pose CSV and an image dataset over it.

Format (Shavit et al., ICCV 2021, as published for 7Scenes and Cambridge Landmarks): a header
``scene,split,seq,img_path,t1,t2,t3,q1,q2,q3,q4``; ``img_path`` relative to the data root;
``t1..t3`` the camera position in metres and ``q1..q4`` the camera-to-world rotation as a unit
quaternion with q1 = w. Scene ids are the sorted scene names of the training CSV; the test CSV
must use the same scenes. Extra columns are ignored.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from downstream.pose.transforms import PoseTransform, square_crop

log = logging.getLogger(__name__)

COLUMNS: tuple[str, ...] = ("scene", "split", "seq", "img_path", "t1", "t2", "t3", "q1", "q2", "q3", "q4")


class PoseDataError(ValueError):
    """A pose CSV or image that cannot be used, naming the row and the fix."""


@dataclass
class PoseTable:
    """Rows of a pose CSV. ``xyz`` (M, 3) metres, ``quat`` (M, 4) unit (w, x, y, z), ``line`` CSV line numbers."""

    path: str
    scene: list[str]
    split: list[str]
    seq: list[str]
    img_path: list[str]
    xyz: np.ndarray
    quat: np.ndarray
    line: list[int]

    def __len__(self) -> int:
        return len(self.scene)


def read_pose_csv(path: str | Path, split: str = "", unit_tolerance: float = 1e-2) -> PoseTable:
    """Read and validate a pose CSV.

    Args:
        path: The CSV file.
        split: Keep only rows whose ``split`` column equals this ("" = all rows).
        unit_tolerance: Largest accepted | |q| - 1 |; quaternions are renormalised after the check.

    Raises:
        PoseDataError: Missing file or columns, an empty scene name, unparsable numbers, a NaN or
            infinite position, a zero, non-finite or non-unit quaternion, no rows of the asked split;
            each names the file, line and column.
    """
    path = Path(path)
    if not path.is_file():
        raise PoseDataError(f"pose CSV {path} does not exist: set data.root / data.train_csv / data.test_csv, "
                            "or render one with python -m downstream.pose.render --out DIR")
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise PoseDataError(f"{path}: missing column(s) {', '.join(missing)} (found {', '.join(header) or 'none'});"
                                f" the header must be {','.join(COLUMNS)} (MS-Transformer format, q1 = w)")
        reader.fieldnames = header
        rows = [(i + 2, r) for i, r in enumerate(reader)]
    kept = [(line, r) for line, r in rows if not split or r["split"].strip() == split]
    if not kept:
        found = sorted({r["split"].strip() for _, r in rows})
        raise PoseDataError(f"{path}: no rows with split={split!r} (splits present: {found or 'none'}); set "
                            "data.train_split / data.test_split, or '' to use every row")
    xyz, quat = np.zeros((len(kept), 3)), np.zeros((len(kept), 4))
    for j, (line, r) in enumerate(kept):
        if not (r.get("scene") or "").strip():
            raise PoseDataError(f"{path} line {line}, column scene: the scene name is empty; write the scene the "
                                "frame belongs to (e.g. chess), or delete the row")
        xyz[j] = [_number(path, line, r, c) for c in ("t1", "t2", "t3")]
        quat[j] = [_number(path, line, r, c) for c in ("q1", "q2", "q3", "q4")]
        for c, v in zip(("t1", "t2", "t3"), xyz[j]):
            if not np.isfinite(v):
                raise PoseDataError(f"{path} line {line}, column {c}: the position is {r[c].strip()}, not a finite "
                                    "number of metres; fix the camera position, or delete the row")
        norm = float(np.linalg.norm(quat[j]))
        if not np.isfinite(norm) or abs(norm - 1.0) > unit_tolerance:
            raise PoseDataError(f"{path} line {line}, columns q1..q4 ({r['img_path']}): the quaternion "
                                f"{quat[j].tolist()} has norm {norm:.4g}, not 1; write the camera-to-world rotation "
                                "as a unit quaternion (w, x, y, z) - normalise it, or delete the row if it is "
                                "zero/invalid")
        quat[j] /= norm
    return PoseTable(str(path), [r["scene"].strip() for _, r in kept], [r["split"].strip() for _, r in kept],
                     [r["seq"].strip() for _, r in kept], [r["img_path"].strip() for _, r in kept],
                     xyz.astype(np.float32), quat.astype(np.float32), [line for line, _ in kept])


def _number(path: Path, line: int, row: dict, column: str) -> float:
    """One numeric cell, or an error naming file, line and column."""
    raw = row.get(column)
    try:
        return float(raw)
    except (TypeError, ValueError):
        raise PoseDataError(f"{path} line {line}, column {column}: {raw!r} is not a number; t1..t3 and q1..q4 must "
                            "be numbers - fix or delete the row") from None


def scene_names(table: PoseTable) -> list[str]:
    """The scene vocabulary of a training table: sorted scene names (id = index)."""
    return sorted(set(table.scene))


def scene_ids(table: PoseTable, names: Sequence[str]) -> np.ndarray:
    """(M,) int64 scene ids of ``table`` under the vocabulary ``names``.

    Raises:
        PoseDataError: A row whose scene the model was not trained on.
    """
    index = {n: i for i, n in enumerate(names)}
    for line, scene in zip(table.line, table.scene):
        if scene not in index:
            raise PoseDataError(f"{table.path} line {line}: scene {scene!r} is not one the model was trained on "
                                f"({', '.join(names)}); evaluate only those scenes, or retrain with it")
    return np.array([index[s] for s in table.scene], dtype=np.int64)


def read_image(path: str | Path) -> np.ndarray:
    """An image file -> uint8 RGB (3, H, W)."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise PoseDataError(f"cannot read image {path}")
    return np.ascontiguousarray(cv2.cvtColor(img, cv2.COLOR_BGR2RGB).transpose(2, 0, 1))


def to_gray(img: torch.Tensor) -> torch.Tensor:
    """uint8 RGB (3, H, W) -> uint8 gray (1, H, W) (ITU-R 601 luma, as OpenCV)."""
    import cv2

    return torch.from_numpy(cv2.cvtColor(np.ascontiguousarray(img.permute(1, 2, 0).numpy()), cv2.COLOR_RGB2GRAY)[None])


def load_image(path: str | Path, size: int, channels: int = 3) -> np.ndarray:
    """An image file -> uint8 (C, size, size): short side resized to ``size``, centre crop (RGB or gray)."""
    img = torch.from_numpy(square_crop(read_image(path), size))
    return (to_gray(img) if channels == 1 else img).numpy()


class PoseDataset(Dataset):
    """(image uint8 (C, S, S), xyz (3,), quat (4,), scene id) for every row of a pose table.

    Args:
        table: From :func:`read_pose_csv`.
        root: Folder the ``img_path`` column is relative to.
        names: Scene vocabulary (the training table's :func:`scene_names`).
        transform: Image transform (:mod:`downstream.pose.transforms`); its output side is S.
        channels: 3 (RGB) or 1 (gray, converted after the transform), as the backbone expects.
        check_files: Check every image exists now (a clear error before training starts).
        seed: Random transforms draw from a generator seeded by (seed, epoch, index): a rerun or a
            resume sees the same crops and colours.
    """

    def __init__(self, table: PoseTable, root: str | Path, names: Sequence[str], transform: PoseTransform,
                 channels: int = 3, check_files: bool = True, seed: int = 0) -> None:
        self.table, self.root, self.names = table, Path(root), list(names)
        self.transform, self.channels, self.seed, self.epoch = transform, int(channels), int(seed), 0
        self.image_size = transform.crop
        self.scene = scene_ids(table, self.names)
        if check_files:
            for line, rel in zip(table.line, table.img_path):
                if not (self.root / rel).is_file():
                    raise PoseDataError(f"{table.path} line {line}: image {self.root / rel} does not exist; img_path "
                                        "must be relative to data.root (set data.root to the folder it is under)")

    def set_epoch(self, epoch: int) -> None:
        """Random transforms of this epoch (call before iterating)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
        gen = None
        if self.transform.is_random:
            gen = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) * 10_000_019 + int(i))
        img = self.transform(read_image(self.root / self.table.img_path[i]), gen)
        if self.channels == 1:
            img = to_gray(img)
        return img, torch.from_numpy(self.table.xyz[i]), torch.from_numpy(self.table.quat[i]), int(self.scene[i])


def concat_tables(tables: Sequence[PoseTable]) -> PoseTable:
    """Several tables as one (e.g. MS-Transformer's per-scene test CSVs); ``path`` names them all."""
    if len(tables) == 1:
        return tables[0]
    lists = {k: [v for t in tables for v in getattr(t, k)] for k in ("scene", "split", "seq", "img_path", "line")}
    return PoseTable(" + ".join(t.path for t in tables), xyz=np.concatenate([t.xyz for t in tables]),
                     quat=np.concatenate([t.quat for t in tables]), **lists)


def open_split(root: str | Path, csv_file: str, split: str, image_size: int, channels: int = 3,
               names: Sequence[str] | None = None, transform: PoseTransform | None = None,
               seed: int = 0) -> PoseDataset:
    """One split as a dataset; ``names`` None = this table's own sorted scenes (the training set).

    ``csv_file`` may list several files separated by commas (relative to ``root`` or absolute).
    ``transform`` None = ours, ``short_side_crop`` to ``image_size``; otherwise its crop must be
    ``image_size``.
    """
    transform = transform or PoseTransform("short_side_crop", image_size)
    if transform.crop != image_size:
        raise ValueError(f"the transform crops {transform.crop} px, not image_size={image_size}")
    paths = [Path(f.strip()) if Path(f.strip()).is_absolute() else Path(root) / f.strip()
             for f in csv_file.split(",") if f.strip()]
    if not paths:
        raise PoseDataError("no CSV file given: set data.train_csv (and data.test_csv) to the pose CSV(s)")
    table = concat_tables([read_pose_csv(p, split) for p in paths])
    names = scene_names(table) if names is None else names
    log.info("%s (split %r): %d frames, scenes %s", table.path, split, len(table), ", ".join(names))
    return PoseDataset(table, root, names, transform, channels, seed=seed)
