"""Paired comparison of two strategies over the seeds they share (issue 25, item 3).

Seed ``s`` of strategy A and seed ``s`` of strategy B share the run seed (initialisation, crop and mask
draws start from the same state), so the per-seed differences d_s = A_s - B_s are compared, not two
independent means: mean difference, its standard deviation, the paired t-test (two-sided,
``scipy.stats.ttest_rel``: t = mean(d) / (sd(d) / sqrt(n)), n - 1 degrees of freedom) and how many
seeds A wins. With 6 strategies there are 15 pairs per metric, so a few p < 0.05 are expected by
chance: each p is also given Holm-adjusted over the 15 pairs of its metric (:func:`holm`), which keeps
the chance of any false claim among them at 5%.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from typing import NamedTuple

from scipy import stats

Values = dict[tuple[str, int], float]  # (variant, seed) -> metric value


class Paired(NamedTuple):
    a: str
    b: str
    n: int  # seeds both have
    mean: float  # mean of A_s - B_s
    sd: float  # sample std of the differences (nan for n < 2)
    t: float
    p: float  # two-sided paired t-test (nan for n < 2 or identical differences)
    wins: int  # seeds where A > B
    p_holm: float = math.nan


def paired(values: Values, a: str, b: str) -> Paired:
    """The paired comparison of ``a`` against ``b`` over the seeds both have."""
    seeds = sorted({s for v, s in values if v == a} & {s for v, s in values if v == b})
    d = [values[a, s] - values[b, s] for s in seeds]
    n = len(d)
    mean = statistics.fmean(d) if d else math.nan
    sd = statistics.stdev(d) if n > 1 else math.nan
    if n > 1 and sd > 0:
        res = stats.ttest_rel([values[a, s] for s in seeds], [values[b, s] for s in seeds])
        t, p = float(res.statistic), float(res.pvalue)
    else:
        t = p = math.nan
    return Paired(a, b, n, mean, sd, t, p, sum(x > 0 for x in d))


def holm(ps: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order; nan stays nan and does not count as a test).

    Sorted ascending p_(1) <= ... <= p_(m): adjusted p_(i) = max over j <= i of min(1, (m - j + 1) p_(j)).
    """
    order = sorted((p, i) for i, p in enumerate(ps) if not math.isnan(p))
    m, out, running = len(order), [math.nan] * len(ps), 0.0
    for j, (p, i) in enumerate(order):
        running = max(running, min(1.0, (m - j) * p))
        out[i] = running
    return out


def all_pairs(values: Values, variants: Sequence[str]) -> list[Paired]:
    """Every pair (in ``variants`` order) with its Holm-adjusted p over these pairs."""
    pairs = [paired(values, a, b) for a, b in itertools.combinations(variants, 2)]
    return [p._replace(p_holm=h) for p, h in zip(pairs, holm([p.p for p in pairs]))]
