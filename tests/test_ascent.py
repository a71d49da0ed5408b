"""The RLOO leave-one-out advantage: one implementation (rmtheory._ascent), used by the sampled gradient of
the discrete ascent and by the LM pipeline's RLOO stage."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rmtheory as rt
from rmtheory._ascent import rloo_advantages, sampled_gradient
from rmtheory._objective import kl_reward, policy


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("k", [2, 3, 7])
def test_rloo_advantages_is_the_leave_one_out_mean(dtype, k):
    R = jax.random.normal(jax.random.PRNGKey(k), (3, 5, k), dtype)
    A = rloo_advantages(R)
    assert A.dtype == dtype and A.shape == R.shape
    r = np.asarray(R, np.float64)
    ref = np.stack([r[..., i] - np.delete(r, i, axis=-1).mean(-1) for i in range(k)], -1)
    np.testing.assert_allclose(np.asarray(A, np.float64), ref, atol=1e-5 if dtype == jnp.float32 else 1e-12)
    np.testing.assert_allclose(np.asarray(A, np.float64).sum(-1), 0.0, atol=1e-5 if dtype == jnp.float32 else 1e-12)
    # the leave-one-out baseline written out, bit for bit (eager and under jit)
    def old(x):
        return x - (x.sum(-1, keepdims=True) - x) / (x.shape[-1] - 1)

    np.testing.assert_array_equal(np.asarray(A), np.asarray(old(R)))
    np.testing.assert_array_equal(np.asarray(jax.jit(rloo_advantages)(R)), np.asarray(jax.jit(old)(R)))


def test_lm_pipeline_uses_the_same_function():
    from rmtheory.lm import rloo

    assert rloo.rloo_advantages is rloo_advantages


def test_sampled_rloo_gradient_unchanged():
    """sampled_gradient(estimator="rloo") equals the inline formula it had before (bit for bit)."""
    inst = rt.random_instance(jax.random.PRNGKey(0), n_prompts=3, n_outputs=5, lam=0.3)
    logits, key, n = inst.logits + 0.1, jax.random.PRNGKey(1), 4

    def before(inst, logits, key, n_samples):
        pi = policy(logits)
        rkl = kl_reward(inst, logits)
        ys = jax.random.categorical(key, logits[..., None, :], axis=-1, shape=logits.shape[:-1] + (n_samples,))
        w = jnp.take_along_axis(rkl, ys, axis=-1)
        w = w - (jnp.sum(w, axis=-1, keepdims=True) - w) / (n_samples - 1)
        onehot = jax.nn.one_hot(ys, logits.shape[-1], dtype=logits.dtype)
        g = jnp.mean(w[..., None] * (onehot - pi[..., None, :]), axis=-2)
        return g / logits.shape[-2]

    np.testing.assert_array_equal(np.asarray(sampled_gradient(inst, logits, key, n, "rloo")),
                                  np.asarray(before(inst, logits, key, n)))
