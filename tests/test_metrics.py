import itertools

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import rmtheory as rt

N = st.sampled_from([2, 5, 9])
# few distinct levels so that ties occur often
LEVELS = st.sampled_from([-1.0, -0.5, 0.0, 0.25, 1.0])


@st.composite
def reward_pairs(draw):
    n = draw(N)
    r_rm = draw(hnp.arrays(np.float64, n, elements=LEVELS))
    r_g = draw(hnp.arrays(np.float64, n, elements=LEVELS))
    return r_rm, r_g


@st.composite
def dists(draw, n):
    w = draw(hnp.arrays(np.float64, n, elements=st.floats(0.0, 1.0)))
    w = w + 1e-3
    return w / w.sum()


def brute_accuracy(r_rm, r_g, weight=None):
    """Definition 1 by enumerating unordered pairs {i, j}, i < j."""
    num = den = 0.0
    for i, j in itertools.combinations(range(len(r_rm)), 2):
        w = 1.0 if weight is None else weight[i, j]
        num += w * (np.sign(r_rm[i] - r_rm[j]) == np.sign(r_g[i] - r_g[j]))
        den += w
    return num / den


@given(reward_pairs())
def test_accuracy_matches_definition_and_is_in_unit_interval(pair):
    r_rm, r_g = pair
    acc = float(rt.accuracy(jnp.asarray(r_rm), jnp.asarray(r_g)))
    assert 0.0 <= acc <= 1.0
    assert acc == pytest.approx(brute_accuracy(r_rm, r_g), abs=1e-12)


@given(reward_pairs(), st.sampled_from(["exp", "cube", "affine", "arctan"]))
def test_accuracy_invariant_to_strictly_increasing_transforms(pair, kind):
    r_rm, r_g = pair
    f = {"exp": np.exp, "cube": lambda x: x**3 + x, "affine": lambda x: 3 * x - 7, "arctan": np.arctan}[kind]
    a = rt.accuracy(jnp.asarray(r_rm), jnp.asarray(r_g))
    b = rt.accuracy(jnp.asarray(f(r_rm)), jnp.asarray(r_g))
    assert float(a) == pytest.approx(float(b), abs=1e-12)


@given(reward_pairs())
def test_accuracy_one_iff_same_weak_order(pair):
    r_rm, r_g = pair
    same_order = all(
        np.sign(r_rm[i] - r_rm[j]) == np.sign(r_g[i] - r_g[j]) for i in range(len(r_rm)) for j in range(len(r_rm))
    )
    assert (float(rt.accuracy(jnp.asarray(r_rm), jnp.asarray(r_g))) == 1.0) == same_order


def test_ties_follow_definition_1():
    # tie under both: correct; tie under only one: error
    assert float(rt.accuracy(jnp.array([0.0, 0.0]), jnp.array([1.0, 1.0]))) == 1.0
    assert float(rt.accuracy(jnp.array([0.0, 0.0]), jnp.array([1.0, 0.0]))) == 0.0
    assert float(rt.accuracy(jnp.array([0.0, 1.0]), jnp.array([1.0, 1.0]))) == 0.0
    # orientation is irrelevant for unordered pairs
    assert float(rt.pair_list_accuracy(jnp.array([0.0, 1.0]), jnp.array([0.0, 2.0]), np.array([[1, 0]]))) == 1.0


@given(reward_pairs(), st.data())
def test_weighted_pairs_and_pair_lists_agree_with_definition(pair, data):
    r_rm, r_g = pair
    n = len(r_rm)
    w = data.draw(hnp.arrays(np.float64, (n, n), elements=st.floats(0.01, 1.0)))
    acc_w = float(rt.accuracy(jnp.asarray(r_rm), jnp.asarray(r_g), pair_weights=jnp.asarray(w)))
    assert acc_w == pytest.approx(brute_accuracy(r_rm, r_g, w), abs=1e-12)
    pairs = np.array(list(itertools.combinations(range(n), 2)))
    weights = np.array([w[i, j] for i, j in pairs])
    acc_l = float(rt.pair_list_accuracy(jnp.asarray(r_rm), jnp.asarray(r_g), pairs, weights))
    assert acc_l == pytest.approx(acc_w, abs=1e-12)


@given(reward_pairs(), st.data())
def test_on_policy_accuracy_is_pi_times_pi(pair, data):
    r_rm, r_g = pair
    pi = data.draw(dists(len(r_rm)))
    exp = sum(pi[i] * pi[j] * (np.sign(r_rm[i] - r_rm[j]) == np.sign(r_g[i] - r_g[j]))
              for i in range(len(pi)) for j in range(len(pi)))
    assert float(rt.on_policy_accuracy(pi, r_rm, r_g)) == pytest.approx(exp, abs=1e-12)


@given(st.sampled_from([2, 5, 9]).flatmap(lambda n: st.tuples(dists(n), hnp.arrays(
    np.float64, n, elements=st.floats(-1, 1)))), st.floats(-3, 3), st.floats(0.1, 5))
def test_variance_identities(pr, shift, scale):
    pi, r = pr
    var = float(rt.reward_variance(pi, r))
    v = pi @ r
    assert var == pytest.approx(pi @ (r - v) ** 2, abs=1e-12)
    pairwise = 0.5 * np.sum(pi[:, None] * pi[None, :] * (r[:, None] - r[None, :]) ** 2)
    assert var == pytest.approx(pairwise, abs=1e-12)
    assert 0.0 <= var <= 1.0 + 1e-12  # Popoviciu for r in [-1, 1]
    assert float(rt.reward_variance(pi, scale * r + shift)) == pytest.approx(scale**2 * var, rel=1e-9, abs=1e-12)


def test_sample_variance_is_unbiased_estimator():
    x = np.array([[1.0, 2.0, 4.0, 7.0]])
    np.testing.assert_allclose(rt.sample_variance(x), np.var(x, ddof=1, axis=-1))
    np.testing.assert_allclose(rt.sample_variance(x, ddof=0), np.var(x, axis=-1))


def test_metrics_reject_bad_input():
    with pytest.raises(ValueError, match="pi is not a distribution"):
        rt.reward_variance(np.array([0.5, 0.6]), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="shapes must agree"):
        rt.accuracy(jnp.zeros(3), jnp.zeros(4))
    with pytest.raises(ValueError, match="r_rm must be finite"):
        rt.accuracy(jnp.array([0.0, np.nan]), jnp.zeros(2))
