"""Best-of-N (Proposition 1, docs/theory.md "Results"): exact output distribution over a finite Y.

π^BoN_r draws N i.i.d. samples y_1..y_N ∼ π(·|x) and returns the one with the highest selection reward r.

Tie-breaking (several samples share the highest r):

* ``"uniform"`` (default): one of the maximising *samples* is chosen uniformly at random (equivalently the
  earliest of them, since the samples are exchangeable). Given that the highest value is ℓ, the samples at
  level ℓ are i.i.d. from π restricted to G_ℓ = {y : r(y) = ℓ}, so
      P(y) = (F_ℓ^N − F_{ℓ−}^N) · π(y)/π(G_ℓ),   F_ℓ = π(r ≤ ℓ), F_{ℓ−} = π(r < ℓ).
* ``"index"``: among maximising samples the output with the *smallest index* wins, i.e. r is refined into
  the strict order (r(y), −y); then P(y) = F(y)^N − F(y^−)^N over that order.

For a perfectly accurate r (same weak order as r_G) the tie-breaking does not change E[r_G], and
E_{π^BoN}[r_G] equals :func:`best_of_n_optimal_value`, the maximum over all selection rewards (Prop. 1).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import _checks

Array = jax.Array


def _validate(pi, reward, n):
    _checks.distribution("pi", pi)
    _checks.finite("reward", reward)
    _checks.same_shape(pi=pi, reward=reward)
    if int(n) != n or n < 1:
        raise ValueError(f"n (the number of samples N) must be an integer >= 1; got {n}")


def best_of_n_distribution(pi: Array, reward: Array, n: int, tie_break: str = "uniform", *,
                           check: bool = True) -> Array:
    """Exact distribution of the Best-of-N output, shape [..., |Y|] (see the module docstring for the
    tie-breaking rules). ``reward`` is the selection reward (proxy or ground truth)."""
    pi = jnp.asarray(pi, jnp.float64)
    reward = jnp.asarray(reward, jnp.float64)
    if check:
        _validate(pi, reward, n)
    if tie_break == "uniform":
        le = reward[..., None, :] <= reward[..., :, None]  # [.., y, y'] : r(y') ≤ r(y)
        lt = reward[..., None, :] < reward[..., :, None]
        f_le = jnp.sum(jnp.where(le, pi[..., None, :], 0.0), -1)
        f_lt = jnp.sum(jnp.where(lt, pi[..., None, :], 0.0), -1)
        g = f_le - f_lt  # π(G_{r(y)})
        top = f_le**n - f_lt**n
        return jnp.where(g > 0, top * pi / jnp.where(g > 0, g, 1.0), 0.0)
    if tie_break == "index":
        m = reward.shape[-1]
        idx = jnp.arange(m)
        # y' precedes-or-equals y in the refined order (r(y'), −y') ≤ (r(y), −y)
        r_i, r_j = reward[..., :, None], reward[..., None, :]
        below = (r_j < r_i) | ((r_j == r_i) & (idx[None, :] > idx[:, None]))
        f_lt = jnp.sum(jnp.where(below, pi[..., None, :], 0.0), -1)
        return (f_lt + pi) ** n - f_lt**n
    raise ValueError(f"tie_break must be 'uniform' or 'index'; got {tie_break!r}")


def best_of_n_value(pi: Array, r_select: Array, r_eval: Array, n: int, tie_break: str = "uniform") -> Array:
    """E_{y∼π^BoN_{r_select}}[r_eval(y)], shape [...]."""
    _checks.same_shape(r_select=r_select, r_eval=r_eval)
    return jnp.sum(best_of_n_distribution(pi, r_select, n, tie_break) * jnp.asarray(r_eval, jnp.float64), -1)


def best_of_n_optimal_value(pi: Array, r_g: Array, n: int, *, check: bool = True) -> Array:
    """Closed form (docs/theory.md, Proposition 1): E[max_{i≤N} r_G(y_i)] = Σ_k r_(k)(F_k^N − F_{k−1}^N), the largest
    E_{π^BoN_{r'}}[r_G] over every selection reward r' (attained by any perfectly accurate r', Prop. 1)."""
    pi = jnp.asarray(pi, jnp.float64)
    r_g = jnp.asarray(r_g, jnp.float64)
    if check:
        _validate(pi, r_g, n)
    # Sum over outputs: Σ_y r(y) · [F_{r(y)}^N − F_{r(y)−}^N] · π(y)/π(G_{r(y)}) groups to Σ_k r_(k)(F_k^N − F_{k−1}^N).
    order = jnp.argsort(r_g, axis=-1)
    r_s = jnp.take_along_axis(r_g, order, -1)
    p_s = jnp.take_along_axis(pi, order, -1)
    cdf = jnp.cumsum(p_s, -1)
    # F at the *last* position of each tie block: a position whose successor has the same value is not a
    # block end; contributions F_end^N − F_prev_end^N are assigned to block ends.
    nxt_same = jnp.concatenate([r_s[..., 1:] == r_s[..., :-1], jnp.zeros(r_s.shape[:-1] + (1,), bool)], -1)
    f_end = jnp.where(nxt_same, jnp.nan, cdf)
    # previous block end's F: running max of cdf at ends before this position
    ends_cdf = jnp.where(nxt_same, 0.0, cdf)
    prev = jnp.concatenate([jnp.zeros(r_s.shape[:-1] + (1,)),
                            jax.lax.cummax(ends_cdf, axis=ends_cdf.ndim - 1)[..., :-1]], -1)
    contrib = jnp.where(nxt_same, 0.0, r_s * (jnp.nan_to_num(f_end) ** n - prev**n))
    return jnp.sum(contrib, -1)
