"""Camera geometry: quaternions (w, x, y, z), look-at poses and the OpenCV <-> OpenGL camera flip.

Conventions (as 7Scenes and MS-Transformer): a pose is camera-to-world ``T_wc`` (4, 4); the
camera frame is OpenCV's: +z forward (the viewing direction), +x right, +y down in the image.
OpenGL / pybullet cameras look along -z with +y up: ``T_gl = T_cv @ diag(1, -1, -1, 1)``.
Pixel coordinates: (u, v) = column, row, with pixel centres at integers (OpenCV).
"""

from __future__ import annotations

import numpy as np

CV_TO_GL = np.diag([1.0, -1.0, -1.0, 1.0])
Z_UP = (0.0, 0.0, 1.0)


def matrix_to_quaternion(rot: np.ndarray) -> np.ndarray:
    """(3, 3) rotation matrix -> (4,) unit quaternion (w, x, y, z) with w >= 0 (Shepperd's method)."""
    m = np.asarray(rot, dtype=np.float64)
    tr = np.trace(m)
    if tr > 0:
        s = 2.0 * np.sqrt(1.0 + tr)
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s]
    q = np.asarray(q)
    q /= np.linalg.norm(q)
    return -q if q[0] < 0 else q


def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    """(4,) quaternion (w, x, y, z), normalised here -> (3, 3) rotation matrix."""
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def look_at(eye: np.ndarray, target: np.ndarray, up: tuple[float, float, float] = Z_UP) -> np.ndarray:
    """Camera-to-world (4, 4) of an OpenCV camera at ``eye`` looking at ``target``, world ``up``."""
    eye, target = np.asarray(eye, dtype=np.float64), np.asarray(target, dtype=np.float64)
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-9:
        raise ValueError("the viewing direction is parallel to 'up': choose another target")
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([x, y, z], axis=1)
    pose[:3, 3] = eye
    return pose


def gl_view_matrix(cam_to_world: np.ndarray) -> list[float]:
    """OpenCV camera-to-world (4, 4) -> pybullet/OpenGL view matrix as a column-major list of 16."""
    view = CV_TO_GL @ np.linalg.inv(cam_to_world)
    return view.T.reshape(-1).tolist()


def intrinsics(width: int, height: int, fov_y_deg: float) -> dict[str, float]:
    """Pinhole intrinsics of a GL camera with vertical field of view ``fov_y_deg`` (square pixels)."""
    fy = height / (2.0 * np.tan(np.deg2rad(fov_y_deg) / 2.0))
    return {"fx": float(fy), "fy": float(fy), "cx": (width - 1) / 2.0, "cy": (height - 1) / 2.0,
            "width": int(width), "height": int(height)}


def linear_depth(zbuffer: np.ndarray, near: float, far: float) -> np.ndarray:
    """OpenGL z-buffer values in [0, 1] -> metric depth along the camera axis (same shape)."""
    zb = np.asarray(zbuffer, dtype=np.float64)
    return far * near / (far - (far - near) * zb)


def backproject(u: np.ndarray, v: np.ndarray, depth: np.ndarray, k: dict, cam_to_world: np.ndarray) -> np.ndarray:
    """Pixels (u, v) with depth along the axis -> (P, 3) world points."""
    x = (np.asarray(u, dtype=np.float64) - k["cx"]) / k["fx"] * depth
    y = (np.asarray(v, dtype=np.float64) - k["cy"]) / k["fy"] * depth
    cam = np.stack([x, y, np.asarray(depth, dtype=np.float64)], axis=-1)
    return cam @ cam_to_world[:3, :3].T + cam_to_world[:3, 3]


def project(points: np.ndarray, k: dict, cam_to_world: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(P, 3) world points -> (u, v, depth along the axis) in the camera ``cam_to_world``."""
    world_to_cam = np.linalg.inv(cam_to_world)
    cam = points @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]
    z = cam[:, 2]
    return k["fx"] * cam[:, 0] / z + k["cx"], k["fy"] * cam[:, 1] / z + k["cy"], z
