"""The one core data type: a tabular RLHF instance.

An :class:`Instance` holds everything the theory's gradient flow (Eq. 4) depends on for a tabular
softmax policy over a finite prompt set S and output set Y:

* ``logits``     θ(0), shape [|S|, |Y|]; π_θ(y|x) = softmax(θ_{x,:})_y (Eq. 3, stored prompt-major);
* ``reward``     the optimised reward r_RM, shape [|S|, |Y|], values in [-1, 1];
* ``ref_logits`` the KL reference policy π_ref as logits (the paper sets π_ref = π_θ(0));
* ``lam``        the KL coefficient λ ≥ 0 (scalar).

It is a NamedTuple, hence a JAX pytree: a batch of instances is an Instance whose leaves carry a
leading batch axis (``lam`` of shape [B]), and every function in the library can be ``vmap``-ed over it.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks
from ._precision import require_x64

Array = jax.Array


class Instance(NamedTuple):
    logits: Array
    reward: Array
    ref_logits: Array
    lam: Array

    @property
    def n_prompts(self) -> int:
        return self.logits.shape[-2]

    @property
    def n_outputs(self) -> int:
        return self.logits.shape[-1]


def make_instance(logits, reward, lam=0.0, ref_logits=None, *, check: bool = True) -> Instance:
    """Build a validated :class:`Instance` (float64).

    Args:
      logits: initial logits θ(0), shape [..., |S|, |Y|]; a 1-D array is one prompt.
      reward: optimised reward r_RM, same shape, values in [-1, 1].
      lam: KL coefficient λ ≥ 0 (scalar, or shape [...] for a batch).
      ref_logits: logits of π_ref (default: ``logits``, as in the paper). ``-inf`` entries mean
        π_ref(y|x) = 0, which is rejected when λ > 0 because KL(π_θ‖π_ref) is then infinite.
    """
    require_x64("rmtheory.make_instance")
    logits = jnp.asarray(logits, jnp.float64)
    reward = jnp.asarray(reward, jnp.float64)
    if logits.ndim == 1:
        logits = logits[None]
        reward = reward[None] if reward.ndim == 1 else reward
        if ref_logits is not None and np.ndim(ref_logits) == 1:
            ref_logits = jnp.asarray(ref_logits)[None]
    ref = logits if ref_logits is None else jnp.asarray(ref_logits, jnp.float64)
    lam = jnp.asarray(lam, jnp.float64)
    if check:
        _checks.ndim_at_least("logits", logits, 2)
        _checks.same_shape(logits=logits, reward=reward, ref_logits=ref)
        if logits.shape[-1] < 2:
            raise ValueError(f"logits must have at least 2 outputs per prompt; got shape {list(logits.shape)}")
        _checks.finite("logits", logits)
        _checks.in_range("reward", reward, -1.0, 1.0)
        _checks.nonnegative("lam", lam)
        if lam.shape not in ((), logits.shape[:-2]):
            raise ValueError(f"lam must be a scalar or have batch shape {list(logits.shape[:-2])}; "
                             f"got {list(lam.shape)}")
        if ref_logits is not None and _checks.is_concrete(ref):
            r = np.asarray(ref)
            if np.any(np.isnan(r)) or np.any(r == np.inf):
                raise ValueError("ref_logits must be finite or -inf (zero reference probability); found NaN/+inf")
            if np.any(np.all(r == -np.inf, axis=-1)):
                raise ValueError("ref_logits: some prompt has zero reference probability on every output")
            lam_b = np.broadcast_to(np.asarray(lam), r.shape[:-2])
            zero = np.any(r == -np.inf, axis=-1)
            if np.any(zero & (lam_b[..., None] > 0)):
                idx = tuple(int(i) for i in np.argwhere(zero & (lam_b[..., None] > 0))[0])
                raise ValueError(
                    f"ref_logits: the reference policy has a zero at prompt index {idx} while lam > 0; "
                    "KL(pi || pi_ref) needs pi_ref > 0 on every output (softmax policies have full support)"
                )
    return Instance(logits, reward, ref, lam)


def logits_from_probs(probs, name: str = "probs"):
    """Logits ln p of a policy given as probabilities (validated to be a distribution)."""
    _checks.distribution(name, probs)
    p = jnp.asarray(probs, jnp.float64)
    return jnp.where(p > 0, jnp.log(jnp.where(p > 0, p, 1.0)), -jnp.inf)


def random_instance(key, n_prompts: int, n_outputs: int, *, lam=0.0, logit_scale: float = 1.0,
                    reward_scale: float = 1.0) -> Instance:
    """A random instance: Gaussian logits × ``logit_scale`` and uniform rewards in
    [-reward_scale, reward_scale] (reward_scale ≤ 1)."""
    require_x64("rmtheory.random_instance")
    k1, k2 = jax.random.split(key)
    logits = logit_scale * jax.random.normal(k1, (n_prompts, n_outputs), jnp.float64)
    reward = reward_scale * jax.random.uniform(k2, (n_prompts, n_outputs), jnp.float64, -1.0, 1.0)
    return make_instance(logits, reward, lam)
