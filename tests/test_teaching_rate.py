"""The teaching rate (rmtheory._teaching_rate): exact first-order speed of a timed reward under the flow.

Each closed form is checked against an independent computation: ``jax.grad`` of the objective functions
(inner products of gradients), and the derivative at t = 0 of the solver's own trajectory (Richardson
extrapolation of forward differences). Invariances and bounds are checked on random instances.
"""

from __future__ import annotations

import functools

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import rmtheory as rt

N_OUT = 6


def _case(seed, n_prompts, lam, ref_differs=True, n_out=N_OUT, logit_scale=1.5, batch=()):
    """A random tabular instance (π_ref ≠ π_θ when ``ref_differs``, so the KL term of r^KL enters at t = 0)
    and a timed reward r_G correlated with r_RM."""
    rng = np.random.default_rng(seed)
    shape = batch + (n_prompts, n_out)
    logits = logit_scale * rng.normal(size=shape)
    ref = logits + (0.7 * rng.normal(size=shape) if ref_differs else 0.0)
    reward = rng.uniform(-1, 1, shape)
    measure = np.clip(0.5 * reward + 0.5 * rng.uniform(-1, 1, shape), -1, 1)
    return rt.make_instance(logits, reward, lam, ref_logits=ref), jnp.asarray(measure)


def _grad_inner(f, g, x):
    return jnp.vdot(jax.grad(f)(x), jax.grad(g)(x))


def _close(a, b, scale, rel):
    a, b, scale = (np.asarray(v, np.float64) for v in (a, b, scale))
    assert np.all(np.abs(a - b) <= rel * scale), (a, b, np.max(np.abs(a - b) / scale))


# --------------------------------------------------------------------------------------------------
# Closed form = autodiff's inner product of gradients
# --------------------------------------------------------------------------------------------------

@given(st.integers(0, 10_000), st.sampled_from([1, 3]), st.sampled_from([0.0, 0.4]), st.booleans())
def test_tabular_rate_equals_autodiff_inner_product(seed, n_prompts, lam, ref_differs):
    inst, meas = _case(seed, n_prompts, lam, ref_differs)
    th = inst.logits

    def v_bar(t):
        return jnp.mean(rt.value(t, meas))

    def phi(t):
        return rt.objective(inst, t)

    rate, selfr = rt.teaching_rate(inst, meas), rt.self_rate(inst)
    grad_phi = jax.grad(phi)(th)
    scale = float(jnp.linalg.norm(jax.grad(v_bar)(th)) * jnp.linalg.norm(grad_phi)) + 1e-300
    _close(rate.total, _grad_inner(v_bar, phi, th), scale, 1e-12)
    _close(selfr.total, jnp.vdot(grad_phi, grad_phi), jnp.vdot(grad_phi, grad_phi) + 1e-300, 1e-12)
    for x in range(n_prompts):  # per prompt: ⟨∇V_G(θ; x), ∇φ⟩ and ⟨∇φ(θ; x), ∇φ⟩
        _close(rate.per_prompt[x], _grad_inner(lambda t: rt.value(t, meas)[x], phi, th), scale, 1e-12)
        _close(selfr.per_prompt[x], _grad_inner(lambda t: rt.prompt_objective(inst, t)[x], phi, th),
               jnp.vdot(grad_phi, grad_phi) + 1e-300, 1e-12)
    np.testing.assert_allclose(rate.total, jnp.mean(rate.per_prompt), rtol=1e-13, atol=1e-300)


def test_tabular_rate_batched_jit_and_vmap():
    inst, meas = _case(3, 2, 0.3, batch=(4,))
    inst = inst._replace(lam=jnp.array([0.0, 0.3, 0.3, 1.0]))
    rate = rt.teaching_rate(inst, meas)
    assert rate.per_prompt.shape == (4, 2) and rate.total.shape == (4,)
    jitted = jax.jit(rt.teaching_rate)(inst, meas)
    mapped = jax.vmap(rt.teaching_rate)(inst, meas)
    for other in (jitted, mapped):
        np.testing.assert_allclose(other.per_prompt, rate.per_prompt, rtol=1e-13, atol=1e-16)
    one = rt.teaching_rate(jax.tree_util.tree_map(lambda a: a[1], inst), meas[1])
    np.testing.assert_allclose(one.total, rate.total[1], rtol=1e-13)
    assert rate.total.dtype == jnp.float64


POLICIES = {"AR": rt.TabularAR(3, 2, 2), "MLP": rt.MLP(3, 2, 2)}


@functools.lru_cache(maxsize=None)
def _parametric_pair(pol):
    """One compiled function per policy: (library rates, autodiff's inner products and norms)."""

    def run(params, ref, reward, meas, lam, mask):
        flat, unravel = jax.flatten_util.ravel_pytree(params)

        def obj(r, la, m):
            return lambda f: rt.parametric_objective(pol.log_probs, unravel(f), r, la, ref, m)

        g_phi = jax.grad(obj(reward, lam, mask))(flat)
        grads_g = [jax.grad(obj(meas, 0.0, m))(flat) for m in [mask] + list(jnp.eye(3))]
        auto = (jnp.stack([jnp.vdot(g, g_phi) for g in grads_g]), jnp.stack([jnp.linalg.norm(g) for g in grads_g]),
                jnp.vdot(g_phi, g_phi))
        rate = rt.parametric_teaching_rate(pol.log_probs, params, reward, meas, lam=lam, ref_log_probs=ref,
                                           train_mask=mask)
        selfr = rt.parametric_self_rate(pol.log_probs, params, reward, lam=lam, ref_log_probs=ref, train_mask=mask)
        return rate, selfr, auto

    return jax.jit(run)


@pytest.mark.parametrize("name", sorted(POLICIES))
@given(seed=st.integers(0, 10_000), lam=st.sampled_from([0.0, 0.5]), masked=st.booleans())
def test_parametric_rate_equals_autodiff_inner_product(name, seed, lam, masked):
    """AR tabular and MLP policies, π_ref ≠ π_θ, S a strict subset of X or all of it; the per-prompt rate at
    every x (x = 2 is outside S when masked) and the total."""
    pol = POLICIES[name]
    k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
    params = pol.init(k1)
    ref = jax.lax.stop_gradient(pol.log_probs(pol.init(k2)))
    rng = np.random.default_rng(seed)
    reward, meas = jnp.asarray(rng.uniform(-1, 1, (2, 3, pol.n_outputs)))
    mask = jnp.array([1.0, 1.0, 0.0]) if masked else jnp.ones(3)
    rate, selfr, (inner, norms, sq) = _parametric_pair(pol)(params, ref, reward, meas, jnp.float64(lam), mask)
    root = np.sqrt(float(sq))
    _close(rate.total, inner[0], norms[0] * root, 1e-11)
    _close(rate.per_prompt, inner[1:], norms[1:] * root, 1e-11)
    _close(selfr.total, sq, sq, 1e-11)


def test_parametric_rate_of_a_tabular_policy_is_the_closed_form():
    """The autodiff path on log_softmax(θ) and the autoregressive ``sequence_log_probs`` with L = 1 (the
    same policy) both reproduce the tabular closed form, with the KL term (π_ref ≠ π_θ)."""
    inst, meas = _case(11, 3, 0.3)
    ref = rt.log_policy(inst.ref_logits)
    want, want_self = rt.teaching_rate(inst, meas), rt.self_rate(inst)
    for fn, params in ((rt.log_policy, inst.logits), (rt.sequence_log_probs, inst.logits[:, None, :])):
        got = rt.parametric_teaching_rate(fn, params, inst.reward, meas, lam=inst.lam, ref_log_probs=ref)
        got_self = rt.parametric_self_rate(fn, params, inst.reward, lam=inst.lam, ref_log_probs=ref)
        np.testing.assert_allclose(got.per_prompt, want.per_prompt, rtol=1e-11, atol=1e-15)
        np.testing.assert_allclose(got_self.per_prompt, want_self.per_prompt, rtol=1e-11, atol=1e-15)


def test_neural_batch_equals_one_at_a_time():
    pol = POLICIES["MLP"]
    params = rt.init_batch(pol, jax.random.PRNGKey(0), 3)
    rng = np.random.default_rng(0)
    reward = rng.uniform(-1, 1, (3, 3, pol.n_outputs))
    meas = rng.uniform(-1, 1, reward.shape)
    lam = np.array([0.0, 0.2, 1.0])
    batch = rt.neural_teaching_rate(pol, params, reward, meas, lam=lam)
    selfb = rt.neural_teaching_rate(pol, params, reward, lam=lam)
    for b in range(3):
        p = jax.tree_util.tree_map(lambda a: a[b], params)
        one = rt.parametric_teaching_rate(pol.log_probs, p, reward[b], meas[b], lam=lam[b])
        np.testing.assert_allclose(batch.per_prompt[b], one.per_prompt, rtol=1e-12, atol=1e-15)
        sq = rt.parametric_self_rate(pol.log_probs, p, reward[b], lam=lam[b]).total
        np.testing.assert_allclose(selfb.total[b], sq, rtol=1e-12)


# --------------------------------------------------------------------------------------------------
# The rate is the derivative at t = 0 of the solver's trajectory
# --------------------------------------------------------------------------------------------------

def _richardson(v, h):
    """V'(0) from V at 0, h, 2h, 4h: forward differences D(h) = V'+ V''h/2 + …, two Richardson levels
    (error O(h³))."""

    def d(k):
        return (v[k] - v[0]) / (h * 2 ** (k - 1))

    r1, r2 = 2 * d(1) - d(2), 2 * d(2) - d(3)
    return (4 * r1 - r2) / 3


@given(st.integers(0, 10_000), st.sampled_from([0.0, 0.4]), st.booleans())
def test_rate_is_the_flow_derivative_at_zero(seed, lam, ref_differs):
    """dV_G/dt at t = 0 from ``flow_trajectory`` (rtol 1e-13) equals the closed form to ≤ 1e-6 relative, per
    prompt (what time_to_gamma times) and for the mean over S; the same for φ_RLHF and the self rate."""
    inst, meas = _case(seed, 2, lam, ref_differs)
    speed = float(jnp.max(jnp.abs(rt.gradient(inst))))
    h = 2e-3 / speed  # each logit moves by ≲ 1e-2 over the four points
    traj = rt.flow_trajectory(inst, jnp.array([0.0, h, 2 * h, 4 * h]), rtol=1e-13, atol=1e-14)
    v = rt.value(traj, meas)  # [4, |S|]
    phi = jax.vmap(lambda t: rt.prompt_objective(inst, t))(traj)
    rate, selfr = rt.teaching_rate(inst, meas), rt.self_rate(inst)
    np.testing.assert_allclose(_richardson(v, h), rate.per_prompt, rtol=1e-6)
    np.testing.assert_allclose(_richardson(v.mean(-1), h), rate.total, rtol=1e-6)
    np.testing.assert_allclose(_richardson(phi, h), selfr.per_prompt, rtol=1e-6)


def test_parametric_rate_is_the_flow_derivative_at_zero():
    """MLP policy (shared parameters): d/dt V_G(θ(t); x) at 0 from ``parametric_flow`` at every prompt."""
    pol = POLICIES["MLP"]
    params = pol.init(jax.random.PRNGKey(4))
    rng = np.random.default_rng(4)
    reward, meas = rng.uniform(-1, 1, (2, 3, pol.n_outputs))
    mask = jnp.array([1.0, 1.0, 0.0])
    rate = rt.parametric_teaching_rate(pol.log_probs, params, reward, meas, lam=0.3, train_mask=mask)
    h = 1e-3
    traj = rt.parametric_flow(pol.log_probs, params, reward, [0.0, h, 2 * h, 4 * h], lam=0.3, train_mask=mask,
                              rtol=1e-13, atol=1e-14)
    v = np.stack([np.asarray(rt.value(pol.log_probs(p), meas)) for p in traj])
    np.testing.assert_allclose(_richardson(v, h), rate.per_prompt, rtol=1e-6)


# --------------------------------------------------------------------------------------------------
# Invariances
# --------------------------------------------------------------------------------------------------

@given(st.integers(0, 10_000), st.floats(0.01, 5.0))
def test_linear_in_a_positive_rescaling_of_the_reward(seed, s):
    """λ = 0: rate_G is linear in r_RM ↦ s·r_RM and rate_self quadratic."""
    inst, meas = _case(seed, 3, 0.0, logit_scale=2.0)
    scaled = inst._replace(reward=s * inst.reward)
    r0, r1 = rt.teaching_rate(inst, meas), rt.teaching_rate(scaled, meas)
    np.testing.assert_allclose(r1.per_prompt, s * r0.per_prompt, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(rt.self_rate(scaled).total, s**2 * rt.self_rate(inst).total, rtol=1e-12)


@given(st.integers(0, 10_000), st.sampled_from([0.0, 0.4]), st.floats(-3.0, 3.0), st.floats(-3.0, 3.0))
def test_unchanged_by_a_per_prompt_constant(seed, lam, c_rm, c_g):
    """Adding a constant per prompt to r_RM or to r_G changes no rate (the policy gradient is centred)."""
    inst, meas = _case(seed, 3, lam)
    shift = jnp.array([[c_rm], [0.5 * c_rm], [-c_rm]])
    shifted = inst._replace(reward=inst.reward + shift)
    base = rt.teaching_rate(inst, meas)
    for got in (rt.teaching_rate(shifted, meas), rt.teaching_rate(inst, meas + jnp.array([[c_g], [-c_g], [0.0]]))):
        np.testing.assert_allclose(got.per_prompt, base.per_prompt, rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(rt.self_rate(shifted).per_prompt, rt.self_rate(inst).per_prompt, rtol=1e-9,
                               atol=1e-14)


# --------------------------------------------------------------------------------------------------
# Bounds
# --------------------------------------------------------------------------------------------------

def _bound_terms(inst, meas):
    pi = rt.policy(inst.logits)
    g_inst = inst._replace(reward=meas, lam=jnp.zeros_like(inst.lam))
    var_kl = rt.reward_variance(pi, rt.kl_reward(inst))
    return pi, rt.self_rate(g_inst), rt.self_rate(inst), rt.reward_variance(pi, meas), var_kl


@given(st.integers(0, 10_000), st.sampled_from([0.0, 0.4]), st.sampled_from([0.3, 1.5, 5.0]),
       st.sampled_from([2, N_OUT]))
def test_bounds_hold(seed, lam, logit_scale, n_out):
    inst, meas = _case(seed, 3, lam, n_out=n_out, logit_scale=logit_scale)
    pi, self_g, self_rm, var_g, var_kl = _bound_terms(inst, meas)
    rate = rt.teaching_rate(inst, meas)
    slack = 1 + 1e-12
    cs = rt.rate_cauchy_schwarz_bound(self_g.per_prompt, self_rm.per_prompt)
    assert np.all(np.abs(rate.per_prompt) <= cs * slack)
    assert np.abs(rate.total) <= rt.rate_cauchy_schwarz_bound(self_g.total, self_rm.total) * slack
    max_pi = jnp.max(pi, -1)
    assert np.all(self_rm.per_prompt <= rt.self_rate_variance_bound(max_pi, var_kl, 3) * slack)
    assert np.all(np.abs(rate.per_prompt) <= rt.teaching_rate_variance_bound(max_pi, var_g, var_kl, 3) * slack)
    # Lemma 8 (‖·‖₁ ≤ √Var) implies the weaker |S|·rate_self ≤ Var
    assert np.all(3 * self_rm.per_prompt <= var_kl * slack)


def test_bounds_are_attained():
    """Two equiprobable outputs, r_G ∝ r_RM: every bound holds with equality (so none is loose by a factor)."""
    inst = rt.make_instance(jnp.zeros((1, 2)), jnp.array([[0.6, -0.2]]))
    meas = jnp.array([[1.0, 0.0]])
    pi, self_g, self_rm, var_g, var_kl = _bound_terms(inst, meas)
    rate = rt.teaching_rate(inst, meas)
    np.testing.assert_allclose(rate.total, rt.rate_cauchy_schwarz_bound(self_g.total, self_rm.total), rtol=1e-14)
    np.testing.assert_allclose(self_rm.total, rt.self_rate_variance_bound(0.5, var_kl), rtol=1e-14)
    np.testing.assert_allclose(rate.total, rt.teaching_rate_variance_bound(0.5, var_g, var_kl), rtol=1e-14)


# --------------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------------

def test_bad_input_names_the_argument():
    inst, meas = _case(0, 2, 0.0)
    with pytest.raises(ValueError, match="measure"):
        rt.teaching_rate(inst, meas[:, :3])
    with pytest.raises(ValueError, match="measure must be finite"):
        rt.teaching_rate(inst, meas.at[0, 1].set(jnp.nan))
    with pytest.raises(ValueError, match="inst.logits must be finite"):
        rt.self_rate(inst._replace(logits=inst.logits.at[0, 0].set(jnp.inf)))
    with pytest.raises(ValueError, match="max_prob"):
        rt.self_rate_variance_bound(1.5, 0.1)
    with pytest.raises(ValueError, match="self_rate_g"):
        rt.rate_cauchy_schwarz_bound(-1.0, 1.0)
    pol = POLICIES["AR"]
    with pytest.raises(ValueError, match="train_mask"):
        rt.parametric_teaching_rate(pol.log_probs, pol.init(jax.random.PRNGKey(0)), np.zeros((3, 4)),
                                    np.zeros((3, 4)), train_mask=np.zeros(3))


def test_parametric_rate_under_jit_with_a_constant_train_mask():
    """A numpy train_mask closed over by a jitted function is a constant, not a tracer: the check still runs and
    the rate equals the eager one."""
    pol = POLICIES["AR"]
    params = pol.init(jax.random.PRNGKey(0))
    r = np.linspace(-1.0, 1.0, 12).reshape(3, 4)
    mask = np.array([1.0, 1.0, 0.0])

    def total(p):
        return rt.parametric_teaching_rate(pol.log_probs, p, r, r[::-1], train_mask=mask).total

    assert float(jax.jit(total)(params)) == pytest.approx(float(total(params)), rel=1e-12)
