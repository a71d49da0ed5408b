import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import rmtheory as rt
from _scipy_ref import scipy_time_to_gamma


def _random_case(seed, n_prompts, n_out, lam, distinct_measure):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n_prompts, n_out)) * 1.5
    ref = logits if lam == 0 or rng.random() < 0.5 else logits + 0.3 * rng.normal(size=logits.shape)
    reward = rng.uniform(-1, 1, size=(n_prompts, n_out))
    measure = rng.uniform(-1, 1, size=(n_prompts, n_out)) if distinct_measure else reward
    if distinct_measure:  # correlated proxy so that targets are often reachable
        measure = np.clip(0.6 * reward + 0.4 * measure, -1, 1)
    return rt.make_instance(logits, reward, lam, ref_logits=ref), measure


@given(st.integers(0, 10_000), st.sampled_from([1, 3]), st.sampled_from([0.0, 0.02, 0.2]), st.booleans(),
       st.sampled_from([0.05, 0.3]))
def test_time_to_gamma_matches_scipy(seed, n_prompts, lam, distinct_measure, gamma):
    inst, measure = _random_case(seed, n_prompts, 6, lam, distinct_measure)
    res = rt.time_to_gamma(inst, gamma, measure, t_max=1e8)
    logref = np.asarray(rt.log_policy(inst.ref_logits))
    for x in range(n_prompts):
        ours = float(res.t[x])
        # the reference integrates to a horizon that covers our answer (or 1e4 for a certified inf: with
        # λ > 0 an explicit solver near the fixed point needs ~t steps, so a longer horizon only costs time)
        horizon = 2 * ours if np.isfinite(ours) else 1e4
        ref = scipy_time_to_gamma(inst.logits[x], inst.reward[x], measure[x], gamma, lam, logref[x], n_prompts,
                                  t_max=horizon)
        if np.isinf(ref):
            assert np.isinf(ours), (x, ours, int(res.status[x]))
        else:
            assert ours == pytest.approx(ref, rel=1e-6), (x, int(res.status[x]))
        assert not np.isnan(ours)


def analytic_two_output(d0, delta, gamma, n_prompts=1):
    """λ = 0, two outputs with r1 − r2 = Δ > 0 and d = θ1 − θ2: dd/dt = 2Δσ(d)σ(−d)/|S|, whose solution
    satisfies 2d + e^d − e^{−d} = 2Δt/|S| + const. The target V0 + γ means p = σ(d) reaches p0 + γ/Δ."""
    p0 = 1 / (1 + np.exp(-d0))
    p1 = p0 + gamma / delta
    if p1 >= 1:
        return np.inf
    d1 = np.log(p1 / (1 - p1))

    def big(d):
        return 2 * d + np.exp(d) - np.exp(-d)

    return n_prompts * (big(d1) - big(d0)) / (2 * delta)


@given(st.floats(-6, 6), st.floats(0.05, 2.0), st.floats(0.01, 0.9), st.sampled_from([1, 4]))
def test_two_output_analytic_solution(d0, delta, frac, n_prompts):
    r = np.array([delta / 2, -delta / 2])
    p0 = 1 / (1 + np.exp(-d0))
    gamma = frac * (1 - p0) * delta  # a reachable target
    logits = np.tile([d0, 0.0], (n_prompts, 1))
    inst = rt.make_instance(logits, np.tile(r, (n_prompts, 1)))
    t = np.asarray(rt.time_to_gamma(inst, gamma).t)
    np.testing.assert_allclose(t, analytic_two_output(d0, delta, gamma, n_prompts), rtol=1e-7)


@given(st.integers(0, 1000), st.floats(1e-3, 1.0))
def test_time_rescaling_lambda_zero(seed, s):
    """λ = 0: replacing r by s·r rescales time exactly, θ_s(t) = θ_1(s t), so t_γ(s r; sγ) = t_γ(r; γ)/s."""
    inst, _ = _random_case(seed, 2, 5, 0.0, False)
    base = rt.time_to_gamma(inst, 0.1)
    scaled = rt.time_to_gamma(inst._replace(reward=s * inst.reward), 0.1 * s)
    fin = np.isfinite(np.asarray(base.t))
    np.testing.assert_array_equal(fin, np.isfinite(np.asarray(scaled.t)))
    np.testing.assert_allclose(np.asarray(scaled.t)[fin], np.asarray(base.t)[fin] / s, rtol=1e-7)


def test_prompt_count_scales_time_linearly():
    """Columns decouple: t_γ with |S| prompts is |S| times its single-prompt value (docs/theory.md "Setting")."""
    inst, _ = _random_case(7, 1, 6, 0.1, False)
    one = float(rt.time_to_gamma(inst, 0.1).t[0])
    many = rt.make_instance(jnp.tile(inst.logits, (5, 1)), jnp.tile(inst.reward, (5, 1)), 0.1)
    np.testing.assert_allclose(rt.time_to_gamma(many, 0.1).t, 5 * one, rtol=1e-8)


def test_batched_instances_equal_individual_runs():
    insts = [_random_case(s, 2, 6, lam, False)[0] for s, lam in [(1, 0.0), (2, 0.1), (3, 0.5)]]
    batch = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *insts)
    res = rt.time_to_gamma(batch, 0.1)
    assert res.t.shape == (3, 2)
    for i, inst in enumerate(insts):
        np.testing.assert_allclose(res.t[i], rt.time_to_gamma(inst, 0.1).t, rtol=1e-12)


def test_unreachable_targets_return_inf_quickly():
    logits = np.zeros((1, 4))
    r = np.array([[-1.0, -0.2, 0.3, 0.5]])
    # γ above max r − V0
    res = rt.time_to_gamma(rt.make_instance(logits, r), 0.61)  # V0 = -0.1, max r = 0.5
    assert np.isinf(res.t[0]) and int(res.status[0]) == rt.Status.UNREACHABLE and int(res.steps[0]) == 0
    # zero variance: the flow never moves
    res = rt.time_to_gamma(rt.make_instance(logits, np.full((1, 4), 0.3)), 0.1, measure=r)
    assert np.isinf(res.t[0]) and int(res.status[0]) == rt.Status.UNREACHABLE and int(res.steps[0]) == 0
    # λ > 0: the fixed point's reward is below the target, proven by the KL certificate
    inst = rt.make_instance(logits, r, 2.0)
    v_star = float(jnp.sum(rt.optimal_policy(inst) * r))
    gamma = (v_star - float(rt.value(inst.logits, r)[0])) + 0.02
    t0 = time.perf_counter()
    res = rt.time_to_gamma(inst, gamma)
    assert np.isinf(res.t[0]) and int(res.status[0]) == rt.Status.UNREACHABLE
    assert int(res.steps[0]) < 2000 and time.perf_counter() - t0 < 60
    # ... while slightly below the fixed point's reward it is reached
    res = rt.time_to_gamma(inst, gamma - 0.04)
    assert np.isfinite(res.t[0]) and int(res.status[0]) == rt.Status.REACHED


def test_lambda_zero_measured_reward_certificate():
    """λ = 0 with a proxy whose argmax is bad for the measured reward: the increase is transient at most,
    and once the proxy's argmax dominates the target is proven unreachable."""
    logits = np.zeros((1, 3))
    proxy = np.array([[1.0, 0.0, -1.0]])
    measure = np.array([[-1.0, 1.0, -1.0]])  # the proxy's argmax is the worst output for `measure`
    res = rt.time_to_gamma(rt.make_instance(logits, proxy), 0.9, measure=measure)
    assert np.isinf(res.t[0]) and int(res.status[0]) == rt.Status.UNREACHABLE
    ref = scipy_time_to_gamma(logits[0], proxy[0], measure[0], 0.9, t_max=1e6)
    assert np.isinf(ref)


def test_horizon_is_reported():
    inst = rt.make_instance(np.array([[0.0, 0.0]]), np.array([[0.5, -0.5]]))
    res = rt.time_to_gamma(inst, 0.49, t_max=10.0)
    assert np.isinf(res.t[0]) and int(res.status[0]) == rt.Status.HORIZON and float(res.t_end[0]) >= 10.0


def test_extreme_logits_and_tiny_variance_no_nan():
    logits = np.array([[700.0, -700.0, 0.0], [-700.0, 700.0, 699.0]])
    r = np.array([[-1.0, 1.0, 0.0], [1.0, -1.0, 0.5]])
    res = rt.time_to_gamma(rt.make_instance(logits, r, 0.0), 0.1, t_max=1e300)
    assert not np.any(np.isnan(np.asarray(res.t)))
    res = rt.time_to_gamma(rt.make_instance(logits, r, 0.5), 0.1)
    assert not np.any(np.isnan(np.asarray(res.t)))
    # variance 1e-12 (t_γ ~ 1e6+) is still located accurately
    inst = rt.make_instance(np.zeros((1, 2)), np.array([[1e-6, -1e-6]]))
    t = float(rt.time_to_gamma(inst, 1e-7).t[0])
    assert t == pytest.approx(analytic_two_output(0.0, 2e-6, 1e-7), rel=1e-7)


@given(st.integers(0, 1000), st.sampled_from([0.0, 0.1, 1.0]))
def test_objective_monotone_along_flow(seed, lam):
    inst, _ = _random_case(seed, 2, 6, lam, False)
    ts = np.concatenate([[0.0], np.geomspace(1e-3, 1e3, 25)])
    traj = rt.flow_trajectory(inst, ts)
    phi = np.asarray(jax.vmap(lambda th: rt.prompt_objective(inst, th))(traj))  # [T, S]
    assert np.all(np.diff(phi, axis=0) >= -1e-10)
    # dφ/dt = (1/|S|) ‖∇_θx φ(θ;x)‖² at t = 0 (finite difference)
    h = 1e-5
    th_h = rt.flow_logits(inst, h)
    fd = (np.asarray(rt.prompt_objective(inst, th_h)) - np.asarray(rt.prompt_objective(inst))) / h
    exact = np.sum(np.asarray(rt.prompt_gradient(inst)) ** 2, -1) / inst.n_prompts
    np.testing.assert_allclose(fd, exact, rtol=1e-3, atol=1e-9)


def test_flow_trajectory_matches_scipy_state():
    from scipy.integrate import solve_ivp

    inst, _ = _random_case(11, 1, 5, 0.3, False)
    th = rt.flow_logits(inst, 3.0)
    lr = np.asarray(rt.log_policy(inst.ref_logits))[0]

    def f(t, y):
        lp = y - np.logaddexp.reduce(y)
        p = np.exp(lp)
        rk = np.asarray(inst.reward)[0] - 0.3 * (lp - lr)
        return p * (rk - p @ rk)

    sol = solve_ivp(f, (0, 3.0), np.asarray(inst.logits)[0], method="DOP853", rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(th[0], sol.y[:, -1], atol=1e-8)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda inst: rt.time_to_gamma(inst, 0.0), "gamma must be > 0"),
        (lambda inst: rt.time_to_gamma(inst, -1.0), "gamma must be > 0"),
        (lambda inst: rt.time_to_gamma(inst, np.nan), "gamma must be finite"),
        (lambda inst: rt.time_to_gamma(inst._replace(reward=jnp.full((2, 3), 0.5)), 1e-16),
         "below the float64 resolution"),
        (lambda inst: rt.time_to_gamma(inst, 0.1, measure=np.full((2, 3), 2.0)), r"measure must lie in \[-1, 1\]"),
        (lambda inst: rt.time_to_gamma(inst, 0.1, measure=np.zeros((2, 4))), "shapes must agree"),
    ],
)
def test_time_to_gamma_bad_input(call, match):
    inst = rt.make_instance(np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match=match):
        call(inst)


@pytest.mark.parametrize("gamma", [1e-16, 1e-20])
def test_gamma_below_float_resolution_is_rejected(gamma):
    # E_π r carries a rounding error ~|Y|·eps·max|r|; a smaller γ would return REACHED with a wrong t
    # (8.3e-17 for γ = 1e-20). The limit is 64·|Y|·eps·max|r| = 64·2·eps·0.5 here.
    inst = rt.make_instance(np.array([[0.0, 1.0]]), np.array([[-0.5, 0.5]]))
    limit = 64 * 2 * np.finfo(float).eps * 0.5
    with pytest.raises(ValueError, match=rf"gamma = {gamma:.3g} is below .* gamma must be >= {limit:.3g}"):
        rt.time_to_gamma(inst, gamma)
    with pytest.raises(ValueError, match="gamma must be >="):
        rt.parametric_time_to_gamma(lambda p: jax.nn.log_softmax(p)[None], jnp.array([0.0, 1.0]),
                                    np.array([[-0.5, 0.5]]), gamma, prompt=0)
    # just above the limit the answer is still the closed form (to the target's rounding)
    g = 1e-10
    t = float(rt.time_to_gamma(inst, g).t[0])
    np.testing.assert_allclose(t, analytic_two_output(-1.0, 1.0, g), rtol=1e-4)


def test_extreme_logits_are_out_of_range_not_unreachable():
    # logits ±1e6, λ = 0: π = (1, 0) in float64, so the float right-hand side is exactly 0, but the exact flow
    # moves (π_2 = e^{-2e6} > 0, reward 0.5 > −0.5): t_γ is finite in exact arithmetic (≈ e^{2e6}), nothing is
    # proven. An exactly stationary start and a certified target stay UNREACHABLE.
    logits = np.array([[1e6, -1e6], [1e6, -1e6], [1e6, -1e6], [1e6, -1e6]])
    reward = np.array([[-0.5, 0.5], [0.3, 0.3], [0.5, -0.5], [-0.5, 0.5]])
    gamma = np.array([[0.1, 0.1, 0.1, 1.5]]).T[:, 0]  # last: target above max r (certificate)
    res = rt.time_to_gamma(rt.make_instance(logits, reward), gamma)
    assert np.all(np.isinf(np.asarray(res.t)))
    S = rt.Status
    assert list(np.asarray(res.status)) == [S.OUT_OF_RANGE, S.UNREACHABLE, S.UNREACHABLE, S.UNREACHABLE]
    assert res.messages()[0].startswith("out_of_range") and "not proven" in res.messages()[0]


def test_status_codes():
    S = rt.Status
    assert (S.REACHED, S.UNREACHABLE, S.HORIZON, S.MAX_STEPS, S.OUT_OF_RANGE) == (0, 1, 2, 3, 4)
    assert rt.Status(0).name == "REACHED" and rt.Status(2) is rt.Status.HORIZON
    assert rt.Status(3) is rt.Status.MAX_STEPS and "budget" in rt.Status.MAX_STEPS.message
    msgs = rt.Status.describe(np.array([[0, 2], [1, 4]]))
    assert msgs.shape == (2, 2) and msgs[1, 0].startswith("unreachable") and msgs[0, 1].startswith("horizon")
    inst = rt.make_instance(np.zeros((2, 2)), np.array([[0.5, -0.5], [0.2, 0.2]]))
    st = np.asarray(rt.time_to_gamma(inst, 0.1).status)
    assert list(st == rt.Status.REACHED) == [True, False] and st[1] == rt.Status.UNREACHABLE
