"""The time-to-pixels plot's pieces: minutes summed over sittings from real TensorBoard files, the first
crossing, and a pixel line drawn from the very subsets the trainer's online k-NN monitor uses."""

from __future__ import annotations

import json
import time

import pytest
import torch
import yaml
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from benchmarks.fmnist_speedrun import time_to_pixels as ttp
from pretrain.online_knn import KnnMonitor


def _sitting(folder, start: float, points: dict[str, list[tuple[int, float, float]]], end_s: float) -> None:
    """One trainer sitting: scalars (step, value, seconds after the file was opened), last event at end_s."""
    writer = SummaryWriter(str(folder))
    for tag, rows in points.items():
        for step, value, after in rows:
            writer.add_scalar(tag, value, step, walltime=start + after)
    writer.add_scalar("train/loss", 1.0, 999, walltime=start + end_s)
    writer.close()


def test_minutes_add_up_over_sittings_and_pauses_do_not_count(tmp_path):
    board = tmp_path / "run" / "tensorboard"
    _sitting(board, time.time(), {"knn/top1": [(10, 50.0, 60)], "knn/top1_grid2": [(10, 70.0, 60)]}, end_s=180)
    # the second sitting opens for real a moment later; its own clock starts there, the pause is not counted
    _sitting(board, time.time(), {"knn/top1": [(20, 80.0, 120)], "knn/top1_grid2": [(20, 90.0, 120)]}, end_s=150)
    pooled = ttp.knn_by_minute(tmp_path / "run", "knn/top1")
    grid = ttp.knn_by_minute(tmp_path / "run", "knn/top1_grid2")
    assert [(s, v) for _, s, v in pooled] == [(10, 50.0), (20, 80.0)]
    assert [(s, v) for _, s, v in grid] == [(10, 70.0), (20, 90.0)]
    assert [m for m, _, _ in pooled] == pytest.approx([1.0, 3.0 + 2.0], abs=0.02)  # 180 s of sitting 1, then 120 s


def test_first_crossing():
    pts = [(1.0, 1, 70.0), (2.0, 2, 81.85), (3.0, 3, 82.0), (4.0, 4, 79.0)]
    assert ttp.crossing(pts, 81.85) == 3.0  # equal is not above
    assert ttp.crossing(pts, 90.0) is None


class _Pixels(nn.Module):
    """The raw pixels as the feature (one channel of the grey image: the same cosine as all three)."""

    takes_uint8 = True

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images[:, 0].flatten(1).float()


@pytest.mark.slow
def test_pixel_line_uses_the_monitors_subsets_and_the_plot_is_written(tmp_path, fashion_mnist_root):
    knn = {"dataset": "fashion_mnist", "root": str(fashion_mnist_root), "train_split": "train_fit",
           "test_split": "train_holdout", "max_train": 300, "max_test": 80, "image_size": 28, "k": 20,
           "temperature": 0.07}
    monitor = KnnMonitor(knn["dataset"], knn["root"], knn["train_split"], knn["test_split"], knn["max_train"],
                         knn["max_test"], 28, 20, 0.07, batch_size=64, num_workers=0, mean=(0.5,) * 3,
                         std=(0.5,) * 3)
    pixels = ttp.pixel_knn({"knn": knn})
    assert pixels == monitor.evaluate(_Pixels(), torch.device("cpu"), "none")["pooled"]

    for name, values in (("a", [60.0, 99.0]), ("b", [50.0, 55.0])):
        run = tmp_path / name
        run.mkdir()
        (run / "config.yaml").write_text(yaml.safe_dump({"knn": knn}))
        _sitting(run / "tensorboard", time.time(), {"knn/top1": [(1, values[0], 60), (2, values[1], 120)]}, 130)
    ttp.main(["--run", f"A={tmp_path / 'a'}", "--run", f"B={tmp_path / 'b'}", "--out", str(tmp_path / "out")])
    record = json.loads((tmp_path / "out" / "time_to_pixels.json").read_text())
    assert record["pixels_online_knn"] == pixels
    assert record["runs"]["A"]["pooled"]["crosses_pixels_at_min"] == pytest.approx(2.0, abs=0.02)
    assert record["runs"]["B"]["pooled"]["crosses_pixels_at_min"] is None
    assert "grid2" not in record["runs"]["A"]  # not logged by these runs
    assert (tmp_path / "out" / "time_to_pixels.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
