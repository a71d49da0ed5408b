"""Bounds of the paper (Prop. 3, Thm 4 tabular, Lemma 8, Prop. 4) as property tests on random instances.

Lower bounds: integrate to the bound and check the target is not reached; upper bounds: require the hit before
the bound (docs/theory.md, "Checking a bound numerically"). Instance batches mix λ = 0 and λ > 0
(rmtheory._verify_checks draws them).
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rmtheory import _bounds as B
from rmtheory import _verify as V

CFG = V.SCALES["quick"]
seeds = st.integers(0, 2**32 - 1)


@given(seeds)
def test_prop3_lower_bound(seed):
    row = V.check_prop3(np.random.default_rng(seed), CFG)
    assert row.violations == 0, row


@given(seeds)
def test_thm4_tabular(seed):
    row = V.check_thm4_tabular(np.random.default_rng(seed), CFG)
    assert row.violations == 0, row


@given(seeds)
def test_lemma8_l1_gradient(seed):
    row = V.check_lemma8(np.random.default_rng(seed), CFG)
    assert row.violations == 0, row
    assert row.ratio > 0.9  # the |Y| = 2 equiprobable case is (nearly) tight


@given(seeds)
def test_prop4_fast_when_conditions_hold(seed):
    row = V.check_prop4(np.random.default_rng(seed), CFG)
    assert row.violations == 0, row


def test_prop3_values():
    assert float(B.prop3_time_lower_bound(0.25, 2.0, 3)) == pytest.approx(2 * 3 * (1 - np.exp(-1)) / 0.5)
    assert np.isinf(B.prop3_time_lower_bound(0.0, 1.0))


def test_thm4_values():
    b = float(B.thm4_time_lower_bound(1e-3, 0.9, 0.0, 2, 3.0))
    assert b == pytest.approx((1 - np.exp(-0.1)) / (8 * 4 * 9) * 10.0)
    # the KL term binds for large λ: min{1 − e^{−γ/9}, 1 − e^{−7/(3λ)}}
    b2 = float(B.thm4_time_lower_bound(1.0, 9.0, 100.0))
    assert b2 == pytest.approx((1 - np.exp(-7 / 300)) / 8)


def test_prop2_lemma8_values():
    assert float(B.prop2_gradient_bound(1 / 8, 8.0, 2, 0.5)) == pytest.approx(6 * 2 * 2 * 0.5 * 0.5)
    assert float(B.lemma8_gradient_bound(0.09)) == pytest.approx(0.3)


def test_thm5_thm6_values():
    r = float(B.rho(0.0, 0.2, 0.8))
    assert r == pytest.approx(1.2 / 1.8)
    assert float(B.thm5_time_upper_bound(0.1, r, 2)) == pytest.approx(8 / (1 - r) ** 4 * (10 - 1 / r))
    assert float(B.thm6_time_upper_bound(0.1, r, 2)) == pytest.approx(4 / (1 - r) ** 3 * (10 - 1 / r))
    k = 1 / (2 * np.e) - 2 * np.log(0.01)
    assert float(B.thm5_lambda_threshold(0.1, r, 0.01)) == pytest.approx(0.1 * (1 - r) ** 4 / (8 * k))
    assert float(B.thm6_lambda_threshold(0.1, r, 0.01)) == pytest.approx(0.1 * (1 - r) ** 3 / (16 * k))
    assert float(B.thm6_slow_lower_bound(1.0, 4.0, 2)) == pytest.approx(2 / np.sqrt(2) * (1 - np.exp(-0.5)) * 4)
    assert float(B.lemma10_growth_bound(0.1, 0.01, 2.0, 0.5, 2)) == pytest.approx(
        0.1 * np.exp((4 + np.log(100)) * 2.0 / 2))


def _prop4_base():
    pi0 = np.array([0.05, 0.3, 0.3, 0.35])
    r_g = np.array([1.0, -0.5, -0.6, -0.4])
    r_rm = np.array([1.0, -1.0, -1.0, -1.0])
    good = np.array([True, False, False, False])
    return pi0, r_g, r_rm, good


def test_prop4_checker_reports_each_condition():
    pi0, r_g, r_rm, good = _prop4_base()
    c = B.prop4_conditions(pi0, r_g, r_rm, 0.2, good)
    assert c.ok and c.failed is None and np.isfinite(c.bound)
    assert c.bound == pytest.approx(float(B.prop4_time_upper_bound(c.good_mass, c.rho, c.delta, 1)))
    # good set: y in Y+ without r_G > V_G^0 + γ
    assert B.prop4_conditions(pi0, r_g, r_rm, 1.5, good).failed == "good_set"
    # condition 1: a second good output with a very different r_RM (spread > separation)
    r2 = r_rm.copy()
    r2[1] = -0.3
    r_g2 = r_g.copy()
    r_g2[1] = 1.0
    assert B.prop4_conditions(pi0, r_g2, r2, 0.2, np.array([1, 1, 0, 0], bool)).failed == "separation"
    # condition 2: λ too large
    assert B.prop4_conditions(pi0, r_g, r_rm, 0.2, good, lam=1.0).failed == "lambda"
    # condition 3: a distractor with r_RM above V_RM^0
    r3 = r_rm.copy()
    r3[3] = 0.9
    assert B.prop4_conditions(pi0, r_g, r3, 0.2, good).failed == "distractors"


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="slowness"):
        B.thm5_slow_lower_bound(0.1, 0.5)
    with pytest.raises(ValueError, match="c must"):
        B.thm6_time_upper_bound(1.2, 0.5)
    with pytest.raises(ValueError, match="c must"):
        B.thm6_lambda_threshold(0.0, 0.5, 0.1)
    with pytest.raises(ValueError, match="gamma"):
        B.rho(0.5, 0.6, 1.0)
    with pytest.raises(ValueError, match="gamma"):
        B.prop3_time_lower_bound(0.1, -1.0)
    with pytest.raises(ValueError, match="variance"):
        B.thm4_time_lower_bound(-0.1, 1.0)
