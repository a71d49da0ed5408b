"""Bounds of the paper, each a pure function of the quantities it names (Section 2 of theory.md)."""

from __future__ import annotations

import jax.numpy as jnp

from . import _checks


def prop3_time_lower_bound(variance, gamma, n_prompts=1):
    """Proposition 3 [T]: t_γ ≥ 2|S|(1 − e^{−γ/2}) / √Var_{y∼π_θ(0)(·|x)}[r_RM(x, y)] (``inf`` at Var = 0)."""
    _checks.nonnegative("variance", variance)
    _checks.positive("gamma", gamma)
    _checks.positive("n_prompts", n_prompts)
    v = jnp.asarray(variance, jnp.float64)
    num = 2.0 * n_prompts * (1.0 - jnp.exp(-jnp.asarray(gamma, jnp.float64) / 2.0))
    return jnp.where(v > 0, num / jnp.sqrt(jnp.where(v > 0, v, 1.0)), jnp.inf)
