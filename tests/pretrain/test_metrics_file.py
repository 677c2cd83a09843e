"""The run's scalars as JSON lines (``metrics.jsonl``): what the trainer writes, and how it is read back."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from pretrain.config import PretrainConfig
from pretrain.configuration import load_config
from pretrain.metrics_file import MetricsFile, read_metrics
from pretrain.train import run


def test_read_metrics_keeps_the_last_line_per_step_and_skips_a_cut_line(tmp_path):
    m = MetricsFile(tmp_path, enabled=True)
    m.write(2, 0, {"train/loss": 5.0, "knn/top1": float("nan")})
    m.write(4, 1, {"knn/top1": 60.0})
    m.write(4, 1, {"knn/top1": 61.5})  # step 4 trained again after a crash: the later line wins
    with (tmp_path / "metrics.jsonl").open("a") as f:
        f.write('{"step": 6, "epoch": 1, "wall')  # killed mid-line
    assert [(r["step"], r["epoch"], r["value"]) for r in read_metrics(tmp_path, "knn/top1")] == [(2, 0, None), (4, 1, 61.5)]
    assert [r["value"] for r in read_metrics(tmp_path, "train/loss")] == [5.0]
    assert read_metrics(tmp_path / "nothing", "knn/top1") == []
    MetricsFile(tmp_path / "rank1", enabled=False).write(1, 0, {"a": 1.0})
    assert not (tmp_path / "rank1").exists()


@pytest.mark.slow
def test_trainer_writes_the_tensorboard_scalars_as_json(tmp_path, fashion_mnist_root):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    rng = np.random.default_rng(0)
    for i in range(16):  # batch 8: 2 steps per epoch, 2 epochs
        folder = tmp_path / "images" / f"class{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    out = tmp_path / "run"
    run(load_config(PretrainConfig, None, [
        "model.name=vit_pico", "model.patch_size=4", "head.out_dim=64", "head.patch_out_dim=64",
        "head.hidden_dim=32", "head.bottleneck_dim=16", "data.dataset=imagefolder", f"data.root={tmp_path / 'images'}",
        "data.batch_size=8", "data.num_workers=0", "data.global_size=16", "data.local_size=8", "data.n_local=2",
        "optim.epochs=2", "optim.warmup_epochs=1", "loss.warmup_teacher_temp_epochs=1", "run.device=cpu",
        "run.progress=false", "run.log_every_steps=2", "run.image_every_steps=0", f"run.output_dir={out}",
        "knn.every_epochs=1", f"knn.root={fashion_mnist_root}", "knn.max_train=60", "knn.max_test=20",
        "knn.image_size=16", "knn.features=[pooled,grid2]"]))
    for tag in ("knn/top1", "knn/top1_grid2"):
        assert [(r["step"], r["epoch"]) for r in read_metrics(out, tag)] == [(2, 1), (4, 2)]
    events = EventAccumulator(str(out / "tensorboard"), size_guidance={"scalars": 0}).Reload()
    for tag in ("knn/top1", "knn/top1_grid2", "train/loss", "train/lr"):
        board = [(e.step, e.value) for e in events.Scalars(tag)]
        ours = [(r["step"], r["value"]) for r in read_metrics(out, tag)]
        assert [s for s, _ in ours] == [s for s, _ in board] and len(ours) == 2
        assert np.allclose([v for _, v in ours], [v for _, v in board], rtol=1e-6)  # TensorBoard keeps float32
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(a["wall_time"] <= b["wall_time"] for a, b in zip(lines, lines[1:]))
