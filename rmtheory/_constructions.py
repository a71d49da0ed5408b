"""Explicit reward models of Theorems 2/5 and 3/6 (docs/theory.md, "Results") and attainable accuracy
(Definition 3, docs/theory.md "Definitions").

All constructions concern one prompt x (tabular columns decouple, so other prompts are arbitrary) and
work on vectors over Y: ``pi0`` = π_θ(0)(·|x) [|Y|], ``r_g`` = r_G(x, ·) [|Y|]. A pair distribution D is
given as ``pair_weights`` [|Y|, |Y|] (strict upper triangle read, as in :func:`rmtheory.accuracy`);
``None`` is the uniform D of the paper's acc_x.

Attainability (Definition 3). The accuracy of r_RM depends only on the weak order (ranking with ties) it
induces on Y, and every weak order is induced by some r_RM: Y → [−1, 1]. So α is attainable iff some
weak order has accuracy α. For |Y| ≤ 7 every weak order is enumerated (47 293 at |Y| = 7). For larger |Y|
the uniform D with distinct r_G values is handled constructively (a permutation with exactly k inversions
has accuracy 1 − k/C(|Y|, 2), every k ∈ [0, C(|Y|, 2)] occurs, and ties in r_RM only add errors, so these
are all attainable values); other cases with |Y| > 7 raise an error.

"y ranked first" is taken *strictly* (y the unique argmax of r_RM): the fast construction of Theorem 5
puts r'_RM(y^γ) = 1 above every other value, which its proof (Proposition 4 with Y+ = {y^γ},
Y_bad = ∅) needs. An α′ attainable only with a tie at the top is reported as unattainable.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _bounds, _checks

MAX_ENUMERATE = 7
ACC_TOL = 1e-9


# --------------------------------------------------------------------------------------------------
# Weak orders and attainable accuracy (Definition 3)
# --------------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def weak_orders(n: int) -> np.ndarray:
    """Every weak order on n items as level vectors [K, n] (level 0 lowest; levels contiguous 0..m−1).
    K is the Fubini number (1, 3, 13, 75, 541, 4683, 47293 for n = 1..7)."""
    if not 1 <= n <= MAX_ENUMERATE:
        raise ValueError(f"weak orders are enumerated only for 1 <= |Y| <= {MAX_ENUMERATE}; got {n}")
    grid = np.indices((n,) * n, dtype=np.int8).reshape(n, -1).T  # all maps Y → {0..n−1}
    used = np.zeros((grid.shape[0], n), bool)
    np.put_along_axis(used, grid.astype(np.int64), True, axis=1)
    n_used = used.sum(1)
    keep = grid.max(1) + 1 == n_used  # value set is exactly {0, …, m−1}
    return np.ascontiguousarray(grid[keep])


def _pair_index(n):
    return np.triu_indices(n, k=1)


def _pair_w(n, pair_weights):
    i, j = _pair_index(n)
    if pair_weights is None:
        w = np.ones(len(i))
    else:
        pw = np.asarray(pair_weights, np.float64)
        if pw.shape != (n, n):
            raise ValueError(f"pair_weights must have shape [{n}, {n}]; got {list(pw.shape)}")
        _checks.nonnegative("pair_weights", pw)
        w = pw[i, j]
        if w.sum() <= 0:
            raise ValueError("pair_weights must put positive weight on some pair of distinct outputs")
    return w / w.sum()


def _order_accuracies(levels, r_g, w):
    i, j = _pair_index(len(r_g))
    s_rm = np.sign(levels[:, i].astype(np.int64) - levels[:, j])
    s_g = np.sign(r_g[i] - r_g[j])
    return (s_rm == s_g) @ w


def _validate_rg(r_g):
    r_g = np.asarray(r_g, np.float64)
    if r_g.ndim != 1 or r_g.shape[0] < 2:
        raise ValueError(f"r_g must be a vector over Y with |Y| >= 2; got shape {list(r_g.shape)}")
    _checks.in_range("r_g", r_g, -1.0, 1.0)
    return r_g


def _enumerated(r_g, pair_weights, top):
    n = len(r_g)
    levels = weak_orders(n)
    if top is not None:
        others = np.delete(levels, top, axis=1)
        levels = levels[levels[:, top] > others.max(1)]
    return levels, _order_accuracies(levels, r_g, _pair_w(n, pair_weights))


def attainable_accuracies(r_g, pair_weights=None, top: int | None = None) -> np.ndarray:
    """Sorted attainable accuracies for (x, D, r_G) (Definition 3), optionally subject to output ``top``
    ranked (strictly) first. Enumerates weak orders, so |Y| ≤ 7."""
    r_g = _validate_rg(r_g)
    _check_top(top, len(r_g))
    _, acc = _enumerated(r_g, pair_weights, top)
    return np.unique(np.round(acc, 12))


def _check_top(top, n):
    if top is not None and not (0 <= int(top) < n):
        raise ValueError(f"the top output index must lie in [0, {n - 1}]; got {top}")


def _lehmer_levels(order_keys, k):
    """Levels (a permutation) of items with distinct ``order_keys`` having exactly k inversions."""
    asc = list(np.argsort(order_keys, kind="stable"))
    levels = np.empty(len(asc), np.int64)
    for pos in range(len(levels)):
        c = min(k, len(asc) - 1)
        levels[asc.pop(c)] = pos
        k -= c
    return levels


def order_with_accuracy(r_g, alpha, pair_weights=None, top: int | None = None, *, name: str = "alpha"):
    """A weak order (level vector [|Y|], 0 lowest) whose accuracy under D equals ``alpha`` (to 1e-9),
    optionally with output ``top`` strictly first. Raises ``ValueError`` naming ``name`` if ``alpha`` is not
    attainable (Definition 3)."""
    r_g = _validate_rg(r_g)
    n = len(r_g)
    _check_top(top, n)
    _checks.in_range(name, alpha, 0.0, 1.0)
    alpha = float(alpha)
    suffix = "" if top is None else f" subject to output {top} ranked first"
    if n <= MAX_ENUMERATE:
        levels, acc = _enumerated(r_g, pair_weights, top)
        hit = np.flatnonzero(np.abs(acc - alpha) <= ACC_TOL)
        if hit.size == 0:
            vals = np.unique(np.round(acc, 6))
            raise ValueError(f"{name} = {alpha:.6g} is not attainable for this r_G and pair distribution{suffix}"
                             f" (Definition 3); attainable values: {vals.tolist()}")
        return levels[hit[0]].astype(np.int64)
    if pair_weights is not None or len(np.unique(r_g)) < n:
        raise ValueError(f"cannot decide attainability of {name} for |Y| = {n} > {MAX_ENUMERATE} unless D is "
                         "uniform and r_G has distinct values; use |Y| <= 7")
    n_pairs = n * (n - 1) // 2
    if top is None:
        k = n_pairs * (1.0 - alpha)
        if abs(k - round(k)) * 1.0 / n_pairs > ACC_TOL:
            raise ValueError(f"{name} = {alpha:.6g} is not attainable: under the uniform D accuracy lies on the grid"
                             f" k/{n_pairs} (Definition 3)")
        return _lehmer_levels(r_g, int(round(k)))
    fixed = int(np.sum(r_g < r_g[top]))  # pairs {top, y} counted correct when top is strictly first
    rest = np.delete(np.arange(n), top)
    m_pairs = (n - 1) * (n - 2) // 2
    correct = alpha * n_pairs - fixed
    if correct < -1e-6 or correct > m_pairs + 1e-6 or abs(correct - round(correct)) / n_pairs > ACC_TOL:
        lo, hi = fixed / n_pairs, (fixed + m_pairs) / n_pairs
        raise ValueError(f"{name} = {alpha:.6g} is not attainable{suffix}: attainable values are k/{n_pairs} "
                         f"for k/{n_pairs} in [{lo:.6g}, {hi:.6g}]")
    sub = _lehmer_levels(r_g[rest], m_pairs - int(round(correct)))
    levels = np.empty(n, np.int64)
    levels[rest] = sub
    levels[top] = n - 1
    return levels


def _compact(levels):
    """Relabel levels to 0..m−1 preserving order; returns (levels, m)."""
    u, inv = np.unique(levels, return_inverse=True)
    return inv.astype(np.int64), len(u)


# --------------------------------------------------------------------------------------------------
# Theorem 2 / Theorem 5
# --------------------------------------------------------------------------------------------------

def slow_reward(r_g, slowness, alpha=1.0, pair_weights=None):
    """r_perfect of Theorem 5 (slow teacher): r_RM(x, y) = b_y ∈ (0, 1/T) with acc_{x,D}(r_RM) = α exactly.

    The b_y take m equally spaced values (level+1)/((m+1)T) following a weak order of accuracy α, so
    max − min < 1/T and Var_π[r_RM] < 1/(4T²) ≤ T^{−2} under *every* policy π (Remark 3); Proposition 3
    then gives t_γ ≥ 2|S|(1 − e^{−γ/2}) T for r = r_G and any λ. For α = 1 the order is that of r_G, ties
    included.
    """
    _bounds.check_slowness(slowness)
    levels = order_with_accuracy(r_g, alpha, pair_weights, name="alpha")
    levels, m = _compact(levels)
    return (levels + 1.0) / ((m + 1.0) * float(slowness))


def fast_reward(pi0, r_g, y_gamma, alpha_fast=None, pair_weights=None):
    """r̄ of Theorem 5 (fast teacher): r'_RM(x, y^γ) = 1, r'_RM(x, y) = c_y ∈ (0, π_0(y^γ)) otherwise.

    With ``alpha_fast`` the c_y follow a weak order of accuracy α′ with y^γ strictly first (error if α′ is
    not attainable subject to that). With ``alpha_fast=None`` this is Remark 2's case: the c_y are distinct
    and in reverse r_G order (ties broken by index), so only pairs {y^γ, y} with r_G(y) < r_G(y^γ) are
    correct and acc ≤ (|Y| − 1)/C(|Y|, 2) = 2/|Y| under the uniform D.
    """
    pi0 = _validate_pi0(pi0)
    r_g = _validate_rg(r_g)
    n = len(r_g)
    _check_top(y_gamma, n)
    if alpha_fast is None:
        rest = np.delete(np.arange(n), y_gamma)
        # reverse r_G order: higher r_G → lower c; ties broken by index (distinct values)
        order = np.lexsort((rest, -r_g[rest]))
        levels = np.empty(n, np.int64)
        levels[rest[order]] = np.arange(n - 1)
        levels[y_gamma] = n - 1
    else:
        levels = order_with_accuracy(r_g, alpha_fast, pair_weights, top=y_gamma, name="alpha_fast")
    rest = np.delete(np.arange(n), y_gamma)
    sub, m = _compact(levels[rest])
    out = np.empty(n)
    out[rest] = pi0[y_gamma] * (sub + 1.0) / (m + 1.0)
    out[y_gamma] = 1.0
    return out


def _validate_pi0(pi0):
    pi0 = np.asarray(pi0, np.float64)
    _checks.distribution("pi0", pi0)
    _checks.positive("pi0", pi0)
    return pi0


def eligible_outputs(pi0, r_g, gamma):
    """Outputs y with r_G(x, y) > V_G^0 + γ (candidates for y^γ). Raises if there is none: then γ exceeds
    any increase the flow can deliver (E_π r_G < max r_G for every softmax policy)."""
    pi0 = _validate_pi0(pi0)
    r_g = _validate_rg(r_g)
    _checks.positive("gamma", gamma)
    v0 = float(pi0 @ r_g)
    ok = np.flatnonzero(r_g > v0 + gamma)
    if ok.size == 0:
        raise ValueError(f"gamma = {float(gamma):.6g} is larger than any reachable increase: max_y r_G = "
                         f"{r_g.max():.6g} <= V_G^0 + gamma = {v0 + float(gamma):.6g}")
    return ok


def default_y_gamma(pi0, r_g, gamma) -> int:
    """The eligible output (r_G > V_G^0 + γ) with the smallest Theorem 5 fast bound."""
    pi0 = _validate_pi0(pi0)
    r_g = _validate_rg(r_g)
    ok = eligible_outputs(pi0, r_g, gamma)
    v0 = float(pi0 @ r_g)
    rhos = (v0 + gamma + 1.0) / (r_g[ok] + 1.0)
    bounds = 4.0 / (1.0 - rhos) ** 4 * (1.0 / pi0[ok] - 1.0 / rhos)
    return int(ok[np.argmin(bounds)])


class Thm5Construction(NamedTuple):
    """The two reward models of Theorem 5 for one prompt, with the bounds they come with.

    ``r_rm`` slow (acc = ``accuracy``, Var ≤ ``variance_bound`` = T^{−2}, t_γ ≥ ``slow_bound``);
    ``r_rm_fast`` fast (acc = ``accuracy_fast``, y^γ first, t_γ ≤ ``fast_bound`` when λ ≤ ``lambda_max``).
    """

    r_rm: np.ndarray
    r_rm_fast: np.ndarray
    y_gamma: int
    rho: float
    accuracy: float
    accuracy_fast: float
    variance_bound: float
    slow_bound: float
    fast_bound: float
    lambda_max: float


def thm5_construction(pi0, r_g, gamma, slowness, alpha=1.0, alpha_fast=None, pair_weights=None,
                      y_gamma: int | None = None, n_prompts: int = 1) -> Thm5Construction:
    """Theorem 5 (Theorem 2 in full) for one prompt x ∈ S.

    Args:
      pi0: initial policy π_θ(0)(·|x) [|Y|] (full support).
      r_g: ground truth r_G(x, ·) [|Y|] in [−1, 1].
      gamma: γ > 0; there must be an output with r_G > V_G^0 + γ.
      slowness: the scale T ≥ 1 of the theorem.
      alpha: target accuracy of the slow RM (attainable for (x, D, r_G)).
      alpha_fast: target accuracy α′ of the fast RM (attainable subject to y^γ strictly first); ``None``
        gives Remark 2's case (acc ≤ 2/|Y| under the uniform D).
      pair_weights: D as [|Y|, |Y|] weights (default uniform over distinct pairs).
      y_gamma: the good output; default: the eligible output with the smallest fast bound.
      n_prompts: |S|.
    """
    pi0 = _validate_pi0(pi0)
    r_g = _validate_rg(r_g)
    _checks.same_shape(pi0=pi0, r_g=r_g)
    _bounds.check_slowness(slowness)
    ok = eligible_outputs(pi0, r_g, gamma)
    v0 = float(pi0 @ r_g)
    if y_gamma is None:
        y_gamma = default_y_gamma(pi0, r_g, gamma)
    elif int(y_gamma) not in ok:
        raise ValueError(f"y_gamma = {y_gamma} needs r_G(x, y_gamma) > V_G^0 + gamma = {v0 + gamma:.6g}; "
                         f"got r_G = {r_g[int(y_gamma)]:.6g}")
    y_gamma = int(y_gamma)
    from ._metrics import accuracy  # local import keeps module import light

    r_slow = slow_reward(r_g, slowness, alpha, pair_weights)
    r_fast = fast_reward(pi0, r_g, y_gamma, alpha_fast, pair_weights)
    pw = None if pair_weights is None else jnp.asarray(pair_weights, jnp.float64)
    acc = float(accuracy(jnp.asarray(r_slow), jnp.asarray(r_g), pw))
    acc_fast = float(accuracy(jnp.asarray(r_fast), jnp.asarray(r_g), pw))
    rho_ = float(_bounds.rho(v0, gamma, r_g[y_gamma]))
    return Thm5Construction(
        r_rm=r_slow, r_rm_fast=r_fast, y_gamma=y_gamma, rho=rho_, accuracy=acc, accuracy_fast=acc_fast,
        variance_bound=1.0 / float(slowness) ** 2,
        slow_bound=float(_bounds.thm5_slow_lower_bound(gamma, slowness, n_prompts)),
        fast_bound=float(_bounds.thm5_time_upper_bound(pi0[y_gamma], rho_, n_prompts)),
        lambda_max=float(_bounds.thm5_lambda_threshold(pi0[y_gamma], rho_, pi0.min())),
    )


# --------------------------------------------------------------------------------------------------
# Theorem 3 / Theorem 6
# --------------------------------------------------------------------------------------------------

def one_hot_reward(n_outputs: int, y: int) -> np.ndarray:
    """Theorem 6's reward: r(x, y) = 1 for the given output and −1 for every other output."""
    if n_outputs < 2:
        raise ValueError(f"n_outputs must be >= 2; got {n_outputs}")
    _check_top(y, n_outputs)
    r = -np.ones(n_outputs)
    r[int(y)] = 1.0
    return r


def sample_thm6_policies(key, r_g, y_gamma: int, y_gamma_prime: int, gamma, slowness, c, n: int = 1, *,
                         family: str = "Pi", v0=None, max_rounds: int = 50) -> np.ndarray:
    """Draw ``n`` initial policies [n, |Y|] from Theorem 6's family Π (``family="Pi"``) or Π′ (``"Pi_prime"``).

    Π = {π : E_π[r_G] = V_0, π(y'^γ) ≤ T^{−2}, π(y^γ) ≥ c}; Π′ swaps y^γ and y'^γ. Each draw puts mass exactly
    c on the covered output, mass q ∼ U(0, T^{−2}] on the other one, and spreads the rest over the remaining
    outputs (Dirichlet(1), full support). With ``v0`` given, the rest is then mixed with a point mass so
    that E_π[r_G] = V_0 exactly; with ``v0=None``, V_0 := E_π[r_G] per draw. Draws are kept only if both
    outputs have r_G > V_0 + γ and c < ρ (ρ of Theorem 6 for the covered output); rejection sampling with
    a clear error if no valid draws appear.
    """
    r_g = _validate_rg(r_g)
    n_out = len(r_g)
    if n_out < 3:
        raise ValueError(f"Theorem 6 needs |Y| >= 3 (two good outputs and the rest); got {n_out}")
    _check_top(y_gamma, n_out)
    _check_top(y_gamma_prime, n_out)
    if int(y_gamma) == int(y_gamma_prime):
        raise ValueError("y_gamma and y_gamma_prime must differ")
    _checks.positive("gamma", gamma)
    _bounds.check_slowness(slowness)
    _bounds.check_c(c)
    if family not in ("Pi", "Pi_prime"):
        raise ValueError(f"family must be 'Pi' or 'Pi_prime'; got {family!r}")
    cover, rare = (int(y_gamma), int(y_gamma_prime)) if family == "Pi" else (int(y_gamma_prime), int(y_gamma))
    q_max = 1.0 / float(slowness) ** 2
    if c + 1e-12 >= 1.0:
        raise ValueError(f"c must leave mass for the other outputs; got c = {c}")
    if v0 is not None:
        _checks.finite("v0", v0)
        if not -1.0 < float(v0) < 1.0:
            raise ValueError(f"v0 must lie in (-1, 1); got {float(v0):.6g}")
        if min(r_g[cover], r_g[rare]) <= float(v0) + gamma:
            raise ValueError(f"gamma too large: both good outputs need r_G > v0 + gamma = {float(v0) + gamma:.6g}")
    rest = np.setdiff1d(np.arange(n_out), [cover, rare])
    out = []
    for _ in range(max_rounds):
        key, k1, k2 = jax.random.split(key, 3)
        m = max(2 * n, 16)
        q = np.asarray(jax.random.uniform(k1, (m,), jnp.float64, 0.0, 1.0))
        q = np.minimum(q_max, 1.0 - c) * np.maximum(q, 1e-6)
        q = np.minimum(q, 0.5 * (1.0 - c))
        w = np.asarray(jax.random.dirichlet(k2, jnp.ones(len(rest), jnp.float64), (m,)))
        w = np.maximum(w, 1e-12)
        w /= w.sum(1, keepdims=True)
        mass = 1.0 - c - q
        if v0 is not None:
            need = (float(v0) - c * r_g[cover] - q * r_g[rare]) / mass  # required mean over the rest
            rr = r_g[rest]
            mu = w @ rr
            valid = (need > rr.min()) & (need < rr.max()) | (np.ptp(rr) == 0) & (np.abs(need - rr.min()) < 1e-12)
            hi = rest[np.argmax(rr)]
            lo = rest[np.argmin(rr)]
            s = np.where(mu < need, (need - mu) / np.where(rr.max() - mu > 0, rr.max() - mu, 1.0),
                         (mu - need) / np.where(mu - rr.min() > 0, mu - rr.min(), 1.0))
            s = np.clip(np.where(valid, s, 0.0), 0.0, 1.0 - 1e-9)
            w = (1.0 - s)[:, None] * w
            w[:, np.searchsorted(rest, hi)] += np.where(mu < need, s, 0.0)
            w[:, np.searchsorted(rest, lo)] += np.where(mu < need, 0.0, s)
        else:
            valid = np.ones(m, bool)
        pi = np.zeros((m, n_out))
        pi[:, cover] = c
        pi[:, rare] = q
        pi[:, rest] = mass[:, None] * w
        pi /= pi.sum(1, keepdims=True)
        v = pi @ r_g
        rho_ = (v + gamma + 1.0) / (r_g[cover] + 1.0)
        valid &= (np.minimum(r_g[cover], r_g[rare]) > v + gamma) & (c < rho_) & (v > -1) & (v < 1)
        valid &= pi.min(1) > 0
        out.extend(pi[valid])
        if len(out) >= n:
            return np.stack(out[:n])
    raise ValueError(f"could not sample {n} policies of family {family} with c = {c}, slowness = {slowness}, "
                     f"gamma = {gamma}: need r_G > V_0 + gamma on both good outputs and c < rho; lower gamma or c")


class Thm6Bounds(NamedTuple):
    """Theorem 6's bounds for one initial policy of Π (fast with the one-hot RM on y^γ, slow with the
    one-hot RM on y'^γ)."""

    rho: float
    lambda_max: float
    fast_bound: float
    slow_bound: float


def thm6_bounds(pi0, r_g, y_gamma, gamma, slowness, c, n_prompts=1) -> Thm6Bounds:
    """Theorem 6's λ threshold and bounds for π_0 ∈ Π (covered output ``y_gamma`` with π_0(y^γ) ≥ c).
    For Π′ pass the covered output y'^γ as ``y_gamma``."""
    pi0 = _validate_pi0(pi0)
    r_g = _validate_rg(r_g)
    v0 = float(pi0 @ r_g)
    rho_ = float(_bounds.rho(v0, gamma, r_g[int(y_gamma)]))
    return Thm6Bounds(rho_, float(_bounds.thm6_lambda_threshold(c, rho_, pi0.min())),
                      float(_bounds.thm6_time_upper_bound(c, rho_, n_prompts)),
                      float(_bounds.thm6_slow_lower_bound(gamma, slowness, n_prompts)))
