"""Finding / fetching Fashion-MNIST: system install, earlier extraction, apt-get download, missing tools."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
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


def test_holdout_split_by_hand():
    from pretrain.data.fashion_mnist import holdout_split

    labels = np.array([0, 1, 0, 1, 0, 1, 2, 2, 2, 2])  # 3 / 3 / 4 of each class, hold out half
    fit, held = holdout_split(labels, size=5, seed=0)
    # quotas 1.5, 1.5, 2.0 -> floors 1, 1, 2; the one left over goes to the first largest remainder
    assert np.bincount(labels[held], minlength=3).tolist() == [2, 1, 2]
    assert sorted(np.concatenate([fit, held]).tolist()) == list(range(10))
    assert np.array_equal(held, holdout_split(labels, size=5, seed=0)[1])
    seeds = {tuple(holdout_split(labels, size=5, seed=s)[1]) for s in range(10)}
    assert len(seeds) > 1  # the seed matters
    with pytest.raises(ValueError, match="between 1 and 9"):
        holdout_split(labels, size=10)


def test_written_train_subset_reads_back(tmp_path, fashion_mnist_root):
    from pretrain.data.fashion_mnist import write_train_subset

    full = FashionMNIST(fashion_mnist_root, "train", as_pil=False)
    rows = np.array([5, 17, 59999])
    folder = write_train_subset(full.images[rows], full.labels[rows], tmp_path / "sub", fashion_mnist_root)
    assert ensure_fashion_mnist(folder, system_dir=None) == folder
    sub = FashionMNIST(folder, "train", as_pil=False)
    assert np.array_equal(sub.images, full.images[rows]) and np.array_equal(sub.labels, full.labels[rows])
    assert len(FashionMNIST(folder, "test")) == 10000


# --- issue 22 item 5: a user's folder is never downloaded into; a partial copy names the missing file ------


def test_a_folder_lacking_one_file_names_it_and_downloads_nothing(tmp_path, fashion_mnist_root, monkeypatch):
    for src in fashion_mnist_root.iterdir():
        if src.name.startswith(FILES) and not src.name.startswith("train-labels"):
            (tmp_path / src.name).symlink_to(src)
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))  # a download attempt would be a RuntimeError
    with pytest.raises(FileNotFoundError, match=r"lacks train-labels-idx1-ubyte\[\.gz\] \(it holds the other 3 of 4"):
        ensure_fashion_mnist(tmp_path, system_dir=None)  # even where downloads are allowed
    assert not (tmp_path / "usr").exists()


def test_a_user_root_without_the_files_is_named_not_fetched_into(tmp_path, monkeypatch):
    from pretrain.build import resolve_root
    from pretrain.data.fashion_mnist import is_project_data_dir

    mine = tmp_path / "my-fmnist"
    mine.mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))
    assert not is_project_data_dir(mine) and is_project_data_dir(REPO / "data") \
        and is_project_data_dir(REPO / "data" / "fashion-mnist")
    with pytest.raises(FileNotFoundError, match=rf"not found in {mine}: it holds none of train-images-idx3-ubyte"):
        resolve_root("fashion_mnist", str(mine))
    assert list(mine.iterdir()) == []


def test_pretraining_on_a_partial_folder_is_one_config_error_naming_the_file(tmp_path, fashion_mnist_root):
    for src in fashion_mnist_root.iterdir():
        if src.name.startswith(FILES[:3]):
            (tmp_path / src.name).symlink_to(src)
    env = {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "pretrain.train", "data.dataset=fashion_mnist",
                           f"data.root={tmp_path}", "model.name=vit_pico", f"run.output_dir={out}"],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=300, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.startswith(f"config error: data.root={tmp_path}: Fashion-MNIST folder {tmp_path} lacks "
                                  "t10k-labels-idx1-ubyte[.gz]")
    assert len(proc.stderr.strip().splitlines()) == 1 and not out.exists()


def test_a_folder_holding_the_files_wins_over_the_system_copy(tmp_path, fashion_mnist_root):
    """A training subset written to a folder is what that root trains on, even where the Debian
    package is installed system-wide (it was silently swapped for the full 60k before)."""
    from pretrain.data.fashion_mnist import write_train_subset

    full = FashionMNIST(fashion_mnist_root, "train", as_pil=False)
    sub = write_train_subset(full.images[:64], full.labels[:64], tmp_path / "sub", fashion_mnist_root)
    assert ensure_fashion_mnist(sub, system_dir=fashion_mnist_root) == Path(sub).resolve()
    assert len(FashionMNIST(sub, "train")) == 64
    # a named folder without the files is an error that points at the installed copy, not a switch to it
    with pytest.raises(FileNotFoundError, match="system-wide copy is in"):
        ensure_fashion_mnist(tmp_path / "empty", system_dir=fashion_mnist_root, download=False)
    # the project's own (empty) data folder may use the installed copy
    assert ensure_fashion_mnist(tmp_path / "empty", system_dir=fashion_mnist_root) == Path(fashion_mnist_root)
