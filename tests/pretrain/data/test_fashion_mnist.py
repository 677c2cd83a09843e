"""Finding / fetching Fashion-MNIST: system install, earlier extraction, apt-get download, missing tools."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pretrain.data.datasets import FashionMNIST
from pretrain.data.fashion_mnist import FILES, SYSTEM_DIR, ensure_fashion_mnist, has_fashion_mnist

REPO = Path(__file__).resolve().parents[3]


def test_existing_extraction_is_reused_without_download(tmp_path, fashion_mnist_root, monkeypatch):
    extracted = tmp_path / "usr" / "share" / "datasets" / "fashion-mnist"
    extracted.mkdir(parents=True)
    for src in fashion_mnist_root.iterdir():
        if src.name.startswith(FILES):
            (extracted / src.name).symlink_to(src)
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))  # a download attempt would fail loudly
    assert ensure_fashion_mnist(tmp_path, system_dir=None) == extracted
    assert len(FashionMNIST(ensure_fashion_mnist(tmp_path, system_dir=None), "test")) == 10000


def test_system_install_is_preferred(tmp_path):
    if not has_fashion_mnist(SYSTEM_DIR):
        pytest.skip(f"{SYSTEM_DIR} absent: Debian package dataset-fashion-mnist is not installed")
    assert ensure_fashion_mnist(tmp_path) == SYSTEM_DIR
    assert not any(tmp_path.iterdir())  # nothing downloaded or unpacked


def test_missing_apt_get_is_a_clear_error_with_manual_steps(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))
    with pytest.raises(RuntimeError, match=r"apt-get.*not available(.|\n)*by hand(.|\n)*dpkg -x"):
        ensure_fashion_mnist(tmp_path / "dest", system_dir=None)


@pytest.mark.slow
def test_apt_get_download_and_dpkg_extract(tmp_path):
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        pytest.skip("apt-get/dpkg unavailable: not a Debian-like system")
    try:
        folder = ensure_fashion_mnist(tmp_path, system_dir=None)
    except RuntimeError as err:  # e.g. no package index or no registry access on this machine
        pytest.skip(f"apt-get could not fetch dataset-fashion-mnist here: {err}")
    assert folder == tmp_path / "usr" / "share" / "datasets" / "fashion-mnist"
    assert len(FashionMNIST(folder, "test")) == 10000


def test_command_line_prints_the_folder(tmp_path):
    if not has_fashion_mnist(SYSTEM_DIR):
        pytest.skip(f"{SYSTEM_DIR} absent: the command would download")
    result = subprocess.run([sys.executable, "-m", "pretrain.data.fashion_mnist", str(tmp_path)],
                            capture_output=True, text=True, cwd=REPO, check=True)
    assert result.stdout.strip() == str(SYSTEM_DIR)
