"""Figure 4 (the paper's Figure 1 idea): t_γ over the (accuracy, reward variance) plane.

One prompt, |Y| = 8, a fixed random initial policy π_0 and ground truth r_G (seeded), λ = 0, γ = 0.1.
Reward models are noisy, rescaled versions of r_G: r_RM = s·(r_G + σε)/max|r_G + σε| with ε ∼ N(0, I),
σ log-uniform in [0.03, 3] (controls accuracy) and s log-uniform in [0.01, 1] (controls variance). t_γ is
timed on r_G (``inf`` when the flow provably never gains γ on r_G). All RMs are solved in one batched call.
Spearman rank correlations of t_γ with accuracy and with variance are printed on the figure (infinite
t_γ ranked as slowest).
"""

from __future__ import annotations

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

import rmtheory as rt  # noqa: E402

NAME = "fig4_landscape"
GAMMA, N_OUT = 0.1, 8


def run(quick: bool = False, seed: int = 0, out: str = "figures"):
    k = jax.random.split(jax.random.PRNGKey(seed), 5)
    n = 200 if quick else 3000
    logits0 = np.asarray(jax.random.normal(k[0], (N_OUT,)))
    r_g = np.asarray(jax.random.uniform(k[1], (N_OUT,), minval=-1.0, maxval=1.0))
    sigma = 10.0 ** np.asarray(jax.random.uniform(k[2], (n,), minval=np.log10(0.03), maxval=np.log10(3.0)))
    scale = 10.0 ** np.asarray(jax.random.uniform(k[3], (n,), minval=-2.0, maxval=0.0))
    noisy = r_g + sigma[:, None] * np.asarray(jax.random.normal(k[4], (n, N_OUT)))
    r_rm = scale[:, None] * noisy / np.abs(noisy).max(-1, keepdims=True)
    inst = rt.make_instance(np.broadcast_to(logits0, (n, 1, N_OUT)), r_rm[:, None])
    t = np.asarray(rt.time_to_gamma(inst, GAMMA, measure=np.broadcast_to(r_g, (n, 1, N_OUT))).t)[:, 0]
    pi0 = np.asarray(jax.nn.softmax(jnp.asarray(logits0)))
    acc = np.asarray(rt.accuracy(jnp.asarray(r_rm), jnp.asarray(np.broadcast_to(r_g, r_rm.shape))))
    var = np.asarray(rt.reward_variance(np.broadcast_to(pi0, r_rm.shape), r_rm))
    fin = np.isfinite(t)
    rho_acc, rho_var = rt.spearman(t, acc), rt.spearman(t, var)
    rho_acc_f, rho_var_f = rt.spearman(t[fin], acc[fin]), rt.spearman(t[fin], var[fin])
    summary = {"gamma": GAMMA, "lambda": 0.0, "n_outputs": N_OUT, "n_reward_models": n, "pi0": pi0, "r_g": r_g,
               "fraction_infinite": float(1 - fin.mean()),
               "spearman_t_vs_accuracy": rho_acc, "spearman_t_vs_variance": rho_var,
               "spearman_t_vs_accuracy_finite_only": rho_acc_f, "spearman_t_vs_variance_finite_only": rho_var_f}
    print(f"  Spearman(t_γ, acc) = {rho_acc:+.3f}   Spearman(t_γ, Var) = {rho_var:+.3f}   "
          f"(finite only: {rho_acc_f:+.3f}, {rho_var_f:+.3f}; {100 * (1 - fin.mean()):.1f}% infinite)")
    C.save_csv({"sigma": sigma, "scale": scale, "accuracy": acc, "variance": var, "t_gamma": t}, out, NAME + ".csv")
    C.save_json(summary, out, NAME + ".json")

    plt = C.pyplot()
    from matplotlib.colors import LogNorm

    fig, ax = plt.subplots(figsize=(7.2, 5.2))
    jitter = 0.004 * np.asarray(jax.random.normal(jax.random.PRNGKey(seed + 1), (n,)))  # display only
    sc = ax.scatter(acc[fin] + jitter[fin], var[fin], c=t[fin], s=9, cmap="viridis_r",
                    norm=LogNorm(t[fin].min(), t[fin].max()), alpha=0.85)
    ax.scatter(acc[~fin] + jitter[~fin], var[~fin], marker="x", s=10, color="r", alpha=0.6,
               label=f"t$_γ$ = ∞ (never gains γ on r$_G$): {int((~fin).sum())}")
    ax.set_yscale("log")
    cb = fig.colorbar(sc, ax=ax)
    cb.set_label("t$_γ$ on r$_G$  (flow time, log colour scale; darker = faster)")
    ax.set_xlabel("accuracy of r$_{RM}$ w.r.t. r$_G$ (uniform pairs; fraction, small jitter for display)")
    ax.set_ylabel("initial reward variance Var$_{π_0}$[r$_{RM}$]  (reward units²)")
    ax.set_title(f"Reward variance, not accuracy, predicts optimisation speed\n"
                 f"({n} noisy RMs of one r$_G$, |Y|={N_OUT}, γ={GAMMA}, λ=0, tabular flow)")
    ax.text(0.02, 0.02, f"Spearman(t$_γ$, accuracy) = {rho_acc:+.2f}\nSpearman(t$_γ$, variance) = {rho_var:+.2f}\n"
            f"(finite t$_γ$ only: {rho_acc_f:+.2f}, {rho_var_f:+.2f})", transform=ax.transAxes, fontsize=8,
            bbox=dict(fc="w", ec="0.7"))
    ax.legend(loc="upper left", fontsize=7)
    ax.grid(alpha=0.3)
    C.save_figure(fig, out, NAME + ".png")
    return {"summary": summary, "accuracy": acc, "variance": var, "t_gamma": t}


def main(argv=None) -> int:
    return C.script_main(run, argv, __doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
