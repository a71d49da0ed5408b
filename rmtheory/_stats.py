"""Correlation statistics (Pearson; Spearman with average ranks for ties), as used for the paper's
correlation tables (Tables 2, 4, 6, 8, 9) and the landscape figure."""

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
