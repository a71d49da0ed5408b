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
    idx = np.random.default_rng(seed).integers(0, x.size, (n_boot, x.size))
    return {"r": float(f(x, y)), "ci": percentile_ci(_resampled(f, x, y, idx)), "n": int(x.size)}


def _resampled(f, x, y, idx) -> np.ndarray:
    """``f(x[i], y[i])`` for every resample ``i`` (a row of ``idx`` [B, n]) where neither side is constant. For
    :func:`pearson` and :func:`spearman` all rows at once, with the numbers one call per row gives to the last bit:
    the resample's average ranks are :func:`resampled_ranks` of its counts read at the drawn items (exact
    half-integers), and :func:`weighted_pearson` with unit weights makes the same row reductions as
    :func:`pearson`."""
    xs, ys = x[idx], y[idx]
    keep = (np.ptp(xs, axis=1) > 0) & (np.ptp(ys, axis=1) > 0)
    if f is not pearson and f is not spearman:
        return np.array([f(a, b) for a, b in zip(xs[keep], ys[keep])], np.float64)
    if f is spearman:
        counts = np.zeros(idx.shape)
        np.add.at(counts, (np.arange(idx.shape[0])[:, None], idx), 1.0)
        xs, ys = (np.take_along_axis(resampled_ranks(v, counts), idx, 1) for v in (x, y))
    return weighted_pearson(xs[keep], ys[keep], np.ones((int(keep.sum()), idx.shape[1])))


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


def resampled_ranks(x, weights) -> np.ndarray:
    """Average ranks of x in every resample given by integer multiplicities ``weights`` [B, n] (a bootstrap draw
    repeats item i weights[b, i] times), without materialising the resamples: the rank of a tie group is the total
    weight below it plus (its weight + 1)/2. Returns [B, n] (the rank each item has in resample b)."""
    x = np.asarray(x, np.float64)
    w = np.asarray(weights, np.float64)
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    starts = np.flatnonzero(np.concatenate([[True], xs[1:] != xs[:-1]]))
    group = np.cumsum(np.concatenate([[False], xs[1:] != xs[:-1]]))
    gw = np.add.reduceat(w[:, order], starts, axis=1)
    ranks = np.empty_like(w)
    ranks[:, order] = (np.cumsum(gw, axis=1) - 0.5 * (gw - 1.0))[:, group]
    return ranks


def weighted_pearson(x, y, weights) -> np.ndarray:
    """Pearson correlation of the rows of x and y [B, n] with weights [B, n] (NaN where either is constant)."""
    w = np.asarray(weights, np.float64)
    total = w.sum(-1, keepdims=True)
    xc = x - (w * x).sum(-1, keepdims=True) / total
    yc = y - (w * y).sum(-1, keepdims=True) / total
    den = np.sqrt((w * xc * xc).sum(-1) * (w * yc * yc).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (w * xc * yc).sum(-1) / den, np.nan)


def resampled_spearman(x, y, weights) -> np.ndarray:
    """Spearman of x and y in every resample of ``weights`` [B, n] (see :func:`resampled_ranks`): equals
    :func:`spearman` of the expanded resample. Returns [B]."""
    return weighted_pearson(resampled_ranks(x, weights), resampled_ranks(y, weights), weights)


def _inversions(a) -> int:
    """Number of pairs i < j with a[i] > a[j] (integer array), by a bottom-up merge count."""
    n = len(a)
    size = 1 << max(int(np.ceil(np.log2(max(n, 2)))), 1)
    big = int(a.max(initial=0)) + 1
    cur = np.concatenate([a, np.full(size - n, big)]).astype(np.int64)  # padding after: larger, no inversions
    count, width = 0, 1
    while width < size:
        blocks = cur.reshape(-1, 2 * width)
        off = (np.arange(blocks.shape[0]) * (big + 1))[:, None]
        left = (blocks[:, :width] + off).ravel()  # sorted within blocks; offsets keep the blocks apart
        right = blocks[:, width:] + off
        below = np.searchsorted(left, right.ravel(), side="right").reshape(right.shape) - off // (big + 1) * width
        count += int(np.sum(width - below))
        cur = np.sort(blocks, axis=1).ravel()
        width *= 2
    return count


def kendall(x, y) -> float:
    """Kendall's τ_b (ties in either variable handled as in Kendall 1945 / Knight's O(n log n) algorithm)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size < 2:
        raise ValueError(f"x and y must be 1-D of equal length >= 2; got {x.shape} and {y.shape}")
    n0 = x.size * (x.size - 1) // 2
    order = np.lexsort((y, x))
    xs, ys = x[order], y[order]

    def tied_pairs(*keys):
        new = np.concatenate([[True], np.any([k[1:] != k[:-1] for k in keys], axis=0)])
        sizes = np.diff(np.flatnonzero(np.concatenate([new, [True]])))
        return int(np.sum(sizes * (sizes - 1) // 2))

    n1, n3 = tied_pairs(xs), tied_pairs(xs, ys)
    n2 = tied_pairs(np.sort(y))
    discordant = _inversions(np.unique(ys, return_inverse=True)[1].ravel())
    den = np.sqrt(float(n0 - n1) * float(n0 - n2))
    return float((n0 - n1 - n2 + n3 - 2 * discordant) / den) if den > 0 else float("nan")


def paired_spearman_diff(x_a, x_b, y, n_boot: int = 2000, seed: int = 0, y_b=None) -> dict:
    """Spearman(x_a, y) − Spearman(x_b, y_b) (``y_b`` defaults to ``y``) with a *paired* 95 % percentile bootstrap
    CI: both correlations are computed on the same resampled cells (multinomial resample counts from
    ``numpy.random.default_rng(seed)``; resamples where either correlation is undefined are skipped).
    ``verdict``: "beats" if the CI lies above 0, "loses" if below, else "not distinguishable".
    Returns {"diff", "ci", "verdict", "n"}."""
    xa, xb, y = (np.asarray(v, np.float64) for v in (x_a, x_b, y))
    yb = y if y_b is None else np.asarray(y_b, np.float64)
    n = y.size
    if not (xa.shape == xb.shape == y.shape == yb.shape == (n,)) or n < 3:
        raise ValueError(f"x_a, x_b, y, y_b must be 1-D of one length >= 3; got {xa.shape}, {xb.shape}, {y.shape}, "
                         f"{yb.shape}")
    diff = spearman(xa, y) - spearman(xb, yb)
    rng = np.random.default_rng(seed)
    w = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)
    d = resampled_spearman(xa, y, w) - resampled_spearman(xb, yb, w)
    ci = percentile_ci(d[np.isfinite(d)])
    if not np.isfinite(diff):
        return {"diff": None, "ci": [None, None], "verdict": "undefined", "n": int(n)}
    verdict = "beats" if ci[0] > 0 else "loses" if ci[1] < 0 else "not distinguishable"
    return {"diff": float(diff), "ci": ci, "verdict": verdict, "n": int(n)}



def _group_draws(groups, n_boot: int, seed: int) -> list:
    """Multinomial resample counts [n_boot, len(g)] for each group of ``groups`` in order, drawn from one
    ``numpy.random.default_rng(seed)``: the same draws for every predictor and outcome (paired)."""
    rng = np.random.default_rng(seed)
    return [rng.multinomial(len(g), np.full(len(g), 1.0 / len(g)), size=n_boot).astype(np.float64) for g in groups]


def _checked_groups(groups, n: int) -> list:
    gs = [np.asarray(g, np.int64) for g in groups]
    if not gs or any(g.ndim != 1 or g.size < 3 for g in gs):
        raise ValueError("groups must be index arrays of >= 3 cells each")
    if any(g.min() < 0 or g.max() >= n for g in gs):
        raise ValueError(f"groups must index cells in [0, {n})")
    return gs


def within_group_spearman(x, y, groups, n_boot: int = 10000, seed: int = 0) -> dict:
    """The mean over ``groups`` (index arrays into the cells) of the Spearman of x and y over each group's cells,
    with a 95 % percentile bootstrap CI that resamples the cells within each group independently (multinomial
    counts from :func:`_group_draws`). A group whose x or y is constant (in the data or in a resample) is left out
    of that mean. Returns {"r", "ci", "groups": per-group Spearman (None where undefined), "n_groups"}."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    gs = _checked_groups(groups, x.size)
    per = [spearman(x[g], y[g]) if np.ptp(x[g]) > 0 and np.ptp(y[g]) > 0 else float("nan") for g in gs]
    boots = np.stack([resampled_spearman(x[g], y[g], w) for g, w in zip(gs, _group_draws(gs, n_boot, seed))], 1)
    ok = np.isfinite(boots).any(1)
    means = np.nanmean(boots[ok], 1)
    r = float(np.nanmean(per)) if np.isfinite(per).any() else None
    return {"r": r, "ci": percentile_ci(means) if r is not None else [None, None],
            "groups": [None if not np.isfinite(v) else float(v) for v in per], "n_groups": len(gs)}


def paired_within_group_diff(x_a, x_b, y, groups, n_boot: int = 10000, seed: int = 0) -> dict:
    """Mean within-group Spearman(x_a, y) − mean within-group Spearman(x_b, y) (:func:`within_group_spearman`)
    with a *paired* 95 % percentile bootstrap CI: both on the same within-group resamples, and a group left out
    of a resample's difference where x_a, x_b or y is constant in it (so both means are over the same groups).
    ``verdict`` as in :func:`paired_spearman_diff`. Returns {"diff", "ci", "verdict", "n_groups"}."""
    xa, xb, y = (np.asarray(v, np.float64) for v in (x_a, x_b, y))
    if not xa.shape == xb.shape == y.shape:
        raise ValueError(f"x_a, x_b, y must have one shape; got {xa.shape}, {xb.shape}, {y.shape}")
    gs = _checked_groups(groups, y.size)

    def defined(g):
        return np.ptp(xa[g]) > 0 and np.ptp(xb[g]) > 0 and np.ptp(y[g]) > 0

    per = [spearman(xa[g], y[g]) - spearman(xb[g], y[g]) if defined(g) else np.nan for g in gs]
    d = np.stack([resampled_spearman(xa[g], y[g], w) - resampled_spearman(xb[g], y[g], w)
                  for g, w in zip(gs, _group_draws(gs, n_boot, seed))], 1)
    ok = np.isfinite(d).any(1)
    means = np.nanmean(d[ok], 1)
    if not np.isfinite(per).any():
        return {"diff": None, "ci": [None, None], "verdict": "undefined", "n_groups": len(gs)}
    ci = percentile_ci(means)
    verdict = "beats" if ci[0] > 0 else "loses" if ci[1] < 0 else "not distinguishable"
    return {"diff": float(np.nanmean(per)), "ci": ci, "verdict": verdict, "n_groups": len(gs)}
