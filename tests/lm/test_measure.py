"""The correlation code reproduces the paper's Table 2/4/6/8/9 Spearman values from its RM tables and
the implied one-epoch orderings; the deterministic chance accuracy."""

import jax.numpy as jnp
import numpy as np
import pytest

import rmtheory
from rmtheory.lm.config import CORR_SOURCES
from rmtheory.lm.measure import chance_on_acc, correlation_table, duplicate_fraction, tie_fraction

NAMES = {"100": "rm_100", "75": "rm_75", "50": "rm_50", "25": "rm_25", "0": "rm_0", "Perf": "perfect_lowvar"}

T1 = ([0.630, 0.616, 0.555, 0.438, 0.314, 0.111], [0.660, 0.656, 0.640, 0.616, 0.587, 1.0],
      [0.630, 0.732, 0.758, 0.754, 0.762, 1.0])
T3 = ([0.660, 0.625, 0.626, 0.605, 0.374, 0.131], [0.662, 0.650, 0.643, 0.614, 0.553, 1.0],
      [0.546, 0.702, 0.732, 0.734, 0.746, 1.0])
T5 = ([0.755, 0.725, 0.685, 0.728, 0.746, 0.162], [0.702, 0.687, 0.656, 0.627, 0.567, 1.0],
      [0.570, 0.706, 0.700, 0.732, 0.754, 1.0])
T7 = ([0.682, 0.676, 0.596, 0.453, 0.405, 0.090], [0.678, 0.673, 0.650, 0.618, 0.578, 1.0],
      [0.612, 0.680, 0.682, 0.698, 0.716, 1.0])

# (RM table, proxy order, GT order, proxy Spearman [Var, On, Off, On&Off, Var&Acc], GT Spearman [...])
CASES = {
    "T2": (T1, "100 75 50 25 0 Perf", "50 75 100 25 Perf 0",
           [1.000, 0.143, -0.943, -0.486, 0.886], [0.714, 0.200, -0.543, 0.200, 0.828]),
    "T4": (T3, "50 100 75 25 0 Perf", "75 25 50 100 Perf 0",
           [0.943, -0.028, -0.828, -0.200, 0.771], [0.428, 0.028, -0.543, 0.143, 0.828]),
    "T6": (T5, "100 75 50 25 0 Perf", "75 100 50 25 Perf 0",
           [0.486, 0.143, -0.943, -0.486, 0.371], [0.086, 0.371, -0.771, -0.028, 0.371]),
    "T8a": (T7, "50 75 100 25 0 Perf", "100 75 Perf 25 50 0",
            [0.771, -0.086, -0.771, -0.086, 0.771], [0.600, 0.771, -0.600, 0.028, 0.714]),
    "T8b": (T7, "75 50 100 0 25 Perf", "100 75 Perf 25 50 0",
            [0.771, -0.086, -0.771, -0.086, 0.771], [0.600, 0.771, -0.600, 0.028, 0.714]),
    "T9": (T3, "50 100 75 25 0 Perf", "75 50 Perf 100 25 0",
           [0.943, -0.029, -0.829, -0.200, 0.771], [0.314, 0.543, -0.371, 0.600, 0.714]),
}


def _increase(order):
    names = order.split()
    return {NAMES[n]: float(len(names) - i) for i, n in enumerate(names)}


@pytest.mark.parametrize("case", sorted(CASES))
def test_spearman_reproduces_paper(case):
    (var, on, off), po, go, px_expected, gt_expected = CASES[case]
    metrics = {s: {"var": v, "acc_on": a, "acc_off": b} for s, v, a, b in zip(CORR_SOURCES, var, on, off)}
    table = correlation_table(metrics, _increase(po), _increase(go))
    for name, px, gt in zip(["Var", "On", "Off", "On&Off", "Var&Acc"], px_expected, gt_expected):
        assert table[name]["proxy_spearman"] == pytest.approx(px, abs=1.01e-3), (case, name)
        assert table[name]["gt_spearman"] == pytest.approx(gt, abs=1.01e-3), (case, name)
    if case.startswith("T8"):  # Table 8's (Var + On)/2 variant: GT Spearman 0.828
        assert table["(Var+On)/2"]["gt_spearman"] == pytest.approx(0.828, abs=1.01e-3)


def test_correlation_table_names_missing_source():
    with pytest.raises(ValueError, match="perfect_lowvar"):
        correlation_table({s: {"var": 1, "acc_on": 1, "acc_off": 1} for s in CORR_SOURCES[:5]},
                          {s: 0 for s in CORR_SOURCES}, {s: 0 for s in CORR_SOURCES})


def test_chance_is_the_accuracy_of_a_deterministic_uninformative_score():
    """``chance_on_acc`` = the mean on-policy accuracy (Definition 1, ties agree) of a score that gives each
    distinct response one random value, here averaged over 4000 such scores on samples with many identical
    responses and r_G ties between distinct ones. ½·(1 − tie fraction), the chance of a score drawn per
    *sample*, is far off on these samples (it ignores the free agreement on identical responses)."""
    rng = np.random.default_rng(0)
    P, K, L = 40, 10, 2
    resp = rng.integers(0, 3, (P, K, L))  # 9 possible responses: many duplicates within a prompt
    gt = resp[..., 0].astype(float)  # a function of the response, with ties between distinct ones
    ids = resp @ np.array([3, 1])  # each distinct response's index in 0..8
    draws = rng.normal(size=(4000, 9))
    scores = draws[:, ids]  # [4000, P, K]: one value per distinct response, the same for its duplicates
    acc = np.asarray(rmtheory.accuracy(jnp.asarray(scores), jnp.broadcast_to(jnp.asarray(gt), scores.shape))).mean(-1)
    chance = chance_on_acc(resp, gt)
    se = acc.std() / np.sqrt(acc.size)
    assert abs(acc.mean() - chance) < 4 * se
    assert duplicate_fraction(resp) > 0.05 and tie_fraction(gt) > duplicate_fraction(resp) + 0.05
    assert abs(acc.mean() - 0.5 * (1 - tie_fraction(gt))) > 20 * se
