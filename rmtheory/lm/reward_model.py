"""The ``rm`` stage's training: reward models trained with the Bradley–Terry loss (TRL's, with reward centring).

    L = −mean ln σ(r(x, y_c) − r(x, y_r)) + c · mean (r(x, y_c) + r(x, y_r))²,   c = 0.01

The five on-policy mixes are trained together (``vmap`` over the stacked models) on identical batch
orders; only the responses of each prompt differ between mixes. Adam with linear warmup and cosine decay;
the head starts at zero. Every ``rm_curve_every`` steps the learning curves are measured on held-out PG
prompts (never used for RM training): train BT loss (mean of the last steps), held-out BT loss and
on-policy accuracy over all pairs of the initial policy's samples, and off-policy accuracy.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .._metrics import accuracy
from .model import RewardModel, in_chunks
from .sft import warmup_cosine
from .stacking import stack


def _bt(rc, rr, center: float):
    return -jnp.mean(jax.nn.log_sigmoid(rc - rr)) + center * jnp.mean((rc + rr) ** 2)


def bt_loss(rm: RewardModel, chosen, rejected, center: float):
    return _bt(rm(chosen), rm(rejected), center)


class Objective(NamedTuple):
    """Per-RM training objective, one entry per stacked RM (leading axis n_mix):

        L = w_bt · [BT(r_c − r_r) + c·(r_c + r_r)²] + w_reg · ½·mean((r_c − t_c)² + (r_r − t_r)²)

    i.e. Bradley–Terry with centring, pointwise regression of both responses onto targets, or a mix."""

    w_bt: jax.Array        # [n_mix]
    w_reg: jax.Array       # [n_mix]
    t_chosen: jax.Array    # [n_mix, N] regression targets of the chosen responses (ignored where w_reg = 0)
    t_rejected: jax.Array  # [n_mix, N]


def objective_loss(rm: RewardModel, chosen, rejected, center: float, w_bt, w_reg, t_c, t_r):
    """The :class:`Objective` loss of one RM on one batch."""
    rc, rr = rm(chosen), rm(rejected)
    bt = _bt(rc, rr, center)
    reg = 0.5 * jnp.mean((rc - t_c) ** 2 + (rr - t_r) ** 2)
    return w_bt * bt + w_reg * reg


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


def pairwise_bt_loss(scores, gt):
    """Mean −ln σ(s_c − s_r) over all within-prompt pairs that r_G orders strictly. scores, gt: [P, K]."""
    d_s = scores[:, :, None] - scores[:, None, :]
    d_g = gt[:, :, None] - gt[:, None, :]
    ordered = d_g > 0
    return float(np.sum(np.logaddexp(0.0, -d_s) * ordered) / max(np.sum(ordered), 1))


class CurveSet:
    """Held-out data for the learning curves: C prompts × K initial-policy samples (tokens [C·K, T], r_G
    [C, K]) and the same prompts' off-policy pairs (tokens [C, T] each, with r_G)."""

    def __init__(self, samples, gt, off_chosen, off_rejected, off_gt_chosen, off_gt_rejected):
        self.samples, self.gt = np.asarray(samples), np.asarray(gt, np.float64)
        self.off_chosen, self.off_rejected = np.asarray(off_chosen), np.asarray(off_rejected)
        self.off_gt = np.stack([off_gt_chosen, off_gt_rejected], -1).astype(np.float64)

    def measure(self, score_fn) -> dict:
        """score_fn(tokens [N, T]) -> [n_mix, N]; returns per-mix held-out metrics."""
        C, K = self.gt.shape
        s = np.asarray(score_fn(self.samples), np.float64).reshape(-1, C, K)
        oc, orj = np.asarray(score_fn(self.off_chosen), np.float64), np.asarray(score_fn(self.off_rejected), np.float64)
        on = [float(np.mean(accuracy(jnp.asarray(si), jnp.asarray(self.gt)))) for si in s]
        off = [float(np.mean(accuracy(jnp.asarray(np.stack([a, b], -1)), jnp.asarray(self.off_gt))))
               for a, b in zip(oc, orj)]
        return {"heldout_bt_loss": [pairwise_bt_loss(si, self.gt) for si in s], "heldout_on_acc": on, "off_acc": off}


def train_rms(cfg, policy, chosen, rejected, curve: CurveSet | None = None, log=print,
              objective: Objective | None = None, on_chunk=None):
    """Train one RM per mix. chosen/rejected: [n_mix, N, T].

    ``objective`` (default: Bradley–Terry for every RM, :func:`bt_loss`) gives each RM its own loss;
    ``on_chunk(step, rms)`` is called after every ``rm_curve_every`` steps (e.g. to keep checkpoints).
    Returns (stacked RMs, per-step train losses [steps, n_mix], learning-curve rows: list of dicts with
    ``step``, ``train_bt_loss`` (the training loss) and the :meth:`CurveSet.measure` fields, one value per mix).
    """
    n_mix, n, _ = chosen.shape
    key = jax.random.PRNGKey(cfg.seeds.rm)
    P = cfg.task.prompt_len
    rms = stack([RewardModel.from_policy(policy, P, cfg.rm_readout) for _ in range(n_mix)])
    steps_per_epoch = n // cfg.rm_batch
    if steps_per_epoch < 1:
        raise ValueError(f"rm_batch ({cfg.rm_batch}) exceeds the number of RM pairs ({n})")
    total = steps_per_epoch * cfg.rm_epochs
    opt = optax.adam(warmup_cosine(cfg.rm_lr, total, cfg.rm_warmup))
    opt_state = jax.vmap(opt.init)(rms)
    chosen, rejected = jnp.asarray(chosen), jnp.asarray(rejected)
    order = np.concatenate([np.asarray(jax.random.permutation(jax.random.fold_in(key, 1000 + e), n))
                            [: steps_per_epoch * cfg.rm_batch].reshape(steps_per_epoch, cfg.rm_batch)
                            for e in range(cfg.rm_epochs)])

    def one_step(rm, st, c, r):
        loss, g = jax.value_and_grad(bt_loss)(rm, c, r, cfg.rm_center)
        upd, st = opt.update(g, st, rm)
        return optax.apply_updates(rm, upd), st, loss

    def one_step_obj(rm, st, c, r, w_bt, w_reg, t_c, t_r):
        loss, g = jax.value_and_grad(objective_loss)(rm, c, r, cfg.rm_center, w_bt, w_reg, t_c, t_r)
        upd, st = opt.update(g, st, rm)
        return optax.apply_updates(rm, upd), st, loss

    if objective is not None:
        objective = Objective(*(jnp.asarray(a, jnp.float32) for a in objective))

    @jax.jit
    def chunk(rms, opt_state, idx):
        def body(carry, i):
            rms, st = carry
            if objective is None:
                rms, st, loss = jax.vmap(one_step)(rms, st, chosen[:, i], rejected[:, i])
            else:
                o = objective
                rms, st, loss = jax.vmap(one_step_obj)(rms, st, chosen[:, i], rejected[:, i], o.w_bt, o.w_reg,
                                                      o.t_chosen[:, i], o.t_rejected[:, i])
            return (rms, st), loss

        return jax.lax.scan(body, (rms, opt_state), idx)

    score_all = eqx.filter_jit(lambda m, t: jax.vmap(lambda r: r(t))(m))

    def score_fn(tokens, batch=2048):
        return in_chunks(lambda t, _: score_all(rms, t), tokens, batch, axis=1)

    losses, curve_rows = [], []
    every = cfg.rm_curve_every
    if curve is not None:
        curve_rows.append({"step": 0, "train_bt_loss": [float(np.log(2.0))] * n_mix, **curve.measure(score_fn)})
    done = 0
    while done < total:
        m = min(every, total - done)  # chunks of `every` steps share one compiled scan (a shorter tail: one more)
        (rms, opt_state), step_losses = chunk(rms, opt_state, jnp.asarray(order[done : done + m]))
        step_losses = np.asarray(step_losses)
        losses.append(step_losses)
        done += m
        if on_chunk is not None:
            on_chunk(done, rms)
        if curve is not None:
            row = {"step": done, "train_bt_loss": step_losses.mean(0).tolist(), **curve.measure(score_fn)}
            curve_rows.append(row)
            log(f"  rm step {done}/{total}  train BT " + " ".join(f"{v:.3f}" for v in row["train_bt_loss"])
                + "  held-out on-acc " + " ".join(f"{v:.3f}" for v in row["heldout_on_acc"]))
        else:
            log(f"  rm step {done}/{total}  train BT " + " ".join(f"{v:.3f}" for v in step_losses.mean(0)))
    return rms, np.concatenate(losses), curve_rows


@eqx.filter_jit
def _score(rm, tokens):
    return rm(tokens)


def score(rm: RewardModel, tokens, batch: int = 2048):
    """RM scores of many sequences [N, T] in jitted chunks (the last chunk padded to the same shape)."""
    return in_chunks(lambda t, _: _score(rm, t), tokens, batch, pad=True)
