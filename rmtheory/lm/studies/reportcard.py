"""Does the report card predict the teacher? (``rmtheory lm reportcard``)

Pools every (initial policy, reward model) cell of a grid run and every checkpoint of a paradox run. For
each cell the predictors come from running the ``rmtheory evaluate`` command itself (``python -m
rmtheory.evaluate FILE --off-policy PAIRS --json``) on the files the runs exported (the initial policy's
samples scored by every RM), not from an internal shortcut, so the tool users run is the one validated.
Each predictor — Var, on-policy accuracy, off-policy accuracy, On&Off, Var&Acc, (Var+On)/2 and the
Proposition 3 lower bound on t_γ, and the teaching rates rate_G and rate_self (``evaluate --sketches`` on the exported
exact score-vector Gram matrices; absent for runs made before they were exported) — is correlated (Pearson,
Spearman; 95 % bootstrap CIs over cells) with the realised one-epoch RLOO proxy and GT increase (mean over seeds).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from ... import io
from ..._stats import corr_with_ci, pearson, spearman
from ..measure import MEASURES, fmt
from ..rundir import publish, relative_run_dir
from . import common
from .grid import POLICIES

PREDICTORS = MEASURES + ("Prop. 3 bound", "rate_G", "rate_self")
TARGETS = ("proxy", "gt")


def run_evaluate(rewards: str, off_policy: str, sketches: str | None = None) -> dict:
    """``rmtheory evaluate REWARDS --off-policy PAIRS [--sketches S] --json --bootstrap 0`` in a subprocess →
    {model: row}; ``--sketches`` is ``sketches``, else the export's ``<stem>_sketches.npz`` when it exists."""
    cmd = [sys.executable, "-m", "rmtheory.evaluate", rewards, "--off-policy", off_policy, "--json", "--bootstrap", "0",
           "--exclude-ground-truth"]
    sketches = rewards[:-4] + "_sketches.npz" if sketches is None else sketches
    if os.path.exists(sketches):
        cmd += ["--sketches", sketches]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr.strip()}")
    return {m["name"]: m for m in json.loads(out.stdout)["models"]}


def predictors(row: dict) -> dict:
    """The :data:`PREDICTORS` of one model's row of ``rmtheory evaluate --json``: the RM measures as evaluate
    computed them, and the Proposition 3 lower bound on t_γ."""
    values = (row["var"], row["acc_on"], row["acc_off"], row["on_off"], row["var_acc"],
              0.5 * (row["var"] + row["acc_on"]), row["t_gamma_lower_bound"])
    # the per-prompt rates, as registered for these studies (a gram_factor file gives no pooled rate)
    rates = {"rate_G": row["rate_g_within"], "rate_self": row["rate_self_within"]} if "rate_g_within" in row else {}
    return {**dict(zip(PREDICTORS, values)), **rates}


def _one_epoch(results: dict, key_fn) -> dict:
    """{cell key: (proxy, gt) one-epoch increase, mean over seeds} from an RL results.json."""
    px, gt = np.asarray(results["proxy_increase"])[1], np.asarray(results["gt_increase"])[1]
    cells: dict = {}
    for i, r in enumerate(results["runs"]):
        cells.setdefault(key_fn(r), []).append(i)
    return {k: (float(px[idx].mean()), float(gt[idx].mean())) for k, idx in cells.items()}


def collect(grid_dir: str | None, paradox_dir: str | None, log=print) -> list:
    """One row per cell: source, policy, model, the predictors and the realised one-epoch increases."""
    rows = []
    if grid_dir:
        res = io.load_json(os.path.join(grid_dir, "rl_rloo", "results.json"))
        real = _one_epoch(res, lambda r: (r["policy"], r["rm"]))
        for p in POLICIES:
            log(f"  rmtheory evaluate {grid_dir}/exports/{p}.csv")
            rep = run_evaluate(os.path.join(grid_dir, "exports", f"{p}.csv"),
                               os.path.join(grid_dir, "exports", "offpolicy.csv"))
            for m, row in rep.items():
                rows.append({"source": "grid", "policy": p, "model": m, **predictors(row),
                             "proxy": real[(p, m)][0], "gt": real[(p, m)][1]})
    if paradox_dir:
        res = io.load_json(os.path.join(paradox_dir, "rl_paradox", "results.json"))
        real = _one_epoch(res, lambda r: r["ckpt"])
        log(f"  rmtheory evaluate {paradox_dir}/exports/sft.csv")
        rep = run_evaluate(os.path.join(paradox_dir, "exports", "sft.csv"),
                           os.path.join(paradox_dir, "exports", "offpolicy.csv"))
        for m, row in rep.items():
            rows.append({"source": "paradox", "policy": "sft", "model": m, **predictors(row),
                         "proxy": real[m][0], "gt": real[m][1]})
    return rows


def present(rows: list) -> list:
    """The :data:`PREDICTORS` every cell has (the rates only when every export had its sketch file)."""
    return [p for p in PREDICTORS if all(p in r for r in rows)]


def correlations(rows: list, n_boot: int = 2000) -> dict:
    """{predictor: {target: {"pearson": {r, ci, n}, "spearman": {...}}}} over the pooled cells."""
    out = {}
    for p in present(rows):
        x = np.array([r[p] for r in rows], np.float64)
        out[p] = {}
        for t in TARGETS:
            y = np.array([r[t] for r in rows], np.float64)
            out[p][t] = {"pearson": corr_with_ci(pearson, x, y, n_boot),
                         "spearman": corr_with_ci(spearman, x, y, n_boot)}
    return out


def analyze(grid_dir: str | None, paradox_dir: str | None, out: str, figures_dir: str | None = None, log=print):
    rows = collect(grid_dir, paradox_dir, log)
    if len(rows) < 3:
        raise ValueError(f"need at least 3 cells; got {len(rows)}")
    corr = correlations(rows)
    os.makedirs(out, exist_ok=True)
    cols = ["source", "policy", "model", *present(rows), *TARGETS]
    io.save_csv(os.path.join(out, "reportcard_cells.csv"), cols, [[r[c] for c in cols] for r in rows])
    runs = {k: relative_run_dir(d) for k, d in (("grid", grid_dir), ("paradox", paradox_dir)) if d}
    summary = {"n_cells": len(rows), **{k: d for k, d in runs.items() if d}, "correlations": corr, "cells": rows}
    io.save_json(os.path.join(out, "lm_reportcard.json"), summary)
    md = _markdown(rows, corr)
    io.save_text(os.path.join(out, "lm_reportcard.md"), md)
    _plot(os.path.join(out, "lm_reportcard.png"), rows, corr)
    publish(out, ("lm_reportcard.md", "lm_reportcard.json", "lm_reportcard.png"), figures_dir)
    log(md)
    return summary


def _markdown(rows, corr):
    n_grid = sum(r["source"] == "grid" for r in rows)
    def f(c):
        return fmt(c["r"], "{:+.3f}") + ("" if c["r"] is None else f" [{c['ci'][0]:+.2f}, {c['ci'][1]:+.2f}]")

    L = ["# Does the report card predict the teacher?", "",
         f"{len(rows)} cells ({n_grid} grid (policy, RM) cells, {len(rows) - n_grid} paradox checkpoints). Predictors "
         "from `rmtheory evaluate --json` on the exported initial-policy samples; realised: one-epoch RLOO increase, "
         "mean over seeds. Correlation [95 % bootstrap CI over cells].", "",
         "| predictor | proxy Pearson | proxy Spearman | GT Pearson | GT Spearman |", "|---|---|---|---|---|"]
    for p, c in corr.items():
        L.append(f"| {p} | {f(c['proxy']['pearson'])} | {f(c['proxy']['spearman'])} | {f(c['gt']['pearson'])} | "
                 f"{f(c['gt']['spearman'])} |")
    L.append("")
    for t in TARGETS:
        ok = {p: c[t]["spearman"] for p, c in corr.items() if c[t]["spearman"]["r"] is not None}
        if not ok:
            continue
        best = max(ok, key=lambda p: abs(ok[p]["r"]))
        s = ok[best]
        excl = s["ci"][0] > 0 or s["ci"][1] < 0
        L.append(f"- {t}: the strongest rank predictor is {best} (Spearman {s['r']:+.3f}, CI [{s['ci'][0]:+.2f}, "
                 f"{s['ci'][1]:+.2f}], {'excludes' if excl else 'includes'} 0).")
    return "\n".join(L) + "\n"


def _plot(path, rows, corr):
    common.scatter_grid(path, rows, TARGETS, list(corr), lambda t, p: corr[p][t]["spearman"]["r"], "source",
                        (("grid", "o"), ("paradox", "^")), lambda t: f"realised one-epoch {t} increase")
