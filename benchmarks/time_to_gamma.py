"""Benchmark: batched time-to-γ vs (a) scipy solve_ivp looped over instances, (b) fixed-step Euler.

Run by hand:  python benchmarks/time_to_gamma.py [--n 4096] [--outputs 256] [--subset 64]

Instances: |Y| = 256 outputs, rewards in [-1, 1], initial policies that put mass 1 − ε on one output with
ε log-uniform, so the initial reward variance spans ~1e-12 … ~1 and t_γ (γ = 0.01) spans ~1 … ≥ 1e9.
Accuracy is measured against a tight float64 reference (this solver at rtol = atol = 1e-13, itself checked
against scipy DOP853 at 1e-13 on the subset). The scipy loop is timed on a random subset of instances and
scaled linearly to the full batch (a full loop takes hours); this is printed as such.
"""

from __future__ import annotations

import argparse
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import rmtheory as rt

sys.path.insert(0, "tests")
from _scipy_ref import scipy_time_to_gamma  # noqa: E402


def make_instances(n, n_out, seed=0):
    rng = np.random.default_rng(seed)
    eps = 10.0 ** rng.uniform(-12.5, 0, size=n)  # mass outside the dominant output
    logits = 0.5 * rng.normal(size=(n, 1, n_out))
    logits[:, 0, 1:] += np.log(eps / (n_out - 1))[:, None]
    logits[:, 0, 0] = np.log1p(-np.minimum(eps, 0.999))
    u = rng.uniform(-1, 1, size=(n, 1, n_out))
    reward = np.sign(u) * np.abs(u) ** 0.3
    return rt.make_instance(logits, reward, 0.0)


def timed(fn, *a, **k):
    t0 = time.perf_counter()
    out = fn(*a, **k)
    jax.block_until_ready(out)
    return out, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--outputs", type=int, default=256)
    ap.add_argument("--subset", type=int, default=64)
    ap.add_argument("--gamma", type=float, default=0.01)
    ap.add_argument("--rtol", type=float, default=1e-8)
    ap.add_argument("--scipy-rtol", type=float, default=1e-8)
    args = ap.parse_args()
    g = args.gamma
    inst = make_instances(args.n, args.outputs)
    var = np.asarray(rt.reward_variance(rt.policy(inst.logits), inst.reward))[:, 0]
    print(f"{args.n} instances, |Y| = {args.outputs}, gamma = {g}; initial variance spans "
          f"{var.min():.1e} … {var.max():.2f}")

    # tight reference (compile + run)
    ref, t_ref = timed(rt.time_to_gamma, inst, g, rtol=1e-13, atol=1e-13, t_max=1e16, max_steps=200_000)
    t_true = np.asarray(ref.t)[:, 0]
    fin = np.isfinite(t_true)
    print(f"reference (rtol=atol=1e-13): {t_ref:.1f} s incl. compile; t_γ spans {t_true[fin].min():.2g} … "
          f"{t_true[fin].max():.2g}; {np.sum(~fin)} unreachable (certified: "
          f"{np.sum(np.asarray(ref.status)[:, 0] == rt.UNREACHABLE)})")

    # ours: compile once, then time
    kw = dict(rtol=args.rtol, atol=args.rtol, t_max=1e16, max_steps=200_000)
    rt.time_to_gamma(jax.tree_util.tree_map(lambda a: a[:2], inst), g, **kw)  # warm-up compile (same shapes ok)
    res, t_ours = timed(rt.time_to_gamma, inst, g, **kw)
    t_ours_all = np.asarray(res.t)[:, 0]
    same_inf = np.array_equal(np.isfinite(t_ours_all), fin)
    err = np.max(np.abs(t_ours_all[fin] - t_true[fin]) / t_true[fin])
    steps = np.asarray(res.steps)[:, 0]
    print(f"rmtheory (DOPRI5, rtol=atol={args.rtol:g}, vmapped): {t_ours:.2f} s; max rel err {err:.2e}; "
          f"inf pattern identical: {same_inf}; steps median {np.median(steps):.0f}, max {steps.max()}")

    # (a) scipy loop on a subset, same tolerance, RK45 (= Dormand–Prince 5(4))
    rng = np.random.default_rng(1)
    sub = rng.choice(args.n, size=min(args.subset, args.n), replace=False)
    logits, reward = np.asarray(inst.logits)[:, 0], np.asarray(inst.reward)[:, 0]
    t0 = time.perf_counter()
    sc = np.array([scipy_time_to_gamma(logits[i], reward[i], reward[i], g, t_max=1e16, rtol=args.scipy_rtol,
                                       atol=args.scipy_rtol) for i in sub])
    t_sc = (time.perf_counter() - t0) * args.n / len(sub)
    fs = np.isfinite(t_true[sub]) & np.isfinite(sc)
    err_sc = np.max(np.abs(sc[fs] - t_true[sub][fs]) / t_true[sub][fs]) if fs.any() else np.nan
    tight = np.array([scipy_time_to_gamma(logits[i], reward[i], reward[i], g, t_max=1e16) for i in sub[:16]])
    ft = np.isfinite(tight)
    err_ref = np.max(np.abs(tight[ft] - t_true[sub[:16]][ft]) / tight[ft]) if ft.any() else np.nan
    print(f"(a) scipy solve_ivp DOP853 loop, rtol=atol={args.scipy_rtol:g}: {t_sc:.1f} s for {args.n} "
          f"(timed on {len(sub)}, scaled); max rel err {err_sc:.2e}; "
          f"reference vs scipy@1e-13 on 16: {err_ref:.1e}")

    # (b) fixed-step forward Euler, batched in JAX: time per step, steps needed = t_γ / h
    h = 0.05
    n_euler = 2000

    @jax.jit
    def euler(theta):
        def body(th, _):
            return th + h * rt.gradient(inst._replace(logits=th)), None
        return jax.lax.scan(body, theta, None, length=n_euler)[0]

    euler(inst.logits)
    _, t_eu = timed(euler, inst.logits)
    per_step = t_eu / n_euler
    need = np.max(t_true[fin]) / h
    print(f"(b) fixed-step Euler (h={h}), batched: {per_step * 1e3:.2f} ms/step; reaching max t_γ needs "
          f"{need:.1e} steps ≈ {need * per_step:.1e} s")
    print(f"speed-up vs (a): {t_sc / t_ours:.1f}x   vs (b): {need * per_step / t_ours:.1e}x   "
          f"(target ≥ 30x vs (a) at max rel err ≤ 1e-4)")


if __name__ == "__main__":
    main()
