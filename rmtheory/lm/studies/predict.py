"""Which report-card column predicts the teacher? The pre-registered study (``rmtheory lm predict``).

Design, outcomes and decision rules: ``paper_claims.md`` §9 (committed before any run). This module runs it on a
finished grid run and a finished paradox run of the same base config:

* ``import`` — the grid's base files and initial policies (the new cells use the same policies and samples);
* ``rms`` — the 10 new reward models (:data:`NEW_RMS`), trained like the grid's (``sft``'s RM pairs, one stacked
  run, the same steps and batch order), differing only in their data or targets; the two ``_q`` models are the
  snapshots nearest a quarter of the steps;
* ``rm_eval`` — every grid policy's eval samples (the grid's, by the same key) scored by the new RMs, exported in
  the ``rmtheory evaluate`` format with the exact score-vector Gram sketches, and their normalisation;
* ``sgd_lr`` — the SGD learning rate, chosen on r_G alone (3 seeds from ``sft``, one epoch) before any RM run;
* ``rl_adam`` — RLOO with Adam on the 40 new cells (``epochs`` × seeds), like the grid's cells;
* ``rl_sgd`` — RLOO with SGD, one epoch × seeds, on all cells: the grid's 20, the paradox's 20, the new 40;
* ``analyze`` — the predictors from ``rmtheory evaluate --sketches`` on every cell's exports, the outcomes, the
  correlations with bootstrap CIs and the paired differences, and the verdicts of the registered rules.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from ... import io
from ..._rm_eval import normalisation_stats
from ..._stats import corr_with_ci, paired_spearman_diff, pearson, spearman
from .. import task as T
from ..config import Config
from ..loop import run_stages
from ..measure import (
    curve_set,
    ground_truth,
    increases,
    mean_token_logprob,
    rm_pairs,
)
from ..reward_model import Objective, train_rms
from ..rl import ground_truth_consts, stacked_rl
from ..rloo import Scaled
from ..rundir import RunDir, publish, relative_run_dir
from ..stacking import stack, unstack
from . import common, grid
from ._predict_report import markdown as _markdown, plot as _plot
from .reportcard import predictors, run_evaluate

NEW_RMS = ("bt_on_q", "bt_off_q", "bt_noisy_30", "bt_noisy_45", "bt_length_x3", "reg_gt", "reg_gt_small",
           "reg_noise", "reg_hard_flip", "reg_rare")
PREDICTORS = ("Var", "On", "Off", "On&Off", "Var&Acc", "(Var+On)/2", "Prop. 3 bound", "rate_G", "rate_self")
# the registered paired comparisons: (outcome kind, first, second)
PAIRED = (("gt", "rate_G", "Var&Acc"), ("gt", "rate_G", "On"), ("gt", "rate_G", "(Var+On)/2"),
          ("proxy", "rate_self", "Var"))
EXPECTED_SIGN = {p: -1 if p == "Prop. 3 bound" else 1 for p in PREDICTORS}


@dataclass(frozen=True)
class PredictSettings:
    quarter: float = 0.25            # the _q models: the snapshot nearest this fraction of the RM steps
    noisy: tuple = (0.3, 0.45)       # label-swap fractions of bt_noisy_30, bt_noisy_45
    length_bonus: float = 0.9        # bt_length_x3: three times the grid's 0.3
    reg_small: float = 0.2           # reg_gt_small's scale
    reg_noise_sd: float = 0.5        # reg_noise's fixed per-response noise
    rare_factor: float = 5.0         # reg_rare: r_G × this on responses below the median SFT log-prob
    epochs: int = 2
    seeds: tuple = (0, 1, 2)
    # registered as (0.03, 0.1, 0.3, 1, 3); every one of those lowered r_G, so the grid was extended downward
    # (paper_claims.md §9, "Changes after registration"), the rule unchanged
    sgd_lrs: tuple = (1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
    data_seed: int = 91              # the label swaps and the regression noise
    n_boot: int = 10000

    def __post_init__(self):
        if not 0 < self.quarter < 1:
            raise ValueError(f"quarter must be in (0, 1); got {self.quarter}")
        if len(self.noisy) != 2 or not all(0 <= v < 0.5 for v in self.noisy):
            raise ValueError(f"noisy must be two fractions in [0, 0.5); got {list(self.noisy)}")
        if self.epochs < 1 or len(self.seeds) < 1 or len(set(self.seeds)) != len(self.seeds):
            raise ValueError("epochs must be >= 1 and seeds distinct")
        if not self.sgd_lrs or not all(v > 0 for v in self.sgd_lrs):
            raise ValueError(f"sgd_lrs must be positive; got {list(self.sgd_lrs)}")
        if self.n_boot < 100:
            raise ValueError(f"n_boot must be >= 100; got {self.n_boot}")


QUICK = PredictSettings(epochs=1, seeds=(0,), sgd_lrs=(0.1, 1.0), n_boot=200)
IMPORTED = ("data.npz", "sft.eqx", "sft_log.json", "samples.npz", "policies.eqx")
MARKER = {"import": "policies.eqx", "rms": "predict_rms.eqx", "rm_eval": "predict_eval.json",
          "sgd_lr": "sgd_lr.json", "rl_adam": "rl_adam/results.json", "rl_sgd": "rl_sgd/results.json",
          "analyze": None}


# -------------------------------------------------------------------------------------------- import
def stage_import(cfg: Config, grid_dir: str, run: RunDir, log=print):
    """Copy the grid's base files and initial policies (its config must be this run's)."""
    RunDir(grid_dir).check_config(cfg)
    for f in IMPORTED:  # policies.eqx last: it is the stage's marker
        shutil.copyfile(os.path.join(grid_dir, f), run.path(f + ".tmp"))
        os.replace(run.path(f + ".tmp"), run.path(f))
    log(f"  imported {', '.join(IMPORTED)} from {grid_dir}")


# ----------------------------------------------------------------------------------------------- rms
def rm_training_data(cfg: Config, st: PredictSettings, run: RunDir):
    """chosen/rejected [10, N, T] and the :class:`Objective` of :data:`NEW_RMS` (in that order)."""
    d, smp = run.data(), run.load_npz("samples.npz")
    pairs = rm_pairs(run, d, smp)
    p, n = pairs.prompts, pairs.prompts.n
    on_c, on_r, off_c, off_r = pairs.on_chosen, pairs.on_rejected, pairs.off_chosen, pairs.off_rejected
    full = pairs.full
    rng = np.random.default_rng(st.data_seed)
    order = rng.permutation(n)

    def swapped(frac):
        flip = np.zeros(n, bool)
        flip[order[: int(round(frac * n))]] = True
        return np.where(flip[:, None], on_r, on_c), np.where(flip[:, None], on_c, on_r)

    n30_c, n30_r = swapped(st.noisy[0])
    n45_c, n45_r = swapped(st.noisy[1])
    g_c, g_r = ground_truth(cfg, p, on_c), ground_truth(cfg, p, on_r)
    len_c = np.asarray(T.response_length(jnp.asarray(on_c)), np.float64)
    len_r = np.asarray(T.response_length(jnp.asarray(on_r)), np.float64)
    swap = g_r + st.length_bonus * len_r > g_c + st.length_bonus * len_c
    lc, lr = np.where(swap[:, None], on_r, on_c), np.where(swap[:, None], on_c, on_r)
    noise = rng.normal(0.0, st.reg_noise_sd, (2, n))
    hard = np.asarray(p.hard(cfg.task, cfg.teacher.hard_fraction))
    sign = np.where(hard, -1.0, 1.0)
    pol = run.policy(cfg)
    lp_c = mean_token_logprob(pol, full(on_c), cfg.task.prompt_len)
    lp_r = mean_token_logprob(pol, full(on_r), cfg.task.prompt_len)
    median = np.median(np.concatenate([lp_c, lp_r]))
    rare_c = np.where(lp_c < median, st.rare_factor, 1.0)
    rare_r = np.where(lp_r < median, st.rare_factor, 1.0)
    bt = [(on_c, on_r), (off_c, off_r), (n30_c, n30_r), (n45_c, n45_r), (lc, lr)]
    reg_targets = [(g_c, g_r), (st.reg_small * g_c, st.reg_small * g_r), (g_c + noise[0], g_r + noise[1]),
                   (sign * g_c, sign * g_r), (rare_c * g_c, rare_r * g_r)]
    chosen = np.stack([full(c) for c, _ in bt] + [full(on_c)] * len(reg_targets))
    rejected = np.stack([full(r) for _, r in bt] + [full(on_r)] * len(reg_targets))
    t_c, t_r = np.zeros((len(NEW_RMS), n)), np.zeros((len(NEW_RMS), n))
    for i, (a, b) in enumerate(reg_targets, start=len(bt)):
        t_c[i], t_r[i] = a, b
    n_bt = len(bt)
    obj = Objective(w_bt=np.array([1.0] * n_bt + [0.0] * len(reg_targets), np.float32),
                    w_reg=np.array([0.0] * n_bt + [1.0] * len(reg_targets), np.float32), t_chosen=t_c, t_rejected=t_r)
    info = {"n_pairs": int(n), "swapped_30": int(round(st.noisy[0] * n)), "swapped_45": int(round(st.noisy[1] * n)),
            "length_judge_swapped": int(swap.sum()), "hard_fraction": float(hard.mean()),
            "rare_fraction": float(np.mean(np.concatenate([lp_c, lp_r]) < median))}
    return chosen, rejected, obj, info


def stage_rms(cfg: Config, st: PredictSettings, run: RunDir, log=print):
    chosen, rejected, obj, info = rm_training_data(cfg, st, run)
    d, smp, pol = run.data(), run.load_npz("samples.npz"), run.policy(cfg)
    snaps = []
    rms, losses, _ = train_rms(cfg, pol, chosen, rejected, curve_set(cfg, run, d, smp), log, objective=obj,
                               on_chunk=lambda step, m: snaps.append((step, m)))
    total = int(losses.shape[0])
    step_q, snap_q = min(snaps, key=lambda s: abs(s[0] - st.quarter * total))
    quarter = jnp.asarray([NEW_RMS.index("bt_on_q"), NEW_RMS.index("bt_off_q")])
    rms = jax.tree_util.tree_map(lambda a, q: a.at[quarter].set(q[quarter]), rms, snap_q)
    run.save_json("predict_rm_log.json", {**info, "steps": total, "quarter_step": int(step_q), "rms": list(NEW_RMS)})
    run.save_tree("predict_rms.eqx", rms)


def load_rms(cfg: Config, run: RunDir):
    return run.rms(cfg, "predict_rms.eqx", len(NEW_RMS))


# ------------------------------------------------------------------------------------------- rm_eval
def stage_rm_eval(cfg: Config, st: PredictSettings, run: RunDir, log=print):
    """Like the grid's evaluation, for the new RMs (the same samples: the grid's keys)."""
    out = common.evaluate_policies(cfg, run, grid.load_policies(cfg, run), grid.POLICIES, load_rms(cfg, run),
                                   NEW_RMS, log, describe=False)
    run.save_json("predict_eval.json", out)


# -------------------------------------------------------------------------------------------- sgd lr
def r_g_gains(cfg: Config, st: PredictSettings, run: RunDir, lrs, log=print) -> dict:
    """{lr: [one-epoch raw r_G increase on the PG eval prompts per seed]}: RLOO with plain SGD at each ``lr``,
    r_G itself the reward, from ``sft`` (the RMs play no part)."""
    d, smp = run.data(), run.load_npz("samples.npz")
    base = unstack(grid.load_policies(cfg, run), 0)
    mu, sd = normalisation_stats(smp["eval_gt"], "global")
    pg, evsets = Scaled.of(run.prompts("pg", d)), {"pg": Scaled.of(run.prompts("eval", d))}
    R = len(st.seeds)
    rm = stack([unstack(load_rms(cfg, run), 0)] * R)  # weight 0: the reward is r_G
    gains = {}
    for lr in lrs:
        rl = stacked_rl(cfg.replace(algo="rloo"), pg, evsets, (0.0, 1.0), stack([base] * R), rm,
                        ground_truth_consts([[mu, sd]] * R, list(st.seeds)), optimizer="sgd", lr=lr)
        before = np.asarray(rl.evaluate(rl.state[0])["pg"]["gt_raw"])
        pol, _, _ = rl.update(*rl.state, 0)
        g = np.asarray(rl.evaluate(pol)["pg"]["gt_raw"]) - before
        gains[str(lr)] = [float(v) for v in g]
        log(f"  SGD lr {lr}: r_G one-epoch raw increase {np.mean(g):+.4f} (seeds {', '.join(f'{v:+.4f}' for v in g)})")
    return gains


def choose_lr(gains: dict) -> float:
    """The learning rate with the largest mean one-epoch r_G increase (non-finite results excluded)."""
    ok = {lr: np.mean(v) for lr, v in gains.items() if np.all(np.isfinite(v))}
    if not ok:
        raise RuntimeError("every SGD learning rate diverged with r_G as the reward")
    return float(max(ok, key=ok.get))


def stage_sgd_lr(cfg: Config, st: PredictSettings, run: RunDir, log=print):
    """The SGD learning rate: the one of ``sgd_lrs`` with the largest mean one-epoch raw r_G increase on the PG
    eval prompts, r_G itself being the reward, from ``sft`` (the RMs play no part in the choice)."""
    gains = r_g_gains(cfg, st, run, st.sgd_lrs, log)
    best = choose_lr(gains)
    run.save_json("sgd_lr.json", {"lr": best, "gains": gains, "rule": stage_sgd_lr.__doc__.split("\n")[0]})
    log(f"  SGD learning rate {best} (fixed for every cell)")


# ------------------------------------------------------------------------------------------------ rl
def cells(grid_dir: str, paradox_dir: str) -> list:
    """Every cell of the study as (family, policy, model), in a fixed order: grid, paradox, new."""
    pev = io.load_json(os.path.join(paradox_dir, "paradox_eval.json"))
    return ([("grid", p, r) for p in grid.POLICIES for r in grid.RMS]
            + [("paradox", "sft", n) for n in pev["names"]]
            + [("new", p, r) for p in grid.POLICIES for r in NEW_RMS])


def _all_rms(cfg: Config, run: RunDir, grid_dir: str, paradox_dir: str):
    """One stack of every reward model (grid's, paradox checkpoints, new) and {(family, model): index}."""
    g = grid.load_rms(cfg, RunDir(grid_dir))
    names = io.load_json(os.path.join(paradox_dir, "paradox_eval.json"))["names"]
    pk = RunDir(paradox_dir).rms(cfg, "paradox_rms.eqx", len(names))
    new = load_rms(cfg, run)
    allr = jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs) if isinstance(xs[0], jax.Array) else xs[0],
                                  g, pk, new)
    index = {("grid", r): i for i, r in enumerate(grid.RMS)}
    index.update({("paradox", n): len(grid.RMS) + i for i, n in enumerate(names)})
    index.update({("new", r): len(grid.RMS) + len(names) + i for i, r in enumerate(NEW_RMS)})
    return allr, index


def _run_constants(run: RunDir, grid_dir: str, paradox_dir: str):
    """(norm_stats(family, policy, model), gt_sd(family, policy)) from the grid's, the paradox's and this run's
    evaluation files, each read once."""
    gev = io.load_json(os.path.join(grid_dir, "grid_eval.json"))
    pev = io.load_json(os.path.join(paradox_dir, "paradox_eval.json"))
    nev = run.load_json("predict_eval.json")

    def norm_stats(family, policy, model):
        if family == "paradox":
            return pev["norm_stats"][model]
        return (gev if family == "grid" else nev)["norm_stats"][policy][model]

    def gt_sd(family, policy):
        return pev["gt_stats"][1] if family == "paradox" else gev["gt_stats"][policy][1]

    return norm_stats, gt_sd


def stage_rl(cfg: Config, st: PredictSettings, run: RunDir, grid_dir: str, paradox_dir: str, optimizer: str,
             log=print, stop_after_epoch=None):
    """RLOO on the new cells with Adam (``epochs``), or on every cell with SGD (one epoch), × seeds."""
    d = run.data()
    todo = [c for c in cells(grid_dir, paradox_dir) if optimizer == "sgd" or c[0] == "new"]
    runs = [(f, p, m, s) for f, p, m in todo for s in st.seeds]
    allr, index = _all_rms(cfg, run, grid_dir, paradox_dir)
    norm_stats, gt_sd_of = _run_constants(run, grid_dir, paradox_dir)
    pols = grid.load_policies(cfg, run)
    lr = run.load_json("sgd_lr.json")["lr"] if optimizer == "sgd" else None
    sub = f"rl_{optimizer}"
    log(f"  {len(todo)} cells × {len(st.seeds)} seeds, {optimizer}" + (f" lr {lr}" if lr else ""))
    prog = common.rl_sweep(cfg, sub, run, d, pols, [grid.POLICIES.index(p) for _, p, _, _ in runs], allr,
                           [index[(f, m)] for f, _, m, _ in runs],
                           [norm_stats(f, p, m) for f, p, m, _ in runs],
                           [s for *_, s in runs], 1 if optimizer == "sgd" else st.epochs, log, stop_after_epoch,
                           optimizer=optimizer, lr=lr)
    if prog is None:
        return
    gt_sd = [gt_sd_of(f, p) for f, p, _, _ in runs]
    inc, inc_test = increases(prog, gt_sd=gt_sd), increases(prog, "test", gt_sd=gt_sd)
    run.save_json(os.path.join(sub, "results.json"),
                  {"runs": [{"family": f, "policy": p, "model": m, "seed": s} for f, p, m, s in runs],
                   "optimizer": optimizer, "lr": lr if lr else cfg.rl_lr,
                   "proxy_increase": inc["proxy"].tolist(), "gt_increase": inc["gt"].tolist(),
                   "test_proxy_increase": inc_test["proxy"].tolist(), "test_gt_increase": inc_test["gt"].tolist()})


# ------------------------------------------------------------------------------------------- analyze
OUTCOMES = ("adam_1", "adam_final", "sgd_1")
SETS = {"pg": "", "test": "test_"}


def _outcome_means(res: dict, key_fn, epoch: int) -> dict:
    """{cell key: {"<set>_<kind>": seed mean}} at ``epoch`` of a results.json (kinds proxy, gt; sets pg, test)."""
    out: dict = {}
    by: dict = {}
    for i, r in enumerate(res["runs"]):
        by.setdefault(key_fn(r), []).append(i)
    for k, idx in by.items():
        out[k] = {}
        for sname, prefix in SETS.items():
            for kind in ("proxy", "gt"):
                a = np.asarray(res[f"{prefix}{kind}_increase"], np.float64)
                e = min(epoch, a.shape[0] - 1)
                out[k][f"{sname}_{kind}"] = float(np.mean(a[e, idx]))
    return out


def collect(run: RunDir, grid_dir: str, paradox_dir: str, st: PredictSettings, log=print) -> list:
    """One row per cell: family, policy, model, the predictors (``rmtheory evaluate``) and every outcome
    ("<optimizer>_<horizon>.<set>_<kind>")."""
    gres = io.load_json(os.path.join(grid_dir, "rl_rloo", "results.json"))
    pres = io.load_json(os.path.join(paradox_dir, "rl_paradox", "results.json"))
    ares, sres = run.load_json("rl_adam/results.json"), run.load_json("rl_sgd/results.json")
    final = st.epochs
    adam = {}
    for e, tag in ((1, "adam_1"), (final, "adam_final")):
        for k, v in _outcome_means(gres, lambda r: ("grid", r["policy"], r["rm"]), e).items():
            adam.setdefault(k, {}).update({f"{tag}.{n}": x for n, x in v.items()})
        for k, v in _outcome_means(pres, lambda r: ("paradox", "sft", r["ckpt"]), e).items():
            adam.setdefault(k, {}).update({f"{tag}.{n}": x for n, x in v.items()})
        for k, v in _outcome_means(ares, lambda r: (r["family"], r["policy"], r["model"]), e).items():
            adam.setdefault(k, {}).update({f"{tag}.{n}": x for n, x in v.items()})
    for k, v in _outcome_means(sres, lambda r: (r["family"], r["policy"], r["model"]), 1).items():
        adam.setdefault(k, {}).update({f"sgd_1.{n}": x for n, x in v.items()})
    preds = {}
    for fam, d, names in (("grid", grid_dir, grid.POLICIES), ("paradox", paradox_dir, ("sft",)),
                          ("new", run.out, grid.POLICIES)):
        for p in names:
            log(f"  rmtheory evaluate {relative_run_dir(d) or d}/exports/{p}.csv")
            rep = run_evaluate(os.path.join(d, "exports", f"{p}.csv"), os.path.join(d, "exports", "offpolicy.csv"))
            for m, row in rep.items():
                preds[(fam, p, m)] = predictors(row)
    rows = []
    for c in cells(grid_dir, paradox_dir):
        if c not in preds or "rate_G" not in preds[c]:
            raise ValueError(f"cell {c}: no predictors with the teaching rate (was its export made with sketches?)")
        rows.append({"family": c[0], "policy": c[1], "model": c[2], **preds[c], **adam[c]})
    return rows


def outcome_names(rows) -> list:
    """The outcome columns of a cell row ("<optimizer>_<horizon>.<set>_<kind>"), sorted."""
    return sorted(k for k in rows[0] if k.split(".")[0] in OUTCOMES)


def correlations(rows: list, n_boot: int, seed: int = 0) -> dict:
    """{outcome: {"predictors": {predictor: {"spearman", "pearson"} with CIs}, "paired": [the registered paired
    differences for this outcome's kind]} over the pooled cells."""
    out = {}
    for o in outcome_names(rows):
        y = np.array([r[o] for r in rows], np.float64)
        kind = o.rsplit("_", 1)[1]
        rec = {"predictors": {}, "paired": []}
        for p in PREDICTORS:
            x = np.array([r[p] for r in rows], np.float64)
            rec["predictors"][p] = {"spearman": corr_with_ci(spearman, x, y, n_boot, seed),
                                    "pearson": corr_with_ci(pearson, x, y, n_boot, seed)}
        for k, a, b in PAIRED:
            if k != kind:
                continue
            xa = np.array([r[a] for r in rows], np.float64)
            xb = np.array([r[b] for r in rows], np.float64)
            rec["paired"].append({"a": a, "b": b, **paired_spearman_diff(xa, xb, y, n_boot, seed)})
        out[o] = rec
    return out


def verdicts(corr: dict) -> dict:
    """The registered rules (paper_claims.md §9) on P1 = sgd_1.test_gt and P2 = adam_1.test_gt, and the fading
    question (adam_1 vs adam_final for rate_G)."""
    out = {}
    for name, o in (("P1 (SGD)", "sgd_1.test_gt"), ("P2 (Adam)", "adam_1.test_gt")):
        rec = corr[o]
        ranks = {p: c["spearman"] for p, c in rec["predictors"].items()}
        ranks_ok = {p: c["r"] is not None and c["ci"][0] is not None and
                    (c["ci"][0] > 0 if EXPECTED_SIGN[p] > 0 else c["ci"][1] < 0) for p, c in ranks.items()}
        beats = {(d["a"], d["b"]): d["verdict"] for d in rec["paired"]}
        confirmed = all(v == "beats" for (a, _), v in beats.items() if a == "rate_G")
        beaten = {b for (a, b), v in beats.items() if v == "beats"} | {a for (a, b), v in beats.items() if v == "loses"}
        cands = [p for p in ("rate_G", "Var&Acc", "On", "(Var+On)/2") if p not in beaten and ranks[p]["r"] is not None]
        trust = max(cands, key=lambda p: ranks[p]["r"]) if cands else None
        cheaper = [b for (a, b), v in beats.items() if a == "rate_G" and v == "not distinguishable"]
        if trust == "rate_G" and cheaper:
            trust_note = f"rate_G, but not distinguishable from {', '.join(cheaper)} (cheaper: no gradients)"
        else:
            trust_note = trust
        out[name] = {"outcome": o, "ranks_teachers": ranks_ok, "paired": beats, "rate_better_confirmed": confirmed,
                     "trust": trust, "trust_note": trust_note}
    return out


def stage_analyze(cfg: Config, st: PredictSettings, run: RunDir, grid_dir: str, paradox_dir: str, log=print,
                  figures_dir: str | None = None):
    rows = collect(run, grid_dir, paradox_dir, st, log)
    corr = correlations(rows, st.n_boot)
    fade = {}
    for s in SETS:
        y1 = np.array([r[f"adam_1.{s}_gt"] for r in rows])
        yf = np.array([r[f"adam_final.{s}_gt"] for r in rows])
        x = np.array([r["rate_G"] for r in rows])
        fade[s] = paired_spearman_diff(x, x, y1, st.n_boot, 0, y_b=yf)
    ver = verdicts(corr)
    figs = run.path("figures")
    os.makedirs(figs, exist_ok=True)
    cols = ["family", "policy", "model", *PREDICTORS, *outcome_names(rows)]
    io.save_csv(os.path.join(figs, "lm_predict_cells.csv"), cols, [[r[c] for c in cols] for r in rows])
    summary = {"n_cells": len(rows), "families": {f: sum(r["family"] == f for r in rows) for f in ("grid", "paradox",
                                                                                                 "new")},
               "grid": relative_run_dir(grid_dir), "paradox": relative_run_dir(paradox_dir),
               "sgd_lr": run.load_json("sgd_lr.json"), "correlations": corr, "verdicts": ver,
               "fading_rate_G": fade, "settings": dataclasses.asdict(st), "cells": rows}
    io.save_json(os.path.join(figs, "lm_predict.json"), summary)
    md = _markdown(summary)
    io.save_text(os.path.join(figs, "lm_predict.md"), md)
    _plot(os.path.join(figs, "lm_predict.png"), rows, corr, PREDICTORS)
    publish(figs, ("lm_predict.md", "lm_predict.json", "lm_predict.png", "lm_predict_cells.csv"), figures_dir)
    log(md)


# ---------------------------------------------------------------------------------------------- run
def run(cfg: Config, st: PredictSettings, out, grid_dir: str, paradox_dir: str, log=print, until: str | None = None,
        figures_dir: str | None = None, stop_after_epoch: int | None = None):
    """Run (or resume) the study on a finished grid run and a finished paradox run of the same base config."""
    for flag, d, marker in (("grid", grid_dir, "rl_rloo/results.json"), ("paradox", paradox_dir,
                                                                          "rl_paradox/results.json")):
        if not os.path.exists(os.path.join(d, marker)):
            raise ValueError(f"--{flag} {d}: no {marker}; finish that run first")
        RunDir(d).check_config(cfg)

    def own_stages(rd):
        return {"import": lambda: stage_import(cfg, grid_dir, rd, log), "rms": lambda: stage_rms(cfg, st, rd, log),
                "rm_eval": lambda: stage_rm_eval(cfg, st, rd, log), "sgd_lr": lambda: stage_sgd_lr(cfg, st, rd, log),
                "rl_adam": lambda: stage_rl(cfg, st, rd, grid_dir, paradox_dir, "adam", log, stop_after_epoch),
                "rl_sgd": lambda: stage_rl(cfg, st, rd, grid_dir, paradox_dir, "sgd", log, stop_after_epoch),
                "analyze": lambda: stage_analyze(cfg, st, rd, grid_dir, paradox_dir, log, figures_dir)}

    rd = out if isinstance(out, RunDir) else RunDir(out)
    common.start(rd, cfg, "predict", st)
    return run_stages(own_stages(rd), MARKER, rd, log, until)
