"""Figure 5: does the variance ordering of reward models survive practical optimisers?

One prompt, |Y| = 8, fixed random π_0 and r_G (seeded), λ = 0, γ = 0.1 on r_G. Two sets of K reward models:

* (a) noisy RMs: r_RM,k = s_k·(r_G + 0.3ε_k)/max|·| with s_k log-spaced in [0.03, 1] and an independent noise
  draw ε_k per RM (their initial variances span decades);
* (b) pure rescalings: r_RM,k = s_k·r_0 for one fixed noisy RM r_0 (the same s_k).

For each RM: the exact gradient-flow t_γ, and the time t = η·k of discrete ascent (optax) with exact
gradients — SGD at several step sizes η, Adam — and with sampled gradients (REINFORCE and RLOO; 4 samples
per step, SGD; median over seeds). Spearman between the flow's t_γ and each method's t_γ across RMs says
whether the ordering predicted by the theory survives. The theory makes no claim about these methods.

Adam is (up to its ε = 1e−8) invariant to the scale of the reward: multiplying r_RM by s multiplies every
gradient by s, and Adam's update m̂/(√v̂ + ε) is unchanged. Set (b) shows this directly (Adam's t is the
same for every s, while the flow's is ∝ 1/s). In set (a) variance is driven mostly by the scale s, so Adam's
times barely vary and their Spearman with the flow reflects only the RMs' noise patterns, not variance.
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

import rmtheory as rt

from .. import io
from .._progress import Progress
from ._output import FIGURE_RC, caption, default_out, figure_main, write_columns, write_figure, write_json
from ._tabular import N_OUTPUTS, tabular_t_gamma

NAME = "fig5_flow_vs_practice"
GAMMA, N_OUT = 0.1, N_OUTPUTS
SGD_ETAS = (0.1, 1.0, 10.0)
ADAM_ETA = 0.01
SAMPLED_ETA = 0.1
N_SAMPLES = 4
SETS = ("noisy", "rescaled")


def _ascent_exact(inst, measure, optimizer, etas, max_steps):
    """t = η·k for every step size in ``etas`` (traced, one compile) × every RM: [len(etas), K]."""
    def one(i, m, eta, ms):
        return rt.ascent_time_to_gamma(i, GAMMA, m, optimizer=optimizer, step_size=eta, max_steps=ms).t[0]

    f = jax.jit(jax.vmap(jax.vmap(one, in_axes=(0, 0, None, None)), in_axes=(None, None, 0, 0)))
    return np.asarray(f(inst, measure, jnp.asarray(etas, jnp.float64), jnp.asarray(max_steps)))


def _ascent_sampled(inst, measure, estimator, eta, max_steps, keys):
    """Median over ``keys`` of t = η·k with sampled gradients, every RM: [K]."""
    def one(i, m, key):
        return rt.ascent_time_to_gamma(i, GAMMA, m, optimizer=optax.sgd, step_size=eta, max_steps=max_steps,
                                       estimator=estimator, n_samples=N_SAMPLES, key=key).t[0]

    f = jax.jit(jax.vmap(jax.vmap(one, in_axes=(None, None, 0)), in_axes=(0, 0, None)))
    return np.median(np.asarray(f(inst, measure, keys)), axis=1)


def run(quick: bool = False, seed: int = 0, out: str | None = None):
    out = default_out(quick) if out is None else out
    rng = np.random.default_rng([seed, 5])
    n_rm = 6 if quick else 16
    logits0 = rng.normal(size=N_OUT)
    r_g = rng.uniform(-1.0, 1.0, N_OUT)
    noisy = r_g + 0.3 * rng.normal(size=(n_rm + 1, N_OUT))
    noisy /= np.abs(noisy).max(-1, keepdims=True)
    scale = np.geomspace(0.03, 1.0, n_rm)
    r_rm = np.concatenate([scale[:, None] * noisy[:n_rm], scale[:, None] * noisy[n_rm]])  # [2K, Y]: (a) then (b)
    which = np.repeat(np.array(SETS), n_rm)
    k2 = 2 * n_rm
    lg = np.broadcast_to(logits0, (k2, N_OUT))
    inst = rt.make_instance(lg[:, None], r_rm[:, None], np.zeros(k2))
    meas = jnp.asarray(np.broadcast_to(r_g, (k2, 1, N_OUT)))
    pi0 = np.exp(logits0 - logits0.max())
    pi0 /= pi0.sum()
    var = np.asarray(rt.reward_variance(np.broadcast_to(pi0, r_rm.shape), r_rm))
    acc = np.asarray(rt.accuracy(jnp.asarray(r_rm), jnp.asarray(np.broadcast_to(r_g, r_rm.shape))))
    n_seeds = 4 if quick else 32
    keys = jax.random.split(jax.random.PRNGKey(seed), n_seeds)
    times = {}
    with Progress("fig5", 3) as progress:
        progress.step("gradient-flow t_γ")
        t_flow, _ = tabular_t_gamma(lg, r_rm, np.broadcast_to(r_g, r_rm.shape), GAMMA)
        max_t = 3.0 * np.nanmax(np.where(np.isfinite(t_flow), t_flow, np.nan))

        def steps(eta):
            return int(min(200_000, np.ceil(max_t / eta)))

        progress.step("discrete ascent with exact gradients (SGD, Adam)")
        t_sgd = _ascent_exact(inst, meas, optax.sgd, SGD_ETAS, [steps(e) for e in SGD_ETAS])
        for j, eta in enumerate(SGD_ETAS):
            times[f"SGD η={eta:g}"] = (t_sgd[j], steps(eta))
        times[f"Adam η={ADAM_ETA:g}"] = (_ascent_exact(inst, meas, optax.adam, [ADAM_ETA], [steps(ADAM_ETA)])[0],
                                         steps(ADAM_ETA))
        progress.step(f"discrete ascent with sampled gradients ({n_seeds} seeds)")
        for est in ("reinforce", "rloo"):
            label = f"{'REINFORCE' if est == 'reinforce' else 'RLOO'} ({N_SAMPLES} samples), SGD η={SAMPLED_ETA:g}"
            times[label] = (_ascent_sampled(inst, meas, est, SAMPLED_ETA, steps(SAMPLED_ETA), keys),
                            steps(SAMPLED_ETA))

    rows = {"rm_set": which, "rm_index": np.tile(np.arange(n_rm), 2), "scale": np.tile(scale, 2), "variance": var,
            "accuracy": acc, "t_flow": t_flow}
    summary = {"gamma": GAMMA, "lambda": 0.0, "n_outputs": N_OUT, "n_reward_models_per_set": n_rm,
               "n_seeds_sampled": n_seeds, "n_samples_per_step": N_SAMPLES, "time_unit": "t = eta * steps",
               "sets": {"noisy": "r_RM,k = s_k (r_G + 0.3 eps_k)/max|.|, independent eps_k",
                        "rescaled": "r_RM,k = s_k r_0, one fixed noisy r_0"},
               "spearman_t_flow_vs_variance": {s: rt.spearman(t_flow[which == s], var[which == s]) for s in SETS},
               "methods": {},
               "adam_note": "Adam's update m_hat/(sqrt(v_hat)+eps) is invariant to multiplying the reward (hence every "
                            "gradient) by s while |g| >> eps = 1e-8, so Adam's t does not depend on the reward scale: "
                            "on the 'rescaled' set its times are identical for every s although the flow's scale as "
                            "1/s. On the 'noisy' set the variance differences come mostly from the scale s, so Adam's "
                            "times barely vary and their Spearman with the flow reflects only the noise patterns of "
                            "the RMs (its sign depends on the seed): the variance ordering does not survive Adam. "
                            "Its t = eta*steps is not comparable to flow time (each step moves every logit by about "
                            "eta regardless of the gradient's size)."}
    for name, (t, ms) in times.items():
        rows["t_" + name] = t
        rec = {"max_steps": ms, "n_not_reached": int(np.sum(~np.isfinite(t)))}
        for s in SETS:
            m = which == s
            rec[s] = {"spearman_vs_flow": rt.spearman(t_flow[m], t[m]),
                      "spearman_vs_variance": rt.spearman(t[m], var[m]),
                      "median_ratio_to_flow": float(np.median(t[m] / t_flow[m])),
                      "relative_spread": float((np.max(t[m]) - np.min(t[m])) / np.median(t[m]))}
        summary["methods"][name] = rec
        a, b = rec["noisy"], rec["rescaled"]
        print(f"  {name:34s} (a) noisy: Spearman vs flow = {a['spearman_vs_flow']:+.3f}, median t/t_flow = "
              f"{a['median_ratio_to_flow']:.3g} | (b) rescaled: relative spread of t = {b['relative_spread']:.3g}")
    write_columns(rows, out, NAME + ".csv")
    write_json(summary, out, NAME + ".json")
    plot(rows, summary, times, which, var, t_flow, scale, n_seeds, out)
    return {"rows": rows, "summary": summary}


def plot(rows, summary, times, which, var, t_flow, scale, n_seeds, out):
    plt = io.pyplot(FIGURE_RC)
    fig, axes = plt.subplots(1, 2, figsize=(12.5, 6.6))
    marks = ["s", "^", "v", "D", "x", "+"]
    for ax, s in zip(axes, SETS):
        m = which == s
        o = np.argsort(var[m])
        ax.loglog(var[m][o], t_flow[m][o], "k-o", lw=2.2, ms=4, label="gradient flow (theory)", zorder=5)
        for j, name in enumerate(times):
            t = rows["t_" + name][m][o]
            rec = summary["methods"][name][s]
            lab = (f"{name}: ρ$_s$ vs flow = {rec['spearman_vs_flow']:+.2f}" if s == "noisy" else
                   f"{name}: spread (max−min)/median = {rec['relative_spread']:.2g}")
            ax.loglog(var[m][o], t, marker=marks[j], ls="--", lw=1, ms=5, label=lab)
        ax.set_xlabel("initial reward variance Var$_{π_0}$[r$_{RM}$]  (reward units²)")
        ax.set_ylabel("time until E[r$_G$] gains γ = 0.1:  t = η·(steps)\n(flow: units of the flow's time t)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=1, frameon=False)
    axes[0].set_title("(a) noisy RMs r$_{RM}$ = s·(r$_G$+0.3ε)/max|·|, a fresh ε per RM")
    axes[1].set_title("(b) pure rescalings r$_{RM}$ = s·r$_0$ of one noisy RM")
    fig.suptitle(f"Flow vs practical optimisers ({len(scale)} RMs per panel, |Y|={N_OUT}, λ=0; sampled gradients: "
                 f"median over {n_seeds} seeds)", fontsize=10)
    fig.subplots_adjust(left=0.075, right=0.985, top=0.88, bottom=0.40, wspace=0.22)
    caption(fig, "SGD (any η shown) and sampled REINFORCE/RLOO gradients keep the flow's ordering: low-variance RMs "
              "are slow teachers (ρ$_s$ ≈ +1). Adam does not: its update m̂/(√v̂+ε) is invariant to the reward's scale, "
              "so in (b) every rescaling gives the same Adam time while the flow's time ∝ 1/s; in (a), where variance "
              "differs mostly through the scale s, Adam's times are nearly constant and their rank correlation with "
              "the flow reflects only the RMs' noise patterns (not a bug). Adam's η·steps is not a flow time "
              "(each step moves every logit by ≈ η). The theory makes no claim about these optimisers.", y=0.085)
    write_figure(fig, out, NAME + ".png")


main = figure_main(run, __doc__)


if __name__ == "__main__":
    sys.exit(main())
