"""The full-validation scoring of finished runs: it reads no test images and refuses unfinished runs."""

from __future__ import annotations

import pytest

from benchmarks.fmnist_speedrun import final_validation as fv


def test_bank_and_queries_are_the_validation_split():
    assert (fv.BANK, fv.QUERIES) == ("train_fit", "train_holdout")


def test_a_run_without_its_final_checkpoint_is_named(tmp_path):
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "checkpoint.pt").write_bytes(b"")
    (tmp_path / "running").mkdir()
    with pytest.raises(SystemExit, match="running: let those runs finish"):
        fv.main(["--run", f"a={tmp_path / 'done'}", "--run", f"b={tmp_path / 'running'}", "--out", str(tmp_path)])
    assert not (tmp_path / "final_validation.json").exists()


def test_a_label_may_hold_overrides_the_run_folder_follows_the_last_equals_sign(tmp_path):
    with pytest.raises(SystemExit, match=f"no checkpoint.pt in {tmp_path / 'r'}:"):
        fv.main(["--run", f"fmnist_simpool.yaml optim.epochs=4={tmp_path / 'r'}", "--out", str(tmp_path)])
