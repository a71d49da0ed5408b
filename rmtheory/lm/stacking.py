"""Stacked pytrees: many models of one structure (policies or reward models) as one pytree with a leading
runs axis, the form ``vmap`` trains and evaluates them in."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def stack(models):
    """One pytree whose every leaf has a new leading axis, entry i from ``models[i]``."""
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *models)


def unstack(tree, i):
    """Entry ``i`` of a stacked pytree."""
    return jax.tree_util.tree_map(lambda x: x[i], tree)


def take(tree, idx):
    """Entries ``idx`` (a sequence of indices) of a stacked pytree, stacked again."""
    return jax.tree_util.tree_map(lambda x: x[jnp.asarray(idx)], tree)
