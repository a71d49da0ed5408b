"""Figure 7: which rate ranks teachers by the exact ground-truth speed when the prompts share parameters? The
per-prompt rate, the pooled rate and the held-out rate against Var and accuracy, for MLP policies.

Instances: one :class:`rmtheory.MLP` policy each (|X| = 6 prompts, vocabulary 3, length 2, so |Y| = 9; prompt
embedding 4, hidden width 8; every parameter but the prompt embedding e_x is shared by all prompts), θ(0) from
``MLP.init`` with the output layer (W₂, b₂) scaled by σ ∼ U(0.5, 3) per instance, π_ref = π_θ(0). The flow trains
on S = the first 4 prompts (``train_mask``); the other 2 are the held-out set A. λ = 0 (with λ > 0 the flow
settles at the regularised optimum over S, where the explicit integrator's step is bounded by stability: an
unreached target then costs the whole step budget, far beyond this figure's time). r_G ∼ U(−1, 1) per (prompt,
output). Five families of r_RM:

* ``rescaled``: r_RM = s·r_G, s = 10^U(−2, 0) per instance;
* ``noisy``: r_RM(x, ·) = s·(r_G + σ_ε ε)/max_y|r_G + σ_ε ε| per prompt, ε ∼ N(0, I), σ_ε ∼ U(0.1, 2), s as above;
* ``prompt_scaled``: r_RM(x, ·) = s_x·r_G(x, ·), s_x = 10^U(−2, 0) independently per prompt (right everywhere,
  strong on some prompts only);
* ``thm5``: Theorem 5's constructions applied per prompt (``slow_reward`` with accuracy α = 1 − k/36,
  k ∼ U{0..36}, and T = 10^U(0, 2) per instance; or ``fast_reward`` on y^γ(x), the default good output for
  γ(x) = (max r_G(x, ·) − V_G^0(x))/2), half each. They are used as reward models only: the theorem's bounds are
  tabular and do not carry over to an MLP;
* ``random``: r_RM = s·u, u ∼ U(−1, 1) independent of r_G.

Theorem 6's families are left out: they are sets of initial tabular policies, which an MLP initialisation
cannot be set to. Predictors, on θ(0), with u_x = ∇_θ V_G(θ; x), v_x = ∇_θ φ_RLHF(θ; x) (exact gradients,
:func:`rmtheory._neural.per_prompt_gradient`), ū(A) = mean_{x∈A} u_x, v̄(S) = mean_{x∈S} v_x = ∇_θ φ_RLHF:

* ``per-prompt rate`` = (1/|S|) Σ_{x∈S} ⟨u_x, v_x⟩ (the diagonal only);
* ``pooled rate`` = ⟨ū(S), v̄(S)⟩ = (1/|S|²) Σ_{x,x'∈S} ⟨u_x, v_x'⟩ = dV̄_G(S)/dt at t = 0
  (``neural_teaching_rate(..., train_mask=1_S).total``);
* ``held-out rate`` = ⟨ū(A), v̄(S)⟩ = dV̄_G(A)/dt at t = 0 (the mean over A of that call's ``per_prompt``);
* ``Var`` = mean over S of Var_π0[r_RM(x, ·)]; ``acc_on`` and ``acc_uniform`` = means over S of
  ``on_policy_accuracy`` and ``accuracy``; ``On&Off`` and ``Var&Acc`` from ``combined_measures``.

Targets: the exact 1/t_γ (0 when not reached by the horizon :data:`T_MAX`; quick mode: :data:`QUICK_T_MAX` and
looser tolerances) of the averaged ground truth over S,
V̄_G(S) = mean_{x∈S} E_π[r_G(x, ·)] (target ``train``), and over A (``held-out``), under the flow trained on S
(``neural_time_to_gamma`` with ``prompt_weights`` = the indicator of S or of A), at every γ of ``GAMMAS``.
Statistics as figure 6 (its helpers): Spearman, Kendall τ_b, percentile bootstrap 95 % CIs over instances and
paired CIs of Spearman differences against the target's first-order rate (pooled for ``train``, held-out for
``held-out``). The decision rule is stated in ``paper_claims.md`` §8b.
"""

from __future__ import annotations

import functools
import sys

import jax
import jax.numpy as jnp
import numpy as np

import rmtheory as rt

from .. import _neural, _stats, io
from .._progress import Progress
from .._rm_eval import combined_measures
from ._output import FIGURE_RC, caption, default_out, figure_main, write_figure
from .fig6_teaching_rate import _fmt, _speed, correlate, first_order_decision, write_results

NAME = "fig7_shared_parameters"
POLICY = _neural.MLP(n_prompts=6, vocab=3, length=2, embed=4, hidden=8)
N_OUT, N_PROMPTS, N_TRAIN = POLICY.n_outputs, POLICY.n_prompts, 4
TRAIN = np.arange(N_PROMPTS) < N_TRAIN  # S = the first N_TRAIN prompts; A = the rest
GAMMAS = (3e-3, 1e-2, 3e-2, 0.1, 0.3)
T_MAX = 1e6  # horizon of every t_γ solve (flow time); a target not reached by then counts as 1/t_γ = 0
RTOL = 1e-9  # integrator tolerances (rtol = atol) of every t_γ solve
QUICK_T_MAX, QUICK_RTOL = 1e5, 1e-7  # quick mode (CI): a shorter horizon and looser tolerances, ~2× fewer steps
LAM = 0.0
LANES = 16
FAMILIES = ("rescaled", "noisy", "prompt_scaled", "thm5", "random")
TARGETS = {"train": ("pooled rate", TRAIN), "held-out": ("held-out rate", ~TRAIN)}
OTHERS = ("per-prompt rate", "Var", "acc_on", "acc_uniform", "On&Off", "Var&Acc")
MIN_REACHED = 0.05  # a γ is assessed when at least this fraction of instances reaches the target
CI = 95.0


def names_for(target):
    """The predictors of a target, its first-order rate last (``correlate``'s convention)."""
    if target == "train":
        return list(OTHERS) + ["pooled rate"]
    return list(OTHERS) + ["pooled rate", "held-out rate"]


def _rewards(rng, family, pi0):
    """(r_G, r_RM) [n, |X|, |Y|] for the n instances of one family with initial policies ``pi0``."""
    n = pi0.shape[0]
    r_g = rng.uniform(-1, 1, pi0.shape)
    s = 10.0 ** rng.uniform(-2, 0, (n, 1, 1))
    if family == "rescaled":
        return r_g, s * r_g
    if family == "prompt_scaled":
        return r_g, 10.0 ** rng.uniform(-2, 0, (n, N_PROMPTS, 1)) * r_g
    if family == "noisy":
        noisy = r_g + rng.uniform(0.1, 2.0, (n, 1, 1)) * rng.normal(size=r_g.shape)
        return r_g, s * noisy / np.abs(noisy).max(-1, keepdims=True)
    if family == "random":
        return r_g, s * rng.uniform(-1, 1, r_g.shape)
    r_rm = np.empty_like(r_g)  # thm5: slow (even instances) or fast (odd), prompt by prompt
    n_pairs = N_OUT * (N_OUT - 1) // 2
    for i in range(n):
        slowness, alpha = 10.0 ** rng.uniform(0, 2), 1.0 - rng.integers(0, n_pairs + 1) / n_pairs
        for x in range(N_PROMPTS):
            p, g = pi0[i, x], r_g[i, x]
            if i % 2 == 0:
                r_rm[i, x] = rt.slow_reward(g, slowness, alpha)
            else:
                r_rm[i, x] = rt.fast_reward(p, g, rt.default_y_gamma(p, g, 0.5 * (g.max() - p @ g)))
    return r_g, r_rm


def make_instances(seed: int, n_per_family: int):
    """Initial parameters (a batch pytree, leading axis N), r_G and r_RM [N, |X|, |Y|], λ [N] (= LAM) and the family of
    each instance (families in blocks of ``n_per_family``)."""
    rng = np.random.default_rng([seed, 7])
    n = n_per_family * len(FAMILIES)
    params = _neural.init_batch(POLICY, jax.random.PRNGKey(seed), n)
    sigma = jnp.asarray(rng.uniform(0.5, 3.0, n))
    params = dict(params, w2=params["w2"] * sigma[:, None, None], b2=params["b2"] * sigma[:, None])
    pi0 = np.exp(np.asarray(jax.vmap(POLICY.log_probs)(params)))
    pi0 = pi0 / pi0.sum(-1, keepdims=True)
    parts = [_rewards(rng, f, pi0[k * n_per_family:(k + 1) * n_per_family]) for k, f in enumerate(FAMILIES)]
    r_g, r_rm = (np.concatenate([p[j] for p in parts]) for j in range(2))
    return params, r_g, r_rm, np.full(n, LAM), np.repeat(np.array(FAMILIES), n_per_family)


@functools.lru_cache(maxsize=None)
def _gradients_fn(policy):
    def one(params, r_g, r_rm, lam):
        ref = jax.lax.stop_gradient(policy.log_probs(params))
        xs = jnp.arange(policy.n_prompts)
        u = jax.vmap(lambda x: _neural.per_prompt_gradient(policy, params, r_g, ref, 0.0, x))(xs)
        v = jax.vmap(lambda x: _neural.per_prompt_gradient(policy, params, r_rm, ref, lam, x))(xs)
        return u, v

    return jax.jit(jax.vmap(one))


def prompt_gradients(params, r_g, r_rm, lam):
    """u_x = ∇_θ V_G(θ; x) and v_x = ∇_θ φ_RLHF(θ; x) at θ(0) for every instance and prompt, [N, |X|, D] each."""
    u, v = _gradients_fn(POLICY)(params, jnp.asarray(r_g), jnp.asarray(r_rm), jnp.asarray(lam))
    return np.asarray(u), np.asarray(v)


def predictors(params, r_g, r_rm, lam):
    """Every predictor [N] (module docstring), and the largest relative difference between the pooled and held-out
    rates of ``neural_teaching_rate`` and the same rates assembled from u_x, v_x (a cross-check)."""
    pi = np.exp(np.asarray(jax.vmap(POLICY.log_probs)(params)))
    pi = pi / pi.sum(-1, keepdims=True)
    rates = rt.neural_teaching_rate(POLICY, params, r_rm, r_g, lam=lam, train_mask=TRAIN.astype(float))
    per, pooled = np.asarray(rates.per_prompt), np.asarray(rates.total)
    u, v = prompt_gradients(params, r_g, r_rm, lam)
    v_bar = v[:, TRAIN].mean(1)
    assembled = {"pooled rate": np.einsum("nd,nd->n", u[:, TRAIN].mean(1), v_bar),
                 "held-out rate": np.einsum("nd,nd->n", u[:, ~TRAIN].mean(1), v_bar)}
    s = np.s_[:, TRAIN]
    var = np.asarray(rt.reward_variance(pi, r_rm))[s].mean(1)
    acc_on = np.asarray(rt.on_policy_accuracy(pi, r_rm, r_g))[s].mean(1)
    acc_u = np.asarray(rt.accuracy(r_rm, r_g))[s].mean(1)
    comb = combined_measures(var, acc_on, acc_u)
    out = {"per-prompt rate": np.einsum("nxd,nxd->nx", u, v)[s].mean(1), "pooled rate": pooled,
           "held-out rate": per[:, ~TRAIN].mean(1), "Var": var, "acc_on": acc_on, "acc_uniform": acc_u,
           "On&Off": comb["on_off"], "Var&Acc": comb["var_acc"]}
    scale = np.maximum(np.abs(out["pooled rate"]).max(), 1e-300)
    check = max(float(np.max(np.abs(assembled[k] - out[k]))) / scale for k in assembled)
    return out, check


def speeds(params, r_g, r_rm, lam, t_max=T_MAX, rtol=RTOL):
    """{(target, γ): exact 1/t_γ [N]} of the averaged ground truth over S (``train``) and A (``held-out``)."""
    out = {}
    for gamma in GAMMAS:
        for target, (_, where) in TARGETS.items():
            res = rt.neural_time_to_gamma(POLICY, params, r_rm, gamma, measure=r_g, lam=lam,
                                          train_mask=TRAIN.astype(float), prompt_weights=where.astype(float),
                                          lanes=LANES, rtol=rtol, atol=rtol, t_max=t_max)
            out[(target, gamma)] = _speed(np.asarray(res.t))
    return out


def run(quick: bool = False, seed: int = 0, out: str | None = None):
    out = default_out(quick) if out is None else out
    n_fam = 20 if quick else 1000
    n_boot = 50 if quick else 500
    t_max, rtol = (QUICK_T_MAX, QUICK_RTOL) if quick else (T_MAX, RTOL)
    with Progress("fig7", 3) as progress:
        progress.step("instances and predictors")
        params, r_g, r_rm, lam, family = make_instances(seed, n_fam)
        preds, check = predictors(params, r_g, r_rm, lam)
        n_inst = len(lam)
        progress.step(f"exact t_γ of the averaged ground truth over S and over A at {len(GAMMAS)} γ "
                      f"({n_inst:,} instances)")
        sp = speeds(params, r_g, r_rm, lam, t_max, rtol)
        progress.step(f"Spearman, Kendall and {n_boot} paired bootstrap resamples")
        rng = np.random.default_rng([seed, 71])
        weights = rng.multinomial(n_inst, np.full(n_inst, 1.0 / n_inst), size=n_boot)
        res = correlate(preds, sp, weights, names_for)
    pi0 = np.exp(np.asarray(jax.vmap(POLICY.log_probs)(params)))
    headroom = {t: (r_g.max(-1) - (pi0 * r_g).sum(-1))[:, w].mean(1) for t, (_, w) in TARGETS.items()}
    summary = _summarise(res, n_inst, n_boot, quick, seed, check, headroom, t_max, rtol)
    summary["per_family_spearman"] = _per_family(preds, sp, family)
    return write_results(res, summary, out, NAME, _plot)


def _per_family(preds, sp, fam):
    """Spearman of every predictor with 1/t_γ within each family (point estimates; not part of the decision rule)
    and the fraction of the family's instances that reach the target."""
    out = {}
    for f in FAMILIES:
        m = fam == f
        out[f] = {}
        for (target, g), y in sp.items():
            rec = {p: _stats.spearman(preds[p][m], y[m]) for p in names_for(target)}
            out[f][f"{target} | gamma={g:g}"] = dict(rec, reached=float(np.mean(y[m] > 0)))
    return out


def _summarise(res, n_inst, n_boot, quick, seed, check, headroom, t_max, rtol):
    decision = {target: first_order_decision(res, target, first, GAMMAS, MIN_REACHED)
                for target, (first, _) in TARGETS.items()}
    questions = {"pooled vs per-prompt (train)": ("train", "per-prompt rate"),
                 "held-out vs per-prompt (held-out)": ("held-out", "per-prompt rate"),
                 "held-out vs pooled (held-out)": ("held-out", "pooled rate")}
    primary = {q: [{"gamma": g, "assessed": res[(t, g)]["reached"] >= MIN_REACHED,
                    "paired_diff": res[(t, g)]["predictors"][p]["paired_diff_vs_" + TARGETS[t][0]],
                    "paired_diff_ci": res[(t, g)]["predictors"][p]["paired_diff_ci"],
                    "verdict": res[(t, g)]["predictors"][p]["verdict"]} for g in GAMMAS]
               for q, (t, p) in questions.items()}
    lines = []
    for (target, gamma), rec in res.items():
        first = TARGETS[target][0]
        f, pp = rec["predictors"][first], rec["predictors"]["per-prompt rate"]
        best = max((p for p in rec["predictors"] if p != first),
                   key=lambda p: np.nan_to_num(rec["predictors"][p]["spearman"], nan=-2))
        o = rec["predictors"][best]
        lines.append(f"{target:8s} γ={gamma:<6g} reached {rec['reached']:.2f}: {first} {f['spearman']:+.3f} "
                     f"{_fmt(f['spearman_ci'])}; − per-prompt {pp['paired_diff_vs_' + first]:+.3f} "
                     f"{_fmt(pp['paired_diff_ci'])} ({pp['verdict']}); best other {best} {o['spearman']:+.3f}, "
                     f"diff {o['paired_diff_vs_' + first]:+.3f} {_fmt(o['paired_diff_ci'])} ({o['verdict']})")
    return {"n_instances": n_inst, "n_prompts": N_PROMPTS, "n_train_prompts": N_TRAIN, "n_outputs": N_OUT,
            "policy": {"vocab": POLICY.vocab, "length": POLICY.length, "embed": POLICY.embed,
                       "hidden": POLICY.hidden},
            "families": list(FAMILIES), "gammas": list(GAMMAS), "horizon": t_max, "rtol": rtol,
            "bootstrap_resamples": n_boot, "ci_percent": CI, "min_reached_to_assess": MIN_REACHED,
            "mode": "quick" if quick else "default", "seed": seed,
            "headroom_quantiles_10_50_90": {t: [float(q) for q in np.quantile(h, [0.1, 0.5, 0.9])]
                                            for t, h in headroom.items()},
            "rate_crosscheck_max_rel_diff": check, "primary": primary, "decision": decision,
            "table": {f"{t} | gamma={g:g}": rec for (t, g), rec in res.items()}, "lines": lines}


def _plot(res, summary, out):
    plt = io.pyplot(FIGURE_RC)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
    for ax, target in zip(axes[:2], TARGETS):
        first = TARGETS[target][0]
        for j, p in enumerate(names_for(target)):
            rho = [res[(target, g)]["predictors"][p]["spearman"] for g in GAMMAS]
            ci = np.array([res[(target, g)]["predictors"][p]["spearman_ci"] for g in GAMMAS])
            bold = p == first
            ax.semilogx(GAMMAS, rho, "o-" if bold else ".--", color="k" if bold else f"C{j}", lw=2.2 if bold else 1,
                        label=p, zorder=5 if bold else 2)
            ax.fill_between(GAMMAS, ci[:, 0], ci[:, 1], color="k" if bold else f"C{j}", alpha=0.12)
        where = "S (trained on)" if target == "train" else "A (held out)"
        ax.set_title(f"averaged ground truth over {where}: exact 1/t$_γ$")
        ax.set_xlabel("γ (improvement of the averaged ground truth, reward units)")
        ax.set_ylabel("Spearman with 1/t$_γ$ (95 % bootstrap CI)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    ax = axes[2]
    for j, (q, recs) in enumerate(summary["primary"].items()):
        d = np.array([r["paired_diff"] for r in recs])
        ci = np.array([r["paired_diff_ci"] for r in recs])
        ax.semilogx(GAMMAS, d, "o-", color=f"C{j}", lw=1.2, label=q)
        ax.fill_between(GAMMAS, ci[:, 0], ci[:, 1], color=f"C{j}", alpha=0.15)
    ax.axhline(0, color="k", lw=1)
    ax.set_xlabel("γ (reward units)")
    ax.set_ylabel("paired Spearman difference")
    ax.set_title("registered comparisons (95 % paired CI)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    caption(fig, f"{summary['n_instances']} MLP policies (|X| = {N_PROMPTS} prompts sharing the parameters, "
              f"trained on |S| = {N_TRAIN}, held out |A| = {N_PROMPTS - N_TRAIN}; |Y| = {N_OUT}; families "
              f"{', '.join(FAMILIES)}; λ = 0). Target: exact 1/t$_γ$ of the prompt-averaged ground truth"
              f" under the flow trained on S (0 if not reached by t = {summary['horizon']:g}). per-prompt rate = "
              "mean over S of ⟨u$_x$, v$_x$⟩; pooled rate = ⟨ū(S), v̄(S)⟩ = dV̄$_G$(S)/dt; held-out rate = "
              "⟨ū(A), v̄(S)⟩ = dV̄$_G$(A)/dt, all at t = 0. Decision rule: paper_claims.md §8b.", y=0.0)
    write_figure(fig, out, NAME + ".png")


main = figure_main(run, __doc__)


if __name__ == "__main__":
    sys.exit(main())
