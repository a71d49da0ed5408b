"""Shared helpers for the figure scripts in ``experiments/`` (argument parsing, atomic writes, fits).

Every figure script exposes ``run(quick, seed, out) -> dict`` (the data it plotted) and ``main(argv=None)``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time

import numpy as np


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


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.titlesize": 10, "legend.fontsize": 8, "figure.dpi": 110})
    return plt


def _atomic(path: str, write) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    root, ext = os.path.splitext(path)
    tmp = f"{root}.tmp{os.getpid()}{ext}"
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def save_figure(fig, out: str, name: str) -> str:
    """Write ``fig`` to ``out/name`` atomically (tmp file + os.replace) and close it."""
    import matplotlib.pyplot as plt

    path = _atomic(os.path.join(out, name), lambda p: fig.savefig(p, dpi=130, bbox_inches="tight"))
    plt.close(fig)
    print(f"wrote {path}")
    return path


def _clean(x):
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, np.ndarray):
        return _clean(x.tolist())
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return x if np.isfinite(x) else ("inf" if x > 0 else ("-inf" if x < 0 else "nan"))
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def save_json(obj, out: str, name: str) -> str:
    """JSON with non-finite floats written as the strings "inf"/"-inf"/"nan" (strict JSON)."""
    path = _atomic(os.path.join(out, name),
                   lambda p: open(p, "w").write(json.dumps(_clean(obj), indent=2, allow_nan=False) + "\n"))
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

    path = _atomic(os.path.join(out, name), write)
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
