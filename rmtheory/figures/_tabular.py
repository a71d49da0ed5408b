"""Batched tabular t_γ and instance helpers shared by the figures (library logic, not plotting).

Every tabular t_γ of the figures is solved by :func:`tabular_t_gamma` in chunks of exactly :data:`BUCKET`
rows over :data:`N_OUTPUTS` outputs, so the figures reuse one compiled solver.
"""

from __future__ import annotations

import numpy as np

from .. import make_instance, time_to_gamma

# Flow-time horizon (t_max) of every t_γ solve in the figures. With λ = 0 a finite t_γ can be astronomically
# large (the flow first settles near a saddle, a worse output; docs/theory.md "Definitions"). The time spent near
# a saddle depends on the last bits of the state (a t_γ of 8.9e13 can move beyond 1e16 under a change of the
# solver's rounding), so such times are reported as "beyond the horizon" (t_γ = inf, status HORIZON), which
# keeps every figure's data reproducible from its seed.
T_MAX = 1e9
BUCKET = 1024  # tabular t_γ batches are solved in chunks of exactly this size (padded), so every figure
               # with |Y| = N_OUTPUTS reuses one compiled solver (padding rows are decided at t = 0)
N_OUTPUTS = 8  # |Y| of every tabular instance in the figures (smaller supports are embedded, see embed)


def loglog_slope(x, y):
    """Least-squares slope and intercept of log10 y on log10 x over finite positive pairs."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    m = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if m.sum() < 2:
        return float("nan"), float("nan")
    s, c = np.polyfit(np.log10(x[m]), np.log10(y[m]), 1)
    return float(s), float(c)


def tabular_t_gamma(logits, reward, measure, gamma, lam=0.0, t_max: float = T_MAX):
    """t_γ (and solver status) of the tabular gradient flow for a batch of instances.

    ``logits``, ``reward`` (r_RM), ``measure`` (the timed reward): [N, |Y|] (single-prompt instances) or
    [N, |S|, |Y|] (then t and status are [N, |S|]: the flow with its 1/|S|); ``gamma``: scalar, [N] or [N, |S|];
    ``lam``: scalar or [N]. The batch is solved in chunks of exactly :data:`BUCKET` instances, the last one
    padded with trivially unreachable rows (zero reward, decided ``inf`` at t = 0), so every call with the same
    (|S|, |Y|) reuses one compiled solver. Returns (t, status) as numpy arrays.
    """
    logits, reward, measure = (np.asarray(a, np.float64) for a in (logits, reward, measure))
    single = logits.ndim == 2
    if single:
        logits, reward, measure = logits[:, None], reward[:, None], measure[:, None]
    n, ns, ny = logits.shape
    gamma = np.asarray(gamma, np.float64)
    gamma = np.broadcast_to(gamma[:, None] if gamma.ndim == 1 else gamma, (n, ns))
    lam = np.broadcast_to(np.asarray(lam, np.float64), (n,))
    ts, sts = [], []
    for a in range(0, n, BUCKET):
        sl = slice(a, min(a + BUCKET, n))
        k = sl.stop - sl.start
        pad = BUCKET - k
        z = np.zeros((pad, ns, ny))
        inst = make_instance(np.concatenate([logits[sl], z]), np.concatenate([reward[sl], z]),
                             np.concatenate([lam[sl], np.zeros(pad)]))
        res = time_to_gamma(inst, np.concatenate([gamma[sl], np.full((pad, ns), 0.5)]),
                            measure=np.concatenate([measure[sl], z]), t_max=t_max)
        ts.append(np.asarray(res.t)[:k])
        sts.append(np.asarray(res.status)[:k])
    t, st = np.concatenate(ts), np.concatenate(sts)
    return (t[:, 0], st[:, 0]) if single else (t, st)


def embed(logits, reward, measure, n_outputs: int = N_OUTPUTS, pad_logit: float = -60.0):
    """Embed instances with |Y| < ``n_outputs`` into ``n_outputs`` outputs: the extra outputs get logit
    ``pad_logit`` (initial mass ≈ e^{-60} ≈ 1e-26, so the flow, the variance and t_γ change by ~1e-26
    relative) and copy the *last* output's rewards. The result is a valid ``n_outputs`` instance in its own
    right."""
    logits, reward, measure = (np.asarray(a, np.float64) for a in (logits, reward, measure))
    k = n_outputs - logits.shape[-1]
    if k <= 0:
        return logits, reward, measure
    return (np.concatenate([logits, np.full(logits.shape[:-1] + (k,), pad_logit)], -1),
            *(np.concatenate([a, np.repeat(a[..., -1:], k, axis=-1)], -1) for a in (reward, measure)))


