"""End to end on a tiny rendered set: train, resume, test (same numbers), outputs and chaining."""

import json

import pytest
import torch

from downstream.pose import test as pose_test
from downstream.pose.config import PoseConfig
from downstream.pose.train import run as train_run
from launchers.jobs import resolve_entry_point
from pretrain.configuration import load_config

pytest.importorskip("pybullet")

HEAD = ["head.dim=16", "head.heads=2", "head.ffn=16", "head.enc_layers_x=2", "head.dec_layers_x=1",
        "head.enc_layers_q=1", "head.dec_layers_q=1"]


@pytest.mark.slow
def test_train_resume_and_test_agree(tmp_path):
    from downstream.pose.render import render_dataset

    render_dataset(tmp_path / "rooms", scenes=2, size=28, train_frames=8, test_frames=4, progress=False)
    # the published inputs (resize, random crop + colour jitter: the frozen backbone runs every step)
    common = [f"data.root={tmp_path / 'rooms'}", "data.image_size=28", "data.resize=32", "model.name=vit_pico",
              "model.patch_size=7",
              f"output_dir={tmp_path / 'run'}", "progress=false", "optim.batch_size=4", "diag_frames=4",
              "neighbours=3", "threads=1", *HEAD]
    train_run(load_config(PoseConfig, None, [*common, "optim.epochs=2", "pictures=false"]))
    res = train_run(load_config(PoseConfig, None, [*common, "optim.epochs=3", "head.qka_weight=0.1"]))
    run_dir = tmp_path / "run"
    assert res["train"]["resumed_from_epoch"] == 2 and res["train"]["steps"] == 3 * 4
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["epoch_0002.pt", "epoch_0003.pt"]
    saved = json.loads((run_dir / "pose.json").read_text())
    assert set(saved["scenes"]) == {"atrium", "bedroom"} and saved["scenes"]["atrium"]["frames"] == 4
    assert len(saved["attention"]["position"]) == 2 and len(saved["attention"]["orientation"]) == 1
    assert 0 <= saved["attention"]["position"][0]["purity"] <= 1
    base = saved["mean_pose_baseline"]
    assert set(base["scenes"]) == {"atrium", "bedroom"} and base["overall"]["scene_accuracy"] is None
    assert saved["attention"]["position"][0]["entropy"] <= torch.log(torch.tensor(16.0)).item() + 1e-6
    for name in ("pose.config.yaml", "pose_head.pt", "trajectories.png", "entropy.png", "query_attention.png"):
        assert (run_dir / name).is_file(), name
    assert any((run_dir / "tensorboard").iterdir())
    torch.manual_seed(0)  # the same random backbone as training built (seed 0)
    again = pose_test.run(load_config(pose_test.PoseTestConfig, None, [f"head={run_dir / 'pose_head.pt'}", "model.name=vit_pico",
                                                         "model.patch_size=7", f"data.root={tmp_path / 'rooms'}",
                                                         "pictures=false", "diag_frames=4", "neighbours=3"]))
    assert again["overall"]["mean_of_median_pos_m"] == pytest.approx(res["overall"]["mean_of_median_pos_m"])
    assert again["scenes"]["bedroom"]["median_ori_deg"] == pytest.approx(res["scenes"]["bedroom"]["median_ori_deg"])
    assert again["mean_pose_baseline"] == saved["mean_pose_baseline"]  # the means travel in the head file
    assert (run_dir / "pose_test.json").is_file()
    assert resolve_entry_point("pose") == "downstream.pose.train"
