"""The statistics of `rmtheory/_stats.py`: rank correlations against scipy, and the percentile bootstrap."""

import numpy as np
import pytest
from scipy import stats as sps

from rmtheory._stats import _resampled, corr_with_ci, pearson, percentile_ci, seed_stats, spearman


def test_pearson_and_spearman_match_scipy_with_ties():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=30), np.round(rng.normal(size=30), 1)  # ties in y
    assert pearson(x, y) == pytest.approx(sps.pearsonr(x, y)[0], abs=1e-12)
    assert spearman(x, y) == pytest.approx(sps.spearmanr(x, y)[0], abs=1e-12)


def test_seed_stats_bootstrap_ci_brackets_the_mean():
    st = seed_stats([0.1, 0.2, 0.3])
    assert st["mean"] == pytest.approx(0.2) and st["std"] == pytest.approx(0.1)
    assert st["ci"][0] <= 0.2 <= st["ci"][1] and st["ci"][0] >= 0.1 and st["ci"][1] <= 0.3
    assert seed_stats([0.1, 0.2, 0.3]) == st  # seeded


def test_seed_stats_ci_is_the_percentiles_of_resampled_means():
    x = np.array([0.3, -0.1, 0.7, 0.2])
    idx = np.random.default_rng(5).integers(0, 4, (300, 4))
    expected = np.percentile(x[idx].mean(1), [2.5, 97.5])
    np.testing.assert_array_equal(seed_stats(x, n_boot=300, seed=5)["ci"], expected)
    assert np.isnan(seed_stats([1.0])["std"])


def test_corr_with_ci_on_exact_and_constant_data():
    x = np.arange(10.0)
    c = corr_with_ci(spearman, x, 3 * x + 1, n_boot=200)
    assert c["r"] == pytest.approx(1.0) and c["ci"][0] == pytest.approx(1.0)
    assert corr_with_ci(pearson, x, np.ones(10))["r"] is None


@pytest.mark.parametrize("ties", [False, True])
def test_corr_with_ci_at_once_is_the_loop_over_resamples_bit_for_bit(ties):
    """Pearson and Spearman bootstraps are computed for all resamples at once; every resample's value, and so the
    CI, is the one a call of :func:`pearson` / :func:`spearman` per resample gives (constant resamples skipped),
    to the last bit. A correlation passed as any other function takes the loop itself."""
    rng = np.random.default_rng(3)
    for n in (3, 5, 17, 80, 130):  # 130: past numpy's pairwise-summation block of 128
        x = rng.integers(0, 3, n).astype(float) if ties else rng.normal(size=n)
        y = np.round(rng.normal(size=n), 0 if ties else 6) * 1e3
        idx = np.random.default_rng(n).integers(0, n, (500, n))
        ok = [i for i in idx if np.ptp(x[i]) > 0 and np.ptp(y[i]) > 0]
        assert 0 < len(ok) <= 500
        for f in (pearson, spearman):
            loop = np.array([f(x[i], y[i]) for i in ok])
            np.testing.assert_array_equal(_resampled(f, x, y, idx), loop)
            c = corr_with_ci(f, x, y, 500, n)
            assert c["ci"] == percentile_ci(loop) and c["r"] == f(x, y)
            assert corr_with_ci(lambda a, b: f(a, b), x, y, 500, n) == c  # the generic path


def test_percentile_ci_of_nothing_is_nan():
    assert np.all(np.isnan(percentile_ci([])))
    assert percentile_ci(np.arange(101.0)) == [2.5, 97.5]


def test_paired_spearman_diff_is_the_difference_on_the_same_expanded_resamples():
    """Each resample's difference equals Spearman on the expanded resample (rows repeated) for both predictors,
    and the paired CI is far narrower than the two unpaired CIs when the predictors share their noise."""
    from rmtheory._stats import paired_spearman_diff

    rng = np.random.default_rng(3)
    n = 40
    y = rng.normal(size=n)
    shared = rng.normal(size=n)
    xa = y + 0.5 * shared            # a better predictor …
    xb = y + 0.5 * shared + 1.0 * rng.normal(size=n)  # … than this one, which adds its own noise
    r = paired_spearman_diff(xa, xb, y, n_boot=400, seed=1)
    assert r["diff"] == pytest.approx(spearman(xa, y) - spearman(xb, y))
    w = np.random.default_rng(1).multinomial(n, np.full(n, 1.0 / n), size=400)
    brute = []
    for row in w:
        idx = np.repeat(np.arange(n), row)
        brute.append(spearman(xa[idx], y[idx]) - spearman(xb[idx], y[idx]))
    assert r["ci"] == pytest.approx(percentile_ci(brute), abs=1e-12)
    assert r["verdict"] == "beats"
    # two predictors that share most of their noise: the paired CI is far narrower than either unpaired one
    xc = xa + 0.1 * rng.normal(size=n)
    p = paired_spearman_diff(xa, xc, y, n_boot=400, seed=1)
    ca, cc = corr_with_ci(spearman, xa, y, 400, 1), corr_with_ci(spearman, xc, y, 400, 1)
    assert p["ci"][1] - p["ci"][0] < 0.5 * min(ca["ci"][1] - ca["ci"][0], cc["ci"][1] - cc["ci"][0])
    assert paired_spearman_diff(xb, xa, y, n_boot=400, seed=1)["verdict"] == "loses"
    same = paired_spearman_diff(xa, xa, y, n_boot=100)
    assert same["diff"] == 0 and same["ci"] == [0.0, 0.0] and same["verdict"] == "not distinguishable"
    with pytest.raises(ValueError, match="one length"):
        paired_spearman_diff(xa[:5], xb, y)
