"""The ``rl`` stage's update: RLOO (and GRPO) policy-gradient training with every reward source and seed at once.

One RLOO update (as in TRL's RLOOTrainer; docs/theory.md, "The LM pipeline's protocol"), for a rollout batch of
``batch_prompts`` prompts × k samples from π_old:

    R_i = r̃(x, y_i) − β Σ_t [ln π_old(y_it|·) − ln π_ref(y_it|·)]          (k1 KL inside the reward)
    A_i = R_i − 1/(k−1) Σ_{j≠i} R_j                                         (leave-one-out baseline)
    ρ_i = exp(Σ_t ln π_θ(y_it|·) − Σ_t ln π_old(y_it|·))                    (sequence-level ratio)
    L   = mean_i max(−A_i ρ_i, −A_i clip(ρ_i, 1−ε, 1+ε))

then the batch is shuffled and split into ``n_minibatches`` Adam steps (1 PPO epoch per rollout).

GRPO (the paper's Fig. 14 / Table 12 variant): A_i = (r̃_i − mean)/sqrt(unbiased group var + 1e-8), no KL in
the reward, and (``grpo_kl = "k3_in_loss"``, the default) the intended penalty β · Σ_t k3 with
k3 = exp(ln π_ref − ln π_θ) + ln π_θ − ln π_ref − 1 added to the loss *with* its gradient; ``"none"``
reproduces the released code, where that term carries no gradient and so has no effect.

π_old's log-probabilities are the sampler's own (``sample`` returns them; they equal the teacher-forced pass up
to float32 rounding, tested), which saves one forward pass per rollout.

Runs (sources × seeds) are stacked along a leading axis and trained inside one jitted function, either vmapped
(``mode = "vmap"``: one batched computation, what several devices or a GPU need), one after another
(``"sequential"``: ``lax.map``, faster on a CPU, whose cores a vmapped batch of small matrices does not keep
busy), or one after another within a block of runs per CPU core (``"cores"``: the runs dealt into one block per
core, each block a ``lax.map`` computed by its own thread, :func:`rmtheory._sharding.run_on_cores`; every run is
computed by the same program as in ``"sequential"``, so the numbers are the same bit for bit); :func:`default_mode`
picks. An "epoch" is ``n_pg`` sequences (TRL's count), i.e.
``rollouts_per_epoch`` rollout batches, scanned with ``lax.scan``. Every random number is ``fold_in`` of a run
key and the global rollout index, so resuming from an epoch checkpoint reproduces an uninterrupted run exactly.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from .._ascent import rloo_advantages  # noqa: F401  (the one RLOO advantage; used below and re-exported)
from .._sharding import host_cores, run_on_cores
from . import task as T
from .model import sequence_logprob, token_logprobs
from .sampling import sample


class SourceConsts(NamedTuple):
    """Per-run description of the reward source: raw = w_rm·RM(x,y) + w_gt·r_G(x,y) for a reward model or r_G,
    and raw = (r_G(x,y) + shift)·s(x) for the perfect-accuracy low-variance source (``use_scale``: s(x) its
    prompt scale, shift = ``Config.perfect_shift``); normalised r̃ = (raw − mu)/sigma."""

    w_rm: jax.Array
    w_gt: jax.Array
    use_scale: jax.Array
    mu: jax.Array
    sigma: jax.Array
    seed: jax.Array  # int32 RL seed


class Scaled(NamedTuple):
    """Prompts with the perfect source's per-prompt scale (``perfect_factor`` or 1)."""

    prompts: T.Prompts
    scale: jax.Array  # [N] float32

    @staticmethod
    def of(prompts: T.Prompts, scale=None) -> "Scaled":
        n = prompts.n
        scale = jnp.ones(n, jnp.float32) if scale is None else jnp.asarray(scale, jnp.float32)
        return Scaled(T.Prompts(*(jnp.asarray(a) for a in prompts)), scale)


def raw_reward(rm_score, consts: SourceConsts, gt, scale, shift: float):
    """raw = w_rm·RM(x, y) + w_gt·r_G(x, y), or (r_G(x, y) + shift)·s(x) where ``use_scale`` (see SourceConsts;
    :func:`rmtheory.lm.measure.perfect_scores` is the same formula)."""
    return consts.w_rm * rm_score + consts.w_gt * jnp.where(consts.use_scale, (gt + shift) * scale, gt)


def grpo_advantages(r):
    k = r.shape[-1]
    mean = r.mean(-1, keepdims=True)
    var = jnp.sum((r - mean) ** 2, -1, keepdims=True) / (k - 1)
    return (r - mean) / jnp.sqrt(var + 1e-8)


def clipped_loss(lp_new, lp_old, adv, eps):
    ratio = jnp.exp(lp_new - lp_old)
    return jnp.mean(jnp.maximum(-adv * ratio, -adv * jnp.clip(ratio, 1 - eps, 1 + eps))), ratio


MODES = ("vmap", "sequential", "cores")


def default_mode() -> str:
    """How to train stacked runs here (measured: ``benchmarks/rloo_step.py``): on a single CPU device
    ``"cores"`` when the process may use more than one core (one block of runs per core, each one after another),
    ``"sequential"`` on one core; else ``"vmap"`` (several devices shard the vmapped runs; a GPU wants one
    large batch)."""
    if jax.device_count() == 1 and jax.default_backend() == "cpu":
        return "cores" if host_cores() > 1 else "sequential"
    return "vmap"


def _on_cores(fn, n_stacked: int):
    """``fn(*stacked, *shared)`` with the first ``n_stacked`` arguments (pytrees with a leading runs axis) dealt
    into one block per core, each block computed by its own thread (:func:`rmtheory._sharding.run_on_cores`)."""

    def call(*args):
        cols = {f"a{i}": a for i, a in enumerate(args[:n_stacked])}
        shared = {f"s{i}": a for i, a in enumerate(args[n_stacked:])}

        def block(**kw):
            return fn(*(kw[f"a{i}"] for i in range(len(cols))), *(kw[f"s{i}"] for i in range(len(shared))))

        return run_on_cores(block, cols, shared, blocks=host_cores())

    return call


def make_rl(cfg, ref, pg: Scaled, evsets: dict, gt_stats, opt, mode: str | None = None, rollouts: int | None = None):
    """Build (update_epoch, evaluate) jitted over stacked runs.

    ``rollouts`` (default ``cfg.rollouts_per_epoch``) is the number of rollout batches an "epoch" of
    ``update_epoch`` runs; epoch 0 with ``rollouts = n`` is the first ``n`` rollouts of a full epoch 0, the
    same numbers (the prompt order and every key depend only on the run and the global rollout index): the
    studies' short-horizon outcomes.

    update_epoch(policies, opt_states, rms, consts, epoch) → (policies, opt_states, metrics [R, S])
    evaluate(policies, rms, consts) → {set name: dict of [R] arrays (proxy/GT normalised means, KL)} for
    each of ``evsets`` (name → Scaled), each prompt with ``n_eval_samples`` samples.

    ``ref`` is the one reference policy of every run (the pipeline), or ``None`` for one reference per run
    (the grid of initial policies): then both functions take the stacked references as a last argument,
    ``update_epoch(policies, opt_states, rms, consts, epoch, refs)`` and ``evaluate(policies, rms, consts, refs)``.
    """
    mode = default_mode() if mode is None else mode
    if mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}; got {mode!r}")
    spec = cfg.task
    P, L = spec.prompt_len, spec.resp_len
    Bp, k = cfg.batch_prompts, cfg.k
    B = Bp * k
    S = cfg.rollouts_per_epoch if rollouts is None else int(rollouts)
    if not 1 <= S <= cfg.rollouts_per_epoch:
        raise ValueError(f"rollouts must be in [1, {cfg.rollouts_per_epoch}] (rollouts_per_epoch); got {rollouts}")
    n_pg = pg.prompts.n
    mb = B // cfg.n_minibatches

    per_pass = n_pg // Bp  # rollouts per pass over the PG prompts
    n_perms = (S - 1) // per_pass + 2  # passes an epoch of S rollouts can touch

    def pass_perm(c: SourceConsts, pass_idx):
        """The prompt order of one pass: a fresh permutation of the PG prompts per (run, pass)."""
        return jax.random.permutation(jax.random.fold_in(jax.random.PRNGKey(cfg.seeds.pg), c.seed * 100_003 + pass_idx),
                                      n_pg)

    def one_rollout(params, opt_state, rm, c: SourceConsts, step, ref, perms, first_pass):
        run_key = jax.random.PRNGKey(c.seed)
        # this rollout's prompts: slice ``within`` of its pass's permutation (computed once per epoch, in perms)
        pass_idx, within = step // per_pass, step % per_pass
        perm = perms[pass_idx - first_pass]
        pidx = jnp.repeat(jax.lax.dynamic_slice_in_dim(perm, within * Bp, Bp), k)
        skey = jax.random.fold_in(jax.random.fold_in(run_key, 1), step)
        pp = pg.prompts
        tokens, lp_tok, mask = sample(params, pp.tokens[pidx], skey, L)
        lp_old = jax.lax.stop_gradient(jnp.sum(lp_tok * mask, -1))  # the sampler's log π_old (0 after EOS)
        lp_ref = sequence_logprob(ref, tokens, P, mask)
        gt = T.ground_truth(pp.target[pidx], pp.tlen[pidx], tokens[:, P:], spec.n_content)
        raw = raw_reward(rm(tokens), c, gt, pg.scale[pidx], cfg.perfect_shift)
        r = (raw - c.mu) / c.sigma
        kl_seq = lp_old - lp_ref
        if cfg.algo == "rloo":
            adv = rloo_advantages((r - cfg.beta * kl_seq).reshape(Bp, k)).reshape(B)
        else:
            adv = grpo_advantages(r.reshape(Bp, k)).reshape(B)
        adv = jax.lax.stop_gradient(adv)
        order = jax.random.permutation(jax.random.fold_in(jax.random.fold_in(run_key, 2), step), B)
        order = order.reshape(cfg.n_minibatches, mb)

        def loss_fn(p, idx):
            tk, m = tokens[idx], mask[idx]
            if cfg.algo == "grpo" and cfg.grpo_kl == "k3_in_loss":
                lt = token_logprobs(p, tk, P)
                lr = jax.lax.stop_gradient(token_logprobs(ref, tk, P))
                k3 = jnp.exp(lr - lt) + lt - lr - 1.0
                lp_new = jnp.sum(lt * m, -1)
                pen = cfg.beta * jnp.mean(jnp.sum(k3 * m, -1))
            else:
                lp_new = sequence_logprob(p, tk, P, m)
                pen = 0.0
            loss, ratio = clipped_loss(lp_new, lp_old[idx], adv[idx], cfg.clip)
            clipfrac = jnp.mean((jnp.abs(ratio - 1) > cfg.clip).astype(jnp.float32))
            return loss + pen, clipfrac

        def mb_step(carry, idx):
            p, st = carry
            (loss, clipfrac), g = jax.value_and_grad(loss_fn, has_aux=True)(p, idx)
            upd, st = opt.update(g, st, p)
            return (optax.apply_updates(p, upd), st), (loss, clipfrac)

        (params, opt_state), (loss, clipfrac) = jax.lax.scan(mb_step, (params, opt_state), order)
        metrics = dict(kl=jnp.mean(kl_seq), reward=jnp.mean(r), gt=jnp.mean(gt), loss=jnp.mean(loss),
                       clipfrac=jnp.mean(clipfrac), adv_sum=jnp.max(jnp.abs(adv.reshape(Bp, k).sum(-1))))
        return params, opt_state, metrics

    def run_epoch(params, opt_state, rm, c, epoch, ref):
        first_pass = (epoch * S) // per_pass
        perms = jnp.stack([pass_perm(c, first_pass + j) for j in range(n_perms)])

        def body(carry, step):
            p, st = carry
            p, st, m = one_rollout(p, st, rm, c, step, ref, perms, first_pass)
            return (p, st), m

        (params, opt_state), metrics = jax.lax.scan(body, (params, opt_state), epoch * S + jnp.arange(S))
        return params, opt_state, metrics


    if mode == "vmap" and ref is None:
        update_epoch = jax.jit(jax.vmap(run_epoch, in_axes=(0, 0, 0, 0, None, 0)))
    elif mode == "vmap":  # the one reference policy is a constant of the compiled function
        update_epoch = jax.jit(jax.vmap(lambda p, st, rm, c, e: run_epoch(p, st, rm, c, e, ref),
                                        in_axes=(0, 0, 0, 0, None)))
    elif ref is None:  # sequential / cores: lax.map runs the stacked runs one after another
        seq = jax.jit(lambda p, st, rm, c, refs, e: jax.lax.map(lambda a: run_epoch(*a[:4], e, a[4]),
                                                                (p, st, rm, c, refs)))
        seq = _on_cores(seq, 5) if mode == "cores" else seq
        update_epoch = lambda p, st, rm, c, e, refs: seq(p, st, rm, c, refs, e)  # noqa: E731
    else:
        update_epoch = jax.jit(lambda p, st, rm, c, e: jax.lax.map(lambda a: run_epoch(*a, e, ref), (p, st, rm, c)))
        update_epoch = _on_cores(update_epoch, 4) if mode == "cores" else update_epoch

    K = cfg.n_eval_samples
    mu_g, sd_g = gt_stats

    def eval_set(ev: Scaled, salt: int):
        pr = ev.prompts
        tok0, target, tlen, scale = (jnp.repeat(a, K, axis=0) for a in (pr.tokens, pr.target, pr.tlen, ev.scale))

        def one(args, ref):
            params, rm, c = args
            # the same sampling keys at every epoch (common random numbers): an unchanged policy has increase 0
            key = jax.random.fold_in(jax.random.PRNGKey(cfg.seeds.eval), salt * 1_000_003 + 7919 + c.seed)
            tokens, lp, mask = sample(params, tok0, key, L)
            gt = T.ground_truth(target, tlen, tokens[:, P:], spec.n_content)
            # lax.map runs the runs one after another, so this cond really skips the RM for r_G-based sources
            rm_score = jax.lax.cond(c.w_rm != 0, lambda: rm(tokens), lambda: jnp.zeros(tokens.shape[0], jnp.float32))
            raw = raw_reward(rm_score, c, gt, scale, cfg.perfect_shift)
            # log π_θ from the sampler (equal to teacher forcing up to float32 rounding, tested)
            kl = jnp.sum(lp, -1) - sequence_logprob(ref, tokens, P, mask)
            return dict(proxy=jnp.mean((raw - c.mu) / c.sigma), gt=jnp.mean((gt - mu_g) / sd_g),
                        gt_raw=jnp.mean(gt), kl=jnp.mean(kl), length=jnp.mean(mask.sum(-1)))

        return one

    evals = {name: eval_set(ev, i) for i, (name, ev) in enumerate(evsets.items())}

    if ref is None:
        @jax.jit
        def evaluate(params, rms, consts, refs):
            return {name: jax.lax.map(lambda a: f(a[:3], a[3]), (params, rms, consts, refs))
                    for name, f in evals.items()}
    else:
        @jax.jit
        def evaluate(params, rms, consts):
            return {name: jax.lax.map(lambda a: f(a, ref), (params, rms, consts)) for name, f in evals.items()}

    if mode == "cores":  # evaluation is lax.map over runs in every mode; here one block of runs per core
        evaluate = _on_cores(evaluate, 3 if ref is not None else 4)
    return update_epoch, evaluate
