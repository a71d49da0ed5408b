"""Adam's first-order rate, measured: the expected change of the ground truth after n ``optax.adam`` steps on
RLOO's minibatch gradient against the predictions of ``docs/teaching_rate.md`` §7.

Usage::

    python experiments/adam_geometry.py [--quick] [--seed 0] [--out DIR]

Writes ``adam_geometry.json`` and ``adam_geometry.md`` to ``DIR`` (default ``figures``; ``figures-quick`` with
``--quick``). Three parts:

(a) **Tabular instances** (``rmtheory.random_instance``; P prompts × |Y| outputs, one logit column per prompt) and
(b) **MLP policies** (``rmtheory.MLP``, parameters shared by the prompts; outputs sampled from the exact
``policy.log_probs(params)``). Each step draws K outputs per prompt, forms RLOO's advantages α and the minibatch
gradient G = (1/(P K)) Σ α ∇ log π (autodiff of the surrogate), and takes one ``optax.adam`` (b1 = 0.9,
b2 = 0.999, ε = 1e-8) ascent step; SGD (``optax.sgd``) on the same gradients is the control. The measured
quantity is the Monte-Carlo mean over seeded runs of the true change V̄_G(θ_n) − V̄_G(θ_0), n ∈ {1, 3, 10, 30},
at several learning rates. The predictions, all from exact moments (outputs enumerated, θ = θ_0):

* ``adam``: n·lr·⟨∇V̄_G, d⟩, d = ḡ/(√(ḡ² + Var G) + ε), Var G the exact per-coordinate variance of G (RLOO's
  within-prompt correlation included);
* ``adam_acc``: the same with σ²/m as :class:`rmtheory.RateAccumulator` forms it (the pooled variance of the
  single-sample terms α g over all P K samples, m = P K);
* ``sign``: n·lr·⟨∇V̄_G, sign ḡ⟩;
* ``step1``: n·lr·⟨∇V̄_G, E[G/(|G| + ε)]⟩, Adam's exact first-step direction (tabular: by enumerating every draw
  of a prompt's K samples; MLP: not computed) and ``step1_erf``, its Gaussian form erf(ḡ/√(2 Var G));
* ``stationary``: lr·E[Σ_{t≤n} ⟨∇V̄_G, m̂_t/(√v̂_t + ε)⟩] with θ frozen at θ_0 (Monte Carlo on the same seeds):
  exact under the stationary-noise assumption, Jensen's inequality and momentum included;
* ``sgd``: n·lr·⟨∇V̄_G, ḡ⟩, against SGD's Monte Carlo.

(c) **Gaussian model**: E[m̂_t/√v̂_t] of ``optax.adam`` on i.i.d. N(ḡ, s²) gradients of one coordinate, over t,
relative to ḡ/√(ḡ² + s²), for a few ḡ/s: how far from the ratio of expectations the first steps are.

Every random draw comes from ``--seed`` (instances: fold_in(seed, i); Monte Carlo: fold_in(seed + 1, i)).
"""

from __future__ import annotations

import argparse
import functools
import itertools
import math
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

import rmtheory
from rmtheory import io
from rmtheory._ascent import rloo_advantages
from rmtheory._optimizer_rate import adam_direction, sign_direction
from rmtheory._progress import Progress

NS = (1, 3, 10, 30)
LRS = (1e-3, 1e-2, 1e-1)
EPS = 1e-8
PREDICTORS = ("adam", "adam_acc", "sign", "step1", "step1_erf", "stationary")
DEFAULT = dict(n_tabular=16, n_mlp=8, seeds_tabular=4000, seeds_mlp=2000)
QUICK = dict(n_tabular=3, n_mlp=2, seeds_tabular=400, seeds_mlp=200)
P, K = 4, 4                      # prompts per step, samples per prompt
TAB_OUTPUTS = 6
MLP_SHAPE = dict(vocab=3, length=2, embed=4, hidden=12)


# ------------------------------------------------------------------------------------------ models
@functools.lru_cache(maxsize=None)
def tabular_logp(n_prompts: int, n_outputs: int):
    """log π over the flat logits θ [P·|Y|] of a tabular policy: a static function for ``jit``."""
    def logp(flat):
        return jax.nn.log_softmax(flat.reshape(n_prompts, n_outputs), -1)
    return logp


_MLP_UNRAVEL: dict = {}


@functools.lru_cache(maxsize=None)
def mlp_logp(policy: rmtheory.MLP):
    """log π over the flat parameters of ``policy`` (one unravelling per policy shape)."""
    if policy not in _MLP_UNRAVEL:
        _MLP_UNRAVEL[policy] = ravel_pytree(policy.init(jax.random.PRNGKey(0)))[1]
    unravel = _MLP_UNRAVEL[policy]

    def logp(flat):
        return policy.log_probs(unravel(flat))
    return logp


def _ground_truth(key, r_rm):
    """r_G = w r_RM + (1 − w) ξ, w ~ U[0.5, 1], ξ ~ U[−1, 1] per output: a ground truth the RM partly tracks."""
    k1, k2 = jax.random.split(key)
    w = jax.random.uniform(k1, (), jnp.float64, 0.5, 1.0)
    return w * r_rm + (1.0 - w) * jax.random.uniform(k2, r_rm.shape, jnp.float64, -1.0, 1.0)


def tabular_model(key, n_prompts: int = P, n_outputs: int = TAB_OUTPUTS):
    """(logp_fn, θ_0 flat, r_RM, r_G) of a random tabular instance (logits N(0, 1), rewards U[−1, 1])."""
    k1, k2 = jax.random.split(key)
    inst = rmtheory.random_instance(k1, n_prompts, n_outputs)
    return tabular_logp(n_prompts, n_outputs), inst.logits.ravel(), inst.reward, _ground_truth(k2, inst.reward)


def mlp_model(key, n_prompts: int = P):
    """(logp_fn, θ_0 flat, r_RM, r_G) of a random MLP policy (rewards U[−1, 1] over Y = V^L)."""
    policy = rmtheory.MLP(n_prompts, **MLP_SHAPE)
    k1, k2, k3 = jax.random.split(key, 3)
    flat = ravel_pytree(policy.init(k1))[0]
    r_rm = jax.random.uniform(k2, (n_prompts, policy.n_outputs), jnp.float64, -1.0, 1.0)
    return mlp_logp(policy), flat, r_rm, _ground_truth(k3, r_rm)


# ------------------------------------------------------------------------------------------ exact moments
def exact_moments(logp_fn, flat, r_rm, r_g, k: int):
    """Exact first-order quantities at θ = ``flat`` (numpy float64), from the score vectors J[x, y] = ∇ log π(y|x):

    u = ∇V̄_G; ḡ = E G (= ∇φ); var_g = Var G per coordinate, with the RLOO minibatch of k samples per prompt:
    Var û_x = Var((b − E b) g)/k + ((E[b g])² + Var(b) E[g²])/(k(k − 1)) (``docs/teaching_rate.md`` §7) and
    Var G = Σ_x Var û_x / P²; var_acc = the pooled variance over all P k samples of the single terms α g (what
    ``RateAccumulator`` estimates), whose σ²/m takes m = P k."""
    logp = logp_fn(flat)
    pi = np.exp(np.asarray(logp))
    jac = np.asarray(jax.jacfwd(logp_fn)(flat))                        # [P, Y, D]
    r_rm, r_g = np.asarray(r_rm), np.asarray(r_g)
    n_p = pi.shape[0]
    u = np.einsum("py,py,pyd->d", pi, r_g, jac) / n_p
    c = r_rm - np.sum(pi * r_rm, -1, keepdims=True)
    v = np.einsum("py,py,pyd->pd", pi, c, jac)                          # E[b g] per prompt
    e_c2g2 = np.einsum("py,py,pyd->pd", pi, c * c, jac * jac)
    var_b = np.sum(pi * c * c, -1)[:, None]
    e_g2 = np.einsum("py,pyd->pd", pi, jac * jac)
    var_u = (e_c2g2 - v * v) / k + (v * v + var_b * e_g2) / (k * (k - 1))
    gbar = v.mean(0)
    e_term2 = e_c2g2 + var_b * e_g2 / (k - 1)                         # E[(α g)²] per prompt
    return dict(u=u, gbar=gbar, var_g=var_u.sum(0) / n_p**2, var_acc=e_term2.mean(0) - gbar**2, jac=jac, pi=pi)


def tabular_step1(pi, r_rm, k: int, eps: float = EPS):
    """E[G/(|G| + ε)] per coordinate [P·|Y|] (Adam's first step), with mean and variance of G, by enumerating
    every ordered draw of a prompt's k samples (|Y|^k of them)."""
    n_p, n_y = pi.shape
    draws = np.array(list(itertools.product(range(n_y), repeat=k)))    # [|Y|^k, k]
    step, mean, var = [], [], []
    for x in range(n_p):
        prob = np.prod(pi[x][draws], -1)
        alpha = np.asarray(rloo_advantages(jnp.asarray(r_rm[x][draws])))
        onehot = np.eye(n_y)[draws]                                     # [n, k, Y]
        g = np.einsum("nk,nky->ny", alpha, onehot - pi[x]) / (n_p * k)
        step.append(prob @ (g / (np.abs(g) + eps)))
        mean.append(prob @ g)
        var.append(prob @ g**2 - (prob @ g) ** 2)
    return np.concatenate(step), np.concatenate(mean), np.concatenate(var)


# ------------------------------------------------------------------------------------------ Monte Carlo
def _minibatch_gradient(logp_fn, flat, r_rm, key, k):
    """RLOO's minibatch gradient at θ: k outputs per prompt from π_θ, G = ∇_θ (1/(P k)) Σ α log π(y|x)."""
    logp, vjp = jax.vjp(logp_fn, flat)
    n_p, n_y = logp.shape
    ys = jax.random.categorical(key, jax.lax.stop_gradient(logp)[:, None, :], axis=-1, shape=(n_p, k))
    alpha = rloo_advantages(jnp.take_along_axis(r_rm, ys, -1))
    cot = jnp.einsum("pk,pky->py", alpha, jax.nn.one_hot(ys, n_y, dtype=logp.dtype)) / (n_p * k)
    return vjp(cot)[0], cot


@functools.partial(jax.jit, static_argnames=("logp_fn", "k", "n_max"))
def monte_carlo(logp_fn, flat0, r_rm, r_g, jac, u, lrs, keys, k: int, n_max: int):
    """The true changes V̄_G(θ_t) − V̄_G(θ_0), t = 1 … n_max, of Adam and SGD [L, R, n_max] for every learning
    rate and seed, and the frozen-θ sums Σ_{s≤t} ⟨u, m̂_s/(√v̂_s + ε)⟩ [R, n_max] on the same keys (lr = 1;
    the score vectors ``jac`` at θ_0 give the frozen gradients)."""

    def value(f):
        return jnp.mean(jnp.sum(jnp.exp(logp_fn(f)) * r_g, -1))

    v0 = value(flat0)

    def run(opt, key):
        def step(c, kk):
            f, s = c
            g, _ = _minibatch_gradient(logp_fn, f, r_rm, kk, k)
            upd, s = opt.update(-g, s, f)          # optax minimises: feed −G for ascent
            f = optax.apply_updates(f, upd)
            return (f, s), value(f) - v0
        _, dv = jax.lax.scan(step, (flat0, opt.init(flat0)), jax.random.split(key, n_max))
        return dv

    def frozen(key):
        opt = optax.adam(1.0, eps=EPS)

        def step(s, kk):
            _, cot = _minibatch_gradient(logp_fn, flat0, r_rm, kk, k)
            g = jnp.einsum("py,pyd->d", cot, jac)
            upd, s = opt.update(-g, s, flat0)
            return s, jnp.vdot(u, upd)
        _, du = jax.lax.scan(step, opt.init(flat0), jax.random.split(key, n_max))
        return jnp.cumsum(du)

    adam = jax.vmap(lambda lr: jax.vmap(lambda kk: run(optax.adam(lr, eps=EPS), kk))(keys))(lrs)
    sgd = jax.vmap(lambda lr: jax.vmap(lambda kk: run(optax.sgd(lr), kk))(keys))(lrs)
    return adam, sgd, jax.vmap(frozen)(keys)


def measure_instance(model, key, n_seeds: int, lrs=LRS, ns=NS, k: int = K, tabular: bool = True):
    """Predictions and Monte-Carlo results of one instance (plain floats and lists, JSON-ready).

    For each predictor p and (lr, n): ``pred`` = n·lr·rate_p (``stationary``: lr × the frozen-θ mean), ``mc`` and
    ``se`` the Monte-Carlo mean and SE of the true change, ``rel`` = (pred − mc)/|mc| and ``rel_se`` = se/|mc|.
    ``stationary``'s relative error is the mean of the paired difference (common random numbers)."""
    logp_fn, flat0, r_rm, r_g = model
    mom = exact_moments(logp_fn, flat0, r_rm, r_g, k)
    u, gbar = mom["u"], mom["gbar"]
    m = np.shape(r_rm)[0] * k                                          # samples per step
    rates = dict(
        adam=float(u @ adam_direction(gbar, mom["var_g"] * m, m, EPS)),
        adam_acc=float(u @ adam_direction(gbar, mom["var_acc"], m, EPS)),
        sign=float(u @ sign_direction(gbar)),
        step1_erf=float(u @ np.asarray(jax.scipy.special.erf(gbar / np.sqrt(2 * np.maximum(mom["var_g"], 1e-300))))),
        sgd=float(u @ gbar),
    )
    check = {}
    if tabular:
        step1, mean_e, var_e = tabular_step1(mom["pi"], np.asarray(r_rm), k)
        rates["step1"] = float(u @ step1)
        check = dict(mean_max_abs_err=float(np.max(np.abs(mean_e - gbar))),
                     var_max_rel_err=float(np.max(np.abs(var_e - mom["var_g"]) / np.maximum(var_e, 1e-300))))
    keys = jax.random.split(key, n_seeds)
    lrs_a = jnp.asarray(lrs, jnp.float64)
    adam, sgd, frozen = (np.asarray(a) for a in monte_carlo(logp_fn, flat0, jnp.asarray(r_rm), jnp.asarray(r_g),
                                                              jnp.asarray(mom["jac"]), jnp.asarray(u), lrs_a, keys,
                                                              k, max(ns)))
    cells = []
    sq = math.sqrt(n_seeds)
    for li, lr in enumerate(lrs):
        for n in ns:
            a = adam[li, :, n - 1]
            s = sgd[li, :, n - 1]
            mc, se = float(a.mean()), float(a.std(ddof=1) / sq)
            mc_s, se_s = float(s.mean()), float(s.std(ddof=1) / sq)
            cell = dict(lr=lr, n=n, mc=mc, se=se, mc_sgd=mc_s, se_sgd=se_s, pred={}, rel={})
            for p in PREDICTORS:
                if p == "stationary":
                    diff = lr * frozen[:, n - 1] - a
                    cell["pred"][p] = float(lr * frozen[:, n - 1].mean())
                    cell["rel"][p] = float(diff.mean() / abs(mc))
                    cell["stationary_rel_se"] = float(diff.std(ddof=1) / sq / abs(mc))
                elif p in rates:
                    cell["pred"][p] = n * lr * rates[p]
                    cell["rel"][p] = (cell["pred"][p] - mc) / abs(mc)
            cell["pred"]["sgd"] = n * lr * rates["sgd"]
            cell["rel"]["sgd"] = (cell["pred"]["sgd"] - mc_s) / abs(mc_s)
            cell["rel_se"], cell["rel_se_sgd"] = se / abs(mc), se_s / abs(mc_s)
            cells.append(cell)
    return dict(rates=rates, dim=int(u.size), cells=cells, enumeration_check=check,
                frac_noise_dominated=float(np.mean(gbar**2 < mom["var_g"])))


# ------------------------------------------------------------------------------------------ Gaussian model
@functools.partial(jax.jit, static_argnames=("n_chains", "n_steps"))
def gaussian_model(ratios, key, n_chains: int, n_steps: int):
    """E[m̂_t/√v̂_t] of ``optax.adam`` (ε = 0) for i.i.d. N(r, 1) gradients, one coordinate per chain: [len(r),
    n_steps] means and SEs (Adam is coordinate-wise, so every chain is one coordinate of one update). Antithetic:
    Adam's step is odd in the gradients, so E step(r + z) = ½ E[step(r + z) − step(−r + z)] with one z for both."""
    opt = optax.adam(1.0, eps=0.0)
    shape = (2, ratios.shape[0], n_chains)
    x0 = jnp.zeros(shape)
    sign = jnp.array([1.0, -1.0])[:, None, None]

    def step(s, kk):
        g = sign * ratios[None, :, None] + jax.random.normal(kk, shape[1:], jnp.float64)[None]
        upd, s = opt.update(-g, s, x0)
        half = 0.5 * (upd[0] - upd[1])
        return s, (half.mean(-1), half.std(-1) / math.sqrt(n_chains))

    _, (mean, se) = jax.lax.scan(step, opt.init(x0), jax.random.split(key, n_steps))
    return mean.T, se.T


def gaussian_table(key, ratios=(0.1, 0.3, 1.0, 3.0), n_chains: int = 20000, horizons=(1, 3, 10, 30, 100, 1000)):
    """Per ḡ/s: E[step_t]/d(t) and the mean over t ≤ n, relative to d = r/√(r² + 1), and erf(r/√2)/d."""
    r = jnp.asarray(ratios, jnp.float64)
    mean, se = (np.asarray(a) for a in gaussian_model(r, key, n_chains, max(horizons)))
    out = []
    for i, ri in enumerate(ratios):
        d = ri / math.sqrt(ri * ri + 1.0)
        out.append(dict(ratio=ri, d=d, erf_over_d=math.erf(ri / math.sqrt(2)) / d,
                        step_over_d={str(t): float(mean[i, t - 1] / d) for t in horizons},
                        step_over_d_se={str(t): float(se[i, t - 1] / d) for t in horizons},
                        cumulative_over_d={str(n): float(mean[i, :n].mean() / d) for n in horizons}))
    return out


# ------------------------------------------------------------------------------------------ summary
def summarise(instances, predictors, lrs=LRS, ns=NS):
    """Per (lr, n) and predictor: median and 10th/90th percentile of the signed relative error, median |rel|,
    the median MC relative SE, the instances used (MC mean farther than 3 SE from 0) and the verdict of the rule
    in ``paper_claims.md`` §6b."""
    rows = []
    for lr in lrs:
        for n in ns:
            cells = [c for inst in instances for c in inst["cells"] if c["lr"] == lr and c["n"] == n]
            row = dict(lr=lr, n=n, preds={})
            for p in (*predictors, "sgd"):
                sgd = p == "sgd"
                use = [c for c in cells if p in c["rel"] and 1.0 / (c["rel_se_sgd" if sgd else "rel_se"]) > 3.0]
                if not use:
                    continue
                rel = np.array([c["rel"][p] for c in use])
                rse = np.array([c["stationary_rel_se" if p == "stationary" else
                                   ("rel_se_sgd" if sgd else "rel_se")] for c in use])
                med_abs, med_se = float(np.median(np.abs(rel))), float(np.median(rse))
                verdict = "undetermined" if med_se > 0.03 else ("holds" if med_abs <= 0.10 else "fails")
                row["preds"][p] = dict(median=float(np.median(rel)), p10=float(np.percentile(rel, 10)),
                                       p90=float(np.percentile(rel, 90)), median_abs=med_abs, median_rel_se=med_se,
                                       n_used=len(use), n_left_out=len(cells) - len(use), verdict=verdict)
            a, s = row["preds"].get("adam"), row["preds"].get("step1") or row["preds"].get("step1_erf")
            if a and s:
                gap = abs(a["median_abs"] - s["median_abs"])
                row["supports"] = ("neither" if gap <= 2 * a["median_rel_se"] else
                                   "adam" if a["median_abs"] < s["median_abs"] else "step1")
            rows.append(row)
    return rows


def markdown(result) -> str:
    lines = ["# Adam's first-order rate against Monte Carlo", "",
             f"Command: `{result['command']}`; {result['runtime_s']:.0f} s. Relative error (pred − MC)/|MC|: median "
             "[10th, 90th percentile] over instances; verdict by the rule of `paper_claims.md` §6b "
             "(holds: median |rel| ≤ 10 % with median MC relative SE ≤ 3 %).", ""]
    for fam in ("tabular", "mlp"):
        res = result[fam]
        preds = [p for p in (*PREDICTORS, "sgd") if p in res["summary"][0]["preds"]]
        lines += [f"## {fam} ({len(res['instances'])} instances, {res['n_seeds']} seeds each, "
                  f"D = {res['instances'][0]['dim']})", "",
                  "Noise-dominated coordinates (ḡ² < Var G): median "
                  f"{np.median([i['frac_noise_dominated'] for i in res['instances']]):.0%} over instances. "
                  "`stationary` is the frozen-θ Monte Carlo on the same seeds (paired).", "",
                  "| lr | n | " + " | ".join(preds) + " | supports | MC rel SE |",
                  "|---|---|" + "---|" * (len(preds) + 2)]
        for row in res["summary"]:
            cells = []
            for p in preds:
                q = row["preds"].get(p)
                cells.append("—" if q is None else
                             f"{q['median']:+.1%} [{q['p10']:+.0%}, {q['p90']:+.0%}] {q['verdict']}")
            se = row["preds"].get("adam", {}).get("median_rel_se", math.nan)
            lines.append(f"| {row['lr']:g} | {row['n']} | " + " | ".join(cells) +
                         f" | {row.get('supports', '—')} | {se:.1%} |")
        lines.append("")
    lines += ["## Gaussian model: E[m̂_t/√v̂_t] / d, d = r/√(r² + 1), gradients N(r, 1)", "",
              "| r = ḡ/s | erf(r/√2)/d | " + " | ".join(f"t = {t}" for t in result["gaussian"][0]["step_over_d"])
              + " | " + " | ".join(f"mean t ≤ {t}" for t in result["gaussian"][0]["cumulative_over_d"]) + " |",
              "|---|---|" + "---|" * (2 * len(result["gaussian"][0]["step_over_d"]))]
    for g in result["gaussian"]:
        lines.append(f"| {g['ratio']:g} | {g['erf_over_d']:.3f} | "
                     + " | ".join(f"{v:.3f}" for v in g["step_over_d"].values()) + " | "
                     + " | ".join(f"{v:.3f}" for v in g["cumulative_over_d"].values()) + " |")
    return "\n".join(lines) + "\n"


def run(quick: bool = False, seed: int = 0, progress=None):
    cfg = QUICK if quick else DEFAULT
    base, mc_base = jax.random.PRNGKey(seed), jax.random.PRNGKey(seed + 1)
    t0 = time.perf_counter()
    out = dict(config=dict(cfg, prompts=P, k=K, tabular_outputs=TAB_OUTPUTS, mlp=MLP_SHAPE, lrs=LRS, ns=NS, eps=EPS,
                           b1=0.9, b2=0.999, seed=seed, quick=quick))
    for fam, n_inst, n_seeds, make in (("tabular", cfg["n_tabular"], cfg["seeds_tabular"], tabular_model),
                                       ("mlp", cfg["n_mlp"], cfg["seeds_mlp"], mlp_model)):
        insts = []
        for i in range(n_inst):
            if progress:
                progress.step(f"{fam} instance {i + 1}/{n_inst} ({n_seeds} seeds)")
            model = make(jax.random.fold_in(base, i + (0 if fam == "tabular" else 10_000)))
            insts.append(measure_instance(model, jax.random.fold_in(mc_base, i + (0 if fam == "tabular" else 10_000)),
                                          n_seeds, tabular=fam == "tabular"))
        preds = [p for p in PREDICTORS if p in insts[0]["cells"][0]["rel"]]
        out[fam] = dict(n_seeds=n_seeds, instances=insts, summary=summarise(insts, preds))
    if progress:
        progress.step("Gaussian model")
    out["gaussian"] = gaussian_table(jax.random.fold_in(base, 99_999), n_chains=4000 if quick else 20000)
    out["runtime_s"] = time.perf_counter() - t0
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description="Adam's first-order rate against Monte Carlo (docs/teaching_rate.md "
                                 "§7); writes adam_geometry.{json,md}.")
    ap.add_argument("--quick", action="store_true", help="3 tabular + 2 MLP instances, 400/200 seeds")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="output directory (default figures, or figures-quick with --quick)")
    args = ap.parse_args(argv)
    rmtheory.enable_x64()
    out_dir = args.out or ("figures-quick" if args.quick else "figures")
    io.check_writable(out_dir, directory=True)
    with Progress("adam_geometry", (QUICK if args.quick else DEFAULT)["n_tabular"]
                  + (QUICK if args.quick else DEFAULT)["n_mlp"] + 1) as prog:
        res = run(args.quick, args.seed, prog)
    res["command"] = "python experiments/adam_geometry.py" + (" --quick" if args.quick else "") + \
        (f" --seed {args.seed}" if args.seed else "")
    res["machine"] = dict(python=sys.version.split()[0], jax=jax.__version__, optax=optax.__version__,
                          platform=platform.platform(), cpus=os.cpu_count())
    io.save_json(os.path.join(out_dir, "adam_geometry.json"), res)
    io.save_text(os.path.join(out_dir, "adam_geometry.md"), markdown(res))
    print(f"wrote {out_dir}/adam_geometry.{{json,md}} in {res['runtime_s']:.0f} s")


if __name__ == "__main__":
    main()
