"""Unbiased sample estimates of the teaching rate from K ≥ 2 policy samples per prompt.

Under the gradient flow dθ/dt = ∇φ_RM, a measure a (e.g. the ground truth r_G) changes at the rate
rate_a = ⟨∇V_a, ∇φ_RM⟩; per prompt x, with score vectors g(y) = ∇_θ log π(y|x) and the reward b = r^KL_RM
(= r_RM at π = π_ref, or with λ = 0),

    rate_G,x = ⟨E_π[a g], E_π[b g]⟩,        rate_self,x = ‖E_π[b g]‖².

From y_1..y_K ~ π(·|x) i.i.d. with scores a_i, b_i and score vectors g_i (exact, or sketched by a projection S
with E[SᵀS] = I drawn independently of the samples, ``rmtheory._sketch``), the estimate is the U-statistic over
ordered pairs with leave-two-out centring

    T = 1/(K(K−1)) Σ_{i≠j} (a_i − c_ij)(b_j − d_ij) ⟨g_i, g_j⟩,

c_ij, d_ij the means of a, b over the K − 2 samples other than i and j (none when K = 2). E[T] = rate_x
exactly: y_i, y_j are independent, c_ij and d_ij are independent of them, and E[g] = 0 (proof in
``docs/rate_estimator.md``). Its standard error is the jackknife over samples (K ≥ 3; all K leave-one-out
values in O(K²)); the mean over prompts gets std/√P. Note: unbiasedness needs the samples to come from the
policy whose score vectors are used (E_π[g] = 0): no temperature or top-p/top-k mismatch.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks
from ._precision import require_x64


class RateEstimate(NamedTuple):
    """Per-prompt estimates [P] and their means over prompts (NaN where not defined)."""

    rate_g: jax.Array       # [P] estimate of ⟨E[a g], E[b g]⟩ (NaN without a)
    rate_self: jax.Array    # [P] estimate of ‖E[b g]‖²
    se_g: jax.Array         # [P] jackknife standard error (NaN for K = 2)
    se_self: jax.Array      # [P]
    mean_g: float           # mean over prompts
    mean_self: float
    se_mean_g: float        # std over prompts (ddof 1) / √P (NaN for P = 1)
    se_mean_self: float


def gram(g) -> jax.Array:
    """⟨g_i, g_j⟩ for every pair of samples of a prompt: [P, K, D] → [P, K, K]."""
    return jnp.einsum("pkd,pjd->pkj", g, g)


def _off_diagonal_sums(XG):
    """For an off-diagonal [K, K] matrix: the total, and for each k the total without row k and column k."""
    tot = XG.sum()
    return tot, tot - XG.sum(1) - XG.sum(0)


def _u_and_jackknife(a, b, G):
    """One prompt: the U-statistic T and its K leave-one-out values T_(−k) ([K]; NaN for K = 2).

    With A = Σa: (K−2)(a_i − c_ij) = (K−1)a_i + a_j − A, so T = Σ_{i≠j} α_ij β_ij G_ij / ((K−2)² K(K−1)).
    Leaving sample k out (n = K − 1 samples), the centred factors become α̃_ij + a_k and β̃_ij + b_k with
    α̃_ij = (K−2)a_i + a_j − A, β̃_ij = (K−2)b_j + b_i − B; the four terms of their product are summed over
    pairs avoiding k from row and column sums (O(K²) for all k)."""
    K = a.shape[0]
    off = 1.0 - jnp.eye(K, dtype=G.dtype)
    Gz = G * off
    if K == 2:
        t = jnp.sum(a[:, None] * b[None, :] * Gz) / 2.0
        return t, jnp.full((K,), jnp.nan, G.dtype)
    A, B = a.sum(), b.sum()
    alpha = (K - 1) * a[:, None] + a[None, :] - A
    beta = (K - 1) * b[None, :] + b[:, None] - B
    t = jnp.sum(alpha * beta * Gz) / ((K - 2) ** 2 * K * (K - 1))
    n = K - 1
    if n == 2:   # K = 3: the leave-one-out statistics have no centring
        _, s = _off_diagonal_sums(a[:, None] * b[None, :] * Gz)
        return t, s / 2.0
    at = (K - 2) * a[:, None] + a[None, :] - A
    bt = (K - 2) * b[None, :] + b[:, None] - B
    _, s_ab = _off_diagonal_sums(at * bt * Gz)
    _, s_b = _off_diagonal_sums(bt * Gz)
    _, s_a = _off_diagonal_sums(at * Gz)
    _, s_1 = _off_diagonal_sums(Gz)
    loo = (s_ab + a * s_b + b * s_a + a * b * s_1) / ((n - 2) ** 2 * n * (n - 1))
    return t, loo


def _jackknife_se(loo):
    K = loo.shape[-1]
    return jnp.sqrt((K - 1) / K * jnp.sum((loo - loo.mean(-1, keepdims=True)) ** 2, -1))


@jax.jit
def _per_prompt(a, b, G):
    """[P, K] scores and [P, K, K] Gram matrices → (T [P], jackknife SE [P])."""
    t, loo = jax.vmap(_u_and_jackknife)(a, b, G)
    return t, _jackknife_se(loo)


def rate_from_gram(a, b, G):
    """(rate_g, rate_self, se_g, se_self), each [P], from [P, K] scores and the [P, K, K] Gram matrices of the
    score vectors (a may be None: rate_g and se_g are NaN). No validation: see :func:`rate_estimate`."""
    rs, ss = _per_prompt(b, b, G)
    if a is None:
        nan = jnp.full(rs.shape, jnp.nan, rs.dtype)
        return nan, rs, nan, ss
    rg, sg = _per_prompt(a, b, G)
    return rg, rs, sg, ss


def _mean_se(x):
    x = np.asarray(x, np.float64)
    m = float(np.mean(x))
    se = float(np.std(x, ddof=1) / math.sqrt(x.size)) if x.size > 1 else math.nan
    return m, se


def rate_estimate(a, b, g) -> RateEstimate:
    """Unbiased per-prompt estimates of rate_G,x = ⟨E_π[a g], E_π[b g]⟩ and rate_self,x = ‖E_π[b g]‖².

    Args:
      a: [P, K] scores of the measure whose rate is wanted (e.g. the ground truth r_G), or None.
      b: [P, K] scores of the reward being optimised (the reward model; r^KL when λ > 0 and π ≠ π_ref).
      g: [P, K, D] score vectors g_i = ∇_θ log π(y_i|x) of the same samples, exact or sketched
        (``rmtheory._sketch``); samples y_i ~ π(·|x) i.i.d.

    Returns a :class:`RateEstimate`: the U-statistic with leave-two-out centring (module docstring) per prompt,
    its jackknife standard error over the K samples (K ≥ 3), and the mean over prompts with SE std/√P.
    The rate is linear in the scale of a and of b and, for K ≥ 3, unchanged by adding a per-prompt constant
    to either. Derivation and unbiasedness proof: ``docs/rate_estimator.md``.
    """
    require_x64("rmtheory.rate_estimate")
    b = jnp.asarray(b, jnp.float64)
    g = jnp.asarray(g, jnp.float64)
    if b.ndim != 2:
        raise ValueError(f"b must have shape [prompts, samples]; got {list(b.shape)}")
    if b.shape[1] < 2:
        raise ValueError(f"b: K = {b.shape[1]} sample(s) per prompt; the estimator needs K >= 2 (pairs i != j)")
    if g.ndim != 3 or g.shape[:2] != b.shape:
        raise ValueError(f"g must have shape [prompts, samples, dim] = {list(b.shape)} + [D]; got {list(g.shape)}")
    _checks.finite("b", b)
    _checks.finite("g", g)
    if a is not None:
        a = jnp.asarray(a, jnp.float64)
        _checks.same_shape(a=a, b=b)
        _checks.finite("a", a)
    rg, rs, sg, ss = rate_from_gram(a, b, gram(g))
    mg, smg = _mean_se(rg)
    ms, sms = _mean_se(rs)
    return RateEstimate(rg, rs, sg, ss, mg, ms, smg, sms)
