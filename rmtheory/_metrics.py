"""Reward variance (Definition 2) and accuracy (Definition 1).

These are the single source of truth for both the exact theory (distributions π over a finite Y) and
sampled evaluation (K scores per prompt): a set of K samples is just a finite "output set" with the
uniform pair distribution, so :func:`accuracy` and :func:`sample_variance` serve the LM pipeline and
``rmtheory evaluate`` too. Functions act on the last axis and broadcast over leading axes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import _checks

Array = jax.Array


def expected_reward(pi: Array, reward: Array) -> Array:
    """V = E_{y∼π}[r(y)] = Σ_y π(y) r(y)."""
    return jnp.sum(pi * reward, axis=-1)


def reward_variance(pi: Array, reward: Array, *, check: bool = True) -> Array:
    """Definition 2: Var_{y∼π}[r(y)] = E_π[(r − V)²] = ½ E_{y,y'∼π}[(r(y) − r(y'))²].

    Computed in the centred form (non-negative, no cancellation).
    """
    if check:
        _checks.distribution("pi", pi)
        _checks.finite("reward", reward)
    v = expected_reward(pi, reward)
    return jnp.sum(pi * (reward - v[..., None]) ** 2, axis=-1)


def sample_variance(scores: Array, ddof: int = 1) -> Array:
    """Sample variance of K scores along the last axis; ``ddof=1`` is the unbiased estimator the
    paper uses (divide by K − 1, Section 3.2)."""
    scores = jnp.asarray(scores)
    k = scores.shape[-1]
    mean = jnp.mean(scores, axis=-1, keepdims=True)
    return jnp.sum((scores - mean) ** 2, axis=-1) / (k - ddof)


def pair_agreement(r_rm: Array, r_g: Array) -> Array:
    """A[y, y'] = 1[sign(r_RM(y) − r_RM(y')) = sign(r_G(y) − r_G(y'))], sign(0) = 0 (Definition 1).

    A tie under both rewards agrees; a tie under only one of them is an error. Shape [..., Y, Y].
    """
    s_rm = jnp.sign(r_rm[..., :, None] - r_rm[..., None, :])
    s_g = jnp.sign(r_g[..., :, None] - r_g[..., None, :])
    return (s_rm == s_g).astype(jnp.result_type(r_rm, r_g, jnp.float32))


def _check_pair(r_rm, r_g):
    _checks.same_shape(r_rm=r_rm, r_g=r_g)
    _checks.finite("r_rm", r_rm)
    _checks.finite("r_g", r_g)


def accuracy(r_rm: Array, r_g: Array, pair_weights: Array | None = None, *, check: bool = True) -> Array:
    """Definition 1: acc_{x,D}(r_RM) = E_{{y,y'}∼D}[1[sign(Δr_RM) = sign(Δr_G)]].

    Args:
      r_rm, r_g: rewards of the outputs (or of K samples), shape [..., Y].
      pair_weights: optional [..., Y, Y] non-negative weights of the unordered pairs {y, y'}, read from
        the strict upper triangle y < y' (the lower triangle and diagonal are ignored); normalised
        internally. Default: uniform over the C(Y, 2) pairs of distinct outputs (the paper's acc_x), which
        on K samples is the paper's on-policy accuracy over all C(K, 2) sample pairs.
    """
    if check:
        _check_pair(r_rm, r_g)
    n = r_rm.shape[-1]
    upper = jnp.triu(jnp.ones((n, n), bool), k=1)
    w = upper if pair_weights is None else jnp.where(upper, pair_weights, 0.0)
    if check and pair_weights is not None:
        _checks.nonnegative("pair_weights", pair_weights)
    a = pair_agreement(r_rm, r_g)
    return jnp.sum(w * a, axis=(-2, -1)) / jnp.sum(w, axis=(-2, -1))


def pair_list_accuracy(r_rm: Array, r_g: Array, pairs: Array, weights: Array | None = None,
                       *, check: bool = True) -> Array:
    """Accuracy over an explicit list of unordered pairs ``pairs`` [P, 2] (indices into the last axis)
    with optional weights [P] (any non-negative numbers; normalised). Orientation is irrelevant."""
    pairs = jnp.asarray(pairs)
    if check:
        _check_pair(r_rm, r_g)
        if pairs.ndim != 2 or pairs.shape[-1] != 2:
            raise ValueError(f"pairs must have shape [P, 2]; got {list(pairs.shape)}")
        if _checks.is_concrete(pairs) and (pairs.min() < 0 or pairs.max() >= r_rm.shape[-1]):
            raise ValueError(f"pairs must index outputs in [0, {r_rm.shape[-1] - 1}]")
        if weights is not None:
            _checks.nonnegative("weights", weights)
    i, j = pairs[:, 0], pairs[:, 1]
    agree = (jnp.sign(r_rm[..., i] - r_rm[..., j]) == jnp.sign(r_g[..., i] - r_g[..., j])).astype(jnp.float64)
    w = jnp.ones(pairs.shape[0]) if weights is None else jnp.asarray(weights, jnp.float64)
    return jnp.sum(agree * w, axis=-1) / jnp.sum(w)


def on_policy_accuracy(pi: Array, r_rm: Array, r_g: Array, *, check: bool = True) -> Array:
    """Accuracy under the exact on-policy pair distribution: y, y' drawn i.i.d. from π.

    acc = Σ_{y,y'} π(y) π(y') A[y, y']. A pair of identical outputs ties under both rewards and counts
    as correct (Definition 1, as in sampled evaluation), so this is the K → ∞ limit of the sampled
    on-policy accuracy.
    """
    if check:
        _check_pair(r_rm, r_g)
        _checks.distribution("pi", pi)
    a = pair_agreement(r_rm, r_g)
    return jnp.einsum("...i,...ij,...j->...", pi, a, pi)
