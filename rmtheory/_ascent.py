"""Discrete-time ascent on φ_RLHF with any optax optimizer: the practical counterpart of the flow.

θ_{k+1} = θ_k + update_k, where an optax optimizer built with step size η is fed −∇φ_RLHF(θ_k) (optax
minimises). Time is measured as t = η·k, so plain SGD is the forward-Euler discretisation of the gradient
flow (Eq. 4) and its t_γ converges to the flow's as η → 0. Gradients can be exact (Lemma 7 with the 1/|S|
factor) or sampled per prompt from the current policy (REINFORCE, or RLOO with a leave-one-out baseline),
as in practice; the theory makes no claim about these (docs/theory.md, "Setting").

The whole run is one ``lax.while_loop`` that stops at the first step where every prompt has reached its
target (or at ``max_steps``); it ``vmap``s over batches of instances.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from . import _checks
from ._instance import Instance
from ._objective import gradient, kl_reward, policy
from ._precision import require_x64

Array = jax.Array

ESTIMATORS = ("exact", "reinforce", "rloo")


class AscentResult(NamedTuple):
    """``t``: η·(first step k with E_{π_θk}[r] ≥ E_{π_θ0}[r] + γ), ``inf`` if not reached within
    ``max_steps``, shape [..., |S|]; ``steps``: the number of optimizer steps run."""

    t: Array
    steps: Array


def rloo_advantages(R: Array) -> Array:
    """Leave-one-out advantages A_i = R_i − mean_{j≠i} R_j over the last axis of R [..., k] (k ≥ 2; they sum
    to 0 along it). The one implementation, used by :func:`sampled_gradient` and the LM pipeline's RLOO."""
    k = R.shape[-1]
    return R - (jnp.sum(R, axis=-1, keepdims=True) - R) / (k - 1)


def sampled_gradient(inst: Instance, logits: Array, key, n_samples: int, estimator: str = "rloo") -> Array:
    """A stochastic estimate of ∇_θ φ_RLHF(θ) (1/|S| factor included) from ``n_samples`` outputs per prompt.

    ∇ ln π_θ(y|x) w.r.t. column x is e_y − π_θ(·|x). REINFORCE uses r^KL(x, y) as the weight; RLOO uses
    r^KL(x, y_i) − mean_{j≠i} r^KL(x, y_j) (unbiased; requires n_samples ≥ 2).
    """
    pi = policy(logits)
    rkl = kl_reward(inst, logits)
    ys = jax.random.categorical(key, logits[..., None, :], axis=-1,
                                shape=logits.shape[:-1] + (n_samples,))  # [..., S, n]
    w = jnp.take_along_axis(rkl, ys, axis=-1)
    if estimator == "rloo":
        w = rloo_advantages(w)
    onehot = jax.nn.one_hot(ys, logits.shape[-1], dtype=logits.dtype)  # [..., S, n, Y]
    score = onehot - pi[..., None, :]
    g = jnp.mean(w[..., None] * score, axis=-2)
    return g / logits.shape[-2]


def ascent_time_to_gamma(inst: Instance, gamma, measure: Array | None = None, *,
                         optimizer: Callable[[float], optax.GradientTransformation] = optax.sgd,
                         step_size: float = 0.1, max_steps: int = 100_000, estimator: str = "exact",
                         n_samples: int = 2, key=None) -> AscentResult:
    """Time-to-γ, t = η·k, of discrete ascent with ``optimizer(step_size)`` (e.g. ``optax.sgd``,
    ``optax.adam``) on a single instance [|S|, |Y|] (``vmap`` for batches).

    Args:
      estimator: "exact" (Lemma 7), "reinforce" or "rloo" sampled gradients (needs ``key``).
    """
    require_x64("rmtheory.ascent_time_to_gamma")
    measure = inst.reward if measure is None else jnp.asarray(measure, jnp.float64)
    _checks.same_shape(reward=inst.reward, measure=measure)
    _checks.in_range("measure", measure, -1.0, 1.0)
    _checks.positive("gamma", gamma)
    _checks.positive("step_size", step_size)
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}; got {estimator!r}")
    if estimator != "exact":
        if key is None:
            raise ValueError("key: a PRNG key is required for sampled gradients")
        if estimator == "rloo" and n_samples < 2:
            raise ValueError(f"n_samples must be >= 2 for RLOO; got {n_samples}")
    key = jax.random.PRNGKey(0) if key is None else key
    opt = optimizer(step_size)
    return _run(inst, jnp.asarray(gamma, jnp.float64), measure, opt, step_size, max_steps, estimator, n_samples,
                key)


def _run(inst, gamma, measure, opt, step_size, max_steps, estimator, n_samples, key):
    target = jnp.sum(policy(inst.logits) * measure, axis=-1) + gamma
    inf = jnp.full(target.shape, jnp.inf)

    def grad_fn(logits, k):
        if estimator == "exact":
            return gradient(inst, logits)
        return sampled_gradient(inst, logits, k, n_samples, estimator)

    def cond(c):
        _, _, hit, k, _ = c
        return (k < max_steps) & jnp.any(jnp.isinf(hit))

    def body(c):
        logits, state, hit, k, key = c
        key, sub = jax.random.split(key)
        updates, state = opt.update(-grad_fn(logits, sub), state, logits)
        logits = optax.apply_updates(logits, updates)
        k = k + 1
        reached = jnp.sum(policy(logits) * measure, axis=-1) >= target
        hit = jnp.where(jnp.isinf(hit) & reached, step_size * k, hit)
        return logits, state, hit, k, key

    init = (inst.logits, opt.init(inst.logits), inf, jnp.asarray(0), key)
    _, _, hit, k, _ = jax.lax.while_loop(cond, body, init)
    return AscentResult(hit, k)
