"""The pooled and held-out rate estimators (``rmtheory._rate_estimator``) on policies that share parameters.

Exact references by enumeration of Y: the score vectors G[x, y] = ∇_θ log π(y|x) (``jax.jacfwd`` of the policy's
log-probabilities), u_x = Σ_y π(y|x) a(x, y) G[x, y] and v_x the same with b; the target is
``parametric_teaching_rate(...).total`` (checked equal to ⟨ū, v̄⟩ = (1/P²) Σ_{x,x'} ⟨u_x, v_x'⟩). The estimators
are averaged over R independent draws (vmapped over PRNG keys, jitted) and compared with the target in units of
the Monte-Carlo SE of that mean (std over draws / √R).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import rmtheory as rt
from rmtheory._neural import _selection_matrices, seq_log_probs
from rmtheory._rate_estimator import held_out_rate_estimate, pooled_rate_estimate, rate_estimate

# ---- policies whose parameters are shared by the prompts ----------------------------------------------------

@dataclasses.dataclass(frozen=True)
class LogLinearAR:
    """An autoregressive policy over Y = V^L with every parameter shared by the prompts: next-token logits
    f(x, y_<l)_v = Σ_{f,h} W[v, f, h] φ_x[f] ψ(y_<l)[h], φ_x fixed prompt features, ψ the prefix features of
    ``rmtheory.MLP`` (tokens by position, one-hot length) and a constant."""

    feats: tuple
    vocab: int = 2
    length: int = 3

    @property
    def n_outputs(self):
        return self.vocab ** self.length

    def init(self, key):
        _, tok, pos = _selection_matrices(self.vocab, self.length)
        shape = (self.vocab, len(self.feats[0]), tok.shape[1] + pos.shape[1] + 1)
        return jax.random.normal(key, shape, jnp.float64)

    def log_probs(self, w):
        _, tok, pos = _selection_matrices(self.vocab, self.length)
        psi = jnp.concatenate([tok, pos, jnp.ones((tok.shape[0], 1))], -1)
        logits = jnp.einsum("xf,ph,vfh->xpv", jnp.asarray(self.feats), psi, w)
        return seq_log_probs(logits, self.vocab, self.length)


def _ar(n_prompts, seed):
    feats = np.random.default_rng(seed).normal(size=(n_prompts, 3))
    feats[:, 0] = 1.0
    return LogLinearAR(tuple(map(tuple, feats)))


class Case(NamedTuple):
    logp: jax.Array     # [X, Y]
    G: jax.Array        # [X, Y, D]
    a: jax.Array        # [X, Y] the measure
    b: jax.Array        # [X, Y] the trained reward
    u: np.ndarray       # [X, D] exact E_π[a g]
    v: np.ndarray       # [X, D]
    target: float       # parametric_teaching_rate(...).total
    target_self: float  # parametric_self_rate(...).total


def make_case(log_probs, params, a, b, train_mask=None):
    flat, unravel = ravel_pytree(params)

    def lp(f):
        return log_probs(unravel(f))

    logp, G = lp(flat), jax.jacfwd(lp)(flat)
    pi = np.exp(np.asarray(logp))
    u = np.einsum("xy,xy,xyd->xd", pi, a, G)
    v = np.einsum("xy,xy,xyd->xd", pi, b, G)
    target = float(rt.parametric_teaching_rate(log_probs, params, b, a, train_mask=train_mask).total)
    target_self = float(rt.parametric_self_rate(log_probs, params, b, train_mask=train_mask).total)
    return Case(logp, G, jnp.asarray(a), jnp.asarray(b), u, v, target, target_self)


def shared_rewards(rng, n_prompts, n_out):
    """A measure and a noisy trained reward that share a direction across prompts (so u_x are aligned)."""
    a = np.clip(rng.uniform(-1, 1, (1, n_out)) + 0.3 * rng.uniform(-1, 1, (n_prompts, n_out)), -1, 1)
    return a, np.clip(a + 0.5 * rng.uniform(-1, 1, (n_prompts, n_out)), -1, 1)


@functools.lru_cache(maxsize=None)
def _case(name):
    rng = np.random.default_rng(3)
    if name == "MLP":   # one token, an MLP over per-prompt embeddings: the hidden and output layers are shared
        pol = rt.MLP(8, 4, 1, embed=2, hidden=4)
    else:               # L = 3 tokens, every parameter shared
        pol = _ar(8, 5)
    params = pol.init(jax.random.PRNGKey(1))
    return make_case(pol.log_probs, params, *shared_rewards(rng, 8, pol.n_outputs))


# ---- Monte Carlo --------------------------------------------------------------------------------------------

@functools.partial(jax.jit, static_argnums=(0, 2, 3, 4))
def monte_carlo(stat, key, reps, k, n_draw, logp, G, a, b):
    """``stat(a, b, g)`` on ``reps`` independent draws of K samples y ~ π(·|x) per prompt; every prompt of the
    case when ``n_draw`` is 0, else ``n_draw`` prompts drawn uniformly with replacement per draw."""

    def one(kk):
        k1, k2 = jax.random.split(kk)
        x = jnp.arange(logp.shape[0]) if n_draw == 0 else jax.random.randint(k1, (n_draw,), 0, logp.shape[0])
        y = jax.random.categorical(k2, logp[x][:, None, :], shape=(x.shape[0], k))
        xi = x[:, None]
        return stat(a[xi, y], b[xi, y], G[xi, y])

    return jax.lax.map(one, jax.random.split(key, reps), batch_size=500)


def z_score(samples, target):
    s = np.asarray(samples, np.float64)
    se = s.std(ddof=1) / np.sqrt(s.size)
    return (s.mean() - target) / se, s.mean(), se


def plain_centred_total(a, b, g):
    """Planted bug: the cross pairs with û_x = (1/K) Σ_i (a_i − ā) g_i (centred at the mean of all K samples);
    E = (1 − 1/K)² u_x per factor, so the cross sum is shrunk by (1 − 1/K)²."""
    uh = jnp.einsum("pk,pkd->pd", a - a.mean(-1, keepdims=True), g) / a.shape[1]
    vh = jnp.einsum("pk,pkd->pd", b - b.mean(-1, keepdims=True), g) / b.shape[1]
    p = a.shape[0]
    cross = (jnp.vdot(uh.sum(0), vh.sum(0)) - jnp.sum(uh * vh)) / p**2
    return pooled_rate_estimate(a, b, g).within + cross


def _samples(a, b, g):
    return a, b, g


REPS = 4000


# ---- unbiasedness on shared-parameter policies ---------------------------------------------------------------

@pytest.mark.parametrize("name, k", [("MLP", 3), ("AR", 2)])
def test_pooled_estimator_is_unbiased_and_the_planted_bugs_are_caught(name, k):
    c = _case(name)
    P = c.u.shape[0]
    ub, vb = c.u.mean(0), c.v.mean(0)
    assert c.target == pytest.approx(float(ub @ vb), rel=1e-10, abs=1e-14)
    assert c.target_self == pytest.approx(float(vb @ vb), rel=1e-10, abs=1e-14)
    within = float(np.sum(c.u * c.v)) / P**2
    cross = c.target - within
    assert cross / c.target > 0.5, (within, cross)  # the cross-prompt pairs carry most of the rate: power

    def stat(a, b, g):
        e = pooled_rate_estimate(a, b, g)
        return e.total, e.within, e.cross, e.rate_self, plain_centred_total(a, b, g)

    total, w, x, own, plain = monte_carlo(stat, jax.random.PRNGKey(7), REPS, k, 0, c.logp, c.G, c.a, c.b)
    for est, want in ((total, c.target), (w, within), (x, cross), (own, c.target_self)):
        z, m, se = z_score(est, want)
        assert abs(z) <= 3.0, (m, want, se, z)
    # planted bug 1: the per-prompt estimator (no cross-prompt pairs), normalised as the pooled rate, = within
    z, m, se = z_score(w, c.target)
    assert abs(z) > 3.0, (m, c.target, se)
    # planted bug 2: plain sample-mean centring in the cross pairs
    z, m, se = z_score(plain, c.target)
    assert abs(z) > 3.0, (m, c.target, se)


def _all_draws(n_out, shape):
    """Every joint outcome of shape [..., K] over Y: [n_out^size, *shape]."""
    return jnp.asarray(list(itertools.product(range(n_out), repeat=int(np.prod(shape))))).reshape((-1,) + shape)


def test_exact_expectation_by_enumerating_every_draw():
    """P = 3 prompts, |Y| = 3, K = 3: all 3⁹ joint draws weighted by their probabilities. The expectation of the
    pooled estimate is parametric_teaching_rate's total (and parametric_self_rate's) to rounding; that of the
    plain-centred cross pairs is within + (1 − 1/K)² cross, not the target. Held out (A = prompt 0, K = 3;
    B = prompts 1, 2, K = 2; 3⁷ draws): the expectation is ⟨u_0, v̄(B)⟩."""
    P, n_out, k = 3, 3, 3
    pol = rt.MLP(P, n_out, 1, embed=2, hidden=3)
    params = pol.init(jax.random.PRNGKey(2))
    c = make_case(pol.log_probs, params, *shared_rewards(np.random.default_rng(2), P, n_out))
    pi = jnp.exp(c.logp)
    within = float(np.sum(c.u * c.v)) / P**2
    x = jnp.arange(P)[:, None]

    def pooled(y):
        e = pooled_rate_estimate(c.a[x, y], c.b[x, y], c.G[x, y])
        return jnp.prod(pi[x, y]), jnp.stack([e.total, e.rate_self, plain_centred_total(c.a[x, y], c.b[x, y],
                                                                                        c.G[x, y])])

    w, est = jax.jit(jax.vmap(pooled))(_all_draws(n_out, (P, k)))
    assert float(w.sum()) == pytest.approx(1.0, abs=1e-12)
    mean = np.asarray(w @ est)
    np.testing.assert_allclose(mean[:2], [c.target, c.target_self], rtol=1e-12)
    np.testing.assert_allclose(mean[2], within + (1 - 1 / k) ** 2 * (c.target - within), rtol=1e-12)
    assert abs(mean[2] - c.target) > 0.1 * abs(c.target)

    def held_out(y):
        ya, yb = y[:3][None], y[3:].reshape(2, 2)
        xb = jnp.arange(1, 3)[:, None]
        e = held_out_rate_estimate(c.a[0][ya], c.G[0][ya], c.b[xb, yb], c.G[xb, yb])
        return jnp.prod(pi[0][ya]) * jnp.prod(pi[xb, yb]), e.rate

    w, est = jax.jit(jax.vmap(held_out))(_all_draws(n_out, (7,)))
    np.testing.assert_allclose(float(w @ est), c.u[0] @ c.v[1:].mean(0), rtol=1e-12)


def test_within_part_is_the_per_prompt_estimator_and_the_sums_are_the_pairs():
    """within = rate_estimate's mean / P; cross = the explicit sum over ordered prompt pairs x ≠ x' of ⟨û_x, v̂_x'⟩
    with û_x = (1/K) Σ_i (a_i − ā_{−i}) g_i; the jackknife = the explicit delete-one-prompt recomputation."""
    rng = np.random.default_rng(0)
    P, K, D = 5, 4, 3
    a, b = rng.normal(size=(2, P, K))
    g = rng.normal(size=(P, K, D))
    est = pooled_rate_estimate(a, b, g)
    per = rate_estimate(a, b, g)
    assert float(est.within) == pytest.approx(per.mean_g / P, rel=1e-12)

    def uhat(s):
        loo = (s.sum(1, keepdims=True) - s) / (K - 1)
        return np.einsum("pk,pkd->pd", s - loo, g) / K

    def pooled(idx, t, uh, vh):
        m = len(idx)
        return (sum(t[i] for i in idx) + sum(uh[i] @ vh[j] for i in idx for j in idx if i != j)) / m**2

    uh, vh = uhat(a), uhat(b)
    t = np.asarray(per.rate_g)
    assert float(est.cross) == pytest.approx(pooled(range(P), t, uh, vh) - t.sum() / P**2, rel=1e-12)
    assert float(est.total) == pytest.approx(pooled(range(P), t, uh, vh), rel=1e-12)
    loo = np.array([pooled([j for j in range(P) if j != i], t, uh, vh) for i in range(P)])
    assert float(est.se) == pytest.approx(np.sqrt((P - 1) / P * np.sum((loo - loo.mean()) ** 2)), rel=1e-10)
    ts = np.asarray(per.rate_self)
    assert float(est.rate_self) == pytest.approx(pooled(range(P), ts, vh, vh), rel=1e-12)
    # a = None: only the self rate; P = 1: no cross pairs and no jackknife
    none = pooled_rate_estimate(None, b, g)
    assert np.isnan(none.total) and float(none.rate_self) == pytest.approx(float(est.rate_self), rel=1e-14)
    one = pooled_rate_estimate(a[:1], b[:1], g[:1])
    assert float(one.cross) == 0.0 and float(one.total) == pytest.approx(t[0], rel=1e-12) and np.isnan(one.se)


# ---- tabular: no shared parameters ---------------------------------------------------------------------------

def test_tabular_policy_has_no_cross_terms():
    """log_softmax(θ) with θ [P, |Y|]: the score vector of prompt x lives in block x of θ, so ⟨u_x, v_x'⟩ = 0 for
    x ≠ x' (exactly), every draw's cross part is 0, the pooled estimate equals the per-prompt estimator's mean
    (on the block's own |Y| coordinates) divided by P, and its mean matches teaching_rate(...).total."""
    rng = np.random.default_rng(4)
    P, n_out, k = 3, 5, 3
    logits = 1.2 * rng.normal(size=(P, n_out))
    a, b = shared_rewards(rng, P, n_out)
    c = make_case(rt.log_policy, jnp.asarray(logits), a, b)
    want = float(rt.teaching_rate(rt.make_instance(logits, b, 0.0), jnp.asarray(a)).total)
    assert c.target == pytest.approx(want, rel=1e-12)
    inner = c.u @ c.v.T
    np.testing.assert_allclose(inner - np.diag(np.diag(inner)), 0.0, atol=1e-15)

    def stat(a_, b_, g_):
        e = pooled_rate_estimate(a_, b_, g_)
        x = jnp.arange(P)[:, None, None] * n_out + jnp.arange(n_out)   # block x of θ, in flattened order
        local = jnp.take_along_axis(g_, jnp.broadcast_to(x, g_.shape[:2] + (n_out,)), -1)
        return e.total, e.cross, a_, b_, local

    total, cross, sa, sb, local = monte_carlo(stat, jax.random.PRNGKey(2), 3000, k, 0, c.logp, c.G, c.a, c.b)
    assert np.max(np.abs(np.asarray(cross))) <= 1e-13 * np.max(np.abs(np.asarray(total)))
    per = rate_estimate(np.reshape(sa, (-1, k)), np.reshape(sb, (-1, k)), np.reshape(local, (-1, k, n_out)))
    np.testing.assert_allclose(np.asarray(per.rate_g).reshape(-1, P).mean(1) / P, total, rtol=1e-10, atol=1e-14)
    z, m, se = z_score(total, c.target)
    assert abs(z) <= 3.0, (m, c.target, se)


# ---- held out ------------------------------------------------------------------------------------------------

def test_held_out_estimator_is_unbiased():
    """Measure on A = {0, 1, 2} (K_A = 2), train on B = {3, 4, 5} (K_B = 3): the exact rate is the per-prompt
    rate of parametric_teaching_rate with train_mask = B, averaged over A."""
    rng = np.random.default_rng(8)
    pol = rt.MLP(6, 4, 1, embed=2, hidden=4)
    mask = np.array([0.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    c = make_case(pol.log_probs, pol.init(jax.random.PRNGKey(3)), *shared_rewards(rng, 6, pol.n_outputs),
                  train_mask=mask)
    A, B = np.arange(3), np.arange(3, 6)
    params = pol.init(jax.random.PRNGKey(3))
    per = rt.parametric_teaching_rate(pol.log_probs, params, c.b, c.a, train_mask=mask).per_prompt
    exact = float(np.mean(np.asarray(per)[A]))
    assert exact == pytest.approx(float(c.u[A].mean(0) @ c.v[B].mean(0)), rel=1e-10)

    def draws(key, idx, k):
        return monte_carlo(_samples, key, REPS, k, 0, c.logp[idx], c.G[idx], c.a[idx], c.b[idx])

    aa, _, ga = draws(jax.random.PRNGKey(0), A, 2)
    _, bb, gb = draws(jax.random.PRNGKey(1), B, 3)
    est = jax.jit(jax.vmap(held_out_rate_estimate))(aa, ga, bb, gb)
    z, m, se = z_score(est.rate, exact)
    assert abs(z) <= 3.0, (m, exact, se)
    assert abs(exact) > 10 * se   # a non-trivial rate: the check has power


# ---- the standard error --------------------------------------------------------------------------------------

def test_jackknife_se_matches_the_spread():
    """Prompts drawn from a population (P = 32 of a pool of 32, with replacement, K = 3 samples each): the mean of
    the delete-one-prompt jackknife SE is within 15% of the std of the estimate over draws. On the fixed pool (no
    prompt sampling) it is conservative: it also counts the spread of u_x, v_x across prompts."""
    rng = np.random.default_rng(11)
    pol = rt.MLP(32, 4, 1, embed=2, hidden=4)
    c = make_case(pol.log_probs, pol.init(jax.random.PRNGKey(5)), *shared_rewards(rng, 32, pol.n_outputs))

    def stat(a, b, g):
        e = pooled_rate_estimate(a, b, g)
        return e.total, e.se, e.rate_self, e.se_self

    ratios = {}
    for n_draw in (32, 0):
        out = [np.asarray(o) for o in monte_carlo(stat, jax.random.PRNGKey(9), 2000, 3, n_draw, *c[:4])]
        ratios[n_draw] = [out[1].mean() / out[0].std(ddof=1), out[3].mean() / out[2].std(ddof=1)]
    assert all(abs(r - 1) <= 0.15 for r in ratios[32]), ratios
    assert all(r >= 0.95 for r in ratios[0]), ratios


# ---- validation ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, match", [
    ((np.zeros((2, 1)), np.zeros((2, 1)), np.zeros((2, 1, 3))), "K = 1"),
    ((np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 4, 3))), "g must have shape"),
    ((np.zeros((2, 4)), np.zeros((2, 3)), np.zeros((2, 3, 5))), r"shapes must agree: a\[2, 4\], b\[2, 3\]"),
    ((np.zeros(3), np.zeros(3), np.zeros((1, 3, 5))), "b must have shape"),
    ((np.zeros((1, 3)), np.array([[0.0, np.nan, 1.0]]), np.zeros((1, 3, 2))), "b must be finite"),
    ((np.array([[0.0, np.inf, 1.0]]), np.zeros((1, 3)), np.zeros((1, 3, 2))), "a must be finite"),
    ((np.zeros((1, 3)), np.zeros((1, 3)), np.full((1, 3, 2), np.nan)), "g must be finite"),
])
def test_pooled_validation(args, match):
    with pytest.raises(ValueError, match=match):
        pooled_rate_estimate(*args)


@pytest.mark.parametrize("args, match", [
    ((np.zeros((2, 1)), np.zeros((2, 1, 3)), np.zeros((2, 3)), np.zeros((2, 3, 3))), "a: K = 1"),
    ((np.zeros((2, 3)), np.zeros((2, 3, 3)), np.zeros((2, 3)), np.zeros((2, 2, 3))), "g_b must have shape"),
    ((np.zeros((2, 3)), np.zeros((2, 3, 3)), np.zeros((2, 3)), np.zeros((2, 3, 4))), "same dim D"),
    ((np.zeros((2, 3)), np.full((2, 3, 3), np.inf), np.zeros((2, 3)), np.zeros((2, 3, 3))), "g_a must be finite"),
    ((np.zeros((2, 3)), np.zeros((2, 3, 3)), np.zeros((2, 3, 1)), np.zeros((2, 3, 3))), "b must have shape"),
])
def test_held_out_validation(args, match):
    with pytest.raises(ValueError, match=match):
        held_out_rate_estimate(*args)

