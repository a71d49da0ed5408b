"""The teaching-rate inputs of the miniature LM: exact per-sample score vectors of the policy, as Gram matrices.

For the K samples y_1..y_K of a prompt x, g_i = ∇_θ log π(y_i | x) is the gradient, over every parameter of the
policy, of the summed log-probabilities of the generated response tokens (up to and including EOS; after it the
sampler writes PAD deterministically). The per-prompt estimator of the teaching rate
(:func:`rmtheory._rate_estimator.rate_from_gram`, ``docs/rate_estimator.md``) needs only the within-prompt inner
products G_x[i, j] = ⟨g_i, g_j⟩, so the pipeline computes these exactly (``vmap(grad)`` over samples, a chunk of
prompts at a time, float32 gradients, the Gram matrix accumulated in float32 and returned as float64) and never
stores a gradient.

``rmtheory evaluate --sketches`` reads score vectors, not Gram matrices. :func:`save_gram_sketches` writes, per
prompt, the rows of a factor F_x with F_x F_xᵀ = G_x (F_x = V √Λ from G_x = V Λ Vᵀ, negative rounding-level
eigenvalues set to 0): K-dimensional vectors whose inner products within a prompt are the exact ones. Inner
products *across* prompts mean nothing there (``sketch_kind = "gram_factor"`` says so), which the per-prompt
estimator never uses.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import rmtheory

from .._rate_estimator import rate_from_gram
from .._rm_eval import normalisation_stats, normalise
from .model import Transformer, param_count, sequence_logprob
from .task import response_mask

__all__ = ["score_vector_grams", "gram_factors", "save_gram_sketches", "export_sketches", "rates"]


def _gram_fn(static, prompt_len: int, k: int):
    def log_prob(params, tokens, mask):
        model = eqx.combine(params, static)
        return sequence_logprob(model, tokens[None], prompt_len, mask[None])[0]

    @jax.jit
    def grams(params, tokens):  # tokens [B·K, T] → [B, K, K]
        mask = response_mask(tokens[:, prompt_len:])
        g = jax.vmap(jax.grad(log_prob), in_axes=(None, 0, 0))(params, tokens, mask)
        flat = jnp.concatenate([x.reshape(x.shape[0], -1) for x in jax.tree_util.tree_leaves(g)], axis=1)
        flat = flat.reshape(-1, k, flat.shape[-1])
        return jnp.einsum("pid,pjd->pij", flat, flat, preferred_element_type=jnp.float32)

    return grams


def score_vector_grams(model: Transformer, tokens, prompt_len: int, k: int, chunk_prompts: int = 50) -> np.ndarray:
    """[P, K, K] float64: G[x, i, j] = ⟨∇_θ log π(y_xi|x), ∇_θ log π(y_xj|x)⟩ for the samples ``tokens``
    [P·K, T] (prompt x's K samples consecutive, as in ``samples.npz``), all of the policy's parameters.

    Chunks of ``chunk_prompts`` prompts share one compiled function (the last chunk is padded by repeating
    its first prompt and the padding dropped); other chunkings agree to float32 rounding (~1e-7 relative).
    Checked against one ``jax.grad`` per sample in ``tests/lm/test_lm_teaching_rate.py``."""
    tokens = np.asarray(tokens)
    if tokens.ndim != 2 or tokens.shape[0] % k:
        raise ValueError(f"tokens must have shape [P*K, T] with K = {k}; got {list(tokens.shape)}")
    if k < 2:
        raise ValueError(f"k must be >= 2 (the rate pairs samples of a prompt); got {k}")
    n_prompts = tokens.shape[0] // k
    params, static = eqx.partition(model, eqx.is_array)
    fn = _gram_fn(static, prompt_len, k)
    b = max(1, min(chunk_prompts, n_prompts))
    out = np.empty((n_prompts, k, k))
    for start in range(0, n_prompts, b):
        chunk = tokens[start * k:(start + b) * k]
        n = chunk.shape[0] // k
        if n < b:
            chunk = np.concatenate([chunk, np.tile(chunk[:k], (b - n, 1))])
        out[start:start + n] = np.asarray(fn(params, jnp.asarray(chunk)), np.float64)[:n]
    return out


def gram_factors(grams) -> np.ndarray:
    """[P, K, K] factors F with F Fᵀ = G for the [P, K, K] symmetric PSD Gram matrices G (eigenvalues below 0,
    from rounding, set to 0): F = V √max(Λ, 0)."""
    g = np.asarray(grams, np.float64)
    g = 0.5 * (g + np.swapaxes(g, 1, 2))
    lam, vec = np.linalg.eigh(g)
    return vec * np.sqrt(np.clip(lam, 0.0, None))[:, None, :]


def save_gram_sketches(path: str, prompt_ids, grams, param_dim: int) -> str:
    """Write ``rmtheory evaluate``'s sketch file from Gram matrices: rows ``prompt_id`` (``prompt_ids`` [P], each
    repeated K times), ``sample_id`` 0..K−1 (as in ``eval_rewards.csv``), ``g`` = the rows of
    :func:`gram_factors` [P·K, K] and ``sketch_kind = "gram_factor"``, ``param_dim``; atomically."""
    f = gram_factors(grams)
    p, k, _ = f.shape
    return rmtheory.io.save_npz(path, prompt_id=np.repeat(np.asarray(prompt_ids).astype(str), k),
                                sample_id=np.tile(np.arange(k), p).astype(str), g=f.reshape(p * k, k),
                                sketch_kind=np.array("gram_factor"), param_dim=np.array(int(param_dim)))


def export_sketches(path: str, model: Transformer, tokens, prompt_len: int, prompt_ids, k: int) -> np.ndarray:
    """The exact Gram matrices of ``model``'s score vectors for its samples ``tokens`` [P·K, T] and the sketch
    file beside an ``eval_rewards``-style export (``prompt_ids`` [P]); returns the [P, K, K] Gram matrices."""
    grams = score_vector_grams(model, tokens, prompt_len, k)
    save_gram_sketches(path, prompt_ids, grams, param_count(model))
    return grams


def rates(scores: dict, gt, grams) -> dict:
    """{name: {"rate_g", "rate_self"}}: the per-prompt rate estimates averaged over prompts, for each [P, K] score
    array of ``scores`` against the ground truth ``gt`` [P, K], each z-scored globally (its own mean and std over
    all samples), exactly as ``rmtheory evaluate --sketches`` computes them."""
    a = jnp.asarray(normalise(gt, normalisation_stats(gt, "global")))
    out = {}
    for name, v in scores.items():
        b = jnp.asarray(normalise(v, normalisation_stats(v, "global")))
        rg, rs, _, _ = rate_from_gram(a, b, jnp.asarray(grams))
        out[name] = {"rate_g": float(jnp.mean(rg)), "rate_self": float(jnp.mean(rs))}
    return out
