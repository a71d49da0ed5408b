"""Correlation statistics (Pearson; Spearman with average ranks for ties), as used for the paper's
correlation tables (Tables 2, 4, 6, 8, 9) and the landscape figure, and the percentile bootstrap the LM
pipeline's tables use (over seeds, over cells)."""

from __future__ import annotations

import numpy as np


def rankdata(x) -> np.ndarray:
    """Ranks 1..n of the last axis, ties given their average rank."""
    x = np.asarray(x, np.float64)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), np.float64)
    xs = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and xs[j + 1] == xs[i]:
            j += 1
        ranks[order[i : j + 1]] = 0.5 * (i + j) + 1.0
        i = j + 1
    return ranks


def percentile_ci(samples) -> list:
    """The 95 % percentile interval [2.5th, 97.5th percentile] of bootstrap ``samples`` (NaNs if empty)."""
    if len(samples) == 0:
        return [float("nan"), float("nan")]
    lo, hi = np.percentile(samples, [2.5, 97.5])
    return [float(lo), float(hi)]


def seed_stats(x, n_boot: int = 2000, seed: int = 0) -> dict:
    """Mean, std (ddof = 1; NaN for one value) and a 95 % percentile bootstrap CI of the mean of ``x`` [S]
    (``n_boot`` resamples drawn with ``numpy.random.default_rng(seed)``)."""
    x = np.asarray(x, np.float64)
    rng = np.random.default_rng(seed)
    boots = x[rng.integers(0, x.size, (n_boot, x.size))].mean(1)
    return {"mean": float(x.mean()), "std": float(x.std(ddof=1)) if x.size > 1 else float("nan"),
            "ci": percentile_ci(boots), "n": int(x.size)}


def corr_with_ci(f, x, y, n_boot: int = 2000, seed: int = 0) -> dict:
    """A correlation ``f(x, y)`` over cells with a 95 % percentile bootstrap CI (resampling cells; resamples
    where either side is constant are skipped): {"r", "ci", "n"}, ``r`` None if undefined (fewer than 3
    cells or a constant side)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"r": None, "ci": [None, None], "n": int(x.size)}
    rng = np.random.default_rng(seed)
    vals = [float(f(x[idx], y[idx])) for idx in rng.integers(0, x.size, (n_boot, x.size))
            if np.ptp(x[idx]) > 0 and np.ptp(y[idx]) > 0]
    return {"r": float(f(x, y)), "ci": percentile_ci(vals), "n": int(x.size)}


def pearson(x, y) -> float:
    """Pearson correlation; NaN if either input is constant."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size < 2:
        raise ValueError(f"x and y must be 1-D of equal length >= 2; got {x.shape} and {y.shape}")
    xc, yc = x - x.mean(), y - y.mean()
    den = np.sqrt(np.sum(xc * xc) * np.sum(yc * yc))
    return float(np.sum(xc * yc) / den) if den > 0 else float("nan")


def spearman(x, y) -> float:
    """Spearman rank correlation = Pearson correlation of average ranks."""
    return pearson(rankdata(x), rankdata(y))
