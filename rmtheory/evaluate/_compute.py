"""Computing the report card: per reward source via the shared :func:`rmtheory.rm_report` (grouped by the
number of samples K), then one bootstrap over prompts for every model and measure."""

from __future__ import annotations

import math

import numpy as np

from .._bounds import prop3_time_lower_bound
from .._rm_eval import combined_measures, pooled_normalisation_stats, rm_report
from ._prepare import examples
from ._rates import GRAM_FACTOR_WARNING, ground_truth_stats, model_rates, pooled_capable, pooled_value
from ._report import ModelResult
from ._input import InputError

N_UNIT_COLS = 7   # per-prompt columns of one model for the bootstrap (see _evaluate_model)


class _Grouping:
    """Rows of one model grouped into [P_K, K] index matrices, one per distinct sample count K ≥ 2."""

    def __init__(self, rows, pcode, n_prompts):
        codes = pcode[rows]
        order = np.argsort(codes, kind="stable")
        self.rows = rows[order]
        self.counts = np.bincount(codes, minlength=n_prompts)
        starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]])
        self.groups = []   # (prompt codes [P_K], row index matrix [P_K, K])
        for k in np.unique(self.counts[self.counts >= 2]):
            prompts = np.flatnonzero(self.counts == k)
            idx = self.rows[starts[prompts][:, None] + np.arange(k)[None, :]]
            self.groups.append((prompts, idx))
        self.used = np.flatnonzero(self.counts >= 2)


def _evaluate_model(name, is_gt, vals, gt_vals, grouping, off, scheme, gamma, n_prompts_bound, n_units, warnings,
                    rates=None):
    """Metrics of one reward source via rm_report; per-prompt columns for the bootstrap."""
    off_args = {}
    n_off = 0
    off_codes = np.zeros(0, np.int64)
    if off is not None and name in off:
        c, r, gc, gr, off_codes = off[name]
        if c.size:
            off_args = {"off_chosen": c, "off_rejected": r}
            if gc is not None:
                off_args.update(off_gt_chosen=gc, off_gt_rejected=gr)
            n_off = int(c.size)
    n_used = int(grouping.used.size)
    if n_used == 0:
        warnings.append(f"model '{name}': no prompt with 2 or more usable samples; not evaluated")
        nan = math.nan
        res = ModelResult(name, is_gt, 0, 0, n_off, nan, nan, nan, nan, nan, nan, nan, nan, has_rates=rates is not None)
        return res, None
    has_gt = gt_vals is not None
    reports, constant = [], []
    for gi, (prompts, idx) in enumerate(grouping.groups):
        s = vals[idx]
        g = gt_vals[idx] if has_gt else None
        try:
            reports.append(rm_report(s, g, scheme=scheme, **(off_args if gi == 0 else {})))
        except ValueError as e:   # inputs are validated; what is left is scores beyond the float64 range
            raise InputError(f"model '{name}': {e}") from None
        constant.append(np.all(s == s[:, :1], axis=1))
    if len(reports) == 1:
        rep = reports[0]
        var_p, acc_p = rep.variance, rep.on_accuracy
        mean, std = rep.mean, rep.std
        var, acc_on, acc_off, on_off, var_acc = rep.var, rep.acc_on, rep.acc_off, rep.on_off, rep.var_acc
        prompts_order = grouping.groups[0][0]
    else:
        # Unequal K: rm_report normalises each K-group by that group's own statistics, but the paper's
        # protocol uses one (μ, σ) per reward source over all its samples. Per-prompt variances scale as
        # 1/σ², so rescale them to the all-sample σ; accuracies are invariant to the positive affine map.
        try:
            mean, std = pooled_normalisation_stats([vals[idx] for _, idx in grouping.groups], scheme)
        except ValueError as e:
            raise InputError(f"model '{name}': {e}") from None
        var_p = np.concatenate([rep.variance * (rep.std / std) ** 2 for rep in reports])
        acc_p = np.concatenate([rep.on_accuracy for rep in reports])
        prompts_order = np.concatenate([p for p, _ in grouping.groups])
        var = float(np.mean(var_p))
        acc_on = float(np.mean(acc_p))
        off_c = reports[0].off_correct
        acc_off = float(np.mean(off_c)) if off_c.size else math.nan
        on_off, var_acc = combined_measures(var, acc_on, acc_off).values()
    off_correct = reports[0].off_correct
    n_zero = int(np.sum(np.concatenate(constant)))   # from the raw scores (tiny scores underflow var_p)
    if n_zero == n_used:
        warnings.append(f"model '{name}': constant rewards within every prompt (zero reward variance); "
                        "Var = 0 and the Proposition 3 bound is infinite")
    elif n_zero:
        warnings.append(f"model '{name}': zero reward variance on {n_zero} of {n_used} prompt(s)")
    s_bound = n_prompts_bound if n_prompts_bound is not None else n_used
    t_lb = float(prop3_time_lower_bound(max(var, 0.0), gamma, s_bound))
    res = ModelResult(name, is_gt, n_used, int(grouping.counts[grouping.used].sum()), n_off, float(mean), float(std),
                      float(var), float(acc_on), float(acc_off), float(on_off), float(var_acc), t_lb,
                      n_zero_variance_prompts=n_zero)
    # per-unit (prompt) sums for the bootstrap: [w_on, w_on*var, w_on*acc, n_off, n_off_correct, w_on*rate_g,
    # w_on*rate_self]
    cols = np.zeros((n_units, N_UNIT_COLS))
    cols[prompts_order, 0] = 1.0
    cols[prompts_order, 1] = var_p
    cols[prompts_order, 2] = acc_p if has_gt else 0.0
    if off_correct.size:
        np.add.at(cols[:, 3], off_codes, 1.0)
        np.add.at(cols[:, 4], off_codes, off_correct)
    pooled = None
    if rates is not None:   # (sketches, ground-truth stats, Gram cache): evaluate/_rates.py
        sk, gt_stats, cache = rates
        pr = model_rates(vals, (mean, std), gt_vals, gt_stats, grouping, sk, cache)
        res.has_rates = True
        res.rate_self_within = float(np.mean(pr.t_self))
        if has_gt:
            res.rate_g_within = float(np.mean(pr.t_g))
        if pr.pooled is not None:
            own_g, own_s, u, v = pr.pooled
            res.has_pooled = True
            res.rate_self = pooled_value(pr.t_self, own_s, v, v)
            if has_gt:
                res.rate_g = pooled_value(pr.t_g, own_g, u, v)
            pooled = (prompts_order, pr)
        cols[prompts_order, 5] = pr.t_g
        cols[prompts_order, 6] = pr.t_self
    return res, (cols, has_gt, bool(off_correct.size), rates is not None, pooled)


def bootstrap(results, unit_cols, n_units, n_boot, seed, ci):
    """Percentile bootstrap over prompts, all models and measures at once: each resample is a vector of
    prompt multiplicities (counts), and every statistic is a ratio of count-weighted sums (one matmul).

    Resamples are drawn in chunks (at most 128 resamples and 1e7 counts at a time); what is kept is one row
    of sums per resample (n_boot × distinct columns, bounded by MAX_BOOTSTRAP)."""
    live = [(i, c) for i, c in enumerate(unit_cols) if c is not None]
    if not live:
        return
    A = np.concatenate([c[0] for _, c in live], axis=1)          # [U, 5 * models]
    A, inverse = np.unique(A, axis=1, return_inverse=True)         # shared columns (e.g. weights) once
    inverse = inverse.reshape(len(live), N_UNIT_COLS)
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_boot, 128, int(1e7 // n_units)))
    counts = np.empty((chunk, n_units))
    S = np.empty((n_boot, A.shape[1]))
    pooled = {j: ({"rate_self": np.empty(n_boot)} | ({"rate_g": np.empty(n_boot)} if c[1] else {}))
              for j, (_, c) in enumerate(live) if c[4] is not None}
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        for i in range(b):   # row by row: the draws and their histogram stay in cache
            counts[i] = np.bincount(rng.integers(0, n_units, n_units), minlength=n_units)
        S[start:start + b] = counts[:b] @ A
        for j, out in pooled.items():   # the pooled rates: the estimator on each resample (evaluate/_rates.py)
            order, pr = live[j][1][4]
            own_g, own_s, u, v = pr.pooled
            w = counts[:b][:, order]
            with np.errstate(invalid="ignore", divide="ignore"):
                out["rate_self"][start:start + b] = pooled_value(pr.t_self, own_s, v, v, w)
                if "rate_g" in out:
                    out["rate_g"][start:start + b] = pooled_value(pr.t_g, own_g, u, v, w)
    q = [(1 - ci) / 2, 1 - (1 - ci) / 2]
    for j, (i, (_, has_gt, has_off, has_rates, _)) in enumerate(live):
        w, wv, wa, n_off, n_ok, wrg, wrs = (S[:, k] for k in inverse[j])
        with np.errstate(invalid="ignore", divide="ignore"):
            stats = {"var": wv / w}
            if has_gt:
                stats["acc_on"] = wa / w
            if has_off:
                stats["acc_off"] = n_ok / n_off
            if has_rates:
                stats["rate_self_within"] = wrs / w
                if has_gt:
                    stats["rate_g_within"] = wrg / w
            stats.update(pooled.get(j, {}))
        if has_gt and has_off:
            stats.update(combined_measures(stats["var"], stats["acc_on"], stats["acc_off"]))
        r = results[i]
        for m, x in stats.items():
            x = x[np.isfinite(x)]
            r.ci[m] = tuple(float(v) for v in np.quantile(x, q)) if x.size else (math.nan, math.nan)


def evaluate_models(table, cols, rows, off, scheme, gamma, n_prompts_bound, n_units, warnings, sketches=None):
    """ModelResult of every reward source, and its per-prompt columns for the bootstrap (None if none); with
    ``sketches`` (evaluate/_rates.py) also rate_G and rate_self."""
    n_p = len(rows.prompt_names)
    cache: list = []
    gt_vals = table.values[cols.gt] if cols.gt is not None else None
    results, unit_cols = [], []
    rates = None
    if sketches is not None:
        rates = (sketches, ground_truth_stats(table, cols.gt, rows, _Grouping, scheme), {})
        if not pooled_capable(sketches):
            warnings.append(GRAM_FACTOR_WARNING.format(src=sketches.source))
    for name in cols.sources:
        vals = table.values[name]
        present = ~np.isnan(vals)
        valid = rows.keep & present & rows.gt_present
        if not present[rows.keep].all():
            miss = np.flatnonzero(rows.keep & ~present)
            warnings.append(f"model '{name}': scores missing on {miss.size} row(s) (first: row {int(miss[0]) + 1}); "
                            "those rows are skipped for this model")
        grouping = next((g for m, g in cache if np.array_equal(m, valid)), None)
        if grouping is None:
            grouping = _Grouping(np.flatnonzero(valid), rows.pcode, n_p)
            cache.append((valid, grouping))
        lost = np.flatnonzero((rows.counts >= 2) & (grouping.counts < 2))
        if lost.size:
            warnings.append(f"model '{name}': {lost.size} prompt(s) missing for this model "
                            f"({examples(rows.prompt_names[i] for i in lost)}), so models are compared on different "
                            "prompt sets")
        res, unit = _evaluate_model(name, name == cols.gt, vals, gt_vals, grouping, off, scheme, gamma,
                                    n_prompts_bound, n_units, warnings, rates)
        results.append(res)
        unit_cols.append(unit)
    return results, unit_cols
