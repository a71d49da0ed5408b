"""RL over stacked runs: the one set-up of RLOO/GRPO (:func:`rmtheory.lm.rloo.make_rl`) for many runs at once,
used by the pipeline's ``rl`` stage, the studies' sweeps and the grid's instruct policy.

A run is (initial policy, reward model, :class:`~rmtheory.lm.rloo.SourceConsts`); the runs are stacked along a
leading axis, which :func:`rmtheory.shard_leading` places over every device (a no-op on one device; the runs
are independent, so the numbers are the same).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .._sharding import shard_leading
from .loop import train_epochs
from .rloo import SourceConsts, make_rl


class StackedRL(NamedTuple):
    """RL over stacked runs, ready to train: ``state`` = (policies, optimiser states) at epoch 0,
    ``update(policies, opt_states, epoch) -> (policies, opt_states, train metrics [R, rollouts])`` and
    ``evaluate(policies) -> {eval set: {metric: [R]}}``."""

    state: tuple
    update: Callable
    evaluate: Callable


OPTIMIZERS = ("adam", "sgd")


def stacked_rl(cfg, pg, evsets: dict, gt_stats, policies, rms, consts: SourceConsts, ref=None,
               optimizer: str = "adam", lr: float | None = None, rollouts: int | None = None) -> StackedRL:
    """Set up RL (``cfg.algo``; ``optimizer`` "adam" or plain "sgd" at ``lr``, default ``cfg.rl_lr``) for the
    stacked runs (``policies``, ``rms``, ``consts``) on the PG prompts ``pg``, evaluated on ``evsets``
    (name → :class:`~rmtheory.lm.rloo.Scaled`) with r_G normalised by ``gt_stats`` = (μ, σ).

    ``rollouts``: rollout batches per epoch (default a full epoch; :func:`rmtheory.lm.rloo.make_rl`).

    ``ref`` is the one reference policy of every run (a constant of the compiled functions: the pipeline), or
    None: each run's initial policy is its own reference (the studies).
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}; got {optimizer!r}")
    lr = cfg.rl_lr if lr is None else lr
    if not lr > 0:
        raise ValueError(f"lr must be > 0; got {lr}")
    opt = optax.adam(lr) if optimizer == "adam" else optax.sgd(lr)
    update_epoch, evaluate = make_rl(cfg, ref, pg, evsets, gt_stats, opt, rollouts=rollouts)
    opt_states = jax.vmap(opt.init)(policies)
    if ref is None:
        refs, rms, consts = shard_leading((policies, rms, consts))
        return StackedRL((refs, opt_states), lambda p, st, e: update_epoch(p, st, rms, consts, e, refs),
                         lambda p: evaluate(p, rms, consts, refs))
    rms, consts = shard_leading((rms, consts))
    return StackedRL((policies, opt_states), lambda p, st, e: update_epoch(p, st, rms, consts, e),
                     lambda p: evaluate(p, rms, consts))


def train(run, sub: str, rl: StackedRL, n_epochs: int, log=print, describe=None, stop_after_epoch=None):
    """Train (or resume) ``n_epochs`` epochs of ``rl`` with a checkpoint and an evaluation after each, in
    ``run``'s directory ``sub`` (:func:`rmtheory.lm.loop.train_epochs`). Returns the progress dict, or None
    when stopped after ``stop_after_epoch`` (testing)."""
    return train_epochs(run, sub, n_epochs, rl.state, rl.update, rl.evaluate, log, describe, stop_after_epoch,
                        prepare=shard_leading)


def reward_model_consts(stats, seeds, w_rm: float = 1.0) -> SourceConsts:
    """Runs rewarded by their reward model alone (w_rm·RM, no r_G), normalised by ``stats[r]`` = (μ, σ),
    with RL seeds ``seeds[r]``; ``w_rm = 0`` with ``w_gt = 1`` (see :func:`ground_truth_consts`) is r_G."""
    stats = np.asarray(stats, np.float64)
    R = len(seeds)
    return SourceConsts(w_rm=jnp.full(R, w_rm, jnp.float32), w_gt=jnp.full(R, 1.0 - w_rm, jnp.float32),
                        use_scale=jnp.zeros(R, bool), mu=jnp.asarray(stats[:, 0], jnp.float32),
                        sigma=jnp.asarray(stats[:, 1], jnp.float32), seed=jnp.asarray(seeds, jnp.int32))


def ground_truth_consts(stats, seeds) -> SourceConsts:
    """Runs rewarded by r_G itself (no reward model), normalised by ``stats[r]`` = (μ, σ)."""
    return reward_model_consts(stats, seeds, w_rm=0.0)
