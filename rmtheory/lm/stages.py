"""The stages of the miniature Section 4.1 pipeline but the last (``analyze``: :mod:`.analysis`); the stage
table and ``run`` are in :mod:`.pipeline`.

Every stage is ``stage(cfg, run: RunDir, log)``; it writes its artifacts atomically into the run directory.
The ``rl`` stage also checkpoints after every epoch and resumes from the last one (:mod:`.loop`).
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from .._rm_eval import normalisation_stats, rm_report
from . import task as T
from .config import BASELINES, MIXES, RM_SOURCES, SOURCES, Config
from .measure import (
    curve_set,
    ground_truth,
    increases,
    mean_token_logprob,
    off_policy_eval,
    perfect_scores,
    rm_pairs,
    rm_summary,
    sample_stats,
    sample_tokens,
    save_eval_offpolicy,
    save_eval_rewards,
    save_rm_curves,
    score_models,
    score_pairs,
)
from .model import param_count
from .reward_model import build_mixes, train_rms
from .rl import stacked_rl, train
from .rloo import Scaled, SourceConsts
from .rundir import RunDir
from .sft import train_sft
from .teaching_rate import export_policy_rates


# --------------------------------------------------------------------------------------------- data
def stage_data(cfg: Config, run: RunDir, log=print):
    """Prompts (disjoint test / RM / PG splits), their off-policy pairs, the eval-prompt subset of PG."""
    spec = cfg.task
    n = cfg.n_train + cfg.n_test
    pr = T.unique_prompts(jax.random.PRNGKey(cfg.seeds.split), spec, int(n * 1.6) + 64)
    ch, rj, tied = T.offpolicy_pairs(jax.random.PRNGKey(cfg.seeds.offpolicy), spec, jnp.asarray(pr.target),
                                     jnp.asarray(pr.tlen))
    keep = np.flatnonzero(~np.asarray(tied))
    if keep.size < n:
        raise ValueError(f"only {keep.size} prompts with untied off-policy pairs; need {n}")
    keep = keep[np.asarray(jax.random.permutation(jax.random.PRNGKey(cfg.seeds.split + 1), keep.size))][:n]
    test, rm, pg = keep[: cfg.n_test], keep[cfg.n_test : cfg.n_test + cfg.n_rm], keep[cfg.n_test + cfg.n_rm :]
    eval_idx = np.asarray(jax.random.permutation(jax.random.PRNGKey(cfg.seeds.eval), pg.size))[: cfg.n_eval_prompts]
    arrays = {f"{name}_id": idx.astype(np.int32) for name, idx in (("test", test), ("rm", rm), ("pg", pg))}
    arrays.update({f"prompt_{f}": np.asarray(v) for f, v in zip(T.Prompts._fields, pr)})  # *_id index into these
    arrays["off_chosen"], arrays["off_rejected"] = np.asarray(ch), np.asarray(rj)
    arrays["eval_idx"] = eval_idx.astype(np.int32)  # positions within pg_id
    run.save_npz("data.npz", **arrays)
    log(f"  prompts: {cfg.n_rm} RM / {cfg.n_pg} PG / {cfg.n_test} test; off-policy pairs relabelled by r_G")


# ---------------------------------------------------------------------------------------------- sft
def stage_sft(cfg: Config, run: RunDir, log=print):
    model, losses = train_sft(cfg, log)
    run.save_json("sft_log.json", {"loss": losses, "params": param_count(model)})
    run.save_tree("sft.eqx", model)


# ------------------------------------------------------------------------------------------ samples
def stage_samples(cfg: Config, run: RunDir, log=print):
    """Initial-policy samples: 2 per RM prompt, ordered by r_G (the on-policy pairs; ties flagged), and
    n_eval_samples per PG eval prompt (RM evaluation, normalisation, learning curves)."""
    d, pol = run.data(), run.policy(cfg)
    P = cfg.task.prompt_len
    rm_p = run.prompts("rm", d)
    toks = sample_tokens(pol, np.repeat(rm_p.tokens, 2, axis=0), jax.random.PRNGKey(cfg.seeds.prefs), cfg)
    toks = toks.reshape(rm_p.n, 2, -1)
    ch, rj, tied = T.order_pair(jnp.asarray(toks[:, 0, P:]), jnp.asarray(toks[:, 1, P:]), jnp.asarray(rm_p.target),
                                jnp.asarray(rm_p.tlen), cfg.n_content)
    ev = run.prompts("eval", d)
    K = cfg.n_eval_samples
    ev_toks = sample_tokens(pol, np.repeat(ev.tokens, K, axis=0), jax.random.PRNGKey(cfg.seeds.eval + 1), cfg)
    ev_gt = ground_truth(cfg, ev.repeat(K), ev_toks[:, P:]).reshape(-1, K)
    run.save_npz("samples.npz", on_chosen=np.asarray(ch), on_rejected=np.asarray(rj), tied=np.asarray(tied),
                 eval_tokens=ev_toks, eval_gt=ev_gt)
    log(f"  on-policy pairs: {rm_p.n} drawn, {int(np.sum(tied))} tied under r_G (dropped); "
        f"eval samples: {ev.n} prompts × {K}")


# ----------------------------------------------------------------------------------------------- rm
def stage_rm(cfg: Config, run: RunDir, log=print):
    d, pol, smp = run.data(), run.policy(cfg), run.load_npz("samples.npz")
    pairs = rm_pairs(run, d, smp)
    n = pairs.prompts.n
    mix_perm = np.asarray(jax.random.permutation(jax.random.PRNGKey(cfg.seeds.mix), n))
    chosen, rejected = build_mixes(mix_perm, pairs.full(pairs.on_chosen), pairs.full(pairs.on_rejected),
                                   pairs.full(pairs.off_chosen), pairs.full(pairs.off_rejected),
                                   [MIXES[s] for s in RM_SOURCES])
    rms, losses, curves = train_rms(cfg, pol, chosen, rejected, curve_set(cfg, run, d, smp), log)
    save_rm_curves(run.path("rm_curves.csv"), curves, RM_SOURCES)
    run.save_json("rm_log.json", {"n_pairs": int(n), "steps": int(losses.shape[0]),
                                  "final_train_bt_loss": dict(zip(RM_SOURCES, losses[-50:].mean(0).tolist())),
                                  "mixes": MIXES, "readout": cfg.rm_readout})
    run.save_tree("rms.eqx", rms)


# ------------------------------------------------------------------------------------------ perfect
def stage_perfect(cfg: Config, run: RunDir, log=print):
    """The perfect-accuracy low-variance source's prompt scale s(x): ``perfect_factor`` on a fixed random
    ``perfect_fraction`` of the PG prompts (and, for held-out evaluation, of the test prompts), else 1. Its
    score is (r_G + ``perfect_shift``)·s(x) (:func:`~rmtheory.lm.measure.perfect_scores`)."""
    d = run.data()
    res = {}
    for i, split in enumerate(("pg", "test")):
        n = d[f"{split}_id"].size
        perm = np.asarray(jax.random.permutation(jax.random.fold_in(jax.random.PRNGKey(cfg.seeds.scaled), i), n))
        s = np.ones(n, np.float32)
        s[perm[: int(round(cfg.perfect_fraction * n))]] = cfg.perfect_factor
        res[f"scale_{split}"] = s
    run.save_npz("perfect.npz", **res)
    log(f"  scaled {int((res['scale_pg'] != 1).sum())}/{res['scale_pg'].size} PG prompts by {cfg.perfect_factor}")


# ------------------------------------------------------------------------------------------ rm_eval
def baseline_scores(cfg, pol, prompts: T.Prompts, tokens):
    """The reference scores of full sequences [N, T] for prompts [N]: the SFT policy's mean per-token
    log-probability of the response (up to and including EOS), and two hand-written scores: the number of
    exactly correct letters, and that number minus |len − m|."""
    P = cfg.task.prompt_len
    resp = tokens[:, P:]
    m = prompts.target.shape[-1]
    correct = np.sum(resp[:, :m] == prompts.target, axis=-1).astype(np.float64)
    ylen = np.asarray(T.response_length(jnp.asarray(resp)), np.float64)
    return {"sft_likelihood": mean_token_logprob(pol, tokens, P), "correct_letters": correct,
            "correct_letters_len": correct - np.abs(ylen - prompts.tlen)}


def stage_rm_eval(cfg: Config, run: RunDir, log=print):
    """RM evaluation on n_eval PG prompts × n_eval_samples initial-policy samples (rmtheory.rm_report), the
    reference scores, and the initial-policy validity measurements."""
    d, pol, rms, smp = run.data(), run.policy(cfg), run.rms(cfg), run.load_npz("samples.npz")
    pf = run.load_npz("perfect.npz")
    P, K = cfg.task.prompt_len, cfg.n_eval_samples
    pos = d["eval_idx"]
    ids = d["pg_id"][pos]
    ev = run.prompts("eval", d)
    scale = pf["scale_pg"][pos]
    toks, gt = smp["eval_tokens"], smp["eval_gt"]
    _, off_full, off_gt = off_policy_eval(cfg, run, d)
    scores, off = score_models(rms, RM_SOURCES, toks, K), score_pairs(rms, RM_SOURCES, off_full)
    scores["perfect_lowvar"] = perfect_scores(cfg, gt, scale[:, None])
    off["perfect_lowvar"] = {w: perfect_scores(cfg, off_gt[w], scale) for w in off_full}
    scores["ground_truth"] = gt
    off["ground_truth"] = dict(off_gt)
    base = baseline_scores(cfg, pol, ev.repeat(K), toks)
    base_off = {w: baseline_scores(cfg, pol, ev, off_full[w]) for w in off_full}
    for b in BASELINES:
        scores[b] = base[b].reshape(-1, K)
        off[b] = {w: base_off[w][b] for w in off_full}
    names = SOURCES + BASELINES
    report, per_prompt, stats = {}, {}, {}
    for name in names:
        report[name] = {}
        for scheme in ("global", "prompt_variance"):
            r = rm_report(scores[name], gt, off[name]["chosen"], off[name]["rejected"], off_gt["chosen"],
                                   off_gt["rejected"], scheme=scheme)
            report[name][scheme] = rm_summary(r)
            if scheme == "global":  # RM properties are always reported under the global z-score (Table 9 too)
                per_prompt.update({f"{name}.variance": r.variance, f"{name}.on_accuracy": r.on_accuracy,
                                   f"{name}.off_correct": r.off_correct})
        stats[name] = list(normalisation_stats(scores[name], cfg.norm_scheme))  # used by RL
    # the initial policy's validity measurements
    initial = sample_stats(toks, gt, P)
    initial.update({"gt_mean": float(gt.mean()),
                    "hard_fraction_of_prompts": float(np.mean(ev.hard(cfg.task, cfg.teacher.hard_fraction)))})
    # files in the format of `rmtheory evaluate`
    save_eval_rewards(run.path("eval_rewards.csv"), ids, {s: scores[s] for s in names})
    save_eval_offpolicy(run.path("eval_offpolicy.csv"), ids, {s: off[s] for s in names if s != "ground_truth"},
                        off_gt)
    run.save_npz("eval_per_prompt.npz", prompt_id=ids, scores=np.stack([scores[s] for s in names]), **per_prompt)
    # `evaluate --sketches` files (eval_sketches.npz, eval_projections.npz) and the exact rates (eval_rates.json)
    rates = export_policy_rates(run.path("eval"), cfg, pol, toks, ids,
                                {s: scores[s] for s in names if s != "ground_truth"}, gt)
    run.save_json("rm_eval.json", {"report": report, "norm_stats": stats, "norm_scheme": cfg.norm_scheme,
                                   "rates": rates["sources"],
                                   "initial_policy": initial, "sources": list(SOURCES), "baselines": list(BASELINES)})
    log("  " + "  ".join(f"{s}: Var {report[s]['global']['var']:.3f} on {report[s]['global']['acc_on']:.3f} "
                         f"off {report[s]['global']['acc_off']:.3f}" for s in RM_SOURCES + BASELINES))
    log(f"  initial policy: r_G between-prompt share {initial['gt_between_prompt_share']:.3f}, "
        f"{initial['distinct_per_prompt']:.2f} distinct of {K}, chance on-acc {initial['chance_on_acc']:.3f}")


# ----------------------------------------------------------------------------------------------- rl
def source_seed_runs(cfg) -> list:
    """The RL stage's runs as (source, seed) pairs, source-major."""
    return [(s, seed) for s in SOURCES for seed in cfg.seeds.rl]


def source_consts(runs, stats) -> SourceConsts:
    is_rm = [s in RM_SOURCES for s, _ in runs]
    return SourceConsts(
        w_rm=jnp.asarray([1.0 if r else 0.0 for r in is_rm], jnp.float32),
        w_gt=jnp.asarray([0.0 if r else 1.0 for r in is_rm], jnp.float32),
        use_scale=jnp.asarray([s == "perfect_lowvar" for s, _ in runs]),
        mu=jnp.asarray([stats[s][0] for s, _ in runs], jnp.float32),
        sigma=jnp.asarray([stats[s][1] for s, _ in runs], jnp.float32),
        seed=jnp.asarray([seed for _, seed in runs], jnp.int32))


def stage_rl(cfg: Config, run: RunDir, log=print, stop_after_epoch: int | None = None):
    """RLOO/GRPO with every source × seed, policies evaluated on the PG eval prompts (the paper's 500 × 10) and
    on held-out test prompts; checkpoint after every epoch; results in rl/results.json.

    ``stop_after_epoch`` (testing) returns after saving that epoch's checkpoint, like an interruption.
    """
    os.makedirs(run.path("rl"), exist_ok=True)
    d, ref, rms, pf = run.data(), run.policy(cfg), run.rms(cfg), run.load_npz("perfect.npz")
    stats = run.load_json("rm_eval.json")["norm_stats"]
    runs = source_seed_runs(cfg)
    R = len(runs)
    pg = Scaled.of(run.prompts("pg", d), pf["scale_pg"])
    evsets = {"pg": Scaled.of(run.prompts("eval", d), pf["scale_pg"][d["eval_idx"]]),
              "test": Scaled.of(run.prompts("test", d).take(np.arange(cfg.n_test_eval_prompts)),
                                pf["scale_test"][: cfg.n_test_eval_prompts])}
    rm_index = jnp.asarray([RM_SOURCES.index(s) if s in RM_SOURCES else 0 for s, _ in runs])
    run_rms = jax.tree_util.tree_map(lambda x: x[rm_index], rms)
    policies = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (R,) + x.shape), ref)
    rl = stacked_rl(cfg, pg, evsets, tuple(stats["ground_truth"]), policies, run_rms, source_consts(runs, stats),
                    ref=ref)

    def describe(prog):
        inc, e = increases(prog), prog["epoch"]
        by = {s: [i for i, r in enumerate(runs) if r[0] == s] for s in SOURCES}
        return "proxy/GT increase: " + "  ".join(
            f"{s}: {np.mean(inc['proxy'][e][by[s]]):+.3f}/{np.mean(inc['gt'][e][by[s]]):+.3f}" for s in SOURCES)

    prog = train(run, "rl", rl, cfg.rl_epochs, log, describe, stop_after_epoch)
    if prog is None:
        return
    inc, inc_test = increases(prog), increases(prog, "test")
    kl_train = np.zeros((cfg.rl_epochs + 1, R))
    w = min(cfg.kl_window, cfg.rollouts_per_epoch)
    for e, tm in enumerate(prog["train"], start=1):
        kl_train[e] = np.asarray(tm["kl"])[:, -w:].mean(-1)
    results = {"runs": [{"source": s, "seed": seed} for s, seed in runs],
               "proxy_increase": inc["proxy"].tolist(), "gt_increase": inc["gt"].tolist(),
               "test_proxy_increase": inc_test["proxy"].tolist(), "test_gt_increase": inc_test["gt"].tolist(),
               "kl_train": kl_train.tolist(), "kl_eval": inc["kl"].tolist(),
               "gt_raw": np.asarray([m["pg"]["gt_raw"] for m in prog["eval"]]).tolist(),
               "adam_steps_per_epoch": cfg.adam_steps_per_epoch,
               "max_abs_adv_sum": float(max(np.max(np.asarray(tm["adv_sum"])) for tm in prog["train"]))}
    run.save_json(os.path.join("rl", "results.json"), results)
