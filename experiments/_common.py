"""Shared helpers for the figure scripts in ``experiments/`` (argument parsing, atomic writes, fits).

Every figure script exposes ``run(quick, seed, out) -> dict`` (the data it plotted) and ``main(argv=None)``.
"""

from __future__ import annotations

import argparse
import csv
import os
import time

import numpy as np

from rmtheory import io
from rmtheory.io import atomic

# Flow-time horizon of every t_γ solve in the figures. With λ = 0 a finite t_γ can be astronomically large
# (the flow first settles near a saddle, a worse output; theory.md 1.7). The time spent near a saddle depends on
# the last bits of the state (one instance moved from 8.9e13 to beyond 1e16 between two solver versions), so
# such times are reported as "beyond the horizon" (t_γ = inf, status HORIZON), which keeps every figure's
# data reproducible from its seed.
HORIZON = 1e9
BUCKET = 1024  # tabular t_γ batches are solved in chunks of exactly this size (padded), so every figure
               # with |Y| = N_OUTPUTS reuses one compiled solver (padding rows are decided at t = 0)
N_OUTPUTS = 8  # |Y| of every tabular instance in the figures (smaller supports are embedded, see embed)


def parse_args(argv, description: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="small configuration (CI)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random draw")
    p.add_argument("--out", default="figures", help="output directory for the PNG and its data")
    return p.parse_args(argv)


def script_main(run, argv, description: str) -> int:
    args = parse_args(argv, description)
    t0 = time.perf_counter()
    run(quick=args.quick, seed=args.seed, out=args.out)
    print(f"done in {time.perf_counter() - t0:.1f} s")
    return 0


def cli(run, doc: str):
    """``main(argv=None) -> int`` for a figure script whose ``run(quick, seed, out)`` is given."""
    return lambda argv=None: script_main(run, argv, doc.splitlines()[0])


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.titlesize": 10, "legend.fontsize": 8, "figure.dpi": 110})
    return plt


def save_figure(fig, out: str, name: str) -> str:
    """Write ``fig`` to ``out/name`` atomically (tmp file + os.replace) and close it."""
    import matplotlib.pyplot as plt

    fmt = os.path.splitext(name)[1][1:]
    path = atomic(lambda p: fig.savefig(p, dpi=130, bbox_inches="tight", format=fmt), os.path.join(out, name))
    plt.close(fig)
    print(f"wrote {path}")
    return path


def save_json(obj, out: str, name: str) -> str:
    """Strict JSON (rmtheory.io's rule: non-finite floats are written as null), atomically."""
    path = io.save_json(os.path.join(out, name), obj, sort_keys=False)
    print(f"wrote {path}")
    return path


def save_csv(rows: dict, out: str, name: str) -> str:
    """Columns given as {name: 1-D array} (equal lengths); floats written with repr precision ('inf' allowed)."""
    cols = list(rows)
    n = len(next(iter(rows.values())))
    arrs = [np.asarray(rows[c]) for c in cols]
    if any(len(a) != n for a in arrs):
        raise ValueError("save_csv: columns of unequal length")

    def write(p):
        with open(p, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(cols)
            for i in range(n):
                w.writerow([repr(float(a[i])) if a.dtype.kind == "f" else a[i] for a in arrs])

    path = atomic(write, os.path.join(out, name))
    print(f"wrote {path}")
    return path


def read_csv(path: str) -> dict:
    """Read a CSV written by :func:`save_csv` back as {column: np.ndarray} (numeric where possible)."""
    with open(path) as f:
        r = csv.reader(f)
        cols = next(r)
        data = list(r)
    out = {}
    for j, c in enumerate(cols):
        vals = [row[j] for row in data]
        try:
            out[c] = np.array([float(v) for v in vals])
        except ValueError:
            out[c] = np.array(vals)
    return out


def loglog_slope(x, y):
    """Least-squares slope and intercept of log10 y on log10 x over finite positive pairs."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    m = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if m.sum() < 2:
        return float("nan"), float("nan")
    s, c = np.polyfit(np.log10(x[m]), np.log10(y[m]), 1)
    return float(s), float(c)


def tabular_t_gamma(logits, reward, measure, gamma, lam=0.0, t_max: float = HORIZON):
    """t_γ (and solver status) of the tabular gradient flow for a batch of single-prompt instances.

    ``logits``, ``reward`` (r_RM), ``measure`` (the timed reward): [N, |Y|]; ``gamma``, ``lam``: scalar or
    [N]. The batch is solved in chunks of exactly :data:`BUCKET` rows, the last one padded with trivially
    unreachable rows (zero reward, decided ``inf`` at t = 0), so every call with the same |Y|
    reuses one compiled solver. Returns (t [N], status [N]) as numpy arrays.
    """
    import rmtheory as rt

    logits, reward, measure = (np.asarray(a, np.float64) for a in (logits, reward, measure))
    n, ny = logits.shape
    gamma = np.broadcast_to(np.asarray(gamma, np.float64), (n,))
    lam = np.broadcast_to(np.asarray(lam, np.float64), (n,))
    ts, sts = [], []
    for a in range(0, n, BUCKET):
        sl = slice(a, min(a + BUCKET, n))
        k = sl.stop - sl.start
        pad = BUCKET - k
        z = np.zeros((pad, ny))
        inst = rt.make_instance(np.concatenate([logits[sl], z])[:, None], np.concatenate([reward[sl], z])[:, None],
                                np.concatenate([lam[sl], np.zeros(pad)]))
        res = rt.time_to_gamma(inst, np.concatenate([gamma[sl], np.full(pad, 0.5)])[:, None],
                               measure=np.concatenate([measure[sl], z])[:, None], t_max=t_max)
        ts.append(np.asarray(res.t)[:k, 0])
        sts.append(np.asarray(res.status)[:k, 0])
    return np.concatenate(ts), np.concatenate(sts)


def embed(logits, reward, measure, n_outputs: int = N_OUTPUTS, pad_logit: float = -60.0):
    """Embed instances with |Y| < ``n_outputs`` into ``n_outputs`` outputs: the extra outputs get logit
    ``pad_logit`` (initial mass ≈ e^{-60} ≈ 1e-26, so the flow, the variance and t_γ change by ~1e-26
    relative) and copy the *last* output's rewards. The result is a valid ``n_outputs`` instance in its own
    right."""
    logits, reward, measure = (np.asarray(a, np.float64) for a in (logits, reward, measure))
    k = n_outputs - logits.shape[-1]
    if k <= 0:
        return logits, reward, measure
    rep = lambda a: np.repeat(a[..., -1:], k, axis=-1)  # noqa: E731
    return (np.concatenate([logits, np.full(logits.shape[:-1] + (k,), pad_logit)], -1),
            np.concatenate([reward, rep(reward)], -1), np.concatenate([measure, rep(measure)], -1))


def caption(fig, text: str, y: float = -0.01, fontsize: float = 7.5):
    """A wrapped caption under the axes (saved thanks to bbox_inches='tight')."""
    import textwrap

    width = int(fig.get_figwidth() * 17)
    fig.text(0.01, y, "\n".join(textwrap.fill(p, width) for p in text.split("\n")), ha="left", va="top",
             fontsize=fontsize, color="0.2")
