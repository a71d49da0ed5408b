"""Exploratory re-analysis of the 80 cells of ``paper_claims.md`` §9 with the pooled and optimiser-geometry rates.

Exploratory: made after §9's results were known (``paper_claims.md`` §9, "Exploratory re-analysis"). The
predictors need the initial policies' exact per-sample gradients, which §9 did not keep, so the script first
rebuilds the cells' *inputs* (no RL): the grid's, paradox's and prediction study's stages up to their
evaluation exports, from the ``small`` config with the studies' default settings, in ``--runs`` (resumable,
stage by stage). The pipeline is deterministic, so these are §9's policies, samples and reward models; the
script checks it by comparing the recomputed per-prompt rate and Var of every cell with the committed
``figures/lm_predict_cells.csv``. The outcomes are the committed ones (that file's RL columns).

Then, over the 80 cells: Spearman (95 % bootstrap CI over cells, 10,000 resamples, seed 0) of the pooled rate
rate_G, the Adam-geometry rate rate_adam, the sign rate rate_sign and the per-prompt rate rate_G_within (from
``exports/*_rates.json``) and of §9's accuracy columns with §9's outcomes; paired CIs of the differences against
On, Off, On&Off, Var&Acc and rate_G_within; and the mean within-policy Spearman over 5 groups of cells (the 4
initial policies over their 15 RMs each, grid and new; and the paradox's 20 checkpoints under ``sft`` as a fifth
group), with 1,000 bootstrap resamples of the cells within each group (the same draws for every predictor, so
the differences are paired). Writes ``figures/lm_reanalysis.{json,md}``.

    python experiments/reanalysis_80.py [--runs runs/reanalysis] [--stage exports|analyze|all]
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import sys

import numpy as np

BASE_FILES = ("data.npz", "sft.eqx", "sft_log.json", "samples.npz")
RATES = ("rate_G", "rate_adam", "rate_sign", "rate_G_within")
ACCS = ("On", "Off", "On&Off", "Var&Acc")
OUTCOMES = {"P1 (SGD, one epoch, test GT)": "sgd_1.test_gt", "P2 (Adam, one epoch, test GT)": "adam_1.test_gt",
            "Adam, final (2 epochs), test GT": "adam_final.test_gt"}
KEYS = {"rate_G": "rate_g", "rate_adam": "rate_adam", "rate_sign": "rate_sign", "rate_G_within": "rate_g_within"}


def exports(runs: str, log=print) -> None:
    from rmtheory.lm.config import get_config
    from rmtheory.lm.loop import run_stages
    from rmtheory.lm.rundir import RunDir
    from rmtheory.lm.studies import common, grid, paradox, predict

    cfg = get_config("small")
    g_dir, p_dir, n_dir = (os.path.join(runs, s) for s in ("grid", "paradox", "predict"))
    grid.run(cfg, grid.GridSettings(), g_dir, log=log, until="rm_eval")
    os.makedirs(p_dir, exist_ok=True)
    for f in BASE_FILES:   # the same base stages (deterministic): copied, not recomputed
        if not os.path.exists(os.path.join(p_dir, f)):
            shutil.copyfile(os.path.join(g_dir, f), os.path.join(p_dir, f))
    paradox.run(cfg, paradox.ParadoxSettings(), p_dir, log=log, until="rm_eval")
    rd = RunDir(n_dir)
    st = predict.PredictSettings()
    common.start(rd, cfg, "predict", st)
    run_stages({"import": lambda: predict.stage_import(cfg, g_dir, rd, log),
                "rms": lambda: predict.stage_rms(cfg, st, rd, log),
                "rm_eval": lambda: predict.stage_rm_eval(cfg, st, rd, log)}, predict.MARKER, rd, log)


def _rates(path):
    from rmtheory import io

    return io.load_json(path)["sources"]


def cells(runs: str, committed: str) -> list:
    with open(committed) as f:
        rows = list(csv.DictReader(f))
    src = {"grid": "grid", "new": "predict", "paradox": "paradox"}
    cache, out = {}, []
    for r in rows:
        stem = "sft" if r["family"] == "paradox" else r["policy"]
        path = os.path.join(runs, src[r["family"]], "exports", f"{stem}_rates.json")
        rates = cache.setdefault(path, _rates(path))[r["model"]]
        row = {k: float(v) for k, v in r.items() if k not in ("family", "policy", "model")}
        row.update(family=r["family"], policy=r["policy"], model=r["model"])
        row.update({k: rates[v] for k, v in KEYS.items()})
        row["check_rate_G_within"] = float(r["rate_G"])
        out.append(row)
    return out


def _within(x, y, groups, rng, n_boot):
    """Mean over groups of the Spearman over each group's cells, and its bootstrap (cells resampled within each
    group; the same draws for every predictor through ``rng``'s state being reset by the caller)."""
    from rmtheory._stats import spearman

    vals = [spearman(x[g], y[g]) for g in groups]
    boots = np.empty(n_boot)
    for b in range(n_boot):
        s = []
        for g in groups:
            i = g[rng.integers(0, len(g), len(g))]
            if np.ptp(x[i]) > 0 and np.ptp(y[i]) > 0:
                s.append(spearman(x[i], y[i]))
        boots[b] = np.mean(s) if s else np.nan
    return float(np.mean(vals)), boots


def analyze(runs: str, committed: str, out_dir: str, n_boot: int = 10000) -> dict:
    from rmtheory import io
    from rmtheory._stats import corr_with_ci, paired_spearman_diff, spearman

    rows = cells(runs, committed)
    check = max(abs(r["rate_G_within"] - r["check_rate_G_within"]) / max(abs(r["check_rate_G_within"]), 1e-12)
                for r in rows)
    col = {k: np.array([r[k] for r in rows]) for k in RATES + ACCS + tuple(OUTCOMES.values())}
    pol = np.array([f"{r['family'] == 'paradox' and 'paradox' or r['policy']}" for r in rows])
    groups = [np.flatnonzero(pol == p) for p in sorted(set(pol))]
    res = {"n_cells": len(rows), "max_rel_diff_rate_G_within_vs_committed": check, "outcomes": {}}
    preds = RATES + ACCS
    for label, key in OUTCOMES.items():
        y = col[key]
        o = {"spearman": {}, "paired": {}, "within": {}, "within_paired": {}}
        for p in preds:
            o["spearman"][p] = corr_with_ci(spearman, col[p], y, n_boot=n_boot, seed=0)
        for a in ("rate_G", "rate_adam", "rate_sign"):
            for b in ACCS + ("rate_G_within",):
                o["paired"][f"{a} - {b}"] = paired_spearman_diff(col[a], col[b], y, n_boot=n_boot, seed=0)
        boots = {}
        for p in preds:
            m, bs = _within(col[p], y, groups, np.random.default_rng(0), n_boot // 10)
            boots[p] = bs
            o["within"][p] = [m, *np.nanquantile(bs, [0.025, 0.975]).tolist()]
        for a in ("rate_G", "rate_adam", "rate_sign"):
            for b in ACCS + ("rate_G_within",):
                lo, hi = np.nanquantile(boots[a] - boots[b], [0.025, 0.975]).tolist()
                verdict = "beats" if lo > 0 else "loses" if hi < 0 else "not distinguishable"
                o["within_paired"][f"{a} - {b}"] = {"diff": o["within"][a][0] - o["within"][b][0], "ci": [lo, hi],
                                                    "verdict": verdict}
        res["outcomes"][label] = o
    os.makedirs(out_dir, exist_ok=True)
    io.save_json(os.path.join(out_dir, "lm_reanalysis.json"), res)
    io.save_text(os.path.join(out_dir, "lm_reanalysis.md"), markdown(res))
    return res


def _fmt(c):
    if isinstance(c, dict):
        v, ci = c.get("r", c.get("diff")), c["ci"]
        if v is None or ci[0] is None:
            return "—"
        return f"{v:+.3f} [{ci[0]:+.2f}, {ci[1]:+.2f}]" + (f" {c['verdict']}" if "verdict" in c else "")
    return f"{c[0]:+.3f} [{c[1]:+.2f}, {c[2]:+.2f}]"


def markdown(res) -> str:
    lines = ["# Exploratory re-analysis of §9's 80 cells with the pooled and optimiser-geometry rates", "",
             f"{res['n_cells']} cells; recomputed per-prompt rate vs the committed one: max relative difference "
             f"{res['max_rel_diff_rate_G_within_vs_committed']:.2g}.", ""]
    for label, o in res["outcomes"].items():
        head = "| predictor | Spearman over cells [95 % CI] | within-policy mean Spearman [95 % CI] |"
        lines += [f"## {label}", "", head, "|---|---|---|"]
        lines += [f"| {p} | {_fmt(o['spearman'][p])} | {_fmt(o['within'][p])} |" for p in o["spearman"]]
        lines += ["", "| difference | over cells [95 % paired CI] | within policy [95 % paired CI] |", "|---|---|---|"]
        lines += [f"| {k} | {_fmt(v)} | {_fmt(o['within_paired'][k])} |" for k, v in o["paired"].items()]
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="runs/reanalysis")
    ap.add_argument("--stage", choices=("exports", "analyze", "all"), default="all")
    ap.add_argument("--committed", default="figures/lm_predict_cells.csv")
    ap.add_argument("--out", default="figures")
    args = ap.parse_args(argv)
    import rmtheory

    rmtheory.enable_x64()
    rmtheory.enable_compilation_cache()
    if args.stage in ("exports", "all"):
        exports(args.runs)
    if args.stage in ("analyze", "all"):
        print(markdown(analyze(args.runs, args.committed, args.out)))


if __name__ == "__main__":
    sys.exit(main())
