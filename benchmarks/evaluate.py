"""Benchmark ``rmtheory evaluate``: load + evaluate a seeded 1,000,000-row rewards CSV (benchmark, not a test).

The file has the LM pipeline's format (prompt_id, sample_id, rm_100 … rm_0, perfect_lowvar, ground_truth;
100,000 prompts × 10 samples) plus an off-policy pairs file. Usage::

    python benchmarks/evaluate.py [--rows 1000000] [--k 10] [--bootstrap 1000] [--dir /tmp/rmtheory_bench]

Pin to 2 cores with ``taskset -c 0,1`` to reproduce the target (≤ 10 s for 1M rows).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from _machine import cpus_line  # benchmarks/_machine.py (this script's directory is on sys.path)

MODELS = ["rm_100", "rm_75", "rm_50", "rm_25", "rm_0", "perfect_lowvar"]


def generate(directory, rows, k, seed=0):
    os.makedirs(directory, exist_ok=True)
    rew, off = os.path.join(directory, f"rewards_{rows}_{k}.csv"), os.path.join(directory, f"offpolicy_{rows}_{k}.csv")
    if os.path.exists(rew) and os.path.exists(off):
        return rew, off
    rng = np.random.default_rng(seed)
    p = rows // k
    gt = rng.normal(size=(p, k))
    cols = [gt * f / 100 + rng.normal(size=(p, k)) * (1.1 - f / 100) for f in (100, 75, 50, 25, 0)]
    cols.append(gt * np.where(rng.random(p) < 0.5, 1e-3, 1.0)[:, None])
    cols.append(gt)
    pid = np.repeat(np.char.add("prompt_", np.arange(p).astype(str)), k)
    sid = np.tile(np.arange(k).astype(str), p)
    body = np.column_stack([pid, sid] + [np.char.mod("%.17g", c.ravel()) for c in cols])
    with open(rew, "w") as f:
        f.write(",".join(["prompt_id", "sample_id", *MODELS, "ground_truth"]) + "\n")
        np.savetxt(f, body, fmt="%s", delimiter=",")
    pairs = np.column_stack([np.char.add("prompt_", np.arange(p).astype(str))]
                            + [np.char.mod("%.17g", rng.normal(size=p)) for _ in range(2 * (len(MODELS) + 1))])
    with open(off, "w") as f:
        pair_cols = [f"{m}.{s}" for m in MODELS + ["ground_truth"] for s in ("chosen", "rejected")]
        f.write(",".join(["prompt_id"] + pair_cols) + "\n")
        np.savetxt(f, pairs, fmt="%s", delimiter=",")
    return rew, off


def baseline(path, n_prompts):
    """A straightforward reader + per-prompt loop (csv module, numpy per prompt) on the first ``n_prompts``
    prompts: global z-score, unbiased per-prompt variance and all-pairs on-policy accuracy per model."""
    import csv
    from itertools import combinations

    t0 = time.perf_counter()
    with open(path) as f:
        r = csv.reader(f)
        hdr = next(r)
        groups = {}
        for row in r:
            groups.setdefault(row[0], []).append([float(v) for v in row[2:]])
            if len(groups) > n_prompts:
                groups.popitem()
                break
    arr = [np.asarray(v) for v in groups.values()]
    allv = np.concatenate(arr)
    mu, sd = allv.mean(0), allv.std(0)
    out = {}
    for j, m in enumerate(hdr[2:-1]):
        var, acc = [], []
        for a in arr:
            z = (a[:, j] - mu[j]) / sd[j]
            var.append(np.var(z, ddof=1))
            gt = a[:, -1]
            acc.append(np.mean([np.sign(z[i1] - z[i2]) == np.sign(gt[i1] - gt[i2])
                                for i1, i2 in combinations(range(len(z)), 2)]))
        out[m] = (float(np.mean(var)), float(np.mean(acc)))
    return out, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--off-policy", action="store_true", help="also evaluate the off-policy pairs file")
    ap.add_argument("--dir", default="/tmp/rmtheory_bench")
    args = ap.parse_args()
    t = time.perf_counter()
    rew, off = generate(args.dir, args.rows, args.k)
    print(f"data: {rew} ({os.path.getsize(rew) / 1e6:.0f} MB; generated/found in {time.perf_counter() - t:.1f} s)")
    t = time.perf_counter()
    import rmtheory
    from rmtheory.evaluate import evaluate   # import (JAX) timed separately

    rmtheory.enable_x64()  # the report card computes in float64
    t_import = time.perf_counter() - t
    t = time.perf_counter()
    report = evaluate(rew, off_policy=off if args.off_policy else None, bootstrap=args.bootstrap, seed=0)
    secs = time.perf_counter() - t
    tm = report.meta["timings_s"]
    print(f"import rmtheory: {t_import:.2f} s")
    print(f"load + evaluate ({args.bootstrap} bootstrap resamples): {secs:.2f} s  "
          f"({report.meta['n_rows'] / secs:,.0f} rows/s)")
    print("  breakdown: " + ", ".join(f"{k} {v:.2f} s" for k, v in tm.items()))
    n_base = min(5000, report.meta["n_rows"] // args.k)
    base, t_base = baseline(rew, n_base)
    t_base_all = t_base * (args.rows // args.k) / n_base
    print(f"baseline (csv module + per-prompt numpy loop, no bootstrap): {t_base:.2f} s on {n_base} prompts, "
          f"scaled to {args.rows // args.k}: {t_base_all:.1f} s; rmtheory evaluate incl. bootstrap is "
          f"{t_base_all / secs:.1f}x faster")
    if cpus_line():
        print("  " + cpus_line())


if __name__ == "__main__":
    main()
