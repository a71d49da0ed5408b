"""Reward-model evaluation from sampled scores (the paper's Section 3.2 protocol).

Inputs are score matrices [P, K]: K samples per prompt from the policy, scored by a reward model (and by
the ground truth). This is the one implementation shared by the LM pipeline's evaluation stage and by
``rmtheory evaluate``; it is built from the theory's own :func:`~rmtheory.accuracy` (Definition 1) and
:func:`~rmtheory.sample_variance` (Definition 2, unbiased estimator).
"""

from __future__ import annotations

from typing import NamedTuple

import functools

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks
from ._metrics import accuracy, sample_variance

SCHEMES = ("global", "prompt_variance")
# jit-compiled cores (validation happens eagerly in rm_report before they are called)
_accuracy = jax.jit(functools.partial(accuracy, check=False))
_variance = jax.jit(functools.partial(sample_variance, ddof=1))
EPS = 1e-8  # the authors' code: σ = sqrt(var + 1e-8)


def normalisation_stats(scores, scheme: str = "global"):
    """(μ, σ) of a reward source from its [P, K] score matrix under the initial policy.

    * ``global`` (the paper's default): μ, σ over all P·K scores, σ = sqrt(var + 1e-8).
    * ``prompt_variance`` (Table 9): μ over all scores, σ = sqrt(mean over prompts of the unbiased
      per-prompt variance + 1e-8). The shift is irrelevant to variances, accuracies and increases.
    """
    s = np.asarray(scores, np.float64)
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}; got {scheme!r}")
    mu = float(s.mean())
    if scheme == "global":
        var = float(s.var())
    else:
        var = float(np.mean(np.asarray(_variance(jnp.asarray(s)))))
    return mu, float(np.sqrt(var + EPS))


def normalise(scores, stats):
    """r̃ = (r − μ)/σ."""
    mu, sigma = stats
    return (np.asarray(scores, np.float64) - mu) / sigma


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
    """
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
        on = np.asarray(_accuracy(jnp.asarray(z), jnp.asarray(g)))
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
    on_off = 0.5 * (acc_on + acc_off)
    return RMReport(variance, on, off, stats[0], stats[1], var, acc_on, acc_off, on_off, 0.5 * (var + on_off))
