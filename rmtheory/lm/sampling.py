"""Jit-compiled ancestral sampling at temperature 1 (fixed buffers, ``lax.scan`` over steps, one PRNG
key per step via ``fold_in``, a KV cache: the prompt is prefilled once, then one token per step, with no
forward pass after the last token).

The log-probabilities returned here agree with the teacher-forced forward pass up to float32 rounding
(tested); the RL stage uses them as π_old's (:mod:`rmtheory.lm.rloo`).
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

    def draw(last, done, t):
        logp_all = jax.nn.log_softmax(last, axis=-1)
        tok = jax.random.categorical(jax.random.fold_in(key, t), last, axis=-1).astype(jnp.int32)
        lp = jnp.take_along_axis(logp_all, tok[:, None], axis=-1)[:, 0]
        tok = jnp.where(done, PAD, tok)
        lp = jnp.where(done, 0.0, lp)
        live = (~done).astype(jnp.float32)
        return tok, lp, live, done | (tok == EOS)

    def step(carry, t):
        last, cache, done = carry
        tok, lp, live, done = draw(last, done, t)
        logits, cache = model.extend(tok[:, None], P + t, cache)
        return (logits[:, 0], cache, done), (tok, lp, live)

    # the last token needs no forward pass after it: L − 1 steps with the cache, then one draw
    (last, _, done), (toks, lp, live) = jax.lax.scan(step, (logits[:, -1], cache, jnp.zeros(B, bool)),
                                                     jnp.arange(resp_len - 1))
    tok, lp_l, live_l, _ = draw(last, done, resp_len - 1)
    toks, lp, live = (jnp.concatenate([a, b[None]]) for a, b in ((toks, tok), (lp, lp_l), (live, live_l)))
    return jnp.concatenate([prompts, toks.T], axis=1), lp.T, live.T
