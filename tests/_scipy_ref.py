"""Independent float64 reference for t_γ: scipy's DOP853 with a terminal event at tight tolerances
(test-only dependency), written directly from Eq. 4 / Lemma 7 in numpy."""

import numpy as np
from scipy.integrate import solve_ivp


def _logsoftmax(th):
    m = th.max()
    return th - (m + np.log(np.exp(th - m).sum()))


def scipy_time_to_gamma(theta0, reward, measure, gamma, lam=0.0, logref=None, n_prompts=1, t_max=1e8,
                        rtol=1e-13, atol=1e-13, method="DOP853", pivot=False):
    """``pivot=True`` evaluates r^KL − E_π r^KL around argmax π (no cancellation on plateaus, as the library
    does); the default naive form keeps this reference independent of the library's formulas."""
    theta0 = np.asarray(theta0, float)
    reward, measure = np.asarray(reward, float), np.asarray(measure, float)
    logref = _logsoftmax(theta0) if logref is None else np.asarray(logref, float)

    def f(t, th):
        lp = _logsoftmax(th)
        p = np.exp(lp)
        rkl = reward - lam * (lp - logref)
        if pivot:
            d = rkl - rkl[np.argmax(p)]
            return p * (d - p @ d) / n_prompts
        return p * (rkl - p @ rkl) / n_prompts

    target = np.exp(_logsoftmax(theta0)) @ measure + gamma

    def ev(t, th):
        return np.exp(_logsoftmax(th)) @ measure - target

    ev.terminal, ev.direction = True, 1
    sol = solve_ivp(f, (0.0, t_max), theta0, method=method, rtol=rtol, atol=atol, events=ev)
    return sol.t_events[0][0] if len(sol.t_events[0]) else np.inf
