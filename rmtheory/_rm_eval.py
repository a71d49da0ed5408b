"""Reward-model evaluation from sampled scores (the paper's Section 3.2 protocol).

Inputs are score matrices [P, K]: K samples per prompt from the policy, scored by a reward model (and by
the ground truth). This is the one implementation shared by the LM pipeline's evaluation stage and by
``rmtheory evaluate``; it is built from the theory's own :func:`~rmtheory.accuracy` (Definition 1) and
:func:`~rmtheory.sample_variance` (Definition 2, unbiased estimator).
"""

from __future__ import annotations

from typing import NamedTuple

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks
from ._metrics import accuracy, sample_variance
from ._precision import require_x64

SCHEMES = ("global", "prompt_variance")
# jit-compiled cores (validation happens eagerly in rm_report before they are called)
_accuracy = jax.jit(functools.partial(accuracy, check=False))
_variance = jax.jit(functools.partial(sample_variance, ddof=1))
EPS = 1e-8  # the authors' code: σ = sqrt(var + 1e-8)


# Scores up to this magnitude are used as given (their squares and sums stay far inside float64). Larger
# ones are divided by a power of two first (exact), so that ±1e200 does not overflow σ to inf.
_SAFE_MAGNITUDE = 1e100


def _scale_of(*arrays) -> float:
    """1.0 when every |score| ≤ _SAFE_MAGNITUDE (the arithmetic is then exactly as written), else the
    power of two c with max|s|/c in [1, 2)."""
    m = max((float(np.max(np.abs(a))) for a in arrays if a.size), default=0.0)
    return 1.0 if m <= _SAFE_MAGNITUDE else math.ldexp(1.0, math.frexp(m)[1] - 1)


def pooled_normalisation_stats(groups, scheme: str = "global"):
    """(μ, σ) of one reward source from several score matrices [P_k, K_k] (prompts grouped by their
    number of samples K_k ≥ 2), pooled as if they were one matrix: μ over all scores; ``global``: σ² =
    the population variance of all scores; ``prompt_variance``: σ² = the mean over *all prompts* of the
    unbiased per-prompt variance; σ = sqrt(σ² + 1e-8) in the scores' own units, computed without overflow."""
    require_x64("rmtheory.normalisation_stats")
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}; got {scheme!r}")
    groups = [np.asarray(g, np.float64) for g in groups]
    c = _scale_of(*groups)
    if c != 1.0:
        groups = [g / c for g in groups]
    if len(groups) == 1:
        s = groups[0]
        mu = float(s.mean())
        var = float(s.var()) if scheme == "global" else float(np.mean(np.asarray(_variance(jnp.asarray(s)))))
    else:
        flat = np.concatenate([g.ravel() for g in groups])
        mu = float(flat.mean())
        if scheme == "global":
            var = float(flat.var())
        else:
            var = sum(float(np.sum(np.asarray(sample_variance(g, ddof=1)))) for g in groups) / sum(
                g.shape[0] for g in groups)
    if c == 1.0:
        sigma = float(np.sqrt(var + EPS))
    else:   # sqrt(c²·var + EPS) without forming c²·var (which may overflow) or EPS/c² (which underflows)
        sigma = math.hypot(math.sqrt(var) * c, math.sqrt(EPS))
    if not math.isfinite(sigma):
        raise ValueError("scores too large: the normalisation scale σ exceeds the float64 range (1.8e308); "
                         "divide the scores by a constant (rankings and normalised variances do not change)")
    return mu * c, sigma


def normalisation_stats(scores, scheme: str = "global"):
    """(μ, σ) of a reward source from its [P, K] score matrix under the initial policy.

    * ``global`` (the paper's default): μ, σ over all P·K scores, σ = sqrt(var + 1e-8).
    * ``prompt_variance`` (Table 9): μ over all scores, σ = sqrt(mean over prompts of the unbiased
      per-prompt variance + 1e-8). The shift is irrelevant to variances, accuracies and increases.

    Scores beyond ±1e100 are scaled by a power of two before squaring, so σ stays finite.
    """
    return pooled_normalisation_stats([scores], scheme)


def normalise(scores, stats):
    """r̃ = (r − μ)/σ (computed in scaled units when the scores are huge, so that r − μ cannot overflow)."""
    mu, sigma = stats
    s = np.asarray(scores, np.float64)
    c = _scale_of(s, np.asarray([mu, sigma]))
    if c == 1.0:
        return (s - mu) / sigma
    d, r = s / c - mu / c, sigma / c
    if r >= 1e-200:
        return d / r
    return (d * c) / sigma   # σ ≪ c only when the scores are (nearly) all equal: d·c is small


def combined_measures(var, acc_on, acc_off) -> dict:
    """The paper's combined measures: On&Off = (acc_on + acc_off)/2 and Var&Acc = (Var + On&Off)/2.

    Works elementwise on arrays (e.g. bootstrap resamples) as on floats."""
    on_off = 0.5 * (acc_on + acc_off)
    return {"on_off": on_off, "var_acc": 0.5 * (var + on_off)}


class RMReport(NamedTuple):
    """Per-prompt arrays and their means for one reward model (NaN where not computable)."""

    variance: np.ndarray      # [P] unbiased variance of the normalised scores
    on_accuracy: np.ndarray   # [P] accuracy over all C(K, 2) sample pairs vs the ground truth
    off_correct: np.ndarray   # [Q] 1/0 per off-policy chosen/rejected pair
    mean: float
    std: float
    var: float
    acc_on: float
    acc_off: float
    on_off: float
    var_acc: float


def rm_report(scores, ground_truth=None, off_chosen=None, off_rejected=None, off_gt_chosen=None,
              off_gt_rejected=None, *, scheme: str = "global") -> RMReport:
    """Reward variance, on-/off-policy accuracy, On&Off and Var&Acc of one reward model.

    Args:
      scores: [P, K] reward-model scores of K ≥ 2 policy samples per prompt.
      ground_truth: optional [P, K] ground-truth scores of the same samples (for on-policy accuracy).
      off_chosen, off_rejected: optional [Q] scores of off-policy chosen/rejected responses.
      off_gt_chosen, off_gt_rejected: optional [Q] ground truth of those responses; if absent the chosen
        response is taken to be strictly preferred.
      scheme: normalisation scheme (see :func:`normalisation_stats`), computed from ``scores`` itself.

    Var = mean_p Var̂_p(r̃) (divide by K − 1); acc_on = mean_p acc(r̃_p, r_G,p) over all pairs (Definition 1,
    ties included); acc_off = fraction of pairs ordered like the ground truth; On&Off = (acc_on + acc_off)/2;
    Var&Acc = (Var + On&Off)/2.

    Examples:
      Two prompts, three samples each, one off-policy pair ordered correctly:

      >>> import numpy as np
      >>> from rmtheory import enable_x64, rm_report
      >>> enable_x64()
      >>> scores = np.array([[0.9, 0.2, 0.5], [0.3, 0.7, 0.1]])
      >>> truth = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.2]])
      >>> rep = rm_report(scores, truth, off_chosen=[0.8], off_rejected=[0.1])
      >>> [round(float(v), 4) for v in rep.variance]
      [1.5579, 1.1789]
      >>> round(rep.var, 4), round(rep.acc_on, 4), rep.acc_off, round(rep.on_off, 4), round(rep.var_acc, 4)
      (1.3684, 0.8333, 1.0, 0.9167, 1.1425)
    """
    require_x64("rmtheory.rm_report")
    s = np.asarray(scores, np.float64)
    if s.ndim != 2 or s.shape[1] < 2:
        raise ValueError(f"scores must have shape [prompts, samples >= 2]; got {list(s.shape)}")
    _checks.finite("scores", s)
    stats = normalisation_stats(s, scheme)
    z = normalise(s, stats)
    variance = np.asarray(_variance(jnp.asarray(z)))
    if ground_truth is not None:
        g = np.asarray(ground_truth, np.float64)
        _checks.same_shape(scores=s, ground_truth=g)
        _checks.finite("ground_truth", g)
        # on the raw scores: ranking is invariant to the positive affine normalisation, and rounding in
        # (s − μ)/σ could turn distinct scores into ties (one score of 1e17 among scores of order 1)
        on = np.asarray(_accuracy(jnp.asarray(s), jnp.asarray(g)))
    else:
        on = np.full(s.shape[0], np.nan)
    if off_chosen is not None:
        c, r = np.asarray(off_chosen, np.float64), np.asarray(off_rejected, np.float64)
        _checks.same_shape(off_chosen=c, off_rejected=r)
        if off_gt_chosen is None:
            gc, gr = np.ones_like(c), np.zeros_like(r)
        else:
            gc, gr = np.asarray(off_gt_chosen, np.float64), np.asarray(off_gt_rejected, np.float64)
        pair_rm = np.stack([c, r], axis=-1)
        pair_g = np.stack([gc, gr], axis=-1)
        off = np.asarray(_accuracy(jnp.asarray(pair_rm), jnp.asarray(pair_g)))
    else:
        off = np.zeros(0)
    var = float(np.mean(variance))
    acc_on = float(np.mean(on))
    acc_off = float(np.mean(off)) if off.size else float("nan")
    comb = combined_measures(var, acc_on, acc_off)
    return RMReport(variance, on, off, stats[0], stats[1], var, acc_on, acc_off, comb["on_off"], comb["var_acc"])
