"""``rmtheory.lm.teaching_rate``: the exact within-prompt Gram matrices of the policy's score vectors, their
factorisation into ``rmtheory evaluate``'s sketch file, the count sketches and streaming rates of the one-pass
export, and the rates evaluate computes from them."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rmtheory as rt
from rmtheory._rate_estimator import rate_from_gram
from rmtheory._sketch import sketch
from rmtheory._rm_eval import normalisation_stats, normalise
from rmtheory.evaluate import evaluate
from rmtheory.lm import teaching_rate as TR
from rmtheory.lm.model import Transformer, sequence_logprob
from rmtheory.lm.sampling import sample
from rmtheory.lm.task import response_mask

PROMPT_LEN, RESP_LEN, VOCAB, K, N_PROMPTS = 5, 4, 9, 4, 6


@pytest.fixture(scope="module")
def policy_and_samples():
    model = Transformer.init(jax.random.PRNGKey(0), VOCAB, PROMPT_LEN + RESP_LEN, 16, 1, 2)
    prompts = jax.random.randint(jax.random.PRNGKey(1), (N_PROMPTS, PROMPT_LEN), 3, VOCAB)
    tokens, _, _ = sample(model, jnp.repeat(prompts, K, axis=0), jax.random.PRNGKey(2), RESP_LEN)
    return model, np.asarray(tokens)


def _one_sample_gradients(model, tokens):
    """∇_θ log π(y|x) of each sample by its own jax.grad (no vmap), flattened, float64."""
    params, static = eqx.partition(model, eqx.is_array)

    def log_prob(p, t):
        return sequence_logprob(eqx.combine(p, static), t[None], PROMPT_LEN, response_mask(t[None, PROMPT_LEN:]))[0]

    grad = jax.jit(jax.grad(log_prob))
    return np.stack([np.concatenate([np.asarray(x, np.float64).ravel()
                                     for x in jax.tree_util.tree_leaves(grad(params, jnp.asarray(t)))])
                     for t in tokens])


def test_grams_equal_inner_products_of_per_sample_gradients(policy_and_samples):
    model, tokens = policy_and_samples
    g = _one_sample_gradients(model, tokens).reshape(N_PROMPTS, K, -1)
    exact = np.einsum("pid,pjd->pij", g, g)
    got = TR.score_vector_grams(model, tokens, PROMPT_LEN, K, chunk_prompts=4)   # 4 + a padded chunk of 2
    assert got.shape == (N_PROMPTS, K, K) and got.dtype == np.float64
    np.testing.assert_allclose(got, exact, rtol=1e-4, atol=1e-6 * np.abs(exact).max())
    # a wrong mask (every response token counted, also the PADs after EOS) would differ
    assert np.abs(exact).max() > 0


def test_gram_factors_reproduce_the_grams(policy_and_samples):
    model, tokens = policy_and_samples
    G = TR.score_vector_grams(model, tokens, PROMPT_LEN, K)
    F = TR.gram_factors(G)
    np.testing.assert_allclose(F @ np.swapaxes(F, 1, 2), G, rtol=1e-9, atol=1e-9 * np.abs(G).max())


def test_evaluate_rates_from_the_exported_sketches_equal_the_estimator_on_the_grams(policy_and_samples, tmp_path):
    model, tokens = policy_and_samples
    G = TR.score_vector_grams(model, tokens, PROMPT_LEN, K)
    rng = np.random.default_rng(0)
    gt, rm = rng.normal(size=(N_PROMPTS, K)), rng.normal(size=(N_PROMPTS, K))
    ids = np.arange(100, 100 + N_PROMPTS)
    path = TR.save_gram_sketches(str(tmp_path / "s.npz"), ids, G, param_dim=123)
    table = {"prompt_id": np.repeat(ids, K), "sample_id": np.tile(np.arange(K), N_PROMPTS),
             "rm": rm.ravel(), "ground_truth": gt.ravel()}
    report = evaluate(table, ground_truth="ground_truth", sketches=path, bootstrap=0)
    got = {m.name: m for m in report.models}["rm"]
    with jax.enable_x64(True):
        a = normalise(gt, normalisation_stats(gt, "global"))
        b = normalise(rm, normalisation_stats(rm, "global"))
        rg, rs, _, _ = rate_from_gram(jnp.asarray(a), jnp.asarray(b), jnp.asarray(G))
    np.testing.assert_allclose([got.rate_g_within, got.rate_self_within], [float(np.mean(rg)), float(np.mean(rs))],
                               rtol=1e-9)
    assert report.meta["sketches"]["sketch_kind"] == "gram_factor" and np.isnan(got.rate_g)


def test_bad_arguments_are_named(policy_and_samples):
    model, tokens = policy_and_samples
    with pytest.raises(ValueError, match="k must be >= 2"):
        TR.score_vector_grams(model, tokens, PROMPT_LEN, 1)
    with pytest.raises(ValueError, match=r"tokens must have shape \[P\*K, T\]"):
        TR.score_vector_grams(model, tokens[:-1], PROMPT_LEN, K)


def test_one_pass_sketches_and_rates_equal_those_of_the_exact_per_sample_gradients(policy_and_samples, tmp_path):
    """score_vector_pass's count sketches are _sketch.sketch of the exact gradients (one block "theta"), and the
    exported pooled / per-prompt rates equal pooled_rate_estimate / rate_estimate on them (float32 gradients)."""
    model, tokens = policy_and_samples
    g = _one_sample_gradients(model, tokens)
    d = g.shape[1]
    grams, sk, _ = TR.score_vector_pass(model, tokens, PROMPT_LEN, K, sketch_dim=64, sketch_seed=3, chunk_prompts=4)
    ref = sketch(g, 64, seed=3, kind="countsketch", blocks=[("theta", d)])
    np.testing.assert_allclose(sk, ref, rtol=1e-4, atol=1e-6 * np.abs(ref).max())
    rng = np.random.default_rng(1)
    gt = rng.normal(size=(N_PROMPTS, K))
    scores = {"rm": gt + rng.normal(size=gt.shape), "other": rng.normal(size=gt.shape)}
    ids = np.arange(N_PROMPTS)
    out = TR.export_rates(str(tmp_path / "x"), model, tokens, PROMPT_LEN, ids, K, scores, gt, batch=8,
                          sketch_dim=64)
    assert (tmp_path / "x_sketches.npz").exists() and (tmp_path / "x_projections.npz").exists()
    gg = jnp.asarray(g.reshape(N_PROMPTS, K, d))
    with jax.enable_x64(True):
        a = jnp.asarray(normalise(gt, normalisation_stats(gt, "global")))
        for name, v in scores.items():
            b = jnp.asarray(normalise(v, normalisation_stats(v, "global")))
            pe, re = rt.pooled_rate_estimate(a, b, gg), rt.rate_estimate(a, b, gg)
            r = out["sources"][name]
            np.testing.assert_allclose([r["rate_g"], r["rate_self"], r["rate_g_within"], r["rate_self_within"]],
                                       [float(pe.total), float(pe.rate_self), re.mean_g, re.mean_self], rtol=1e-4)
    rep = evaluate({"prompt_id": np.repeat(ids, K), "sample_id": np.tile(np.arange(K), N_PROMPTS),
                    "rm": scores["rm"].ravel(), "ground_truth": gt.ravel()}, ground_truth="ground_truth",
                   sketches=str(tmp_path / "x_projections.npz"), bootstrap=0)
    assert rep["rm"].rate_g == pytest.approx(out["sources"]["rm"]["rate_g_countsketch"], rel=1e-5)
