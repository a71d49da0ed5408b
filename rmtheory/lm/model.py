"""A minimal nanoGPT-style decoder-only transformer in equinox, and the reward model built on it.

Parameters are float32 on purpose: the LM pipeline runs on CPU and float32 matmuls are about twice as
fast as float64 there (the rest of rmtheory enables float64 for the theory code; every array here is
created with an explicit float32/int32 dtype so the global x64 flag does not leak in).

Pre-LayerNorm blocks (causal multi-head attention + ReLU MLP; ReLU rather than GELU because the tanh
is a visible share of CPU time at this size), learned positional embeddings, an untied
LM head. All forward functions take a batch of token sequences [B, T] (int32).
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .task import response_mask

F32 = jnp.float32


def _normal(key, shape, std):
    return (std * jax.random.normal(key, shape, F32)).astype(F32)


class Block(eqx.Module):
    ln1: jax.Array  # [2, d] gain, bias
    wqkv: jax.Array  # [d, 3d]
    wo: jax.Array  # [d, d]
    ln2: jax.Array
    w1: jax.Array  # [d, 4d]
    b1: jax.Array
    w2: jax.Array  # [4d, d]
    b2: jax.Array

    @staticmethod
    def init(key, d, n_layers):
        k = jax.random.split(key, 4)
        ln = jnp.stack([jnp.ones(d, F32), jnp.zeros(d, F32)])
        resid_std = 0.02 / math.sqrt(2 * n_layers)
        return Block(ln, _normal(k[0], (d, 3 * d), 0.02), _normal(k[1], (d, d), resid_std), ln,
                     _normal(k[2], (d, 4 * d), 0.02), jnp.zeros(4 * d, F32),
                     _normal(k[3], (4 * d, d), resid_std), jnp.zeros(d, F32))


def _layernorm(x, p):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) * jax.lax.rsqrt(var + 1e-5) * p[0] + p[1]


class Transformer(eqx.Module):
    tok_emb: jax.Array  # [V, d]
    pos_emb: jax.Array  # [T, d]
    blocks: tuple
    lnf: jax.Array
    head: jax.Array  # [d, V]
    n_heads: int = eqx.field(static=True)

    @staticmethod
    def init(key, vocab: int, seq_len: int, d_model: int, n_layers: int, n_heads: int) -> "Transformer":
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        for name, v in (("vocab", vocab), ("seq_len", seq_len), ("d_model", d_model), ("n_layers", n_layers)):
            if v < 1:
                raise ValueError(f"{name} must be >= 1; got {v}")
        ks = jax.random.split(key, n_layers + 3)
        blocks = tuple(Block.init(ks[i], d_model, n_layers) for i in range(n_layers))
        ln = jnp.stack([jnp.ones(d_model, F32), jnp.zeros(d_model, F32)])
        return Transformer(_normal(ks[-3], (vocab, d_model), 0.02), _normal(ks[-2], (seq_len, d_model), 0.02),
                           blocks, ln, _normal(ks[-1], (d_model, vocab), 0.02), n_heads)

    def hidden(self, tokens):
        """Final (normalised) hidden states [B, T, d] of a batch of sequences [B, T]."""
        B, T = tokens.shape
        d = self.tok_emb.shape[1]
        H = self.n_heads
        dh = d // H
        h = self.tok_emb[tokens] + self.pos_emb[:T]
        causal = jnp.tril(jnp.ones((T, T), bool))
        for blk in self.blocks:
            x = _layernorm(h, blk.ln1)
            q, k, v = jnp.split(x @ blk.wqkv, 3, axis=-1)
            q, k, v = (a.reshape(B, T, H, dh) for a in (q, k, v))
            att = jnp.einsum("bthd,bshd->bhts", q, k) / math.sqrt(dh)
            att = jax.nn.softmax(jnp.where(causal, att, -1e9), axis=-1)
            h = h + jnp.einsum("bhts,bshd->bthd", att, v).reshape(B, T, d) @ blk.wo
            x = _layernorm(h, blk.ln2)
            h = h + jax.nn.relu(x @ blk.w1 + blk.b1) @ blk.w2 + blk.b2
        return _layernorm(h, self.lnf)

    def __call__(self, tokens):
        """Next-token logits [B, T, V]."""
        return self.hidden(tokens) @ self.head

    def init_cache(self, batch: int, length: int):
        """Empty KV cache: per layer (K, V) of shape [B, length, H, dh]."""
        d = self.tok_emb.shape[1]
        shape = (batch, length, self.n_heads, d // self.n_heads)
        return tuple((jnp.zeros(shape, F32), jnp.zeros(shape, F32)) for _ in self.blocks)

    def extend(self, tokens, pos0, cache):
        """Process new tokens [B, n] at positions pos0..pos0+n−1 given the KV cache of the earlier
        positions; returns (logits [B, n, V], updated cache). Same maths as ``__call__``."""
        B, n = tokens.shape
        d = self.tok_emb.shape[1]
        H = self.n_heads
        dh = d // H
        Tc = cache[0][0].shape[1]
        qpos = pos0 + jnp.arange(n)
        h = self.tok_emb[tokens] + jax.lax.dynamic_slice_in_dim(self.pos_emb, pos0, n)
        allowed = jnp.arange(Tc)[None, :] <= qpos[:, None]  # [n, Tc]
        new_cache = []
        for blk, (K, V) in zip(self.blocks, cache):
            x = _layernorm(h, blk.ln1)
            q, k, v = jnp.split(x @ blk.wqkv, 3, axis=-1)
            q, k, v = (a.reshape(B, n, H, dh) for a in (q, k, v))
            K = jax.lax.dynamic_update_slice_in_dim(K, k, pos0, axis=1)
            V = jax.lax.dynamic_update_slice_in_dim(V, v, pos0, axis=1)
            att = jnp.einsum("bthd,bshd->bhts", q, K) / math.sqrt(dh)
            att = jax.nn.softmax(jnp.where(allowed, att, -1e9), axis=-1)
            h = h + jnp.einsum("bhts,bshd->bthd", att, V).reshape(B, n, d) @ blk.wo
            x = _layernorm(h, blk.ln2)
            h = h + jax.nn.relu(x @ blk.w1 + blk.b1) @ blk.w2 + blk.b2
            new_cache.append((K, V))
        return _layernorm(h, self.lnf) @ self.head, tuple(new_cache)


class RewardModel(eqx.Module):
    """The policy backbone plus a scalar head; the head starts at zero (so every score starts at 0).

    Readouts over the response positions t = 1..|y|+1 (up to and including the first EOS), with h_s the
    final hidden state at position s and P the prompt length:

    * ``token`` (default): r = mean_t h_{P+t−2} · u[:, y_t] + b — each response token is scored by the
      state that predicts it (the LM head's form, with its own zero-initialised matrix u [d, V]);
    * ``mean``: r = (mean_t h_{P+t−1}) · w + b — masked mean pooling;
    * ``last``: r = h_{T−1} · w + b — the last position (attends to everything, padding included).
    """

    backbone: Transformer
    u: jax.Array  # [d, V] token readout (zeros unless readout == "token")
    w: jax.Array  # [d] pooled readout
    b: jax.Array  # []
    prompt_len: int = eqx.field(static=True)
    readout: str = eqx.field(static=True)

    @staticmethod
    def from_policy(policy: Transformer, prompt_len: int, readout: str = "token") -> "RewardModel":
        if readout not in ("token", "mean", "last"):
            raise ValueError(f"readout must be 'token', 'mean' or 'last'; got {readout!r}")
        d, V = policy.head.shape
        return RewardModel(policy, jnp.zeros((d, V), F32), jnp.zeros((d,), F32), jnp.zeros((), F32), prompt_len,
                           readout)

    def __call__(self, tokens):
        """Scalar rewards [B] of full sequences [B, T] (prompt + response)."""
        h = self.backbone.hidden(tokens)
        P = self.prompt_len
        if self.readout == "last":
            return h[:, -1] @ self.w + self.b
        resp = tokens[:, P:]
        mask = response_mask(resp)
        if self.readout == "mean":
            pooled = jnp.sum(h[:, P:] * mask[..., None], 1) / jnp.sum(mask, 1, keepdims=True)
            return pooled @ self.w + self.b
        logits = h[:, P - 1 : -1] @ self.u  # [B, L, V]
        tok = jnp.take_along_axis(logits, resp[..., None], axis=-1)[..., 0]
        return jnp.sum(tok * mask, 1) / jnp.sum(mask, 1) + self.b


def in_chunks(fn, x, batch: int, axis: int = 0, pad: bool = False):
    """``fn`` applied to row chunks ``x[i : i + batch]`` (host arrays), outputs concatenated along ``axis``
    (numpy). ``pad`` repeats the last row so that every call has one shape (one compile); padded outputs are
    dropped. ``fn`` gets the chunk and its index."""
    x = np.asarray(x)
    n = len(x)
    extra = (-n) % batch if (pad and n > batch) else 0
    if extra:
        x = np.concatenate([x, np.repeat(x[-1:], extra, axis=0)])
    out = np.concatenate([np.asarray(fn(jnp.asarray(x[i : i + batch]), i // batch)) for i in range(0, len(x), batch)],
                         axis=axis)
    return np.take(out, np.arange(n), axis=axis)


def param_count(model) -> int:
    return int(sum(x.size for x in jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_array))))


def token_logprobs(model: Transformer, tokens, prompt_len: int):
    """Teacher-forced log π(y_t | x, y_<t) of the response tokens [B, L] (unmasked)."""
    logits = model(tokens)[:, prompt_len - 1 : -1]
    logp = jax.nn.log_softmax(logits, axis=-1)
    return jnp.take_along_axis(logp, tokens[:, prompt_len:, None], axis=-1)[..., 0]


def sequence_logprob(model: Transformer, tokens, prompt_len: int, mask):
    """Σ_t log π(y_t | ·) over the generated response tokens (mask [B, L]: up to and including EOS)."""
    return jnp.sum(token_logprobs(model, tokens, prompt_len) * mask, axis=-1)
