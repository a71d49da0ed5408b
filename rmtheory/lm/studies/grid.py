"""Section 4.2 analogue: several initial policies × several reward models (``rmtheory lm grid``).

Policies (all the same transformer; how each differs is measured in ``grid_eval.json`` → ``policies``):

* ``sft`` — the instrument's SFT policy (the teacher with systematic errors on hard prompts).
* ``sft_short`` — the same teacher and data, ``sft_short_steps`` SFT steps instead of ``sft_steps``
  (under-trained: broader, noisier).
* ``sft_clean`` — SFT on a cleaner teacher (``teacher.conf_hard`` = ``clean_conf_hard``: far fewer
  wrong-operation answers on hard prompts): a different data mix.
* ``instruct`` — ``sft`` after ``instruct_epochs`` epochs of RLOO on r_G (one seed, ``instruct_seed``):
  already sharp and better, like an instruct model after its own RLHF.

Reward models, trained once on the ``sft`` policy's data (one vmapped run, the same steps and batch order for
each) and shared by every policy; their characters come from their data and objective, never from rescaling:

* ``bt_on`` — Bradley–Terry on on-policy pairs of ``sft`` (the instrument's 100 % RM).
* ``bt_off`` — Bradley–Terry on the off-policy pairs of the same prompts (the instrument's 0 % RM).
* ``bt_noisy`` — ``bt_on``'s pairs with a fixed ``noisy_flip`` fraction of the labels swapped.
* ``bt_length`` — ``bt_on``'s pairs relabelled by a length-biased judge, r_G(x, y) + ``length_bonus``·|y|.
* ``reg_bias`` — pointwise regression onto r_G(x, y) + ``reg_bias``·(op(x) − REVERSE), a grader whose
  absolute scores depend on the kind of prompt: the within-prompt order is r_G's, most of the variance is
  between prompts.

Each (policy, RM) cell: the RM's Var and on-policy accuracy under that policy (off-policy accuracy is
policy independent), RLOO for ``epochs`` epochs × ``seeds`` (and a GRPO pass: Table 12), GT and proxy
increase mean ± std. Outputs: ``figures/lm_grid.md`` + ``lm_grid.json`` (Tables 10–12 analogues and the three
readings), ``lm_grid.png`` (the Fig. 3 analogue), ``exports/`` (each policy's samples scored by every RM,
in the ``rmtheory evaluate`` format).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from ... import io
from ..._rm_eval import normalisation_stats
from ..._stats import seed_stats
from .. import task as T
from ..config import Config
from ..measure import (
    curve_set,
    fmt,
    ground_truth,
    increases,
    rm_pairs,
    save_rm_curves,
)
from ..model import RewardModel
from ..reward_model import Objective, train_rms
from ..rl import ground_truth_consts, stacked_rl
from ..rloo import Scaled
from ..rundir import RunDir, publish, relative_run_dir
from ..sft import train_sft
from ..stacking import stack, unstack
from . import common

POLICIES = ("sft", "sft_short", "sft_clean", "instruct")
RMS = ("bt_on", "bt_off", "bt_noisy", "bt_length", "reg_bias")
ALGOS = ("rloo", "grpo")


@dataclass(frozen=True)
class GridSettings:
    sft_short_steps: int = 300
    clean_conf_hard: float = 0.3
    instruct_epochs: int = 2
    instruct_seed: int = 100
    noisy_flip: float = 0.3
    length_bonus: float = 0.3
    reg_bias: float = 2.0
    epochs: int = 2
    seeds: tuple = (0, 1, 2)
    flip_seed: int = 77

    def __post_init__(self):
        if self.sft_short_steps < 1 or self.instruct_epochs < 1 or self.epochs < 1:
            raise ValueError("sft_short_steps, instruct_epochs and epochs must be >= 1")
        if not 0 <= self.noisy_flip < 0.5:
            raise ValueError(f"noisy_flip must be in [0, 0.5); got {self.noisy_flip}")
        if not 0 <= self.clean_conf_hard <= 1:
            raise ValueError(f"clean_conf_hard must be in [0, 1]; got {self.clean_conf_hard}")
        if len(self.seeds) < 1 or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct; got {list(self.seeds)}")


QUICK = GridSettings(sft_short_steps=30, instruct_epochs=1, epochs=1, seeds=(0, 1))
MARKER = {"data": "data.npz", "sft": "sft.eqx", "samples": "samples.npz", "policies": "policies.eqx",
          "rms": "grid_rms.eqx", "rm_eval": "grid_eval.json", "rl_rloo": "rl_rloo/results.json",
          "rl_grpo": "rl_grpo/results.json", "analyze": None}


# ------------------------------------------------------------------------------------------ policies
def stage_policies(cfg: Config, st: GridSettings, run: RunDir, log=print):
    base = run.policy(cfg)
    log(f"  sft_short: {st.sft_short_steps} SFT steps")
    short, _ = train_sft(cfg.replace(sft_steps=st.sft_short_steps), log)
    log(f"  sft_clean: teacher.conf_hard = {st.clean_conf_hard}")
    clean, _ = train_sft(cfg.replace(teacher=dataclasses.replace(cfg.teacher, conf_hard=st.clean_conf_hard)), log)
    instruct = instruct_policy(cfg, run, base, st.instruct_epochs, st.instruct_seed, log)
    run.save_tree("policies.eqx", stack([base, short, clean, instruct]))


def instruct_policy(cfg: Config, run: RunDir, base, epochs: int, seed: int, log=print):
    """``base`` after ``epochs`` epochs of RLOO (Adam, ``cfg.rl_lr``) on r_G itself, normalised by the SFT
    samples' eval r_G, RL seed ``seed``, ``base`` the reference: an "instruct" policy."""
    log(f"  instruct: {epochs} epochs of RLOO on r_G (seed {seed})")
    d = run.data()
    smp = run.load_npz("samples.npz")
    mu, sd = normalisation_stats(smp["eval_gt"], "global")
    rm = RewardModel.from_policy(base, cfg.task.prompt_len, cfg.rm_readout)  # weight 0: the reward is r_G
    rl = stacked_rl(cfg.replace(algo="rloo"), Scaled.of(run.prompts("pg", d)), {}, (0.0, 1.0), stack([base]),
                    stack([rm]), ground_truth_consts([[mu, sd]], [seed]), ref=base)
    pol, st_ = rl.state
    for e in range(epochs):
        pol, st_, m = rl.update(pol, st_, e)
        log(f"  instruct epoch {e + 1}/{epochs}: train r_G {float(np.mean(m['gt'])):.4f}")
    return unstack(pol, 0)


def load_policies(cfg: Config, run: RunDir):
    return run.policies(cfg, "policies.eqx", len(POLICIES))


# ----------------------------------------------------------------------------------------------- rms
def op_offset(op, reg_bias: float):
    """``reg_bias``·(op(x) − REVERSE): −1, 0, +1 times ``reg_bias`` for COPY, REVERSE, SHIFT prompts (``op`` is
    the operation's index 0, 1, 2, as :class:`~rmtheory.lm.task.Prompts` stores it, not its token id)."""
    return reg_bias * (np.asarray(op, np.float64) - (T.REVERSE - T.COPY))


def rm_training_data(cfg: Config, st: GridSettings, run: RunDir):
    """chosen/rejected [n_rm, N, T] and the :class:`Objective` of the grid's reward models (order RMS)."""
    pairs = rm_pairs(run, run.data(), run.load_npz("samples.npz"))
    p, n = pairs.prompts, pairs.prompts.n
    on_c, on_r, off_c, off_r = pairs.on_chosen, pairs.on_rejected, pairs.off_chosen, pairs.off_rejected
    full = pairs.full
    # bt_noisy: a fixed fraction of the on-policy labels swapped
    flip = np.zeros(n, bool)
    order = np.asarray(jax.random.permutation(jax.random.PRNGKey(st.flip_seed), n))
    flip[order[: int(round(st.noisy_flip * n))]] = True
    noisy_c, noisy_r = np.where(flip[:, None], on_r, on_c), np.where(flip[:, None], on_c, on_r)
    # bt_length: the judge r_G + length_bonus·|y| orders the same pairs (ties keep the r_G order)
    g_c, g_r = ground_truth(cfg, p, on_c), ground_truth(cfg, p, on_r)
    len_c = np.asarray(T.response_length(jnp.asarray(on_c)), np.float64)
    len_r = np.asarray(T.response_length(jnp.asarray(on_r)), np.float64)
    j_c, j_r = g_c + st.length_bonus * len_c, g_r + st.length_bonus * len_r
    swap = j_r > j_c
    len_cc, len_rr = np.where(swap[:, None], on_r, on_c), np.where(swap[:, None], on_c, on_r)
    # reg_bias: regression targets r_G + reg_bias·(op − REVERSE) for both responses of the on-policy pairs
    bias = op_offset(p.op, st.reg_bias)
    chosen = np.stack([full(on_c), full(off_c), full(noisy_c), full(len_cc), full(on_c)])
    rejected = np.stack([full(on_r), full(off_r), full(noisy_r), full(len_rr), full(on_r)])
    zeros = np.zeros((len(RMS), n))
    t_c, t_r = zeros.copy(), zeros.copy()
    t_c[4], t_r[4] = g_c + bias, g_r + bias
    obj = Objective(w_bt=np.array([1, 1, 1, 1, 0], np.float32), w_reg=np.array([0, 0, 0, 0, 1], np.float32),
                    t_chosen=t_c, t_rejected=t_r)
    info = {"n_pairs": int(n), "noisy_flipped": int(flip.sum()), "length_judge_swapped": int(swap.sum()),
            "length_judge_agrees_with_r_G": float(np.mean(~swap))}
    return chosen, rejected, obj, info


def stage_rms(cfg: Config, st: GridSettings, run: RunDir, log=print):
    chosen, rejected, obj, info = rm_training_data(cfg, st, run)
    d, smp, pol = run.data(), run.load_npz("samples.npz"), run.policy(cfg)
    rms, losses, curves = train_rms(cfg, pol, chosen, rejected, curve_set(cfg, run, d, smp), log, objective=obj)
    save_rm_curves(run.path("grid_rm_curves.csv"), curves, RMS, name_col="rm", loss_col="train_loss")
    run.save_json("grid_rm_log.json", {**info, "steps": int(losses.shape[0]), "rms": list(RMS)})
    run.save_tree("grid_rms.eqx", rms)


def load_rms(cfg: Config, run: RunDir):
    return run.rms(cfg, "grid_rms.eqx", len(RMS))


# ------------------------------------------------------------------------------------------- rm_eval
def stage_rm_eval(cfg: Config, st: GridSettings, run: RunDir, log=print):
    out = common.evaluate_policies(cfg, run, load_policies(cfg, run), POLICIES, load_rms(cfg, run), RMS, log)
    run.save_json("grid_eval.json", out)


# ------------------------------------------------------------------------------------------------ rl
def grid_runs(st: GridSettings) -> list:
    """The grid's RL runs as (policy, RM, seed) triples: policy-major, then RM, then seed."""
    return [(p, r, s) for p in POLICIES for r in RMS for s in st.seeds]


def stage_rl(cfg: Config, st: GridSettings, run: RunDir, algo: str, log=print, stop_after_epoch=None):
    d = run.data()
    ev = run.load_json("grid_eval.json")
    runs = grid_runs(st)
    pol_index = [POLICIES.index(p) for p, _, _ in runs]
    rm_index = [RMS.index(r) for _, r, _ in runs]
    stats = [ev["norm_stats"][p][r] for p, r, _ in runs]
    seeds = [s for _, _, s in runs]
    sub = f"rl_{algo}"
    prog = common.rl_sweep(cfg, sub, run, d, load_policies(cfg, run), pol_index, load_rms(cfg, run), rm_index,
                           stats, seeds, st.epochs, log, stop_after_epoch, algo=algo)
    if prog is None:
        return
    gt_sd = [ev["gt_stats"][p][1] for p, _, _ in runs]
    inc, inc_test = increases(prog, gt_sd=gt_sd), increases(prog, "test", gt_sd=gt_sd)
    run.save_json(os.path.join(sub, "results.json"),
                  {"runs": [{"policy": p, "rm": r, "seed": s} for p, r, s in runs], "algo": algo,
                   "proxy_increase": inc["proxy"].tolist(), "gt_increase": inc["gt"].tolist(),
                   "test_proxy_increase": inc_test["proxy"].tolist(), "test_gt_increase": inc_test["gt"].tolist(),
                   "kl_eval": inc["kl"].tolist(), "adam_steps_per_epoch": cfg.adam_steps_per_epoch})


# ------------------------------------------------------------------------------------------- analyze
def cell_table(res: dict, st: GridSettings, epoch: int) -> dict:
    """{policy: {rm: {"gt": seed_stats, "proxy": seed_stats}}} of the increases at ``epoch``."""
    runs = [(r["policy"], r["rm"]) for r in res["runs"]]
    px, gt = np.asarray(res["proxy_increase"])[epoch], np.asarray(res["gt_increase"])[epoch]
    out = {}
    for p in POLICIES:
        out[p] = {}
        for r in RMS:
            idx = [i for i, c in enumerate(runs) if c == (p, r)]
            out[p][r] = {"gt": seed_stats(gt[idx]), "proxy": seed_stats(px[idx])}
    return out


def _separated(a: dict, b: dict) -> bool:
    """Is mean a − mean b larger than the seed spread (the larger of the two stds)?"""
    spread = max(a["std"] if a["std"] == a["std"] else 0.0, b["std"] if b["std"] == b["std"] else 0.0)
    return a["mean"] - b["mean"] > spread


def readings(cells: dict, report: dict) -> dict:
    """The paper's three readings of Tables 10–12, as measured here (per policy, with the seed spread)."""
    out = {"a_highest_var_largest_proxy": {}, "b_most_accurate_not_best_teacher": {}, "c_best_gt_rm": {}}
    for p in POLICIES:
        var = {r: report[p][r]["var"] for r in RMS}
        acc = {r: report[p][r]["acc_on"] for r in RMS}
        px = {r: cells[p][r]["proxy"] for r in RMS}
        gt = {r: cells[p][r]["gt"] for r in RMS}
        top_var = max(var, key=var.get)
        by_px = sorted(RMS, key=lambda r: -px[r]["mean"])
        out["a_highest_var_largest_proxy"][p] = {
            "highest_var_rm": top_var, "largest_proxy_rm": by_px[0], "holds": top_var == by_px[0],
            "largest_proxy_separated_from_runner_up": _separated(px[by_px[0]], px[by_px[1]])}
        top_acc = max(acc, key=acc.get)
        by_gt = sorted(RMS, key=lambda r: -gt[r]["mean"])
        out["b_most_accurate_not_best_teacher"][p] = {
            "most_accurate_rm": top_acc, "best_gt_rm": by_gt[0], "most_accurate_is_best": top_acc == by_gt[0],
            "best_minus_most_accurate_gt": gt[by_gt[0]]["mean"] - gt[top_acc]["mean"],
            "difference_beyond_seed_spread": _separated(gt[by_gt[0]], gt[top_acc]) if top_acc != by_gt[0] else False}
        out["c_best_gt_rm"][p] = {"best_gt_rm": by_gt[0], "runner_up": by_gt[1],
                                  "separated_from_runner_up": _separated(gt[by_gt[0]], gt[by_gt[1]])}
    best = [out["c_best_gt_rm"][p]["best_gt_rm"] for p in POLICIES]
    sep = [out["c_best_gt_rm"][p]["separated_from_runner_up"] for p in POLICIES]
    out["c_summary"] = {"best_rm_per_policy": dict(zip(POLICIES, best)), "changes_with_policy": len(set(best)) > 1,
                        "changes_among_separated_policies": len({b for b, s in zip(best, sep) if s}) > 1}
    return out


LABEL = {"sft": "SFT", "sft_short": "SFT (short)", "sft_clean": "SFT (clean teacher)",
         "instruct": "Instruct (SFT + RL on r_G)"}


def _fmt_cell(c, rep):
    return (f"{c['gt']['mean']:+.3f}±{c['gt']['std']:.3f} / {c['proxy']['mean']:+.3f}±{c['proxy']['std']:.3f} / "
            f"{rep['var']:.3f} / {rep['acc_on']:.3f}")


def _readings_md(rd: dict, algo: str) -> list:
    """The markdown lines of one algorithm's three readings (:func:`readings`)."""
    a, b, c = rd["a_highest_var_largest_proxy"], rd["b_most_accurate_not_best_teacher"], rd["c_best_gt_rm"]

    def reading_a(p):
        separated = a[p]["largest_proxy_separated_from_runner_up"]
        sep = ", separated" if separated else ", within seed spread of the runner-up"
        return (f"{LABEL[p]}: {'holds' if a[p]['holds'] else 'does not hold'} (highest Var {a[p]['highest_var_rm']}, "
                f"largest proxy {a[p]['largest_proxy_rm']}{sep})")

    def reading_b(p):
        line = f"{LABEL[p]}: most accurate {b[p]['most_accurate_rm']}, best GT {b[p]['best_gt_rm']}"
        if b[p]["most_accurate_is_best"]:
            return line
        sep = ", beyond seed spread" if b[p]["difference_beyond_seed_spread"] else ", within seed spread"
        return line + f" (+{b[p]['best_minus_most_accurate_gt']:.3f}{sep})"

    def reading_c(p):
        sep = " (separated)" if c[p]["separated_from_runner_up"] else f" (within seed spread of {c[p]['runner_up']})"
        return f"{LABEL[p]}: {c[p]['best_gt_rm']}{sep}"

    summary = rd["c_summary"]
    return ["", f"**Readings ({algo.upper()}, as measured; 'separated' = the mean difference exceeds the larger seed "
            "std):**", "",
            "- (a) highest-variance RM gives the largest proxy increase: " + "; ".join(map(reading_a, POLICIES)),
            "- (b) the most accurate RM (on-policy) is not necessarily the best teacher: "
            + "; ".join(map(reading_b, POLICIES)),
            "- (c) the best RM for the GT changes with the policy: "
            + ("yes" if summary["changes_with_policy"] else "no") + " — " + "; ".join(map(reading_c, POLICIES))
            + "; among policies whose best RM is separated from the runner-up it "
            + ("changes" if summary["changes_among_separated_policies"] else "does not change"), ""]


def stage_analyze(cfg: Config, st: GridSettings, run: RunDir, log=print, figures_dir: str | None = None):
    ev = run.load_json("grid_eval.json")
    figs = run.path("figures")
    os.makedirs(figs, exist_ok=True)
    results, tables = {}, {}
    for algo in ALGOS:
        if not run.exists(f"rl_{algo}", "results.json"):
            continue
        res = run.load_json(os.path.join(f"rl_{algo}", "results.json"))
        results[algo] = {"final": cell_table(res, st, st.epochs), "one_epoch": cell_table(res, st, 1)}
    report = ev["report"]
    off = {r: report[POLICIES[0]][r]["acc_off"] for r in RMS}
    where = relative_run_dir(run.out)
    lines = ["# Section 4.2 analogue: initial policies × reward models (Tables 10–12)", "",
             (f"Run dir `{where}`; base" if where else "Base")
             + f" config `{cfg.name}`; {len(st.seeds)} seeds, {st.epochs} epochs "
             f"({cfg.adam_steps_per_epoch} Adam steps each). Each cell: GT increase ± std / proxy increase ± std / "
             "Var / on-policy accuracy (after the last epoch; increases in normalised units, mean ± std over seeds "
             "(ddof 1)). Bold: best GT increase in the row.", "",
             "## The initial policies", "",
             "| policy | r_G mean | r_G std | between-prompt share | distinct of K | tie fraction "
             "| own log-prob/token |",
             "|---|---|---|---|---|---|---|"]
    for p in POLICIES:
        q = ev["policies"][p]
        lines.append(f"| {LABEL[p]} | {q['gt_mean']:+.3f} | {q['gt_std']:.3f} | {fmt(q['gt_between_prompt_share'])} | "
                     f"{q['distinct_per_prompt']:.2f} | {q['gt_tie_fraction']:.3f} | {q['own_token_logprob']:.3f} |")
    lines += ["", "Off-policy accuracy (policy independent): " + ", ".join(f"{r} {off[r]:.3f}" for r in RMS), ""]
    for algo, tab in (("rloo", "Tables 10/11 analogue (RLOO)"), ("grpo", "Table 12 analogue (GRPO)")):
        if algo not in results:
            continue
        cells = results[algo]["final"]
        lines += [f"## {tab}", "", "| policy | " + " | ".join(RMS) + " |", "|---|" + "---|" * len(RMS)]
        for p in POLICIES:
            best = max(RMS, key=lambda r: cells[p][r]["gt"]["mean"])
            row = [_fmt_cell(cells[p][r], report[p][r]) for r in RMS]
            row = [f"**{v}**" if r == best else v for r, v in zip(RMS, row)]
            lines.append(f"| {LABEL[p]} | " + " | ".join(row) + " |")
        tables[algo] = readings(cells, report)
        lines += _readings_md(tables[algo], algo)
    md = "\n".join(lines) + "\n"
    io.save_text(os.path.join(figs, "lm_grid.md"), md)
    summary = {"settings": dataclasses.asdict(st), "config": cfg.name, "policies": ev["policies"], "report": report,
               "cells": results, "readings": tables}
    io.save_json(os.path.join(figs, "lm_grid.json"), summary)
    if "rloo" in results:
        _plot(os.path.join(figs, "lm_grid.png"), results, report)
    publish(figs, ("lm_grid.md", "lm_grid.json", "lm_grid.png"), figures_dir)
    log(md)
    return summary


def _plot(path, results, report):
    plt = io.pyplot()
    algos = [a for a in ALGOS if a in results]
    fig, axes = plt.subplots(len(algos), len(POLICIES), figsize=(3.4 * len(POLICIES), 3.0 * len(algos)), squeeze=False)
    x = np.arange(len(RMS))
    for i, algo in enumerate(algos):
        cells = results[algo]["final"]
        for j, p in enumerate(POLICIES):
            ax = axes[i, j]
            g = [cells[p][r]["gt"] for r in RMS]
            q = [cells[p][r]["proxy"] for r in RMS]
            for dx, v, label, color in ((-0.2, g, "GT", "C0"), (0.2, q, "proxy", "C1")):
                ax.bar(x + dx, [u["mean"] for u in v], 0.4, yerr=[np.nan_to_num(u["std"]) for u in v], label=label,
                       color=color)
            ticks = [f"{r}\nV{report[p][r]['var']:.2f} A{report[p][r]['acc_on']:.2f}" for r in RMS]
            ax.set_xticks(x, ticks, fontsize=6)
            ax.set_title(f"{LABEL[p]} ({algo.upper()})", fontsize=8)
            ax.axhline(0, color="k", lw=0.5)
            if j == 0:
                ax.set_ylabel("increase after the last epoch")
            if i == 0 and j == 0:
                ax.legend(fontsize=7)
    fig.tight_layout()
    io.save_figure(fig, path)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------- run
def run(cfg: Config, st: GridSettings, out, log=print, until: str | None = None, figures_dir: str | None = None,
        stop_after_epoch: int | None = None):
    """Run (or resume) the grid. ``stop_after_epoch`` (testing) interrupts the first RL stage it reaches."""

    def own_stages(rd):
        stages = {"policies": lambda: stage_policies(cfg, st, rd, log), "rms": lambda: stage_rms(cfg, st, rd, log),
                  "rm_eval": lambda: stage_rm_eval(cfg, st, rd, log)}
        for algo in ALGOS:
            stages[f"rl_{algo}"] = (lambda a: lambda: stage_rl(cfg, st, rd, a, log, stop_after_epoch))(algo)
        stages["analyze"] = lambda: stage_analyze(cfg, st, rd, log, figures_dir)
        return stages

    return common.run_study("grid", cfg, st, out, own_stages, MARKER, log, until)
