"""The ODE solver (rmtheory/_solver.py): lane refilling changes scheduling only, never the arithmetic;
the pivoted right-hand side keeps plateaus cheap at tight tolerances."""

import jax
import jax.numpy as jnp
import numpy as np

import rmtheory as rt
from rmtheory import first_hitting_time, first_hitting_times


def _peaked_batch(n, n_out, seed):
    rng = np.random.default_rng(seed)
    eps = 10.0 ** rng.uniform(-10, 0, size=n)
    logits = 0.5 * rng.normal(size=(n, 1, n_out))
    logits[:, 0, 1:] += np.log(eps / (n_out - 1))[:, None]
    logits[:, 0, 0] = np.log1p(-np.minimum(eps, 0.999))
    reward = rng.uniform(-1, 1, size=(n, 1, n_out))
    reward[:, 0, 0] = rng.uniform(-1, 0.5, size=n)
    reward[-1, 0, :] = 0.25  # zero variance: decided at t = 0
    reward[-2, 0, :] = -1.0  # target V0 + γ above max r: certified unreachable at t = 0
    reward[-2, 0, 0] = -0.99
    return rt.make_instance(logits, reward, 0.0)


def test_refilled_lanes_equal_lockstep_vmap():
    inst = _peaked_batch(40, 16, 0)
    lock = rt.time_to_gamma(inst, 0.05, lanes=40)
    for lanes in (1, 7, 16):
        res = rt.time_to_gamma(inst, 0.05, lanes=lanes)
        for a, b in zip(res, lock):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    st = np.asarray(lock.status)[:, 0]
    assert st[-1] == rt.Status.UNREACHABLE and st[-2] == rt.Status.UNREACHABLE and np.all(st[:-2] == rt.Status.REACHED)
    steps = np.asarray(lock.steps)[:-2, 0]
    assert steps.max() > 2 * steps.min()  # a spread worth scheduling


def test_first_hitting_times_generic_problem():
    # dy/dt = a·y from y0 = 1: hits level c at t = ln(c)/a.
    a = jnp.array([0.5, 1.0, 2.0, 4.0, 0.0])
    c = jnp.array([3.0, 10.0, 1e6, 2.0, 2.0])

    def make(p):
        return (lambda _: lambda y: (p[0] * y, None)), (lambda y, _: y[0] - p[1]), (lambda y, _: jnp.asarray(False))

    res = first_hitting_times(make, jnp.stack([a, c], 1), jnp.ones((5, 1)), lanes=2, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.asarray(res.t[:4]), np.log(np.asarray(c[:4])) / np.asarray(a[:4]), rtol=1e-9)
    assert np.isinf(float(res.t[4])) and int(res.status[4]) == rt.Status.UNREACHABLE  # stationary start
    one = first_hitting_time(lambda y: 2.0 * y, jnp.ones(1), lambda y: y[0] - 1e6, rtol=1e-12, atol=1e-12)
    assert float(one.t) == float(res.t[2]) and int(one.steps) == int(res.steps[2])


def test_plateau_is_cheap_at_tight_tolerance():
    # Mass 1e-12 off the dominant output: t_γ ~ 1e11. Evaluating r − E_π r naively loses ~4 digits to
    # cancellation and the step controller then needs > 1e5 steps at rtol = 1e-12; pivoted, a few hundred.
    inst = _peaked_batch(3, 64, 1)
    logits = np.asarray(inst.logits).copy()
    logits[0, 0, 1:] = np.log(1e-12 / 63)
    logits[0, 0, 0] = 0.0
    inst = inst._replace(logits=jnp.asarray(logits))
    res = rt.time_to_gamma(inst, 0.01, rtol=1e-12, atol=1e-12, t_max=1e16, max_steps=20_000)
    assert int(res.status[0, 0]) == rt.Status.REACHED and float(res.t[0, 0]) > 1e9
    assert int(res.steps[0, 0]) < 2_000


def test_lanes_match_plain_vmap_of_first_hitting_time():
    # the scheduler against an independent path: vmap of the single-trajectory solver, λ = 0 and λ > 0
    from rmtheory._flow import _certificate_constants, _column_problem, _flat_columns

    base = _peaked_batch(24, 8, 2)
    for lam in (0.0, 0.3):
        inst = base._replace(lam=jnp.asarray(lam))
        theta0, reward, logref, lamv, n_prompts = _flat_columns(inst)
        target = jnp.sum(jax.nn.softmax(theta0) * reward, -1) + 0.05
        cert = jax.vmap(_certificate_constants)(logref, reward, lamv, reward, target)
        params = dict(logref=logref, reward=reward, lam=lamv, measure=reward, target=target, cert=cert)
        make = _column_problem(n_prompts, with_kl=True)

        def one(p, y0):
            rhs_for, event, certify = make(p)

            def rhs(y):
                return rhs_for(y)(y)  # pivot at y itself: the same field

            return first_hitting_time(lambda y: rhs(y)[0], y0, lambda y: event(y, rhs(y)[1]),
                                      lambda y: certify(y, rhs(y)[1]))

        ref = jax.vmap(one)(params, theta0)
        res = rt.time_to_gamma(inst, 0.05, lanes=5)
        np.testing.assert_array_equal(np.asarray(res.status)[:, 0], np.asarray(ref.status))
        # a different compiled program rounds differently, which can change a few bracketing steps
        np.testing.assert_allclose(np.asarray(res.steps)[:, 0], np.asarray(ref.steps), rtol=0.15)
        np.testing.assert_allclose(np.asarray(res.t)[:, 0], np.asarray(ref.t), rtol=1e-9)


def test_blow_up_approach_without_rejection_cycles():
    # dy/dt = y², y(0) = 1e-9: y = 1/(1e9 − t) reaches 1e9 at t* = 1e9 − 1e-9. The right step shrinks
    # geometrically towards t* (as at a plateau escape of the flow); the classical controller alternates
    # accept/reject there (562 steps at rtol 1e-6), the predictive one does not (285).
    run = jax.jit(lambda tol: first_hitting_time(lambda y: y * y, jnp.array([1e-9]), lambda y: y[0] - 1e9,
                                                 rtol=tol, atol=0.0, t_max=1e12, max_steps=100_000))
    res = run(1e-6)
    assert int(res.status) == rt.Status.REACHED and int(res.steps) < 400
    np.testing.assert_allclose(float(res.t), 1e9 - 1e-9, rtol=1e-6)
    tight = run(1e-11)
    np.testing.assert_allclose(float(tight.t), 1e9 - 1e-9, rtol=1e-10)


def test_output_with_zero_probability_is_inert():
    # a logit of −inf (π = 0 for ever) must not break the starting-step estimate: same t_γ as without it
    logits = np.array([[0.0, -1.0, -np.inf, 2.0]])
    reward = np.array([[0.2, 0.9, 1.0, -0.3]])
    without = rt.time_to_gamma(rt.make_instance(logits[:, [0, 1, 3]], reward[:, [0, 1, 3]], 0.0), 0.1)
    inst = rt.make_instance(np.zeros_like(logits), reward, 0.0)._replace(logits=jnp.asarray(logits))
    res = rt.time_to_gamma(inst, 0.1)
    assert int(res.status[0]) == rt.Status.REACHED
    np.testing.assert_allclose(float(res.t[0]), float(without.t[0]), rtol=1e-9)


def test_first_hitting_times_accepts_a_plain_rhs():
    a = jnp.array([0.5, 2.0])
    per_step = first_hitting_times(lambda p: ((lambda _: lambda y: (p * y, None)), (lambda y, _: y[0] - 10.0),
                                              (lambda y, _: jnp.asarray(False))), a, jnp.ones((2, 1)), lanes=1)
    plain = first_hitting_times(lambda p: ((lambda y: (p * y, None)), (lambda y, _: y[0] - 10.0),
                                           (lambda y, _: jnp.asarray(False))), a, jnp.ones((2, 1)), lanes=1)
    np.testing.assert_array_equal(np.asarray(per_step.t), np.asarray(plain.t))
    np.testing.assert_allclose(np.asarray(plain.t), np.log(10.0) / np.asarray(a), rtol=1e-8)


def test_event_bracket_converges_superlinearly():
    # Illinois on a smooth crossing needs a handful of re-steps to close the bracket to 1e-13, not ~1.4 per decade
    # (bisecting whenever the secant point came near an end of the bracket made it linear: 13 extra steps here).
    def steps(xtol):
        run = jax.jit(lambda: first_hitting_time(lambda y: jnp.stack([y[1], -y[0]]), jnp.array([0.0, 1.0]),
                                                 lambda y: y[0] - 0.7, rtol=1e-10, atol=1e-10, xtol=xtol))
        res = run()
        np.testing.assert_allclose(float(res.t), np.arcsin(0.7), rtol=max(xtol, 1e-9))
        return int(res.steps)

    assert steps(1e-13) - steps(1e-2) <= 5


def test_tail_phase_changes_nothing_but_the_lane_count(monkeypatch):
    # the last ≤ lanes/4 running trajectories move to lanes/4 lanes: bitwise the same results as running the
    # whole batch to the end on every lane (_TAIL_SHRINK = 1 switches the tail phase off)
    from rmtheory import _solver
    from rmtheory._flow import _batched_columns, _flat_columns

    inst = _peaked_batch(96, 16, 4)
    theta0, reward, logref, lam, n_prompts = _flat_columns(inst)
    gam = jnp.full(theta0.shape[:1], 0.02)

    def run():  # not through the jit cache: the constant is read while tracing
        return _batched_columns.__wrapped__(theta0, reward, logref, lam, n_prompts, reward, gam, 1e-9, 1e-9, 1e15,
                                            20_000, lanes=16, with_kl=False, timed_is_reward=True)

    with_tail = run()
    monkeypatch.setattr(_solver, "_TAIL_SHRINK", 1)
    without = run()
    for a, b in zip(with_tail, without):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert np.all(np.asarray(with_tail.status) >= 0)  # nothing left running
