"""Fashion-MNIST study (issues 15 and 25): every masking strategy, several seeds, same budget.

Each run pretrains the recipe (default ``configs/pretrain/demo_fmnist.yaml``) with one variant on a
fixed subset of ``train_fit`` (the 50k training images outside the validation split, see
`pretrain.data.fashion_mnist.holdout_split`), then evaluates the teacher on the validation split
``train_holdout``: weighted k-NN (k=20, T=0.07) with a bank from ``train_fit`` and a linear probe
(:mod:`.evaluation`); and, in the table pass, localization on the composited benchmark and background
robustness (:mod:`.attention_eval`). ``--final-test`` instead evaluates one finished variant once on
the test split (bank: the full 60k train split).

Resumable across sittings: one folder per run under ``--runs``; a run whose ``result.json`` exists
(or whose result is already in the JSONL) is skipped; an interrupted run resumes from its
checkpoints (the trainer resumes a given ``run.output_dir``). Results are appended to
``results.jsonl`` (localization / robustness to ``attention.jsonl``); ``results.md`` and the plots are
rebuilt from the JSONL files each time. Runs go seed-major (every variant with seed 0, then seed 1,
...) so a partial study stays balanced.

Keep the evaluation flags (``--bank-size``, ``--val-size``, ``--knn-*``, ``--loc-size``) the same within
a budget (each record states its ``bank`` / ``queries`` sizes).

Usage (from the repository root):
    OMP_NUM_THREADS=1 python -m benchmarks.fmnist_study --train-size 10000 --epochs 2
    python -m benchmarks.fmnist_study --train-size 10000 --epochs 2 --table-only
    python -m benchmarks.fmnist_study --train-size 10000 --epochs 2 --final-test --variants attmask_high
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from benchmarks.fmnist_study.attention_eval import score_all
from benchmarks.fmnist_study.evaluation import evaluate, pixel_baseline
from benchmarks.fmnist_study.pictures import attention_maps, plot_curves, plot_metrics
from benchmarks.fmnist_study.runs import (INIT_BASELINES, REPO, VARIANTS, append_jsonl, budget_key, init_baseline_of,
                                          knn_curve, pretrain, read_jsonl, record, recorded_keys, run_dir, train_subset)
from benchmarks.fmnist_study.tables import metric_values, write_tables
from pretrain.data.fashion_mnist import ensure_fashion_mnist

log = logging.getLogger("fmnist_study")
RESULTS = REPO / "benchmarks" / "fmnist_study" / "results"


def init_baselines(a: argparse.Namespace, root: Path, jsonl: Path) -> None:
    """Records the raw-pixel baseline and the random-init baseline of each architecture and seed whose
    trained run exists (no training)."""
    recorded = recorded_keys(jsonl)
    common = {"budget": budget_key(a), "train_size": 0, "epochs": 0, "recipe": str(Path(a.recipe).name),
              "overrides": a.set, "train_s": 0.0, "knn_curve": []}
    if ("raw_pixels", 0, budget_key(a)) not in recorded:
        append_jsonl(jsonl, {"variant": "raw_pixels", "seed": 0, **common, **pixel_baseline(root, a)})
    for name, variant in INIT_BASELINES.items():
        for seed in a.seeds if variant else []:
            ckpt = run_dir(a, variant, seed) / "checkpoint.pt"
            if not ckpt.is_file():  # that variant not in the study: any run of the same architecture stands in
                ckpt = next((run_dir(a, v, seed) / "checkpoint.pt" for v in a.variants
                             if (run_dir(a, v, seed) / "checkpoint.pt").is_file()
                             and init_baseline_of(v) == name), ckpt)
            if (name, seed, budget_key(a)) in recorded or not ckpt.is_file():
                continue
            append_jsonl(jsonl, {"variant": name, "seed": seed, **common, **evaluate(ckpt, root, a, init_seed=seed)})


def train_one(variant: str, seed: int, a: argparse.Namespace, root: Path, data: Path) -> dict:
    out = run_dir(a, variant, seed)
    t0 = time.perf_counter()
    pretrain(variant, seed, a, root, data, out)
    t_train = time.perf_counter() - t0
    result = {"variant": variant, "seed": seed, "budget": budget_key(a), "train_size": a.train_size,
              "epochs": a.epochs, "recipe": str(Path(a.recipe).name), "overrides": a.set,
              "train_s": round(t_train, 1), "knn_curve": knn_curve(out), **evaluate(out / "checkpoint.pt", root, a)}
    result["total_s"] = round(time.perf_counter() - t0, 1)
    return result


def final_test(a: argparse.Namespace, root: Path) -> None:
    """Evaluates ONE chosen variant's seeds on the test split, once per run (refuses a second time)."""
    if len(a.variants) != 1:
        raise SystemExit("--final-test evaluates the one chosen recipe: pass exactly one --variants")
    test_file = a.out / "test_results.jsonl"
    for seed in a.seeds:
        out = run_dir(a, a.variants[0], seed)
        if any(r["run"] == out.name for r in read_jsonl(test_file)):
            raise SystemExit(f"{out.name} was already evaluated on the test split once: see {test_file}")
        res = {"run": out.name, **evaluate(out / "checkpoint.pt", root, a, test=True)}
        append_jsonl(test_file, res)
        print(json.dumps(res))


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.fmnist_study", description=__doc__.splitlines()[0])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--train-size", type=int, default=10000, help="pretraining images drawn from train_fit")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--recipe", type=Path, default=REPO / "configs" / "pretrain" / "demo_fmnist.yaml")
    p.add_argument("--set", nargs="*", default=[], help="extra key=value overrides for every run (same budget)")
    p.add_argument("--bank-size", type=int, default=10000, help="k-NN bank / linear training images of train_fit")
    p.add_argument("--val-size", type=int, default=0, help="validation images (0: all 10000 of train_holdout)")
    p.add_argument("--knn-bank", type=int, default=5000, help="online k-NN (per epoch) bank size")
    p.add_argument("--knn-queries", type=int, default=2000, help="online k-NN (per epoch) validation images")
    p.add_argument("--linear-epochs", type=int, default=20)
    p.add_argument("--kinds", nargs="*", default=["cls_avg"], help="extra feature kinds for the k-NN (pooled always)")
    p.add_argument("--image-size", type=int, default=28)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--runs", type=Path, default=REPO / "runs" / "fmnist_study")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--bench", type=Path, default=REPO / "runs" / "locbench",
                   help="composited localization / robustness benchmark (built here if missing)")
    p.add_argument("--loc-size", type=int, default=56, help="image side for localization and robustness")
    p.add_argument("--no-attention-eval", action="store_true",
                   help="skip the localization / robustness scores in the table pass")
    p.add_argument("--max-runs", type=int, default=0, help="stop after this many new runs (0: all)")
    p.add_argument("--table-only", action="store_true", help="rebuild table and plots, train nothing")
    p.add_argument("--train-only", action="store_true",
                   help="train and record runs only: no baselines, tables or plots (parallel workers of one "
                        "budget; run --table-only once they are done)")
    p.add_argument("--final-test", action="store_true", help="evaluate ONE finished variant (seeds) on the test split")
    return p.parse_args(argv)


def train_plan(a: argparse.Namespace, root: Path, jsonl: Path, plan: list[tuple[str, int]]) -> None:
    """Trains (or, with --table-only, only records) every unfinished run of the plan, in plan order."""
    data = train_subset(root, a.train_size, a.runs / f"data_n{a.train_size}")
    done = 0
    for variant, seed in plan:
        out = run_dir(a, variant, seed)
        if a.table_only:  # trains nothing, but records finished runs the JSONL misses
            record(jsonl, out)
            continue
        # finished earlier: in the JSONL (e.g. a committed one, run folders elsewhere), or its result.json
        # exists (then recorded now, if a crash came between the two writes)
        if (variant, seed, budget_key(a)) in recorded_keys(jsonl) or record(jsonl, out):
            continue
        if a.max_runs and done >= a.max_runs:
            break
        log.info("run %s (seed %d, %s)", variant, seed, budget_key(a))
        result = train_one(variant, seed, a, root, data)
        (out / "result.json").write_text(json.dumps(result, indent=1))
        record(jsonl, out)
        done += 1
        if not a.train_only:
            write_tables(a.out, read_jsonl(jsonl), budget_key(a), plan)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    a = parse(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    root = ensure_fashion_mnist(REPO / "data")
    jsonl, attention = a.out / "results.jsonl", a.out / "attention.jsonl"
    if a.final_test:
        final_test(a, root)
        return
    plan = [(v, s) for s in a.seeds for v in a.variants]
    train_plan(a, root, jsonl, plan)
    if a.train_only:  # parallel workers: the baselines and tables are made once, by --table-only
        return
    init_baselines(a, root, jsonl)
    if not a.no_attention_eval:
        score_all(a, plan, attention)
    rows, att = read_jsonl(jsonl), read_jsonl(attention)
    print(write_tables(a.out, rows, budget_key(a), plan, att))
    plot_curves(a.out, rows, budget_key(a))
    plot_metrics(a.out, metric_values(rows, att, budget_key(a)), budget_key(a))
    attention_maps(a.out, root, a)


if __name__ == "__main__":
    main()
