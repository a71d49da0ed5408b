"""What the grid (Section 4.2) and the paradox sweep share: study settings stored beside the base config,
the pipeline stages they start from, a policy's samples described, and RL over stacked (policy, reward model,
seed) runs with per-run reference policies.

A study's run directory holds the base pipeline's ``config.json`` (the task, model, RL hyper-parameters and
seeds: ``small`` or ``tiny``) and ``study.json`` (the study's own settings); both are checked on resume.
"""

from __future__ import annotations

import dataclasses
import json
import os

import jax
import numpy as np

from ... import io
from ..._precision import require_x64
from ..._rm_eval import normalisation_stats
from ..config import Config
from ..loop import run_stages
from ..measure import (
    ground_truth,
    increases,
    mean_token_logprob,
    off_policy_eval,
    report_models,
    sample_stats,
    sample_tokens,
    save_eval_offpolicy,
    save_eval_rewards,
    score_models,
    score_pairs,
)
from ..rl import reward_model_consts, stacked_rl, train
from ..rloo import Scaled
from ..rundir import RunDir
from ..stacking import take, unstack
from ..stages import stage_data, stage_samples, stage_sft
from ..teaching_rate import export_policy_rates


def save_study(run: RunDir, kind: str, settings) -> None:
    """Write ``study.json`` ({"kind", "settings"}) or refuse a run dir that holds different settings."""
    d = {"kind": kind, "settings": dataclasses.asdict(settings)}
    d = json.loads(json.dumps(d))  # tuples -> lists, as stored
    if run.exists("study.json"):
        old = run.load_json("study.json")
        if old != d:
            diff = io.differing_keys(old.get("settings", {}), d["settings"])
            raise ValueError(f"{run.path('study.json')} holds different {old.get('kind')} settings (differs in "
                             f"{diff or ['kind']}); use a fresh --out directory or the same settings")
    else:
        os.makedirs(run.out, exist_ok=True)
        run.save_json("study.json", d)


def start(run: RunDir, cfg: Config, kind: str, settings) -> None:
    """Check (then write) the base config and the study settings of a study's run dir, before any work."""
    run.check_config(cfg)
    save_study(run, kind, settings)
    run.save_config(cfg)


def base_stages(cfg: Config, run: RunDir, log=print) -> dict:
    """The pipeline stages a study starts from (prompts, the SFT policy, its samples), as stage thunks."""
    return {"data": lambda: stage_data(cfg, run, log), "sft": lambda: stage_sft(cfg, run, log),
            "samples": lambda: stage_samples(cfg, run, log)}


def run_study(kind: str, cfg: Config, settings, out, own_stages, markers: dict, log=print, until: str | None = None):
    """Run (or resume) a study in run dir ``out``: check (then write) its base config and settings, then run
    the base stages and ``own_stages(run) -> {name: thunk}`` in order, up to and including ``until``, skipping
    those whose marker file (``markers``) exists."""
    require_x64(f"rmtheory lm {kind} (its numbers are made with JAX's x64 mode on)")
    rd = out if isinstance(out, RunDir) else RunDir(out)
    start(rd, cfg, kind, settings)
    return run_stages({**base_stages(cfg, rd, log), **own_stages(rd)}, markers, rd, log, until)


def policy_samples(cfg: Config, run: RunDir, d: dict, policy, key):
    """n_eval_samples samples of ``policy`` per PG eval prompt: tokens [P·K, T], r_G [P, K], and the
    policy's own mean per-token log-probability of its samples (minus an entropy estimate)."""
    ev = run.prompts("eval", d)
    K, P = cfg.n_eval_samples, cfg.task.prompt_len
    toks = sample_tokens(policy, np.repeat(ev.tokens, K, axis=0), key, cfg)
    gt = ground_truth(cfg, ev.repeat(K), toks[:, P:]).reshape(-1, K)
    return toks, gt, float(mean_token_logprob(policy, toks, P, axis=None))


def describe_policy(cfg: Config, toks, gt, own_logprob) -> dict:
    """How an initial policy looks on the eval prompts: r_G mean and std, :func:`sample_stats` (between-prompt
    share of the r_G variance, distinct responses per prompt, tie fraction), and its mean per-token log-prob of
    its own samples."""
    st = sample_stats(toks, gt, cfg.task.prompt_len)
    share = st["gt_between_prompt_share"]
    return {"gt_mean": float(gt.mean()), "gt_std": float(gt.std()), **st,
            "gt_between_prompt_share": None if share != share else share, "own_token_logprob": own_logprob}


def evaluate_policies(cfg: Config, run: RunDir, policies, names, rms, rm_names, log=print,
                      describe: bool = True) -> dict:
    """The studies' evaluation stage: each of the stacked ``policies`` (``names``, in order) sampled on the PG eval
    prompts (policy p with key ``fold_in(PRNGKey(seeds.eval + 1), 1000 + p)``), scored by the stacked ``rms``
    (``rm_names``) and reported (:func:`rmtheory.lm.measure.report_models`); exported for ``rmtheory evaluate``
    (``exports/offpolicy.csv``, ``exports/<name>.csv``) with the exact-gradient rates and sketches
    (:func:`rmtheory.lm.teaching_rate.export_policy_rates`). Returns {"policies" (each :func:`describe_policy`,
    when ``describe``), "report", "norm_stats" (each RM's RL normalisation under that policy), "gt_stats", "rms",
    "order"}."""
    d = run.data()
    K = cfg.n_eval_samples
    ids, off_full, off_gt = off_policy_eval(cfg, run, d)
    off = score_pairs(rms, rm_names, off_full)
    os.makedirs(run.path("exports"), exist_ok=True)
    save_eval_offpolicy(run.path("exports", "offpolicy.csv"), ids, off, off_gt)
    out = {**({"policies": {}} if describe else {}), "report": {}, "norm_stats": {}, "gt_stats": {},
           "rms": list(rm_names), "order": list(names)}
    for p, name in enumerate(names):
        pol = unstack(policies, p)
        key = jax.random.fold_in(jax.random.PRNGKey(cfg.seeds.eval + 1), 1000 + p)
        toks, gt, own = policy_samples(cfg, run, d, pol, key)
        scores = score_models(rms, rm_names, toks, K)
        rep, stats = report_models(scores, gt, off, off_gt, cfg.norm_scheme)
        if describe:
            out["policies"][name] = describe_policy(cfg, toks, gt, own)
        out["report"][name], out["norm_stats"][name] = rep, stats
        out["gt_stats"][name] = [float(v) for v in normalisation_stats(gt, "global")]
        save_eval_rewards(run.path("exports", f"{name}.csv"), ids, {**scores, "ground_truth": gt})
        export_policy_rates(run.path("exports", name), cfg, pol, toks, ids, scores, gt)
        log(f"  {name}: r_G mean {gt.mean():+.3f}; "
            + "  ".join(f"{n} Var {rep[n]['var']:.3f} on {rep[n]['acc_on']:.3f}" for n in rm_names))
    return out


def rl_sweep(cfg: Config, sub: str, run: RunDir, d: dict, policies, pol_index, rms, rm_index, stats, seeds,
             n_epochs: int, log=print, stop_after_epoch: int | None = None, algo: str = "rloo",
             optimizer: str = "adam", lr: float | None = None, rollouts: int | None = None,
             eval_sets: tuple = ("pg", "test")):
    """RL (``algo``) for stacked runs r = (initial policy pol_index[r], reward model rm_index[r], seeds[r]),
    each with its own reference policy (its initial policy) and RM normalisation ``stats[r]`` = (μ, σ), trained
    with ``optimizer`` ("adam" or "sgd") at ``lr`` (default ``cfg.rl_lr``).
    Evaluation after every epoch on ``eval_sets``: the PG eval prompts (``"pg"``, the RL training prompts) and/or
    the first ``n_test_eval_prompts`` held-out test prompts (``"test"``), × n_eval_samples each; an "epoch" is
    ``rollouts`` rollout batches (default a full epoch). Returns the progress dict (None when stopped early); the
    GT metric is the mean raw r_G."""
    if not eval_sets or not set(eval_sets) <= {"pg", "test"}:
        raise ValueError(f"eval_sets must name 'pg' and/or 'test'; got {list(eval_sets)}")
    pg = Scaled.of(run.prompts("pg", d))
    every = {"pg": lambda: Scaled.of(run.prompts("eval", d)),
             "test": lambda: Scaled.of(run.prompts("test", d).take(np.arange(cfg.n_test_eval_prompts)))}
    evsets = {name: every[name]() for name in ("pg", "test") if name in eval_sets}
    rl = stacked_rl(cfg.replace(algo=algo), pg, evsets, (0.0, 1.0), take(policies, pol_index), take(rms, rm_index),
                    reward_model_consts(stats, seeds), optimizer=optimizer, lr=lr, rollouts=rollouts)

    def describe(prog):
        inc = increases(prog, next(iter(evsets)), gt_sd=np.ones(len(seeds)))
        return f"mean proxy increase {inc['proxy'][-1].mean():+.3f}, mean raw r_G increase {inc['gt'][-1].mean():+.4f}"

    return train(run, sub, rl, n_epochs, log, describe, stop_after_epoch)


def scatter_grid(path, rows, outcomes, predictors, rho, group_key: str, groups, ylabel, cell=(2.6, 2.6),
                 marker_size: float = 14, font: float = 8, xlabels: bool = True) -> None:
    """Predictor × outcome scatter plots (one row per outcome, one column per predictor) of ``rows`` (dicts), the
    points marked by ``row[group_key]`` (``groups``: (value, marker) pairs), each panel titled with
    ``rho(outcome, predictor)`` (a Spearman ρ or None); ``ylabel(outcome)`` labels each row. Saved by
    :func:`rmtheory.io.save_figure`. The report card's and the prediction study's figures."""
    plt = io.pyplot()
    size = (cell[0] * len(predictors), cell[1] * len(outcomes))
    fig, axes = plt.subplots(len(outcomes), len(predictors), figsize=size, squeeze=False)
    grp = np.array([r[group_key] for r in rows])
    for i, o in enumerate(outcomes):
        y = np.array([r[o] for r in rows])
        for j, p in enumerate(predictors):
            ax = axes[i, j]
            x = np.array([r[p] for r in rows])
            for g, mk in groups:
                ax.scatter(x[grp == g], y[grp == g], s=marker_size, marker=mk, label=g)
            r = rho(o, p)
            ax.set_title(f"{p}: ρ={'—' if r is None else format(r, '+.2f')}", fontsize=font)
            if xlabels and i == len(outcomes) - 1:
                ax.set_xlabel(p, fontsize=font)
            if j == 0:
                ax.set_ylabel(ylabel(o), fontsize=font)
            ax.tick_params(labelsize=font - 2)
    axes[0, 0].legend(fontsize=font - 2)
    fig.tight_layout()
    io.save_figure(fig, path)
    plt.close(fig)
