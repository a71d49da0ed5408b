"""The optimiser-geometry rates (``rmtheory._optimizer_rate``): the streaming accumulator against the pooled and
per-prompt estimators, Adam's stationary direction against ``optax.adam``'s moments, the split-sample estimates
(unbiased where a same-sample plug-in is not), and the measurement of ``experiments/adam_geometry.py`` on one
tiny instance (``docs/teaching_rate.md`` §7)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import rmtheory as rt
from rmtheory._rate_estimator import loo_centred_mean
from rmtheory._optimizer_rate import (
    RateAccumulator,
    adam_direction,
    adam_geometry_rate,
    loo_weights,
    sign_direction,
    sign_rate,
)

ROOT = Path(__file__).resolve().parents[1]


# ---- a log-linear policy whose parameters every prompt shares: π(y|x) ∝ exp(θ·F[x, y]) -----------------------
def _log_linear(seed, n_prompts, n_outputs, dim, rho=0.8):
    """(π [P, Y], score vectors J = F − E_π F [P, Y, D], a = r_G [P, Y], b = r_RM [P, Y]) with a ≈ ρ b + noise."""
    rng = np.random.default_rng(seed)
    f = rng.normal(size=(n_prompts, n_outputs, dim))
    logits = f @ rng.normal(size=dim) * 0.7
    pi = np.exp(logits - logits.max(-1, keepdims=True))
    pi /= pi.sum(-1, keepdims=True)
    jac = f - np.einsum("py,pyd->pd", pi, f)[:, None]
    b = rng.uniform(-1, 1, (n_prompts, n_outputs))
    a = rho * b + (1 - rho) * rng.uniform(-1, 1, b.shape)
    return pi, jac, a, b


def _draw(rng, pi, k):
    """k outputs per prompt from π, by inverting the CDF: [P, k]."""
    cdf = np.cumsum(pi, -1)
    u = rng.uniform(size=(pi.shape[0], k))
    return np.minimum((u[..., None] > cdf[:, None, :]).sum(-1), pi.shape[1] - 1)


def _sample(rng, model, k):
    pi, jac, a, b = model
    ys = _draw(rng, pi, k)
    rows = np.arange(pi.shape[0])[:, None]
    return np.stack([a[rows, ys], b[rows, ys]], -1), jac[rows, ys]          # scores [P, k, 2], g [P, k, D]


# ---- the accumulator against the library's estimators ----------------------------------------------------------
def _fed(scores, g, chunks, **kw):
    acc = RateAccumulator(g.shape[-1], scores.shape[-1], scores.shape[1], **kw)
    start = 0
    for c in chunks:
        acc.add(scores[start:start + c], g[start:start + c])
        start += c
    assert start == scores.shape[0]
    return acc


def test_accumulator_equals_pooled_and_per_prompt_estimators():
    rng = np.random.default_rng(0)
    p, k, s, d = 12, 4, 3, 7
    scores = rng.normal(size=(p, k, s))
    g = rng.normal(size=(p, k, d))
    acc = _fed(scores, g, (5, 1, 6), measure=0, n_groups=p)      # one prompt per group: the per-prompt jackknife
    rates = acc.rates(batch=8)
    for j in range(s):
        pooled = rt.pooled_rate_estimate(scores[..., 0], scores[..., j], g)
        within = rt.rate_estimate(scores[..., 0], scores[..., j], g)
        r = rates[j]
        np.testing.assert_allclose([r.pooled_g, r.pooled_g_se, r.pooled_self, r.pooled_self_se],
                                   [pooled.total, pooled.se, pooled.rate_self, pooled.se_self], rtol=2e-4, atol=1e-6)
        np.testing.assert_allclose([r.within_g, r.within_g_se, r.within_self, r.within_self_se],
                                   [within.mean_g, within.se_mean_g, within.mean_self, within.se_mean_self],
                                   rtol=2e-4, atol=1e-6)
    uh = np.asarray(loo_centred_mean(jnp.asarray(scores[..., 1]), jnp.asarray(g)))
    np.testing.assert_allclose(acc.mean_gradient(1), uh.mean(0), rtol=2e-4, atol=1e-6)


def test_group_jackknife_is_close_to_the_per_prompt_jackknife():
    """10 groups of 6 prompts against one prompt per group (= ``pooled_rate_estimate``'s SE, test above)."""
    rng = np.random.default_rng(1)
    p, k, d = 60, 4, 7
    scores = rng.normal(size=(p, k, 3)) + np.array([0.0, 0.5, -0.3])
    g = rng.normal(size=(p, k, d)) + 0.3 * rng.normal(size=d)
    grouped = _fed(scores, g, (5, 1, 6) * 5, measure=0, n_groups=10).rates(batch=4)
    per_prompt = _fed(scores, g, (5, 1, 6) * 5, measure=0, n_groups=p).rates(batch=4)
    for j in (1, 2):
        assert grouped[j].pooled_g == pytest.approx(per_prompt[j].pooled_g, rel=1e-10)
        assert 0.5 < grouped[j].pooled_g_se / per_prompt[j].pooled_g_se < 2.0
        assert 0.5 < grouped[j].pooled_self_se / per_prompt[j].pooled_self_se < 2.0


def test_group_jackknife_se_is_calibrated_over_draws():
    """Mean SE over 300 draws ≈ the std of the estimate, for 16 prompts drawn with replacement from a pool of 16 per
    draw (the jackknife's population reading, ``docs/rate_estimator.md``; for fixed prompts it is conservative)."""
    pool = _log_linear(2, n_prompts=16, n_outputs=5, dim=6)
    rng = np.random.default_rng(3)
    est, se = [], []
    for _ in range(300):
        pick = rng.integers(0, 16, 16)
        scores, g = _sample(rng, tuple(x[pick] for x in pool), 4)
        acc = RateAccumulator(g.shape[-1], 2, 4, measure=0, n_groups=8)
        acc.add(scores, g)
        r = acc.rates(batch=16)[1]
        est.append(r.pooled_g)
        se.append(r.pooled_g_se)
    ratio = np.mean(se) / np.std(est, ddof=1)
    assert 0.8 < ratio < 1.3, ratio


# ---- Adam's direction ------------------------------------------------------------------------------------------
def _adam_chains(mean, sigma, m, t, n_chains, key):
    """optax.adam fed t i.i.d. minibatch means of m skewed terms (mean + σ (Exp(1) − 1)) per coordinate, over
    n_chains chains: the bias-corrected moments m̂_t, v̂_t and the step of step t [n_chains, D]."""
    mean = jnp.asarray(mean)
    opt = optax.adam(1.0)

    def chain(kk):
        def step(s, k2):
            terms = mean + sigma * (jax.random.exponential(k2, (m,) + mean.shape) - 1.0)
            upd, s = opt.update(-terms.mean(0), s, jnp.zeros_like(mean))
            return s, upd
        s, upd = jax.lax.scan(step, opt.init(jnp.zeros_like(mean)), jax.random.split(kk, t))
        mu, nu = s[0].mu, s[0].nu
        return -mu / (1 - 0.9**t), nu / (1 - 0.999**t), upd[-1]

    return jax.jit(jax.vmap(chain))(jax.random.split(key, n_chains))


def test_adam_direction_is_the_ratio_of_optax_moments():
    mean = np.array([0.5, -0.2, 0.05, 0.0, 1.0, -0.02])
    sigma, m, t = 0.6, 5, 6
    mh, vh, _ = (np.asarray(a) for a in _adam_chains(mean, sigma, m, t, 20000, jax.random.PRNGKey(0)))
    n = mh.shape[0]
    z_m = (mh.mean(0) - mean) / (mh.std(0) / math.sqrt(n))
    target_v = mean**2 + sigma**2 / m
    z_v = (vh.mean(0) - target_v) / (vh.std(0) / math.sqrt(n))
    assert np.all(np.abs(z_m) < 4.5) and np.all(np.abs(z_v) < 4.5), (z_m, z_v)
    ratio = mh.mean(0) / (np.sqrt(vh.mean(0)) + 1e-8)
    np.testing.assert_allclose(ratio, adam_direction(mean, sigma**2, m), atol=0.01)


def test_first_adam_step_is_the_expected_sign_not_the_ratio():
    """Step 1 is G/(|G| + ε): E = P(G > 0) − P(G < 0), which for a noise-dominated coordinate is ≈ 0.8 of d."""
    mean = np.array([0.15, 0.3, 2.0])
    sigma, m = 0.6, 4                                     # σ_G = 0.3: ḡ/σ_G = 0.5, 1, 6.7
    *_, step = _adam_chains(mean, sigma, m, 1, 40000, jax.random.PRNGKey(1))
    step = np.asarray(step)
    rng = np.random.default_rng(0)
    terms = mean + sigma * (rng.exponential(size=(200000, m, 3)) - 1.0)
    expected_sign = np.mean(np.sign(terms.mean(1)), 0)
    se = step.std(0) / math.sqrt(step.shape[0])
    assert np.all(np.abs(step.mean(0) - expected_sign) < 4.5 * se + 0.005)
    d = adam_direction(mean, sigma**2, m)
    assert step.mean(0)[0] < 0.9 * d[0] - 5 * se[0]        # the ratio of expectations over-predicts step 1
    assert abs(step.mean(0)[2] - 1.0) < 1e-3 and abs(d[2] - 1.0) < 0.02


def test_adam_direction_limits():
    g = np.array([0.3, -2.0, 0.0, 1e-3])
    np.testing.assert_array_equal(adam_direction(g, np.zeros(4), 3, 0.0), np.sign(g))
    np.testing.assert_array_equal(sign_direction(g), np.sign(g))
    np.testing.assert_allclose(adam_direction(g, 1e-12, 1, 0.0), np.sign(g), atol=1e-3)
    big = adam_direction(g, 1e6, 4, 0.0)                     # noise-dominated: ḡ √m / σ
    np.testing.assert_allclose(big, g * 2 / 1e3, rtol=1e-4)
    np.testing.assert_allclose(adam_direction(g, 0.0, 1, 1e6), g / 1e6, rtol=1e-5)  # ε-dominated: ḡ/ε
    u = np.array([1.0, 1.0, 5.0, -1.0])
    assert adam_geometry_rate(u, g, 0.0, 1, 0.0) == pytest.approx(sign_rate(u, g)) == pytest.approx(-1.0)


def test_bad_inputs_give_clear_errors():
    with pytest.raises(ValueError, match="batch"):
        adam_direction([1.0], [1.0], 0)
    with pytest.raises(ValueError, match="eps"):
        adam_direction([1.0], [1.0], 1, eps=-1.0)
    with pytest.raises(ValueError, match="var must have the shape"):
        adam_direction(np.ones(3), np.ones(2), 1)
    with pytest.raises(ValueError, match="u must have the shape"):
        adam_geometry_rate(np.ones(2), np.ones(3), np.ones(3), 1)
    with pytest.raises(ValueError, match="u must have the shape"):
        sign_rate(np.ones(4), np.ones(3))
    with pytest.raises(ValueError, match="k must be"):
        RateAccumulator(3, 2, 1)
    with pytest.raises(ValueError, match="n_groups"):
        RateAccumulator(3, 2, 4, n_groups=5)
    with pytest.raises(ValueError, match="measure"):
        RateAccumulator(3, 2, 4, measure=2)
    acc = RateAccumulator(3, 2, 4, measure=0)
    with pytest.raises(ValueError, match="scores must have shape"):
        acc.add(np.ones((5, 4)), np.ones((5, 4, 3)))
    with pytest.raises(ValueError, match="scores must have shape"):
        acc.add(np.ones((5, 3, 2)), np.ones((5, 3, 3)))
    with pytest.raises(ValueError, match="g must have shape"):
        acc.add(np.ones((5, 4, 2)), np.ones((5, 4, 2)))
    acc.add(np.random.default_rng(0).normal(size=(1, 4, 2)), np.ones((1, 4, 3)))
    with pytest.raises(ValueError, match="at least 2 prompts"):
        acc.rates(4)


# ---- split-sample estimates ------------------------------------------------------------------------------------
def _halves_direction(scores, g, batch, eps=1e-8):
    """Per half (prompt parity): û of a and b, and the Adam and sign directions of b, from that half's samples."""
    alpha = loo_weights(scores)                                                # [P, K, 2]
    terms = np.einsum("pks,pkd->pksd", alpha, g)
    out = []
    for h in (0, 1):
        t = terms[h::2].reshape(-1, 2, g.shape[-1])
        mean, var = t.mean(0), (t**2).mean(0) - t.mean(0) ** 2
        out.append((mean[0], mean[1], adam_direction(mean[1], var[1], batch, eps), sign_direction(mean[1])))
    return out


def _paired_z(x):
    x = np.asarray(x)
    return x.mean() / (x.std(ddof=1) / math.sqrt(x.size))


def test_split_sample_rates_are_unbiased_where_the_same_sample_plug_in_is_not():
    """E⟨ū⁰, d¹⟩ = ⟨ū⁰, E d¹⟩: per draw, the accumulator's estimate minus the exact ū^h paired with the draw's own
    d^(1−h) has mean 0. Planted bug (the same half for ū and d) against its own target ⟨ū^h, d^h⟩: biased."""
    model = _log_linear(4, n_prompts=8, n_outputs=4, dim=12, rho=0.9)
    pi, jac, a, b = model
    u_exact = np.einsum("py,py,pyd->pd", pi, a, jac)                          # u_x = E_π[a g]
    u_half = [u_exact[h::2].mean(0) for h in (0, 1)]
    rng = np.random.default_rng(5)
    batch = 16
    diff = {"sign": [], "adam": [], "planted_sign": [], "planted_adam": []}
    for _ in range(400):
        scores, g = _sample(rng, model, 4)
        acc = RateAccumulator(g.shape[-1], 2, 4, measure=0, n_groups=4)
        acc.add(scores[:3], g[:3])
        acc.add(scores[3:], g[3:])
        r = acc.rates(batch)[1]
        (ua0, _, d0, s0), (ua1, _, d1, s1) = _halves_direction(scores, g, batch)
        diff["sign"].append(r.sign_g - 0.5 * (u_half[0] @ s1 + u_half[1] @ s0))
        diff["adam"].append(r.adam_g - 0.5 * (u_half[0] @ d1 + u_half[1] @ d0))
        diff["planted_sign"].append(0.5 * ((ua0 - u_half[0]) @ s0 + (ua1 - u_half[1]) @ s1))
        diff["planted_adam"].append(0.5 * ((ua0 - u_half[0]) @ d0 + (ua1 - u_half[1]) @ d1))
        np.testing.assert_allclose(r.sign_g, 0.5 * (ua0 @ s1 + ua1 @ s0), rtol=1e-4, atol=1e-7)
    z = {k: _paired_z(v) for k, v in diff.items()}
    assert abs(z["sign"]) < 4 and abs(z["adam"]) < 4, z
    assert z["planted_sign"] > 6 and z["planted_adam"] > 6, z


# ---- the measurement on one tiny instance ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def adam_geometry():
    spec = importlib.util.spec_from_file_location("adam_geometry", ROOT / "experiments" / "adam_geometry.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_exact_moments_match_enumeration_and_the_teaching_rate(adam_geometry):
    ag = adam_geometry
    logp, flat, r_rm, r_g = ag.tabular_model(jax.random.PRNGKey(3), n_prompts=2, n_outputs=3)
    mom = ag.exact_moments(logp, flat, r_rm, r_g, 3)
    _, mean, var = ag.tabular_step1(mom["pi"], np.asarray(r_rm), 3)
    np.testing.assert_allclose(mean, mom["gbar"], atol=1e-15)
    np.testing.assert_allclose(var, mom["var_g"], rtol=1e-10)
    inst = rt.make_instance(flat.reshape(2, 3), r_rm)
    assert mom["u"] @ mom["gbar"] == pytest.approx(float(rt.teaching_rate(inst, r_g).total), rel=1e-12)
    key = jax.random.PRNGKey(7)                 # the autodiff minibatch gradient is rt.sampled_gradient's RLOO
    g, _ = ag._minibatch_gradient(logp, flat, r_rm, key, 3)
    np.testing.assert_allclose(g, rt.sampled_gradient(inst, inst.logits, key, 3).ravel(), atol=1e-15)


def test_tiny_instance_step1_exact_and_ratio_of_expectations_within_the_derived_tolerance(adam_geometry):
    """lr = 1e-3: the true first step matches the exact E[G/(|G| + ε)] and the frozen-θ stationary prediction holds
    at n = 10; d over-predicts step 1 (Jensen) and at n = 10 is within the derivation's few-step bias."""
    ag = adam_geometry
    model = ag.tabular_model(jax.random.PRNGKey(3), n_prompts=2, n_outputs=3)
    res = ag.measure_instance(model, jax.random.PRNGKey(4), 2000, lrs=(1e-3,), ns=(1, 10), k=3)
    c1, c10 = res["cells"]
    assert abs(c1["rel"]["step1"]) < 4 * c1["rel_se"] + 0.01, c1
    assert abs(c10["rel"]["stationary"]) < 4 * c10["stationary_rel_se"] + 0.01, c10
    assert abs(c10["rel"]["sgd"]) < 4 * c10["rel_se_sgd"] + 0.01, c10
    assert c1["rel"]["adam"] > 4 * c1["rel_se"], c1
    assert -0.05 < c10["rel"]["adam"] < 0.15, c10
