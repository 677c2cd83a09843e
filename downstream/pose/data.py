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
        PoseDataError: Missing file or columns, unparsable numbers, a zero or non-unit quaternion,
            no rows of the asked split.
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
        try:
            xyz[j] = [float(r[c]) for c in ("t1", "t2", "t3")]
            quat[j] = [float(r[c]) for c in ("q1", "q2", "q3", "q4")]
        except (TypeError, ValueError):
            raise PoseDataError(f"{path} line {line}: t1..t3 / q1..q4 must be numbers, got "
                                f"{[r.get(c) for c in COLUMNS[4:]]}; fix or delete the row") from None
        norm = float(np.linalg.norm(quat[j]))
        if not np.isfinite(xyz[j]).all() or not np.isfinite(norm) or abs(norm - 1.0) > unit_tolerance:
            raise PoseDataError(f"{path} line {line} ({r['img_path']}): the quaternion q1..q4 = {quat[j].tolist()} "
                                f"has norm {norm:.4g}, not 1; write the camera-to-world rotation as a unit "
                                "quaternion (w, x, y, z) - normalise it, or delete the row if it is zero/invalid")
        quat[j] /= norm
    return PoseTable(str(path), [r["scene"].strip() for _, r in kept], [r["split"].strip() for _, r in kept],
                     [r["seq"].strip() for _, r in kept], [r["img_path"].strip() for _, r in kept],
                     xyz.astype(np.float32), quat.astype(np.float32), [line for line, _ in kept])


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


def load_image(path: str | Path, size: int, channels: int = 3) -> np.ndarray:
    """An image file -> uint8 (C, size, size): short side resized to ``size``, centre crop (RGB or gray)."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise PoseDataError(f"cannot read image {path}")
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    h, w = img.shape[:2]
    scale = size / min(h, w)
    img = cv2.resize(img, (max(size, round(w * scale)), max(size, round(h * scale))), interpolation=cv2.INTER_AREA)
    top, left = (img.shape[0] - size) // 2, (img.shape[1] - size) // 2
    img = img[top:top + size, left:left + size]
    if channels == 1:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[..., None]
    return np.ascontiguousarray(img.transpose(2, 0, 1))


class PoseDataset(Dataset):
    """(image uint8 (C, S, S), xyz (3,), quat (4,), scene id) for every row of a pose table.

    Args:
        table: From :func:`read_pose_csv`.
        root: Folder the ``img_path`` column is relative to.
        names: Scene vocabulary (the training table's :func:`scene_names`).
        image_size: S.
        channels: 3 (RGB) or 1 (gray), as the backbone expects.
        check_files: Check every image exists now (a clear error before training starts).
    """

    def __init__(self, table: PoseTable, root: str | Path, names: Sequence[str], image_size: int,
                 channels: int = 3, check_files: bool = True) -> None:
        self.table, self.root, self.names = table, Path(root), list(names)
        self.image_size, self.channels = int(image_size), int(channels)
        self.scene = scene_ids(table, self.names)
        if check_files:
            for line, rel in zip(table.line, table.img_path):
                if not (self.root / rel).is_file():
                    raise PoseDataError(f"{table.path} line {line}: image {self.root / rel} does not exist; img_path "
                                        "must be relative to data.root (set data.root to the folder it is under)")

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
        img = load_image(self.root / self.table.img_path[i], self.image_size, self.channels)
        return (torch.from_numpy(img), torch.from_numpy(self.table.xyz[i]), torch.from_numpy(self.table.quat[i]),
                int(self.scene[i]))


def concat_tables(tables: Sequence[PoseTable]) -> PoseTable:
    """Several tables as one (e.g. MS-Transformer's per-scene test CSVs); ``path`` names them all."""
    if len(tables) == 1:
        return tables[0]
    lists = {k: [v for t in tables for v in getattr(t, k)] for k in ("scene", "split", "seq", "img_path", "line")}
    return PoseTable(" + ".join(t.path for t in tables), xyz=np.concatenate([t.xyz for t in tables]),
                     quat=np.concatenate([t.quat for t in tables]), **lists)


def open_split(root: str | Path, csv_file: str, split: str, image_size: int, channels: int = 3,
               names: Sequence[str] | None = None) -> PoseDataset:
    """One split as a dataset; ``names`` None = this table's own sorted scenes (the training set).

    ``csv_file`` may list several files separated by commas (relative to ``root`` or absolute).
    """
    paths = [Path(f.strip()) if Path(f.strip()).is_absolute() else Path(root) / f.strip()
             for f in csv_file.split(",") if f.strip()]
    if not paths:
        raise PoseDataError("no CSV file given: set data.train_csv (and data.test_csv) to the pose CSV(s)")
    table = concat_tables([read_pose_csv(p, split) for p in paths])
    names = scene_names(table) if names is None else names
    log.info("%s (split %r): %d frames, scenes %s", table.path, split, len(table), ", ".join(names))
    return PoseDataset(table, root, names, image_size, channels)
