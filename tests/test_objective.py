import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import rmtheory as rt
from rmtheory import lemma7_column

SHAPES = st.sampled_from([(1, 2), (3, 5), (2, 8)])


@st.composite
def instances(draw, lam_zero=False):
    s, y = draw(SHAPES)
    fl = st.floats(-4, 4)
    logits = draw(hnp.arrays(np.float64, (s, y), elements=fl))
    ref = draw(hnp.arrays(np.float64, (s, y), elements=fl))
    reward = draw(hnp.arrays(np.float64, (s, y), elements=st.floats(-1, 1)))
    lam = 0.0 if lam_zero else draw(st.sampled_from([0.0, 0.05, 1.0]))
    return rt.make_instance(logits, reward, lam, ref_logits=ref)


@given(instances())
def test_lemma7_gradient_equals_autodiff(inst):
    auto = jax.grad(lambda th: rt.objective(inst, th))(inst.logits)
    np.testing.assert_allclose(rt.gradient(inst), auto, atol=1e-12)
    # per-prompt objective: only the prompt's own column moves it (Lemma 7)
    for x in range(inst.n_prompts):
        gx = jax.grad(lambda th: rt.prompt_objective(inst, th)[x])(inst.logits)
        np.testing.assert_allclose(gx[x], rt.prompt_gradient(inst)[x], atol=1e-12)
        np.testing.assert_allclose(np.delete(np.asarray(gx), x, axis=0), 0.0, atol=1e-14)


@given(instances())
def test_score_function_form_of_gradient(inst):
    """∇φ(θ;x) = E_π[r^KL ∇ ln π] with ∇_θx ln π(y) = e_y − π."""
    pi = rt.policy(inst.logits)
    rkl = rt.kl_reward(inst)
    eye = jnp.eye(inst.n_outputs)
    score = eye[None] - pi[:, None, :]  # [S, y, Y]
    g = jnp.einsum("sy,sy,syz->sz", pi, rkl, score)
    np.testing.assert_allclose(g, rt.prompt_gradient(inst), atol=1e-12)


@given(instances())
def test_kl_reward_expectation_is_objective(inst):
    pi = rt.policy(inst.logits)
    np.testing.assert_allclose(jnp.sum(pi * rt.kl_reward(inst), -1), rt.prompt_objective(inst), atol=1e-12)
    assert np.all(np.asarray(rt.kl(inst)) >= -1e-12)


@given(instances())
def test_lemma9_policy_ode_is_chain_rule(inst):
    """dπ/dt (Lemma 9) = (diag π − π πᵀ) dθ/dt, with dθ/dt = ∇φ including 1/|S|."""
    pi = rt.policy(inst.logits)
    jac = jax.vmap(lambda p: jnp.diag(p) - jnp.outer(p, p))(pi)
    expected = jnp.einsum("syz,sz->sy", jac, rt.gradient(inst))
    # Lemma 9 measures the KL against π_0 = π_ref
    np.testing.assert_allclose(rt.policy_velocity(inst), expected, atol=1e-12)


def test_extreme_logits_no_nan():
    logits = np.array([[700.0, -700.0, 0.0, 699.0]])
    inst = rt.make_instance(logits, np.array([[1.0, -1.0, 0.5, 0.2]]), 0.3, ref_logits=-logits)
    for v in (rt.objective(inst), rt.gradient(inst), rt.kl(inst), rt.kl_reward(inst), rt.policy_velocity(inst)):
        assert np.all(np.isfinite(np.asarray(v)))


def test_optimal_policy_is_stationary():
    inst = rt.random_instance(jax.random.PRNGKey(3), 2, 6, lam=0.3)
    star = jnp.log(rt.optimal_policy(inst))
    np.testing.assert_allclose(rt.gradient(inst, star), 0.0, atol=1e-15)
    # and it maximises φ: any perturbation lowers it
    pert = star + 0.01 * jax.random.normal(jax.random.PRNGKey(4), star.shape)
    assert rt.objective(inst, pert) < rt.objective(inst, star)


def _naive_lemma7(logits, reward, lam, ref_logits):
    """π ⊙ (r^KL − E_π r^KL) in numpy, the log-ratio set to 0 where it is not finite (π = 0 or π_ref = 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        lp = logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)
        lref = ref_logits - np.logaddexp.reduce(ref_logits, axis=-1, keepdims=True)
        lr = lp - lref
    lr = np.where(np.isfinite(lr), lr, 0.0)
    p = np.exp(lp)
    rkl = reward - lam * lr
    return p * (rkl - np.sum(p * rkl, -1, keepdims=True))


def test_gradient_with_zero_probabilities():
    # outputs with π = 0 (logit −inf) or π_ref = 0: finite gradient, zero on those outputs, equal to the definition
    logits = np.array([[0.0, 1.0, -np.inf, 0.5], [2.0, -np.inf, -1.0, 0.0]])
    ref = np.array([[0.3, -np.inf, 0.0, 0.1], [0.0, 0.2, -np.inf, 1.0]])
    reward = np.array([[0.5, -0.2, 0.9, -1.0], [0.1, 0.7, -0.3, 0.4]])
    for lam in (0.0, 0.4):
        inst = rt.Instance(jnp.asarray(logits), jnp.asarray(reward), jnp.asarray(ref), jnp.asarray(lam))
        g = np.asarray(rt.prompt_gradient(inst))
        assert np.all(np.isfinite(g))
        np.testing.assert_allclose(g, _naive_lemma7(logits, reward, lam, ref), atol=1e-14)
        assert g[0, 2] == 0.0 and g[1, 1] == 0.0


def test_gradient_broadcasts_batched_instance_over_shared_logits():
    inst = rt.random_instance(jax.random.PRNGKey(0), 2, 3, lam=0.2)
    batch = jax.tree_util.tree_map(lambda a: jnp.stack([a] * 4), inst)
    g = rt.prompt_gradient(batch, inst.logits)  # batched rewards, unbatched logits
    assert g.shape == (4, 2, 3)
    np.testing.assert_allclose(g[2], rt.prompt_gradient(inst), atol=1e-15)


@given(inst=instances(), k=st.integers(0, 2**16))
def test_lemma7_pivot_does_not_change_the_gradient(inst, k):
    # any pivot output gives the same vector (the pivot only decides which cancellations are avoided)
    logits, ref_log = inst.logits, rt.log_policy(inst.ref_logits)
    piv = jnp.full(logits.shape[:-1] + (1,), k % logits.shape[-1])
    lam = jnp.asarray(inst.lam)[..., None, None]
    g_k = lemma7_column(logits, inst.reward, lam, ref_log, pivot=piv)[0]
    g_max = lemma7_column(logits, inst.reward, lam, ref_log)[0]
    np.testing.assert_allclose(np.asarray(g_k), np.asarray(g_max), rtol=1e-9, atol=1e-12)


def test_lemma7_pivot_is_used_and_the_argmax_pivot_is_exact():
    # θ = (0, −40): g_0 = π_0 π_1 (r_0 − r_1) ≈ 4e-18. Around the argmax (k = 0) it is exact to rounding;
    # around k = 1 it needs 1 − π_0, which is 0 in float64, so the result is lost (the pivot matters).
    theta = jnp.array([0.0, -40.0])
    reward = jnp.array([0.5, -0.5])
    p1 = np.exp(-40.0) / (1.0 + np.exp(-40.0))
    exact = (1.0 - p1) * p1
    good = float(lemma7_column(theta, reward, pivot=jnp.array([0]))[0][0])
    bad = float(lemma7_column(theta, reward, pivot=jnp.array([1]))[0][0])
    assert abs(good - exact) <= 1e-14 * exact
    assert abs(bad - exact) > 0.5 * exact
