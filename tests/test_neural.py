"""Theorem 4 and Proposition 2 on general autoregressive policies (per-prefix tabular, J = 1, and an MLP
f_θ with measured J)."""

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rmtheory as rt
from rmtheory import _neural as NN
from rmtheory import _verify as V

CFG = V.SCALES["quick"]
seeds = st.integers(0, 2**32 - 1)


def test_log_probs_and_jacobians():
    for pol in (NN.TabularAR(3, 2, 3), NN.MLP(3, 2, 3)):
        p = pol.init(jax.random.PRNGKey(0))
        np.testing.assert_allclose(pol.log_probs(p), rt.sequence_log_probs(pol.prefix_logits(p)), atol=1e-13)
        np.testing.assert_allclose(jnp.exp(pol.log_probs(p)).sum(-1), 1.0, atol=1e-13)
    ar = NN.TabularAR(3, 2, 3)
    np.testing.assert_allclose(NN.jacobian_norms(ar, ar.init(jax.random.PRNGKey(1))), 1.0, atol=1e-12)
    mlp = NN.MLP(3, 2, 3)
    p = mlp.init(jax.random.PRNGKey(2))
    # spectral norm vs numpy on one (x, prefix)
    flat, unravel = ravel_pytree(p)
    jac = np.asarray(jax.jacfwd(lambda f: mlp.prefix_logits(unravel(f))[1, 3])(flat))
    norms = np.asarray(NN.jacobian_norms(mlp, p))
    assert np.isclose(norms[1, 3], np.linalg.norm(jac, 2), rtol=1e-10)
    assert float(NN.jacobian_norm(mlp, p)) == norms.max() > 1.0  # non-trivial f_θ


def test_time_to_gamma_matches_lead_parametric():
    pol = NN.TabularAR(3, 2, 3)
    params = NN.init_batch(pol, jax.random.PRNGKey(0), CFG["n_neural"])
    r = 0.05 * jax.random.uniform(jax.random.PRNGKey(1), (CFG["n_neural"], 3, 8), minval=-1, maxval=1)
    res = NN.time_to_gamma(pol, params, r, 0.002, prompt=1, t_max=1e6)
    p0 = jax.tree_util.tree_map(lambda a: a[0], params)
    ref = rt.parametric_time_to_gamma(pol.log_probs, p0, r[0], 0.002, prompt=1, t_max=1e6)
    np.testing.assert_allclose(res.t[0], ref.t, rtol=1e-6)


def test_time_to_gamma_of_a_prompt_average():
    """``prompt_weights``: a one-hot weight is the single-prompt t_γ; the lane scheduler gives the lockstep
    results; and the t_γ of a two-prompt average is the first time the average, along an independent integration
    (``parametric_flow``), reaches V̄_w(0) + γ: equal to it at t_γ, below it on a grid before t_γ."""
    pol = NN.MLP(3, 2, 3)
    params = NN.init_batch(pol, jax.random.PRNGKey(3), 3)
    rng = np.random.default_rng(4)
    r_g = rng.uniform(-1, 1, (3, 3, 8))
    r_rm = 0.5 * np.clip(r_g + 0.5 * rng.normal(size=r_g.shape), -1, 1)
    mask, gamma = np.array([1.0, 1.0, 0.0]), 0.02
    kw = dict(measure=r_g, train_mask=mask, t_max=1e6)
    one = NN.time_to_gamma(pol, params, r_rm, gamma, prompt=1, **kw)
    hot = NN.time_to_gamma(pol, params, r_rm, gamma, prompt_weights=np.eye(3)[1], **kw)
    np.testing.assert_allclose(hot.t, one.t, rtol=1e-9)
    np.testing.assert_array_equal(hot.status, one.status)
    w = np.array([2.0, 1.0, 0.0])
    avg = NN.time_to_gamma(pol, params, r_rm, gamma, prompt_weights=w, **kw)
    lanes = NN.time_to_gamma(pol, params, r_rm, gamma, prompt_weights=w, lanes=2, **kw)
    np.testing.assert_allclose(lanes.t, avg.t, rtol=1e-9)
    assert np.all(np.asarray(avg.status) == rt.Status.REACHED)
    p0 = jax.tree_util.tree_map(lambda a: a[0], params)

    def average(p):
        return float(w @ np.sum(np.exp(np.asarray(pol.log_probs(p))) * r_g[0], -1) / w.sum())

    t_hit = float(avg.t[0])
    grid = list(np.linspace(0.0, t_hit, 21)[1:-1]) + [t_hit]
    path = rt.parametric_flow(pol.log_probs, p0, r_rm[0], grid, train_mask=mask, rtol=1e-11, atol=1e-11)
    target = average(p0) + gamma
    assert all(average(p) < target for p in path[:-1])
    assert abs(average(path[-1]) - target) < 1e-7
    with pytest.raises(ValueError, match="exactly one"):
        NN.time_to_gamma(pol, params, r_rm, gamma, prompt=0, prompt_weights=w)
    with pytest.raises(ValueError, match="positive sum"):
        NN.time_to_gamma(pol, params, r_rm, gamma, prompt_weights=np.zeros(3))


@settings(max_examples=4)
@given(seeds)
def test_prop2_gradient_norm(seed):
    row = V.check_prop2(np.random.default_rng(seed), CFG)
    assert row.violations == 0, row


@settings(max_examples=3)
@given(seeds)
def test_thm4_ar_tabular(seed):
    row = V.check_thm4_ar(np.random.default_rng(seed), CFG)
    assert row.violations == 0, row


@settings(max_examples=3)
@given(seeds)
def test_thm4_mlp(seed):
    row = V.check_thm4_mlp(np.random.default_rng(seed), CFG)
    assert row.violations == 0, row
