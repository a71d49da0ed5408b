"""The KL-regularised RLHF objective (Eq. 1) and its exact tabular gradient (Lemma 7).

All functions take an :class:`~rmtheory.Instance` and optional current logits θ (default θ(0)); they
act on the last two axes ([|S|, |Y|]) and broadcast over leading batch axes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ._instance import Instance

Array = jax.Array


def log_policy(logits: Array) -> Array:
    """ln π_θ(y|x) = θ_{x,y} − logsumexp_y' θ_{x,y'} (Eq. 3); stable for logits of any magnitude."""
    return jax.nn.log_softmax(logits, axis=-1)


def policy(logits: Array) -> Array:
    """π_θ(·|x) = softmax(θ_{x,:}) (Eq. 3)."""
    return jax.nn.softmax(logits, axis=-1)


def _lam(inst: Instance) -> Array:
    return jnp.asarray(inst.lam)[..., None, None]


def _finite_log_ratio(logp: Array, ref_log: Array) -> Array:
    """ln π/π_ref from log-probabilities, with 0 where it is not finite (π = 0 or π_ref = 0; those outputs
    contribute nothing to the KL term, and π_ref = 0 only matters when λ = 0)."""
    lr = logp - ref_log
    return jnp.where(jnp.isfinite(lr), lr, 0.0)


def _log_ratio(inst: Instance, logits: Array) -> Array:
    """ln π_θ/π_ref for an instance (see :func:`_finite_log_ratio`)."""
    return _finite_log_ratio(log_policy(logits), log_policy(inst.ref_logits))


def value(logits: Array, reward: Array) -> Array:
    """V(θ; x) = E_{y∼π_θ(·|x)}[r(x, y)], shape [..., |S|]."""
    return jnp.sum(policy(logits) * reward, axis=-1)


def kl(inst: Instance, logits: Array | None = None) -> Array:
    """KL(π_θ(·|x) ‖ π_ref(·|x)) per prompt, shape [..., |S|]."""
    logits = inst.logits if logits is None else logits
    return jnp.sum(policy(logits) * _log_ratio(inst, logits), axis=-1)


def kl_reward(inst: Instance, logits: Array | None = None) -> Array:
    """r^KL_RM(x, y; θ) = r_RM(x, y) − λ ln(π_θ(y|x)/π_ref(y|x)) (docs/theory.md, "Setting")."""
    logits = inst.logits if logits is None else logits
    return inst.reward - _lam(inst) * _log_ratio(inst, logits)


def prompt_objective(inst: Instance, logits: Array | None = None) -> Array:
    """φ_RLHF(θ; x) = V_RM(θ; x) − λ KL(π_θ(·|x) ‖ π_ref(·|x)), shape [..., |S|]."""
    logits = inst.logits if logits is None else logits
    return value(logits, inst.reward) - jnp.asarray(inst.lam)[..., None] * kl(inst, logits)


def objective(inst: Instance, logits: Array | None = None) -> Array:
    """φ_RLHF(θ) = E_{x∼S}[V_RM(θ; x) − λ KL(π_θ(·|x) ‖ π_ref(·|x))] (Eq. 1), x uniform over S."""
    return jnp.mean(prompt_objective(inst, logits), axis=-1)


def lemma7_column(theta: Array, reward: Array, lam=0.0, ref_log: Array | None = None, pivot: Array | None = None):
    """Lemma 7 along the last axis: (π ⊙ (r^KL − E_π r^KL), π, ln π) for logits θ, with
    r^KL = r − λ ln(π/π_ref) (``ref_log`` = ln π_ref; None means λ = 0 and skips the log-ratio).

    Evaluated around a pivot output k: r^KL_y − E_π r^KL = d_y − Σ_y' π(y') d_y' with d = r^KL − r^KL_k.
    Algebraically identical to the naive form for every k, but with k = argmax θ it has no cancellation when
    π is nearly one-hot (then Σ π d is tiny and exact to full relative precision), which keeps the flow's
    right-hand side accurate and the adaptive solver's steps large on plateaus. ``pivot`` (integer indices
    broadcastable to θ.shape[:-1] + (1,)) fixes k; default argmax θ. The flow solver passes the argmax at the
    start of each step and keeps it for the step's stages (as accurate, and it saves an argmax per
    evaluation). One exponential per entry (shifted by max θ); the two sums share one pass. This is the single
    implementation used by :func:`prompt_gradient` and by the flow solver.
    """
    return _lemma7_parts(theta, reward, lam, ref_log, pivot)[:3]


def _lemma7_parts(theta, reward, lam=0.0, ref_log=None, pivot=None):
    """:func:`lemma7_column`'s (g, π, ln π) and E_π r^KL (shape θ.shape[:-1]), the latter as r^KL_k + Σ π d:
    the flow's value E_π r at no extra pass when λ = 0. The normaliser enters as one reciprocal per row
    (1/Z), so no entry is divided."""
    if ref_log is None:
        theta, reward = jnp.broadcast_arrays(theta, reward)
    else:
        theta, reward, ref_log = jnp.broadcast_arrays(theta, reward, ref_log)
    k = jnp.argmax(theta, axis=-1, keepdims=True) if pivot is None else jnp.asarray(pivot)
    shifted = theta - jax.lax.stop_gradient(jnp.max(theta, axis=-1, keepdims=True))
    e = jnp.exp(shifted)
    z = jnp.sum(e, axis=-1, keepdims=True)
    inv_z = 1.0 / z
    pi = e * inv_z
    logp = shifted - jnp.log(z)
    if ref_log is None:
        rkl = reward
    else:
        rkl = reward - lam * _finite_log_ratio(logp, ref_log)
    rkl_k = jnp.take_along_axis(rkl, jnp.broadcast_to(k, rkl.shape[:-1] + (1,)), axis=-1)
    d = rkl - rkl_k
    centre = jnp.sum(e * d, axis=-1, keepdims=True) * inv_z  # Σ π d
    return pi * (d - centre), pi, logp, (rkl_k + centre)[..., 0]


def prompt_gradient(inst: Instance, logits: Array | None = None) -> Array:
    """Lemma 7: ∇_{θ_{:,x}} φ_RLHF(θ; x) = π_θ(·|x) ⊙ (r^KL(x, ·) − E_{π_θ}[r^KL(x, ·)] 1).

    Row x of the result is the gradient of the *per-prompt* objective with respect to its own column;
    the gradient with respect to every other column is zero.
    """
    logits = inst.logits if logits is None else logits
    return lemma7_column(logits, inst.reward, _lam(inst), log_policy(inst.ref_logits))[0]


def gradient(inst: Instance, logits: Array | None = None) -> Array:
    """∇_θ φ_RLHF(θ) = (1/|S|) · Lemma 7 per column: the right-hand side of the gradient flow (Eq. 4)."""
    g = prompt_gradient(inst, logits)
    return g / g.shape[-2]


def policy_velocity(inst: Instance, logits: Array | None = None) -> Array:
    """Lemma 9: dπ(y|x)/dt along the tabular flow, written in π (an independent form of Eq. 4).

    dπ(y)/dt = (1/|S|)(π(y)²[r(y) − V] − π(y) Σ_y' π(y')²[r(y') − V])
             − (λ/|S|)(π(y)²[ln(π(y)/π_0(y)) − KL] − π(y) Σ_y' π(y')²[ln(π(y')/π_0(y')) − KL]).
    """
    logits = inst.logits if logits is None else logits
    pi = policy(logits)
    n_prompts = logits.shape[-2]
    r = inst.reward
    v = jnp.sum(pi * r, axis=-1, keepdims=True)
    lr = _log_ratio(inst, logits)
    k = jnp.sum(pi * lr, axis=-1, keepdims=True)
    a = pi**2 * (r - v)
    b = pi**2 * (lr - k)
    term_r = a - pi * jnp.sum(a, axis=-1, keepdims=True)
    term_kl = b - pi * jnp.sum(b, axis=-1, keepdims=True)
    return (term_r - _lam(inst) * term_kl) / n_prompts


def optimal_policy(inst: Instance) -> Array:
    """The fixed point of the KL-regularised flow, π*(y|x) ∝ π_ref(y|x) exp(r_RM(x, y)/λ) (λ > 0)."""
    return jax.nn.softmax(log_policy(inst.ref_logits) + inst.reward / _lam(inst), axis=-1)
