"""An adaptive Dormand–Prince 5(4) ODE solver with terminal-event location, written for ``vmap``.

One concept: the *first hitting time* of an autonomous ODE dy/dt = f(y) on the set {event(y) ≥ 0}.

Design (why it is fast under ``vmap``):

* Every loop iteration costs exactly one Runge–Kutta step (6 new right-hand-side evaluations), whether
  the trajectory is stepping forward or bracketing the event. Bracketing re-takes a single RK step of
  length h' ∈ (a, b) from the start of the step that crossed the event and updates the bracket by the
  Illinois rule, so the located time carries the 5th-order accuracy of the integrator (no interpolant).
  Because both modes are the same computation, a batch of trajectories advances in lockstep with no
  divergent control flow.
* Step sizes are controlled on the error estimate only; they grow geometrically when the dynamics slow
  down, so the number of steps grows at most logarithmically with the hitting time (t_γ can be 1e12).
  The controller is Gustafsson's predictive one (as in Hairer & Wanner's RADAU5): the next step is the
  smaller of the classical proposal h·0.9·err^(-1/5) and the trend extrapolation
  h·(h/h_prev)·0.9·err^(-1/5)·(err_prev/err)^(1/5), and a step right after a rejection may not grow.
  Near a finite-time blow-up (the escape from a plateau, where θ_y ≈ −ln(t* − t) and the right step
  shrinks geometrically) the classical controller rejects every second step; this one almost never does
  (35 % fewer steps on ``benchmarks/time_to_gamma.py`` at the same accuracy).
* A ``certify(y)`` callback proves that the event can never fire in the future (e.g. from a monotone
  quantity of the flow); the trajectory then stops with status UNREACHABLE and time ``inf``. A horizon
  ``t_max`` and a step budget bound the work on every input: nothing hangs, nothing returns NaN.
"""

from __future__ import annotations

import enum
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ._precision import require_x64

Array = jax.Array


class Status(enum.IntEnum):
    """Why a hitting-time computation stopped. The values are the integer codes stored in
    ``HitResult.status`` (compare arrays with the members: ``res.status == Status.REACHED``); every member
    carries its own explanation, ``Status.HORIZON.message``, and :meth:`describe` maps an array of codes to
    messages (as diffrax's ``RESULTS`` does)."""

    REACHED = 0
    UNREACHABLE = 1
    HORIZON = 2
    MAX_STEPS = 3
    OUT_OF_RANGE = 4

    @property
    def message(self) -> str:
        return _MESSAGES[self]

    @classmethod
    def describe(cls, status) -> np.ndarray:
        """The message of every code in ``status`` (any shape; an array of str of the same shape)."""
        codes = np.asarray(status)
        return np.vectorize(lambda c: cls(int(c)).message, otypes=[object])(codes).astype(str)


_MESSAGES = {
    Status.REACHED: "reached: the event fired at t (located to the integrator's accuracy)",
    Status.UNREACHABLE: "unreachable: proven never to fire (certificate, or a stationary start); t = inf",
    Status.HORIZON: "horizon: not reached by t_max; t = inf only up to the horizon",
    Status.MAX_STEPS: "max_steps: the step budget ran out before the event or the horizon; t = inf, undecided",
    Status.OUT_OF_RANGE: ("out_of_range: the dynamics are below float64 resolution (probabilities underflow to 0, "
                          "so the float right-hand side is 0) although the exact flow moves; t is not computable "
                          "in float64 and is not proven infinite"),
}
REACHED, UNREACHABLE, HORIZON, MAX_STEPS, OUT_OF_RANGE = Status
_RUNNING = -1
_REFILL_SLOTS = 8  # lanes refilled per loop iteration at most (see first_hitting_times)
_TAIL_SHRINK = 4  # the tail runs on lanes / 4 lanes (see first_hitting_times)

# Dormand–Prince 5(4) tableau (Dormand & Prince 1980), FSAL.
_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
)
_B = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84)
# error weights b − b̂ (5th minus embedded 4th order), last entry multiplies f(y_new)
_E = (71 / 57600, 0.0, -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525, -1 / 40)


class HitResult(NamedTuple):
    """Result of :func:`first_hitting_time` (leaves broadcast over any batch shape).

    ``t``: hitting time, ``inf`` unless ``status == REACHED``; ``status``: a :class:`Status` code, REACHED (0),
    UNREACHABLE (1, proven by the certificate, or a stationary start), HORIZON (2, not reached by
    ``t_end ≥ t_max``), MAX_STEPS (3) or OUT_OF_RANGE (4, set by callers that can tell a float-stationary start
    from an exactly stationary one, e.g. :func:`rmtheory.time_to_gamma`); ``steps``: RK steps taken (including
    rejected and bracketing steps); ``t_end``: the time the solver stopped at.
    """

    t: Array
    status: Array
    steps: Array
    t_end: Array

    def messages(self) -> np.ndarray:
        """The :class:`Status` message of every entry of ``status``."""
        return Status.describe(self.status)


def rk_step(rhs: Callable, y: Array, f0: Array, h: Array):
    """One Dormand–Prince step of size h from (y, f0 = rhs(y)): returns (y_new, f(y_new), error, aux).

    ``rhs(y) -> (f, aux)``: ``aux`` of the last (FSAL) evaluation, at y_new, is returned so that the event and
    the certificate can reuse what the right-hand side computed there (e.g. the softmax).
    """
    ks = [f0]
    for i in range(1, 6):
        yi = y + h * sum(a * k for a, k in zip(_A[i], ks) if a != 0.0)
        ks.append(rhs(yi)[0])
    y_new = y + h * sum(b * k for b, k in zip(_B, ks) if b != 0.0)
    f_new, aux = rhs(y_new)
    err = h * sum(e * k for e, k in zip(_E, ks + [f_new]) if e != 0.0)
    return y_new, f_new, err, aux


def _norm(x):
    return jnp.sqrt(jnp.mean(x * x))


def _error_norm(err, y, y_new, rtol, atol):
    """RMS of the local error estimate scaled by atol + rtol·max(|y|, |y_new|); ``inf`` if not finite
    (the step is then rejected)."""
    en = _norm(err / (atol + rtol * jnp.maximum(jnp.abs(y), jnp.abs(y_new))))
    return jnp.where(jnp.isfinite(en), en, jnp.inf)


def _initial_step(rhs, y0, f0, rtol, atol):
    """Hairer, Nørsett & Wanner's starting step (as in scipy's ``select_initial_step``)."""
    scale = atol + jnp.abs(y0) * rtol
    fin = jnp.isfinite(y0)  # coordinates at ±inf (e.g. a logit of −inf: π = 0, never moves) do not set the scale
    scale = jnp.where(fin, scale, 1.0)
    d0, d1 = _norm(jnp.where(fin, y0, 0.0) / scale), _norm(jnp.where(fin, f0, 0.0) / scale)
    h0 = jnp.where((d0 < 1e-5) | (d1 < 1e-5), 1e-6, 0.01 * d0 / jnp.maximum(d1, 1e-300))
    f1 = rhs(y0 + h0 * f0)[0]
    d2 = _norm(jnp.where(fin, f1 - f0, 0.0) / scale) / h0
    dmax = jnp.maximum(d1, d2)
    h1 = jnp.where(dmax <= 1e-15, jnp.maximum(1e-6, h0 * 1e-3), (0.01 / jnp.maximum(dmax, 1e-300)) ** (1 / 5))
    return jnp.minimum(100 * h0, h1)


class _State(NamedTuple):
    t: Array
    y: Array
    f: Array
    g: Array
    h: Array
    status: Array
    steps: Array
    bracketing: Array
    a: Array
    b: Array
    ga: Array
    gb: Array
    side: Array
    t_hit: Array
    h_acc: Array  # last accepted step (0 before the first) and its error norm, for the predictive controller
    en_acc: Array
    rejected: Array  # the last stepping attempt was rejected


def _init(rhs_for, event, certify, y0, rtol, atol) -> _State:
    y0 = jnp.asarray(y0, jnp.float64)
    rhs = rhs_for(y0)
    f0, aux0 = rhs(y0)
    g0 = event(y0, aux0)
    h0 = _initial_step(rhs, y0, f0, rtol, atol)
    status0 = jnp.where(g0 >= 0, REACHED, jnp.where(certify(y0, aux0) | jnp.all(f0 == 0), UNREACHABLE, _RUNNING))
    zero = jnp.zeros(())
    return _State(zero, y0, f0, g0, h0, status0, jnp.asarray(0), jnp.asarray(False), zero, zero, zero, zero,
                  jnp.asarray(0), jnp.where(g0 >= 0, 0.0, jnp.inf), zero, jnp.asarray(1.0), jnp.asarray(False))


def _advance(rhs_for, event, certify, s: _State, rtol, atol, t_max, max_steps, xtol) -> _State:
    """One loop iteration = one Runge–Kutta step (stepping or bracketing).

    Only a running state may be advanced (a finished one could change status again): the single-trajectory
    loop stops at the first final status (under ``vmap`` a finished trajectory is frozen by the batched
    ``while_loop``), and the lane scheduler records a finished lane's result in the same iteration and then
    refills or retires the lane. ``rhs_for(y_start)`` gives the right-hand side used for every stage of a step
    that starts at y_start.
    """
    rhs = rhs_for(s.y)
    # Illinois trial point inside the bracket (a, b), kept half a tolerance away from either end: a trial that
    # falls within it (the secant has converged onto one end) then lands just beyond the root, and the bracket
    # closes in one more step (bisecting there instead made the convergence linear)
    trial = s.b - s.gb * (s.b - s.a) / (s.gb - s.ga)
    delta = jnp.minimum(0.5 * xtol * (s.t + s.b), 0.25 * (s.b - s.a))
    trial = jnp.where(jnp.isfinite(trial), jnp.clip(trial, s.a + delta, s.b - delta), 0.5 * (s.a + s.b))
    h = jnp.where(s.bracketing, trial, s.h)
    y_new, f_new, err, aux = rk_step(rhs, s.y, s.f, h)
    g_new = event(y_new, aux)
    steps = s.steps + 1

    # --- stepping mode -----------------------------------------------------------------------------
    en = _error_norm(err, s.y, y_new, rtol, atol)
    accept = en <= 1.0
    en_c = jnp.maximum(en, 1e-10)
    classic = 0.9 * en_c ** (-1 / 5)
    # predictive proposal from the last accepted step (none before the first one: h_acc = 0)
    has_history = s.h_acc > 0
    predictive = classic * (h / jnp.where(has_history, s.h_acc, h)) * (s.en_acc / en_c) ** (1 / 5)
    factor = jnp.where(accept & has_history, jnp.minimum(classic, predictive), classic)
    factor = jnp.clip(factor, 0.2, jnp.where(accept & ~s.rejected, 10.0, 1.0))
    crossed = accept & (g_new >= 0)
    moved = accept & ~crossed
    t_step = jnp.where(moved, s.t + h, s.t)
    y_step = jnp.where(moved, y_new, s.y)
    f_step = jnp.where(moved, f_new, s.f)
    g_step = jnp.where(moved, g_new, s.g)
    st_step = jnp.where(moved & certify(y_new, aux), UNREACHABLE, _RUNNING)
    st_step = jnp.where(moved & (t_step >= t_max), HORIZON, st_step)

    # --- bracketing mode (Illinois) ----------------------------------------------------------------
    hit_right = g_new >= 0
    a_br = jnp.where(hit_right, s.a, h)
    ga_br = jnp.where(hit_right, jnp.where(s.side == 1, 0.5 * s.ga, s.ga), g_new)
    b_br = jnp.where(hit_right, h, s.b)
    gb_br = jnp.where(hit_right, g_new, jnp.where(s.side == -1, 0.5 * s.gb, s.gb))
    side_br = jnp.where(hit_right, 1, -1)
    done_br = (b_br - a_br <= xtol * (s.t + b_br)) | (g_new == 0)

    br = s.bracketing
    status = jnp.where(br, jnp.where(done_br, REACHED, _RUNNING), st_step)
    status = jnp.where((status == _RUNNING) & (steps >= max_steps), MAX_STEPS, status)
    new = _State(
        t=jnp.where(br, s.t, t_step),
        y=jnp.where(br, s.y, y_step),
        f=jnp.where(br, s.f, f_step),
        g=jnp.where(br, s.g, g_step),
        h=jnp.where(br, s.h, h * factor),
        status=status,
        steps=steps,
        bracketing=br | crossed,
        a=jnp.where(br, a_br, 0.0),
        b=jnp.where(br, b_br, h),
        ga=jnp.where(br, ga_br, s.g),
        gb=jnp.where(br, gb_br, g_new),
        side=jnp.where(br, side_br, 0),
        t_hit=jnp.where(br & done_br, s.t + b_br, s.t_hit),
        h_acc=jnp.where(~br & accept, h, s.h_acc),
        en_acc=jnp.where(~br & accept, jnp.maximum(en, 1e-2), s.en_acc),  # RADAU5's floor
        rejected=jnp.where(br, s.rejected, ~accept),
    )
    return new


def _result(s: _State) -> HitResult:
    reached = s.status == REACHED
    return HitResult(jnp.where(reached, s.t_hit, jnp.inf), s.status, s.steps, jnp.where(reached, s.t_hit, s.t))


def first_hitting_time(
    rhs: Callable[[Array], Array],
    y0: Array,
    event: Callable[[Array], Array],
    certify: Callable[[Array], Array] | None = None,
    *,
    rtol: float = 1e-10,
    atol: float = 1e-10,
    t_max: float = 1e15,
    max_steps: int = 20_000,
    xtol: float = 1e-13,
) -> HitResult:
    """inf{t ≥ 0 : event(y(t)) ≥ 0} for dy/dt = rhs(y), y(0) = y0 (a flat float64 vector).

    Args:
      rhs: the autonomous vector field.
      event: scalar function; the trajectory starts with event(y0) < 0 (else the time is 0).
      certify: optional; ``certify(y)`` True proves event < 0 at every later point of the trajectory
        (status UNREACHABLE). A stationary start (rhs(y0) = 0) is always UNREACHABLE.
      rtol, atol: local error tolerances of the 5(4) pair (RMS norm).
      t_max: horizon; a trajectory not reached by then stops with status HORIZON and ``inf``.
      max_steps: step budget (status MAX_STEPS and ``inf`` when exhausted).
      xtol: relative width at which the event bracket is accepted (the reported time is its right end,
        where event ≥ 0 holds to integrator accuracy).

    Under ``vmap`` the loop runs in lockstep until the slowest trajectory is done; for large batches of
    trajectories with very different step counts use :func:`first_hitting_times`.
    """
    require_x64("rmtheory.first_hitting_time")
    def rhs_for(_):
        return lambda y: (rhs(y), None)

    def event_a(y, _):
        return event(y)

    def certify_a(y, _):
        return jnp.asarray(False) if certify is None else certify(y)

    s0 = _init(rhs_for, event_a, certify_a, y0, rtol, atol)
    s = jax.lax.while_loop(lambda s: s.status == _RUNNING,
                           lambda s: _advance(rhs_for, event_a, certify_a, s, rtol, atol, t_max, max_steps, xtol),
                           s0)
    return _result(s)


def first_hitting_times(
    make: Callable,
    params,
    y0: Array,
    *,
    lanes: int = 64,
    rtol: float = 1e-10,
    atol: float = 1e-10,
    t_max: float = 1e15,
    max_steps: int = 20_000,
    xtol: float = 1e-13,
) -> HitResult:
    """:func:`first_hitting_time` for a batch of n independent problems, scheduled on ``lanes`` SIMD lanes.

    ``make(p) -> (rhs_for, event, certify)`` builds problem i from its parameters ``p`` (the i-th slice of the
    pytree ``params``, leading axis n): ``rhs_for(y_start)`` returns the right-hand side ``rhs(y) -> (f, aux)``
    used for every stage of the step that starts at ``y_start`` (so that it can precompute once per step,
    e.g. a pivot; it must not change the vector field), ``event(y, aux)`` and ``certify(y, aux)`` (``aux``:
    whatever the right-hand side computed at y that the other two can reuse); ``y0`` is [n, d]. ``make`` may
    also return a plain ``rhs(y) -> (f, aux)`` in place of ``rhs_for`` (no per-step precomputation).
    Results are those of vmapping :func:`first_hitting_time` (the same algorithm; a differently compiled program
    may round differently), but the cost is not n × (steps of the slowest problem): a lane whose problem
    finishes is refilled with the next problem in the queue (at most max(8, lanes/16) lanes per iteration, the
    others in the next one; only the loaded rows are copied), so the batch costs ≈ Σ_i steps_i / lanes
    iterations plus one tail, whatever the spread of step counts (t_γ spanning 1 … 1e12 gives step counts
    differing by 10×). The tail runs on lanes/4 lanes: once the queue is empty and at most lanes/4 trajectories
    are still running, they move to a loop of that width (bitwise the same results; on
    ``benchmarks/time_to_gamma.py`` the queue and the tail had cost 7 % more iterations than Σ_i steps_i / lanes).
    """
    require_x64("rmtheory.first_hitting_times")
    y0 = jnp.asarray(y0, jnp.float64)
    n = y0.shape[0]

    def problem(p):
        fn, event, certify = make(p)

        def rhs_for(y_start):  # accept rhs_for(y_start) -> rhs or a plain rhs(y) -> (f, aux)
            out = fn(y_start)
            return out if callable(out) else fn

        return rhs_for, event, certify

    def init_one(p, y):
        return _init(*problem(p), y, rtol, atol)

    def advance_one(p, s):
        return _advance(*problem(p), s, rtol, atol, t_max, max_steps, xtol)

    init = jax.vmap(init_one)(params, y0)
    out = _result(init)  # final for problems decided at t = 0; overwritten for the others
    running = init.status == _RUNNING
    queue = jnp.argsort(~running, stable=True)  # running problems first
    n_run = jnp.sum(running)
    n_lanes = max(1, min(int(lanes), n))
    n_slots = min(n_lanes, max(_REFILL_SLOTS, n_lanes // 16))
    pos = jnp.arange(n_lanes)

    def take(tree, idx):
        return jax.tree_util.tree_map(lambda a: a[idx], tree)

    idx0 = queue[jnp.minimum(pos, n - 1)]
    active0 = pos < n_run

    def advance(idx, active, state, lane_params, out):
        state = jax.vmap(advance_one)(lane_params, state)
        done = active & (state.status != _RUNNING)
        dest = jnp.where(done, idx, n)  # n = out of bounds, dropped
        out = jax.tree_util.tree_map(lambda o, r: o.at[dest].set(r, mode="drop"), out, _result(state))
        return state, done, out

    # phase 1: every lane busy while the queue lasts, and until at most n_tail lanes are still running
    n_tail = max(1, n_lanes // _TAIL_SHRINK)

    def cond(c):
        idx, active, state, lane_params, nxt, out = c
        if n_tail == n_lanes:  # no tail phase: run to the end
            return jnp.any(active)
        return jnp.any(active) & ((nxt < n_run) | (jnp.sum(active) > n_tail))

    def body(c):
        idx, active, state, lane_params, nxt, out = c
        state, done, out = advance(idx, active, state, lane_params, out)
        # refill at most n_slots free lanes per iteration (a lane left free waits one iteration): only the
        # loaded rows are gathered, not a full [lanes, ...] copy of the parameters and initial states
        free = ~active | done
        rank = jnp.cumsum(free) - 1
        load = free & (rank < n_slots) & (nxt + rank < n_run)
        slot_lane = jnp.nonzero(load, size=n_slots, fill_value=n_lanes)[0]  # lanes in rank order
        slot_prob = queue[jnp.minimum(nxt + jnp.arange(n_slots), n - 1)]
        def put(dst, src):
            return jax.tree_util.tree_map(lambda d, s_: d.at[slot_lane].set(s_, mode="drop"), dst, src)

        state = put(state, take(init, slot_prob))
        lane_params = put(lane_params, take(params, slot_prob))
        idx = idx.at[slot_lane].set(slot_prob, mode="drop")
        active = (active & ~done) | load
        return idx, active, state, lane_params, nxt + jnp.sum(load), out

    carry = (idx0, active0, take(init, idx0), take(params, idx0), jnp.asarray(n_lanes), out)
    idx, active, state, lane_params, _, out = jax.lax.while_loop(cond, body, carry)
    if n_tail == n_lanes:
        return out

    # phase 2 (the tail): the ≤ n_tail trajectories still running move to n_tail lanes, so the last, longest
    # ones no longer pay for n_lanes lanes per iteration
    keep = jnp.nonzero(active, size=n_tail, fill_value=n_lanes)[0]
    src = jnp.minimum(keep, n_lanes - 1)  # padding lanes copy a real one and stay inactive

    def tail_body(c):
        idx, active, state, lane_params, out = c
        state, done, out = advance(idx, active, state, lane_params, out)
        return idx, active & ~done, state, lane_params, out

    carry = (idx[src], keep < n_lanes, take(state, src), take(lane_params, src), out)
    return jax.lax.while_loop(lambda c: jnp.any(c[1]), tail_body, carry)[4]


def integrate(rhs: Callable[[Array], Array], y0: Array, t1, *, rtol: float = 1e-10, atol: float = 1e-10,
              max_steps: int = 100_000) -> Array:
    """y(t1) for dy/dt = rhs(y), y(0) = y0, by adaptive Dormand–Prince steps (last step lands on t1)."""
    y0 = jnp.asarray(y0, jnp.float64)
    t1 = jnp.asarray(t1, jnp.float64)
    def rhs_a(y):
        return rhs(y), None

    f0 = rhs(y0)
    h0 = _initial_step(rhs_a, y0, f0, rtol, atol)

    def cond(c):
        t, _, _, _, n = c
        return (t < t1) & (n < max_steps)

    def body(c):
        t, y, f, h, n = c
        h = jnp.minimum(h, t1 - t)
        y_new, f_new, err, _ = rk_step(rhs_a, y, f, h)
        en = _error_norm(err, y, y_new, rtol, atol)
        accept = en <= 1.0
        factor = jnp.clip(0.9 * en ** (-1 / 5), 0.2, jnp.where(accept, 10.0, 1.0))
        last = accept & (h >= t1 - t)
        t = jnp.where(last, t1, jnp.where(accept, t + h, t))
        return (t, jnp.where(accept, y_new, y), jnp.where(accept, f_new, f), h * factor, n + 1)

    _, y, _, _, _ = jax.lax.while_loop(cond, body, (jnp.zeros(()), y0, f0, h0, jnp.asarray(0)))
    return y
