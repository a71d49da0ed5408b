"""Benchmark: batched time-to-γ vs the machine's own floor, (a) scipy solve_ivp looped over instances,
(c) diffrax vmapped over the batch, (b) fixed-step Euler.

Run by hand:  python benchmarks/time_to_gamma.py [--n 4096] [--outputs 256] [--subset 64] [--rtol 1e-7]
(diffrax is a benchmark-only dependency: ``pip install -e ".[bench]"``; without it (c) is skipped.)

Instances (one prompt each): |Y| = 256 outputs, rewards in [-1, 1]; the initial policy puts mass 1 − ε on one
output whose reward is at most 0.5 (so the target is reachable in principle), ε log-uniform in [10^-12.5, 1),
so the initial reward variance spans ~1e-13 … ~0.6 and t_γ (γ = 0.01) spans ~0.1 … ~1e16; about 12 % of the
targets are not reached by t_max = 1e16 (the same ones for every solver and tolerance, which is checked).

Accuracy is measured against a tight float64 reference: this solver at rtol = atol = 1e-13, itself checked against
scipy DOP853 at 1e-13 on a subset. Baseline (a) is scipy's solve_ivp with a terminal event looped over instances, RK45
(Dormand–Prince 5(4), the same method) and DOP853 at the same tolerance, with the same plateau-stable right-hand side;
it is timed on a random subset and scaled linearly to the whole batch (a full loop takes tens of minutes), which the
output says. Floor: the minimum work of the method, timed in the same run. The solver used E right-hand-side
evaluations (6 per Runge–Kutta step, FSAL, plus 2 per problem to start); each is |Y| exponentials, two dot products
and one vector update. The floor runs exactly E such evaluations as a plain jitted kernel with no control flow
(``lax.scan`` over [B, |Y|] arrays, B = the number of lanes or 1024, whichever is faster here), and time / floor says
how far the solver is from what this CPU can do at best for the same number of evaluations. The machine may be shared:
every baseline is timed in alternating runs with rmtheory (best of each), and each ratio compares the two minima of
the same rounds. Baseline (c) is diffrax, what a JAX user would reach for: ``diffeqsolve`` with ``Dopri5``, a
``PIDController`` and a terminal ``Event`` (Newton root finder on the dense output), vmapped over the batch, the same
pivoted right-hand side, at the loosest tolerance meeting the same accuracy. Baseline (b) is forward Euler, batched in
JAX: its time per step is measured, and the steps it needs are t_γ,max / h (h = 0.05, which is only just stable for
the fastest instances, and still far from 1e-4 accuracy).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import functools
import importlib.util
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

import rmtheory as rt
from rmtheory import _sharding  # the queue count time_to_gamma picks (core_blocks), for the report
from _machine import cpu_model  # benchmarks/_machine.py (this script's directory is on sys.path)

rt.enable_x64()  # the theory's float64


def _load_scipy_ref():
    """The test suite's independent scipy reference, ``tests/_scipy_ref.py``, loaded from its path (tests/ is
    not a package and is not installed; loading the one file keeps a single copy without editing sys.path)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "_scipy_ref.py")
    spec = importlib.util.spec_from_file_location("rmtheory_tests_scipy_ref", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


scipy_time_to_gamma = _load_scipy_ref().scipy_time_to_gamma


def make_instances(n, n_out, seed=0):
    rng = np.random.default_rng(seed)
    eps = 10.0 ** rng.uniform(-12.5, 0, size=n)  # mass outside the dominant output
    logits = 0.5 * rng.normal(size=(n, 1, n_out))
    logits[:, 0, 1:] += np.log(eps / (n_out - 1))[:, None]
    logits[:, 0, 0] = np.log1p(-np.minimum(eps, 0.999))
    u = rng.uniform(-1, 1, size=(n, 1, n_out))
    reward = np.sign(u) * np.abs(u) ** 0.3
    reward[:, 0, 0] = rng.uniform(-1, 0.5, size=n)  # the dominant output is not the best one
    return rt.make_instance(logits, reward, 0.0)


def timed(fn, *a, repeats=1, **k):
    """(result, best wall time over ``repeats`` calls); every call is waited for (JAX dispatch is async)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn(*a, **k)
        jax.block_until_ready(out)
        best = min(best, time.perf_counter() - t0)
    return out, best


def paired(baseline, ours, repeats):
    """(best time of ``baseline``, best time of ``ours``) over ``repeats`` alternating runs of the two, so that
    both see the same load on a shared machine (the ratio of the two minima is what is reported)."""
    tb = to = float("inf")
    for _ in range(repeats):
        tb = min(tb, timed(baseline)[1])
        to = min(to, timed(ours)[1])
    return tb, to




@functools.partial(jax.jit, static_argnames=("n_iter",))
def floor_kernel(theta, d, n_iter):
    """n_iter × B evaluations of the right-hand side's vector work on [B, |Y|]: exp, Σe, Σe·d, e·(d − s/z)/z,
    and one update x + c·f that chains the evaluations (no control flow, no step logic)."""

    def body(x, _):
        e = jnp.exp(x)
        z = jnp.sum(e, -1, keepdims=True)
        s = jnp.sum(e * d, -1, keepdims=True)
        return x + 1e-3 * (e * (d - s / z) / z), None

    return jax.lax.scan(body, theta, None, length=n_iter)[0]


def floor_kernels(n_evals, n_out, lanes, threads):
    """The floor as zero-argument callables, keyed (B, T): ``n_evals`` evaluations on [B, |Y|] chunks, B ∈ {lanes,
    1024}, split over T ∈ {1, threads} threads running at once (each T-th of the evaluations, as its own XLA
    computation: how ``time_to_gamma`` runs one queue per core). The fastest of them is this machine's floor."""
    rng = np.random.default_rng(3)
    out = {}
    for b in sorted({lanes, 1024}):
        th = jnp.asarray(-np.abs(rng.normal(size=(b, n_out))))
        d = jnp.asarray(rng.uniform(-1, 1, size=(b, n_out)))
        for t in sorted({1, threads}):
            n_iter = -(-n_evals // (b * t))
            floor_kernel(th, d, n_iter)  # compile
            one = functools.partial(floor_kernel, th, d, n_iter)
            out[b, t] = one if t == 1 else functools.partial(_in_threads, [one] * t)
    return out


def _in_threads(calls):
    """Run the zero-argument callables at the same time, one thread each; wait for all."""
    with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
        return [f.result() for f in [pool.submit(lambda c=c: jax.block_until_ready(c())) for c in calls]]


def diffrax_solver(tol, gamma):
    """t_γ for a batch of columns by diffrax: Dopri5 + PIDController + terminal Event, vmapped (None if absent)."""
    try:
        import diffrax
        import equinox as eqx
        import optimistix as optx
    except ImportError:
        return None
    lemma7_column = rt.lemma7_column

    @eqx.filter_jit
    def run(th0, r):
        def one(th, rr):
            target = jnp.sum(jax.nn.softmax(th) * rr) + gamma
            term = diffrax.ODETerm(lambda t, y, args: lemma7_column(y, rr)[0])
            event = diffrax.Event(lambda t, y, args, **kw: jnp.sum(jax.nn.softmax(y) * rr) - target,
                                  root_finder=optx.Newton(rtol=1e-10, atol=1e-10))
            sol = diffrax.diffeqsolve(term, diffrax.Dopri5(), 0.0, 1e16, None, th, event=event,
                                      stepsize_controller=diffrax.PIDController(rtol=tol, atol=tol),
                                      max_steps=8192, throw=False, saveat=diffrax.SaveAt(t1=True))
            return jnp.where(sol.event_mask, sol.ts[-1], jnp.inf), sol.stats["num_steps"]

        return jax.vmap(one)(th0, r)

    return run


def rel_err(a, b):
    fin = np.isfinite(b)
    same = np.array_equal(np.isfinite(a), fin)
    return (np.max(np.abs(a[fin] - b[fin]) / b[fin]) if fin.any() else 0.0), same


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--outputs", type=int, default=256)
    ap.add_argument("--subset", type=int, default=64, help="instances the scipy loop is timed on")
    ap.add_argument("--gamma", type=float, default=0.01)
    ap.add_argument("--rtol", type=float, default=1e-7, help="tolerance of rmtheory and of the scipy loop")
    ap.add_argument("--lanes", type=int, default=64, help="lanes per queue (time_to_gamma's default)")
    ap.add_argument("--no-diffrax", action="store_true", help="skip baseline (c)")
    ap.add_argument("--no-scaling", action="store_true", help="skip the cost-scaling table (instances, |Y|)")
    ap.add_argument("--repeats", type=int, default=5, help="timings are the best of this many runs (each method)")
    args = ap.parse_args()
    g = args.gamma
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores visible; jax {jax.__version__} on {jax.devices()[0].platform}")
    inst = make_instances(args.n, args.outputs)
    var = np.asarray(rt.reward_variance(rt.policy(inst.logits), inst.reward))[:, 0]
    print(f"{args.n} instances, |Y| = {args.outputs}, gamma = {g}; initial variance spans "
          f"{var.min():.1e} … {var.max():.2f}", flush=True)

    # tight reference (its first call also compiles the function for these shapes; rtol etc. are traced)
    ref, t_ref = timed(rt.time_to_gamma, inst, g, rtol=1e-13, atol=1e-13, t_max=1e16, max_steps=200_000,
                       lanes=args.lanes)
    t_true = np.asarray(ref.t)[:, 0]
    fin = np.isfinite(t_true)
    print(f"reference (rtol=atol=1e-13): {t_ref:.1f} s incl. compile; t_γ spans {t_true[fin].min():.2g} … "
          f"{t_true[fin].max():.2g}; {np.sum(~fin)} not reached; steps median "
          f"{np.median(np.asarray(ref.steps)):.0f}, max {np.asarray(ref.steps).max()}", flush=True)

    kw = dict(rtol=args.rtol, atol=args.rtol, t_max=1e16, max_steps=200_000)
    queues = _sharding.core_blocks(args.n, args.lanes) if len(jax.devices()) == 1 else len(jax.devices())
    res, t_ours = timed(rt.time_to_gamma, inst, g, lanes=args.lanes, repeats=args.repeats, **kw)
    err, same = rel_err(np.asarray(res.t)[:, 0], t_true)
    steps = np.asarray(res.steps)[:, 0]
    print(f"rmtheory time_to_gamma (DOPRI5, rtol=atol={args.rtol:g}, {queues} queue(s) of {args.lanes} refilled lanes, "
          f"one per {'core' if len(jax.devices()) == 1 else 'device'}): {t_ours:.2f} s "
          f"(best of {args.repeats});"
          f" max rel err {err:.1e}; inf pattern identical: {same}; steps median {np.median(steps):.0f}, "
          f"max {steps.max()}", flush=True)
    run_ours = functools.partial(rt.time_to_gamma, inst, g, lanes=args.lanes, **kw)
    n_evals = 6 * int(np.sum(np.asarray(res.steps))) + 2 * args.n
    kernels = floor_kernels(n_evals, args.outputs, args.lanes, max(2, queues))
    first = {k: timed(f, repeats=2)[1] for k, f in kernels.items()}
    k_floor = min(first, key=first.get)  # the fastest chunk size and thread count on this machine
    t_floor, t_ours_f = paired(kernels[k_floor], run_ours, args.repeats)

    def name(k):
        return f"[{k[0]}, {args.outputs}] × {k[1]} thread{'s' if k[1] > 1 else ''}"

    others = ", ".join(f"{name(k)} {t:.2f} s" for k, t in first.items() if k != k_floor)
    print(f"floor: the same {n_evals:.3g} right-hand-side evaluations as a plain batched kernel (no control flow), "
          f"fastest of {len(kernels)} layouts: {name(k_floor)} {t_floor:.2f} s (best of {args.repeats}; others, best "
          f"of 2: {others}); rmtheory in the same rounds {t_ours_f:.2f} s → {t_ours_f / t_floor:.2f}x the floor",
          flush=True)
    n_lock = min(args.n, 1024)
    sub_inst = jax.tree_util.tree_map(lambda a: a[:n_lock] if jnp.ndim(a) else a, inst)
    rt.time_to_gamma(sub_inst, g, lanes=n_lock, cores=1, **kw)  # compile
    _, t_lock = timed(rt.time_to_gamma, sub_inst, g, lanes=n_lock, cores=1, repeats=args.repeats, **kw)
    t_lock *= args.n / n_lock
    print(f"same, plain vmap in lockstep (lanes = batch; timed on {n_lock}, scaled): {t_lock:.2f} s", flush=True)

    # (a) scipy loops on a subset, at the loosest tolerances that still reach the accuracy target
    rng = np.random.default_rng(1)
    sub = rng.choice(args.n, size=min(args.subset, args.n), replace=False)
    logits, reward = np.asarray(inst.logits)[:, 0], np.asarray(inst.reward)[:, 0]
    t_sc = {}
    for method, tols in (("RK45", (1e-6, 1e-7, 1e-8)), ("DOP853", (1e-5, 1e-6, 1e-7))):
        for tol in tols:
            def loop(tol=tol, method=method):
                return np.array([scipy_time_to_gamma(logits[i], reward[i], reward[i], g, t_max=1e16, rtol=tol,
                                                     atol=tol, method=method, pivot=True) for i in sub])

            sc, secs = timed(loop)
            e, same_sc = rel_err(sc, t_true[sub])
            ok = e <= 1e-4 and same_sc
            if ok:  # time it against rmtheory in alternating runs
                secs, t_o = paired(loop, run_ours, args.repeats)
                t_sc[f"{method}@{tol:g}"] = (secs * args.n / len(sub), t_o)
            same_rounds = f", best of {args.repeats}; rmtheory in the same rounds {t_o:.2f} s" if ok else ""
            print(f"(a) scipy solve_ivp {method} loop, rtol=atol={tol:g}: {secs * args.n / len(sub):.1f} s "
                  f"for {args.n} (timed on {len(sub)}, scaled{same_rounds}); "
                  f"max rel err {e:.1e}{'' if ok else '  (misses 1e-4)'}", flush=True)
            if ok:
                break
    tight = np.array([scipy_time_to_gamma(logits[i], reward[i], reward[i], g, t_max=1e16, pivot=True)
                      for i in sub[:16]])
    e_ref, _ = rel_err(t_true[sub[:16]], tight)
    print(f"    reference vs scipy DOP853 at 1e-13 on 16 instances: max rel diff {e_ref:.1e}", flush=True)

    # (c) diffrax, vmapped over the whole batch, at the loosest tolerance meeting the accuracy target
    t_dfx = None
    th_all, r_all = inst.logits[:, 0], inst.reward[:, 0]
    for tol in (() if args.no_diffrax else (1e-7, 1e-8, 1e-9)):
        run = diffrax_solver(tol, g)
        if run is None:
            print("(c) diffrax not installed (pip install -e \".[bench]\"): skipped")
            break
        td, dsteps = run(th_all, r_all)  # compile, and check the accuracy before timing
        e, same_d = rel_err(np.asarray(td), t_true)
        ok = e <= 1e-4 and same_d
        secs, t_o = paired(functools.partial(run, th_all, r_all), run_ours, min(args.repeats, 3)) if ok else (0, 0)
        print(f"(c) diffrax diffeqsolve Dopri5 + PIDController + terminal Event, vmapped, rtol=atol={tol:g}: "
              + (f"{secs:.2f} s (best of {min(args.repeats, 3)}; rmtheory in the same rounds {t_o:.2f} s); "
                 if ok else "")
              + f"max rel err {e:.1e}; inf pattern identical: {same_d}; "
              f"steps median {np.median(np.asarray(dsteps)):.0f}, max {np.max(np.asarray(dsteps))}"
              f"{'' if ok else '  (misses 1e-4)'}", flush=True)
        if ok:
            t_dfx = (secs, t_o)
            break

    # (b) fixed-step forward Euler, batched in JAX: time per step, steps needed = t_γ / h
    h, n_euler = 0.05, 2000

    @jax.jit
    def euler(ins):
        def body(th, _):
            return th + h * rt.gradient(ins._replace(logits=th)), None
        return jax.lax.scan(body, ins.logits, None, length=n_euler)[0]

    euler(inst)
    _, t_eu = timed(euler, inst)
    per_step = t_eu / n_euler
    need = np.max(t_true[fin]) / h
    print(f"(b) fixed-step Euler (h={h}), batched: {per_step * 1e3:.2f} ms/step; reaching max t_γ needs "
          f"{need:.1e} steps ≈ {need * per_step:.1e} s")
    best = min(t_sc, key=lambda k: t_sc[k][0])
    r_sc = t_sc[best][0] / t_sc[best][1]
    each = ", ".join(f"{k} {v[0] / v[1]:.1f}x" for k, v in t_sc.items())
    ok_acc = err <= 1e-4 and same
    print(f"CPU {cpu_model()}: rmtheory {t_ours:.2f} s (best of {args.repeats}), max rel err {err:.1e}, unreached "
          f"set equal: {same}. Each ratio: best baseline time / best rmtheory time over the same alternating rounds")
    print(f"    vs (a) fastest scipy loop at ≤ 1e-4 ({best}): {r_sc:.1f}x ({each})   target ≥ 30x: "
          f"{'met' if r_sc >= 30 and ok_acc else 'NOT met'}")
    if t_dfx is not None:
        r_d = t_dfx[0] / t_dfx[1]
        met = "met" if r_d >= 10 and ok_acc else "NOT met"
        print(f"    vs (c) diffrax at ≤ 1e-4: {r_d:.1f}x   target ≥ 10x: {met}")
    met = "met" if t_ours_f / t_floor <= 2 else "NOT met"
    print(f"    time / floor: {t_ours_f / t_floor:.2f}x   target ≤ 2x: {met}")
    print(f"    vs lockstep vmap: {t_lock / t_ours:.1f}x; vs (b): {need * per_step / t_ours:.1e}x", flush=True)

    # cost vs t_γ: steps per decade of t_γ (reached targets)
    dec = np.floor(np.log10(t_true[fin])).astype(int)
    rows = [f"1e{d}: {np.median(steps[fin][dec == d]):.0f}" for d in range(dec.min(), dec.max() + 1)
            if np.any(dec == d)]
    print("median steps by decade of t_γ: " + ", ".join(rows))
    if args.no_scaling:
        return
    # cost vs instances and |Y| (same solver, tolerance and lanes; best of 3 each)
    print("cost scaling (time / (instances × |Y|) should stay flat):")
    for n, m in ((args.n // 4, args.outputs), (args.n // 2, args.outputs), (args.n, args.outputs),
                 (args.n, args.outputs // 4), (args.n, args.outputs // 2)):
        ins = make_instances(n, m, seed=2)
        rt.time_to_gamma(ins, g, lanes=args.lanes, **kw)  # compile for this shape
        r, secs = timed(rt.time_to_gamma, ins, g, lanes=args.lanes, repeats=3, **kw)
        print(f"    {n:5d} instances × |Y| = {m:4d}: {secs:6.2f} s, "
              f"{secs / (n * m) * 1e9:6.1f} ns per instance·output, "
              f"{secs / int(np.sum(np.asarray(r.steps))) * 1e6:5.2f} µs per step", flush=True)


if __name__ == "__main__":
    main()
