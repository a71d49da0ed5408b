"""Jit-compiled ancestral sampling at temperature 1 (fixed buffers, ``lax.scan`` over steps, one PRNG
key per step via ``fold_in``, a KV cache: the prompt is prefilled once, then one token per step).

The log-probabilities returned here agree with the teacher-forced forward pass up to float32 rounding
(tested); the RL stage recomputes π_old teacher-forced anyway, as TRL does.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .model import Transformer
from .task import EOS, PAD


def sample(model: Transformer, prompts, key, resp_len: int):
    """Sample responses for a batch of prompts [B, P].

    Returns ``(tokens [B, P+L], logp [B, L], mask [B, L])``: the full sequences, log π of each sampled
    token (0 after EOS) and the response mask (1 up to and including the first EOS). After the EOS the
    sampler writes PAD deterministically.
    """
    B, P = prompts.shape
    cache = model.init_cache(B, P + resp_len)
    logits, cache = model.extend(prompts, 0, cache)
    last = logits[:, -1]

    def step(carry, t):
        last, cache, done = carry
        logp_all = jax.nn.log_softmax(last, axis=-1)
        tok = jax.random.categorical(jax.random.fold_in(key, t), last, axis=-1).astype(jnp.int32)
        lp = jnp.take_along_axis(logp_all, tok[:, None], axis=-1)[:, 0]
        tok = jnp.where(done, PAD, tok)
        lp = jnp.where(done, 0.0, lp)
        live = (~done).astype(jnp.float32)
        logits, cache = model.extend(tok[:, None], P + t, cache)
        return (logits[:, 0], cache, done | (tok == EOS)), (tok, lp, live)

    _, (toks, lp, live) = jax.lax.scan(step, (last, cache, jnp.zeros(B, bool)), jnp.arange(resp_len))
    return jnp.concatenate([prompts, toks.T], axis=1), lp.T, live.T
