"""Theorem 4 and Proposition 2 on general autoregressive policies (per-prefix tabular, J = 1, and an MLP
f_θ with measured J)."""

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
import numpy as np
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
