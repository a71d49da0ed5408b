import jax.numpy as jnp
import numpy as np
import pytest

import rmtheory as rt


def test_make_instance_float64_and_default_reference():
    inst = rt.make_instance(np.zeros((2, 3)), np.zeros((2, 3)), 0.1)
    assert inst.logits.dtype == jnp.float64
    np.testing.assert_array_equal(inst.ref_logits, inst.logits)
    assert inst.n_prompts == 2 and inst.n_outputs == 3


def test_one_dimensional_input_is_one_prompt():
    inst = rt.make_instance(np.zeros(4), np.linspace(-1, 1, 4))
    assert inst.logits.shape == (1, 4)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(logits=np.zeros((2, 3)), reward=np.full((2, 3), 1.5)), r"reward must lie in \[-1, 1\]"),
        (dict(logits=np.zeros((2, 3)), reward=np.zeros((2, 4))), "shapes must agree"),
        (dict(logits=np.array([[0.0, np.nan, 1.0]]), reward=np.zeros((1, 3))), "logits must be finite"),
        (dict(logits=np.zeros((1, 3)), reward=np.array([[0.0, np.inf, 0.0]])), "reward must be finite"),
        (dict(logits=np.zeros((1, 3)), reward=np.zeros((1, 3)), lam=-0.1), "lam must be >= 0"),
        (dict(logits=np.zeros((1, 1)), reward=np.zeros((1, 1))), "at least 2 outputs"),
        (dict(logits=np.zeros((1, 3)), reward=np.zeros((1, 3)), lam=0.1,
              ref_logits=np.array([[0.0, -np.inf, 0.0]])), "reference policy has a zero"),
    ],
)
def test_bad_input_names_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        rt.make_instance(**kwargs)


def test_reference_zeros_allowed_without_kl():
    inst = rt.make_instance(np.zeros((1, 3)), np.zeros((1, 3)), 0.0, ref_logits=np.array([[0.0, -np.inf, 0.0]]))
    assert np.isfinite(rt.objective(inst))


def test_logits_from_probs_rejects_non_distributions():
    with pytest.raises(ValueError, match="probs is not a distribution"):
        rt.logits_from_probs(np.array([0.5, 0.6]))
    with pytest.raises(ValueError, match="negative"):
        rt.logits_from_probs(np.array([1.5, -0.5]))
    np.testing.assert_allclose(rt.policy(rt.logits_from_probs(np.array([0.25, 0.75]))), [0.25, 0.75])
