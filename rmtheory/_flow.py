"""Gradient flow (Eq. 4) and time-to-γ (docs/theory.md) for tabular and parametric policies.

Tabular flow: columns decouple, dθ_{x,:}/dt = (1/|S|) ∇_{θ_{x,:}} φ_RLHF(θ; x) (Lemma 7), so every
(instance, prompt) pair is an independent trajectory; they are flattened into one batch and solved by
:func:`rmtheory._solver.first_hitting_times` (refilled SIMD lanes over the flattened batch).

Unreachable targets are *proven* unreachable from monotone quantities of the flow, so ``inf`` is returned
as soon as the proof applies instead of after integrating to the horizon:

* always: a target ≥ max_y r(x, y) (E_π r < max r for every softmax policy);
* λ > 0: φ_RLHF(θ; x) = λ ln Z − λ KL(π_θ ‖ π*) with π* ∝ π_ref e^{r_RM/λ}, and φ is non-decreasing
  along the flow, so KL(π_θ(t) ‖ π*) never increases; by Pinsker every later policy has
  E_π r ≤ E_{π*} r + (max r − min r) √(KL/2). If that is below the target, t_γ = ∞;
* λ = 0: V_RM is non-decreasing, so the mass outside argmax r_RM stays ≤ (max r_RM − V_RM(t))/Δ (Δ the gap
  to the second-best value), which bounds every later E_π r.

A target that is never certified unreachable but not hit by ``t_max`` returns ``inf`` with status HORIZON
(with λ = 0 a finite t_γ can be astronomically large, docs/theory.md "Definitions"; report the horizon).
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from . import _checks, _sharding
from ._instance import Instance
from ._objective import _lemma7_parts
from ._precision import require_x64
from ._solver import OUT_OF_RANGE, UNREACHABLE, HitResult, first_hitting_time, first_hitting_times, integrate

Array = jax.Array


def _first_argmax(theta):
    """``jnp.argmax(theta, -1, keepdims=True)`` (the first maximal index) as a max and a min over the last axis:
    two plain reductions, cheaper on XLA's CPU backend than argmax's (value, index) one (the time-to-γ benchmark
    ran 1.6 % faster in an A/B run, with identical results)."""
    n = theta.shape[-1]
    top = jnp.max(theta, axis=-1, keepdims=True)
    return jnp.min(jnp.where(theta == top, jnp.arange(n), n), axis=-1, keepdims=True)


def _column_rhs(logref, reward, lam, n_prompts, with_kl: bool = True):
    """rhs_for(θ_start) -> rhs(θ) -> (dθ/dt, (π, ln π, E_π r^KL)) for one column: (1/|S|) π ⊙ (r^KL − E_π r^KL)
    (Lemma 7, Eq. 4), pivoted at argmax θ_start for all stages of a step (see :func:`lemma7_column`).

    ``with_kl=False`` is the λ = 0 specialisation (no log-ratio terms); the result is the same.
    """
    inv_n = 1.0 / n_prompts

    def rhs_for(theta_start):
        k = _first_argmax(theta_start)

        def rhs(theta):
            g, pi, logp, mean = _lemma7_parts(theta, reward, lam, logref if with_kl else None, pivot=k)
            return g * inv_n, (pi, logp, mean)

        return rhs

    return rhs_for


def _certificate_constants(logref, reward, lam, measure, target):
    """Per-column constants of the unreachability certificate (computed once per trajectory)."""
    m_max, m_min = jnp.max(measure), jnp.min(measure)
    # λ > 0: Pinsker around the fixed point π*.
    safe_lam = jnp.where(lam > 0, lam, 1.0)
    log_star = jax.nn.log_softmax(jnp.where(jnp.isfinite(logref), logref, -jnp.inf) + reward / safe_lam)
    v_star = jnp.sum(jnp.exp(log_star) * measure)
    # λ = 0: mass outside the argmax set A of r_RM.
    r_max = jnp.max(reward)
    in_a = reward == r_max
    second = jnp.max(jnp.where(in_a, -jnp.inf, reward))
    gap = r_max - second  # inf if every output is in A (then the flow is stationary)
    m_a = jnp.max(jnp.where(in_a, measure, -jnp.inf))
    m_rest = jnp.max(jnp.where(in_a, -jnp.inf, measure))
    return dict(trivially=target >= m_max, spread=m_max - m_min, log_star=log_star, v_star=v_star, r_max=r_max,
                gap=gap, m_a=m_a, excess=jnp.maximum(m_rest - m_a, 0.0))


def _column_certificate(c, reward, lam, target, with_kl: bool = True):
    """certify(θ) = True ⇒ E_{π_θ(t')}[measure] < target for every later t' (see module docstring)."""

    def certify(theta, aux):
        pi, logp, mean = aux
        value = jnp.sum(pi * reward) if with_kl else mean  # E_π r_RM (λ = 0: the right-hand side's own mean)
        mass_out = jnp.clip((c["r_max"] - value) / c["gap"], 0.0, 1.0)
        bound = c["m_a"] + mass_out * c["excess"]
        if with_kl:
            kl_star = jnp.maximum(jnp.sum(pi * (logp - c["log_star"])), 0.0)
            bound = jnp.where(lam > 0, c["v_star"] + c["spread"] * jnp.sqrt(kl_star / 2), bound)
        return c["trivially"] | (bound < target)

    return certify


def _column_problem(n_prompts, with_kl, timed_is_reward=False):
    """make(p) for :func:`first_hitting_times`: one column's (rhs_for, event, certify) from its parameters;
    the event and the certificate reuse what the right-hand side computed at the same point: the softmax, and
    when λ = 0 and the timed reward is r_RM itself, its mean E_π r (no extra pass over the outputs)."""
    own_mean = timed_is_reward and not with_kl

    def make(p):
        rhs_for = _column_rhs(p["logref"], p["reward"], p["lam"], n_prompts, with_kl)
        def event(th, aux):
            mean = aux[2] if own_mean else jnp.sum(aux[0] * p["measure"])
            return mean - p["target"]

        return rhs_for, event, _column_certificate(p["cert"], p["reward"], p["lam"], p["target"], with_kl)

    return make


def _out_of_range(theta0, reward, logref, lam, certify):
    """True where the float right-hand side at θ0 is exactly 0 (so the solver calls the start stationary) while
    the exact flow moves: an output with a finite logit whose probability underflowed to 0 has r^KL different
    from the pivot's, and the certificate does not prove the target unreachable on its own."""
    k = _first_argmax(theta0)
    g, pi, logp, mean = _lemma7_parts(theta0, reward, lam, logref, pivot=k)
    rkl = reward - lam * jnp.where(jnp.isfinite(logp - logref), logp - logref, 0.0)  # log space: no underflow
    moves = jnp.isfinite(theta0) & (pi == 0) & (rkl != jnp.take_along_axis(rkl, k, -1))
    certified = certify(theta0, (pi, logp, mean))
    return jnp.all(g == 0) & jnp.any(moves) & ~certified


@functools.partial(jax.jit, static_argnames=("lanes", "with_kl", "timed_is_reward"))
def _batched_columns(theta0, reward, logref, lam, n_prompts, measure, gamma, rtol, atol, t_max, max_steps, lanes,
                     with_kl=True, timed_is_reward=False):
    if timed_is_reward and not with_kl:  # the event's own formula for E_π r (pivoted, as the solver evaluates it)
        target = _lemma7_parts(theta0, reward, pivot=_first_argmax(theta0))[3] + gamma
    else:
        target = jnp.sum(jax.nn.softmax(theta0) * measure, -1) + gamma
    cert = jax.vmap(_certificate_constants)(logref, reward, lam, measure, target)
    params = dict(logref=logref, reward=reward, lam=lam, measure=measure, target=target, cert=cert)
    make = _column_problem(n_prompts, with_kl, timed_is_reward)
    # the event bracket only needs to be far below the integration error (~1e3·rtol relative on t_γ); a
    # narrower one costs iterations at the rounding floor of the event
    xtol = jnp.maximum(1e-13, 1e-3 * rtol)
    res = first_hitting_times(make, params, theta0, lanes=lanes, rtol=rtol, atol=atol, t_max=t_max,
                              max_steps=max_steps, xtol=xtol)
    oor = jax.vmap(lambda th, r, lr, la, p: _out_of_range(th, r, lr, la, make(p)[2]))(theta0, reward, logref, lam,
                                                                                      params)
    oor = oor & (res.status == UNREACHABLE) & (res.steps == 0)
    return res._replace(status=jnp.where(oor, OUT_OF_RANGE, res.status))


_GAMMA_ROUNDING = 64  # γ must exceed 64× the worst rounding error |Y|·eps·max|r| of E_π[r]


def _validate_gamma(gamma, measure=None):
    """γ finite and > 0; with ``measure`` ([..., |Y|], the timed reward) also above the float64 resolution of
    E_π[measure]: a target V0 + γ closer to V0 than the rounding error of the sum is not resolvable."""
    _checks.finite("gamma", gamma)
    if not _checks.is_concrete(gamma):
        return
    g = np.asarray(gamma, np.float64)
    if np.any(g <= 0):
        raise ValueError(f"gamma must be > 0; got {np.min(g):.6g}")
    if measure is not None and _checks.is_concrete(measure):
        m = np.asarray(measure, np.float64)
        limit = _GAMMA_ROUNDING * m.shape[-1] * np.finfo(np.float64).eps * np.max(np.abs(m), initial=0.0)
        if np.min(g) < limit:
            raise ValueError(f"gamma = {np.min(g):.3g} is below the float64 resolution of E_π[r]: gamma must be "
                             f">= {limit:.3g} (= {_GAMMA_ROUNDING}·|Y|·eps·max|r| with |Y| = {m.shape[-1]}); the "
                             f"target E_π0[r] + gamma cannot be told apart from E_π0[r]")


def time_to_gamma(inst: Instance, gamma, measure: Array | None = None, *, rtol: float = 1e-10,
                  atol: float = 1e-10, t_max: float = 1e15, max_steps: int = 20_000, lanes: int = 64,
                  cores: int | None = None) -> HitResult:
    """t_γ for every prompt of a tabular instance (or batch of instances) under the gradient flow (Eq. 4).

    t_γ(x) = inf{t ≥ 0 : E_{π_θ(t)(·|x)}[r(x, ·)] ≥ E_{π_θ(0)(·|x)}[r(x, ·)] + γ}, where the flow optimises
    ``inst.reward`` (r_RM, with the KL term) and ``measure`` is the reward r whose increase is timed
    (default r_RM; pass r_G to time the ground truth under a proxy). The flow includes the 1/|S| factor.

    Args:
      inst: an :class:`Instance`, possibly batched (leading axes).
      gamma: γ > 0, scalar or broadcastable to the batch × prompt shape [..., |S|].
      measure: the timed reward r, shape of ``inst.reward``, values in [-1, 1].
      rtol, atol: integrator tolerances (defaults give t_γ to ~1e-8 relative).
      t_max, max_steps: horizon and step budget; beyond them t_γ is ``inf`` with status HORIZON/MAX_STEPS.
      lanes: how many trajectories advance together in one queue (SIMD width); finished ones are replaced from
        the queue, so a batch with t_γ spanning 1 … 1e12 costs the sum of its step counts, not n × the largest.
      cores: on a CPU with one JAX device, the batch is dealt into one queue per core (default: every core this
        process may use, as long as each queue keeps ≥ 8 columns per lane), each run by its own thread; same
        per-column results as one queue. With several JAX devices, one queue per device instead.

    The event is checked at the end of every step. With ``measure`` = r_RM and λ = 0, E_π r is non-decreasing
    along the flow, so the first crossing is located to integrator accuracy; otherwise E_π r need not be
    monotone, and an excursion above the target that starts and ends within one step is not seen (tighten
    ``rtol`` to resolve short excursions).

    Returns:
      :class:`HitResult` with fields of shape [..., |S|]; ``t`` is ``inf`` when the target is unreachable.
      A start whose float64 right-hand side is exactly 0 only because probabilities underflowed (e.g. logits
      ±1e6; the exact flow moves) has status OUT_OF_RANGE, not UNREACHABLE: nothing is proven there.

    Raises:
      ValueError: γ ≤ 0, not finite, or below the float64 resolution of E_π[r] (64·|Y|·eps·max|r|).

    Examples:
      Two prompts, three outputs each, uniform start, no KL; the flatter reward takes longer:

      >>> import jax.numpy as jnp
      >>> import rmtheory as rt
      >>> rt.enable_x64()  # the theory computes in float64
      >>> inst = rt.make_instance(jnp.zeros((2, 3)), jnp.array([[1.0, 0.0, -1.0], [0.2, 0.0, -0.2]]), lam=0.0)
      >>> res = rt.time_to_gamma(inst, 0.1)
      >>> [round(float(t), 4) for t in res.t]
      [0.9023, 24.8962]
      >>> [rt.Status(int(s)).name for s in res.status]
      ['REACHED', 'REACHED']
    """
    require_x64("rmtheory.time_to_gamma")
    timed_is_reward = measure is None
    measure = inst.reward if measure is None else jnp.asarray(measure, jnp.float64)
    _checks.same_shape(reward=inst.reward, measure=measure)
    _checks.in_range("measure", measure, -1.0, 1.0)
    _validate_gamma(gamma, measure)
    if int(lanes) < 1:
        raise ValueError(f"lanes must be >= 1; got {lanes}")
    if cores is not None and int(cores) < 1:
        raise ValueError(f"cores must be >= 1 (or None for every core); got {cores}")
    batch = inst.logits.shape[:-1]
    theta0, reward, logref, lam, n_prompts = _flat_columns(inst)
    n = theta0.shape[0]
    columns = dict(theta0=theta0, reward=reward, logref=logref, lam=lam, measure=measure.reshape(theta0.shape),
                   gamma=jnp.broadcast_to(jnp.asarray(gamma, jnp.float64), batch).reshape(-1))
    shared = dict(n_prompts=n_prompts, rtol=rtol, atol=atol, t_max=t_max, max_steps=max_steps)
    static = dict(with_kl=not _checks.is_concrete(lam) or bool(np.any(np.asarray(lam) > 0)),
                  timed_is_reward=timed_is_reward)
    if _sharding.column_devices(n) > 1:  # several devices: one lane-refill queue per device
        res = _sharding.shard_columns(_batched_columns, columns, shared,
                                      dict(static, lanes=min(int(lanes), _sharding.per_device(n))))
    else:  # one device: on a CPU, one queue per core, each in its own thread
        blocks = 1
        if jax.default_backend() == "cpu" and _checks.is_concrete(theta0):
            blocks = _sharding.core_blocks(n, lanes, cores)
        res = _sharding.run_on_cores(_batched_columns, columns, shared,
                                     dict(static, lanes=min(int(lanes), -(-n // blocks))), blocks=blocks)
    return HitResult(*(jnp.reshape(a, batch) for a in res))


def _flat_columns(inst: Instance):
    batch = inst.logits.shape[:-1]
    n_out = inst.logits.shape[-1]
    logits, reward, ref_logits = (jnp.reshape(a, (-1, n_out)) for a in (inst.logits, inst.reward, inst.ref_logits))
    lam = jnp.broadcast_to(jnp.asarray(inst.lam, jnp.float64)[..., None], batch).reshape(-1)
    return logits, reward, ref_logits, lam, float(inst.logits.shape[-2])


def flow_trajectory(inst: Instance, ts, *, rtol: float = 1e-10, atol: float = 1e-10) -> Array:
    """θ(t) of the tabular gradient flow (Eq. 4) from θ(0) = ``inst.logits`` at every time of the
    non-decreasing grid ``ts`` [T] (``ts[0]`` may be 0); shape [T, ..., |S|, |Y|]."""
    require_x64("rmtheory.flow_trajectory")
    ts = jnp.asarray(ts, jnp.float64)
    _checks.finite("ts", ts)
    if _checks.is_concrete(ts) and (np.any(np.diff(np.asarray(ts)) < 0) or np.any(np.asarray(ts) < 0)):
        raise ValueError("ts must be non-negative and non-decreasing")
    theta0, reward, logref, lam, n_prompts = _flat_columns(inst)
    out = _trajectory_columns(theta0, reward, logref, lam, n_prompts, jnp.diff(ts, prepend=0.0), rtol, atol)
    return out.reshape((ts.shape[0],) + inst.logits.shape)


def flow_logits(inst: Instance, t, *, rtol: float = 1e-10, atol: float = 1e-10) -> Array:
    """θ(t) of the tabular gradient flow at a single time t ≥ 0."""
    require_x64("rmtheory.flow_logits")
    return flow_trajectory(inst, jnp.reshape(jnp.asarray(t, jnp.float64), (1,)), rtol=rtol, atol=atol)[0]


@jax.jit
def _trajectory_columns(theta0, reward, logref, lam, n_prompts, dts, rtol, atol):
    def advance(theta, dt):
        def one(th, r, lr, la):
            return integrate(lambda y: _column_rhs(lr, r, la, n_prompts)(y)(y)[0], th, dt, rtol=rtol, atol=atol)

        nxt = jax.vmap(one)(theta, reward, logref, lam)
        return nxt, nxt

    return jax.lax.scan(advance, theta0, dts)[1]


# ---------------------------------------------------------------------------------------------------
# General (parametric) autoregressive policies: Theorem 1/4 setting.
# ---------------------------------------------------------------------------------------------------

def parametric_prompt_objective(log_policy_fn: Callable, params, reward: Array, lam,
                                ref_log_probs: Array) -> Array:
    """φ_RLHF(θ; x) = E_{π_θ(·|x)}[r_RM(x, ·)] − λ KL(π_θ(·|x) ‖ π_ref(·|x)) for every prompt x, shape [|X|], for a
    policy given by its log-probabilities ``log_policy_fn(params) -> [|X|, |Y|]`` (λ = 0: the value V(θ; x))."""
    logp = log_policy_fn(params)
    pi = jnp.exp(logp)
    return jnp.sum(pi * reward, -1) - lam * jnp.sum(pi * (logp - ref_log_probs), -1)


def parametric_objective(log_policy_fn: Callable, params, reward: Array, lam, ref_log_probs: Array,
                         train_mask: Array) -> Array:
    """φ_RLHF(θ) = E_{x∼S}[E_{π_θ}[r_RM] − λ KL(π_θ ‖ π_ref)] for a policy given by its log-probabilities
    ``log_policy_fn(params) -> [|X|, |Y|]``; ``train_mask`` [|X|] marks the prompts in S."""
    per = parametric_prompt_objective(log_policy_fn, params, reward, lam, ref_log_probs)
    w = train_mask / jnp.sum(train_mask)
    return jnp.sum(w * per)


def parametric_time_to_gamma(log_policy_fn: Callable, params0, reward: Array, gamma, *, prompt: int,
                             measure: Array | None = None, lam=0.0, train_mask: Array | None = None,
                             rtol: float = 1e-9, atol: float = 1e-9, t_max: float = 1e12,
                             max_steps: int = 50_000) -> HitResult:
    """t_γ at prompt ``prompt`` (any prompt, even outside S) for the gradient flow dθ/dt = ∇φ_RLHF(θ)
    of a general differentiable policy (Eq. 2 / Eq. 4), exact gradients by autodiff.

    ``reward`` (r_RM) and ``measure`` (r) have shape [|X|, |Y|]; π_ref is the initial policy. A target
    above max_y r or a stationary start returns ``inf`` at once; otherwise ``t_max`` bounds the search.
    """
    require_x64("rmtheory.parametric_time_to_gamma")
    reward = jnp.asarray(reward, jnp.float64)
    measure = reward if measure is None else jnp.asarray(measure, jnp.float64)
    _checks.in_range("reward", reward, -1.0, 1.0)
    _checks.in_range("measure", measure, -1.0, 1.0)
    _checks.same_shape(reward=reward, measure=measure)
    _checks.nonnegative("lam", lam)
    _validate_gamma(gamma, measure[prompt])
    train_mask = jnp.ones(reward.shape[0]) if train_mask is None else jnp.asarray(train_mask, jnp.float64)
    flat0, unravel = ravel_pytree(params0)
    ref = jax.lax.stop_gradient(log_policy_fn(params0))
    return _parametric_hit(log_policy_fn, unravel, flat0, reward, measure, jnp.asarray(lam, jnp.float64), ref,
                           train_mask, jnp.asarray(gamma, jnp.float64), prompt, rtol, atol, t_max, max_steps)


def _parametric_rhs(log_policy_fn, unravel, reward, lam, ref, train_mask):
    """The parametric flow's right-hand side θ ↦ ∇φ_RLHF(θ) on flattened parameters (π_ref given as ``ref``)."""
    return jax.grad(lambda flat: parametric_objective(log_policy_fn, unravel(flat), reward, lam, ref, train_mask))


def _parametric_value(log_policy_fn, unravel, measure, prompt):
    """θ ↦ E_{π_θ(·|x)}[r(x, ·)] at prompt x = ``prompt`` for the timed reward r = ``measure``."""
    return lambda flat: jnp.sum(jnp.exp(log_policy_fn(unravel(flat))[prompt]) * measure[prompt])


def _parametric_weighted_value(log_policy_fn, unravel, measure, weights):
    """θ ↦ Σ_x w_x E_{π_θ(·|x)}[r(x, ·)] / Σ_x w_x, the ``weights``-average over prompts of the timed reward's
    value (``weights`` [|X|], ≥ 0, positive sum); and its certified bound Σ_x w_x max_y r(x, y) / Σ_x w_x."""
    w = weights / jnp.sum(weights)

    def value(flat):
        return jnp.sum(w * jnp.sum(jnp.exp(log_policy_fn(unravel(flat))) * measure, -1))

    return value, jnp.sum(w * jnp.max(measure, -1))


def _parametric_first_hit(log_policy_fn, unravel, flat0, reward, measure, lam, ref, train_mask, target, prompt,
                          rtol, atol, t_max, max_steps, weights=None) -> HitResult:
    """First time E_{π_θ(t)}[r(x, ·)] ≥ ``target`` along the parametric flow from ``flat0`` (traceable: used under
    ``jit`` here and under ``jit(vmap)`` by :func:`rmtheory._neural.time_to_gamma`); a target ≥ max r(x, ·) is
    certified unreachable at once. With ``weights`` [|X|] (``prompt`` ignored) the timed value is the weighted
    average over prompts of :func:`_parametric_weighted_value`, unreachable at once above its bound."""
    grad = _parametric_rhs(log_policy_fn, unravel, reward, lam, ref, train_mask)
    if weights is None:
        v = _parametric_value(log_policy_fn, unravel, measure, prompt)
        unreachable = target >= jnp.max(measure[prompt])
    else:
        v, top = _parametric_weighted_value(log_policy_fn, unravel, measure, weights)
        unreachable = target >= top
    return first_hitting_time(grad, flat0, lambda y: v(y) - target, lambda flat: unreachable, rtol=rtol, atol=atol,
                              t_max=t_max, max_steps=max_steps)


def _parametric_hit(log_policy_fn, unravel, flat0, reward, measure, lam, ref, train_mask, gamma, prompt, rtol,
                    atol, t_max, max_steps):
    target = _parametric_value(log_policy_fn, unravel, measure, prompt)(flat0) + gamma
    run = jax.jit(lambda y0: _parametric_first_hit(log_policy_fn, unravel, y0, reward, measure, lam, ref, train_mask,
                                                   target, prompt, rtol, atol, t_max, max_steps))
    return run(flat0)


def parametric_flow(log_policy_fn: Callable, params0, reward: Array, ts, *, lam=0.0,
                    train_mask: Array | None = None, rtol: float = 1e-9, atol: float = 1e-9):
    """Parameters θ(t) of the gradient flow of a general policy at the increasing times ``ts``
    (list of pytrees), π_ref = the initial policy."""
    reward = jnp.asarray(reward, jnp.float64)
    train_mask = jnp.ones(reward.shape[0]) if train_mask is None else jnp.asarray(train_mask, jnp.float64)
    flat, unravel = ravel_pytree(params0)
    ref = jax.lax.stop_gradient(log_policy_fn(params0))
    grad = _parametric_rhs(log_policy_fn, unravel, reward, lam, ref, train_mask)
    seg = jax.jit(lambda y, dt: integrate(grad, y, dt, rtol=rtol, atol=atol))
    out, t_prev = [], 0.0
    for t in np.asarray(ts, np.float64):
        if t > t_prev:
            flat = seg(flat, t - t_prev)
        out.append(unravel(flat))
        t_prev = max(t_prev, t)
    return out
