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


def _groups_and_data(seed=0, n_groups=4, size=7):
    rng = np.random.default_rng(seed)
    n = n_groups * size
    x = rng.normal(size=n)
    y = x + rng.normal(size=n)
    return x, y, [np.arange(g * size, (g + 1) * size) for g in range(n_groups)]


def _expanded(x, counts):
    return np.repeat(x, counts.astype(int))


def test_within_group_spearman_is_the_loop_over_explicit_within_group_resamples():
    """The mean of per-group Spearmans, and its bootstrap CI from resamples drawn within each group (the same
    multinomial draws, expanded into explicit resamples and correlated one by one)."""
    from rmtheory._stats import _group_draws, within_group_spearman

    x, y, groups = _groups_and_data()
    x[groups[1]] = np.round(x[groups[1]])  # ties in one group
    res = within_group_spearman(x, y, groups, n_boot=300, seed=3)
    assert res["r"] == pytest.approx(np.mean([sps.spearmanr(x[g], y[g])[0] for g in groups]), abs=1e-12)
    draws = _group_draws(groups, 300, 3)
    means = []
    for b in range(300):
        vals = []
        for g, w in zip(groups, draws):
            xi, yi = _expanded(x[g], w[b]), _expanded(y[g], w[b])
            if np.ptp(xi) > 0 and np.ptp(yi) > 0:
                vals.append(spearman(xi, yi))
        if vals:
            means.append(np.mean(vals))
    np.testing.assert_allclose(res["ci"], np.percentile(means, [2.5, 97.5]), rtol=0, atol=1e-12)
    assert within_group_spearman(x, y, groups, n_boot=300, seed=3) == res  # seeded


def test_paired_within_group_diff_pairs_the_resamples_and_drops_constant_groups():
    from rmtheory._stats import _group_draws, paired_within_group_diff

    x, y, groups = _groups_and_data(1)
    z = np.random.default_rng(9).normal(size=x.size)
    z[groups[2]] = 1.0  # constant in one group: that group is left out of every difference
    res = paired_within_group_diff(x, z, y, groups, n_boot=200, seed=4)
    keep = [g for i, g in enumerate(groups) if i != 2]
    assert res["diff"] == pytest.approx(np.mean([spearman(x[g], y[g]) - spearman(z[g], y[g]) for g in keep]))
    draws = _group_draws(groups, 200, 4)
    diffs = []
    for b in range(200):
        d = []
        for g, w in zip(groups, draws):
            xa, xb, yy = (_expanded(v[g], w[b]) for v in (x, z, y))
            if np.ptp(xa) > 0 and np.ptp(xb) > 0 and np.ptp(yy) > 0:
                d.append(spearman(xa, yy) - spearman(xb, yy))
        diffs.append(np.mean(d))
    np.testing.assert_allclose(res["ci"], np.percentile(diffs, [2.5, 97.5]), rtol=0, atol=1e-12)
    assert res["verdict"] == ("beats" if res["ci"][0] > 0 else "loses" if res["ci"][1] < 0 else "not distinguishable")
    # a predictor identical to the outcome beats noise; against itself the difference is exactly 0
    assert paired_within_group_diff(y, z, y, groups, n_boot=200)["verdict"] == "beats"
    same = paired_within_group_diff(x, x, y, groups, n_boot=200)
    assert same["diff"] == 0 and same["ci"] == [0.0, 0.0] and same["verdict"] == "not distinguishable"


def test_within_group_statistics_check_their_groups():
    from rmtheory._stats import paired_within_group_diff, within_group_spearman

    x, y, groups = _groups_and_data()
    with pytest.raises(ValueError, match=">= 3 cells"):
        within_group_spearman(x, y, [np.arange(2)])
    with pytest.raises(ValueError, match=r"index cells in \[0, 28\)"):
        within_group_spearman(x, y, [np.arange(26, 30)])
    with pytest.raises(ValueError, match="one shape"):
        paired_within_group_diff(x, x[:-1], y, groups)
