"""The sample estimator of the teaching rate (``rmtheory._rate_estimator``) and the sketches (``rmtheory._sketch``).

The exact tabular rate is computed here independently of the estimator: for a softmax policy over logits the
score vectors are g_y = e_y − π, so E_π[a g] = π ⊙ (a − E_π a) and

    rate_G,x = Σ_y π_y² (a_y − E_π a)(b_y − E_π b),    rate_self,x = Σ_y π_y² (b_y − E_π b)².
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rmtheory._rate_estimator import rate_estimate
from rmtheory._sketch import CHUNK, KINDS, projection_matrix, sketch, sketch_variance

# ---- independent references ------------------------------------------------------------------------------

def exact_rates(pi, a, b):
    """[P] exact rate_G and rate_self of tabular softmax policies pi [P, n] with rewards a, b [P, n]."""
    ca = a - np.sum(pi * a, -1, keepdims=True)
    cb = b - np.sum(pi * b, -1, keepdims=True)
    return np.sum(pi ** 2 * ca * cb, -1), np.sum(pi ** 2 * cb * cb, -1)


def naive_u(a, b, g):
    """The U-statistic written as in the notes, with explicit loops (one prompt)."""
    K = len(a)
    t = 0.0
    for i, j in itertools.permutations(range(K), 2):
        rest = [k for k in range(K) if k not in (i, j)]
        c = np.mean(a[rest]) if rest else 0.0
        d = np.mean(b[rest]) if rest else 0.0
        t += (a[i] - c) * (b[j] - d) * float(g[i] @ g[j])
    return t / (K * (K - 1))


def tabular_draws(seed, n_out, n_prompts, k, reps):
    """A random tabular instance and `reps` independent draws of K samples per prompt, flattened to
    [reps·P, K] scores and [reps·P, K, n_out] exact score vectors; plus the exact rates [P]."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 1.5, (n_prompts, n_out))
    pi = np.exp(logits - logits.max(-1, keepdims=True))
    pi /= pi.sum(-1, keepdims=True)
    r_g = rng.normal(size=(n_prompts, n_out))
    r = 0.7 * r_g + 0.7 * rng.normal(size=(n_prompts, n_out)) + rng.normal(size=(n_prompts, 1))
    cdf = np.cumsum(pi, -1)
    u = rng.random((reps, n_prompts, k))
    y = np.minimum((u[..., None] > cdf[None, :, None, :]).sum(-1), n_out - 1)       # [R, P, K]
    p_idx = np.arange(n_prompts)[None, :, None]
    a, b = r_g[p_idx, y], r[p_idx, y]
    g = np.eye(n_out)[y] - pi[None, :, None, :]
    exact = exact_rates(pi, r_g, r)
    return (a.reshape(-1, k), b.reshape(-1, k), g.reshape(-1, k, n_out)), exact, (reps, n_prompts)


def check_unbiased(est, exact, shape, z_max=3.0):
    """Mean over the draws of the per-prompt estimates, pooled over prompts, within z_max SE of the exact mean."""
    reps, n_prompts = shape
    for name, e in (("rate_g", exact[0]), ("rate_self", exact[1])):
        t = np.asarray(getattr(est, name)).reshape(reps, n_prompts).mean(1)     # [R] mean over prompts per draw
        se = t.std(ddof=1) / np.sqrt(reps)
        z = (t.mean() - e.mean()) / se
        assert abs(z) <= z_max, f"{name}: mean {t.mean():.6g} vs exact {e.mean():.6g} ({z:+.2f} SE)"


# ---- unbiasedness on tabular policies (exact g) -----------------------------------------------------------

@pytest.mark.parametrize("k", [2, 4, 10])
@settings(max_examples=5)
@given(seed=st.integers(0, 2**31 - 1), n_out=st.integers(2, 8), n_prompts=st.integers(1, 3))
def test_mean_matches_exact_rate(k, seed, n_out, n_prompts):
    data, exact, shape = tabular_draws(seed, n_out, n_prompts, k, reps=3000)
    check_unbiased(rate_estimate(*data), exact, shape)


@pytest.mark.parametrize("k, most", [(4, 8.0), (10, 2.5), (32, 1.35)])
def test_jackknife_se_is_conservative(k, most):
    """The jackknife variance over-estimates the variance of the estimate on average (the Efron–Stein
    inequality), by a factor that falls towards 1 as K grows (measured: about 6 at K = 4, 2 at K = 10 and
    1.2 at K = 32 on this instance)."""
    data, _, _ = tabular_draws(7, 5, 1, k, reps=6000)
    est = rate_estimate(*data)
    for t, se in ((est.rate_g, est.se_g), (est.rate_self, est.se_self)):
        ratio = float(np.mean(np.asarray(se) ** 2) / np.var(np.asarray(t), ddof=1))
        assert 0.9 <= ratio <= most, ratio


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("k", [3, 10])
def test_sketched_mean_matches_exact_rate(kind, k):
    """Sketching g with a fresh seeded S per draw keeps the estimate unbiased (D = 3 < |Y| = 6)."""
    data, exact, shape = tabular_draws(11, 6, 2, k, reps=2000)
    a, b, g = data
    g_s = np.stack([sketch(g[i], 3, seed=i, kind=kind) for i in range(g.shape[0])])
    check_unbiased(rate_estimate(a, b, g_s), exact, shape)


# ---- the formula ----------------------------------------------------------------------------------------

@settings(max_examples=15)
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(2, 9), d=st.integers(1, 5))
def test_equals_naive_u_statistic_and_brute_force_jackknife(seed, k, d):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(2, 1, k))
    g = rng.normal(size=(1, k, d))
    est = rate_estimate(a, b, g)
    np.testing.assert_allclose(est.rate_g[0], naive_u(a[0], b[0], g[0]), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(est.rate_self[0], naive_u(b[0], b[0], g[0]), rtol=1e-10, atol=1e-12)
    if k >= 3:
        loo = np.array([naive_u(np.delete(a[0], j), np.delete(b[0], j), np.delete(g[0], j, 0)) for j in range(k)])
        se = np.sqrt((k - 1) / k * np.sum((loo - loo.mean()) ** 2))
        np.testing.assert_allclose(est.se_g[0], se, rtol=1e-8, atol=1e-12)
    else:
        assert np.isnan(est.se_g[0]) and np.isnan(est.se_self[0])


def test_k2_closed_form_and_prompt_mean():
    a = np.array([[1.0, 2.0], [0.5, -1.0]])
    b = np.array([[3.0, -1.0], [2.0, 2.5]])
    g = np.array([[[1.0, 0.0], [0.5, 2.0]], [[1.0, 1.0], [-1.0, 3.0]]])
    est = rate_estimate(a, b, g)
    want = [(1 * -1 + 2 * 3) * 0.5 / 2, (0.5 * 2.5 + -1 * 2) * 2.0 / 2]
    np.testing.assert_allclose(est.rate_g, want, rtol=1e-14)
    assert est.mean_g == pytest.approx(np.mean(want), rel=1e-14)
    assert est.se_mean_g == pytest.approx(np.std(want, ddof=1) / np.sqrt(2), rel=1e-12)


@settings(max_examples=15)
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(3, 8), scale=st.floats(0.01, 100), shift=st.floats(-50, 50))
def test_scale_shift_permutation(seed, k, scale, shift):
    """Linear in each reward's scale; unchanged by a per-prompt constant (K ≥ 3), by the order of the
    samples, and by swapping a and b."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(2, 3, k))
    g = rng.normal(size=(3, k, 4))
    base = rate_estimate(a, b, g)
    scaled = rate_estimate(scale * a, b + shift * rng.normal(size=(3, 1)), g)
    np.testing.assert_allclose(scaled.rate_g, scale * np.asarray(base.rate_g), rtol=1e-8, atol=1e-9)
    perm = rng.permutation(k)
    pe = rate_estimate(a[:, perm], b[:, perm], g[:, perm])
    np.testing.assert_allclose(pe.rate_g, base.rate_g, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(pe.se_self, base.se_self, rtol=1e-8, atol=1e-12)
    sw = rate_estimate(b, a, g)
    np.testing.assert_allclose(sw.rate_g, base.rate_g, rtol=1e-10, atol=1e-12)


def test_without_a_only_rate_self():
    rng = np.random.default_rng(0)
    est = rate_estimate(None, rng.normal(size=(2, 4)), rng.normal(size=(2, 4, 3)))
    assert np.all(np.isnan(est.rate_g)) and np.all(np.isfinite(est.rate_self))


@pytest.mark.parametrize("args, match", [
    ((np.zeros((2, 1)), np.zeros((2, 1)), np.zeros((2, 1, 3))), "K = 1"),
    ((np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 4, 3))), "g must have shape"),
    ((np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 3))), "g must have shape"),
    ((np.zeros((2, 4)), np.zeros((2, 3)), np.zeros((2, 3, 5))), "shapes must agree"),
    ((np.zeros(3), np.zeros(3), np.zeros((1, 3, 5))), "b must have shape"),
    ((np.zeros((1, 3)), np.array([[0.0, np.nan, 1.0]]), np.zeros((1, 3, 2))), "b must be finite"),
    ((np.array([[0.0, np.inf, 1.0]]), np.zeros((1, 3)), np.zeros((1, 3, 2))), "a must be finite"),
    ((np.zeros((1, 3)), np.zeros((1, 3)), np.full((1, 3, 2), np.nan)), "g must be finite"),
])
def test_validation(args, match):
    with pytest.raises(ValueError, match=match):
        rate_estimate(*args)


# ---- sketches -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_sketch_is_a_fixed_linear_map(kind):
    rng = np.random.default_rng(1)
    d = CHUNK + 37   # two chunks
    g = rng.normal(size=(3, d))
    S = projection_matrix(d, 16, seed=5, kind=kind)
    np.testing.assert_allclose(sketch(g, 16, seed=5, kind=kind), g @ S.T, rtol=1e-12, atol=1e-10)
    np.testing.assert_array_equal(sketch(g, 16, seed=5, kind=kind), sketch(g, 16, seed=5, kind=kind))
    assert not np.allclose(sketch(g, 16, seed=6, kind=kind), sketch(g, 16, seed=5, kind=kind))
    if kind == "rademacher":
        np.testing.assert_allclose(np.abs(S), 1 / 4.0)
    # named blocks: each block's rows depend only on its own name (a parameter subset keeps its rows)
    blocks = [("w1", 5), ("w2", d - 5)]
    whole = sketch(g, 16, seed=5, kind=kind, blocks=blocks)
    parts = (sketch(g[:, :5], 16, seed=5, kind=kind, blocks=[("w1", 5)])
             + sketch(g[:, 5:], 16, seed=5, kind=kind, blocks=[("w2", d - 5)]))
    np.testing.assert_allclose(whole, parts, rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("kind", KINDS)
def test_sketch_unbiased_and_variance_falls_as_predicted(kind):
    """Over 3000 seeds: mean ⟨Sg, Sh⟩ within 3 SE of ⟨g, h⟩, and its variance within 12% of the prediction,
    for D = 2, 8, 32 (so it falls as 1/D). g and h share heavy coordinates, so that the Rademacher correction
    −2Σg²h²/D is large (about a third of the Gaussian variance)."""
    g = np.array([2.0, 0.3, -0.5, 0.1, 1.0, 0.0, 0.2])
    h = np.array([1.5, -0.4, 0.2, 0.3, 0.8, 1.0, -0.1])
    n = 3000
    for dim in (2, 8, 32):
        x = np.array([sketch(np.stack([g, h]), dim, seed=s, kind=kind) for s in range(n)])
        ip = np.sum(x[:, 0] * x[:, 1], -1)
        z = (ip.mean() - g @ h) / (ip.std(ddof=1) / np.sqrt(n))
        assert abs(z) <= 3.0, (dim, z)
        pred = sketch_variance(g, h, dim, kind)
        assert abs(ip.var(ddof=1) / pred - 1) <= 0.12, (dim, ip.var(ddof=1), pred)


def test_sketch_variance_known_values():
    e1 = np.eye(3)[0]
    assert sketch_variance(e1, e1, 4, "gaussian") == pytest.approx(2 / 4)
    assert sketch_variance(e1, e1, 4, "rademacher") == 0.0
    # a Rademacher sketch preserves the norm of a coordinate vector exactly
    assert float(np.sum(sketch(e1, 4, seed=3, kind="rademacher") ** 2)) == pytest.approx(1.0, rel=1e-15)


@pytest.mark.parametrize("kw, match", [
    ({"dim": 0}, "dim must be"), ({"dim": 2.5}, "dim must be"), ({"seed": -1}, "seed must be"),
    ({"kind": "cauchy"}, "kind must be one of"), ({"blocks": [("a", 2)]}, "sizes sum to"),
    ({"blocks": [("a", 2), ("a", 1)]}, "distinct"),
])
def test_sketch_validation(kw, match):
    args = {"dim": 4, "seed": 0, "kind": "gaussian", **kw}
    with pytest.raises(ValueError, match=match):
        sketch(np.ones(3), **args)
