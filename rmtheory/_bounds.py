"""Bounds of the paper, each a pure function of the quantities it names (docs/theory.md,
"Results").

Every function is elementwise in its array arguments (they broadcast), validates concrete inputs (errors
name the argument) and returns float64. Conventions:

* ``n_prompts`` is |S| (the flow carries a 1/|S| factor, docs/theory.md "Setting");
* ``gamma`` is the improvement γ > 0 of t_γ (docs/theory.md "Definitions");
* a time lower bound is ``inf`` when the variance is 0 (the flow never moves), a time upper bound is
  only meaningful when the conditions of its result hold (see the ``*_conditions`` checkers).

Results covered: Theorem 1/4 (:func:`thm4_time_lower_bound`), Proposition 2
(:func:`prop2_gradient_bound`), Lemma 8 (:func:`lemma8_gradient_bound`), Proposition 3
(:func:`prop3_time_lower_bound`), Proposition 4 (:func:`prop4_conditions`, :func:`prop4_time_upper_bound`),
Theorem 5 (:func:`rho`, :func:`thm5_lambda_threshold`, :func:`thm5_time_upper_bound`,
:func:`thm5_slow_lower_bound`), Theorem 6 (:func:`thm6_lambda_threshold`, :func:`thm6_time_upper_bound`,
:func:`thm6_slow_lower_bound`) and Lemma 10 (:func:`lemma10_growth_bound`).
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from . import _checks

_E = float(np.e)


def _f(x):
    return jnp.asarray(x, jnp.float64)


def _inv_pow(v, p):
    """v^{-p} with inf at v = 0."""
    v = _f(v)
    return jnp.where(v > 0, jnp.where(v > 0, v, 1.0) ** (-p), jnp.inf)


# --------------------------------------------------------------------------------------------------
# Lower bounds (slow optimisation)
# --------------------------------------------------------------------------------------------------

def prop3_time_lower_bound(variance, gamma, n_prompts=1):
    """Proposition 3 [T]: t_γ ≥ 2|S|(1 − e^{−γ/2}) / √Var_{y∼π_θ(0)(·|x)}[r_RM(x, y)] (``inf`` at Var = 0)."""
    _checks.nonnegative("variance", variance)
    _checks.positive("gamma", gamma)
    _checks.positive("n_prompts", n_prompts)
    v = jnp.asarray(variance, jnp.float64)
    num = 2.0 * n_prompts * (1.0 - jnp.exp(-jnp.asarray(gamma, jnp.float64) / 2.0))
    return jnp.where(v > 0, num / jnp.sqrt(jnp.where(v > 0, v, 1.0)), jnp.inf)


def thm4_time_lower_bound(mean_variance, gamma, lam=0.0, length=1, jacobian=1.0):
    """Theorem 4 [G] (Theorem 1 in full):

        t_γ ≥ min{1 − e^{−γ/9}, 1 − e^{−7/(3λ)}} / (8 L² J²) · (E_{x'∼S} Var_{π_θ(0)}[r_RM(x', ·)])^{−1/3},

    with e^{−7/(3λ)} := 0 at λ = 0. Holds for every prompt x (even outside S) and every timed reward r in
    [−1, 1]. ``mean_variance`` is the proxy variance under the *initial* policy *averaged over S*;
    ``length`` is L; ``jacobian`` is J_{t_γ}, the largest spectral norm of ∂f_θ/∂θ over all prompts,
    prefixes and times in [0, t_γ] (1 for tabular and per-prefix tabular policies). ``inf`` at variance 0.
    """
    _checks.nonnegative("mean_variance", mean_variance)
    _checks.positive("gamma", gamma)
    _checks.nonnegative("lam", lam)
    _checks.positive("length", length)
    _checks.positive("jacobian", jacobian)
    lam = _f(lam)
    kl_term = jnp.where(lam > 0, 1.0 - jnp.exp(-7.0 / (3.0 * jnp.where(lam > 0, lam, 1.0))), 1.0)
    num = jnp.minimum(1.0 - jnp.exp(-_f(gamma) / 9.0), kl_term)
    return num / (8.0 * _f(length) ** 2 * _f(jacobian) ** 2) * _inv_pow(mean_variance, 1.0 / 3.0)


def thm5_slow_lower_bound(gamma, slowness, n_prompts=1):
    """Theorem 5, slow part [T]: with the low-variance r_RM of the construction (Var ≤ 1/T², T = ``slowness``)
    and any λ, t_γ ≥ 2|S|(1 − e^{−γ/2}) T (Proposition 3 with Var ≤ T^{−2})."""
    check_slowness(slowness)
    _checks.positive("gamma", gamma)
    _checks.positive("n_prompts", n_prompts)
    return 2.0 * _f(n_prompts) * (1.0 - jnp.exp(-_f(gamma) / 2.0)) * _f(slowness)


def thm6_slow_lower_bound(gamma, slowness, n_prompts=1):
    """Theorem 6, slow part [T]: for π_θ(0) ∈ Π trained with r'_RM (one-hot on y'^γ, π_0(y'^γ) ≤ T^{−2})
    and any λ, t_γ ≥ (|S|/√2)(1 − e^{−γ/2}) T (Proposition 3 with Var ≤ 8/T²)."""
    check_slowness(slowness)
    _checks.positive("gamma", gamma)
    _checks.positive("n_prompts", n_prompts)
    return _f(n_prompts) / np.sqrt(2.0) * (1.0 - jnp.exp(-_f(gamma) / 2.0)) * _f(slowness)


# --------------------------------------------------------------------------------------------------
# Gradient bounds
# --------------------------------------------------------------------------------------------------

def prop2_gradient_bound(variance, reward_bound=1.0, length=1, jacobian=1.0):
    """Proposition 2 [G]: ‖∇φ_RLHF(θ; x)‖₂ ≤ 6 M^{1/3} L J_x Var_{π_θ}[r^KL_RM(x, ·; θ)]^{1/3}, where
    M = ``reward_bound`` bounds |r^KL_RM(x, y; θ)| for every y (M = 1 for λ = 0 and rewards in [−1, 1]),
    L = ``length`` and J_x = ``jacobian`` (largest spectral norm over the prefixes of x)."""
    _checks.nonnegative("variance", variance)
    _checks.positive("reward_bound", reward_bound)
    _checks.positive("length", length)
    _checks.nonnegative("jacobian", jacobian)
    return 6.0 * _f(reward_bound) ** (1 / 3) * _f(length) * _f(jacobian) * _f(variance) ** (1 / 3)


def lemma8_gradient_bound(variance):
    """Lemma 8 [T]: ‖∇_{θ_{:,x}} φ_RLHF(θ; x)‖₁ ≤ √Var_{π_θ}[r^KL_RM(x, ·; θ)] (per-prompt gradient,
    without the 1/|S| factor of the flow)."""
    _checks.nonnegative("variance", variance)
    return jnp.sqrt(_f(variance))


def lemma10_growth_bound(prob_set0, min_prob0, time, lam=0.0, n_prompts=1):
    """Lemma 10 [T]: π_θ(T)(A|x) ≤ π_θ(0)(A|x) · exp((1/|S|)(4 + 2λ ln(1/min_y π_θ(0)(y|x))) T)."""
    _checks.in_range("prob_set0", prob_set0, 0.0, 1.0 + 1e-9)
    _checks.in_range("min_prob0", min_prob0, 0.0, 1.0)
    _checks.positive("min_prob0", min_prob0)
    _checks.nonnegative("time", time)
    _checks.nonnegative("lam", lam)
    _checks.positive("n_prompts", n_prompts)
    rate = (4.0 + 2.0 * _f(lam) * jnp.log(1.0 / _f(min_prob0))) / _f(n_prompts)
    return _f(prob_set0) * jnp.exp(rate * _f(time))


# --------------------------------------------------------------------------------------------------
# Upper bounds (fast optimisation): Proposition 4, Theorems 5 and 6
# --------------------------------------------------------------------------------------------------

def check_slowness(slowness):
    """Theorems 5/6 take a scale T ≥ 1 (named ``slowness`` here; not the horizon of J_T)."""
    _checks.finite("slowness", slowness)
    if _checks.is_concrete(slowness) and np.any(np.asarray(slowness, np.float64) < 1):
        raise ValueError(f"slowness (the scale T of Theorems 5/6) must be >= 1; got {np.min(slowness):.6g}")


def check_c(c):
    """Theorem 6's mass c on the well-covered output must lie in the open interval (0, 1)."""
    _checks.finite("c", c)
    if _checks.is_concrete(c):
        a = np.asarray(c, np.float64)
        if np.any((a <= 0) | (a >= 1)):
            bad = a[(a <= 0) | (a >= 1)].ravel()[0]
            raise ValueError(f"c must lie in the open interval (0, 1); got {bad:.6g}")


def rho(v_g0, gamma, r_g_top):
    """ρ := (V_G^0 + γ + 1) / (r_G(x, y^γ) + 1) (Theorem 5/6; Proposition 4 uses min_{y ∈ Y+} r_G(x, y)).

    π(Y+) ≥ ρ forces V_G ≥ V_G^0 + γ. Raises if r_G(x, y^γ) ≤ V_G^0 + γ (then ρ ∉ (0, 1) and γ exceeds the
    increase the construction can deliver)."""
    _checks.finite("v_g0", v_g0)
    _checks.positive("gamma", gamma)
    _checks.in_range("r_g_top", r_g_top, -1.0, 1.0)
    v_g0, gamma, r_g_top = _f(v_g0), _f(gamma), _f(r_g_top)
    if _checks.is_concrete(v_g0) and np.any(np.asarray(r_g_top) <= np.asarray(v_g0 + gamma)):
        raise ValueError("gamma too large: the good output needs r_G(x, y^gamma) > V_G^0 + gamma; got "
                         f"r_G = {np.min(np.asarray(r_g_top)):.6g}, V_G^0 + gamma = "
                         f"{np.max(np.asarray(v_g0 + gamma)):.6g}")
    return (v_g0 + gamma + 1.0) / (r_g_top + 1.0)


def _kl_constant(min_prob0):
    """1/(2e) − 2 ln min_y π_0(y) = 2 ln(1/min π_0) + 1/(2e) (the Lemma 11 constant)."""
    return 1.0 / (2.0 * _E) - 2.0 * jnp.log(_f(min_prob0))


def thm5_lambda_threshold(pi0_top, rho_, min_prob0):
    """Theorem 5, fast part: the bound holds for λ ≤ π_0(y^γ)(1 − ρ)⁴ / (8 (1/(2e) − 2 ln min_y π_0(y)))."""
    _checks.in_range("pi0_top", pi0_top, 0.0, 1.0)
    _checks.in_range("rho", rho_, 0.0, 1.0)
    _checks.positive("min_prob0", min_prob0)
    return _f(pi0_top) * (1.0 - _f(rho_)) ** 4 / (8.0 * _kl_constant(min_prob0))


def thm5_time_upper_bound(pi0_top, rho_, n_prompts=1):
    """Theorem 5, fast part [T]: with r'_RM (y^γ at 1, others in (0, π_0(y^γ))) and λ below
    :func:`thm5_lambda_threshold`, t_γ ≤ 4|S|/(1 − ρ)⁴ · (1/π_0(y^γ) − 1/ρ)."""
    _checks.in_range("pi0_top", pi0_top, 0.0, 1.0)
    _checks.positive("pi0_top", pi0_top)
    _checks.in_range("rho", rho_, 0.0, 1.0)
    _checks.positive("n_prompts", n_prompts)
    return 4.0 * _f(n_prompts) / (1.0 - _f(rho_)) ** 4 * (1.0 / _f(pi0_top) - 1.0 / _f(rho_))


def thm6_lambda_threshold(c, rho_, min_prob0):
    """Theorem 6, fast part: the bound holds for λ ≤ c(1 − ρ)³ / (16 (1/(2e) − 2 ln min_y π_0(y)))."""
    check_c(c)
    _checks.in_range("rho", rho_, 0.0, 1.0)
    _checks.positive("min_prob0", min_prob0)
    return _f(c) * (1.0 - _f(rho_)) ** 3 / (16.0 * _kl_constant(min_prob0))


def thm6_time_upper_bound(c, rho_, n_prompts=1):
    """Theorem 6, fast part [T]: for π_θ(0) ∈ Π (π_0(y^γ) ≥ c) trained with the one-hot r_RM on y^γ and λ
    below :func:`thm6_lambda_threshold`, t_γ ≤ 2|S|/(1 − ρ)³ · (1/c − 1/ρ)."""
    check_c(c)
    _checks.in_range("rho", rho_, 0.0, 1.0)
    _checks.positive("n_prompts", n_prompts)
    return 2.0 * _f(n_prompts) / (1.0 - _f(rho_)) ** 3 * (1.0 / _f(c) - 1.0 / _f(rho_))


class Prop4Check(NamedTuple):
    """Proposition 4's quantities for one prompt. ``failed`` is ``None`` when all three conditions hold,
    else the name of the first failing one: ``"good_set"`` (Y+ empty or some y ∈ Y+ lacks r_G > V_G^0 + γ
    and r_RM > V_RM^0), ``"separation"`` (condition 1, δ > 0), ``"lambda"`` (condition 2) or
    ``"distractors"`` (condition 3). ``bound`` is the upper bound on t_γ (``nan`` unless all hold)."""

    rho: float
    delta: float
    lambda_max: float
    bad_mass: float
    bad_mass_max: float
    good_mass: float
    failed: str | None
    bound: float

    @property
    def ok(self) -> bool:
        return self.failed is None


def prop4_conditions(pi0, r_g, r_rm, gamma, good_set, lam=0.0, n_prompts=1) -> Prop4Check:
    """Check Proposition 4's hypotheses for one prompt and return its bound.

    Args:
      pi0: initial policy π_0(·|x), shape [|Y|] (full support).
      r_g, r_rm: ground truth and optimised reward at x, shape [|Y|], values in [−1, 1].
      gamma: γ > 0.
      good_set: boolean mask [|Y|] of Y+.
      lam, n_prompts: λ ≥ 0 and |S|.

    Conditions (docs/theory.md, Proposition 4): every y ∈ Y+ has r_G > V_G^0 + γ and r_RM > V_RM^0; with
    ρ = (V_G^0 + γ + 1)/(min_{Y+} r_G + 1),
      1. δ := (1 − ρ)[max_{Y+} r_RM − V_RM^0] − max_{y,y' ∈ Y+}|r_RM(y) − r_RM(y')| > 0;
      2. λ ≤ π_0(Y+)(1 − ρ)δ / (8|Y+| (2 ln(1/min π_0) + 1/(2e)));
      3. π_0(Y_bad) ≤ π_0(Y+)²(1 − ρ)δ/(16|Y+|) · exp(−20|Y+|/((1 − ρ)δ) · (1/π_0(Y+) − 1/ρ)),
         Y_bad := {y : r_RM > V_RM^0} ∖ Y+.
    Conclusion: t_γ ≤ 4|S||Y+|/((1 − ρ)δ) · (1/π_0(Y+) − 1/ρ) (t_γ for r = r_G).
    """
    pi0 = np.asarray(pi0, np.float64)
    r_g = np.asarray(r_g, np.float64)
    r_rm = np.asarray(r_rm, np.float64)
    good = np.asarray(good_set, bool)
    _checks.distribution("pi0", pi0)
    _checks.positive("pi0", pi0)
    _checks.in_range("r_g", r_g, -1, 1)
    _checks.in_range("r_rm", r_rm, -1, 1)
    _checks.same_shape(pi0=pi0, r_g=r_g, r_rm=r_rm, good_set=good)
    _checks.positive("gamma", gamma)
    _checks.nonnegative("lam", lam)
    _checks.positive("n_prompts", n_prompts)
    v_g0 = float(pi0 @ r_g)
    v_rm0 = float(pi0 @ r_rm)
    nan = float("nan")
    n_good = int(good.sum())
    if n_good == 0 or not (np.all(r_g[good] > v_g0 + gamma) and np.all(r_rm[good] > v_rm0)):
        return Prop4Check(nan, nan, nan, nan, nan, float(pi0[good].sum()), "good_set", nan)
    rho_ = (v_g0 + gamma + 1.0) / (r_g[good].min() + 1.0)
    p_good = float(pi0[good].sum())
    spread = float(r_rm[good].max() - r_rm[good].min())
    delta = (1.0 - rho_) * (float(r_rm[good].max()) - v_rm0) - spread
    bad = (r_rm > v_rm0) & ~good
    p_bad = float(pi0[bad].sum())
    if not delta > 0:
        return Prop4Check(rho_, delta, nan, p_bad, nan, p_good, "separation", nan)
    kconst = 2.0 * np.log(1.0 / pi0.min()) + 1.0 / (2.0 * _E)
    lam_max = p_good * (1.0 - rho_) * delta / (8.0 * n_good * kconst)
    scale = (1.0 - rho_) * delta
    gap = 1.0 / p_good - 1.0 / rho_
    bad_max = p_good**2 * scale / (16.0 * n_good) * np.exp(-20.0 * n_good / scale * gap)
    bound = 4.0 * n_prompts * n_good / scale * gap
    failed = None
    if not lam <= lam_max:
        failed = "lambda"
    elif not p_bad <= bad_max:
        failed = "distractors"
    return Prop4Check(rho_, delta, lam_max, p_bad, bad_max, p_good, failed, bound if failed is None else nan)


def prop4_time_upper_bound(good_mass, rho_, delta, n_good, n_prompts=1):
    """Proposition 4's conclusion: t_γ ≤ 4|S||Y+| / ((1 − ρ)δ) · (1/π_0(Y+) − 1/ρ) (valid only when
    :func:`prop4_conditions` reports no failed condition)."""
    _checks.in_range("good_mass", good_mass, 0.0, 1.0)
    _checks.positive("good_mass", good_mass)
    _checks.in_range("rho", rho_, 0.0, 1.0)
    _checks.positive("delta", delta)
    _checks.positive("n_good", n_good)
    _checks.positive("n_prompts", n_prompts)
    return (4.0 * _f(n_prompts) * _f(n_good) / ((1.0 - _f(rho_)) * _f(delta))
            * (1.0 / _f(good_mass) - 1.0 / _f(rho_)))
