"""Figure 3 (Theorem 3 / Theorem 6): which RM is the better teacher depends on the initial policy.

One prompt, |Y| = 8, r_G = (1, 0.9, rest uniform in [−1, 0]) (seeded), γ = 0.2, λ = 0, slowness T = 8,
c = 0.3, V_0 = 0. Initial policies are drawn from Π (mass c on y^γ = 0, ≤ T^{−2} on y'^γ = 1) and Π′
(roles swapped) with :func:`rmtheory.sample_thm6_policies`; r_RM / r′_RM are the one-hot rewards on y^γ / y'^γ.
Each of the 2×2 cells shows E_π(t)[r_G] along the exact flow for every sampled policy, with the median t_γ
and Theorem 6's bound (fast: upper bound; slow: lower bound).
"""

from __future__ import annotations

import sys

import jax
import numpy as np

import rmtheory as rt

from .. import io
from ._output import FIGURE_RC, caption, default_out, figure_main, write_columns, write_figure, write_json
from ._tabular import N_OUTPUTS, tabular_t_gamma

NAME = "fig3_policy_dependence"
GAMMA, SLOWNESS, C_MASS, V0, N_OUT = 0.2, 8.0, 0.3, 0.0, N_OUTPUTS
DISPLAY = {"r_RM (one-hot on y^γ)": "r$_{RM}$ (one-hot on y$^γ$)",
           "r′_RM (one-hot on y′^γ)": "r′$_{RM}$ (one-hot on y′$^γ$)"}


def run(quick: bool = False, seed: int = 0, out: str | None = None):
    out = default_out(quick) if out is None else out
    _, k1, k2 = jax.random.split(jax.random.PRNGKey(seed), 3)
    rng = np.random.default_rng([seed, 3])
    r_g = np.concatenate([[1.0, 0.9], np.sort(rng.uniform(-1.0, 0.0, N_OUT - 2))[::-1]])
    n = 6 if quick else 24
    fam = {"Π": rt.sample_thm6_policies(k1, r_g, 0, 1, GAMMA, SLOWNESS, C_MASS, n, family="Pi", v0=V0),
           "Π′": rt.sample_thm6_policies(k2, r_g, 0, 1, GAMMA, SLOWNESS, C_MASS, n, family="Pi_prime", v0=V0)}
    rms = {"r_RM (one-hot on y^γ)": rt.one_hot_reward(N_OUT, 0), "r′_RM (one-hot on y′^γ)": rt.one_hot_reward(N_OUT, 1)}
    cells = [(f, r) for f in fam for r in rms]
    pis = np.concatenate([fam[f] for f, _ in cells])  # [4n, Y]
    rw = np.concatenate([np.broadcast_to(rms[r], (n, N_OUT)) for _, r in cells])
    inst = rt.make_instance(np.log(pis)[:, None], rw[:, None])
    t, _ = tabular_t_gamma(np.log(pis), rw, np.broadcast_to(r_g, (len(pis), N_OUT)), GAMMA)
    var = np.asarray(rt.reward_variance(pis, rw))
    fin = t[np.isfinite(t)]
    ts = np.concatenate([[0.0], np.geomspace(1e-2, 3 * fin.max(), 50 if quick else 150)])
    vg = np.asarray(rt.value(np.asarray(rt.flow_trajectory(inst, ts))[:, :, 0], r_g))  # [T, 4n]
    summary = {"gamma": GAMMA, "slowness": SLOWNESS, "c": C_MASS, "v0": V0, "lambda": 0.0, "r_g": r_g,
               "n_per_family": n, "cells": []}
    rows = {"family": [], "reward_model": [], "policy_index": [], "variance": [], "t_gamma": [], "bound": [],
            "bound_kind": []}
    for ci, (f, r) in enumerate(cells):
        sl = slice(ci * n, (ci + 1) * n)
        covered = (0 if f == "Π" else 1)
        fast = (covered == 0) == r.startswith("r_RM")
        bnds = [rt.thm6_bounds(p, r_g, covered, GAMMA, SLOWNESS, C_MASS) for p in pis[sl]]
        b = np.array([bb.fast_bound if fast else bb.slow_bound for bb in bnds])
        kind = "upper (fast)" if fast else "lower (slow)"
        rows["family"] += [f] * n
        rows["reward_model"] += [r] * n
        rows["policy_index"] += list(range(n))
        rows["variance"] += list(var[sl])
        rows["t_gamma"] += list(t[sl])
        rows["bound"] += list(b)
        rows["bound_kind"] += [kind] * n
        summary["cells"].append({"family": f, "reward_model": r, "bound_kind": kind,
                                 "median_t_gamma": float(np.median(t[sl])), "max_t_gamma": float(np.max(t[sl])),
                                 "min_t_gamma": float(np.min(t[sl])), "median_variance": float(np.median(var[sl])),
                                 "bound_median": float(np.median(b)),
                                 "bound_holds": bool(np.all(t[sl] <= b * (1 + 1e-9)) if fast
                                                     else np.all(t[sl] >= b * (1 - 1e-9)))})
        print(f"  {f:3s} × {r:26s} median t_γ={np.median(t[sl]):9.4g}  Thm6 {kind} ≈ {np.median(b):.4g}")
    rows = {k: (np.asarray(v, float) if k in ("variance", "t_gamma", "bound") else np.array(v))
            for k, v in rows.items()}
    write_columns(rows, out, NAME + ".csv")
    write_json(summary, out, NAME + ".json")

    plt = io.pyplot(FIGURE_RC)
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True, sharey=True)
    for ci, (f, r) in enumerate(cells):
        ax = axes[ci // 2, ci % 2]
        sl = slice(ci * n, (ci + 1) * n)
        s = summary["cells"][ci]
        fast = s["bound_kind"].startswith("upper")
        col = "C2" if fast else "C3"
        ax.semilogx(ts[1:], vg[1:, sl], color=col, lw=0.8, alpha=0.6)
        ax.axhline(V0 + GAMMA, color="k", ls="--", lw=1, label="target V$_0$ + γ")
        ax.axvline(s["median_t_gamma"], color=col, lw=1.5, label=f"median t$_γ$ = {s['median_t_gamma']:.3g}")
        ax.axvline(s["bound_median"], color="0.3", ls=":", lw=1.5,
                   label=f"Thm. 6 {s['bound_kind']} bound ≈ {s['bound_median']:.3g}")
        ax.set_title(f"initial policy ∈ {f},  teacher {DISPLAY[r]}\nmedian Var$_{{π_0}}$[r$_{{RM}}$] = "
                     f"{s['median_variance']:.2g}  → {'FAST' if fast else 'SLOW'}", fontsize=9)
        ax.legend(fontsize=7, loc="upper left")
        ax.grid(alpha=0.3)
        if ci // 2 == 1:
            ax.set_xlabel("gradient-flow time t  (units of the flow's time t; log scale)")
        if ci % 2 == 0:
            ax.set_ylabel("E$_{π_{θ(t)}}$[r$_G$]  (reward units)")
    fig.suptitle(f"Theorem 3: the better teacher depends on the initial policy ({n} policies per family, "
                 f"|Y|={N_OUT}, γ={GAMMA}, T={SLOWNESS:g}, c={C_MASS}, λ=0)", fontsize=10)
    fig.tight_layout()
    caption(fig, f"Π: initial policies with mass c = {C_MASS} on y$^γ$ and ≤ 1/T² on y′$^γ$ (Π′: roles swapped), "
              f"all with E$_{{π_0}}$[r$_G$] = V$_0$ = {V0:g}; r$_G$(y$^γ$) = 1, r$_G$(y′$^γ$) = 0.9. Both teachers are "
              "one-hot ±1 rewards that differ only in which output they reward: the teacher is fast when the initial "
              "policy already covers its rewarded output (high variance) and slow otherwise (variance ≤ 8/T²). "
              "Thin lines: individual initial policies; dotted: Theorem 6's bound (fast cells: an UPPER bound on "
              "t$_γ$; slow cells: a LOWER bound).", y=0.0)
    write_figure(fig, out, NAME + ".png")
    return {"rows": rows, "summary": summary}


main = figure_main(run, __doc__)


if __name__ == "__main__":
    sys.exit(main())
