"""The RL update over stacked runs (:func:`rmtheory.lm.rloo.make_rl`): trained vmapped or one run after another,
each run computes the same thing (only XLA's batching differs, so the numbers agree to float32 rounding until
Adam, which divides by the gradient's own size, and then the sampler amplify that rounding)."""

import jax
import numpy as np
import optax
import pytest

from rmtheory.lm import task as T
from rmtheory.lm.config import get_config
from rmtheory.lm.model import RewardModel
from rmtheory.lm.rl import reward_model_consts
from rmtheory.lm.rloo import Scaled, default_mode, make_rl
from rmtheory.lm.sft import init_policy
from rmtheory.lm.stacking import stack

CFG = get_config("tiny").replace(n_eval_samples=2)


def _epoch(mode, per_run_refs):
    cfg = CFG
    pol = init_policy(cfg)
    pr = T.unique_prompts(jax.random.PRNGKey(3), cfg.task, cfg.n_pg + 8)
    pg, ev = Scaled.of(pr.take(np.arange(cfg.n_pg))), Scaled.of(pr.take(np.arange(cfg.n_pg, pr.n)))
    opt = optax.adam(cfg.rl_lr)
    upd, evaluate = make_rl(cfg, None if per_run_refs else pol, pg, {"test": ev}, (0.0, 1.0), opt, mode)
    R = 3
    # three different policies (each its own reference in the studies' mode), so a run given another run's
    # reference or policy would show
    pols = stack([jax.tree_util.tree_map(lambda x: x * (1 + 0.1 * i) if np.issubdtype(x.dtype, np.floating) else x,
                                         pol) for i in range(R)])
    rms = stack([RewardModel.from_policy(pol, cfg.task.prompt_len, cfg.rm_readout)] * R)
    consts = reward_model_consts([[0.0, 1.0]] * R, [0, 1, 2])
    extra = (pols,) if per_run_refs else ()
    p, st, metrics = upd(pols, jax.vmap(opt.init)(pols), rms, consts, 0, *extra)
    return metrics


@pytest.mark.parametrize("per_run_refs", [False, True])
def test_sequential_and_vmapped_runs_agree(per_run_refs):
    """The first rollout of every run (sampled from the same initial policy with the same keys, scored, its
    advantages, clipped loss and KL) is the same in both modes."""
    a, b = _epoch("vmap", per_run_refs), _epoch("sequential", per_run_refs)
    assert set(a) == set(b) and a["gt"].shape == (3, CFG.rollouts_per_epoch)
    for name in a:
        np.testing.assert_allclose(np.asarray(a[name])[:, 0], np.asarray(b[name])[:, 0], rtol=1e-5, atol=1e-6,
                                   err_msg=name)
    assert not np.allclose(a["gt"][0], a["gt"][1])  # the seeds differ: the runs are really distinct


def test_mode_is_checked_and_defaults_by_device():
    with pytest.raises(ValueError, match="mode must be one of"):
        make_rl(CFG, None, None, {}, (0.0, 1.0), optax.adam(1e-3), "parallel")
    assert default_mode() == ("sequential" if jax.device_count() == 1 and jax.default_backend() == "cpu"
                              else "vmap")
