"""Statistics over seeds: mean, sample std, t-based 95 % CI, paired difference with paired tests.

For n values x_i: mean m, sample std s (ddof=1), CI = m -+ t_{0.975, n-1} s / sqrt(n).
Paired by seed against the baseline: d_i = x_i - b_i, the same three numbers for d, the
paired t test (scipy.stats.ttest_rel, two-sided) and the Wilcoxon signed-rank test
(scipy.stats.wilcoxon, two-sided, exact for small n). With 3 seeds the smallest possible
Wilcoxon p is 0.25, so only the t test can reach 0.05 there (under its normality assumption).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

LOWER_IS_BETTER = ("EPE", "RMSE", "NME", "FR@", "ECE", "attribute_MAE", "count_MAE")


def lower_is_better(metric: str) -> bool:
    return metric.startswith(LOWER_IS_BETTER)


@dataclass
class Summary:
    n: int
    mean: float
    std: float  # sample std (ddof=1); NaN for one value
    low: float  # 95 % CI (t distribution); NaN for one value
    high: float


@dataclass
class PairedDifference:
    n: int  # seeds present for both losses
    diff: Summary  # of x - baseline
    p_t: float  # paired t test, two-sided
    p_wilcoxon: float  # Wilcoxon signed-rank, two-sided; NaN when every difference is 0


def summarize(values, confidence: float = 0.95) -> Summary:
    from scipy import stats

    x = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    n = len(x)
    if n == 0:
        return Summary(0, math.nan, math.nan, math.nan, math.nan)
    mean = float(x.mean())
    if n == 1:
        return Summary(1, mean, math.nan, math.nan, math.nan)
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return Summary(n, mean, std, mean - half, mean + half)


def paired_difference(values: dict[int, float], baseline: dict[int, float]) -> PairedDifference:
    """values, baseline: {seed: metric}; pairs the seeds (finite in both)."""
    from scipy import stats

    seeds = sorted(s for s in set(values) & set(baseline)
                   if math.isfinite(values[s]) and math.isfinite(baseline[s]))
    x = np.array([values[s] for s in seeds], dtype=float)
    b = np.array([baseline[s] for s in seeds], dtype=float)
    diff = summarize(x - b)
    p_t = p_w = math.nan
    if len(seeds) >= 2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zero-variance differences: scipy warns and returns NaN
            p_t = float(stats.ttest_rel(x, b).pvalue)
            if np.any(x != b):
                p_w = float(stats.wilcoxon(x, b).pvalue)
    return PairedDifference(len(seeds), diff, p_t, p_w)


def steps_to_target(history: list[dict], metric: str, target: float) -> float:
    """First validation step at which `metric` reaches `target` (>= or, lower-is-better, <=); NaN if never."""
    better = (lambda v: v <= target) if lower_is_better(metric) else (lambda v: v >= target)
    for entry in sorted(history, key=lambda e: e["step"]):
        value = entry.get(metric)
        if value is not None and math.isfinite(value) and better(value):
            return float(entry["step"])
    return math.nan
