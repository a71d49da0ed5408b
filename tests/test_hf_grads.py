"""``rmtheory.hf.grads``: per-sample ∇ log π(y|x) of a Hugging Face causal LM, exact and sketched, against
``torch.autograd`` one sample at a time on the tiny random GPT-2 of ``rmtheory.hf.tiny`` (needs the [hf] extra)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from rmtheory._sketch import sketch
from rmtheory.evaluate import evaluate
from rmtheory.hf.grads import GradsError, sample_grads, select_params, write_sketches

pytestmark = pytest.mark.hf


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    from transformers import AutoModelForCausalLM

    from rmtheory.hf.tiny import make_tiny_models

    paths = make_tiny_models(str(tmp_path_factory.mktemp("tiny")), seed=3)
    return AutoModelForCausalLM.from_pretrained(paths["policy"]).eval()


@pytest.fixture(scope="module")
def samples(policy):
    """7 samples of different prompt and response lengths (one empty response)."""
    rng = np.random.default_rng(0)
    V = policy.config.vocab_size
    lens = [(3, 4), (1, 6), (5, 1), (2, 0), (4, 7), (6, 2), (2, 3)]
    return ([rng.integers(4, V, lp).tolist() for lp, _ in lens], [rng.integers(4, V, lr).tolist() for _, lr in lens])


def autograd_reference(model, prompts, responses, names, temperature=1.0):
    """One sample at a time: backward of Σ_response log softmax(logits/τ)[token], gradients of `names` flattened."""
    params = dict(model.named_parameters())
    rows = []
    for p, r in zip(prompts, responses):
        model.zero_grad(set_to_none=True)
        x = torch.tensor([p + r])
        logits = model(x).logits[0, :-1] / temperature
        lp = torch.log_softmax(logits, -1).gather(-1, x[0, 1:, None])[:, 0]
        lp[len(p) - 1:].sum().backward()
        rows.append(torch.cat([(params[n].grad if params[n].grad is not None else torch.zeros_like(params[n]))
                               .reshape(-1) for n in names]).numpy().astype(np.float64))
    model.zero_grad(set_to_none=True)
    return np.stack(rows)


@pytest.mark.parametrize("grad_params, method", [(None, "vmap"), (None, "loop"), ("last:1", "auto"),
                                                 ("ln_f,h\\.0\\.mlp", "vmap")])
def test_exact_gradients_equal_autograd(policy, samples, grad_params, method):
    names = select_params(policy, grad_params)
    ref = autograd_reference(policy, *samples, names)
    g, info = sample_grads(policy, *samples, grad_params=grad_params, sketch_dim=None, batch_size=3, method=method)
    assert g.shape == ref.shape == (7, info["param_dim"]) and info["sketch_kind"] == "exact"
    np.testing.assert_allclose(g, ref, rtol=1e-4, atol=2e-6)
    assert np.all(g[3] == 0)          # empty response: log π = 0
    assert np.abs(ref).max() > 1e-2   # the comparison is not vacuous


def test_select_params(policy):
    every = [n for n, _ in policy.named_parameters()]
    assert select_params(policy) == every and select_params(policy, "all") == every
    last = select_params(policy, "last:1")
    assert last and all(n.startswith("transformer.h.1.") for n in last)
    assert set(select_params(policy, "last:2")) == {n for n in every if n.startswith("transformer.h.")}
    assert select_params(policy, ["wpe"]) == ["transformer.wpe.weight"]
    for bad, match in (("last:0", "integer N >= 1"), ("nothing_here", "selects no parameter"), ("(", "bad pattern")):
        with pytest.raises(GradsError, match=match):
            select_params(policy, bad)


@pytest.mark.parametrize("kind", ["gaussian", "rademacher"])
def test_projected_gradients_equal_the_jax_side_sketch(policy, samples, kind):
    """S·g from the torch side equals rmtheory._sketch.sketch of the exact gradient, blocks = parameter tensors."""
    names = select_params(policy, "last:1")
    ref = autograd_reference(policy, *samples, names)
    sizes = [(n, p.numel()) for n, p in policy.named_parameters() if n in names]
    want = sketch(ref, 24, seed=9, kind=kind, blocks=sizes)
    calls = []
    g, info = sample_grads(policy, *samples, grad_params="last:1", sketch_dim=24, seed=9, kind=kind, batch_size=4,
                           progress=lambda done, total: calls.append((done, total)))
    np.testing.assert_allclose(g, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())
    assert calls == [(4, 7), (7, 7)] and info["sketch_kind"] == kind and info["param_dim"] == sum(s for _, s in sizes)
    uncached, _ = sample_grads(policy, *samples, grad_params="last:1", sketch_dim=24, seed=9, kind=kind,
                               batch_size=2, cache_bytes=0)
    np.testing.assert_allclose(uncached, g, rtol=1e-5, atol=1e-6 * np.abs(want).max())


def test_temperature(policy, samples):
    names = select_params(policy, "ln_f")
    ref = autograd_reference(policy, *samples, names, temperature=0.7)
    g, _ = sample_grads(policy, *samples, grad_params="ln_f", temperature=0.7)
    np.testing.assert_allclose(g, ref, rtol=1e-4, atol=2e-6)


def test_sketch_file_feeds_evaluate(policy, samples, tmp_path):
    prompts, responses = samples
    pid = ["a", "a", "a", "b", "b", "b", "b"]
    sid = ["0", "1", "2", "0", "1", "2", "3"]
    g, info = sample_grads(policy, prompts, responses, sketch_dim=8, seed=1)
    path = write_sketches(str(tmp_path / "s.npz"), pid, sid, g, info)
    rng = np.random.default_rng(1)
    table = {"prompt_id": pid, "sample_id": sid, "rm": rng.normal(size=7).tolist(),
             "ground_truth": rng.normal(size=7).tolist()}
    rep = evaluate(table, sketches=path, bootstrap=0)
    assert np.isfinite(rep["rm"].rate_g) and np.isfinite(rep["rm"].rate_self)
    meta = rep.meta["sketches"]
    assert meta["dim"] == 8 and meta["sketch_kind"] == "rademacher" and meta["param_dim"] == info["param_dim"]


@pytest.mark.parametrize("kw, match", [
    ({"prompt_ids": [[]]}, "prompt_ids\\[0\\] is empty"),
    ({"response_ids": [[1]] * 3}, "differ in length"),
    ({"sketch_dim": 0}, "sketch_dim must be"),
    ({"kind": "cauchy", "sketch_dim": 4}, "kind must be"),
    ({"batch_size": 0}, "batch_size must be"),
    ({"temperature": 0.0}, "temperature must be"),
    ({"method": "fast"}, "method must be"),
    ({"response_ids": [[5] * 200]}, "more than the model's 128 positions"),
])
def test_bad_arguments(policy, kw, match):
    args = {"prompt_ids": [[5, 6]], "response_ids": [[7]], **kw}
    with pytest.raises(GradsError, match=match):
        sample_grads(policy, args.pop("prompt_ids"), args.pop("response_ids"), **args)
