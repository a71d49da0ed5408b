"""Figure 2 (Theorem 2 / Theorem 5): a perfectly accurate RM can be a slow teacher, an inaccurate one a
fast teacher.

One prompt, |Y| = 8, a random initial policy and ground truth r_G (seeded), γ = 0.2, λ = 0. The slow RM
r_perfect (accuracy 1, values in (0, 1/T)) is built for several slowness values T, the fast RM r̄
(accuracy ≤ 2/|Y|) by :func:`rmtheory.thm5_construction`. Left: E_π(t)[r_G] along the exact gradient flow.
Right: t_γ (timed on r_G) against T with Theorem 5's slow lower bound 2(1 − e^{−γ/2})T, and r̄'s t_γ with
its upper bound.
"""

from __future__ import annotations

import sys

import jax.numpy as jnp
import numpy as np

import rmtheory as rt

from .. import io
from ._output import FIGURE_RC, caption, default_out, figure_main, write_columns, write_figure, write_json
from ._tabular import N_OUTPUTS, tabular_t_gamma

NAME = "fig2_accuracy_not_enough"
GAMMA = 0.2
N_OUT = N_OUTPUTS
TRAJ_T = (1.0, 8.0, 64.0)  # slowness values whose trajectories are drawn


def setup(seed: int):
    rng = np.random.default_rng([seed, 2])
    z = rng.normal(size=N_OUT)
    pi0 = np.exp(z - z.max())
    pi0 /= pi0.sum()
    r_g = np.sort(rng.uniform(-1.0, 1.0, N_OUT))
    r_g[-1] = 1.0  # one clearly good output
    return pi0, r_g


def run(quick: bool = False, seed: int = 0, out: str | None = None):
    out = default_out(quick) if out is None else out
    pi0, r_g = setup(seed)
    v0 = float(pi0 @ r_g)
    traj_T = list(TRAJ_T)
    sweep_T = np.geomspace(1.0, 1e3, 6 if quick else 16)
    rms, labels = [], []
    cons = {T: rt.thm5_construction(pi0, r_g, GAMMA, T) for T in sorted(set(traj_T) | set(sweep_T))}
    fast = cons[traj_T[0]]
    for T in traj_T:
        rms.append(cons[T].r_rm)
        labels.append(f"r_perfect, T={T:g}")
    rms.append(fast.r_rm_fast)
    labels.append("r̄ (fast)")
    all_rms = np.stack(rms + [cons[T].r_rm for T in sweep_T])
    n = len(all_rms)
    logits = np.broadcast_to(np.log(pi0), (n, 1, N_OUT))
    t_gamma, _ = tabular_t_gamma(logits[:, 0], all_rms, np.broadcast_to(r_g, (n, N_OUT)), GAMMA)
    acc = np.asarray(rt.accuracy(jnp.asarray(all_rms), jnp.asarray(np.broadcast_to(r_g, all_rms.shape))))
    var = np.asarray(rt.reward_variance(np.broadcast_to(pi0, all_rms.shape), all_rms))
    # trajectories for the first len(rms) reward models
    k = len(rms)
    t_hi = 2.0 * np.nanmax(np.where(np.isfinite(t_gamma[:k]), t_gamma[:k], np.nan))
    ts = np.concatenate([[0.0], np.geomspace(1e-2, t_hi, 60 if quick else 200)])
    sub = rt.make_instance(logits[:k], all_rms[:k, None, :])
    theta = np.asarray(rt.flow_trajectory(sub, ts))  # [T, k, 1, Y]
    vg = np.asarray(rt.value(theta[:, :, 0], r_g))  # [T, k]
    rows = {"time": np.repeat(ts, k), "reward_model": np.tile(np.array(labels), len(ts)),
            "ground_truth_reward": vg.reshape(-1)}
    write_columns(rows, out, NAME + ".csv")
    summary = {
        "gamma": GAMMA, "lambda": 0.0, "n_outputs": N_OUT, "pi0": pi0, "r_g": r_g, "v_g0": v0,
        "y_gamma": fast.y_gamma, "rho": fast.rho,
        "models": [{"label": labels[i], "accuracy": float(acc[i]), "variance": float(var[i]),
                    "t_gamma": float(t_gamma[i])} for i in range(k)],
        "slow_sweep": {"slowness": sweep_T, "t_gamma": t_gamma[k:], "accuracy": acc[k:], "variance": var[k:],
                       "thm5_slow_lower_bound": [cons[T].slow_bound for T in sweep_T]},
        "fast": {"t_gamma": float(t_gamma[k - 1]), "thm5_fast_upper_bound": fast.fast_bound,
                 "accuracy": fast.accuracy_fast, "accuracy_bound_2_over_Y": 2.0 / N_OUT,
                 "lambda_max": fast.lambda_max},
    }
    write_json(summary, out, NAME + ".json")
    for m in summary["models"]:
        print(f"  {m['label']:18s} acc={m['accuracy']:.3f} var={m['variance']:.3g} t_γ={m['t_gamma']:.4g}")

    plt = io.pyplot(FIGURE_RC)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.4))
    for i in range(k):
        ax.semilogx(ts[1:], vg[1:, i], color=f"C{i}", lw=1.8,
                    label=f"{labels[i]}: acc={acc[i]:.2f}, Var={var[i]:.2g}, t$_γ$={t_gamma[i]:.3g}")
    ax.axhline(v0 + GAMMA, color="k", ls="--", lw=1, label=f"target E$_{{π(0)}}$[r$_G$] + γ (γ={GAMMA})")
    ax.axhline(v0, color="0.5", ls=":", lw=1, label=f"initial E$_{{π(0)}}$[r$_G$] = {v0:.3f}")
    ax.set_xlabel("gradient-flow time t  (units of the flow's time t; log scale)")
    ax.set_ylabel("ground-truth reward E$_{y∼π_{θ(t)}}$[r$_G$]  (reward units)")
    ax.set_title(f"Theorem 2: accuracy is not enough (tabular, |Y|={N_OUT}, λ=0)")
    ax.legend(fontsize=7, loc="upper left", title="reward model optimised (legend: accuracy, initial variance, t$_γ$)",
              title_fontsize=7)
    ax.grid(alpha=0.3)
    lo = min(v0, float(np.min(vg))) - 0.05
    ax.set_ylim(lo, lo + (1.0 + 0.03 - lo) / 0.6)  # headroom for the legend above the curves
    ax.set_yticks([y for y in np.arange(-1.0, 1.01, 0.2) if y >= lo])
    bx.loglog(sweep_T, t_gamma[k:], "o-", color="C0", label="r_perfect (accuracy 1): measured t$_γ$")
    bx.loglog(sweep_T, summary["slow_sweep"]["thm5_slow_lower_bound"], "b--",
              label="Thm. 5 slow LOWER bound 2(1−e$^{−γ/2}$)T")
    bx.axhline(t_gamma[k - 1], color="C3", lw=1.5, label=f"r̄ (accuracy {fast.accuracy_fast:.2f}): measured t$_γ$")
    bx.axhline(fast.fast_bound, color="C3", ls="--", lw=1, label="Thm. 5 fast UPPER bound for r̄")
    bx.set_xlabel("slowness T of r_perfect (values in (0, 1/T), dimensionless)")
    bx.set_ylabel("t$_γ$ on r$_G$  (units of the flow's time t)")
    bx.set_title("t$_γ$ grows linearly in T at fixed accuracy 1")
    bx.legend(fontsize=7)
    bx.grid(alpha=0.3, which="both")
    fig.tight_layout()
    caption(fig, f"Exact tabular gradient flow from a fixed random π$_0$ (seed {seed}); r_perfect orders all "
              f"{N_OUT} outputs exactly like r$_G$ (accuracy 1 over all pairs) but takes values in (0, 1/T), so its "
              "variance is ≤ 1/T² and Prop. 3 forces t$_γ$ ≥ 2(1−e$^{-γ/2}$)T. r̄ puts 1 on one good output y$^γ$ "
              "and tiny values in reverse r$_G$ order elsewhere (accuracy ≤ 2/|Y|), yet is fast because π$_0$(y$^γ$) "
              "is not small. Accuracy: fraction of correctly ordered output pairs (uniform pairs); Var: "
              "Var$_{π_0}$[r$_{RM}$]; t$_γ$ in units of the flow's time.", y=0.0)
    write_figure(fig, out, NAME + ".png")
    return {"rows": rows, "summary": summary}


main = figure_main(run, __doc__)


if __name__ == "__main__":
    sys.exit(main())
