"""The RL update over stacked runs (:func:`rmtheory.lm.rloo.make_rl`): trained vmapped or one run after another,
each run computes the same thing (only XLA's batching differs, so the numbers agree to float32 rounding until
Adam, which divides by the gradient's own size, and then the sampler amplify that rounding); one after another
in one block per core, bit for bit what one block computes."""

import functools

import jax
import numpy as np
import optax
import pytest

from rmtheory.lm import task as T
from rmtheory.lm.config import get_config
from rmtheory.lm.model import RewardModel
from rmtheory.lm.rl import reward_model_consts
from rmtheory.lm import rloo
from rmtheory.lm.rloo import Scaled, default_mode, make_rl
from rmtheory.lm.sft import init_policy
from rmtheory.lm.stacking import stack

CFG = get_config("tiny").replace(n_eval_samples=2)


@functools.lru_cache(maxsize=None)  # the sequential runs are the reference of three tests: made once per worker
def _epoch(mode, per_run_refs, full=False, rollouts=None):
    cfg = CFG
    pol = init_policy(cfg)
    pr = T.unique_prompts(jax.random.PRNGKey(3), cfg.task, cfg.n_pg + 8)
    pg, ev = Scaled.of(pr.take(np.arange(cfg.n_pg))), Scaled.of(pr.take(np.arange(cfg.n_pg, pr.n)))
    opt = optax.adam(cfg.rl_lr)
    upd, evaluate = make_rl(cfg, None if per_run_refs else pol, pg, {"test": ev}, (0.0, 1.0), opt, mode, rollouts)
    R = 3
    # three different policies (each its own reference in the studies' mode), so a run given another run's
    # reference or policy would show
    pols = stack([jax.tree_util.tree_map(lambda x: x * (1 + 0.1 * i) if np.issubdtype(x.dtype, np.floating) else x,
                                         pol) for i in range(R)])
    rms = stack([RewardModel.from_policy(pol, cfg.task.prompt_len, cfg.rm_readout)] * R)
    consts = reward_model_consts([[0.0, 1.0]] * R, [0, 1, 2])
    extra = (pols,) if per_run_refs else ()
    p, st, metrics = upd(pols, jax.vmap(opt.init)(pols), rms, consts, 0, *extra)
    if not full:
        return metrics
    p1 = p
    p, st, m2 = upd(p, st, rms, consts, 1, *extra)
    return dict(metrics=metrics, metrics2=m2, params1=p1, params=p, opt=st, eval=evaluate(p, rms, consts, *extra))


@pytest.mark.parametrize("per_run_refs", [False, True])
def test_sequential_and_vmapped_runs_agree(per_run_refs):
    """The first rollout of every run (sampled from the same initial policy with the same keys, scored, its
    advantages, clipped loss and KL) is the same in both modes."""
    a, b = _epoch("vmap", per_run_refs), _epoch("sequential", per_run_refs, full=True)["metrics"]
    assert set(a) == set(b) and a["gt"].shape == (3, CFG.rollouts_per_epoch)
    for name in a:
        np.testing.assert_allclose(np.asarray(a[name])[:, 0], np.asarray(b[name])[:, 0], rtol=1e-5, atol=1e-6,
                                   err_msg=name)
    assert not np.allclose(a["gt"][0], a["gt"][1])  # the seeds differ: the runs are really distinct


@pytest.mark.parametrize("per_run_refs", [False, True])
def test_runs_on_cores_are_bitwise_the_sequential_runs(per_run_refs, monkeypatch):
    """Two epochs and the evaluation with the 3 runs dealt into 2 blocks (one padded), each block in its own
    thread: every metric, parameter, optimiser state and evaluation equals the one-block computation exactly."""
    a = _epoch("sequential", per_run_refs, full=True)
    monkeypatch.setattr(rloo, "host_cores", lambda: 2)
    b = _epoch("cores", per_run_refs, full=True)
    la, lb = jax.tree_util.tree_leaves_with_path(a), jax.tree_util.tree_leaves_with_path(b)
    assert [k for k, _ in la] == [k for k, _ in lb] and len(la) > 20
    for (path, x), (_, y) in zip(la, lb):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=jax.tree_util.keystr(path))
    assert not np.allclose(a["metrics2"]["gt"][0], a["metrics2"]["gt"][2])  # distinct runs, in distinct blocks


def test_an_epoch_of_fewer_rollouts_is_the_first_rollouts_of_a_full_epoch():
    """``rollouts = n``: epochs 0 and 1 of n = S/2 rollouts each are, bit for bit, the one full epoch 0 of S
    rollouts (the same prompts, keys and updates): so an n-rollout run is the start of the full run."""
    full = _epoch("sequential", True, full=True)
    half = _epoch("sequential", True, full=True, rollouts=CFG.rollouts_per_epoch // 2)
    assert half["metrics"]["gt"].shape == (3, CFG.rollouts_per_epoch // 2)
    for name, m in full["metrics"].items():
        np.testing.assert_array_equal(np.concatenate([half["metrics"][name], half["metrics2"][name]], 1), m,
                                      err_msg=name)
    for x, y in zip(jax.tree_util.tree_leaves(half["params"]), jax.tree_util.tree_leaves(full["params1"])):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    with pytest.raises(ValueError, match="rollouts must be in"):
        make_rl(CFG, None, None, {}, (0.0, 1.0), optax.sgd(0.1), "sequential", CFG.rollouts_per_epoch + 1)


def test_mode_is_checked_and_defaults_by_device(monkeypatch):
    with pytest.raises(ValueError, match="mode must be one of"):
        make_rl(CFG, None, None, {}, (0.0, 1.0), optax.adam(1e-3), "parallel")
    one_cpu = jax.device_count() == 1 and jax.default_backend() == "cpu"
    for cores, want in ((1, "sequential"), (2, "cores")):
        monkeypatch.setattr(rloo, "host_cores", lambda c=cores: c)
        assert default_mode() == (want if one_cpu else "vmap")
