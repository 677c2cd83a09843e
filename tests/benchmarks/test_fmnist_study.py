"""The Fashion-MNIST study runner: its table (differences against the seed std) and its resume logic."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from benchmarks.fmnist_study import cli, paired, runs, tables

REPO = Path(__file__).resolve().parents[2]


def _row(variant: str, seed: int, knn: float, lin: float, budget: str = "b") -> dict:
    return {"variant": variant, "seed": seed, "budget": budget, "knn_top1": knn, "linear_top1": lin,
            "knn_curve": [knn - 1, knn], "train_s": 60.0}


def test_table_marks_only_differences_beyond_the_larger_seed_std(tmp_path):
    rows = [_row("none", s, k, 50.0) for s, k in enumerate([70.0, 72.0, 74.0])]      # mean 72, std 2
    rows += [_row("random", s, k, 50.0) for s, k in enumerate([80.0, 80.5, 81.0])]   # mean 80.5, std 0.5
    rows += [_row("block", s, k, 50.0) for s, k in enumerate([71.0, 73.0])]          # mean 72, std 1.41
    rows += [_row("attmask_high", 0, 99.0, 50.0), _row("none", 9, 0.0, 0.0, budget="other")]
    plan = [(v, seed) for seed in range(3) for v in ("none", "random", "block", "attmask_high")]
    text = tables.write_tables(tmp_path, rows, "b", plan=plan)
    assert "9 of 12 planned training runs finished (PARTIAL), 9 recorded in all" in text
    two_processes = tables.write_table(rows, "b", plan=[("none", 0), ("none", 1), ("none", 2)])
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
    a = cli.parse(["--train-size", "500", "--epochs", "3"])
    assert runs.budget_key(a) == "demo_fmnist_n500_e3"
    b = cli.parse(["--train-size", "500", "--epochs", "3", "--set", "optim.lr=1e-3", "data.batch_size=64"])
    c = cli.parse(["--train-size", "500", "--epochs", "3", "--set", "data.batch_size=64", "optim.lr=1e-3"])
    assert runs.budget_key(b) == runs.budget_key(c) != runs.budget_key(a)


def tiny_bench(out: Path) -> Path:
    """The composited localization / robustness benchmark, shrunk (28 px, a few images per class)."""
    from downstream.localization.synth import SynthConfig, build
    from pretrain.configuration import load_config

    build(load_config(SynthConfig, None, [f"out={out}", f"fashion_mnist={REPO / 'data'}", "size=28",
                                          "train_per_class=3", "val_per_class=2", "loc_images=8", "progress=false"]))
    return out


def test_paired_test_holm_and_wins_on_hand_values():
    values = {("a", 0): 1.0, ("a", 1): 2.0, ("a", 2): 3.0, ("b", 0): 0.0, ("b", 1): 0.0, ("b", 2): 0.0,
              ("c", 0): 5.0, ("c", 2): 1.0}
    p = paired.paired(values, "a", "b")  # d = 1, 2, 3: mean 2, sd 1, t = 2 / (1 / sqrt 3)
    assert (p.n, p.mean, p.sd, p.wins) == (3, 2.0, 1.0, 3) and p.t == pytest.approx(2 * math.sqrt(3))
    assert p.p == pytest.approx(1 - p.t / math.sqrt(p.t ** 2 + 2))  # Student t, 2 degrees of freedom
    q = paired.paired(values, "c", "a")  # seeds 0 and 2 only: d = 4, -2
    assert (q.n, q.mean, q.wins) == (2, 1.0, 1) and q.sd == pytest.approx(math.sqrt(18))
    assert math.isnan(paired.paired({("a", 0): 1.0, ("b", 0): 0.0}, "a", "b").p)  # one seed: no test
    # Holm: sorted 0.01, 0.03, 0.04 (m = 3) -> 0.03, max(0.03, 2 x 0.03), max(0.06, 1 x 0.04)
    assert paired.holm([0.01, 0.04, 0.03, math.nan])[:3] == pytest.approx([0.03, 0.06, 0.06])
    pairs = paired.all_pairs(values, ["a", "b", "c"])
    assert [(x.a, x.b) for x in pairs] == [("a", "b"), ("a", "c"), ("b", "c")]
    assert pairs[0].p_holm == pytest.approx(min(1.0, 3 * pairs[0].p))  # the smallest p, times 3


def test_table_has_paired_tests_of_every_metric_incl_localization(tmp_path):
    rows = [{**_row(v, s, k + s, 50.0 + s), "knn_by_kind": {"grid2": 80.0 + s}} for v, k in (("none", 70.0), ("random", 68.0))
            for s in range(3)]
    att = [{"variant": v, "seed": s, "budget": "b", "localization": {"wsol": {"MaxBoxAccV2": m + s},
                                                                  "wsol_onblack": {"MaxBoxAccV2": 40.0}},
            "robustness": {"BG_Gap": 10.0 - s, "top1": {}}} for v, m in (("none", 20.0), ("random", 25.0)) for s in range(3)]
    text = tables.write_table(rows, "b", attention=att)
    assert "| none | 2.00 +- 1.00 (n=3) |" not in text  # sanity of the cell format below
    assert "| none | 71.00 +- 1.00 (n=3) | 81.00 +- 1.00 (n=3) | 51.00 +- 1.00 (n=3) | 21.00 +- 1.00 (n=3) " in text
    box = text.split("### MaxBoxAccV2 photos")[1].split("###")[0]
    assert "| none | random | 3 | -5.00 | 0.00 | nan | nan | nan | 0 of 3 |" in box  # constant difference: no t
    knn = text.split("### k-NN pooled")[1].split("###")[0]
    assert "| none | random | 3 | +2.00 | 0.00 |" in knn
    assert "### BG-Gap (lower is better)" in text


@pytest.mark.slow
def test_finished_runs_are_skipped_and_unrecorded_results_appended(tmp_path, fashion_mnist_root):
    args = ["--variants", "none", "--seeds", "0", "1", "--train-size", "64", "--epochs", "1",
            "--set", "data.batch_size=32", "--bank-size", "200", "--val-size", "100", "--knn-bank", "100",
            "--knn-queries", "50", "--linear-epochs", "1", "--kinds", "--runs", str(tmp_path / "runs"),
            "--out", str(tmp_path / "out"), "--bench", str(tiny_bench(tmp_path / "bench")), "--loc-size", "28"]
    key = runs.budget_key(cli.parse(args))
    done = tmp_path / "runs" / f"none_{key}_s0"
    done.mkdir(parents=True)
    hand = {**_row("none", 0, 12.5, 34.5, budget=key), "marker": "not retrained"}
    (done / "result.json").write_text(json.dumps(hand))
    cli.main(args)
    everything = runs.read_jsonl(tmp_path / "out" / "results.jsonl")
    # the random-init baseline: the architecture of the one trained run (seed 1), untrained
    assert [(r["variant"], r["seed"]) for r in everything] == [("none", 0), ("none", 1), ("raw_pixels", 0),
                                                               ("random_init", 1)]
    rows = everything[:2]
    assert [r["seed"] for r in rows] == [0, 1]
    assert rows[0] == hand  # the finished run was recorded, not trained again
    assert len(rows[1]["knn_curve"]) == 1  # seed 1 trained for real (one epoch, one online k-NN)
    assert rows[1]["train_s"] > 0 and rows[1]["queries"] == 100 and 0 <= rows[1]["knn_top1"] <= 100
    assert (tmp_path / "runs" / f"none_{key}_s1" / "checkpoint.pt").is_file()
    # localization / robustness of the trained model (seed 0 has no checkpoint) and of its random init
    scored = runs.read_jsonl(tmp_path / "out" / "attention.jsonl")
    assert [(r["variant"], r["seed"]) for r in scored] == [("none", 1), ("random_init", 1)]
    for r in scored:
        assert set(r["localization"]) == {"wsol", "wsol_onblack"} and r["image_size"] == 28
        assert all(0 <= v <= 100 for s in r["localization"].values() for v in s.values())
        top1 = r["robustness"]["top1"]
        assert r["robustness"]["BG_Gap"] == pytest.approx(top1["mixed_same"] - top1["mixed_rand"])
    assert "## Every metric" in (tmp_path / "out" / "results.md").read_text()
    assert (tmp_path / "out" / f"metrics_{key}.png").is_file()
    cli.main(args)  # everything finished: nothing trains, nothing is appended
    assert runs.read_jsonl(tmp_path / "out" / "results.jsonl") == everything
    assert runs.read_jsonl(tmp_path / "out" / "attention.jsonl") == scored


@pytest.mark.slow
def test_train_only_workers_leave_baselines_and_tables_to_one_table_only_pass(tmp_path, fashion_mnist_root):
    """Parallel workers (--train-only) record their runs and nothing else, so no baseline row is
    written twice; the one --table-only pass afterwards adds the pixel baseline and the tables."""
    args = ["--variants", "none", "random", "--seeds", "0", "--train-size", "64", "--epochs", "1",
            "--bank-size", "200", "--val-size", "100", "--linear-epochs", "1", "--kinds",
            "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "out"), "--no-attention-eval"]
    key = runs.budget_key(cli.parse(args))
    for variant, knn in (("none", 41.0), ("random", 42.0)):  # finished earlier: nothing trains here
        run = tmp_path / "runs" / f"{variant}_{key}_s0"
        run.mkdir(parents=True)
        (run / "result.json").write_text(json.dumps(_row(variant, 0, knn, 30.0, budget=key)))
    cli.main([*args, "--train-only"])
    jsonl = tmp_path / "out" / "results.jsonl"
    assert [r["variant"] for r in runs.read_jsonl(jsonl)] == ["none", "random"]
    assert not (tmp_path / "out" / "results.md").exists()
    cli.main([*args, "--table-only"])
    assert [r["variant"] for r in runs.read_jsonl(jsonl)] == ["none", "random", "raw_pixels"]
    assert "2 of 2 planned training runs finished" in (tmp_path / "out" / "results.md").read_text()


@pytest.mark.slow
def test_gpu_study_script_runs_end_to_end_shrunk_on_the_cpu(tmp_path, fashion_mnist_root):
    """benchmarks/fmnist_study/gpu.sh --cpu-smoke: data once, parallel --train-only workers, one table pass."""
    import os
    import subprocess

    env = {**os.environ, "OUT": str(tmp_path / "out"), "PYTHON": sys.executable, "FMNIST_GPU_THREADS": "1",
           "FMNIST_GPU_TRAIN": "128"}
    done = subprocess.run(["bash", "benchmarks/fmnist_study/gpu.sh", "--cpu-smoke"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = runs.read_jsonl(tmp_path / "out" / "results.jsonl")
    assert sorted(r["variant"] for r in rows) == ["attmask_high", "none", "random_init", "raw_pixels"]
    assert all(r["budget"] == "demo_fmnist_n128_e1_61e3ca" for r in rows)  # one row each: nothing written twice
    assert "2 of 2 planned training runs finished" in (tmp_path / "out" / "results.md").read_text()
    bad = subprocess.run(["bash", "benchmarks/fmnist_study/gpu.sh", "--cpu-smok"], cwd=REPO, env=env,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown argument '--cpu-smok'" in bad.stderr
