"""Theorem 2/5 and 3/6 constructions: exact accuracy, variance bound, attainability, and the flows."""

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rmtheory as rt
from rmtheory import _constructions as C
from rmtheory import _verify as V

CFG = V.SCALES["quick"]
seeds = st.integers(0, 2**32 - 1)


@settings(max_examples=8)
@given(seeds)
def test_thm5_constructions_accuracy_and_variance(seed):
    data = V.thm5_instances(np.random.default_rng(seed), dict(n=8))
    row = V.check_constructions(None, CFG, data)
    assert row.violations == 0, row
    assert row.ratio <= 0.25  # Var < (1/T)²/4 by construction


@settings(max_examples=5)
@given(seeds)
def test_thm5_slow_and_fast_flows(seed):
    rng = np.random.default_rng(seed)
    data = V.thm5_instances(rng, CFG)
    slow, fast = V.check_thm5(rng, CFG, data)
    assert slow.violations == 0, slow
    assert fast.violations == 0, fast


@settings(max_examples=6)
@given(seeds)
def test_thm6_both_directions(seed):
    fast, slow = V.check_thm6(np.random.default_rng(seed), CFG)
    assert fast.violations == 0, fast
    assert slow.violations == 0, slow


def test_attainable_example_three_tied_outputs():
    # Definition 3's example: three outputs tied under r_G; exactly one wrong pair is impossible.
    vals = C.attainable_accuracies(np.zeros(3))
    np.testing.assert_allclose(vals, [0.0, 1 / 3, 1.0])  # 2/3 (one wrong pair) is missing
    with pytest.raises(ValueError, match="alpha"):
        C.slow_reward(np.zeros(3), 2.0, alpha=2 / 3)


def test_uniform_grid_and_lehmer_for_large_y():
    r_g = np.linspace(-1, 1, 9)
    for k in (0, 5, 17, 36):
        r = C.slow_reward(r_g, 3.0, alpha=1 - k / 36)
        assert float(rt.accuracy(r, r_g)) == pytest.approx(1 - k / 36, abs=1e-12)
    with pytest.raises(ValueError, match="alpha"):
        C.slow_reward(r_g, 3.0, alpha=0.5 + 1 / 100)
    pi0 = np.full(9, 1 / 9)
    r = C.fast_reward(pi0, r_g, 8, alpha_fast=30 / 36)
    assert float(rt.accuracy(r, r_g)) == pytest.approx(30 / 36, abs=1e-12)
    with pytest.raises(ValueError, match="alpha_fast"):
        C.fast_reward(pi0, r_g, 0, alpha_fast=1.0)  # the worst output cannot be first with accuracy 1


def test_remark2_accuracy_at_most_2_over_y():
    rng = np.random.default_rng(1)
    for n in (3, 6, 10):
        r_g = rng.uniform(-1, 1, n)
        pi0 = rng.dirichlet(np.ones(n))
        r = C.fast_reward(pi0, r_g, int(np.argmax(r_g)))
        assert float(rt.accuracy(r, r_g)) <= 2 / n + 1e-12
        assert np.all(np.delete(r, np.argmax(r_g)) < pi0[np.argmax(r_g)])


def test_accuracy_one_slow_reward_matches_rg_weak_order():
    r_g = np.array([0.5, -0.5, 0.5, 1.0, -1.0])
    r = C.slow_reward(r_g, 7.0, alpha=1.0)
    assert float(rt.accuracy(r, r_g)) == 1.0
    assert r[0] == r[2] and np.all((0 < r) & (r < 1 / 7))


def test_bad_inputs():
    pi0 = np.array([0.25, 0.25, 0.25, 0.25])
    r_g = np.array([-1.0, 0.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="gamma"):
        C.thm5_construction(pi0, r_g, 2.0, 3.0)
    with pytest.raises(ValueError, match="slowness"):
        C.thm5_construction(pi0, r_g, 0.1, 0.5)
    with pytest.raises(ValueError, match="alpha"):
        C.thm5_construction(pi0, r_g, 0.1, 3.0, alpha=0.55)
    key = jax.random.PRNGKey(0)
    with pytest.raises(ValueError, match="c must"):
        C.sample_thm6_policies(key, np.array([0.9, 0.8, -1, 0]), 0, 1, 0.1, 3.0, 1.0)
    with pytest.raises(ValueError, match="slowness"):
        C.sample_thm6_policies(key, np.array([0.9, 0.8, -1, 0]), 0, 1, 0.1, 0.9, 0.2)


def test_thm6_sampler_family_membership():
    r_g = np.array([0.9, 0.8, -1.0, -0.5, 0.0])
    key = jax.random.PRNGKey(3)
    for fam, cover, rare in (("Pi", 0, 1), ("Pi_prime", 1, 0)):
        pis = C.sample_thm6_policies(key, r_g, 0, 1, 0.1, 4.0, 0.2, 16, family=fam, v0=-0.3)
        np.testing.assert_allclose(pis.sum(1), 1)
        np.testing.assert_allclose(pis @ r_g, -0.3, atol=1e-12)
        assert np.all(pis[:, cover] >= 0.2 - 1e-12) and np.all(pis[:, rare] <= 1 / 16 + 1e-12)
        assert np.all(pis > 0)
    np.testing.assert_array_equal(C.one_hot_reward(4, 2), [-1, -1, 1, -1])
