"""The Fashion-MNIST study runner: its table (differences against the seed std) and its resume logic."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
import fmnist_study  # noqa: E402


def _row(variant: str, seed: int, knn: float, lin: float, budget: str = "b") -> dict:
    return {"variant": variant, "seed": seed, "budget": budget, "knn_top1": knn, "linear_top1": lin,
            "knn_curve": [knn - 1, knn], "train_s": 60.0}


def test_table_marks_only_differences_beyond_the_larger_seed_std(tmp_path):
    rows = [_row("none", s, k, 50.0) for s, k in enumerate([70.0, 72.0, 74.0])]      # mean 72, std 2
    rows += [_row("random", s, k, 50.0) for s, k in enumerate([80.0, 80.5, 81.0])]   # mean 80.5, std 0.5
    rows += [_row("block", s, k, 50.0) for s, k in enumerate([71.0, 73.0])]          # mean 72, std 1.41
    rows += [_row("attmask_high", 0, 99.0, 50.0), _row("none", 9, 0.0, 0.0, budget="other")]
    plan = [(v, seed) for seed in range(3) for v in ("none", "random", "block", "attmask_high")]
    text = fmnist_study.write_tables(tmp_path, rows, "b", plan=plan)
    assert "9 of 12 planned training runs finished (PARTIAL), 9 recorded in all" in text
    two_processes = fmnist_study.write_table(rows, "b", plan=[("none", 0), ("none", 1), ("none", 2)])
    assert "3 of 3 planned training runs finished, 9 recorded in all" in two_processes
    assert "| none | 3 | 72.00 +- 2.00 |" in text and "| random | 3 | 80.50 +- 0.50 |" in text
    knn = text.split("## knn")[1].split("## linear")[0]
    line = {ln.split("|")[1].strip(): ln.split("|")[2:-1] for ln in knn.splitlines() if ln.startswith("| ") and "|---" not in ln}
    cols = ["none", "random", "block", "attmask_high"]
    cell = {(r, c): line[r][i].strip() for r in cols for i, c in enumerate(cols)}
    assert cell["none", "random"] == "-8.50*"   # |8.5| > max(2, 0.5)
    assert cell["random", "none"] == "+8.50*"
    assert cell["none", "block"] == "+0.00"     # within the noise
    assert cell["attmask_high", "none"] == "+27.00"  # one seed: no std, never marked
    written = (tmp_path / "results.md").read_text()
    assert written.startswith(text)  # the current budget first, then every other budget of the JSONL
    assert "budget other" in written.split(text)[1] and "1 training runs recorded" in written


def test_budget_names_recipe_size_epochs_and_overrides():
    a = fmnist_study.parse(["--train-size", "500", "--epochs", "3"])
    assert fmnist_study.budget_key(a) == "demo_fmnist_n500_e3"
    b = fmnist_study.parse(["--train-size", "500", "--epochs", "3", "--set", "optim.lr=1e-3", "data.batch_size=64"])
    c = fmnist_study.parse(["--train-size", "500", "--epochs", "3", "--set", "data.batch_size=64", "optim.lr=1e-3"])
    assert fmnist_study.budget_key(b) == fmnist_study.budget_key(c) != fmnist_study.budget_key(a)


@pytest.mark.slow
def test_finished_runs_are_skipped_and_unrecorded_results_appended(tmp_path, fashion_mnist_root):
    args = ["--variants", "none", "--seeds", "0", "1", "--train-size", "64", "--epochs", "1",
            "--set", "data.batch_size=32", "--bank-size", "200", "--val-size", "100", "--knn-bank", "100",
            "--knn-queries", "50", "--linear-epochs", "1", "--kinds", "--runs", str(tmp_path / "runs"),
            "--out", str(tmp_path / "out")]
    key = fmnist_study.budget_key(fmnist_study.parse(args))
    done = tmp_path / "runs" / f"none_{key}_s0"
    done.mkdir(parents=True)
    hand = {**_row("none", 0, 12.5, 34.5, budget=key), "marker": "not retrained"}
    (done / "result.json").write_text(json.dumps(hand))
    fmnist_study.main(args)
    everything = fmnist_study.read_jsonl(tmp_path / "out" / "results.jsonl")
    assert [r["variant"] for r in everything] == ["none", "none", "raw_pixels"]
    rows = everything[:2]
    assert [r["seed"] for r in rows] == [0, 1]
    assert rows[0] == hand  # the finished run was recorded, not trained again
    assert len(rows[1]["knn_curve"]) == 1  # seed 1 trained for real (one epoch, one online k-NN)
    assert rows[1]["train_s"] > 0 and rows[1]["queries"] == 100 and 0 <= rows[1]["knn_top1"] <= 100
    assert (tmp_path / "runs" / f"none_{key}_s1" / "checkpoint.pt").is_file()
    fmnist_study.main(args)  # everything finished: nothing trains, nothing is appended
    assert fmnist_study.read_jsonl(tmp_path / "out" / "results.jsonl") == everything


@pytest.mark.slow
def test_train_only_workers_leave_baselines_and_tables_to_one_table_only_pass(tmp_path, fashion_mnist_root):
    """Parallel workers (--train-only) record their runs and nothing else, so no baseline row is
    written twice; the one --table-only pass afterwards adds the pixel baseline and the tables."""
    args = ["--variants", "none", "random", "--seeds", "0", "--train-size", "64", "--epochs", "1",
            "--bank-size", "200", "--val-size", "100", "--linear-epochs", "1", "--kinds",
            "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]
    key = fmnist_study.budget_key(fmnist_study.parse(args))
    for variant, knn in (("none", 41.0), ("random", 42.0)):  # finished earlier: nothing trains here
        run = tmp_path / "runs" / f"{variant}_{key}_s0"
        run.mkdir(parents=True)
        (run / "result.json").write_text(json.dumps(_row(variant, 0, knn, 30.0, budget=key)))
    fmnist_study.main([*args, "--train-only"])
    jsonl = tmp_path / "out" / "results.jsonl"
    assert [r["variant"] for r in fmnist_study.read_jsonl(jsonl)] == ["none", "random"]
    assert not (tmp_path / "out" / "results.md").exists()
    fmnist_study.main([*args, "--table-only"])
    assert [r["variant"] for r in fmnist_study.read_jsonl(jsonl)] == ["none", "random", "raw_pixels"]
    assert "2 of 2 planned training runs finished" in (tmp_path / "out" / "results.md").read_text()


@pytest.mark.slow
def test_gpu_study_script_runs_end_to_end_shrunk_on_the_cpu(tmp_path, fashion_mnist_root):
    """benchmarks/fmnist_study_gpu.sh --cpu-smoke: data once, parallel --train-only workers, one table pass."""
    import os
    import subprocess

    env = {**os.environ, "OUT": str(tmp_path / "out"), "PYTHON": sys.executable, "FMNIST_GPU_THREADS": "1",
           "FMNIST_GPU_TRAIN": "128"}
    done = subprocess.run(["bash", "benchmarks/fmnist_study_gpu.sh", "--cpu-smoke"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = fmnist_study.read_jsonl(tmp_path / "out" / "results.jsonl")
    assert sorted(r["variant"] for r in rows) == ["attmask_high", "none", "random_init", "raw_pixels"]
    assert all(r["budget"] == "demo_fmnist_n128_e1_61e3ca" for r in rows)  # one row each: nothing written twice
    assert "2 of 2 planned training runs finished" in (tmp_path / "out" / "results.md").read_text()
    bad = subprocess.run(["bash", "benchmarks/fmnist_study_gpu.sh", "--cpu-smok"], cwd=REPO, env=env,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown argument '--cpu-smok'" in bad.stderr
