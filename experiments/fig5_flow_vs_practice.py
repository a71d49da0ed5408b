"""Figure 5: does the variance ordering of reward models survive practical optimisers?

One prompt, |Y| = 8, fixed random π_0 and r_G (seeded), λ = 0, γ = 0.1 on r_G. K reward models
r_RM = s·(r_G + 0.3ε)/max|·| with s log-spaced in [0.03, 1] (so their initial variances span decades).
For each RM: the exact gradient-flow t_γ and the time t = η·k of discrete ascent (optax) with exact
gradients — SGD at several step sizes η, Adam — and with sampled gradients (REINFORCE, RLOO; 4 samples,
SGD, median over seeds). Spearman between the flow t_γ and each method's t_γ across RMs says whether the
ordering predicted by the theory (flow) survives. The theory makes no claim about these methods.
"""

from __future__ import annotations

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

import rmtheory as rt  # noqa: E402

NAME = "fig5_flow_vs_practice"
GAMMA, N_OUT = 0.1, 8


def _ascent(inst, measure, *, optimizer, step_size, max_steps, estimator="exact", n_samples=4, keys=None):
    """Batched ascent over RMs (leading axis of inst) and, for sampled estimators, over keys (median)."""
    def one(i, m, key):
        return rt.ascent_time_to_gamma(i, GAMMA, m, optimizer=optimizer, step_size=step_size, max_steps=max_steps,
                                       estimator=estimator, n_samples=n_samples, key=key).t[0]

    if estimator == "exact":
        return np.asarray(jax.jit(jax.vmap(lambda i, m: one(i, m, None)))(inst, measure))
    f = jax.jit(jax.vmap(jax.vmap(one, in_axes=(None, None, 0)), in_axes=(0, 0, None)))
    t = np.asarray(f(inst, measure, keys))  # [K, seeds]
    return np.median(t, axis=1)


def run(quick: bool = False, seed: int = 0, out: str = "figures"):
    k = jax.random.split(jax.random.PRNGKey(seed), 4)
    n_rm = 6 if quick else 12
    logits0 = np.asarray(jax.random.normal(k[0], (N_OUT,)))
    r_g = np.asarray(jax.random.uniform(k[1], (N_OUT,), minval=-1.0, maxval=1.0))
    noisy = r_g + 0.3 * np.asarray(jax.random.normal(k[2], (n_rm, N_OUT)))
    scale = np.geomspace(0.03, 1.0, n_rm)
    r_rm = scale[:, None] * noisy / np.abs(noisy).max(-1, keepdims=True)
    inst = rt.make_instance(np.broadcast_to(logits0, (n_rm, 1, N_OUT)), r_rm[:, None], np.zeros(n_rm))
    meas = jnp.asarray(np.broadcast_to(r_g, (n_rm, 1, N_OUT)))
    pi0 = np.asarray(jax.nn.softmax(jnp.asarray(logits0)))
    var = np.asarray(rt.reward_variance(np.broadcast_to(pi0, r_rm.shape), r_rm))
    acc = np.asarray(rt.accuracy(jnp.asarray(r_rm), jnp.asarray(np.broadcast_to(r_g, r_rm.shape))))
    t_flow = np.asarray(rt.time_to_gamma(inst, GAMMA, measure=meas).t)[:, 0]
    max_t = 3.0 * np.nanmax(np.where(np.isfinite(t_flow), t_flow, np.nan))
    n_seeds = 4 if quick else 16
    keys = jax.random.split(k[3], n_seeds)
    methods = {}
    for eta in ((1.0,) if quick else (0.1, 1.0, 10.0)):
        methods[f"SGD η={eta:g}"] = dict(optimizer=optax.sgd, step_size=eta)
    methods["Adam η=0.01"] = dict(optimizer=optax.adam, step_size=0.01)
    if not quick:  # quick mode (CI) keeps one method of each kind
        methods["REINFORCE (4 samples), SGD η=0.1"] = dict(optimizer=optax.sgd, step_size=0.1, estimator="reinforce")
    methods["RLOO (4 samples), SGD η=0.1"] = dict(optimizer=optax.sgd, step_size=0.1, estimator="rloo")
    rows = {"reward_model": np.arange(n_rm), "scale": scale, "variance": var, "accuracy": acc, "t_flow": t_flow}
    summary = {"gamma": GAMMA, "lambda": 0.0, "n_outputs": N_OUT, "n_reward_models": n_rm, "n_seeds_sampled": n_seeds,
               "spearman_t_flow_vs_variance": rt.spearman(t_flow, var), "methods": {}}
    for name, kw in methods.items():
        max_steps = int(min(200_000, np.ceil(max_t / kw["step_size"])))
        t = _ascent(inst, meas, max_steps=max_steps, keys=keys, **kw)
        rows["t_" + name] = t
        summary["methods"][name] = {"spearman_vs_flow": rt.spearman(t_flow, t), "spearman_vs_variance": rt.spearman(t, var),
                                    "max_steps": max_steps, "n_not_reached": int(np.sum(~np.isfinite(t))),
                                    "median_ratio_to_flow": float(np.median(t / t_flow))}
        s = summary["methods"][name]
        print(f"  {name:34s} Spearman vs flow = {s['spearman_vs_flow']:+.3f}  median t/t_flow = {s['median_ratio_to_flow']:.3g}")
    C.save_csv(rows, out, NAME + ".csv")
    C.save_json(summary, out, NAME + ".json")

    plt = C.pyplot()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11.5, 4.6))
    ax.loglog(var, t_flow, "k-o", lw=2, ms=4, label="gradient flow (theory)")
    marks = ["s", "^", "v", "D", "x", "+"]
    for j, name in enumerate(methods):
        t = rows["t_" + name]
        ax.loglog(var, t, marker=marks[j], ls="--", lw=1, ms=5,
                  label=f"{name}: ρ$_s$(vs flow) = {summary['methods'][name]['spearman_vs_flow']:+.2f}")
        bx.loglog(t_flow, t, marker=marks[j], ls="none", ms=5, label=name)
    lim = [np.nanmin(t_flow) / 2, np.nanmax(t_flow) * 2]
    bx.loglog(lim, lim, "k:", lw=1, label="t = t$_{flow}$")
    ax.set_xlabel("initial reward variance Var$_{π_0}$[r$_{RM}$]  (reward units²)")
    ax.set_ylabel("time to γ=0.1 gain in E[r$_G$]: t = η·steps  (flow-time units)")
    ax.set_title("Time-to-γ vs RM variance: flow and practical optimisers")
    ax.legend(fontsize=6.5)
    ax.grid(alpha=0.3, which="both")
    bx.set_xlabel("gradient-flow t$_γ$  (flow time)")
    bx.set_ylabel("optimiser t = η·steps  (flow-time units)")
    bx.set_title(f"{n_rm} RMs; |Y|={N_OUT}, λ=0; sampled methods: median over {n_seeds} seeds")
    bx.legend(fontsize=6.5)
    bx.grid(alpha=0.3, which="both")
    fig.tight_layout()
    C.save_figure(fig, out, NAME + ".png")
    return {"rows": rows, "summary": summary}


def main(argv=None) -> int:
    return C.script_main(run, argv, __doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
