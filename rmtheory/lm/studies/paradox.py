"""The Accuracy Paradox sweep (Chen et al., arXiv 2410.06554) on the miniature (``rmtheory lm paradox``).

One reward model (the instrument's 100 % on-policy Bradley–Terry recipe) is trained with a checkpoint
every ``ckpt_every`` steps; ``n_ckpts`` checkpoints are chosen evenly spaced in held-out on-policy accuracy
(the learning-curve prompts: PG prompts never used for RM training), from the first checkpoint's accuracy
(near chance) up to the best the run reaches. RLOO from the SFT policy with each checkpoint as the reward,
``seeds`` seeds, ``epochs`` epochs, evaluation after every epoch. Outcomes per checkpoint: the final GT, the
best GT over the evaluation points, the one-epoch GT gain, and a KL-stop variant (as in their PPO): the best
GT over the evaluation points up to and including the first epoch whose KL to the reference exceeds
``kl_stop`` (checked at epoch boundaries).

The question "does a moderately accurate checkpoint beat the most accurate one?" is answered with a
bootstrap over seeds: D = (best mean outcome among the checkpoints in the middle third of the accuracy range)
− (mean outcome of the most accurate checkpoint), the selection redone in every resample.
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
from ..._stats import percentile_ci, seed_stats
from ..config import Config
from ..measure import (
    chance_on_acc,
    correlation_table,
    curve_set,
    fmt,
    increases,
    off_policy_eval,
    report_models,
    rm_pairs,
    save_eval_offpolicy,
    save_eval_rewards,
    score_models,
    score_pairs,
)
from ..reward_model import build_mixes, train_rms
from ..rundir import RunDir, publish, relative_run_dir
from ..stacking import stack
from ..teaching_rate import export_policy_rates
from . import common


@dataclass(frozen=True)
class ParadoxSettings:
    n_ckpts: int = 20
    ckpt_every: int = 2
    epochs: int = 3
    seeds: tuple = (0, 1, 2)
    kl_stop: float = 1.0  # nats; fixed before the sweep: about the KL the instrument's r_G runs reach in 1.5 epochs
    n_boot: int = 2000

    def __post_init__(self):
        if self.n_ckpts < 3 or self.ckpt_every < 1 or self.epochs < 1:
            raise ValueError("n_ckpts must be >= 3, ckpt_every and epochs >= 1")
        if not self.kl_stop > 0:
            raise ValueError(f"kl_stop must be > 0; got {self.kl_stop}")
        if len(self.seeds) < 1 or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct; got {list(self.seeds)}")


QUICK = ParadoxSettings(n_ckpts=6, ckpt_every=1, epochs=2, seeds=(0, 1), kl_stop=0.05, n_boot=200)
MARKER = {"data": "data.npz", "sft": "sft.eqx", "samples": "samples.npz", "ckpts": "paradox_rms.eqx",
          "rm_eval": "paradox_eval.json", "rl": "rl_paradox/results.json", "analyze": None}


def ckpt_names(st: ParadoxSettings):
    return [f"ckpt_{i:02d}" for i in range(st.n_ckpts)]


def select_evenly(acc, n: int, low: float):
    """Indices of ``n`` distinct entries of ``acc`` closest to n targets evenly spaced from ``low`` (chance), or
    the lowest accuracy any checkpoint has if that is higher, to max(acc) (ties: the earliest). Greedy from the
    highest target down, so the most accurate entry is kept. (Targets below the first checkpoint's accuracy
    would all map to the first few checkpoints: at ``small`` the first one, 2 Adam steps in, already has
    held-out on-acc 0.584 against chance 0.462.)"""
    acc = np.asarray(acc, np.float64)
    if acc.size < n:
        raise ValueError(f"only {acc.size} checkpoints for n_ckpts = {n}; lower ckpt_every")
    targets = np.linspace(min(max(low, acc.min()), acc.max()), acc.max(), n)
    chosen = []
    for t in targets[::-1]:
        order = np.lexsort((np.arange(acc.size), np.abs(acc - t)))
        chosen.append(next(int(i) for i in order if int(i) not in chosen))
    return sorted(chosen), targets


# --------------------------------------------------------------------------------------------- ckpts
def stage_ckpts(cfg: Config, st: ParadoxSettings, run: RunDir, log=print):
    d, pol, smp = run.data(), run.policy(cfg), run.load_npz("samples.npz")
    pairs = rm_pairs(run, d, smp)
    on_c, on_r = pairs.full(pairs.on_chosen), pairs.full(pairs.on_rejected)
    chosen, rejected = build_mixes(np.arange(pairs.prompts.n), on_c, on_r, on_c, on_r, [1.0])
    snaps = []
    c = cfg.replace(rm_curve_every=st.ckpt_every)
    def quiet(msg):  # one line per checkpoint would flood the log
        pass

    _, _, curves = train_rms(c, pol, chosen, rejected, curve_set(cfg, run, d, smp), quiet,
                             on_chunk=lambda step, rms: snaps.append(rms))
    steps = [r["step"] for r in curves[1:]]
    acc = [r["heldout_on_acc"][0] for r in curves[1:]]
    C, K = cfg.rm_curve_prompts, cfg.n_eval_samples
    resp = smp["eval_tokens"][: C * K, cfg.task.prompt_len:].reshape(C, K, -1)
    chance = chance_on_acc(resp, smp["eval_gt"][:C])
    idx, targets = select_evenly(acc, st.n_ckpts, chance)
    log(f"  {len(snaps)} checkpoints (every {st.ckpt_every} steps, {steps[-1]} steps); held-out on-acc "
        f"{acc[0]:.3f} → {max(acc):.3f} (chance {chance:.3f}); chosen steps {[steps[i] for i in idx]}")
    chosen_rms = jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs), *[snaps[i] for i in idx])
    io.save_csv(run.path("paradox_curve.csv"), ["step", "heldout_on_acc", "heldout_bt_loss", "off_acc", "chosen"],
                [[r["step"], r["heldout_on_acc"][0], r["heldout_bt_loss"][0], r["off_acc"][0],
                  int(i - 1 in idx) if i else 0] for i, r in enumerate(curves)])
    run.save_json("paradox_ckpts.json", {"names": ckpt_names(st), "steps": [steps[i] for i in idx],
                                         "curve_acc": [acc[i] for i in idx], "targets": targets.tolist(),
                                         "chance": chance})
    run.save_tree("paradox_rms.eqx", chosen_rms)


def load_ckpts(cfg: Config, st: ParadoxSettings, run: RunDir):
    return run.rms(cfg, "paradox_rms.eqx", st.n_ckpts)


# ------------------------------------------------------------------------------------------- rm_eval
def stage_rm_eval(cfg: Config, st: ParadoxSettings, run: RunDir, log=print):
    """The checkpoints scored on the instrument's eval samples of the SFT policy (500 × 10 at ``small``)."""
    d, smp = run.data(), run.load_npz("samples.npz")
    rms, names = load_ckpts(cfg, st, run), ckpt_names(st)
    toks, gt = smp["eval_tokens"], smp["eval_gt"]
    ids, off_full, off_gt = off_policy_eval(cfg, run, d)
    off = score_pairs(rms, names, off_full)
    scores = score_models(rms, names, toks, cfg.n_eval_samples)
    rep, stats = report_models(scores, gt, off, off_gt, cfg.norm_scheme)
    os.makedirs(run.path("exports"), exist_ok=True)
    save_eval_rewards(run.path("exports", "sft.csv"), ids, {**scores, "ground_truth": gt})
    export_policy_rates(run.path("exports", "sft"), cfg, run.policy(cfg), toks, ids, scores, gt)
    save_eval_offpolicy(run.path("exports", "offpolicy.csv"), ids, off, off_gt)
    run.save_json("paradox_eval.json", {"report": rep, "norm_stats": stats, "names": names,
                                        "gt_stats": [float(v) for v in normalisation_stats(gt, "global")]})
    log("  " + "  ".join(f"{n}: on {rep[n]['acc_on']:.3f} Var {rep[n]['var']:.3f}" for n in names))


# ------------------------------------------------------------------------------------------------ rl
def stage_rl(cfg: Config, st: ParadoxSettings, run: RunDir, log=print, stop_after_epoch=None):
    d, ev = run.data(), run.load_json("paradox_eval.json")
    names = ev["names"]
    runs = [(n, s) for n in names for s in st.seeds]
    pol = stack([run.policy(cfg)])
    prog = common.rl_sweep(cfg, "rl_paradox", run, d, pol, [0] * len(runs), load_ckpts(cfg, st, run),
                           [names.index(n) for n, _ in runs], [ev["norm_stats"][n] for n, _ in runs],
                           [s for _, s in runs], st.epochs, log, stop_after_epoch)
    if prog is None:
        return
    gt_sd = [ev["gt_stats"][1]] * len(runs)
    inc, inc_test = increases(prog, gt_sd=gt_sd), increases(prog, "test", gt_sd=gt_sd)
    run.save_json(os.path.join("rl_paradox", "results.json"),
                  {"runs": [{"ckpt": n, "seed": s} for n, s in runs], "proxy_increase": inc["proxy"].tolist(),
                   "gt_increase": inc["gt"].tolist(), "kl_eval": inc["kl"].tolist(),
                   "test_proxy_increase": inc_test["proxy"].tolist(), "test_gt_increase": inc_test["gt"].tolist(),
                   "adam_steps_per_epoch": cfg.adam_steps_per_epoch})


# ------------------------------------------------------------------------------------------- analyze
def outcomes(gt, kl, kl_stop: float) -> dict:
    """Per-run outcomes from GT increases and KLs [E+1, R] (row 0 = the initial policy)."""
    E = gt.shape[0] - 1
    over = kl[1:] > kl_stop                                     # [E, R]
    stop = np.where(over.any(0), over.argmax(0) + 1, E)          # the epoch after which the run stops
    kl_best = np.array([gt[1 : s + 1, r].max() for r, s in enumerate(stop)])
    return {"final": gt[E], "best": gt[1:].max(0), "one_epoch": gt[1], "kl_stop": kl_best, "stop_epoch": stop}


def moderate_vs_most_accurate(values: np.ndarray, acc: np.ndarray, n_boot: int, seed: int = 0) -> dict:
    """values [n_ckpt, S] (an outcome per seed). D = max over middle-third checkpoints of the seed mean − the
    most accurate checkpoint's seed mean; bootstrap over seeds (per checkpoint), re-selecting each time."""
    lo, hi = acc.min(), acc.max()
    mid = np.flatnonzero((acc >= lo + (hi - lo) / 3) & (acc <= lo + 2 * (hi - lo) / 3))
    top = int(np.argmax(acc))
    mid = mid[mid != top]
    if mid.size == 0:
        return {"moderate": [], "most_accurate": top, "D": None, "ci": [None, None]}

    def stat(v):
        m = v.mean(1)
        return m[mid].max() - m[top], m[mid].mean() - m[top]

    D, Dmean = stat(values)
    rng = np.random.default_rng(seed)
    S_ = values.shape[1]
    boots = np.array([stat(np.take_along_axis(values, rng.integers(0, S_, values.shape), 1)) for _ in range(n_boot)])
    return {"moderate": mid.tolist(), "most_accurate": top, "best_moderate": int(mid[np.argmax(values.mean(1)[mid])]),
            "D": float(D), "ci": percentile_ci(boots[:, 0]),
            "D_mean_of_moderate": float(Dmean), "ci_mean_of_moderate": percentile_ci(boots[:, 1])}


def stage_analyze(cfg: Config, st: ParadoxSettings, run: RunDir, log=print, figures_dir: str | None = None):
    ev, res = run.load_json("paradox_eval.json"), run.load_json(os.path.join("rl_paradox", "results.json"))
    ck = run.load_json("paradox_ckpts.json")
    names = ev["names"]
    nS = len(st.seeds)
    gt, px, kl = (np.asarray(res[k], np.float64) for k in ("gt_increase", "proxy_increase", "kl_eval"))
    out = outcomes(gt, kl, st.kl_stop)
    rep = ev["report"]
    acc = np.array([rep[n]["acc_on"] for n in names])
    var = np.array([rep[n]["var"] for n in names])
    per = {k: np.asarray(v, np.float64).reshape(len(names), nS) for k, v in out.items()}
    per["proxy_one_epoch"] = px[1].reshape(len(names), nS)
    table = {n: {"step": ck["steps"][i], "acc_on": rep[n]["acc_on"], "acc_off": rep[n]["acc_off"], "var": rep[n]["var"],
                 **{k: seed_stats(per[k][i]) for k in ("final", "best", "one_epoch", "kl_stop", "proxy_one_epoch")},
                 "stop_epoch_mean": float(per["stop_epoch"][i].mean())} for i, n in enumerate(names)}
    answer = {k: moderate_vs_most_accurate(per[k], acc, st.n_boot) for k in ("final", "best", "kl_stop", "one_epoch")}
    corr = correlation_table(rep, {n: table[n]["proxy_one_epoch"]["mean"] for n in names},
                             {n: table[n]["one_epoch"]["mean"] for n in names}, sources=names)
    best_ck = {k: names[int(np.argmax(per[k].mean(1)))] for k in ("final", "best", "kl_stop", "one_epoch")}
    summary = {"settings": dataclasses.asdict(st), "config": cfg.name, "checkpoints": table, "answer": answer,
               "correlations_one_epoch": corr, "best_checkpoint": best_ck, "most_accurate": names[int(np.argmax(acc))]}
    figs = run.path("figures")
    os.makedirs(figs, exist_ok=True)
    io.save_json(os.path.join(figs, "lm_paradox.json"), summary)
    md = _markdown(run, cfg, st, names, table, answer, corr, best_ck, acc)
    io.save_text(os.path.join(figs, "lm_paradox.md"), md)
    _plot(os.path.join(figs, "lm_paradox.png"), names, table, acc, var)
    publish(figs, ("lm_paradox.md", "lm_paradox.json", "lm_paradox.png"), figures_dir)
    log(md)
    return summary


def _fmt(s):
    return f"{s['mean']:+.3f}±{s['std']:.3f}" if s["std"] == s["std"] else f"{s['mean']:+.3f}"


def _markdown(run, cfg, st, names, table, answer, corr, best_ck, acc):
    where = relative_run_dir(run.out)
    L = ["# Accuracy Paradox sweep (Chen et al.) on the miniature", "",
         (f"Run dir `{where}`; base" if where else "Base")
         + f" config `{cfg.name}`; {st.n_ckpts} checkpoints of the 100 % on-policy RM, "
         f"RLOO {st.epochs} epochs × {len(st.seeds)} seeds from the SFT policy; GT increases in units of r_G's std "
         f"under the SFT policy, mean ± std over seeds. KL stop at {st.kl_stop} nats (epoch boundaries).", "",
         "| ckpt | RM step | on-acc | off-acc | Var | one-epoch GT | final GT | best GT | KL-stop GT "
         "| one-epoch proxy |",
         "|---|---|---|---|---|---|---|---|---|---|"]
    for n in names:
        t = table[n]
        L.append(f"| {n} | {t['step']} | {t['acc_on']:.3f} | {t['acc_off']:.3f} | {t['var']:.3f} | "
                 + " | ".join(_fmt(t[k]) for k in ("one_epoch", "final", "best", "kl_stop", "proxy_one_epoch")) + " |")
    L += ["", "**Does a moderately accurate checkpoint beat the most accurate one?** D = best seed-mean outcome among "
          "the middle-third-accuracy checkpoints − the most accurate checkpoint's (95 % bootstrap CI over seeds, "
          "selection redone per resample); also the mean over the middle third.", ""]
    for k, a in answer.items():
        if a["D"] is None:
            L.append(f"- {k}: no checkpoint in the middle third of the accuracy range")
            continue
        verdict = ("yes" if a["ci"][0] > 0 else "no: the most accurate is better" if a["ci"][1] < 0
                   else "not resolved (CI contains 0)")
        L.append(f"- {k} GT: D = {a['D']:+.3f} [{a['ci'][0]:+.3f}, {a['ci'][1]:+.3f}] → {verdict}; mean of the "
                 "middle "
                 f"third − most accurate {a['D_mean_of_moderate']:+.3f} [{a['ci_mean_of_moderate'][0]:+.3f}, "
                 f"{a['ci_mean_of_moderate'][1]:+.3f}]; best checkpoint overall {best_ck[k]} "
                 f"(on-acc {acc[names.index(best_ck[k])]:.3f}; the most accurate has {acc.max():.3f})")
    L += ["", "**Correlations over the checkpoints with the one-epoch increase (as Table 2):**", "",
          "| measure | proxy Pearson | proxy Spearman | GT Pearson | GT Spearman |", "|---|---|---|---|---|"]
    for m, r in corr.items():
        keys = ("proxy_pearson", "proxy_spearman", "gt_pearson", "gt_spearman")
        L.append(f"| {m} | " + " | ".join(fmt(r[k], "{:+.3f}") for k in keys) + " |")
    return "\n".join(L) + "\n"


def _plot(path, names, table, acc, var):
    plt = io.pyplot()
    keys = (("one_epoch", "one-epoch GT increase"), ("final", "final GT increase"), ("best", "best GT increase"),
            ("kl_stop", "GT increase with KL stop"))
    fig, axes = plt.subplots(1, len(keys), figsize=(4.0 * len(keys), 3.4))
    for ax, (k, lab) in zip(axes, keys):
        m = np.array([table[n][k]["mean"] for n in names])
        s = np.nan_to_num(np.array([table[n][k]["std"] for n in names]))
        ax.errorbar(acc, m, yerr=s, fmt="none", ecolor="0.6", lw=0.8)
        sc = ax.scatter(acc, m, c=var, cmap="viridis", s=28, zorder=3)
        ax.set_xlabel("RM on-policy accuracy (held-out)")
        ax.set_ylabel(lab)
        ax.axhline(0, color="k", lw=0.5)
    fig.colorbar(sc, ax=axes, label="reward variance under the SFT policy")
    io.atomic(lambda tmp: fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png"), path)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------- run
def run(cfg: Config, st: ParadoxSettings, out, log=print, until: str | None = None, figures_dir: str | None = None,
        stop_after_epoch: int | None = None):
    """Run (or resume) the sweep. ``stop_after_epoch`` (testing) interrupts the RL stage."""

    def own_stages(rd):
        return {"ckpts": lambda: stage_ckpts(cfg, st, rd, log), "rm_eval": lambda: stage_rm_eval(cfg, st, rd, log),
                "rl": lambda: stage_rl(cfg, st, rd, log, stop_after_epoch),
                "analyze": lambda: stage_analyze(cfg, st, rd, log, figures_dir)}

    return common.run_study("paradox", cfg, st, out, own_stages, MARKER, log, until)
