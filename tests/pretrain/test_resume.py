"""Issue 22 items 1 and 10: a resume with other schedule settings is refused; a run creates nothing in its
output folder before its inputs (folder, model, schedule, data, disk space) are known to be good."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pretrain.checkpoint import CheckpointError, atomic_save, files_per_run, list_step_checkpoints, space_needed
from pretrain.configuration import ConfigError
from pretrain.train import run

from tests.pretrain.test_train import TINY_ARGS, tiny  # noqa: E402 - the same seconds-long run

REPO = Path(__file__).resolve().parents[2]
MB = 2**20


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
            and "tensorboard" not in p.parts}


def test_a_changed_batch_size_and_seed_are_refused_naming_both_and_the_ways_forward(tmp_path, fashion_mnist_root):
    out = tmp_path / "run"
    run(tiny(out, fashion_mnist_root, "run.max_steps=2"))
    before = snapshot(out)
    with pytest.raises(ConfigError) as err:
        run(tiny(out, fashion_mnist_root, "run.max_steps=3", "data.batch_size=4", "run.seed=1",
                 "optim.warmup_epochs=2"))
    message = str(err.value)
    assert "data.batch_size: checkpoint 8, now 4; optim.warmup_epochs: checkpoint 1, now 2; " \
           "run.seed: checkpoint 0, now 1." in message
    assert "Resume with the recorded values (data.batch_size=8 optim.warmup_epochs=1 run.seed=0), or start fresh " \
           "with run.output_dir=<a new folder>" in message
    assert snapshot(out) == before  # config.yaml, train.log and the checkpoints untouched


def test_other_keys_may_change_on_a_resume_and_are_logged(tmp_path, fashion_mnist_root, caplog):
    out = tmp_path / "run"
    run(tiny(out, fashion_mnist_root, "run.max_steps=2"))
    caplog.set_level("INFO")
    summary = run(tiny(out, fashion_mnist_root, "run.max_steps=3", "run.log_every_steps=1", "knn.k=5"))
    assert summary["step"] == 3
    assert "resuming with knn.k changed: 20 -> 5" in caplog.text
    assert "resuming with run.log_every_steps changed: 2 -> 1" in caplog.text


def subset(fashion_mnist_root: Path, dest: Path, n: int) -> Path:
    from pretrain.data.datasets import FashionMNIST
    from pretrain.data.fashion_mnist import write_train_subset

    full = FashionMNIST(fashion_mnist_root, "train", as_pil=False)
    return write_train_subset(full.images[:n], full.labels[:n], dest, fashion_mnist_root)


def test_data_of_another_size_is_refused_the_same_data_elsewhere_resumes(tmp_path, fashion_mnist_root):
    first, moved, smaller = (subset(fashion_mnist_root, tmp_path / name, n)
                             for name, n in (("a", 40), ("moved", 40), ("small", 24)))
    out = tmp_path / "run"
    run(tiny(out, first, "run.max_steps=2"))  # 40 images, batch 8: 5 steps per epoch
    with pytest.raises(ConfigError, match=rf"a run over 40 training samples .*; data.root={smaller} now holds 24\. "
                                          r"Resuming would change the steps per epoch"):
        run(tiny(out, smaller, "run.max_steps=3"))
    assert [s for s, _ in list_step_checkpoints(out)] == [2]
    assert run(tiny(out, moved, "run.max_steps=3"))["step"] == 3  # data.root is not compared, its size is


def test_the_refusal_is_one_config_error_line_with_exit_status_2(tmp_path, fashion_mnist_root):
    out = tmp_path / "run"
    run(tiny(out, fashion_mnist_root, "run.max_steps=1"))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "pretrain.train", *TINY_ARGS, "data.batch_size=4",
                           f"data.root={fashion_mnist_root}", f"run.output_dir={out}"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"config error: run.output_dir={out} holds checkpoints")
    assert "data.batch_size: checkpoint 8, now 4" in lines[0]


def test_a_data_error_creates_no_output_folder(tmp_path, fashion_mnist_root):
    out = tmp_path / "new" / "run"
    empty_class = tmp_path / "images"
    (empty_class / "cat").mkdir(parents=True)
    (empty_class / "dog").mkdir()
    from PIL import Image

    Image.new("RGB", (20, 20)).save(empty_class / "cat" / "0.png")
    with pytest.raises(ConfigError, match=rf"data.root={empty_class}: class folder {empty_class / 'dog'} holds no"):
        run(tiny(out, fashion_mnist_root, "data.dataset=imagefolder", f"data.root={empty_class}"))
    assert not (tmp_path / "new").exists()  # no config.yaml, no train.log, no folder


def test_the_disk_space_rule_by_hand():
    # keep_last=3: 3 step files + the next one while it is written + checkpoint.pt = 5 files, 10% margin
    assert files_per_run(3) == 5 and files_per_run(0) == 3
    assert space_needed(10 * MB, 3, held=0) == 55 * MB
    assert space_needed(10 * MB, 3, held=20 * MB) == 35 * MB  # files already there are replaced
    assert space_needed(10 * MB, 1, held=100 * MB) == 0


@pytest.fixture
def small_disk(tmpfs):
    """A real 3 MB tmpfs (root only)."""
    return tmpfs(3)


def test_too_little_disk_is_refused_before_the_first_step_and_nothing_is_written(small_disk, fashion_mnist_root):
    # the tiny model's checkpoint is about 1 MB: 5 of them do not fit in 3 MB
    out = small_disk / "run"
    with pytest.raises(ConfigError, match=rf"run.output_dir={out}: not enough free space for this run's checkpoints: "
                                          r"need .* MB \(5 files of about .* MB: run.keep_last=3 .*nothing was written"):
        run(tiny(out, fashion_mnist_root, "run.keep_last=3"))
    assert list(small_disk.iterdir()) == []


def test_a_full_disk_without_any_checkpoint_does_not_claim_one_is_kept(small_disk):
    with pytest.raises(CheckpointError) as err:
        atomic_save({"w": torch.ones(1024, 1024)}, small_disk / "checkpoints" / "step_00000001.pt")
    assert "no checkpoint has been written yet, so there is nothing to resume from" in str(err.value)
    assert "is kept" not in str(err.value)
    atomic_save({"w": torch.ones(1024)}, small_disk / "checkpoints" / "step_00000001.pt")
    with pytest.raises(CheckpointError, match=r"the last good checkpoint .*step_00000001.pt is kept"):
        atomic_save({"w": torch.ones(1024, 1024)}, small_disk / "checkpoints" / "step_00000002.pt")


def test_a_checkpoint_error_in_a_command_is_one_line_and_exit_status_2(tmp_path):
    code = ("from pretrain.preemption import run_resumable\n"
            "from pretrain.checkpoint import CheckpointError\n"
            "def body(cfg):\n    raise CheckpointError('disk full: need 5.0 MB in X, 1.0 MB free; ...')\n"
            "run_resumable(body, None)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: disk full: need 5.0 MB in X, 1.0 MB free; ..."


def test_the_estimate_covers_a_real_checkpoint(tmp_path, fashion_mnist_root):
    from pretrain.build import build_run
    from pretrain.distributed import DistInfo
    from pretrain.state import checkpoint_bytes

    out = tmp_path / "run"
    run(tiny(out, fashion_mnist_root, "run.max_steps=1"))
    written = (out / "checkpoint.pt").stat().st_size
    r = build_run(tiny(tmp_path / "other", fashion_mnist_root), torch.device("cpu"), DistInfo())
    estimate = checkpoint_bytes(r)
    assert written <= estimate <= written + 4 * MB, (written, estimate)
    assert np.isfinite(estimate)


def test_train_log_still_holds_the_lines_logged_before_the_folder_existed(tmp_path, fashion_mnist_root):
    out = tmp_path / "run"
    run(tiny(out, fashion_mnist_root, "run.max_steps=1"))
    text = (out / "train.log").read_text()
    assert "student: " in text and "steps/epoch" in text  # logged by build_run, before train.log was opened
    assert text.index("steps/epoch") < text.index("done: ")
