"""Atomic checkpoints, rotation, truncated-file detection and RNG round trips."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from pretrain.checkpoint import (
    CheckpointError,
    latest_good_checkpoint,
    list_step_checkpoints,
    load_checkpoint,
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
