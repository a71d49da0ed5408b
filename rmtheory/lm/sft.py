"""The ``sft`` stage's training: supervised fine-tuning of the initial policy on noisy-teacher demonstrations.

Fresh random prompts and demonstrations every step (generated inside the jitted step from the step's
key), so the policy converges towards the teacher's distribution, systematic errors included (task.py).
Adam with linear warmup (5 %) and cosine decay.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from . import task as T
from .model import Transformer, token_logprobs


def sft_loss(model, tokens, prompt_len, mask):
    lp = token_logprobs(model, tokens, prompt_len)
    return -jnp.sum(lp * mask) / jnp.sum(mask)


def warmup_cosine(lr: float, steps: int, warmup: float):
    """Linear warmup over a ``warmup`` fraction of ``steps``, then cosine decay to 0."""
    w = max(1, int(round(warmup * steps)))
    return optax.warmup_cosine_decay_schedule(0.0, lr, w, max(steps, w + 1), 0.0)


def init_policy(cfg):
    spec = cfg.task
    return Transformer.init(jax.random.PRNGKey(cfg.seeds.sft), spec.vocab, spec.seq_len, cfg.d_model,
                            cfg.n_layers, cfg.n_heads)


def make_sft_steps(cfg, opt):
    spec = cfg.task

    def step(carry, i):
        model, opt_state = carry
        key = jax.random.fold_in(jax.random.PRNGKey(cfg.seeds.sft + 1), i)
        kp, kd = jax.random.split(key)
        op, m, letters = T.sample_prompt_parts(kp, spec, cfg.sft_batch)
        prompts, target = T.encode(spec, op, m, letters)
        resp = T.teacher_demos(kd, spec, op, m, letters, cfg.teacher)
        tokens = jnp.concatenate([prompts, resp], axis=1)
        loss, g = jax.value_and_grad(sft_loss)(model, tokens, spec.prompt_len, T.response_mask(resp))
        upd, opt_state = opt.update(g, opt_state, model)
        return (optax.apply_updates(model, upd), opt_state), loss

    chunk = max(d for d in range(1, min(250, cfg.sft_steps) + 1) if cfg.sft_steps % d == 0)

    @jax.jit
    def run(model, opt_state, start):
        return jax.lax.scan(step, (model, opt_state), start + jnp.arange(chunk))

    return run, chunk


def train_sft(cfg, log=print):
    """Returns the SFT policy and the per-step losses."""
    model = init_policy(cfg)
    opt = optax.adam(warmup_cosine(cfg.sft_lr, cfg.sft_steps, 0.05))
    opt_state = opt.init(model)
    run, chunk = make_sft_steps(cfg, opt)
    losses = []
    done = 0
    while done < cfg.sft_steps:
        (model, opt_state), step_losses = run(model, opt_state, done)
        losses.extend(step_losses.tolist())
        done += chunk
        log(f"  sft step {done}/{cfg.sft_steps}  loss {float(jnp.mean(step_losses)):.4f}")
    return model, losses
