"""Autoregressive tabular policies (Eq. 2 with one free logit vector per prefix).

A policy over Y = V^L for each prompt keeps one logit vector f(x, y_{<l}) ∈ R^{|V|} for every prefix
y_{<l} of length l = 0 … L−1, so its parameters have shape [|X|, P, |V|] with P = Σ_{l<L} |V|^l
prefixes. The induced distribution over complete outputs is

    π_θ(y|x) = Π_{l=1}^{L} softmax(f_θ(x, y_{<l}))_{y_l},

and the Jacobian of the logits w.r.t. θ is a coordinate selection, so J = 1 (docs/theory.md, "Setting").
Outputs are indexed in base |V| with the first token most significant.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def num_prefixes(vocab: int, length: int) -> int:
    """P = Σ_{l=0}^{L−1} |V|^l."""
    return sum(vocab**ell for ell in range(length))


@functools.lru_cache(maxsize=None)
def prefix_table(vocab: int, length: int):
    """(tokens [|V|^L, L], prefix_index [|V|^L, L]): the tokens of every output and the index of the
    prefix y_{<l} that emits token l."""
    if vocab < 2 or length < 1:
        raise ValueError(f"vocab must be >= 2 and length >= 1; got vocab={vocab}, length={length}")
    n = vocab**length
    ys = np.arange(n)
    tokens = np.stack([(ys // vocab ** (length - 1 - ell)) % vocab for ell in range(length)], axis=1)
    offsets = np.cumsum([0] + [vocab**ell for ell in range(length)])[:-1]
    index = np.zeros((n, length), np.int64)
    for ell in range(length):
        code = np.zeros(n, np.int64)
        for i in range(ell):
            code = code * vocab + tokens[:, i]
        index[:, ell] = offsets[ell] + code
    return tokens, index


def sequence_log_probs(prefix_logits: Array) -> Array:
    """ln π_θ(y|x) for every y ∈ V^L: [..., P, |V|] → [..., |V|^L] (length L inferred from P)."""
    p, vocab = prefix_logits.shape[-2], prefix_logits.shape[-1]
    length = 1
    while num_prefixes(vocab, length) < p:
        length += 1
    if num_prefixes(vocab, length) != p:
        raise ValueError(f"prefix_logits has {p} prefixes, which is not Σ_l |V|^l for |V| = {vocab}")
    tokens, index = prefix_table(vocab, length)
    logp = jax.nn.log_softmax(prefix_logits, axis=-1)  # [..., P, V]
    per_token = logp[..., index, tokens]  # [..., V^L, L]
    return jnp.sum(per_token, axis=-1)


def sequence_probs(prefix_logits: Array) -> Array:
    """The induced distribution over Y = V^L, [..., |V|^L]."""
    return jnp.exp(sequence_log_probs(prefix_logits))


def random_prefix_logits(key, n_prompts: int, vocab: int, length: int, scale: float = 1.0) -> Array:
    """Gaussian per-prefix logits × ``scale``, shape [n_prompts, P, |V|]."""
    return scale * jax.random.normal(key, (n_prompts, num_prefixes(vocab, length), vocab), jnp.float64)
