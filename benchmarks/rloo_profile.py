"""Where one RLOO update of the `small` LM spends its time, and what candidate changes would save.

    python benchmarks/rloo_profile.py [--config small] [--n 50] [--reps 3]

Benchmark-only prototype (it does not change rmtheory/lm): each piece of one update of ONE run
(batch_prompts × k sequences) is jitted on its own and repeated ``--n`` times inside a ``lax.scan`` (so
per-call dispatch is amortised as in the pipeline's epoch scan); best of ``--reps``. Then a copy of the full
update of rmtheory/lm/rloo.py (``make_rl``'s one_rollout with the RM as the reward, without the ground-truth
and normalisation bookkeeping), and variants of it written here (each alone, then both together):

* ``reuse_lp``: π_old log-probs from the sampler (``sample`` already returns them) instead of a second
  teacher-forced forward pass;
* ``ref_rm_stacked``: the reference-policy forward and the reward-model forward as one vmapped call over a
  stack of the two backbones (one batched pass instead of two);

(``lax.map`` over runs instead of ``vmap`` has the throughput of rloo_step.py's one-run-at-a-time line.)
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import rmtheory  # noqa: F401
from rmtheory.lm import task as T
from rmtheory.lm.config import get_config
from rmtheory.lm.model import RewardModel, sequence_logprob
from rmtheory.lm.rloo import Scaled, clipped_loss, rloo_advantages
from rmtheory.lm.sampling import sample
from rmtheory.lm.sft import init_policy


def timeit(f, *args, reps=3):
    jax.block_until_ready(f(*args))
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        jax.block_until_ready(f(*args))
        best = min(best, time.perf_counter() - t)
    return best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="small")
    ap.add_argument("--n", type=int, default=50, help="repetitions inside one scan (= rollouts per epoch)")
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args(argv)
    cfg = get_config(a.config).replace(rl_epochs=1)
    spec = cfg.task
    P, L = spec.prompt_len, spec.resp_len
    Bp, k = cfg.batch_prompts, cfg.k
    B = Bp * k
    n = a.n
    pol = init_policy(cfg)
    ref = pol
    rm = RewardModel.from_policy(pol, P, cfg.rm_readout)
    pr = T.unique_prompts(jax.random.PRNGKey(0), spec, cfg.n_pg + cfg.n_test_eval_prompts)
    pg = Scaled.of(pr.take(np.arange(cfg.n_pg)))
    prompts = jnp.repeat(pg.prompts.tokens[:Bp], k, axis=0)
    opt = optax.adam(cfg.rl_lr)
    st0 = opt.init(pol)
    tokens0, lp0, mask0 = jax.jit(lambda p, key: sample(p, prompts, key, L))(pol, jax.random.PRNGKey(1))

    def scanned(body):
        """jit(scan body n times); body(i) -> array to keep alive."""
        @jax.jit
        def f(*args):
            def step(c, i):
                return c + jnp.sum(body(i, *args)), None
            return jax.lax.scan(step, jnp.float32(0), jnp.arange(n))[0]
        return f

    parts = {
        "sample (prefill + 8 KV steps)": (scanned(lambda i, p: sample(p, prompts, jax.random.PRNGKey(i), L)[1]),
                                          (pol,)),
        "teacher-forced log-prob forward (lp_old or lp_ref)": (
            scanned(lambda i, p: sequence_logprob(p, tokens0.at[0, 0].set(i % 5 + 4), P, mask0)), (pol,)),
        "reward-model forward": (scanned(lambda i, r: r(tokens0.at[0, 0].set(i % 5 + 4))), (rm,)),
    }

    def loss_fn(p, tk, m, lpo, adv):
        return clipped_loss(sequence_logprob(p, tk, P, m), lpo, adv, cfg.clip)[0]

    def two_adam(i, p, st):
        adv = jnp.sin(jnp.arange(B, dtype=jnp.float32) + i)
        lpo = jnp.zeros(B, jnp.float32)
        for j in range(cfg.n_minibatches):
            sl = slice(j * B // cfg.n_minibatches, (j + 1) * B // cfg.n_minibatches)
            g = jax.grad(loss_fn)(p, tokens0[sl], mask0[sl], lpo[sl], adv[sl])
            upd, st = opt.update(g, st, p)
            p = optax.apply_updates(p, upd)
        return p.head

    parts["2 Adam minibatch steps (fwd + bwd + update)"] = (scanned(two_adam), (pol, st0))
    print(f"config {cfg.name}: one run, {B} sequences per update, {n} updates per scan, best of {a.reps}")
    tot = 0.0
    for name, (f, args) in parts.items():
        t = timeit(f, *args, reps=a.reps) / n
        tot += t * (2 if name.startswith("teacher") else 1)
        print(f"  {name:55s} {1e3 * t:7.2f} ms")
    print(f"  {'sum (with the teacher-forced forward twice)':55s} {1e3 * tot:7.2f} ms  -> {1 / tot:.1f} updates/s")

    # full update (as make_rl) and variants, one run
    def update(p, st, step, *, reuse_lp=False, stacked=False):
        key = jax.random.fold_in(jax.random.PRNGKey(0), step)
        tokens, lp_s, mask = sample(p, prompts, key, L)
        lp_old = jnp.sum(lp_s, -1) if reuse_lp else sequence_logprob(p, tokens, P, mask)
        lp_old = jax.lax.stop_gradient(lp_old)
        if stacked:  # the reference policy's and the RM's backbones as one vmapped forward
            bb = jax.tree_util.tree_map(lambda x, y: jnp.stack([x, y]), ref, rm.backbone)
            h = jax.vmap(lambda m: m.hidden(tokens))(bb)
            logp = jax.nn.log_softmax(h[0][:, P - 1 : -1] @ ref.head, -1)
            lp_ref = jnp.sum(jnp.take_along_axis(logp, tokens[:, P:, None], -1)[..., 0] * mask, -1)
            tok = jnp.take_along_axis(h[1][:, P - 1 : -1] @ rm.u, tokens[:, P:, None], -1)[..., 0]
            score = jnp.sum(tok * mask, 1) / jnp.sum(mask, 1) + rm.b
        else:
            lp_ref = sequence_logprob(ref, tokens, P, mask)
            score = rm(tokens)
        adv = jax.lax.stop_gradient(rloo_advantages((score - cfg.beta * (lp_old - lp_ref)).reshape(Bp, k)).reshape(B))
        order = jax.random.permutation(key, B).reshape(cfg.n_minibatches, -1)

        def mb(carry, idx):
            p, st = carry
            g = jax.grad(loss_fn)(p, tokens[idx], mask[idx], lp_old[idx], adv[idx])
            upd, st = opt.update(g, st, p)
            return (optax.apply_updates(p, upd), st), None

        return jax.lax.scan(mb, (p, st), order)[0]

    def epoch(variant):
        @jax.jit
        def f(p, st):
            def body(c, s):
                return update(*c, s, **variant), None
            return jax.lax.scan(body, (p, st), jnp.arange(n))[0]
        return f

    for name, variant in (("as make_rl", {}), ("reuse_lp", dict(reuse_lp=True)),
                          ("ref_rm_stacked", dict(stacked=True)), ("both", dict(reuse_lp=True, stacked=True))):
        t = timeit(epoch(variant), pol, st0, reps=a.reps) / n
        print(f"  full update, {name:20s} {1e3 * t:7.2f} ms  -> {1 / t:.1f} updates/s")



if __name__ == "__main__":
    main()
