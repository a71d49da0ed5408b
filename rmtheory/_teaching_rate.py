"""The teaching rate: the exact first-order speed at which the gradient flow on r_RM moves a timed reward.

Under the flow dθ/dt = ∇_θ φ_RLHF(θ) (Eq. 4; the flow that :func:`rmtheory.time_to_gamma` integrates) the value
V_G(θ; x) = E_{π_θ(·|x)}[r_G(x, ·)] of any timed reward r_G (``measure``) changes at the rate

    dV_G(θ; x)/dt = ⟨∇_θ V_G(θ; x), ∇_θ φ_RLHF(θ)⟩,

and the prompt average V̄_G = E_{x∼S} V_G(θ; x) at ⟨∇_θ V̄_G, ∇_θ φ_RLHF⟩ (the report card's rate_G). For a tabular
softmax policy the columns decouple (Lemma 7) and, with a_x = π ⊙ (r_G − E_π r_G) = ∇_{θ_x} V_G(θ; x) and
b_x = π ⊙ (r^KL − E_π r^KL) = ∇_{θ_x} φ_RLHF(θ; x),

    dV_G(θ; x)/dt = (1/|S|) ⟨a_x, b_x⟩ = (1/|S|) Σ_y π_y² (r_G(y) − E_π r_G)(r^KL(y) − E_π r^KL),

with r^KL = r_RM − λ ln(π/π_ref) (Section 1.3); both centrings are needed (the weights π_y² do not sum to a
constant). In kernel form, E_{y,y'∼π}[(r_G(y) − E r_G)(r^KL(y') − E r^KL) K(y, y')] with
K(y, y') = ∇ log π(y) · ∇ log π(y'), which is E_π[r_G ∇ log π] · E_π[r^KL ∇ log π] because E_π[∇ log π] = 0.

Bounds (Cauchy–Schwarz, then Σ π_y² d_y² ≤ max_y π_y · Σ π_y d_y²):

    |rate_G| ≤ √(rate_self,G · rate_self)        (:func:`rate_cauchy_schwarz_bound`),
    rate_self(x) ≤ max_y π_y · Var_π[r^KL] / |S|     (:func:`self_rate_variance_bound`; sharper than Lemma 8),
    |rate_G(x)| ≤ max_y π_y · √(Var_π[r_G] Var_π[r^KL]) / |S|   (:func:`teaching_rate_variance_bound`).

Derivations: ``docs/teaching_rate.md``.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from . import _checks
from ._flow import _parametric_rhs, parametric_prompt_objective
from ._instance import Instance
from ._objective import lemma7_column, prompt_gradient
from ._precision import require_x64

Array = jax.Array


class TeachingRate(NamedTuple):
    """A first-order speed at t = 0 (a pytree; batch axes lead).

    ``per_prompt`` [..., |S|] (tabular) or [|X|] (parametric): dV(θ; x)/dt of the per-prompt value that
    :func:`rmtheory.time_to_gamma` (``parametric_time_to_gamma(prompt=x)``) times, so t_γ(x) ≈ γ / per_prompt[x]
    for small γ. ``total`` [...]: d/dt of the prompt average over S, = ⟨∇_θ V̄, ∇_θ φ_RLHF⟩ = the (S-weighted)
    mean of ``per_prompt``."""

    per_prompt: Array
    total: Array


# --------------------------------------------------------------------------------------------------
# Tabular softmax policies
# --------------------------------------------------------------------------------------------------

def _check_tabular(what: str, inst: Instance, measure=None):
    require_x64(what)
    _checks.ndim_at_least("inst.logits", inst.logits, 2)
    _checks.same_shape(logits=inst.logits, reward=inst.reward, ref_logits=inst.ref_logits)
    _checks.finite("inst.logits", inst.logits)
    _checks.finite("inst.reward", inst.reward)
    _checks.nonnegative("inst.lam", inst.lam)
    if measure is not None:
        _checks.same_shape(reward=inst.reward, measure=measure)
        _checks.finite("measure", measure)


def _per_prompt(inner: Array, n_prompts: int) -> TeachingRate:
    per = inner / n_prompts
    return TeachingRate(per, jnp.mean(per, axis=-1))


def teaching_rate(inst: Instance, measure) -> TeachingRate:
    """rate_G: dV_G/dt at t = 0 along the tabular flow of ``inst`` (Eq. 4, with its 1/|S| and the KL term).

    per_prompt[x] = (1/|S|) Σ_y π_y² (r_G(x, y) − E_π r_G)(r^KL(x, y) − E_π r^KL), the derivative at t = 0 of
    E_{π_θ(t)(·|x)}[measure(x, ·)], the quantity ``time_to_gamma(inst, γ, measure)`` times at prompt x; total =
    mean over x = ⟨∇_θ V̄_G, ∇_θ φ_RLHF⟩ with V̄_G = E_{x∼S} V_G(θ; x). |S|·per_prompt is the |S|-free inner
    product of the two Lemma 7 gradients. ``measure`` (r_G): shape of ``inst.reward``; any finite values (the
    rate is linear in it). Traceable (checks are skipped on tracers); batch axes lead. See
    ``docs/teaching_rate.md``.

    >>> import jax.numpy as jnp, rmtheory as rt
    >>> rt.enable_x64()
    >>> inst = rt.make_instance(jnp.zeros((1, 2)), jnp.array([[1.0, -1.0]]))
    >>> float(rt.teaching_rate(inst, jnp.array([[1.0, 0.0]])).total)  # 2 · (1/2)² · (1/2) · 1
    0.25
    """
    _check_tabular("rmtheory.teaching_rate", inst, measure)
    measure = jnp.asarray(measure, jnp.float64)
    grad_g = lemma7_column(inst.logits, measure)[0]  # ∇_{θ_x} V_G(θ; x): Lemma 7 with r = r_G, λ = 0
    return _per_prompt(jnp.sum(grad_g * prompt_gradient(inst), axis=-1), inst.logits.shape[-2])


def self_rate(inst: Instance) -> TeachingRate:
    """rate_self = ‖∇_θ φ_RLHF‖² = dφ_RLHF/dt at t = 0 (the proxy's own rate; dV_RM/dt when λ = 0).

    per_prompt[x] = (1/|S|) Σ_y π_y² (r^KL(x, y) − E_π r^KL)² = dφ_RLHF(θ; x)/dt; total = its mean over x. With
    λ > 0 and π_ref ≠ π_θ it differs from ``teaching_rate(inst, inst.reward)`` (= dV_RM/dt). See
    ``docs/teaching_rate.md``.
    """
    _check_tabular("rmtheory.self_rate", inst)
    g = prompt_gradient(inst)
    return _per_prompt(jnp.sum(g * g, axis=-1), inst.logits.shape[-2])


# --------------------------------------------------------------------------------------------------
# Parametric policies (autoregressive tabular, MLP, any log-probability function)
# --------------------------------------------------------------------------------------------------

def _parametric_rates(log_policy_fn, params, reward, measure, lam, ref_log_probs, train_mask, self_only: bool):
    flat, unravel = ravel_pytree(params)
    ref = jax.lax.stop_gradient(log_policy_fn(params)) if ref_log_probs is None else ref_log_probs
    mask = jnp.ones(reward.shape[-2]) if train_mask is None else jnp.asarray(train_mask, jnp.float64)
    grad_phi = _parametric_rhs(log_policy_fn, unravel, reward, lam, ref, mask)(flat)  # the flow's velocity
    # self_only: d/dt φ_RLHF(θ; x); else d/dt V_G(θ; x), the per-prompt objective of r_G with λ = 0
    timed, timed_lam = (reward, lam) if self_only else (measure, 0.0)

    def per_x(f):
        return parametric_prompt_objective(log_policy_fn, unravel(f), timed, timed_lam, ref)

    per = jax.jvp(per_x, (flat,), (grad_phi,))[1]
    return TeachingRate(per, jnp.sum(per * mask) / jnp.sum(mask))


def _check_parametric(what, reward, measure, lam, train_mask):
    require_x64(what)
    _checks.ndim_at_least("reward", reward, 2)
    _checks.finite("reward", reward)
    _checks.nonnegative("lam", lam)
    if measure is not None:
        _checks.same_shape(reward=reward, measure=measure)
        _checks.finite("measure", measure)
    if train_mask is not None:
        _checks.nonnegative("train_mask", train_mask)
        if _checks.is_concrete(train_mask) and float(np.sum(np.asarray(train_mask))) <= 0:   # no tracer under jit
            raise ValueError("train_mask must mark at least one prompt of S")


def parametric_teaching_rate(log_policy_fn: Callable, params, reward, measure, *, lam=0.0, ref_log_probs=None,
                             train_mask=None) -> TeachingRate:
    """rate_G for a policy given by its log-probabilities ``log_policy_fn(params) -> [|X|, |Y|]`` (the flow of
    :func:`rmtheory.parametric_time_to_gamma`: dθ/dt = ∇_θ φ_RLHF by autodiff of ``parametric_objective``).

    per_prompt[x] = ⟨∇_θ V_G(θ; x), ∇_θ φ_RLHF(θ)⟩ for every x ∈ X (inside S or not; a directional derivative
    along the flow, by ``jax.jvp``): the rate of what ``parametric_time_to_gamma(prompt=x, measure=...)`` times.
    With shared parameters ∇φ_RLHF mixes every prompt of S, so per_prompt[x] is *not* a contribution of x's own
    reward (no clean split exists); it is the speed *at* x. total = Σ_x w_x per_prompt[x] (w = train_mask / its
    sum) = ⟨∇_θ V̄_G, ∇_θ φ_RLHF⟩. ``reward``, ``measure``: [|X|, |Y|]; π_ref = the policy at ``params`` unless
    ``ref_log_probs`` is given (then the KL term of r^KL enters at t = 0).
    """
    reward = jnp.asarray(reward, jnp.float64)
    measure = jnp.asarray(measure, jnp.float64)
    _check_parametric("rmtheory.parametric_teaching_rate", reward, measure, lam, train_mask)
    return _parametric_rates(log_policy_fn, params, reward, measure, jnp.asarray(lam, jnp.float64), ref_log_probs,
                             train_mask, False)


def parametric_self_rate(log_policy_fn: Callable, params, reward, *, lam=0.0, ref_log_probs=None,
                         train_mask=None) -> TeachingRate:
    """rate_self = ‖∇_θ φ_RLHF‖² (total) for a policy given by log-probabilities; per_prompt[x] =
    ⟨∇_θ φ_RLHF(θ; x), ∇_θ φ_RLHF(θ)⟩ = dφ_RLHF(θ; x)/dt (same conventions as :func:`parametric_teaching_rate`)."""
    reward = jnp.asarray(reward, jnp.float64)
    _check_parametric("rmtheory.parametric_self_rate", reward, None, lam, train_mask)
    return _parametric_rates(log_policy_fn, params, reward, None, jnp.asarray(lam, jnp.float64), ref_log_probs,
                             train_mask, True)


@functools.lru_cache(maxsize=None)
def _neural_fn(policy, self_only: bool):
    def one(params, reward, measure, lam, train_mask):
        return _parametric_rates(policy.log_probs, params, reward, measure, lam, None, train_mask, self_only)

    return jax.jit(jax.vmap(one, in_axes=(0, 0, 0, 0, None)))


def neural_teaching_rate(policy, params_batch, reward, measure=None, *, lam=0.0, train_mask=None) -> TeachingRate:
    """:func:`parametric_teaching_rate` for a batch of B parameter sets of a ``_neural`` policy (``TabularAR``,
    ``MLP``), as :func:`rmtheory.neural_time_to_gamma` takes them: ``reward``/``measure`` [B, |X|, |Y|], ``lam``
    scalar or [B], π_ref = the initial policy. ``measure=None`` returns the self rate (:func:`parametric_self_rate`).
    Fields of shape [B, |X|] and [B]."""
    require_x64("rmtheory.neural_teaching_rate")
    reward = jnp.asarray(reward, jnp.float64)
    meas = reward if measure is None else jnp.asarray(measure, jnp.float64)
    _check_parametric("rmtheory.neural_teaching_rate", reward, meas, lam, train_mask)
    lam = jnp.broadcast_to(jnp.asarray(lam, jnp.float64), reward.shape[:1])
    mask = jnp.ones(reward.shape[-2]) if train_mask is None else jnp.asarray(train_mask, jnp.float64)
    return _neural_fn(policy, measure is None)(params_batch, reward, meas, lam, mask)


# --------------------------------------------------------------------------------------------------
# Bounds (pure, elementwise)
# --------------------------------------------------------------------------------------------------

def rate_cauchy_schwarz_bound(self_rate_g, self_rate_rm):
    """|rate_G| ≤ √(rate_self,G · rate_self) = ‖∇_θ V_G‖ · ‖∇_θ φ_RLHF‖ (Cauchy–Schwarz; any parametrisation).

    ``self_rate_g`` = ‖∇_θ V_G‖², the self rate of r_G with λ = 0 (tabular: ``self_rate`` of the instance with
    reward r_G and λ = 0); per prompt in the tabular case (both carry 1/|S|) or for the totals."""
    _checks.nonnegative("self_rate_g", self_rate_g)
    _checks.nonnegative("self_rate_rm", self_rate_rm)
    return jnp.sqrt(jnp.asarray(self_rate_g, jnp.float64) * jnp.asarray(self_rate_rm, jnp.float64))


def self_rate_variance_bound(max_prob, variance, n_prompts=1):
    """Tabular: rate_self(x) = (1/|S|) Σ_y π_y² (r^KL_y − E_π r^KL)² ≤ max_y π_y · Var_π[r^KL] / |S|.

    Sharper than Lemma 8 (‖∇_{θ_x}φ‖₂² ≤ ‖∇_{θ_x}φ‖₁² ≤ Var), since max_y π_y ≤ 1; equality for two equiprobable
    outputs. ``variance`` is Var_π[r^KL] (= Var_π[r_RM] when λ = 0 or π = π_ref)."""
    _checks.in_range("max_prob", max_prob, 0.0, 1.0)
    _checks.nonnegative("variance", variance)
    _checks.positive("n_prompts", n_prompts)
    return jnp.asarray(max_prob, jnp.float64) * jnp.asarray(variance, jnp.float64) / n_prompts


def teaching_rate_variance_bound(max_prob, variance_g, variance_kl, n_prompts=1):
    """Tabular: |rate_G(x)| ≤ max_y π_y · √(Var_π[r_G] · Var_π[r^KL]) / |S| (Cauchy–Schwarz, then the bound of
    :func:`self_rate_variance_bound` on each factor)."""
    _checks.in_range("max_prob", max_prob, 0.0, 1.0)
    _checks.nonnegative("variance_g", variance_g)
    _checks.nonnegative("variance_kl", variance_kl)
    _checks.positive("n_prompts", n_prompts)
    v = jnp.asarray(variance_g, jnp.float64) * jnp.asarray(variance_kl, jnp.float64)
    return jnp.asarray(max_prob, jnp.float64) * jnp.sqrt(v) / n_prompts
