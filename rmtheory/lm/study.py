"""What the grid (Section 4.2) and the paradox sweep share: study settings stored beside the base config,
initial-policy samples scored by several reward models, files in the ``rmtheory evaluate`` format, and
RL over stacked (policy, reward model, seed) runs.

A study's run directory holds the base pipeline's ``config.json`` (the task, model, RL hyper-parameters and
seeds: ``small`` or ``tiny``) and ``study.json`` (the study's own settings); both are checked on resume.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax

import rmtheory

from . import task as T
from .config import Config
from .loop import train_epochs
from .model import in_chunks
from .stages import gt_of, sample_np, sample_stats, stage_data, stage_samples, stage_sft, token_logprobs_jit
from .reward_model import score, unstack
from .rloo import Scaled, SourceConsts, make_rl
from .rundir import RunDir


def save_study(run: RunDir, kind: str, settings) -> None:
    """Write ``study.json`` ({"kind", "settings"}) or refuse a run dir that holds different settings."""
    d = {"kind": kind, "settings": dataclasses.asdict(settings)}
    d = json.loads(json.dumps(d))  # tuples -> lists, as stored
    if run.exists("study.json"):
        old = run.load_json("study.json")
        if old != d:
            diff = sorted(k for k in set(old.get("settings", {})) | set(d["settings"])
                          if old.get("settings", {}).get(k) != d["settings"].get(k))
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


def publish(src_dir: str, names, figures_dir: str | None) -> None:
    """Copy the named tables/figures from ``src_dir`` to ``figures_dir`` (if given) atomically."""
    if not figures_dir:
        return
    os.makedirs(figures_dir, exist_ok=True)
    for n in names:
        src = os.path.join(src_dir, n)
        if os.path.exists(src):
            rmtheory.io.atomic(lambda tmp, src=src: shutil.copyfile(src, tmp), os.path.join(figures_dir, n))


def policy_samples(cfg: Config, run: RunDir, d: dict, policy, key):
    """n_eval_samples samples of ``policy`` per PG eval prompt: tokens [P·K, T], r_G [P, K], and the
    policy's own mean per-token log-probability of its samples (minus an entropy estimate)."""
    ev = run.prompts("eval", d)
    K, P = cfg.n_eval_samples, cfg.task.prompt_len
    toks = sample_np(policy, np.repeat(ev.tokens, K, axis=0), key, cfg)
    gt = gt_of(cfg, ev.repeat(K), toks[:, P:]).reshape(-1, K)
    mask = np.asarray(T.response_mask(jnp.asarray(toks[:, P:])), np.float64)
    lp = in_chunks(lambda t, _: token_logprobs_jit(policy, t, P), toks, 4096).astype(np.float64)
    own = float(np.sum(lp * mask) / np.sum(mask))
    return toks, gt, own


def describe_policy(cfg: Config, toks, gt, own_logprob) -> dict:
    """How an initial policy looks on the eval prompts: r_G mean and std, :func:`sample_stats` (between-prompt
    share of the r_G variance, distinct responses per prompt, tie fraction), and its mean per-token log-prob of
    its own samples."""
    st = sample_stats(toks, gt, cfg.task.prompt_len)
    share = st["gt_between_prompt_share"]
    return {"gt_mean": float(gt.mean()), "gt_std": float(gt.std()), **st,
            "gt_between_prompt_share": None if share != share else share, "own_token_logprob": own_logprob}


def score_models(rms, names, toks, K):
    """{name: [P, K] scores} of stacked reward models on samples [P·K, T]."""
    return {n: score(unstack(rms, i), toks).reshape(-1, K) for i, n in enumerate(names)}


def report_models(scores: dict, gt, off_scores: dict, off_gt: dict, norm_scheme: str):
    """Per model: the global-z-score RM report (Var, accuracies; always global, as in the paper's tables) and
    the normalisation stats RL uses (``norm_scheme`` under this initial policy)."""
    rep, stats = {}, {}
    for n, s in scores.items():
        r = rmtheory.rm_report(s, gt, off_scores[n]["chosen"], off_scores[n]["rejected"], off_gt["chosen"],
                               off_gt["rejected"], scheme="global")
        rep[n] = {k: float(getattr(r, k)) for k in ("var", "acc_on", "acc_off", "on_off", "var_acc", "mean", "std")}
        stats[n] = [float(v) for v in rmtheory.normalisation_stats(s, norm_scheme)]
    return rep, stats


def rl_runs(cfg: Config, sub: str, run: RunDir, d: dict, policies, pol_index, rms, rm_index, stats, seeds,
            n_epochs: int, log=print, stop_after_epoch: int | None = None, algo: str = "rloo"):
    """RL (``algo``) for stacked runs r = (initial policy pol_index[r], reward model rm_index[r], seeds[r]),
    each with its own reference policy (its initial policy) and RM normalisation ``stats[r]`` = (μ, σ).
    Evaluation on the PG eval prompts × n_eval_samples after every epoch. Returns the progress dict
    (None when stopped early); the GT metric is the mean raw r_G."""
    c = cfg.replace(algo=algo)
    pg = Scaled.of(run.prompts("pg", d))
    evsets = {"pg": Scaled.of(run.prompts("eval", d))}
    opt = optax.adam(cfg.rl_lr)
    update_epoch, evaluate = make_rl(c, None, pg, evsets, (0.0, 1.0), opt)
    R = len(seeds)
    pick = lambda tree, idx: jax.tree_util.tree_map(lambda x: x[jnp.asarray(idx)], tree)  # noqa: E731
    refs = pick(policies, pol_index)
    run_rms = pick(rms, rm_index)
    stats = np.asarray(stats, np.float64)
    consts = SourceConsts(w_rm=jnp.ones(R, jnp.float32), w_gt=jnp.zeros(R, jnp.float32),
                          use_scale=jnp.zeros(R, bool), mu=jnp.asarray(stats[:, 0], jnp.float32),
                          sigma=jnp.asarray(stats[:, 1], jnp.float32), seed=jnp.asarray(seeds, jnp.int32))
    opt_states = jax.vmap(opt.init)(refs)
    refs, run_rms, consts = rmtheory.shard_leading((refs, run_rms, consts))

    def describe(prog):
        ev = prog["eval"]
        px = np.asarray(ev[-1]["pg"]["proxy"]) - np.asarray(ev[0]["pg"]["proxy"])
        g = np.asarray(ev[-1]["pg"]["gt_raw"]) - np.asarray(ev[0]["pg"]["gt_raw"])
        return f"mean proxy increase {px.mean():+.3f}, mean raw r_G increase {g.mean():+.4f}"

    return train_epochs(run, sub, n_epochs, (refs, opt_states),
                        lambda p, st, e: update_epoch(p, st, run_rms, consts, e, refs),
                        lambda p: evaluate(p, run_rms, consts, refs), log, describe, stop_after_epoch,
                        prepare=rmtheory.shard_leading)


def increases_of(prog, gt_sd):
    """Per-epoch increases [E+1, R] from a progress dict: proxy (normalised RM units) and GT (r_G in units of
    its std under each run's initial policy, ``gt_sd`` [R])."""
    ev = [m["pg"] for m in prog["eval"]]
    proxy = np.asarray([m["proxy"] for m in ev], np.float64)
    gt = np.asarray([m["gt_raw"] for m in ev], np.float64)
    kl = np.asarray([m["kl"] for m in ev], np.float64)
    return {"proxy": proxy - proxy[0], "gt": (gt - gt[0]) / np.asarray(gt_sd, np.float64)[None, :], "kl": kl}


def corr_with_ci(f, x, y, n_boot: int = 2000, seed: int = 0):
    """A correlation over cells with a 95 % percentile bootstrap CI (resampling cells); None if undefined."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"r": None, "ci": [None, None], "n": int(x.size)}
    rng = np.random.default_rng(seed)
    vals = []
    for idx in rng.integers(0, x.size, (n_boot, x.size)):
        if np.ptp(x[idx]) > 0 and np.ptp(y[idx]) > 0:
            vals.append(float(f(x[idx], y[idx])))
    lo, hi = np.percentile(vals, [2.5, 97.5]) if vals else (np.nan, np.nan)
    return {"r": float(f(x, y)), "ci": [float(lo), float(hi)], "n": int(x.size)}
