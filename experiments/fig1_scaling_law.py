"""Figure 1: the scaling law of t_γ against the initial reward variance (Proposition 3, Theorem 4).

Families (λ = 0, one prompt, r_RM = s·r_G with r_G uniform in [−1, 1], t_γ timed on r_G with γ = 0.1):

* tabular, rescaled RM: logits N(0, 1), s log-uniform in [1e−3, 1] (the exact time-rescaling family, so
  its slope should be close to −1/2; theory.md 2.7);
* tabular, peaked policies: s = 1, logits N(0, 1) × temperature log-uniform in [0.5, 8] (low variance
  from concentrated policies; its slope need not be −1/2);
* autoregressive tabular (TabularAR, |V| = 3, L = 2, J = 1) and MLP policies (J_{t_γ} computed along the
  trajectory), both with rescaled RMs.

Both results are *lower* bounds: a fitted slope may be steeper than −1/2 or −1/3. A worst-case search over
two-output and small random instances reports the smallest t_γ / (Prop. 3 bound) found.
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
from rmtheory._neural import init_batch  # noqa: E402

GAMMA = 0.1
NAME = "fig1_scaling_law"


def tabular_points(key, n: int, n_outputs: int = 8, *, gamma: float = GAMMA):
    """Two families of single-prompt tabular instances in one batched call (n each): "rescaled" (s
    log-uniform, unit-temperature logits) and "peaked" (s = 1, temperature log-uniform in [0.5, 8]).
    Returns {family: dict(var, t, bound_prop3, bound_thm4)}."""
    k1, k2, k3, k4 = jax.random.split(key, 4)
    logits = jax.random.normal(k1, (2 * n, 1, n_outputs))
    r_g = jax.random.uniform(k2, (2 * n, 1, n_outputs), minval=-1.0, maxval=1.0)
    s = 10.0 ** jax.random.uniform(k3, (n, 1, 1), minval=-3.0, maxval=0.0)
    temp = jnp.exp(jax.random.uniform(k4, (n, 1, 1), minval=np.log(0.5), maxval=np.log(8.0)))
    s = jnp.concatenate([s, jnp.ones((n, 1, 1))])
    temp = jnp.concatenate([jnp.ones((n, 1, 1)), temp])
    inst = rt.make_instance(temp * logits, s * r_g)
    var = np.asarray(rt.reward_variance(rt.policy(inst.logits), inst.reward))[:, 0]
    t = np.asarray(rt.time_to_gamma(inst, gamma, measure=r_g).t)[:, 0]
    d = {"var": var, "t": t, "bound_prop3": np.asarray(rt.prop3_time_lower_bound(var, gamma)),
         "bound_thm4": np.asarray(rt.thm4_time_lower_bound(var, gamma))}
    return {"tabular (rescaled RM)": {k: v[:n] for k, v in d.items()},
            "tabular (peaked policies)": {k: v[n:] for k, v in d.items()}}


def neural_points(key, policy, n: int, *, gamma: float = GAMMA, jacobian: bool = False):
    """Autoregressive policies (``policy`` a TabularAR or MLP) with r_RM = s·r_G, s log-uniform in
    [1e−3, 1]; t_γ on r_G at prompt 0. With ``jacobian`` the Thm. 4 bound uses J_{t_γ} measured along the
    trajectory (16-point grid), else J = 1 (exact for TabularAR)."""
    k1, k2, k3 = jax.random.split(key, 3)
    params = init_batch(policy, k1, n)
    ny = policy.n_outputs
    r_g = jax.random.uniform(k2, (n, 1, ny), minval=-1.0, maxval=1.0)
    s = 10.0 ** jax.random.uniform(k3, (n, 1, 1), minval=-3.0, maxval=0.0)
    r_rm = s * r_g
    pi0 = jnp.exp(jax.vmap(policy.log_probs)(params))
    var = np.asarray(rt.reward_variance(pi0, r_rm))[:, 0]
    t = np.asarray(rt.neural_time_to_gamma(policy, params, r_rm, gamma, prompt=0, measure=r_g).t)
    if jacobian:
        t_end = np.where(np.isfinite(t), t, 0.0)
        jac = np.asarray(rt.trajectory_jacobian_norm(policy, params, r_rm, t_end, n_grid=16))
    else:
        jac = np.ones(n)
    bound = np.asarray(rt.thm4_time_lower_bound(var, gamma, length=policy.length, jacobian=jac))
    return {"var": var, "t": t, "bound_prop3": np.full(n, np.nan), "bound_thm4": bound, "jacobian": jac}


def _random_small(key, ny: int, n: int):
    k1, k2, k3 = jax.random.split(key, 3)
    lg = 2.0 * np.asarray(jax.random.normal(k1, (n, 1, ny)))
    rr = np.asarray(jax.random.uniform(k2, (n, 1, ny), minval=-1.0, maxval=1.0))
    pi = np.asarray(rt.policy(lg))
    v0 = np.sum(pi * rr, -1)[:, 0]
    gap = rr.max(-1)[:, 0] - v0
    frac = 10.0 ** np.asarray(jax.random.uniform(k3, (n,), minval=-3.0, maxval=np.log10(0.95)))
    return lg, rr, rr, np.maximum(frac * gap, 1e-6)


def worst_case_search(key, n_random: int, n_line: int = 25, sizes=(2, 3, 4), gamma: float = GAMMA):
    """Smallest t_γ / (Prop. 3 bound), λ = 0, over
    (a) two-output instances π = (p, 1 − p), r_RM = (1, −1)/2, timed r = (1, −1), on a grid of p and γ
        (the ratio is invariant to the RM scale by time rescaling);
    (b) ``n_random`` random instances for each |Y| in ``sizes`` (logits 2·N(0,1), r uniform, timed on r_RM,
        γ a log-uniform fraction of the reachable increase).
    Also returns the line drawn on the figure: π = (½, ½), r_RM = a(1, −1), timed r = (1, −1), γ = 0.1, a
    log-spaced in [1e−3, 1] (computed in the same batched call as the two-output grid)."""
    ps = np.linspace(0.02, 0.98, 49)
    gammas = np.geomspace(1e-3, 1.5, 25)
    P, G = (a.ravel() for a in np.meshgrid(ps, gammas, indexing="ij"))
    reach = (1.0 - (2 * P - 1)) > G  # target below max r = 1
    P, G = P[reach], G[reach]
    a_line = np.geomspace(1e-3, 1.0, n_line)
    lg2 = np.stack([np.log(P), np.log1p(-P)], -1)[:, None]
    pm = np.broadcast_to(np.array([1.0, -1.0]), lg2.shape)
    lg_line = np.zeros((n_line, 1, 2))
    pm_line = np.broadcast_to(np.array([1.0, -1.0]), lg_line.shape)
    blocks = {2: [(lg2, 0.5 * pm, pm, G, "grid"),
                  (lg_line, a_line[:, None, None] * pm_line, pm_line, np.full(n_line, gamma), "line")]}
    for ny, kk in zip(sizes, jax.random.split(key, len(sizes))):
        blocks.setdefault(ny, []).append(_random_small(kk, ny, n_random) + ("random",))
    best = {"random_small": []}
    line = None
    for ny, bl in blocks.items():
        lg = np.concatenate([b[0] for b in bl])
        rr = np.concatenate([b[1] for b in bl])
        ms = np.concatenate([b[2] for b in bl])
        gg = np.concatenate([b[3] for b in bl])
        tags = np.concatenate([[b[4]] * len(b[0]) for b in bl])
        ins = rt.make_instance(lg, rr)
        var = np.asarray(rt.reward_variance(rt.policy(ins.logits), ins.reward))[:, 0]
        t = np.asarray(rt.time_to_gamma(ins, gg[:, None], measure=ms).t)[:, 0]
        bound = np.asarray(rt.prop3_time_lower_bound(var, gg))
        ratio = t / bound
        for tag in ("grid", "random", "line"):
            m = tags == tag
            if not m.any():
                continue
            if tag == "line":
                line = {"var": var[m], "t": t[m], "bound_prop3": bound[m],
                        "bound_thm4": np.asarray(rt.thm4_time_lower_bound(var[m], gg[m]))}
                continue
            j = int(np.nanargmin(np.where(m, ratio, np.nan)))
            rec = {"n_outputs": ny, "n": int(m.sum()), "min_ratio": float(ratio[j]), "gamma": float(gg[j]),
                   "violations": int(np.sum(ratio[m] < 1 - 1e-9))}
            if tag == "grid":
                rec["p"] = float(P[j])
                best["two_output_grid"] = rec
            else:
                best["random_small"].append(rec)
    recs = [best["two_output_grid"]] + best["random_small"]
    best["min_ratio"] = float(min(r["min_ratio"] for r in recs))
    best["violations"] = int(sum(r["violations"] for r in recs))
    return best, line


def compute(quick: bool, seed: int, neural: bool = True):
    """All families and the worst-case search. ``quick`` shrinks every batch and skips the MLP (its
    trajectory Jacobian is the slowest part)."""
    ks = jax.random.split(jax.random.PRNGKey(seed), 6)
    fams = tabular_points(ks[0], 150 if quick else 1500)
    if neural:
        fams["autoregressive tabular (|V|=3, L=2)"] = neural_points(ks[2], rt.TabularAR(1, 3, 2), 12 if quick else 96)
        if not quick:
            fams["MLP (|V|=3, L=2)"] = neural_points(ks[3], rt.MLP(1, 3, 2), 48, jacobian=True)
    worst, line = worst_case_search(ks[4], 100 if quick else 3000, n_line=8 if quick else 25,
                                    sizes=(2,) if quick else (2, 3, 4))
    fams["worst case: two equiprobable outputs"] = line
    return fams, worst


def run(quick: bool = False, seed: int = 0, out: str = "figures"):
    fams, worst = compute(quick, seed)
    rows = {"family": [], "variance": [], "t_gamma": [], "bound_prop3": [], "bound_thm4": [], "jacobian": []}
    summary = {"gamma": GAMMA, "lambda": 0.0, "families": {}, "worst_case": worst}
    for name, d in fams.items():
        n = len(d["var"])
        rows["family"] += [name] * n
        rows["variance"] += list(d["var"])
        rows["t_gamma"] += list(d["t"])
        rows["bound_prop3"] += list(d["bound_prop3"])
        rows["bound_thm4"] += list(d["bound_thm4"])
        rows["jacobian"] += list(d.get("jacobian", np.ones(n)))
        slope, icpt = C.loglog_slope(d["var"], d["t"])
        fin = np.isfinite(d["t"])
        p3 = d["bound_prop3"]
        summary["families"][name] = {
            "n": n, "n_finite": int(fin.sum()), "slope": slope, "intercept_log10": icpt,
            "min_ratio_prop3": float(np.nanmin(np.where(fin, d["t"] / p3, np.nan))) if np.isfinite(p3).any() else None,
            "min_ratio_thm4": float(np.nanmin(np.where(fin, d["t"] / d["bound_thm4"], np.nan))),
            "violations_prop3": int(np.sum(d["t"] < p3 * (1 - 1e-9))),
            "violations_thm4": int(np.sum(d["t"] < d["bound_thm4"] * (1 - 1e-9))),
        }
        print(f"  {name:40s} n={n:5d} slope={slope:+.3f}  min t/Thm4={summary['families'][name]['min_ratio_thm4']:.3g}")
    print(f"  worst-case min t_γ/Prop.3 bound = {worst['min_ratio']:.4f}")
    rows = {k: (np.array(v) if k == "family" else np.asarray(v, float)) for k, v in rows.items()}
    C.save_csv(rows, out, NAME + ".csv")
    C.save_json(summary, out, NAME + ".json")
    plot(fams, summary, out)
    return {"rows": rows, "summary": summary}


def plot(fams, summary, out):
    plt = C.pyplot()
    fig, ax = plt.subplots(figsize=(7.6, 5.4))
    styles = {
        "tabular (rescaled RM)": dict(marker=".", color="C0", ms=3, alpha=0.5),
        "tabular (peaked policies)": dict(marker=".", color="C1", ms=3, alpha=0.5),
        "autoregressive tabular (|V|=3, L=2)": dict(marker="s", color="C2", ms=4, alpha=0.8),
        "MLP (|V|=3, L=2)": dict(marker="^", color="C3", ms=5, alpha=0.9),
        "worst case: two equiprobable outputs": dict(marker="o", color="k", ms=3, ls="-", lw=1),
    }
    allv = np.concatenate([d["var"] for d in fams.values()])
    allv = allv[allv > 0]
    for name, d in fams.items():
        st = dict(styles.get(name, {}))
        st.setdefault("ls", "none")
        s = summary["families"][name]["slope"]
        ax.loglog(d["var"], d["t"], label=f"{name}: slope {s:+.2f}", **st)
    vv = np.geomspace(allv.min(), allv.max(), 100)
    ax.loglog(vv, rt.prop3_time_lower_bound(vv, GAMMA), "b--", lw=1.5,
              label="Prop. 3 lower bound (tabular), ∝ Var$^{-1/2}$")
    ax.loglog(vv, rt.thm4_time_lower_bound(vv, GAMMA), "r:", lw=1.5, label="Thm. 4 lower bound, L=1, J=1, ∝ Var$^{-1/3}$")
    ax.loglog(vv, rt.thm4_time_lower_bound(vv, GAMMA, length=2), "m:", lw=1.2, label="Thm. 4 lower bound, L=2, J=1")
    mlp = fams.get("MLP (|V|=3, L=2)")
    if mlp is not None:
        ax.loglog(mlp["var"], mlp["bound_thm4"], "x", color="C3", ms=4, label="Thm. 4 bound per MLP run (J = J$_{t_γ}$)")
    w = summary["worst_case"]
    ax.set_xlabel("initial reward variance Var$_{y∼π_{θ(0)}}$[r$_{RM}$]  (reward units²)")
    ax.set_ylabel("t$_γ$: gradient-flow time to γ = 0.1 increase of E[r$_G$]  (flow time)")
    ax.set_title("Low reward variance ⇒ slow ascent (λ = 0; bounds are LOWER bounds —\n"
                 "measured slopes may be steeper than −1/2 or −1/3)")
    ax.text(0.02, 0.03, f"min t$_γ$ / Prop. 3 bound found = {w['min_ratio']:.3f}\n"
            "(search over two-output and small random instances; γ, π swept)",
            transform=ax.transAxes, fontsize=8, va="bottom", bbox=dict(fc="w", ec="0.7"))
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="upper right", fontsize=7)
    C.save_figure(fig, out, NAME + ".png")


def main(argv=None) -> int:
    return C.script_main(run, argv, __doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
