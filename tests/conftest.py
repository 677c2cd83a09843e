"""Shared test fixtures: real data locations and a quiet, deterministic torch."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
FASHION_MNIST_DIRS = [Path("/usr/share/datasets/fashion-mnist"), REPO / "data" / "fashion-mnist"]


@pytest.fixture(autouse=True)
def _seeded_torch():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def fashion_mnist_root() -> Path:
    """Directory holding Fashion-MNIST's IDX files (Debian package dataset-fashion-mnist)."""
    for d in FASHION_MNIST_DIRS:
        if d.is_dir() and any(d.glob("*idx*")):
            return d
    from pretrain.data.fashion_mnist import ensure_fashion_mnist

    try:
        return ensure_fashion_mnist(REPO / "data")
    except Exception as exc:  # no apt here: say why rather than fail on an environment gap
        pytest.skip(f"Fashion-MNIST unavailable ({exc}); install Debian's dataset-fashion-mnist")


def pytest_configure(config):
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def tmpfs(tmp_path):
    """``mount(size_mb) -> Path``: a real tmpfs of that size under tmp_path (root only; skips
    otherwise), unmounted at teardown. For disk-full paths without filling a real disk."""
    mounts: list[Path] = []

    def mount(size_mb: int) -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a small tmpfs needs root")
        target = tmp_path / f"disk{len(mounts)}"
        target.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(target)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounts.append(target)
        return target

    yield mount
    for target in mounts:
        subprocess.run(["umount", str(target)], check=False)
