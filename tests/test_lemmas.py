"""Tabular lemmas: Lemma 9 (π-ODE = θ-flow) and Lemma 10 (growth bound), λ = 0 and λ > 0."""

import jax.numpy as jnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import rmtheory as rt
from rmtheory import _verify as V

CFG = V.SCALES["quick"]
seeds = st.integers(0, 2**32 - 1)


@given(seeds)
def test_lemma9_policy_ode_matches_theta_flow(seed):
    row = V.check_lemma9(np.random.default_rng(seed), CFG)
    assert row.violations == 0, row


def test_lemma9_with_three_prompts_and_lambda():
    rng = np.random.default_rng(0)
    inst = rt.make_instance(rng.normal(size=(3, 5)), rng.uniform(-1, 1, (3, 5)), 0.7,
                            ref_logits=rng.normal(size=(3, 5)))
    th = jnp.asarray(rng.normal(size=(3, 5)))
    pi = rt.policy(th)
    g = rt.gradient(inst, th)
    chain = pi * g - pi * jnp.sum(pi * g, -1, keepdims=True)  # (diag π − ππᵀ) θ̇ per prompt
    np.testing.assert_allclose(rt.policy_velocity(inst, th), chain, atol=1e-14)


@given(seeds)
def test_lemma10_growth_bound(seed):
    row = V.check_lemma10(np.random.default_rng(seed), CFG)
    assert row.violations == 0, row
