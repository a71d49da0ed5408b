"""Stage 3: reward models trained with the Bradley–Terry loss (TRL's, with reward centring).

    L = −mean ln σ(r(x, y_c) − r(x, y_r)) + c · mean (r(x, y_c) + r(x, y_r))²,   c = 0.01

The five on-policy mixes are trained together (``vmap`` over the stacked models) on identical batch
orders; only the responses of each prompt differ between mixes.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .model import RewardModel


def bt_loss(rm: RewardModel, chosen, rejected, center: float):
    rc, rr = rm(chosen), rm(rejected)
    return -jnp.mean(jax.nn.log_sigmoid(rc - rr)) + center * jnp.mean((rc + rr) ** 2)


def build_mixes(mix_perm, on_chosen, on_rejected, off_chosen, off_rejected, fractions):
    """Chosen/rejected sequences [n_mix, N, T]: for mix f the first round(f·N) prompts of the ONE
    permutation ``mix_perm`` get their on-policy pair, the others their off-policy pair."""
    n = len(mix_perm)
    rank = np.empty(n, np.int64)
    rank[mix_perm] = np.arange(n)
    cs, rs = [], []
    for f in fractions:
        on = (rank < int(round(f * n)))[:, None]
        cs.append(np.where(on, on_chosen, off_chosen))
        rs.append(np.where(on, on_rejected, off_rejected))
    return np.stack(cs), np.stack(rs)


def stack(models):
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *models)


def unstack(tree, i):
    return jax.tree_util.tree_map(lambda x: x[i], tree)


def train_rms(cfg, policy, chosen, rejected, log=print):
    """Train one RM per mix. chosen/rejected: [n_mix, N, T]. Returns (stacked RMs, losses [steps, n_mix])."""
    n_mix, n, _ = chosen.shape
    key = jax.random.PRNGKey(cfg.seeds.rm)
    rms = stack([RewardModel.from_policy(jax.random.fold_in(key, i), policy) for i in range(n_mix)])
    opt = optax.adam(cfg.rm_lr)
    opt_state = jax.vmap(opt.init)(rms)
    steps_per_epoch = n // cfg.rm_batch
    if steps_per_epoch < 1:
        raise ValueError(f"rm_batch ({cfg.rm_batch}) exceeds the number of RM pairs ({n})")
    chosen, rejected = jnp.asarray(chosen), jnp.asarray(rejected)

    def one_step(rm, st, c, r):
        loss, g = jax.value_and_grad(bt_loss)(rm, c, r, cfg.rm_center)
        upd, st = opt.update(g, st, rm)
        return optax.apply_updates(rm, upd), st, loss

    @jax.jit
    def epoch(rms, opt_state, e):
        order = jax.random.permutation(jax.random.fold_in(key, 1000 + e), n)[: steps_per_epoch * cfg.rm_batch]
        order = order.reshape(steps_per_epoch, cfg.rm_batch)

        def body(carry, idx):
            rms, st = carry
            rms, st, loss = jax.vmap(one_step)(rms, st, chosen[:, idx], rejected[:, idx])
            return (rms, st), loss

        return jax.lax.scan(body, (rms, opt_state), order)

    losses = []
    for e in range(cfg.rm_epochs):
        (rms, opt_state), l = epoch(rms, opt_state, e)
        losses.append(np.asarray(l))
        log(f"  rm epoch {e + 1}/{cfg.rm_epochs}  BT loss per mix " + " ".join(f"{v:.3f}" for v in np.asarray(l[-20:]).mean(0)))
    return rms, np.concatenate(losses)


@eqx.filter_jit
def _score(rm, tokens):
    return rm(tokens)


def score(rm: RewardModel, tokens, batch: int = 2048):
    """RM scores of many sequences [N, T] in jitted chunks (the last chunk padded to the same shape)."""
    tokens = np.asarray(tokens)
    n = len(tokens)
    pad = (-n) % batch if n > batch else 0
    tokens = np.concatenate([tokens, np.repeat(tokens[-1:], pad, axis=0)]) if pad else tokens
    out = np.concatenate([np.asarray(_score(rm, jnp.asarray(tokens[i : i + batch]))) for i in range(0, len(tokens), batch)])
    return out[:n]
