"""The miniature Section 4.1 pipeline: stages, artifacts and resume.

Each stage is a function ``stage(cfg, out, log)`` that writes its artifacts atomically into the run
directory and is skipped when they already exist. The RL stage also checkpoints after every epoch and
resumes from the last one; every random number is a function of the config's seeds, so an interrupted and
resumed run gives the same numbers as an uninterrupted one.
"""

from __future__ import annotations

import glob
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import rmtheory

from .. import io
from . import task as T
from .config import MIXES, RM_SOURCES, SOURCES, Config
from .model import RewardModel, param_count, sequence_logprob
from .reward_model import build_mixes, score, stack, train_rms, unstack
from .rloo import PromptSet, SourceConsts, make_rl
from .sampling import sample
from .sft import init_policy, train_sft

STAGES = ("data", "sft", "prefs", "rm", "perfect", "evaluate", "rl", "analyze")


def path(out, name):
    return os.path.join(out, name)


def save_config(cfg: Config, out: str):
    """Write config.json, or check that an existing one matches (a run dir belongs to one config)."""
    p = path(out, "config.json")
    if os.path.exists(p):
        old = Config.from_dict(io.load_json(p))
        if old != cfg:
            raise ValueError(f"{p} holds a different config; use a fresh --out directory or the same config")
        return
    os.makedirs(out, exist_ok=True)
    io.save_json(p, __import__("json").loads(cfg.to_json()))


def load_config(out: str) -> Config:
    return Config.from_dict(io.load_json(path(out, "config.json")))


# --------------------------------------------------------------------------------------------- data
def stage_data(cfg: Config, out: str, log=print):
    """Prompts (disjoint test / RM / PG splits), their off-policy pairs, the eval-prompt subset."""
    p = path(out, "data.npz")
    if os.path.exists(p):
        return
    spec = cfg.task
    n = cfg.n_train + cfg.n_test
    pr = T.unique_prompts(jax.random.PRNGKey(cfg.seeds.split), spec, int(n * 1.6) + 64)
    ch, rj, tied = T.offpolicy_pairs(jax.random.PRNGKey(cfg.seeds.offpolicy), spec, jnp.asarray(pr["target"]),
                                     jnp.asarray(pr["tlen"]))
    keep = np.flatnonzero(~np.asarray(tied))
    if keep.size < n:
        raise ValueError(f"only {keep.size} prompts with untied off-policy pairs; need {n}")
    keep = keep[np.asarray(jax.random.permutation(jax.random.PRNGKey(cfg.seeds.split + 1), keep.size))][:n]
    test, rm, pg = keep[: cfg.n_test], keep[cfg.n_test : cfg.n_test + cfg.n_rm], keep[cfg.n_test + cfg.n_rm :]
    eval_idx = np.asarray(jax.random.permutation(jax.random.PRNGKey(cfg.seeds.eval), pg.size))[: cfg.n_eval_prompts]
    arrays = {}
    for name, idx in (("test", test), ("rm", rm), ("pg", pg)):
        arrays[f"{name}_id"] = idx.astype(np.int32)
    for key in ("tokens", "target", "tlen"):
        arrays[key] = pr[key]  # all drawn prompts; the *_id arrays index into them
    arrays["off_chosen"], arrays["off_rejected"] = np.asarray(ch), np.asarray(rj)
    arrays["eval_idx"] = eval_idx.astype(np.int32)  # positions within pg_id
    io.save_npz(p, **arrays)
    log(f"  prompts: {cfg.n_rm} RM / {cfg.n_pg} PG / {cfg.n_test} test; off-policy pairs relabelled by r_G")


def load_data(out):
    return io.load_npz(path(out, "data.npz"))


def prompt_set(d, ids, scale=None):
    scale = np.ones(len(ids), np.float32) if scale is None else scale
    return PromptSet(jnp.asarray(d["tokens"][ids]), jnp.asarray(d["target"][ids]), jnp.asarray(d["tlen"][ids]),
                     jnp.asarray(scale, jnp.float32))


# ---------------------------------------------------------------------------------------------- sft
def policy_like(cfg):
    return init_policy(cfg)


def stage_sft(cfg: Config, out: str, log=print):
    p = path(out, "sft.eqx")
    if os.path.exists(p):
        return
    model, losses = train_sft(cfg, log)
    io.save_json(path(out, "sft_log.json"), {"loss": losses, "params": param_count(model)})
    io.save_tree(p, model)


def load_policy(cfg, out):
    return io.load_tree(path(out, "sft.eqx"), policy_like(cfg))


_sample_tokens = jax.jit(lambda m, pr, k, L: sample(m, pr, k, L)[0], static_argnums=3)


def sample_np(model, prompts, key, cfg, batch=4096):
    """Sample in chunks (each chunk's key is fold_in(key, chunk index)); returns tokens [N, T]."""
    outs = [np.asarray(_sample_tokens(model, jnp.asarray(prompts[i : i + batch]), jax.random.fold_in(key, i // batch),
                                      cfg.task.resp_len)) for i in range(0, len(prompts), batch)]
    return np.concatenate(outs)


# -------------------------------------------------------------------------------------------- prefs
def stage_prefs(cfg: Config, out: str, log=print):
    """On-policy pairs: 2 samples per RM prompt from the initial policy, ordered by r_G (ties flagged)."""
    p = path(out, "prefs.npz")
    if os.path.exists(p):
        return
    d, pol = load_data(out), load_policy(cfg, out)
    ids = d["rm_id"]
    prompts = np.repeat(d["tokens"][ids], 2, axis=0)
    toks = sample_np(pol, prompts, jax.random.PRNGKey(cfg.seeds.prefs), cfg).reshape(len(ids), 2, -1)
    P = cfg.task.prompt_len
    ch, rj, tied = T.order_pair(jnp.asarray(toks[:, 0, P:]), jnp.asarray(toks[:, 1, P:]),
                                jnp.asarray(d["target"][ids]), jnp.asarray(d["tlen"][ids]), cfg.n_content)
    tied = np.asarray(tied)
    io.save_npz(p, on_chosen=np.asarray(ch), on_rejected=np.asarray(rj), tied=tied)
    log(f"  on-policy pairs: {len(ids)} drawn, {tied.sum()} tied under r_G (dropped)")


# ----------------------------------------------------------------------------------------------- rm
def stage_rm(cfg: Config, out: str, log=print):
    p = path(out, "rms.eqx")
    if os.path.exists(p):
        return
    d, pol, pf = load_data(out), load_policy(cfg, out), io.load_npz(path(out, "prefs.npz"))
    ids = d["rm_id"]
    usable = np.flatnonzero(~pf["tied"])
    prompts = d["tokens"][ids][usable]
    full = lambda resp: np.concatenate([prompts, resp[usable]], axis=1)  # noqa: E731
    mix_perm = np.asarray(jax.random.permutation(jax.random.PRNGKey(cfg.seeds.mix), usable.size))
    chosen, rejected = build_mixes(mix_perm, full(pf["on_chosen"]), full(pf["on_rejected"]),
                                   full(d["off_chosen"][ids]), full(d["off_rejected"][ids]), MIXES)
    rms, losses = train_rms(cfg, pol, chosen, rejected, log)
    io.save_json(path(out, "rm_log.json"), {"n_pairs": int(usable.size), "loss": losses.tolist(),
                                            "mixes": list(MIXES)})
    io.save_tree(p, rms)


def load_rms(cfg, out):
    pol = policy_like(cfg)
    like = stack([RewardModel.from_policy(jax.random.PRNGKey(0), pol) for _ in MIXES])
    return io.load_tree(path(out, "rms.eqx"), like)


# ------------------------------------------------------------------------------------------ perfect
def stage_perfect(cfg: Config, out: str, log=print):
    """The perfect-accuracy low-variance source: r_G × perfect_factor on a fixed random
    ``perfect_fraction`` of the PG prompts (and, for held-out evaluation, of the test prompts)."""
    p = path(out, "perfect.npz")
    if os.path.exists(p):
        return
    d = load_data(out)
    res = {}
    for i, split in enumerate(("pg", "test")):
        n = d[f"{split}_id"].size
        perm = np.asarray(jax.random.permutation(jax.random.fold_in(jax.random.PRNGKey(cfg.seeds.scaled), i), n))
        s = np.ones(n, np.float32)
        s[perm[: int(round(cfg.perfect_fraction * n))]] = cfg.perfect_factor
        res[f"scale_{split}"] = s
    io.save_npz(p, **res)
    log(f"  scaled {int((res['scale_pg'] != 1).sum())}/{res['scale_pg'].size} PG prompts by {cfg.perfect_factor}")


# ----------------------------------------------------------------------------------------- evaluate
def stage_evaluate(cfg: Config, out: str, log=print):
    """RM evaluation on n_eval PG prompts × n_eval_samples initial-policy samples (rmtheory.rm_report)."""
    p = path(out, "rm_eval.json")
    if os.path.exists(p):
        return
    d, pol, rms, pf = load_data(out), load_policy(cfg, out), load_rms(cfg, out), io.load_npz(path(out, "perfect.npz"))
    P, K = cfg.task.prompt_len, cfg.n_eval_samples
    pos = d["eval_idx"]
    ids = d["pg_id"][pos]
    scale = pf["scale_pg"][pos]
    toks = sample_np(pol, np.repeat(d["tokens"][ids], K, axis=0), jax.random.PRNGKey(cfg.seeds.eval + 1), cfg)
    target, tlen = np.repeat(d["target"][ids], K, axis=0), np.repeat(d["tlen"][ids], K, axis=0)
    gt = np.asarray(T.ground_truth(target, tlen, toks[:, P:], cfg.n_content)).reshape(-1, K)
    off_full = {w: np.concatenate([d["tokens"][ids], d[f"off_{w}"][ids]], axis=1) for w in ("chosen", "rejected")}
    off_gt = {w: np.asarray(T.ground_truth(d["target"][ids], d["tlen"][ids], d[f"off_{w}"][ids], cfg.n_content)) for w in off_full}
    scores, off = {}, {}
    for i, name in enumerate(RM_SOURCES):
        rm = unstack(rms, i)
        scores[name] = score(rm, toks).reshape(-1, K)
        off[name] = {w: score(rm, off_full[w]) for w in off_full}
    scores["perfect_lowvar"] = gt * scale[:, None]
    off["perfect_lowvar"] = {w: off_gt[w] * scale for w in off_full}
    scores["ground_truth"] = gt
    off["ground_truth"] = dict(off_gt)
    report, per_prompt, stats = {}, {}, {}
    for name in SOURCES:
        report[name] = {}
        for scheme in ("global", "prompt_variance"):
            r = rmtheory.rm_report(scores[name], gt, off[name]["chosen"], off[name]["rejected"], off_gt["chosen"],
                                   off_gt["rejected"], scheme=scheme)
            report[name][scheme] = {k: getattr(r, k) for k in ("var", "acc_on", "acc_off", "on_off", "var_acc", "mean", "std")}
            if scheme == cfg.norm_scheme:
                per_prompt.update({f"{name}.variance": r.variance, f"{name}.on_accuracy": r.on_accuracy,
                                   f"{name}.off_correct": r.off_correct})
        stats[name] = list(rmtheory.normalisation_stats(scores[name], cfg.norm_scheme))
    # files in the format of `rmtheory evaluate`
    rows = [[int(ids[i]), j] + [float(scores[s][i, j]) for s in SOURCES] for i in range(len(ids)) for j in range(K)]
    io.save_csv(path(out, "eval_rewards.csv"), ["prompt_id", "sample_id", *SOURCES], rows)
    srcs = [s for s in SOURCES if s != "ground_truth"]
    hdr = ["prompt_id"] + [f"{s}.{w}" for s in srcs for w in ("chosen", "rejected")] + ["ground_truth.chosen", "ground_truth.rejected"]
    rows = [[int(ids[i])] + [float(off[s][w][i]) for s in srcs for w in ("chosen", "rejected")]
            + [float(off_gt["chosen"][i]), float(off_gt["rejected"][i])] for i in range(len(ids))]
    io.save_csv(path(out, "eval_offpolicy.csv"), hdr, rows)
    io.save_npz(path(out, "eval_per_prompt.npz"), prompt_id=ids, scores=np.stack([scores[s] for s in SOURCES]),
                **per_prompt)
    io.save_json(p, {"report": report, "norm_stats": stats, "norm_scheme": cfg.norm_scheme,
                     "initial_gt_mean": float(gt.mean()), "sources": list(SOURCES)})
    log("  " + "  ".join(f"{s}: Var {report[s][cfg.norm_scheme]['var']:.3f} on {report[s][cfg.norm_scheme]['acc_on']:.3f} "
                         f"off {report[s][cfg.norm_scheme]['acc_off']:.3f}" for s in SOURCES[:5]))


# ----------------------------------------------------------------------------------------------- rl
def rl_runs(cfg):
    """Run order: source-major, then seed."""
    return [(s, seed) for s in SOURCES for seed in cfg.seeds.rl]


def stage_rl(cfg: Config, out: str, log=print, stop_after_epoch: int | None = None):
    """RLOO/GRPO with every source × seed; checkpoint after every epoch; results in rl/results.json.

    ``stop_after_epoch`` (testing) returns after saving that epoch's checkpoint, like an interruption.
    """
    rdir = path(out, "rl")
    res_p = path(rdir, "results.json")
    if os.path.exists(res_p):
        return
    os.makedirs(rdir, exist_ok=True)
    d, ref, rms, pf = load_data(out), load_policy(cfg, out), load_rms(cfg, out), io.load_npz(path(out, "perfect.npz"))
    ev = io.load_json(path(out, "rm_eval.json"))
    stats = ev["norm_stats"]
    runs = rl_runs(cfg)
    R = len(runs)
    pg = prompt_set(d, d["pg_id"], pf["scale_pg"])
    test_ids = d["test_id"][: cfg.n_policy_eval_prompts]
    evs = prompt_set(d, test_ids, pf["scale_test"][: cfg.n_policy_eval_prompts])
    opt = optax.adam(cfg.rl_lr)
    update_epoch, evaluate = make_rl(cfg, ref, pg, evs, tuple(stats["ground_truth"]), opt)
    src_idx = [SOURCES.index(s) for s, _ in runs]
    consts = SourceConsts(
        w_rm=jnp.asarray([1.0 if i < 5 else 0.0 for i in src_idx], jnp.float32),
        w_gt=jnp.asarray([0.0 if i < 5 else 1.0 for i in src_idx], jnp.float32),
        use_scale=jnp.asarray([s == "perfect_lowvar" for s, _ in runs]),
        mu=jnp.asarray([stats[s][0] for s, _ in runs], jnp.float32),
        sigma=jnp.asarray([stats[s][1] for s, _ in runs], jnp.float32),
        seed=jnp.asarray([seed for _, seed in runs], jnp.int32))
    run_rms = jax.tree_util.tree_map(lambda x: x[jnp.asarray([min(i, 4) for i in src_idx])], rms)
    policies = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (R,) + x.shape), ref)
    opt_states = jax.vmap(opt.init)(policies)
    prog_p = path(rdir, "progress.json")
    if os.path.exists(prog_p):
        prog = io.load_json(prog_p)
        e0 = prog["epoch"]
        policies, opt_states = io.load_tree(path(rdir, f"state_e{e0}.eqx"), (policies, opt_states))
        log(f"  resuming RL from epoch {e0}")
    else:
        t = time.time()
        m0 = {k: np.asarray(v).tolist() for k, v in evaluate(policies, run_rms, consts, 0).items()}
        prog = {"epoch": 0, "eval": [m0], "train": []}
        log(f"  epoch 0 evaluated ({time.time() - t:.1f}s)")
        e0 = 0
    for e in range(e0 + 1, cfg.rl_epochs + 1):
        t = time.time()
        policies, opt_states, tm = update_epoch(policies, opt_states, run_rms, consts, e - 1)
        em = evaluate(policies, run_rms, consts, e)
        prog["train"].append({k: np.asarray(v).tolist() for k, v in tm.items()})
        prog["eval"].append({k: np.asarray(v).tolist() for k, v in em.items()})
        prog["epoch"] = e
        io.save_tree(path(rdir, f"state_e{e}.eqx"), (policies, opt_states))
        io.save_json(prog_p, prog)
        for old in glob.glob(path(rdir, "state_e*.eqx")):
            if old != path(rdir, f"state_e{e}.eqx"):
                os.remove(old)
        inc = _increases(prog)
        msg = "  ".join(f"{s}: {np.mean(inc['proxy'][e][[i for i, r in enumerate(runs) if r[0] == s]]):+.3f}/"
                        f"{np.mean(inc['gt'][e][[i for i, r in enumerate(runs) if r[0] == s]]):+.3f}" for s in SOURCES)
        log(f"  rl epoch {e}/{cfg.rl_epochs} ({time.time() - t:.1f}s) proxy/GT increase: {msg}")
        if stop_after_epoch is not None and e >= stop_after_epoch:
            return
    inc = _increases(prog)
    kl_train = np.zeros((cfg.rl_epochs + 1, R))
    for e, tm in enumerate(prog["train"], start=1):
        kl_train[e] = np.asarray(tm["kl"])[:, -cfg.kl_window:].mean(-1)
    results = {"runs": [{"source": s, "seed": seed} for s, seed in runs],
               "proxy_increase": inc["proxy"].tolist(), "gt_increase": inc["gt"].tolist(),
               "kl_train": kl_train.tolist(), "kl_eval": np.asarray([m["kl"] for m in prog["eval"]]).tolist(),
               "gt_raw": np.asarray([m["gt_raw"] for m in prog["eval"]]).tolist(),
               "max_abs_adv_sum": float(max(np.max(np.asarray(tm["adv_sum"])) for tm in prog["train"]))}
    io.save_json(res_p, results)


def _increases(prog):
    ev = prog["eval"]
    proxy = np.asarray([m["proxy"] for m in ev])
    gt = np.asarray([m["gt"] for m in ev])
    return {"proxy": proxy - proxy[0], "gt": gt - gt[0]}


# ------------------------------------------------------------------------------------------ analyze
def stage_analyze(cfg: Config, out: str, log=print, figures_dir: str | None = None):
    from .analysis import analyze

    return analyze(out, figures_dir=figures_dir, log=log)


STAGE_FUNCS = {"data": stage_data, "sft": stage_sft, "prefs": stage_prefs, "rm": stage_rm,
               "perfect": stage_perfect, "evaluate": stage_evaluate, "rl": stage_rl, "analyze": stage_analyze}


def run(cfg: Config, out: str, log=print, until: str | None = None, figures_dir: str | None = None):
    """Run (or resume) every stage up to and including ``until``."""
    if until is not None and until not in STAGES:
        raise ValueError(f"until must be one of {STAGES}; got {until!r}")
    save_config(cfg, out)
    t0 = time.time()
    summary = None
    for st in STAGES:
        t = time.time()
        log(f"[{st}]")
        if st == "analyze":
            summary = stage_analyze(cfg, out, log, figures_dir)
        else:
            STAGE_FUNCS[st](cfg, out, log)
        log(f"[{st}] done in {time.time() - t:.1f}s (total {time.time() - t0:.1f}s)")
        if st == until:
            break
    return summary
