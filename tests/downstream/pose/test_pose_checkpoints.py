"""Pose-head checkpoint files: the newest loadable one wins, broken or foreign files are skipped."""

import logging

import pytest
import torch

from downstream.pose.checkpoints import FORMAT, latest_head_checkpoint, load_head_checkpoint


def test_newest_loadable_epoch_wins_and_broken_files_are_skipped(tmp_path, caplog):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    for epoch in (1, 2, 3):
        torch.save({"format": FORMAT, "epoch": epoch}, folder / f"epoch_{epoch:04d}.pt")
    torch.save({"format": "something else", "epoch": 9}, folder / "epoch_0009.pt")  # foreign file
    (folder / "epoch_0003.pt").write_bytes((folder / "epoch_0003.pt").read_bytes()[:50])  # truncated
    (folder / "notes.pt").write_bytes(b"not a checkpoint name")
    with caplog.at_level(logging.WARNING):
        path, state = latest_head_checkpoint(tmp_path)
    assert path.name == "epoch_0002.pt" and state["epoch"] == 2
    assert "skipping checkpoint at epoch 9" in caplog.text and "skipping checkpoint at epoch 3" in caplog.text
    assert latest_head_checkpoint(tmp_path / "nowhere") is None
    with pytest.raises(ValueError, match="is not a pose-head checkpoint"):
        load_head_checkpoint(folder / "epoch_0009.pt")
