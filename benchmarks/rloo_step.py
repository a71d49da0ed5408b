"""RLOO updates/second and sampled tokens/second for the `small` LM on CPU.

    python benchmarks/rloo_step.py [--config small] [--runs 21] [--reps 3] [--per-run-refs] [--mode M]

``--per-run-refs`` times the studies' mode (``rmtheory lm grid``/``paradox``: every run has its own
reference policy, passed as a vmapped argument) instead of the pipeline's (one reference, a constant).

One "update" = one rollout batch (batch_prompts × k sequences) sampled, scored by a reward model, and
n_minibatches Adam steps, for one run; ``--runs`` runs are stacked as in the pipeline and trained vmapped, one
after another, or one after another in one block per core (``--mode vmap|sequential|cores``; default: what the
pipeline picks here, ``rloo.default_mode()``).
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import rmtheory
from rmtheory.lm import task as T
from rmtheory.lm.config import get_config
from rmtheory.lm.model import RewardModel, param_count
from rmtheory.lm.stacking import stack
from rmtheory.lm.rloo import MODES, Scaled, SourceConsts, default_mode, make_rl
from rmtheory.lm.sampling import sample
from rmtheory.lm.sft import init_policy

rmtheory.enable_x64()  # as `rmtheory lm` runs the pipeline (the LM states its own float32/int32 dtypes)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="small")
    ap.add_argument("--runs", type=int, default=21, help="vmapped runs (7 sources × 3 seeds in the pipeline)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--per-run-refs", action="store_true", help="one reference policy per run (the grid's mode)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the one-run-at-a-time line and sampling")
    ap.add_argument("--mode", choices=MODES, default=None, help="how the stacked runs are trained (default: "
                    "the pipeline's choice on this machine)")
    a = ap.parse_args(argv)
    if a.runs < 1 or a.reps < 1:
        ap.error("--runs and --reps must be >= 1")
    cfg = get_config(a.config).replace(rl_epochs=1)
    spec = cfg.task
    pol = init_policy(cfg)
    pr = T.unique_prompts(jax.random.PRNGKey(0), spec, cfg.n_pg + cfg.n_test_eval_prompts)
    pg = Scaled.of(pr.take(np.arange(cfg.n_pg)))
    ev = Scaled.of(pr.take(np.arange(cfg.n_pg, pr.n)))
    opt = optax.adam(cfg.rl_lr)
    mode = a.mode or default_mode()
    update_epoch, _ = make_rl(cfg, None if a.per_run_refs else pol, pg, {"test": ev}, (0.0, 1.0), opt, mode)
    R = a.runs
    rm = RewardModel.from_policy(pol, spec.prompt_len, cfg.rm_readout)
    rms = stack([rm] * R)
    pols = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (R,) + x.shape), pol)
    sts = jax.vmap(opt.init)(pols)
    c = SourceConsts(jnp.ones(R, jnp.float32), jnp.zeros(R, jnp.float32), jnp.zeros(R, bool), jnp.zeros(R, jnp.float32),
                     jnp.ones(R, jnp.float32), jnp.arange(R, dtype=jnp.int32))
    print(f"config {cfg.name}: policy {param_count(pol):,} parameters (float32), seq len {spec.seq_len}, "
          f"vocab {spec.vocab}; devices {jax.devices()}; stacked runs: {mode}")
    def one(tree):
        return jax.tree_util.tree_map(lambda x: x[:1], tree)

    if a.per_run_refs:
        upd = update_epoch

        def update_epoch(p, st, rm, cc, e):
            # the references are the initial policies (all runs, or the first one for the one-at-a-time baseline)
            n_runs = jax.tree_util.tree_leaves(p)[0].shape[0]
            return upd(p, st, rm, cc, e, pols if n_runs == R else one(pols))

    t = time.time()
    out = update_epoch(pols, sts, rms, c, 0)
    jax.block_until_ready(out)
    print(f"compile + first epoch: {time.time() - t:.1f}s")
    times = []
    for r in range(a.reps):
        t = time.time()
        out = update_epoch(out[0], out[1], rms, c, r + 1)
        jax.block_until_ready(out)
        times.append(time.time() - t)
    best = min(times)
    updates = R * cfg.rollouts_per_epoch
    print(f"RLOO ({mode}): {updates / best:.2f} updates/s ({R} runs × {cfg.rollouts_per_epoch} rollouts of "
          f"{cfg.batch_prompts * cfg.k} sequences in {best:.2f}s; best of {a.reps}; median "
          f"{updates / statistics.median(times):.2f})")
    if a.no_baseline:
        return
    # baseline in the same run: one run at a time (what a loop over sources × seeds would do)
    o1 = update_epoch(one(pols), one(sts), one(rms), one(c), 0)
    jax.block_until_ready(o1)
    times1 = []
    for r in range(a.reps):
        t = time.time()
        o1 = update_epoch(o1[0], o1[1], one(rms), one(c), r + 1)
        jax.block_until_ready(o1)
        times1.append(time.time() - t)
    best1 = min(times1)
    print(f"baseline, one run at a time: {cfg.rollouts_per_epoch / best1:.2f} updates/s (best of {a.reps}; median "
          f"{cfg.rollouts_per_epoch / statistics.median(times1):.2f}); the {R} vmapped runs are "
          f"{(updates / best) / (cfg.rollouts_per_epoch / best1):.1f}x faster in throughput")
    smp = jax.jit(lambda m, p, k: sample(m, p, k, spec.resp_len)[0])
    prompts = jnp.repeat(pg.prompts.tokens[:512], 4, axis=0)
    jax.block_until_ready(smp(pol, prompts, jax.random.PRNGKey(0)))
    best = float("inf")
    for r in range(a.reps):
        t = time.time()
        jax.block_until_ready(smp(pol, prompts, jax.random.PRNGKey(r)))
        best = min(best, time.time() - t)
    print(f"sampling: {prompts.shape[0] * spec.resp_len / best:,.0f} sampled tokens/s (batch {prompts.shape[0]}, "
          f"{spec.resp_len} steps, KV cache)")


if __name__ == "__main__":
    main()
