"""The checks of ``rmtheory verify`` (:mod:`rmtheory._verify`): one ``check_*(rng, cfg)`` per result of the paper,
each drawing random instances from ``rng`` at the scale ``cfg`` (``n``, ``n_neural``, ``n_grid``), running the exact
flows and returning one :class:`Row` (or a list of rows).

A lower bound t_γ ≥ B is violated iff the target is reached before B; an upper bound t_γ ≤ B is violated iff it is
not reached by B (docs/theory.md, "Checking a bound numerically"). The ratio of a row is the tightest over its
instances, oriented so that ≤ 1 means "holds".
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
import numpy as np

from . import _best_of_n as bon
from . import _bounds as B
from . import _constructions as constructions
from . import _neural as NN
from . import _rate_estimator as RE
from . import _teaching_rate as TR
from ._flow import flow_trajectory, time_to_gamma
from ._instance import make_instance
from ._metrics import accuracy, reward_variance
from ._objective import gradient, kl_reward, objective, policy, policy_velocity, prompt_gradient, value

N_PROMPTS, N_OUT = 2, 6  # every tabular flow uses this shape (one compile)
LOWER_TOL = 1e-7  # relative slack on the integrator's hitting time
GRID_TOL = 0.05  # slack for the grid under-estimate of J_T


class Row(NamedTuple):
    """One line of the verify table: a result, the instances tried, the violations and the tightest ratio."""

    result: str
    tried: int
    violations: int
    ratio: float
    ratio_kind: str
    note: str = ""


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------

def _softmax(z):
    return np.asarray(policy(jnp.asarray(z)))


def _var(pi, r):
    return np.asarray(reward_variance(jnp.asarray(pi), jnp.asarray(r)))


def _hit(logits, reward, lam, gamma, measure, t_max=1e15):
    inst = make_instance(jnp.asarray(logits), jnp.asarray(reward), jnp.asarray(lam))
    res = time_to_gamma(inst, jnp.asarray(gamma), measure=jnp.asarray(measure), t_max=t_max)
    return np.asarray(res.t)


def _max(a, default=0.0):
    a = np.asarray(a, np.float64)
    a = a[np.isfinite(a)]
    return float(a.max()) if a.size else default


def _lower_row(name, t, bound, note=""):
    t, bound = np.asarray(t).ravel(), np.asarray(bound).ravel()
    viol = int(np.sum(t < bound * (1 - LOWER_TOL)))
    ratio = np.where(np.isfinite(t), bound / np.where(np.isfinite(t), t, 1.0), 0.0)
    return Row(name, t.size, viol, _max(ratio), "bound/t", note)


def _upper_row(name, t, bound, note=""):
    t, bound = np.asarray(t).ravel(), np.asarray(bound).ravel()
    viol = int(np.sum(~(t <= bound * (1 + LOWER_TOL))))
    return Row(name, t.size, viol, _max(t / bound, np.inf), "t/bound", note)


def _random_tabular(rng, n, lam_max=1.0, scales=True):
    logits = 1.5 * rng.standard_normal((n, N_PROMPTS, N_OUT))
    reward = rng.uniform(-1, 1, (n, N_PROMPTS, N_OUT))
    if scales:
        reward *= 10.0 ** -rng.uniform(0, 4, (n, 1, 1))
    lam = np.where(rng.random(n) < 0.5, 0.0, rng.uniform(0, lam_max, n))
    return logits, reward, lam


# --------------------------------------------------------------------------------------------------
# checks
# --------------------------------------------------------------------------------------------------

def _random_timed_case(rng, n):
    """Random tabular instances, a separate timed reward r and a reachable γ per prompt."""
    logits, reward, lam = _random_tabular(rng, n)
    meas = rng.uniform(-1, 1, reward.shape)
    pi = _softmax(logits)
    v0 = (pi * meas).sum(-1)
    gamma = rng.uniform(0.05, 0.95, v0.shape) * (meas.max(-1) - v0)
    return logits, reward, lam, meas, pi, gamma


def check_prop3(rng, cfg):
    """Proposition 3 [T]: per-prompt variance, |S| = 2, any timed reward r."""
    logits, reward, lam, meas, pi, gamma = _random_timed_case(rng, cfg["n"])
    bound = np.asarray(B.prop3_time_lower_bound(_var(pi, reward), gamma, N_PROMPTS))
    t = _hit(logits, reward, lam, gamma, meas)
    return _lower_row("Prop 3 (tabular, |S|=2)", t, bound)


def check_thm4_tabular(rng, cfg):
    """Theorem 4 with L = J = 1 on tabular instances: mean variance over S, every prompt."""
    logits, reward, lam, meas, pi, gamma = _random_timed_case(rng, cfg["n"])
    mean_var = _var(pi, reward).mean(-1, keepdims=True)
    bound = np.asarray(B.thm4_time_lower_bound(mean_var, gamma, lam[:, None]))
    t = _hit(logits, reward, lam, gamma, meas)
    return _lower_row("Thm 4 (tabular, L=J=1)", t, bound)


def _neural_thm4(rng, cfg, policy_obj, name, seed):
    n = cfg["n_neural"]
    key = jax.random.PRNGKey(seed)
    params = NN.init_batch(policy_obj, key, n)
    x, y = policy_obj.n_prompts, policy_obj.n_outputs
    mask = np.array([1.0, 1.0, 0.0])  # S = first two prompts; prompt 2 is outside S
    scale = 10.0 ** -rng.uniform(2, 4, n)
    base = rng.uniform(-1, 1, (n, x, y))
    reward = base * scale[:, None, None]
    # timed reward r: the proxy's own direction (so the flow climbs it) or an unrelated reward
    meas = np.where(rng.random((n, 1, 1)) < 0.75, base, rng.uniform(-1, 1, (n, x, y)))
    lam = np.where(rng.random(n) < 0.5, 0.0, rng.uniform(0, 0.1, n) * scale)
    prompt = rng.integers(0, x, n)
    logp0 = np.asarray(jax.vmap(policy_obj.log_probs)(params))
    pi0 = np.exp(logp0)
    v0 = (pi0 * meas).sum(-1)[np.arange(n), prompt]
    gamma = rng.uniform(0.02, 0.3, n) * (meas.max(-1)[np.arange(n), prompt] - v0)
    mean_var = (_var(pi0, reward) * mask).sum(-1) / mask.sum()
    res = NN.time_to_gamma(policy_obj, params, reward, gamma, prompt=prompt, measure=meas, lam=lam,
                           train_mask=mask, t_max=1e9)
    t = np.asarray(res.t)
    t_end = np.where(np.isfinite(t), t, 0.0)
    jt = np.asarray(NN.trajectory_jacobian_norm(policy_obj, params, reward, t_end, lam=lam, train_mask=mask,
                                                n_grid=cfg["n_grid"]))
    bound = np.asarray(B.thm4_time_lower_bound(mean_var, gamma, lam, policy_obj.length, jt))
    viol = int(np.sum(np.isfinite(t) & (t < bound * (1 - GRID_TOL))))
    ratio = _max(np.where(np.isfinite(t), bound / np.where(np.isfinite(t), t, 1.0), 0.0))
    reached = int(np.isfinite(t).sum())
    return Row(name, n, viol, ratio, "bound/t", f"{reached} hit by 1e9; J_T up to {jt.max():.3g}")


def check_thm4_ar(rng, cfg):
    return _neural_thm4(rng, cfg, NN.TabularAR(3, 2, 3), "Thm 4 (AR tabular, L=3)", int(rng.integers(1 << 30)))


def check_thm4_mlp(rng, cfg):
    return _neural_thm4(rng, cfg, NN.MLP(3, 2, 3), "Thm 4 (MLP f_theta, L=3)", int(rng.integers(1 << 30)))


@functools.lru_cache(maxsize=None)
def _prop2_fn(policy_obj):
    def one(p, rp, r, la, x):
        ref = policy_obj.log_probs(rp)
        g = NN.per_prompt_gradient(policy_obj, p, r, ref, la, x)
        logp = policy_obj.log_probs(p)[x]
        rkl = r[x] - la * (logp - ref[x])
        pi = jnp.exp(logp)
        var = jnp.sum(pi * (rkl - jnp.sum(pi * rkl)) ** 2)
        jx = NN.jacobian_norm(policy_obj, p, x)
        return jnp.linalg.norm(g), var, jnp.max(jnp.abs(rkl)), jx

    return jax.jit(jax.vmap(one))


def _prop2_batch(policy_obj, params, ref_params, reward, lam, prompt):
    return _prop2_fn(policy_obj)(params, ref_params, reward, lam, prompt)


def check_prop2(rng, cfg):
    """Proposition 2 [G] at random θ ≠ θ_ref, M = max_y |r^KL|, measured J_x (MLP and AR tabular)."""
    rows_t, n_tot, viol = [], 0, 0
    for pol in (NN.MLP(3, 2, 3), NN.TabularAR(3, 2, 3)):
        n = 4 * cfg["n_neural"]
        k1, k2 = jax.random.split(jax.random.PRNGKey(int(rng.integers(1 << 30))))
        ref = NN.init_batch(pol, k1, n)
        params = jax.tree_util.tree_map(lambda a, b: a + 0.5 * b, ref, NN.init_batch(pol, k2, n))
        reward = rng.uniform(-1, 1, (n, 3, pol.n_outputs)) * 10.0 ** -rng.uniform(0, 4, (n, 1, 1))
        lam = np.where(rng.random(n) < 0.5, 0.0, rng.uniform(0, 1, n))
        prompt = rng.integers(0, 3, n)
        g, var, m, jx = (np.asarray(a) for a in _prop2_batch(pol, params, ref, reward, lam, prompt))
        bound = np.asarray(B.prop2_gradient_bound(var, np.maximum(m, 1e-300), pol.length, jx))
        viol += int(np.sum(g > bound * (1 + 1e-9) + 1e-300))
        rows_t.append(g / bound)
        n_tot += n
    return Row("Prop 2 (MLP + AR grad norm)", n_tot, viol, _max(np.concatenate(rows_t)), "lhs/rhs")


def check_lemma8(rng, cfg):
    """Lemma 8 [T] at random θ with π_ref ≠ π_θ and λ ≥ 0 (|Y| = 2 included: the equality case)."""
    n = 4 * cfg["n"]
    out = []
    viol = 0
    for n_out in (2, N_OUT):
        logits = 2.0 * rng.standard_normal((n, N_PROMPTS, n_out))
        ref = 2.0 * rng.standard_normal((n, N_PROMPTS, n_out))
        reward = rng.uniform(-1, 1, logits.shape)
        lam = np.where(rng.random(n) < 0.5, 0.0, rng.uniform(0, 1, n))
        inst = make_instance(jnp.asarray(ref), jnp.asarray(reward), jnp.asarray(lam))
        g = np.abs(np.asarray(prompt_gradient(inst, jnp.asarray(logits)))).sum(-1)
        rkl = np.asarray(kl_reward(inst, jnp.asarray(logits)))
        bound = np.asarray(B.lemma8_gradient_bound(_var(_softmax(logits), rkl)))
        viol += int(np.sum(g > bound * (1 + 1e-9) + 1e-15))
        out.append(g / np.maximum(bound, 1e-300))
    return Row("Lemma 8 (tabular l1 grad)", 2 * n * N_PROMPTS, viol, _max(np.concatenate(out)), "lhs/rhs")


def check_lemma9(rng, cfg):
    """Lemma 9 [T]: the π-ODE equals (diag π − ππᵀ)·θ̇ and the finite-difference derivative of the flow."""
    n = cfg["n"]
    logits, reward, lam = _random_tabular(rng, n, scales=False)
    inst = make_instance(jnp.asarray(logits), jnp.asarray(reward), jnp.asarray(lam))
    t0, h = 0.7, 1e-3
    traj = flow_trajectory(inst, jnp.array([t0 - h, t0, t0 + h]))
    th = traj[1]
    pi = np.asarray(policy(th))
    vel = np.asarray(policy_velocity(inst, th))
    g = np.asarray(gradient(inst, th))
    chain = pi * g - pi * (pi * g).sum(-1, keepdims=True)
    fd = (np.asarray(policy(traj[2])) - np.asarray(policy(traj[0]))) / (2 * h)
    scale = np.abs(vel).max() + 1e-300
    err = max(np.abs(vel - chain).max() / scale / 1e-10, np.abs(vel - fd).max() / scale / 1e-5)
    return Row("Lemma 9 (pi-ODE = theta-flow)", n * N_PROMPTS, int(err > 1), err, "err/tol",
               "tol 1e-10 (chain rule), 1e-5 (finite diff.)")


def check_lemma10(rng, cfg):
    """Lemma 10 [T]: π_T(A) ≤ π_0(A) exp((4 + 2λ ln(1/min π_0)) T/|S|) for random sets A."""
    n = cfg["n"]
    logits, reward, lam = _random_tabular(rng, n, lam_max=3.0, scales=False)
    inst = make_instance(jnp.asarray(logits), jnp.asarray(reward), jnp.asarray(lam))
    ts = np.array([0.05, 0.2, 1.0, 3.0, 10.0, 30.0])
    traj = np.asarray(policy(flow_trajectory(inst, jnp.asarray(ts))))  # [T, n, S, Y]
    sets = rng.random((8, n, N_PROMPTS, N_OUT)) < 0.35
    sets[..., 0] |= ~sets.any(-1)
    pi0 = _softmax(logits)
    ratios = []
    for a in sets:
        pa = (traj * a).sum(-1)  # [T, n, S]
        bound = np.asarray(B.lemma10_growth_bound((pi0 * a).sum(-1), pi0.min(-1), ts[:, None, None],
                                                  lam[:, None], N_PROMPTS))
        ratios.append(pa / bound)
    ratios = np.stack(ratios)
    return Row("Lemma 10 (growth of pi(A))", ratios.size, int(np.sum(ratios > 1 + 1e-9)), _max(ratios), "lhs/rhs")


def _prop4_instances(rng, n):
    logits = 1.5 * rng.standard_normal((n, N_PROMPTS, N_OUT))
    k = rng.integers(1, 3, (n, N_PROMPTS))
    good = np.arange(N_OUT)[None, None, :] < k[..., None]
    logits = np.where(good, logits - rng.uniform(0, 3, logits.shape), logits)
    r_g = np.where(good, rng.uniform(0.5, 1, logits.shape), rng.uniform(-1, 0.5, logits.shape))
    easy = rng.random((n, N_PROMPTS, 1)) < 0.75
    r_rm = np.where(good, 1 - rng.uniform(0, 0.05, logits.shape),
                    np.where(easy, rng.uniform(-1, -0.9, logits.shape), rng.uniform(-1, 1, logits.shape)))
    pi = _softmax(logits)
    v0 = (pi * r_g).sum(-1)
    room = np.where(good, r_g, np.inf).min(-1) - v0
    gamma = rng.uniform(0.1, 0.9, v0.shape) * np.maximum(room, 1e-3)
    return logits, pi, r_g, r_rm, good, gamma


def check_prop4(rng, cfg):
    """Proposition 4 [T]: whenever the three conditions hold, t_γ (for r_G) ≤ the bound."""
    n = cfg["n"]
    logits, pi, r_g, r_rm, good, gamma = _prop4_instances(rng, n)
    checks = [[B.prop4_conditions(pi[i, s], r_g[i, s], r_rm[i, s], gamma[i, s], good[i, s], 0.0, N_PROMPTS)
               for s in range(N_PROMPTS)] for i in range(n)]
    lam_max = np.array([min(c.lambda_max if c.failed in (None, "lambda", "distractors") else 0.0 for c in cs)
                        for cs in checks])
    lam = np.where(rng.random(n) < 0.5, 0.0, rng.uniform(0, 1, n) * lam_max)
    ok = np.zeros((n, N_PROMPTS), bool)
    bound = np.full((n, N_PROMPTS), np.inf)
    failed = {}
    for i in range(n):
        for s in range(N_PROMPTS):
            c = B.prop4_conditions(pi[i, s], r_g[i, s], r_rm[i, s], gamma[i, s], good[i, s], lam[i], N_PROMPTS)
            ok[i, s] = c.ok
            bound[i, s] = c.bound if c.ok else np.inf
            if not c.ok:
                failed[c.failed] = failed.get(c.failed, 0) + 1
    t = _hit(logits, r_rm, lam, gamma, r_g)
    note = (f"conditions held on {ok.sum()}/{ok.size}; failed: "
            + ", ".join(f"{k} {v}" for k, v in sorted(failed.items())))
    return _upper_row("Prop 4 (fast, conditions hold)", t[ok], bound[ok], note)


def thm5_instances(rng, cfg):
    """Random (π_0, r_G, γ, T, D, α, α′) per prompt and the Theorem 5 constructions (``cfg["n"]`` instances):
    the data :func:`check_constructions` and :func:`check_thm5` share."""
    n = cfg["n"]
    logits = 1.5 * rng.standard_normal((n, N_PROMPTS, N_OUT))
    pi = _softmax(logits)
    r_g = rng.uniform(-1, 1, (n, N_PROMPTS, N_OUT))
    tied = rng.random((n, N_PROMPTS, 1)) < 0.5
    r_g = np.where(tied, np.round(r_g * 2) / 2, r_g)
    v0 = (pi * r_g).sum(-1)
    flat = (r_g.max(-1) - v0 < 0.05)[..., None] & (np.arange(N_OUT) == 0)
    r_g = np.where(flat, 1.0, r_g)  # make sure some output is clearly above V_G^0
    v0 = (pi * r_g).sum(-1)
    gamma = rng.uniform(0.1, 0.9, v0.shape) * (r_g.max(-1) - v0)
    slowness = 10.0 ** rng.uniform(0, 2, n)
    cons, accs = [], []
    for i in range(n):
        row = []
        for s in range(N_PROMPTS):
            pw = None if rng.random() < 0.5 else np.triu(rng.random((N_OUT, N_OUT)), 1)
            yg = constructions.default_y_gamma(pi[i, s], r_g[i, s], gamma[i, s])
            alpha = float(rng.choice(constructions.attainable_accuracies(r_g[i, s], pw)))
            alpha_f = (None if rng.random() < 0.25
                       else float(rng.choice(constructions.attainable_accuracies(r_g[i, s], pw, top=yg))))
            c = constructions.thm5_construction(pi[i, s], r_g[i, s], gamma[i, s], slowness[i], alpha, alpha_f, pw, yg,
                                                N_PROMPTS)
            row.append(c)
            accs.append((alpha, alpha_f, c, pw, pi[i, s], r_g[i, s], slowness[i]))
        cons.append(row)
    return logits, pi, r_g, gamma, slowness, cons, accs


def check_constructions(rng, cfg, data):
    """Theorem 5 constructions: accuracy exactly α (α′), Var_{π_0} ≤ T^{−2}, y^γ strictly first, Remark 2."""
    *_, accs = data
    viol, worst = 0, 0.0
    for alpha, alpha_f, c, pw, pi0, r_g, t in accs:
        pwj = None if pw is None else jnp.asarray(pw)
        a1 = float(accuracy(jnp.asarray(c.r_rm), jnp.asarray(r_g), pwj))
        a2 = float(accuracy(jnp.asarray(c.r_rm_fast), jnp.asarray(r_g), pwj))
        var_ratio = float(_var(pi0, c.r_rm)) * t**2
        top_ok = c.r_rm_fast[c.y_gamma] > np.delete(c.r_rm_fast, c.y_gamma).max()
        ok = abs(a1 - alpha) < 1e-12 and var_ratio <= 1 and top_ok and np.all(np.abs(c.r_rm) <= 1)
        if alpha_f is None:  # Remark 2 (only meaningful under the uniform D)
            ok &= pw is not None or a2 <= 2 / N_OUT + 1e-12
        else:
            ok &= abs(a2 - alpha_f) < 1e-12
        viol += int(not ok)
        worst = max(worst, var_ratio)
    return Row("Thm 5 constructions (acc, Var)", len(accs), viol, worst, "Var*T^2",
               "accuracy exactly alpha/alpha'; Var <= 1/T^2; Remark 2 acc <= 2/|Y|")


def check_thm5(rng, cfg, data):
    logits, pi, r_g, gamma, slowness, cons, _ = data
    n = len(cons)
    r_slow = np.array([[c.r_rm for c in row] for row in cons])
    r_fast = np.array([[c.r_rm_fast for c in row] for row in cons])
    slow_b = np.array([[c.slow_bound for c in row] for row in cons])
    fast_b = np.array([[c.fast_bound for c in row] for row in cons])
    lam_max = np.array([min(c.lambda_max for c in row) for row in cons])
    lam_slow = np.where(rng.random(n) < 0.5, 0.0, rng.uniform(0, 1, n))
    lam_fast = np.where(rng.random(n) < 0.5, 0.0, rng.uniform(0, 1, n) * lam_max)
    t_slow = _hit(logits, r_slow, lam_slow, gamma, r_g)
    t_fast = _hit(logits, r_fast, lam_fast, gamma, r_g)
    return [_lower_row("Thm 5 slow (acc=alpha, Var<=T^-2)", t_slow, slow_b),
            _upper_row("Thm 5 fast (y^gamma first)", t_fast, fast_b)]


def check_thm6(rng, cfg):
    n = cfg["n"]
    key = jax.random.PRNGKey(int(rng.integers(1 << 30)))
    pis, r_gs, covered, rare, gams, slows, cs = [], [], [], [], [], [], []
    for i in range(n):
        gamma = rng.uniform(0.05, 0.3)
        slow = 10.0 ** rng.uniform(0, 1.5)
        c = rng.uniform(0.05, 0.4)
        fam = "Pi" if i % 2 == 0 else "Pi_prime"
        row_pi, row_rg = [], []
        for s in range(N_PROMPTS):
            r_g = np.concatenate([rng.uniform(0.5, 1, 2), rng.uniform(-1, 0.3, N_OUT - 2)])
            key, sub = jax.random.split(key)
            row_pi.append(constructions.sample_thm6_policies(sub, r_g, 0, 1, gamma, slow, c, 1, family=fam)[0])
            row_rg.append(r_g)
        pis.append(row_pi)
        r_gs.append(row_rg)
        covered.append(0 if fam == "Pi" else 1)
        rare.append(1 if fam == "Pi" else 0)
        gams.append(gamma)
        slows.append(slow)
        cs.append(c)
    pi, r_g = np.array(pis), np.array(r_gs)
    covered, rare = np.array(covered), np.array(rare)
    fast_b, slow_b, lam_max = np.zeros((n, N_PROMPTS)), np.zeros((n, N_PROMPTS)), np.zeros(n)
    r_fast, r_slow = np.zeros_like(pi), np.zeros_like(pi)
    for i in range(n):
        lm = []
        for s in range(N_PROMPTS):
            b = constructions.thm6_bounds(pi[i, s], r_g[i, s], covered[i], gams[i], slows[i], cs[i], N_PROMPTS)
            fast_b[i, s], slow_b[i, s] = b.fast_bound, b.slow_bound
            lm.append(b.lambda_max)
            r_fast[i, s] = constructions.one_hot_reward(N_OUT, covered[i])
            r_slow[i, s] = constructions.one_hot_reward(N_OUT, rare[i])
        lam_max[i] = min(lm)
    gamma = np.repeat(np.array(gams)[:, None], N_PROMPTS, 1)
    logits = np.log(pi)
    lam_fast = np.where(rng.random(n) < 0.5, 0.0, rng.uniform(0, 1, n) * lam_max)
    lam_slow = np.where(rng.random(n) < 0.5, 0.0, rng.uniform(0, 1, n))
    t_fast = _hit(logits, r_fast, lam_fast, gamma, r_g)
    t_slow = _hit(logits, r_slow, lam_slow, gamma, r_g)
    return [_upper_row("Thm 6 fast (Pi and Pi')", t_fast, fast_b),
            _lower_row("Thm 6 slow (Pi and Pi')", t_slow, slow_b)]


def check_prop1(rng, cfg):
    """Proposition 1: Best-of-N with a perfectly accurate RM attains the closed-form optimum; no other
    selection reward exceeds it. Ratio (E + 1)/(opt + 1) (rewards in [−1, 1])."""
    n = cfg["n"]
    viol, worst, tried = 0, 0.0, 0
    for big_n in (1, 2, 3, 8, 32):
        pi = rng.dirichlet(np.ones(N_OUT), n)
        r_g = rng.integers(-2, 3, (n, N_OUT)) / 2.0
        opt = np.asarray(bon.best_of_n_optimal_value(pi, r_g, big_n))
        accurate = 0.3 * r_g**3 + 0.1
        for tb in ("uniform", "index"):
            e_acc = np.asarray(bon.best_of_n_value(pi, accurate, r_g, big_n, tb))
            viol += int(np.sum(np.abs(e_acc - opt) > 1e-12))
            for r_other in (rng.uniform(-1, 1, (n, N_OUT)), r_g + rng.normal(0, 0.3, (n, N_OUT)),
                            rng.integers(-1, 2, (n, N_OUT)).astype(float)):
                e = np.asarray(bon.best_of_n_value(pi, r_other, r_g, big_n, tb))
                viol += int(np.sum(e > opt + 1e-12))
                worst = max(worst, _max((e + 1) / (opt + 1)))
                tried += n
    return Row("Prop 1 (Best-of-N optimum)", tried, viol, worst, "(E+1)/(opt+1)")


def check_teaching_rate(rng, cfg):
    """The teaching rate (docs/teaching_rate.md) on random tabular instances with π_ref ≠ π_θ and λ ≥ 0: equal to
    autodiff's ⟨∇V̄_G, ∇φ⟩ and to the derivative at t = 0 of the flow's trajectory (Richardson, per prompt);
    |rate| ≤ Cauchy–Schwarz ≤ the Var bound, rate_self ≤ max π · Var[r^KL]/|S|."""
    n = cfg["n"]
    logits, reward, lam = _random_tabular(rng, n, scales=False)
    inst = make_instance(logits, reward, lam, ref_logits=logits + 0.5 * rng.standard_normal(logits.shape))
    meas = jnp.asarray(np.clip(0.5 * reward + 0.5 * rng.uniform(-1, 1, reward.shape), -1, 1))
    rate, own = TR.teaching_rate(inst, meas), TR.self_rate(inst)
    own_g = TR.self_rate(inst._replace(reward=meas, lam=jnp.zeros(n)))
    cs = np.asarray(TR.rate_cauchy_schwarz_bound(own_g.per_prompt, own.per_prompt)) + 1e-300
    auto = jax.vmap(lambda i, m: jnp.vdot(jax.grad(lambda t: jnp.mean(value(t, m)))(i.logits),
                                          jax.grad(lambda t: objective(i, t))(i.logits)))(inst, meas)
    h = 1e-3
    v = np.asarray(value(flow_trajectory(inst, jnp.array([0.0, h, 2 * h, 4 * h]), rtol=1e-13, atol=1e-14), meas))
    d = [(v[k] - v[0]) / (h * 2 ** (k - 1)) for k in (1, 2, 3)]
    flow = (4 * (2 * d[0] - d[1]) - (2 * d[1] - d[2])) / 3
    err = max(np.max(np.abs(np.asarray(rate.total - auto)) / cs.mean(-1)) / 1e-10,
              np.max(np.abs(flow - np.asarray(rate.per_prompt)) / cs) / 1e-6)
    pi = np.asarray(policy(inst.logits))
    var_kl, var_g = _var(pi, np.asarray(kl_reward(inst))), _var(pi, np.asarray(meas))
    ratios = np.concatenate([np.abs(np.asarray(rate.per_prompt)) / cs,
                             cs / np.asarray(TR.teaching_rate_variance_bound(pi.max(-1), var_g, var_kl, N_PROMPTS)),
                             np.asarray(own.per_prompt) / np.asarray(TR.self_rate_variance_bound(
                                 pi.max(-1), var_kl, N_PROMPTS))]).ravel()
    return [Row("Teaching rate (= autodiff, = flow d/dt)", n * N_PROMPTS, int(err > 1), err, "err/tol",
                "tol 1e-10 (autodiff), 1e-6 (Richardson), relative to the C-S bound"),
            Row("Teaching rate bounds (C-S, Var)", ratios.size, int(np.sum(ratios > 1 + 1e-12)), _max(ratios),
                "lhs/rhs")]


def check_pooled_rate(rng, cfg):
    """The pooled rate estimator (docs/rate_estimator.md, "The pooled estimator") on random MLP policies whose
    hidden and output layers are shared by |X| = 6 prompts, with rewards sharing a direction across prompts (so the
    cross-prompt pairs matter): the mean of R draws of K = 3 samples per prompt against the exact ⟨ū, v̄⟩
    (``neural_teaching_rate``'s total) and ‖v̄‖²; a violation is |mean − exact| > 4 Monte-Carlo SE."""
    n, reps, k, pol = cfg["n_neural"], 2000, 3, NN.MLP(6, 4, 1, embed=2, hidden=4)
    params = NN.init_batch(pol, jax.random.PRNGKey(int(rng.integers(1 << 31))), n)
    shape = (n, pol.n_prompts, pol.n_outputs)
    meas = np.clip(rng.uniform(-1, 1, shape[:1] + (1,) + shape[2:]) + 0.3 * rng.uniform(-1, 1, shape), -1, 1)
    reward = jnp.asarray(np.clip(meas + 0.5 * rng.uniform(-1, 1, shape), -1, 1))
    exact = np.stack([TR.neural_teaching_rate(pol, params, reward, jnp.asarray(meas)).total,
                      TR.neural_teaching_rate(pol, params, reward).total], -1)

    def one(args):
        p, r, m, key = args
        flat, unravel = ravel_pytree(p)
        logp, grads = pol.log_probs(p), jax.jacfwd(lambda f: pol.log_probs(unravel(f)))(flat)  # [X, Y], [X, Y, D]
        x = jnp.arange(pol.n_prompts)[:, None]

        def draw(kk):
            y = jax.random.categorical(kk, logp[:, None], shape=(pol.n_prompts, k))
            e = RE.pooled_rate_estimate(m[x, y], r[x, y], grads[x, y])
            return jnp.stack([e.total, e.rate_self])

        t = jax.vmap(draw)(jax.random.split(key, reps))
        return t.mean(0), t.std(0, ddof=1) / np.sqrt(reps)

    keys = jax.random.split(jax.random.PRNGKey(int(rng.integers(1 << 31))), n)
    mean, se = jax.jit(lambda *a: jax.lax.map(one, a))(params, reward, jnp.asarray(meas), keys)
    z = np.abs(np.asarray(mean) - exact) / np.asarray(se)
    return Row("Pooled rate estimator (mean = exact)", z.size, int(np.sum(z > 4)), _max(z / 4), "|z|/4",
               f"rate_G and rate_self; {reps} draws, K={k}, MLP |X|=6 shared layers")
