"""``results.md``: per budget, mean +- std per variant, differences against the seed std, paired tests."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from benchmarks.fmnist_study.paired import Values, all_pairs
from benchmarks.fmnist_study.runs import INIT_BASELINES, VARIANTS

# metric name -> (row of results.jsonl or attention.jsonl -> value, better); missing -> None
METRICS: dict[str, tuple[Callable[[dict], float | None], str]] = {
    "k-NN pooled": (lambda r: r.get("knn_top1"), "higher"),
    "k-NN grid2": (lambda r: r.get("knn_by_kind", {}).get("grid2"), "higher"),
    "linear pooled": (lambda r: r.get("linear_top1"), "higher"),
    "MaxBoxAccV2 photos": (lambda r: r.get("localization", {}).get("wsol", {}).get("MaxBoxAccV2"), "higher"),
    "MaxBoxAccV2 black": (lambda r: r.get("localization", {}).get("wsol_onblack", {}).get("MaxBoxAccV2"), "higher"),
    "BG-Gap": (lambda r: r.get("robustness", {}).get("BG_Gap"), "lower"),
}


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else float("nan"))


def unique(rows: list[dict]) -> list[dict]:
    """One row per (variant, seed, budget), the first (two processes finishing together may both record one)."""
    seen: set = set()
    return [r for r in rows if (k := (r["variant"], r["seed"], r["budget"])) not in seen and not seen.add(k)]


def metric_values(rows: list[dict], attention: list[dict], budget: str) -> dict[str, Values]:
    """{metric: {(variant, seed): value}} of one budget, from the results and attention rows."""
    out: dict[str, Values] = {m: {} for m in METRICS}
    for r in unique(rows) + unique(attention):
        if r["budget"] != budget:
            continue
        for m, (get, _) in METRICS.items():
            if (v := get(r)) is not None:
                out[m][r["variant"], r["seed"]] = float(v)
    return out


def write_tables(out: Path, rows: list[dict], current: str, plan: Sequence[tuple[str, int]] = (),
                 attention: list[dict] | None = None) -> str:
    """results.md: one section per budget in the JSONL (the current one first); returns the current one."""
    rows, attention = unique(rows), attention or []
    budgets = [current] + sorted({r["budget"] for r in rows} - {current})
    sections = [write_table(rows, b, plan if b == current else (), attention) for b in budgets]
    (out / "results.md").write_text("\n".join(sections))
    return sections[0]


def _summary(rows: list[dict], budget: str, plan: Sequence[tuple[str, int]]) -> str:
    n_trained = sum(r["variant"] in VARIANTS for r in rows)
    n_planned_done = len(set(plan) & {(r["variant"], r["seed"]) for r in rows})
    head = (f"{n_planned_done} of {len(set(plan))} planned training runs finished"
            + (" (PARTIAL)" if n_planned_done < len(set(plan)) else "") + f", {n_trained} recorded in all"
            if plan else f"{n_trained} training runs recorded")
    return (head + "; random_init* rows: the same architectures untrained (same seeds, same evaluation); "
            "raw_pixels: the 784 pixel values (scaled to [0, 1]), same bank and validation images.")


def write_table(rows: list[dict], budget: str, plan: Sequence[tuple[str, int]] = (),
                attention: Sequence[dict] = ()) -> str:
    """Mean +- std per variant, each pairwise k-NN / linear difference against the seed std, and (with
    two or more seeds) the paired test of every pair of strategies on every metric (markdown).

    ``plan``: the (variant, seed) runs this invocation should finish (empty: not stated); another
    process may be finishing other variants of the same budget, so both counts are given."""
    rows = [r for r in rows if r["budget"] == budget]
    by: dict[str, list[dict]] = {}
    for r in rows:
        by.setdefault(r["variant"], []).append(r)
    order = [v for v in (*VARIANTS, *INIT_BASELINES) if v in by]
    lines = [f"# Fashion-MNIST study, budget {budget} (validation split train_holdout)", "",
             _summary(rows, budget, plan), "",
             "| variant | seeds | k-NN top-1 (k=20) | linear top-1 | k-NN other features (mean) "
             "| online k-NN per epoch (mean) | train min/run |",
             "|---|---|---|---|---|---|---|"]
    stats = {}
    for v in order:
        knn, lin = mean_std([r["knn_top1"] for r in by[v]]), mean_std([r["linear_top1"] for r in by[v]])
        stats[v] = {"knn": knn, "linear": lin}
        curves = [r["knn_curve"] for r in by[v] if r["knn_curve"]]
        curve = " / ".join(f"{statistics.fmean(c[i] for c in curves if len(c) > i):.1f}"
                           for i in range(max(map(len, curves), default=0)))
        kinds = sorted({k for r in by[v] for k in r.get("knn_by_kind", {}) if k != "pooled"})
        other = ", ".join(f"{k} {statistics.fmean(r['knn_by_kind'][k] for r in by[v] if k in r.get('knn_by_kind', {})):.2f}"
                          for k in kinds)
        lines.append(f"| {v} | {len(by[v])} | {knn[0]:.2f} +- {knn[1]:.2f} | {lin[0]:.2f} +- {lin[1]:.2f} | {other} | {curve} | "
                     f"{statistics.fmean(r['train_s'] for r in by[v]) / 60:.1f} |")
    for metric in ("knn", "linear"):
        lines += ["", f"## {metric}: difference of means (row - column) against the larger seed std", "",
                  "`*` marks a difference larger than the larger of the two stds (needs >= 2 seeds each); "
                  "anything else is within the seed noise and is not a result.", "",
                  "| | " + " | ".join(order) + " |", "|---" * (len(order) + 1) + "|"]
        for v in order:
            cells = []
            for w in order:
                d = stats[v][metric][0] - stats[w][metric][0]
                stds = (stats[v][metric][1], stats[w][metric][1])
                beyond = all(np.isfinite(stds)) and abs(d) > max(stds)
                cells.append("" if v == w else f"{d:+.2f}{'*' if beyond else ''}")
            lines.append(f"| {v} | " + " | ".join(cells) + " |")
    values = metric_values(rows, list(attention), budget)
    lines += _all_metrics_table(values)
    lines += _paired_tables(values)
    return "\n".join(lines) + "\n"


def _all_metrics_table(values: dict[str, Values]) -> list[str]:
    """Mean +- std of every metric per variant (trained variants and random init), where recorded."""
    variants = [v for v in (*VARIANTS, *INIT_BASELINES) if any(k[0] == v for vals in values.values() for k in vals)]
    metrics = [m for m in METRICS if values[m]]
    if not any(values[m] for m in METRICS if m.startswith(("MaxBox", "BG"))):
        return []  # no localization / robustness rows for this budget
    lines = ["", "## Every metric, mean +- std over seeds (localization and robustness: composited benchmark)", "",
             "| variant | " + " | ".join(f"{m} ({METRICS[m][1]} is better)" for m in metrics) + " |",
             "|---" * (len(metrics) + 1) + "|"]
    for v in variants:
        cells = []
        for m in metrics:
            xs = [x for (w, _), x in values[m].items() if w == v]
            mu, sd = mean_std(xs) if xs else (float("nan"), float("nan"))
            cells.append(f"{mu:.2f} +- {sd:.2f} (n={len(xs)})" if xs else "-")
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    return lines


def _paired_tables(values: dict[str, Values]) -> list[str]:
    strategies = [v for v in VARIANTS if v != "simpool_attmask_high"]
    lines = ["", "## Paired tests between strategies (A - B per seed, same seeds)", "",
             "Per metric: mean and std of the per-seed differences, the two-sided paired t-test p and the "
             "Holm-adjusted p over the 15 pairs of that metric, seeds where A > B. With 3 seeds and 15 pairs "
             "per metric, a raw p < 0.05 is expected about once per metric by chance alone: read the "
             "Holm column; with n = 3 a paired t-test has little power, so 'not significant' is not "
             "'equal'."]
    for m, vals in values.items():
        pairs = [p for p in all_pairs(vals, [v for v in strategies if any(k[0] == v for k in vals)]) if p.n >= 2]
        if not pairs:
            continue
        lines += ["", f"### {m} ({METRICS[m][1]} is better)", "",
                  "| A | B | seeds | mean A - B | std | t | p | p (Holm) | A > B |", "|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {p.a} | {p.b} | {p.n} | {p.mean:+.2f} | {p.sd:.2f} | {p.t:.2f} | {p.p:.3f} | {p.p_holm:.3f} "
                  f"| {p.wins} of {p.n} |" for p in pairs]
    return lines
