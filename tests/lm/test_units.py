"""Unit tests of the LM pipeline's pieces: task, sampler, RLOO, Bradley–Terry, evaluation metrics."""

from collections import Counter
from fractions import Fraction

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import rmtheory
from rmtheory.lm import task as T
from rmtheory.lm.config import Config, get_config
from rmtheory.lm.model import RewardModel, Transformer, sequence_logprob
from rmtheory.lm.reward_model import bt_loss, build_mixes
from rmtheory.lm.rloo import clipped_loss, grpo_advantages, rloo_advantages
from rmtheory.lm.sampling import sample

SPEC = T.TaskSpec(n_content=8, m_min=2, m_max=4)


def _ref_gt(target, m, resp, n):
    """Plain-Python r_G (the docstring's formula), as an exact fraction."""
    resp = list(resp)
    ylen = resp.index(T.EOS) if T.EOS in resp else len(resp)
    tot = Fraction(0)
    for i in range(min(ylen, m)):
        if resp[i] == target[i]:
            tot += 1
        elif resp[i] >= T.FIRST_CONTENT:
            dd = abs(int(resp[i]) - int(target[i])) % n
            dd = min(dd, n - dd)
            tot += Fraction(3, 10) * (1 - Fraction(dd - 1, n // 2))
    return 2 * tot / max(ylen, m) - 1


def test_ground_truth_matches_formula_and_range():
    pr = T.unique_prompts(jax.random.PRNGKey(0), SPEC, 50)
    rng = np.random.default_rng(0)
    resp = rng.integers(0, SPEC.vocab, (50, SPEC.resp_len)).astype(np.int32)
    g = np.asarray(T.ground_truth(pr.target, pr.tlen, resp, SPEC.n_content))
    ref = [float(_ref_gt(pr.target[i], pr.tlen[i], resp[i], SPEC.n_content)) for i in range(50)]
    np.testing.assert_allclose(g, ref, atol=1e-6)
    assert g.min() >= -1 and g.max() <= 1
    # the exact target scores 1; an empty response −1
    exact = np.full((50, SPEC.resp_len), T.PAD, np.int32)
    for i in range(50):
        exact[i, : pr.tlen[i]] = pr.target[i, : pr.tlen[i]]
        exact[i, pr.tlen[i]] = T.EOS
    assert np.all(np.asarray(T.ground_truth(pr.target, pr.tlen, exact, SPEC.n_content)) == 1)
    empty = np.full((50, SPEC.resp_len), T.PAD, np.int32)
    empty[:, 0] = T.EOS
    assert np.all(np.asarray(T.ground_truth(pr.target, pr.tlen, empty, SPEC.n_content)) == -1)


def test_ground_truth_ties_exactly_when_the_exact_values_tie():
    """r_G is one float per exact value: responses with the same exact r_G (a rational) get the same float32,
    different exact values different floats, each the float32 nearest the exact value. A float32 sum of the
    credits broke such ties by one rounding step (the example below: −0.66250002 vs −0.66249996)."""
    spec = T.TaskSpec(n_content=8, m_min=4, m_max=4)  # D = 4: credits 0.3, 0.225, 0.15, 0.075
    target = np.array([[T.FIRST_CONTENT + 0] * 4], np.int32)
    # credits 0.15+0.15+0.15+0.225 and 0.225+0.225+0.075+0.15 (letter distances 3,3,3,2 and 2,2,4,3): both 0.675
    a = T.FIRST_CONTENT + np.array([3, 3, 3, 2])
    b = T.FIRST_CONTENT + np.array([2, 2, 4, 3])
    resp = np.array([[*a, T.EOS, T.PAD], [*b, T.EOS, T.PAD]], np.int32)
    g = np.asarray(T.ground_truth(np.repeat(target, 2, 0), np.array([4, 4]), resp, spec.n_content))
    assert g[0] == g[1] == np.float32(-0.6625)
    # many responses built from letters and EOS, so that equal exact values from different credits are common
    rng = np.random.default_rng(1)
    n = 4000
    tgt = rng.integers(T.FIRST_CONTENT, T.FIRST_CONTENT + 8, (1, 4))
    resp = rng.integers(T.FIRST_CONTENT, T.FIRST_CONTENT + 8, (n, spec.resp_len)).astype(np.int32)
    eos = rng.integers(1, spec.resp_len + 1, n)
    for i in range(n):
        if eos[i] < spec.resp_len:
            resp[i, eos[i]] = T.EOS
            resp[i, eos[i] + 1:] = T.PAD
    g = np.asarray(T.ground_truth(np.repeat(tgt, n, 0), np.full(n, 4), resp, spec.n_content))
    exact = [_ref_gt(tgt[0], 4, resp[i], spec.n_content) for i in range(n)]
    by_value = {}
    for gi, e in zip(g, exact):
        by_value.setdefault(e, set()).add(float(gi))
    assert all(len(v) == 1 for v in by_value.values())  # one float per exact value …
    floats = [next(iter(v)) for v in by_value.values()]
    assert len(set(floats)) == len(floats)  # … and different values different floats
    counts = Counter(exact)
    assert sum(1 for e in exact if counts[e] > 1) > n // 2  # the check saw many exact ties
    for e, f in zip(by_value, floats):
        assert f == np.float32(e.numerator) / np.float32(e.denominator)  # nearest float32 (both exact ints)


def test_prompts_distinct_and_offpolicy_pairs_ordered():
    pr = T.unique_prompts(jax.random.PRNGKey(1), SPEC, 200)
    assert len({tuple(r) for r in pr.tokens}) == 200
    ch, rj, tied = T.offpolicy_pairs(jax.random.PRNGKey(2), SPEC, jnp.asarray(pr.target), jnp.asarray(pr.tlen))
    gc = T.ground_truth(pr.target, pr.tlen, ch, SPEC.n_content)
    gr = T.ground_truth(pr.target, pr.tlen, rj, SPEC.n_content)
    assert np.all(np.asarray(gc) >= np.asarray(gr))
    assert np.all(np.asarray(tied) == (np.asarray(gc) == np.asarray(gr)))
    assert np.mean(np.asarray(tied)) < 0.5


def _model(seed=0):
    return Transformer.init(jax.random.PRNGKey(seed), SPEC.vocab, SPEC.seq_len, 32, 2, 2)


def test_sampler_logprobs_match_teacher_forcing_and_are_float32():
    m = _model()
    pr = T.unique_prompts(jax.random.PRNGKey(3), SPEC, 64)
    tok, lp, mask = jax.jit(lambda m, p, k: sample(m, p, k, SPEC.resp_len))(m, jnp.asarray(pr.tokens),
                                                                          jax.random.PRNGKey(4))
    assert lp.dtype == jnp.float32 and tok.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(mask), np.asarray(T.response_mask(tok[:, SPEC.prompt_len:])))
    tf = sequence_logprob(m, tok, SPEC.prompt_len, mask)
    np.testing.assert_allclose(np.asarray(lp.sum(-1)), np.asarray(tf), rtol=1e-5, atol=1e-4)
    # after the first EOS everything is PAD
    resp = np.asarray(tok[:, SPEC.prompt_len:])
    L = np.asarray(T.response_length(resp))
    for r, n in zip(resp, L):
        assert np.all(r[n + 1:] == T.PAD)


def test_sampler_is_deterministic_per_key():
    m = _model()
    pr = jnp.asarray(T.unique_prompts(jax.random.PRNGKey(3), SPEC, 16).tokens)
    a = sample(m, pr, jax.random.PRNGKey(5), SPEC.resp_len)[0]
    b = sample(m, pr, jax.random.PRNGKey(5), SPEC.resp_len)[0]
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("k", [2, 3, 5])
def test_rloo_advantages_sum_to_zero(k):
    R = jax.random.normal(jax.random.PRNGKey(k), (40, k), jnp.float32)
    A = rloo_advantages(R)
    np.testing.assert_allclose(np.asarray(A.sum(-1)), 0, atol=1e-5)
    if k == 2:
        np.testing.assert_allclose(np.asarray(A[:, 0]), np.asarray(R[:, 0] - R[:, 1]), atol=1e-6)


def test_grpo_k2_keeps_only_the_sign():
    r = jnp.asarray([[1.0, -2.0], [0.3, 0.5]], jnp.float32)
    np.testing.assert_allclose(np.asarray(grpo_advantages(r)), [[0.7071, -0.7071], [-0.7071, 0.7071]], atol=1e-4)


def test_clipped_loss_on_policy_gradient_is_policy_gradient():
    lp = jnp.asarray([-1.0, -2.0, -0.5], jnp.float32)
    adv = jnp.asarray([1.0, -0.5, 2.0], jnp.float32)
    g = jax.grad(lambda x: clipped_loss(x, lp, adv, 0.2)[0])(lp)
    np.testing.assert_allclose(np.asarray(g), -np.asarray(adv) / 3, atol=1e-6)


@pytest.mark.parametrize("readout", ["token", "mean", "last"])
def test_bradley_terry_loss_decreases_on_fixed_batch(readout):
    m = _model()
    rm = RewardModel.from_policy(m, SPEC.prompt_len, readout)
    pr = T.unique_prompts(jax.random.PRNGKey(6), SPEC, 32)
    ch, rj, _ = T.offpolicy_pairs(jax.random.PRNGKey(7), SPEC, jnp.asarray(pr.target), jnp.asarray(pr.tlen))
    c = jnp.concatenate([jnp.asarray(pr.tokens), ch], 1)
    r = jnp.concatenate([jnp.asarray(pr.tokens), rj], 1)
    opt = optax.adam(1e-3)
    st = opt.init(rm)

    @eqx.filter_jit
    def step(rm, st):
        loss, g = jax.value_and_grad(bt_loss)(rm, c, r, 0.01)
        u, st = opt.update(g, st, rm)
        return optax.apply_updates(rm, u), st, loss

    losses = []
    for _ in range(30):
        rm, st, loss = step(rm, st)
        losses.append(float(loss))
    assert losses[-1] < losses[0] - 0.1


def test_mixes_differ_only_in_responses():
    n, P = 20, 3
    prompts = np.arange(n)[:, None] * np.ones((1, P), int)
    on_c, on_r = np.concatenate([prompts, np.full((n, 2), 1)], 1), np.concatenate([prompts, np.full((n, 2), 2)], 1)
    off_c, off_r = np.concatenate([prompts, np.full((n, 2), 3)], 1), np.concatenate([prompts, np.full((n, 2), 4)], 1)
    perm = np.random.default_rng(0).permutation(n)
    c, r = build_mixes(perm, on_c, on_r, off_c, off_r, (1.0, 0.75, 0.5, 0.25, 0.0))
    assert np.all(c[:, :, :P] == prompts[None]) and np.all(r[:, :, :P] == prompts[None])
    n_on = (c[:, :, P] == 1).sum(1)
    np.testing.assert_array_equal(n_on, [20, 15, 10, 5, 0])
    # nested: a prompt on-policy in a smaller fraction is on-policy in every larger one
    assert np.all((c[1:, :, P] == 1) <= (c[:-1, :, P] == 1))
    np.testing.assert_array_equal(np.flatnonzero(c[3, :, P] == 1), np.sort(perm[:5]))


def test_rm_report_matches_theory_metrics():
    """The evaluation stage's numbers (rmtheory.rm_report) equal sample_variance / accuracy directly."""
    rng = np.random.default_rng(0)
    gt = np.round(rng.uniform(-1, 1, (30, 10)), 1)  # ties included
    s = gt + rng.normal(0, 0.5, (30, 10))
    rep = rmtheory.rm_report(s, gt)
    z = rmtheory.normalise(s, rmtheory.normalisation_stats(s))
    np.testing.assert_allclose(rep.variance, np.asarray(rmtheory.sample_variance(jnp.asarray(z))), rtol=1e-12)
    np.testing.assert_allclose(rep.on_accuracy, np.asarray(rmtheory.accuracy(jnp.asarray(z), jnp.asarray(gt))))


def test_config_errors_name_the_argument():
    with pytest.raises(ValueError, match="norm_scheme"):
        Config(norm_scheme="bogus")
    with pytest.raises(ValueError, match="PG prompts"):
        Config(n_train=5000)
    with pytest.raises(ValueError, match="--config must be one of"):
        get_config("huge")
    with pytest.raises(ValueError, match="n_heads"):
        Transformer.init(jax.random.PRNGKey(0), 10, 10, 30, 1, 4)


def test_teacher_errs_systematically_on_hard_prompts_only():
    """The SFT teacher applies the confused operation at rate conf_hard on hard prompts, conf_easy on easy ones."""
    teacher = T.Teacher(conf_hard=0.8, conf_easy=0.05, hard_fraction=0.5, sub=(0.0, 0.0, 0.0), sub_len=0.0,
                        len_noise=0.0)
    op, m, letters = T.sample_prompt_parts(jax.random.PRNGKey(0), SPEC, 4000)
    demos = np.asarray(T.teacher_demos(jax.random.PRNGKey(1), SPEC, op, m, letters, teacher))
    _, target = T.encode(SPEC, op, m, letters)
    conf_op = jnp.asarray(T.CONFUSED_OP)[op]
    _, confused = T.encode(SPEC, conf_op, m, letters)
    target, confused, m = np.asarray(target), np.asarray(confused), np.asarray(m)
    pos = np.arange(SPEC.m_max)[None] < m[:, None]
    right = np.all((demos[:, : SPEC.m_max] == target) | ~pos, 1)
    wrong = np.all((demos[:, : SPEC.m_max] == confused) | ~pos, 1) & ~right
    hard = np.asarray(letters)[:, 0] < T.hard_cut(SPEC, 0.5)
    assert np.all(right | wrong)  # no other noise was asked for
    differ = np.any((target != confused) & pos, 1)  # e.g. palindromes: COPY and REVERSE agree
    assert abs(wrong[hard & differ].mean() - 0.8) < 0.04 and abs(wrong[~hard & differ].mean() - 0.05) < 0.02
    pr = T.make_prompts(SPEC, op, m, letters)
    np.testing.assert_array_equal(pr.hard(SPEC, 0.5), hard)
