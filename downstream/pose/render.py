"""Render a multi-scene camera-pose dataset offline with pybullet's CPU renderer.

Each scene is a distinct room (its own size, wall / floor / ceiling photos and furniture boxes
textured with real photos from scikit-image, scikit-learn and pybullet_data), rendered with
TinyRenderer (``p.DIRECT``, no display). A camera flies smooth trajectories (sums of slow
sines in position, a slowly turning heading); sequences ``seq-01..`` of the train split and the
test split use different random trajectory parameters. Writes, under ``--out``::

    poses.csv                  scene,split,seq,img_path,t1,t2,t3,q1,q2,q3,q4 (metres; q1 = w)
    intrinsics.json            fx, fy, cx, cy, width, height (+ near, far, convention)
    <scene>/<seq>/frame-XXXXXX.color.png   RGB
    <scene>/<seq>/frame-XXXXXX.depth.png   uint16 depth along the camera axis, millimetres
    <scene>/<seq>/frame-XXXXXX.pose.txt    4x4 camera-to-world

Camera convention: OpenCV (+z forward, +x right, +y down); pybullet's OpenGL camera (-z
forward, +y up) is converted in :mod:`downstream.pose.geometry`. The world is z-up, metres.
Same seed and arguments -> the same files.

Usage::

    python -m downstream.pose.render --out data/pose_rooms --scenes 4 --size 96 --train-frames 200 --test-frames 100
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from downstream.pose.geometry import (
    gl_view_matrix,
    intrinsics,
    linear_depth,
    look_at,
    matrix_to_quaternion,
)

log = logging.getLogger(__name__)

NEAR, FAR = 0.05, 20.0
SCENE_NAMES = ("atrium", "bedroom", "cellar", "den", "gallery", "hall", "kitchen", "library", "office", "studio")


def texture_images() -> list[tuple[str, np.ndarray]]:
    """Real photos and textures (name, uint8 (H, W, 3)) from the installed packages, in a fixed order."""
    import skimage.data as skd

    out = []
    for name in ("brick", "grass", "gravel", "astronaut", "chelsea", "coffee", "rocket", "camera", "moon",
                 "immunohistochemistry", "hubble_deep_field", "coins", "page", "text"):
        img = getattr(skd, name)()
        out.append((f"skimage.{name}", np.repeat(img[..., None], 3, 2) if img.ndim == 2 else img[..., :3]))
    try:
        from sklearn.datasets import load_sample_image

        out += [(f"sklearn.{n}", load_sample_image(f"{n}.jpg")) for n in ("china", "flower")]
    except ImportError:
        log.warning("scikit-learn not installed: its two photos are not used as textures")
    import cv2
    import pybullet_data

    root = Path(pybullet_data.getDataPath())
    for rel in ("table/table.png", "tray/tray.jpg", "roboschool/models_outdoor/stadium/stadium_grass.jpg",
                "domino/domino.jpg", "checker_grid.jpg"):
        img = cv2.imread(str(root / rel), cv2.IMREAD_COLOR)
        if img is not None:
            out.append((f"pybullet_data.{rel}", cv2.cvtColor(img, cv2.COLOR_BGR2RGB)))
    return out


@dataclass
class Room:
    """One scene: half extents (m) and its textures (indices into :func:`texture_images`)."""

    half: np.ndarray  # (3,) half size x, y, z; floor at z = 0
    surfaces: list[int]  # floor, ceiling, 4 walls
    boxes: list[tuple[np.ndarray, np.ndarray, int]]  # (centre, half extents, texture)


def make_room(rng: np.random.Generator, num_textures: int) -> Room:
    half = np.array([rng.uniform(2.0, 3.5), rng.uniform(1.8, 3.0), rng.uniform(1.2, 1.6)])
    surfaces = rng.choice(num_textures, size=6, replace=False).tolist()
    boxes = []
    for _ in range(int(rng.integers(4, 7))):
        size = rng.uniform([0.2, 0.2, 0.3], [0.6, 0.6, 1.0])
        side = rng.integers(4)  # against a wall, keeping the room's middle free for the camera
        along = rng.uniform(-0.8, 0.8)
        centre = np.zeros(3)
        axis, sign = side // 2, 1.0 if side % 2 else -1.0
        centre[axis] = sign * (half[axis] - size[axis] - 0.05)
        centre[1 - axis] = along * (half[1 - axis] - size[1 - axis])
        centre[2] = size[2]
        boxes.append((centre, size, int(rng.integers(num_textures))))
    return Room(half, surfaces, boxes)


def build_room(p, client: int, room: Room, texture_ids: Sequence[int]) -> None:
    """Create the room's static bodies (thin textured boxes) in a pybullet client."""
    t = 0.05
    hx, hy, hz = room.half
    slabs = [((0, 0, -t), (hx, hy, t)), ((0, 0, 2 * hz + t), (hx, hy, t)),
             ((-hx - t, 0, hz), (t, hy, hz)), ((hx + t, 0, hz), (t, hy, hz)),
             ((0, -hy - t, hz), (hx, t, hz)), ((0, hy + t, hz), (hx, t, hz))]
    parts = [(np.array(c), np.array(h), tex) for (c, h), tex in zip(slabs, room.surfaces)] + room.boxes
    for centre, half, tex in parts:
        shape = p.createVisualShape(p.GEOM_BOX, halfExtents=half.tolist(), physicsClientId=client)
        body = p.createMultiBody(baseVisualShapeIndex=shape, basePosition=centre.tolist(), physicsClientId=client)
        p.changeVisualShape(body, -1, textureUniqueId=texture_ids[tex], rgbaColor=[1, 1, 1, 1],
                            physicsClientId=client)


def trajectory(rng: np.random.Generator, room: Room, frames: int) -> np.ndarray:
    """(frames, 4, 4) smooth camera-to-world poses inside the room's free middle, looking around."""
    t = np.linspace(0.0, 1.0, frames)[:, None]
    freq = rng.uniform(0.5, 1.5, size=(1, 3))
    phase = rng.uniform(0, 2 * np.pi, size=(1, 3))
    amp = np.array([0.45 * room.half[0], 0.45 * room.half[1], 0.25])
    eye = amp * np.sin(2 * np.pi * freq * t + phase) + np.array([0.0, 0.0, room.half[2] * 0.9])
    turns = rng.uniform(0.4, 0.8) * rng.choice([-1, 1])
    yaw = rng.uniform(0, 2 * np.pi) + 2 * np.pi * turns * t[:, 0] + 0.3 * np.sin(2 * np.pi * 2 * t[:, 0])
    pitch = 0.2 * np.sin(2 * np.pi * rng.uniform(0.5, 1.5) * t[:, 0] + rng.uniform(0, 2 * np.pi))
    look = np.stack([np.cos(yaw) * np.cos(pitch), np.sin(yaw) * np.cos(pitch), np.sin(pitch)], axis=1)
    return np.stack([look_at(e, e + d) for e, d in zip(eye, look)])


def render_frame(p, client: int, pose: np.ndarray, size: int, fov: float) -> tuple[np.ndarray, ...]:
    """(rgb uint8 (H, W, 3), depth metres (H, W), segmentation body ids (H, W)) for a camera-to-world pose."""
    proj = p.computeProjectionMatrixFOV(fov, 1.0, NEAR, FAR, physicsClientId=client)
    _, _, rgba, zbuf, seg = p.getCameraImage(size, size, gl_view_matrix(pose), proj, renderer=p.ER_TINY_RENDERER,
                                             shadow=0, lightDirection=[0.3, 0.2, 1.0], physicsClientId=client)
    rgba = np.asarray(rgba, dtype=np.uint8).reshape(size, size, 4)
    depth = linear_depth(np.asarray(zbuf, dtype=np.float64).reshape(size, size), NEAR, FAR)
    return rgba[..., :3].copy(), depth, np.asarray(seg).reshape(size, size)


def write_frame(folder: Path, index: int, rgb: np.ndarray, depth: np.ndarray, pose: np.ndarray) -> Path:
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"frame-{index:06d}"
    cv2.imwrite(f"{stem}.color.png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    cv2.imwrite(f"{stem}.depth.png", np.clip(np.round(depth * 1000.0), 0, 65535).astype(np.uint16))
    np.savetxt(f"{stem}.pose.txt", pose, fmt="%.8f")
    return Path(f"{stem}.color.png")


def _render_row(p, client: int, pose: np.ndarray, size: int, fov: float, out: Path, scene: str, split: str,
                seq: str, idx: int) -> list:
    """Render one camera pose (4, 4), write its files; its CSV row (MS-Transformer's columns)."""
    rgb, depth, _ = render_frame(p, client, pose, size, fov)
    img = write_frame(out / scene / seq, idx, rgb, depth, pose)
    q = matrix_to_quaternion(pose[:3, :3])
    return [scene, split, seq, img.relative_to(out).as_posix(), *[f"{v:.6f}" for v in pose[:3, 3]],
            *[f"{v:.8f}" for v in q]]


def _write_csv(path: Path, rows: list[list]) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["scene", "split", "seq", "img_path", "t1", "t2", "t3", "q1", "q2", "q3", "q4"])
        writer.writerows(rows)


def render_dataset(out: str | Path, scenes: int = 4, size: int = 96, train_frames: int = 200,
                   test_frames: int = 100, train_seqs: int = 2, fov: float = 60.0, seed: int = 0,
                   progress: bool = True) -> dict:
    """Render ``scenes`` rooms; returns {"frames", "seconds", "frames_per_s", "csv"}.

    Args:
        out: Output folder (created).
        scenes: Number of rooms (<= 10).
        size: Square image side in pixels.
        train_frames, test_frames: Frames per scene in each split (train split over ``train_seqs`` sequences).
        fov: Vertical field of view, degrees.
        seed: Everything random derives from it.
    """
    import cv2
    import pybullet as p

    if not 1 <= scenes <= len(SCENE_NAMES):
        raise ValueError(f"--scenes must be 1..{len(SCENE_NAMES)}, got {scenes}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    textures = texture_images()
    k = intrinsics(size, size, fov)
    (out / "intrinsics.json").write_text(json.dumps({**k, "near": NEAR, "far": FAR, "convention": "opencv",
                                                     "depth_unit": "mm along the camera axis"}, indent=2))
    rows, frames, start = [], 0, time.perf_counter()
    total = scenes * (train_frames + test_frames)
    bar = tqdm(total=total, desc="render", unit="frame", disable=not progress)
    client = p.connect(p.DIRECT)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            paths = []
            for i, (_, img) in enumerate(textures):
                paths.append(f"{tmp}/tex{i:02d}.png")
                cv2.imwrite(paths[-1], cv2.cvtColor(cv2.resize(img, (256, 256), interpolation=cv2.INTER_AREA),
                                                    cv2.COLOR_RGB2BGR))
            for s in range(scenes):
                rng = np.random.default_rng([seed, s])
                p.resetSimulation(physicsClientId=client)
                tex_ids = [p.loadTexture(path, physicsClientId=client) for path in paths]
                room = make_room(rng, len(textures))
                build_room(p, client, room, tex_ids)
                name = SCENE_NAMES[s]
                plan = [("train", f"seq-{j + 1:02d}", train_frames // train_seqs + (j < train_frames % train_seqs))
                        for j in range(train_seqs)] + [("test", f"seq-{train_seqs + 1:02d}", test_frames)]
                for split, seq, n in plan:
                    for idx, pose in enumerate(trajectory(rng, room, n)):
                        rows.append(_render_row(p, client, pose, size, fov, out, name, split, seq, idx))
                        frames += 1
                        bar.update(1)
    finally:
        p.disconnect(client)
        bar.close()
    _write_csv(out / "poses.csv", rows)
    seconds = time.perf_counter() - start
    info = {"frames": frames, "seconds": seconds, "frames_per_s": frames / max(seconds, 1e-9),
            "csv": str(out / "poses.csv"), "size": size, "scenes": scenes, "seed": seed}
    (out / "render_info.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m downstream.pose.render --out DIR --scenes 4 ...``: prints the frame rate."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--scenes", type=int, default=4)
    parser.add_argument("--size", type=int, default=96, help="square image side (px)")
    parser.add_argument("--train-frames", type=int, default=200, help="train frames per scene")
    parser.add_argument("--test-frames", type=int, default=100, help="test frames per scene")
    parser.add_argument("--train-seqs", type=int, default=2, help="train sequences per scene")
    parser.add_argument("--fov", type=float, default=60.0, help="vertical field of view (deg)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    info = render_dataset(args.out, args.scenes, args.size, args.train_frames, args.test_frames, args.train_seqs,
                          args.fov, args.seed)
    print(f"{info['frames']} frames in {info['seconds']:.1f} s ({info['frames_per_s']:.1f} frames/s) -> {info['csv']}")


if __name__ == "__main__":
    main()
