"""Atomic checkpoints, rotation, truncated-file detection and RNG round trips."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from pretrain.checkpoint import (
    CheckpointError,
    atomic_save,
    estimate_bytes,
    latest_good_checkpoint,
    list_step_checkpoints,
    load_checkpoint,
    remove_stale_temporaries,
    rng_state,
    save_step_checkpoint,
    set_rng_state,
)


def _state(step):
    return {"step": step, "w": torch.full((3,), float(step)), "rng": rng_state()}


def test_rotation_keeps_last_k(tmp_path):
    for step in (1, 2, 3, 4):
        save_step_checkpoint(_state(step), tmp_path, keep_last=2)
    assert [s for s, _ in list_step_checkpoints(tmp_path)] == [3, 4]
    assert not list((tmp_path / "checkpoints").glob(".*tmp*")), "no temporary files left behind"


def test_truncated_newest_falls_back_to_previous(tmp_path, caplog):
    for step in (1, 2):
        save_step_checkpoint(_state(step), tmp_path, keep_last=3)
    newest = tmp_path / "checkpoints" / "step_00000002.pt"
    newest.write_bytes(newest.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(newest)
    path, ckpt = latest_good_checkpoint(tmp_path)
    assert ckpt["step"] == 1 and path.name == "step_00000001.pt"
    assert "skipping checkpoint at step 2" in caplog.text


def test_foreign_file_is_rejected(tmp_path):
    p = tmp_path / "x.pt"
    torch.save({"state_dict": {}}, p)
    with pytest.raises(CheckpointError, match="not a training checkpoint"):
        load_checkpoint(p)


def test_rng_round_trip_through_weights_only_file(tmp_path):
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    save_step_checkpoint({"step": 1, "rng": rng_state()}, tmp_path, keep_last=1)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(9), np.random.seed(9), random.seed(9)
    set_rng_state(load_checkpoint(tmp_path / "checkpoints" / "step_00000001.pt")["rng"])
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], got[0])
    assert np.array_equal(expected[1], got[1])
    assert expected[2] == got[2]


def test_stale_temporaries_are_removed_real_checkpoints_kept(tmp_path):
    save_step_checkpoint(_state(1), tmp_path, keep_last=2)
    folder = tmp_path / "checkpoints"
    stale = [folder / ".step_00000002.pt.tmp4242", tmp_path / ".checkpoint.pt.tmp77"]
    for p in stale:
        p.write_bytes(b"\x00" * 1000)  # what a kill -9 during torch.save leaves
    (folder / "notes.tmp1").write_text("not ours: kept")
    removed = remove_stale_temporaries(tmp_path)
    assert sorted(removed) == sorted(stale) and not any(p.exists() for p in stale)
    assert (folder / "notes.tmp1").exists() and [s for s, _ in list_step_checkpoints(tmp_path)] == [1]
    assert remove_stale_temporaries(tmp_path / "missing") == []


def test_estimate_covers_the_written_size(tmp_path):
    big = torch.zeros(1000, 1000)
    state = {"a": big, "view": big[:10], "b": torch.ones(3, dtype=torch.int64), "n": 1}
    atomic_save(state, tmp_path / "x.pt")
    written = (tmp_path / "x.pt").stat().st_size
    assert written <= estimate_bytes(state) <= written + 2 * 2**20  # the view's storage is counted once


@pytest.fixture
def small_disk(tmpfs):
    """A real 4 MB tmpfs (root only)."""
    return tmpfs(4)


def test_full_disk_clear_error_no_partial_file_old_checkpoint_intact(small_disk):
    old = save_step_checkpoint({"step": 1, "w": torch.ones(256, 1024)}, small_disk, keep_last=1)  # 1 MB
    old_bytes = old.read_bytes()
    big = {"step": 2, "w": torch.ones(1024, 1024)}  # 4 MB: cannot fit beside the old one
    with pytest.raises(CheckpointError, match=r"disk full: need 5\.0 MB in .*checkpoints, 3\.0 MB free"):
        save_step_checkpoint(big, small_disk, keep_last=1)
    folder = small_disk / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["step_00000001.pt"]  # no partial, no temporary
    assert old.read_bytes() == old_bytes and load_checkpoint(old)["step"] == 1
    # Past the estimate (check off): the write itself hits the full disk; still a clear error and no temporary.
    with pytest.raises(CheckpointError, match="disk full"):
        atomic_save({"format": "attmask-ssl/1", **big}, folder / "step_00000002.pt", check_space=False)
    assert sorted(p.name for p in folder.iterdir()) == ["step_00000001.pt"]
    assert latest_good_checkpoint(small_disk)[1]["step"] == 1
