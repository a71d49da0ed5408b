"""The teaching rate of a shared-parameter policy in one streaming pass: pooled, Adam-geometry and sign rates.

The rates of ``docs/teaching_rate.md`` §6–7 for P prompts × K samples whose policy shares θ, from the exact (or
sketched) score vectors g_xi = ∇_θ log π(y_xi | x), accumulated a chunk of prompts at a time so that memory is
O(D × sources), never O(N × D). With the leave-one-out weights (RLOO's advantages)

    α_xi(b) = b_xi − mean_{j≠i} b_xj,        û_x(b) = (1/K) Σ_i α_xi(b) g_xi      (E[û_x(b)] = E_π[b g] = v_x),

and, for a measure a (the ground truth) and a reward b:

* **pooled** rate ⟨ū(a), v̄(b)⟩ = (1/P²) Σ_{x,x'} ⟨u_x, v_x'⟩: (1/P²)[Σ_x T_x + ⟨Σû(a), Σû(b)⟩ − Σ_x ⟨û_x(a), û_x(b)⟩]
  with T_x the same-prompt U-statistic (:func:`rmtheory.pooled_rate_estimate`, ``docs/rate_estimator.md``);
  SE by the delete-a-group jackknife over ``n_groups`` groups of prompts (prompt x in group x mod n_groups);
* **within** (per-prompt) rate (1/P) Σ_x T_x, the first-order rate only when prompts share no parameter;
* **Adam-geometry** rate ⟨ū(a), d(b)⟩ with d = ḡ/(√(ḡ² + σ²/m) + ε) per coordinate (:func:`adam_direction`):
  ḡ = mean over samples of α g (the expected minibatch gradient of RLOO's loss at π_old = π), σ² the
  per-coordinate variance of the single-sample terms α g, m the optimiser's minibatch (in samples), ε Adam's ε:
  the stationary-noise approximation E[m̂]/√E[v̂] of Adam's expected step (the moments are exact at every step; the
  ratio of expectations is close from about the tenth step, while the first step is sign-like, E[sign G]; RLOO's
  within-prompt correlation and the prompts' spread make σ²/m approximate; derivation and where it fails:
  ``docs/teaching_rate.md`` §7);
* **sign** rate ⟨ū(a), sign ḡ(b)⟩, the limit σ → 0, ε → 0 of the Adam direction (sign descent).

The optimiser rates are *split-sample*: ū comes from one half of the prompts (x even) and d from the other half
(x odd), and the two pairings are averaged, ½(⟨ū⁰, d¹⟩ + ⟨ū¹, d⁰⟩). With d a nonlinear function of the noisy
ḡ, a same-sample product ⟨û, sign ĝ⟩ would carry a positive bias of order Σ_k |noise_k| (D coordinates) whenever
a and b correlate; the split removes it: E⟨ū⁰, d¹⟩ = ⟨ū, E d¹⟩ exactly, because the halves' samples are
independent.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ._ascent import rloo_advantages
from ._rate_estimator import _mean_se, _per_prompt

ADAM_EPS = 1e-8   # optax.adam's default ε: the default here, and what the LM pipeline and `rmtheory score` use

__all__ = ["ADAM_EPS", "adam_direction", "sign_direction", "adam_geometry_rate", "sign_rate", "RateAccumulator",
           "StreamedRates", "loo_weights"]


def adam_direction(mean, var, batch: int, eps: float = ADAM_EPS):
    """Adam's first-order update direction in the stationary-noise regime, per coordinate:

        d = ḡ / (√(ḡ² + σ²/m) + ε),

    ḡ = ``mean`` (the expected minibatch gradient), σ² = ``var`` (the variance of one sample's gradient term), m =
    ``batch`` (samples per optimiser step), ε = Adam's ε. E[v̂] = ḡ² + σ²/m for a minibatch mean of m i.i.d.
    terms, and E[m̂] = ḡ, at every step after bias correction; d = E[m̂]/(√E[v̂] + ε) is the ratio of expectations,
    not E[m̂/(√v̂ + ε)] (the first step is G/(|G| + ε), sign-like). ``docs/teaching_rate.md`` §7."""
    if batch < 1:
        raise ValueError(f"batch must be >= 1 (samples per optimiser step); got {batch}")
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0; got {eps}")
    mean = np.asarray(mean, np.float64)
    var = np.clip(np.asarray(var, np.float64), 0.0, None)
    if var.shape != mean.shape and var.ndim:
        raise ValueError(f"var must have the shape of mean {list(mean.shape)} (or be a scalar); got {list(var.shape)}")
    den = np.sqrt(mean * mean + var / batch) + eps
    return np.divide(mean, den, out=np.zeros_like(mean), where=den > 0)


def sign_direction(mean):
    """sign ḡ per coordinate: :func:`adam_direction` with σ² = 0 and ε = 0 (signSGD; 0 where ḡ = 0)."""
    return np.sign(np.asarray(mean, np.float64))


def adam_geometry_rate(u, mean, var, batch: int, eps: float = ADAM_EPS) -> float:
    """⟨u, d⟩ with d = :func:`adam_direction` (mean, var, batch, eps): the first-order change of the measure whose
    gradient is ``u`` per unit learning rate of Adam, in the stationary-noise approximation."""
    return float(np.vdot(_like(u, mean), adam_direction(mean, var, batch, eps)))


def sign_rate(u, mean) -> float:
    """⟨u, sign ḡ⟩: the first-order change per unit learning rate of sign descent along ḡ = ``mean``."""
    return float(np.vdot(_like(u, mean), sign_direction(mean)))


def _like(u, mean):
    """``u`` as float64, checked to have the shape of ``mean`` (np.vdot would pair mismatched shapes silently)."""
    u = np.asarray(u, np.float64)
    if u.shape != np.shape(mean):
        raise ValueError(f"u must have the shape of mean {list(np.shape(mean))}; got {list(u.shape)}")
    return u


def loo_weights(scores):
    """α_i = s_i − mean_{j≠i} s_j over the samples axis (axis 1) of [P, K, ...] scores: RLOO's advantages
    (:func:`rmtheory._ascent.rloo_advantages`; they sum to 0 over a prompt's samples, α_i = K (s_i − s̄)/(K − 1))."""
    s = jnp.moveaxis(jnp.asarray(scores, jnp.float64), 1, -1)
    return np.moveaxis(np.asarray(rloo_advantages(s)), -1, 1)


class StreamedRates(NamedTuple):
    """The rates of one reward b (against the measure a where given), all scalars (NaN where not defined)."""

    pooled_g: float          # ⟨ū(a), v̄(b)⟩
    pooled_g_se: float
    pooled_self: float       # ‖v̄(b)‖²
    pooled_self_se: float
    within_g: float          # (1/P) Σ_x T_x(a, b): the per-prompt rate
    within_g_se: float       # std over prompts / √P
    within_self: float
    within_self_se: float
    adam_g: float            # ⟨ū(a), d(b)⟩, split-sample
    adam_self: float         # ⟨v̄(b), d(b)⟩, split-sample
    sign_g: float            # ⟨ū(a), sign ḡ(b)⟩, split-sample
    sign_self: float


class RateAccumulator:
    """Streaming sums for :class:`StreamedRates` of S score sources, chunk by chunk of prompts.

    ``add(scores, g)`` takes a chunk's scores [B, K, S] (each source's normalised scores; the measure is one of the
    sources, ``measure`` its index) and score vectors g [B, K, D] (float32 is fine; sums are float64).
    Prompts are numbered in the order they arrive. Memory: (n_groups + 4)·S·D float64 numbers.

    ``rates(batch, eps)`` returns {source index: :class:`StreamedRates`}; ``batch`` and ``eps`` are the
    optimiser's minibatch size in samples and Adam's ε.
    """

    def __init__(self, dim: int, n_sources: int, k: int, measure: int | None = None, n_groups: int = 20):
        if k < 2:
            raise ValueError(f"k must be >= 2 (the rates pair samples of a prompt); got {k}")
        if n_groups < 2 or n_groups % 2:
            raise ValueError(f"n_groups must be even and >= 2 (the halves are the groups' parities); got {n_groups}")
        if measure is not None and not 0 <= measure < n_sources:
            raise ValueError(f"measure must index one of the {n_sources} sources; got {measure}")
        self.dim, self.s, self.k, self.measure, self.n_groups = int(dim), int(n_sources), int(k), measure, n_groups
        self.p = 0
        self.group_u = np.zeros((n_groups, self.s, self.dim))       # Σ_{x in group} û_x, per source
        self.sq = np.zeros((2, self.s, self.dim))                    # Σ (α g)² per half
        self.own = np.zeros((n_groups, self.s, self.s))              # Σ_x ⟨û_x(s), û_x(s')⟩ per group
        self.t_g, self.t_self, self.groups = [], [], []              # per prompt: T_x(a, b_s) [S], T_x(b_s, b_s) [S]

    def add(self, scores, g, gram=None) -> None:
        """Add a chunk of prompts: scores [B, K, S], score vectors g [B, K, D] (numpy or JAX), and optionally their
        within-prompt Gram matrices [B, K, K] when already computed."""
        scores = np.asarray(scores, np.float64)
        if scores.ndim != 3 or scores.shape[2] != self.s or scores.shape[1] != self.k:
            raise ValueError(f"scores must have shape [prompts, {self.k}, {self.s}]; got {list(scores.shape)}")
        b, k = scores.shape[:2]
        if tuple(g.shape) != (b, k, self.dim):
            raise ValueError(f"g must have shape {[b, k, self.dim]}; got {list(g.shape)}")
        grp = (self.p + np.arange(b)) % self.n_groups
        alpha = loo_weights(scores)
        gu, sq, gr = _chunk_stats(jnp.asarray(alpha, jnp.float32), jnp.asarray(g, jnp.float32), jnp.asarray(grp),
                                  self.n_groups, gram is None)
        self.group_u += np.asarray(gu, np.float64)
        self.sq += np.asarray(sq, np.float64)
        gram_np = np.asarray(gr if gram is None else gram, np.float64)
        # ⟨û_x(s), û_x(t)⟩ = α_x(s)ᵀ G_x α_x(t) / K² from the Gram matrix (no pass over g)
        own = np.einsum("bis,bij,bjt->bst", alpha, gram_np, alpha, optimize=True) / k**2
        np.add.at(self.own, grp, own)
        gram = jnp.asarray(gram_np)
        bb = jnp.asarray(scores.transpose(2, 0, 1))                                     # [S, B, K]
        self.t_self.append(np.stack([np.asarray(_per_prompt(bb[s], bb[s], gram)[0]) for s in range(self.s)], 1))
        if self.measure is not None:
            a = bb[self.measure]
            self.t_g.append(np.stack([np.asarray(_per_prompt(a, bb[s], gram)[0]) for s in range(self.s)], 1))
        self.groups.append(grp)
        self.p += b

    # ---------------------------------------------------------------------------------------- results
    def mean_gradient(self, source: int) -> np.ndarray:
        """ḡ(b) = (1/N) Σ_n α_n g_n over every sample so far [D]: the unbiased estimate of v̄ = (1/P) Σ_x E_π[b g]
        (the expected gradient of RLOO's loss)."""
        return self.group_u[:, source].sum(0) / max(self.p, 1)

    def _pooled(self, t, grp, i, j):
        """(total, jackknife SE) of the pooled rate between sources i (measure) and j (reward)."""
        p, n_g = self.p, self.n_groups
        gu_i, gu_j = self.group_u[:, i], self.group_u[:, j]
        su_i, su_j = gu_i.sum(0), gu_j.sum(0)
        own = self.own[:, i, j]
        t_grp = np.bincount(grp, weights=t, minlength=n_g)
        total = (t.sum() + su_i @ su_j - own.sum()) / p**2
        n_x = np.bincount(grp, minlength=n_g)
        live = n_x > 0
        if live.sum() < 2:
            return total, math.nan
        loo = []
        for g in np.flatnonzero(live):
            q = p - n_x[g]
            loo.append((t.sum() - t_grp[g] + (su_i - gu_i[g]) @ (su_j - gu_j[g]) - own.sum() + own[g]) / q**2)
        loo = np.asarray(loo)
        m = loo.size
        return total, math.sqrt((m - 1) / m * np.sum((loo - loo.mean()) ** 2))

    def _halves(self, grp):
        n = np.array([np.sum(grp % 2 == h) for h in (0, 1)]) * self.k                 # samples per half
        s1 = np.stack([self.group_u[h::2].sum(0) for h in (0, 1)]) * self.k            # Σ α g per half [2, S, D]
        return n, s1

    def rates(self, batch: int, eps: float = ADAM_EPS) -> dict:
        if self.p < 2:
            raise ValueError(f"the rates need at least 2 prompts; got {self.p}")
        grp = np.concatenate(self.groups)
        t_self = np.concatenate(self.t_self)
        t_g = np.concatenate(self.t_g) if self.t_g else None
        n, s1 = self._halves(grp)
        split = bool((n > 0).all())
        mean = s1 / np.maximum(n, 1)[:, None, None]
        var = self.sq / np.maximum(n, 1)[:, None, None] - mean**2
        nan = math.nan
        out = {}
        for s in range(self.s):
            ps, pse = self._pooled(t_self[:, s], grp, s, s)
            ws, wse = _mean_se(t_self[:, s])
            if t_g is not None:
                pg, pgse = self._pooled(t_g[:, s], grp, self.measure, s)
                wg, wgse = _mean_se(t_g[:, s])
            else:
                pg = pgse = wg = wgse = nan
            ad = sg = ads = sgs = nan
            if split:
                d = [adam_direction(mean[h, s], var[h, s], batch, eps) for h in (0, 1)]
                sd = [sign_direction(mean[h, s]) for h in (0, 1)]
                ads = 0.5 * (mean[0, s] @ d[1] + mean[1, s] @ d[0])
                sgs = 0.5 * (mean[0, s] @ sd[1] + mean[1, s] @ sd[0])
                if self.measure is not None:
                    m_ = self.measure
                    ad = 0.5 * (mean[0, m_] @ d[1] + mean[1, m_] @ d[0])
                    sg = 0.5 * (mean[0, m_] @ sd[1] + mean[1, m_] @ sd[0])
            out[s] = StreamedRates(*(float(v) for v in (pg, pgse, ps, pse, wg, wgse, ws, wse, ad, ads, sg, sgs)))
        return out


@functools.partial(jax.jit, static_argnums=(3, 4))
def _chunk_stats(alpha, g, grp, n_groups: int, with_gram: bool):
    """One chunk's sums (float32 products, memory-bound passes over g): per group Σ_x û_x [G, S, D], per half
    (group parity) Σ (α g)² [2, S, D], and (``with_gram``, else None) the Gram matrices [B, K, K]."""
    f32 = jnp.float32
    u = jnp.matmul(alpha.transpose(0, 2, 1), g, preferred_element_type=f32) / g.shape[1]
    gu = jax.ops.segment_sum(u, grp, n_groups)
    w = alpha * alpha
    sq = jnp.stack([jnp.einsum("bks,bkd->sd", w * (grp % 2 == h)[:, None, None], g * g, preferred_element_type=f32)
                    for h in (0, 1)])
    gram = jnp.einsum("bid,bjd->bij", g, g, preferred_element_type=f32) if with_gram else None
    return gu, sq, gram
