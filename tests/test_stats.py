"""Rank statistics (rmtheory._stats): Kendall's τ_b against scipy, and bootstrap Spearman by multiplicities
against the Spearman of the expanded resample."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rmtheory import _stats


def _data(seed, n, ties):
    rng = np.random.default_rng(seed)
    if ties:
        x = rng.integers(0, 4, n).astype(float)
        return x, x + rng.integers(0, 3, n)
    x = rng.normal(size=n)
    return x, x + rng.normal(size=n)


@given(st.integers(0, 10_000), st.integers(2, 300), st.booleans())
def test_kendall_tau_b_matches_scipy(seed, n, ties):
    scipy_stats = pytest.importorskip("scipy.stats")
    x, y = _data(seed, n, ties)
    want = scipy_stats.kendalltau(x, y).statistic
    got = _stats.kendall(x, y)
    assert (np.isnan(got) and np.isnan(want)) or abs(got - want) < 1e-12


def test_kendall_extremes():
    x = np.arange(10.0)
    assert _stats.kendall(x, x) == 1.0 and _stats.kendall(x, -x) == -1.0
    assert np.isnan(_stats.kendall(x, np.ones(10)))
    with pytest.raises(ValueError, match="equal length"):
        _stats.kendall(x, x[:3])


@given(st.integers(0, 10_000), st.integers(3, 200), st.booleans())
def test_resampled_spearman_equals_spearman_of_the_expanded_resample(seed, n, ties):
    x, y = _data(seed, n, ties)
    w = np.random.default_rng(seed + 1).multinomial(n, np.full(n, 1.0 / n), size=4)
    got = _stats.resampled_spearman(x, y, w)
    for b in range(4):
        want = _stats.spearman(np.repeat(x, w[b]), np.repeat(y, w[b]))
        assert (np.isnan(got[b]) and np.isnan(want)) or abs(got[b] - want) < 1e-12
    assert abs(_stats.resampled_spearman(x, y, np.ones((1, n)))[0] - _stats.spearman(x, y)) < 1e-12
    np.testing.assert_allclose(_stats.resampled_ranks(x, np.ones((1, n)))[0], _stats.rankdata(x))
