"""The teaching-rate inputs of the miniature LM: exact per-sample score vectors of the policy, in one pass.

For the K samples y_1..y_K of a prompt x, g_i = ∇_θ log π(y_i | x) is the gradient, over every parameter of the
policy, of the summed log-probabilities of the generated response tokens (up to and including EOS; after it the
sampler writes PAD deterministically). :func:`score_vector_pass` computes them exactly (``vmap(grad)`` over
samples, a chunk of prompts at a time, float32 gradients) and never stores more than one chunk of them. From
each chunk it keeps

* the within-prompt Gram matrices G_x[i, j] = ⟨g_i, g_j⟩ (accumulated in float32, returned as float64): the
  per-prompt estimator (:func:`rmtheory._rate_estimator.rate_from_gram`) needs only these;
* a count sketch S·g_i of dimension ``sketch_dim`` (``rmtheory._sketch``, kind ``countsketch``, seeded): vectors
  whose inner products across prompts are unbiased for the exact ones, which the pooled rate needs;
* the streaming sums of :class:`rmtheory.RateAccumulator` for every score source: the pooled, per-prompt,
  Adam-geometry and sign rates from the exact gradients (``docs/teaching_rate.md`` §6–7).

:func:`export_rates` writes the two files ``rmtheory evaluate --sketches`` reads beside an ``eval_rewards``-style
export: ``<stem>_sketches.npz``, per prompt the rows of a factor F_x with F_x F_xᵀ = G_x (``sketch_kind =
"gram_factor"``: exact within a prompt, meaningless across prompts, so evaluate reports the per-prompt columns
only), and ``<stem>_projections.npz`` (``sketch_kind = "countsketch"``: evaluate reports the pooled columns too);
and returns the exact rates, which the stages save as ``<stem>_rates.json``.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import rmtheory

from .._optimizer_rate import ADAM_EPS, RateAccumulator
from .._rate_estimator import pooled_rate_estimate
from .._rm_eval import normalisation_stats, normalise
from .._sketch import check_spec, countsketch_hash, sketch_variance
from .model import Transformer, param_count, sequence_logprob
from .task import response_mask

__all__ = ["score_vector_grams", "score_vector_pass", "gram_factors", "save_gram_sketches", "save_projections",
           "export_rates", "export_policy_rates", "rl_minibatch", "SKETCH_DIM", "SKETCH_SEED", "ADAM_EPS"]

SKETCH_DIM = 4096   # count-sketch width of the exported projections (its SE is reported in the rates)
SKETCH_SEED = 0


def rl_minibatch(cfg) -> int:
    """Samples per RL optimiser step: batch_prompts · k / n_minibatches (the m of the Adam-geometry rate)."""
    return cfg.batch_prompts * cfg.k // cfg.n_minibatches


def export_policy_rates(stem: str, cfg, model: Transformer, tokens, prompt_ids, scores: dict, gt) -> dict:
    """:func:`export_rates` with the pipeline's settings (K = ``cfg.n_eval_samples``, m = :func:`rl_minibatch`,
    ε = :data:`ADAM_EPS`), the rates also saved as ``<stem>_rates.json``; returns them."""
    out = export_rates(stem, model, tokens, cfg.task.prompt_len, prompt_ids, cfg.n_eval_samples, scores, gt,
                       rl_minibatch(cfg), ADAM_EPS)
    rmtheory.io.save_json(stem + "_rates.json", out)
    return out


def _flat_score_vectors(static, prompt_len: int):
    """(params, tokens [B·K, T]) ↦ [B·K, D]: each sample's ∇_θ log π(y|x) over every parameter, flattened leaf by
    leaf in ``jax.tree_util`` order (traceable; the one definition the jitted passes below share)."""
    def log_prob(params, tokens, mask):
        model = eqx.combine(params, static)
        return sequence_logprob(model, tokens[None], prompt_len, mask[None])[0]

    def flat(params, tokens):
        mask = response_mask(tokens[:, prompt_len:])
        g = jax.vmap(jax.grad(log_prob), in_axes=(None, 0, 0))(params, tokens, mask)
        return jnp.concatenate([x.reshape(x.shape[0], -1) for x in jax.tree_util.tree_leaves(g)], axis=1)

    return flat


def _within_grams(flat, k: int):
    per = flat.reshape(-1, k, flat.shape[-1])
    return jnp.einsum("pid,pjd->pij", per, per, preferred_element_type=jnp.float32)


def _gram_fn(static, prompt_len: int, k: int):
    score_vectors = _flat_score_vectors(static, prompt_len)
    return jax.jit(lambda params, tokens: _within_grams(score_vectors(params, tokens), k))   # → [B, K, K]


def _pass_fn(static, prompt_len: int, k: int, dim: int):
    score_vectors = _flat_score_vectors(static, prompt_len)

    @jax.jit
    def fn(params, tokens, bucket, sign):  # tokens [B·K, T] → Gram [B, K, K], count sketch [B·K, dim], g [B·K, D]
        flat = score_vectors(params, tokens)
        sk = jax.ops.segment_sum((flat * sign).T, bucket, dim).T          # (S g)_r = Σ_{h(k)=r} s(k) g_k
        return _within_grams(flat, k), sk, flat

    return fn


def _chunks(tokens, k: int, chunk_prompts: int):
    """Check ``tokens`` [P·K, T] (at once) and return (P, an iterator of (first prompt, prompts in the chunk,
    [b·K, T] tokens)) over chunks of b = min(chunk_prompts, P) prompts, the last one padded by repeating its
    first prompt (one compiled shape)."""
    tokens = np.asarray(tokens)
    if tokens.ndim != 2 or tokens.shape[0] % k:
        raise ValueError(f"tokens must have shape [P*K, T] with K = {k}; got {list(tokens.shape)}")
    if k < 2:
        raise ValueError(f"k must be >= 2 (the rate pairs samples of a prompt); got {k}")
    n_prompts = tokens.shape[0] // k
    b = max(1, min(chunk_prompts, n_prompts))

    def chunks():
        for start in range(0, n_prompts, b):
            chunk = tokens[start * k:(start + b) * k]
            n = chunk.shape[0] // k
            if n < b:
                chunk = np.concatenate([chunk, np.tile(chunk[:k], (b - n, 1))])
            yield start, n, jnp.asarray(chunk)

    return n_prompts, chunks()


def score_vector_pass(model: Transformer, tokens, prompt_len: int, k: int, scores=None, measure: int | None = None,
                      sketch_dim: int = SKETCH_DIM, sketch_seed: int = SKETCH_SEED, chunk_prompts: int = 50):
    """One pass over the exact score vectors of the samples ``tokens`` [P·K, T] (prompt x's K samples
    consecutive): (Gram matrices [P, K, K] float64, count sketches [P·K, sketch_dim] float32, accumulator).

    The count sketch is S·g with S of ``rmtheory._sketch`` (kind ``countsketch``, ``sketch_seed``, one block
    named ``"theta"``: the parameters flattened leaf by leaf in ``jax.tree_util`` order). ``scores`` [P, K, S]
    (optional): the normalised scores of S sources, fed with the exact gradients to a
    :class:`rmtheory.RateAccumulator` (``measure`` the index of the ground truth among them); None without.
    The last chunk is padded by repeating its first prompt and the padding dropped."""
    n_prompts, chunks = _chunks(tokens, k, chunk_prompts)
    params, static = eqx.partition(model, eqx.is_array)
    d = param_count(model)
    spec = check_spec(sketch_dim, sketch_seed, "countsketch")
    bucket, sign = countsketch_hash(spec, "theta", d)
    fn = _pass_fn(static, prompt_len, k, spec.dim)
    acc = None
    if scores is not None:
        scores = np.asarray(scores, np.float64)
        if scores.shape[:2] != (n_prompts, k) or scores.ndim != 3:
            raise ValueError(f"scores must have shape [{n_prompts}, {k}, sources]; got {list(scores.shape)}")
        acc = RateAccumulator(d, scores.shape[2], k, measure=measure)
    grams = np.empty((n_prompts, k, k))
    sk = np.empty((n_prompts * k, spec.dim), np.float32)
    bj, sj = jnp.asarray(bucket, jnp.int32), jnp.asarray(sign, jnp.float32)
    for start, n, chunk in chunks:
        gr, s, flat = fn(params, chunk, bj, sj)
        grams[start:start + n] = np.asarray(gr, np.float64)[:n]
        sk[start * k:(start + n) * k] = np.asarray(s)[:n * k]
        if acc is not None:
            acc.add(scores[start:start + n], flat[:n * k].reshape(n, k, d), gram=grams[start:start + n])
    return grams, sk, acc


def score_vector_grams(model: Transformer, tokens, prompt_len: int, k: int, chunk_prompts: int = 50) -> np.ndarray:
    """[P, K, K] float64: G[x, i, j] = ⟨∇_θ log π(y_xi|x), ∇_θ log π(y_xj|x)⟩ for the samples ``tokens``
    [P·K, T] (prompt x's K samples consecutive, as in ``samples.npz``), all of the policy's parameters.

    Chunks of ``chunk_prompts`` prompts share one compiled function (the last chunk is padded by repeating
    its first prompt and the padding dropped); other chunkings agree to float32 rounding (~1e-7 relative).
    Checked against one ``jax.grad`` per sample in ``tests/lm/test_lm_teaching_rate.py``."""
    n_prompts, chunks = _chunks(tokens, k, chunk_prompts)
    params, static = eqx.partition(model, eqx.is_array)
    fn = _gram_fn(static, prompt_len, k)
    out = np.empty((n_prompts, k, k))
    for start, n, chunk in chunks:
        out[start:start + n] = np.asarray(fn(params, chunk), np.float64)[:n]
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


def save_projections(path: str, prompt_ids, sketches, k: int, param_dim: int, sketch_seed: int = SKETCH_SEED) -> str:
    """Write ``rmtheory evaluate``'s sketch file of count sketches [P·K, D'] (rows as in :func:`save_gram_sketches`;
    ``sketch_kind = "countsketch"``, ``sketch_seed``, ``param_dim``), atomically."""
    p = len(prompt_ids)
    return rmtheory.io.save_npz(path, prompt_id=np.repeat(np.asarray(prompt_ids).astype(str), k),
                                sample_id=np.tile(np.arange(k), p).astype(str), g=np.asarray(sketches, np.float32),
                                sketch_kind=np.array("countsketch"), sketch_seed=np.array(int(sketch_seed)),
                                param_dim=np.array(int(param_dim)))


def export_rates(stem: str, model: Transformer, tokens, prompt_len: int, prompt_ids, k: int, scores: dict, gt,
                 batch: int, eps: float = ADAM_EPS, sketch_dim: int = SKETCH_DIM,
                 sketch_seed: int = SKETCH_SEED) -> dict:
    """Score vectors of ``model``'s samples ``tokens`` [P·K, T] in one pass → ``<stem>_sketches.npz`` (Gram
    factors) and ``<stem>_projections.npz`` (count sketches) for ``rmtheory evaluate --sketches``, and the exact
    rates of every [P, K] score array of ``scores`` against the ground truth ``gt`` [P, K] (each z-scored
    globally, as evaluate does): {name: {rate_g, rate_self (pooled), rate_g_within, rate_self_within, rate_adam,
    rate_adam_self, rate_sign, rate_sign_self, their SEs, and the pooled rate_g from the count sketches with its
    predicted sketch SE}} plus ``"ground_truth"``'s own (rate_g = ‖ū_G‖²). ``batch``: the optimiser's minibatch in
    samples; ``eps``: Adam's ε (the Adam-geometry rate, :func:`rmtheory.adam_direction`)."""
    names = ["ground_truth"] + [n for n in scores if n != "ground_truth"]
    raw = {"ground_truth": np.asarray(gt, np.float64), **{n: np.asarray(scores[n], np.float64) for n in names[1:]}}
    z = np.stack([normalise(raw[n], normalisation_stats(raw[n], "global")) for n in names], -1)     # [P, K, S]
    grams, sk, acc = score_vector_pass(model, tokens, prompt_len, k, z, 0, sketch_dim, sketch_seed)
    d = param_count(model)
    save_gram_sketches(stem + "_sketches.npz", prompt_ids, grams, d)
    save_projections(stem + "_projections.npz", prompt_ids, sk, k, d, sketch_seed)
    res = acc.rates(batch, eps)
    g_sk = jnp.asarray(sk.reshape(len(prompt_ids), k, -1), jnp.float64)
    zj = jnp.asarray(z)
    u_bar = acc.mean_gradient(0)
    out = {}
    for i, n in enumerate(names):
        r = res[i]
        pe = pooled_rate_estimate(zj[..., 0], zj[..., i], g_sk)
        v_bar = acc.mean_gradient(i)
        out[n] = {"rate_g": r.pooled_g, "rate_g_se": r.pooled_g_se, "rate_self": r.pooled_self,
                  "rate_self_se": r.pooled_self_se, "rate_g_within": r.within_g, "rate_g_within_se": r.within_g_se,
                  "rate_self_within": r.within_self, "rate_self_within_se": r.within_self_se,
                  "rate_adam": r.adam_g, "rate_adam_self": r.adam_self, "rate_sign": r.sign_g,
                  "rate_sign_self": r.sign_self, "rate_g_countsketch": float(pe.total),
                  "countsketch_se": float(np.sqrt(sketch_variance(u_bar, v_bar, sketch_dim, "countsketch")))}
    return {"sources": out, "batch": int(batch), "eps": float(eps), "param_dim": d, "sketch_dim": int(sketch_dim),
            "sketch_seed": int(sketch_seed), "prompts": len(prompt_ids), "k": int(k)}
