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

When the prompts share the parameters θ (an MLP, a transformer), the flow's rate of the prompt average is the
pooled rate ⟨ū, v̄⟩ = (1/P²) Σ_{x,x'} ⟨u_x, v_x'⟩, which has cross-prompt terms. :func:`pooled_rate_estimate`
adds to the same-prompt U-statistics the cross pairs ⟨û_x, v̂_x'⟩, x ≠ x', with û_x = (1/K) Σ_i (a_i − ā_{−i}) g_i
(leave-one-out centring, E[û_x] = u_x; samples of different prompts are independent), in O(N·D);
:func:`held_out_rate_estimate` estimates ⟨ū(A), v̄(B)⟩ for prompt sets A, B with independent samples.
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


def _validated(a, b, g, names=("a", "b", "g")):
    """float64 arrays a (or None), b [P, K] and g [P, K, D], K >= 2, checked; errors name the arguments."""
    na, nb, ng = names
    b = jnp.asarray(b, jnp.float64)
    g = jnp.asarray(g, jnp.float64)
    if b.ndim != 2:
        raise ValueError(f"{nb} must have shape [prompts, samples]; got {list(b.shape)}")
    if b.shape[1] < 2:
        raise ValueError(f"{nb}: K = {b.shape[1]} sample(s) per prompt; the estimator needs K >= 2 (pairs i != j)")
    if g.ndim != 3 or g.shape[:2] != b.shape:
        raise ValueError(f"{ng} must have shape [prompts, samples, dim] = {list(b.shape)} + [D]; "
                         f"got {list(g.shape)}")
    _checks.finite(nb, b)
    _checks.finite(ng, g)
    if a is not None:
        a = jnp.asarray(a, jnp.float64)
        _checks.same_shape(**{na: a, nb: b})
        _checks.finite(na, a)
    return a, b, g


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
    a, b, g = _validated(a, b, g)
    rg, rs, sg, ss = rate_from_gram(a, b, gram(g))
    mg, smg = _mean_se(rg)
    ms, sms = _mean_se(rs)
    return RateEstimate(rg, rs, sg, ss, mg, ms, smg, sms)


# --------------------------------------------------------------------------------------------------
# The pooled rate: prompts that share parameters
# --------------------------------------------------------------------------------------------------

class PooledRateEstimate(NamedTuple):
    """Unbiased estimates of the pooled rates over P prompts (scalars; NaN where not defined)."""

    total: jax.Array       # within + cross, unbiased for ⟨ū, v̄⟩ = (1/P²) Σ_{x,x'} ⟨u_x, v_x'⟩ (NaN without a)
    within: jax.Array      # (1/P²) Σ_x T_x: the same-prompt pairs, unbiased for (1/P²) Σ_x ⟨u_x, v_x⟩
    cross: jax.Array       # (1/P²) Σ_{x≠x'} ⟨û_x, v̂_x'⟩, unbiased for (1/P²) Σ_{x≠x'} ⟨u_x, v_x'⟩
    se: jax.Array          # delete-one-prompt jackknife standard error of total (NaN for P = 1)
    rate_self: jax.Array   # the same with a = b: unbiased for ‖v̄‖²
    se_self: jax.Array


class HeldOutRateEstimate(NamedTuple):
    """Unbiased estimate of the held-out rate ⟨ū(A), v̄(B)⟩ and its two-sample jackknife SE (scalars)."""

    rate: jax.Array
    se: jax.Array           # NaN unless both sets have at least 2 prompts


def loo_centred_mean(a, g) -> jax.Array:
    """û_x = (1/K) Σ_i (a_i − ā_{−i}) g_i per prompt, ā_{−i} the mean of a over the K − 1 other samples of x:
    [P, K], [P, K, D] → [P, D]. Since a_i − ā_{−i} = K (a_i − ā)/(K − 1), û_x = Σ_i (a_i − ā) g_i / (K − 1);
    E[û_x] = E_π[a g] = u_x exactly (``docs/rate_estimator.md``, "The pooled estimator")."""
    k = a.shape[-1]
    return jnp.einsum("pk,pkd->pd", a - jnp.mean(a, -1, keepdims=True), g) / (k - 1)


def _pooled_parts(t, uh, vh):
    """(total, within, cross, jackknife SE) from the same-prompt U-statistics T [P] and û, v̂ [P, D].

    Σ_{x≠x'} ⟨û_x, v̂_x'⟩ = ⟨Σû, Σv̂⟩ − Σ_x ⟨û_x, v̂_x⟩. Deleting prompt x removes T_x and the cross pairs that
    involve x, c_x = ⟨û_x, Σv̂⟩ + ⟨Σû, v̂_x⟩ − 2⟨û_x, v̂_x⟩, and the rest is normalised by 1/(P − 1)²."""
    p = t.shape[0]
    su, sv = uh.sum(0), vh.sum(0)
    own = jnp.sum(uh * vh, -1)
    w, c = t.sum(), jnp.vdot(su, sv) - own.sum()
    within, cross = w / p**2, c / p**2
    if p == 1:
        return within + cross, within, cross, jnp.full((), jnp.nan, t.dtype)
    loo = (w - t + c - (uh @ sv + vh @ su - 2.0 * own)) / (p - 1) ** 2
    se = jnp.sqrt((p - 1) / p * jnp.sum((loo - loo.mean()) ** 2))
    return within + cross, within, cross, se


@jax.jit
def _pooled(a, b, g):
    G = gram(g)
    vh = loo_centred_mean(b, g)
    t_self = jax.vmap(_u_and_jackknife)(b, b, G)[0]
    total_s, _, _, se_s = _pooled_parts(t_self, vh, vh)
    t = jax.vmap(_u_and_jackknife)(a, b, G)[0]
    return _pooled_parts(t, loo_centred_mean(a, g), vh) + (total_s, se_s)


def pooled_rate_estimate(a, b, g) -> PooledRateEstimate:
    """Unbiased estimate of the pooled teaching rate ⟨ū, v̄⟩ = (1/P²) Σ_{x,x'} ⟨u_x, v_x'⟩ of P prompts whose
    policy shares its parameters θ (u_x = E_π[a g], v_x = E_π[b g], g = ∇_θ log π(y|x)), and of ‖v̄‖².

    With P training prompts S (the flow's objective φ = (1/|S|) Σ_x φ_x and V̄_a = (1/|S|) Σ_x V_a(θ; x)) this is
    d V̄_a/dt = ⟨∇V̄_a, ∇φ⟩ at t = 0, the ``total`` of :func:`rmtheory.parametric_teaching_rate` (all prompts in
    S, π = π_ref or λ = 0 so that b = r_RM). The estimate is

        total = (1/P²) [Σ_x T_x + Σ_{x≠x'} ⟨û_x, v̂_x'⟩],   û_x = (1/K) Σ_i (a_i − ā_{−i}) g_i  (same for v̂ with b),

    T_x the same-prompt U-statistic of :func:`rate_estimate` (pairs i ≠ j, leave-two-out centring) and ā_{−i}
    the mean of a over the other K − 1 samples of prompt x. The cross sum is ⟨Σû, Σv̂⟩ − Σ_x ⟨û_x, v̂_x⟩, so the
    cost is O(N·D) plus the within-prompt Gram matrices (N = P·K samples). ``se`` is the delete-one-prompt
    jackknife (O(N·D) from the same sums). Proof of unbiasedness and the SE: ``docs/rate_estimator.md``, "The
    pooled estimator".

    Args:
      a: [P, K] scores of the measure (e.g. r_G), or None (then total, within, cross and se are NaN).
      b: [P, K] scores of the reward being optimised.
      g: [P, K, D] score vectors of the same samples with respect to the *shared* θ (for a tabular policy, the
        |S|·|Y| vector whose block x is e_y − π(·|x)), exact or sketched with one S for all prompts; the K
        samples of each prompt i.i.d. from π(·|x), independent across prompts.

    Traceable (under ``jit``/``vmap`` the value checks are skipped).
    """
    require_x64("rmtheory.pooled_rate_estimate")
    a, b, g = _validated(a, b, g)
    total, within, cross, se, total_s, se_s = _pooled(b if a is None else a, b, g)
    if a is None:
        total, within, cross, se = (jnp.full((), jnp.nan, jnp.float64),) * 4
    return PooledRateEstimate(total, within, cross, se, total_s, se_s)


@jax.jit
def _held_out(a, g_a, b, g_b):
    uh, vh = loo_centred_mean(a, g_a), loo_centred_mean(b, g_b)
    ub, vb = uh.mean(0), vh.mean(0)
    var = jnp.var(uh @ vb, ddof=1) / uh.shape[0] + jnp.var(vh @ ub, ddof=1) / vh.shape[0]
    return jnp.vdot(ub, vb), jnp.sqrt(var)


def held_out_rate_estimate(a, g_a, b, g_b) -> HeldOutRateEstimate:
    """Unbiased estimate of the held-out rate ⟨ū(A), v̄(B)⟩ = (1/(|A||B|)) Σ_{x∈A, x'∈B} ⟨u_x, v_x'⟩: the first-order
    rate of change of the mean of a over prompts A under the flow that trains on prompts B (the ``per_prompt``
    of :func:`rmtheory.parametric_teaching_rate` with ``train_mask`` = B, averaged over A).

    rate = ⟨mean_{x∈A} û_x, mean_{x'∈B} v̂_x'⟩ with the leave-one-out centred û, v̂ of
    :func:`pooled_rate_estimate`; unbiased because the samples of A and of B are independent (disjoint prompt
    sets, or the same prompts with separate samples). ``se``: the two-sample jackknife (delete one prompt of A,
    then one of B), √(s²_A/|A| + s²_B/|B|) with s²_A the sample variance over x ∈ A of ⟨û_x, V̂⟩ and s²_B that
    over x' ∈ B of ⟨Û, v̂_x'⟩, Û = mean_A û and V̂ = mean_B v̂ (``docs/rate_estimator.md``).

    Args:
      a: [|A|, K_A] scores of the measure on the prompts of A; g_a: [|A|, K_A, D] their score vectors.
      b: [|B|, K_B] scores of the trained reward on the prompts of B; g_b: [|B|, K_B, D] (the same θ, so the
        same D). K_A, K_B ≥ 2.
    """
    require_x64("rmtheory.held_out_rate_estimate")
    _, a, g_a = _validated(None, a, g_a, names=("", "a", "g_a"))
    _, b, g_b = _validated(None, b, g_b, names=("", "b", "g_b"))
    if g_a.shape[-1] != g_b.shape[-1]:
        raise ValueError(f"g_a and g_b must have the same dim D (one θ); got {g_a.shape[-1]} and {g_b.shape[-1]}")
    return HeldOutRateEstimate(*_held_out(a, g_a, b, g_b))
