"""Proposition 1 (Best-of-N): exact output distribution and the closed-form optimum."""

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rmtheory import _best_of_n as bon
from rmtheory import _verify as V


def _brute(pi, r, n, tie_break):
    d = np.zeros(len(pi))
    for tup in itertools.product(range(len(pi)), repeat=n):
        p = np.prod(pi[list(tup)])
        vals = r[list(tup)]
        win = [i for i in range(n) if vals[i] == vals.max()]
        if tie_break == "uniform":
            for i in win:
                d[tup[i]] += p / len(win)
        else:
            d[min(tup[i] for i in win)] += p
    return d


@given(st.integers(0, 2**32 - 1), st.integers(1, 4), st.sampled_from(["uniform", "index"]))
def test_distribution_matches_enumeration(seed, n, tie_break):
    rng = np.random.default_rng(seed)
    pi = rng.dirichlet(np.ones(4))
    r = rng.integers(0, 3, 4) / 2.0  # ties
    np.testing.assert_allclose(bon.best_of_n_distribution(pi, r, n, tie_break), _brute(pi, r, n, tie_break),
                               atol=1e-14)
    r_g = rng.integers(-2, 3, 4) / 2.0
    expected = sum(np.prod(pi[list(t)]) * r_g[list(t)].max() for t in itertools.product(range(4), repeat=n))
    assert float(bon.best_of_n_optimal_value(pi, r_g, n)) == pytest.approx(expected, abs=1e-14)


@given(st.integers(0, 2**32 - 1))
def test_prop1_accurate_rm_is_optimal(seed):
    row = V.check_prop1(np.random.default_rng(seed), {"n": 16})
    assert row.violations == 0, row


def test_bad_n():
    with pytest.raises(ValueError, match="n"):
        bon.best_of_n_distribution(np.array([0.5, 0.5]), np.array([0.0, 1.0]), 0)
