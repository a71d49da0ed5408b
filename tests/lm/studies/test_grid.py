"""`rmtheory lm grid --quick`: artifacts, resume after an interruption to identical numbers, the exported files
agree with the internal evaluation, and the readings on a hand-made table."""

import os

import jax
import numpy as np
import pytest

from rmtheory.io import load_json as strict_load  # strict: NaN/Infinity are an error
from rmtheory.lm import task as T
from rmtheory.lm.config import get_config
from rmtheory.lm.studies import grid, reportcard

CFG = get_config("tiny")


def quiet(msg):
    pass


@pytest.mark.slow
def test_grid_quick_artifacts(grid_run):
    out = grid_run
    for f in ("study.json", "config.json", "policies.eqx", "grid_rms.eqx", "grid_rm_curves.csv", "grid_eval.json",
              "rl_rloo/results.json", "rl_grpo/results.json", "exports/offpolicy.csv", "figures/lm_grid.md",
              "figures/lm_grid.json", "figures/lm_grid.png", *(f"exports/{p}.csv" for p in grid.POLICIES)):
        assert os.path.exists(os.path.join(out, f)), f
    for f in ("grid_eval.json", "rl_rloo/results.json", "rl_grpo/results.json", "figures/lm_grid.json", "study.json"):
        strict_load(os.path.join(out, f))
    assert strict_load(os.path.join(out, "config.json"))["code_version"]
    res = strict_load(os.path.join(out, "rl_rloo", "results.json"))
    R = len(grid.POLICIES) * len(grid.RMS) * len(grid.QUICK.seeds)
    inc = np.asarray(res["proxy_increase"])
    assert inc.shape == (grid.QUICK.epochs + 1, R) and np.all(inc[0] == 0) and np.all(np.isfinite(inc))
    for k in ("test_proxy_increase", "test_gt_increase"):  # the held-out test prompts, beside the PG eval prompts
        t = np.asarray(res[k])
        assert t.shape == inc.shape and np.all(t[0] == 0) and np.all(np.isfinite(t)) and not np.allclose(t[1], 0)
    summary = strict_load(os.path.join(out, "figures", "lm_grid.json"))
    for algo in grid.ALGOS:
        r = summary["readings"][algo]
        assert set(r["c_summary"]["best_rm_per_policy"]) == set(grid.POLICIES)
    # the four initial policies really differ
    pols = summary["policies"]
    assert len({round(p["gt_mean"], 6) for p in pols.values()}) == len(grid.POLICIES)


@pytest.mark.slow
def test_grid_exports_agree_with_rmtheory_evaluate(grid_run):
    ev = strict_load(os.path.join(grid_run, "grid_eval.json"))
    for p in ("sft", "instruct"):
        rep = reportcard.run_evaluate(os.path.join(grid_run, "exports", f"{p}.csv"),
                                      os.path.join(grid_run, "exports", "offpolicy.csv"))
        for m in grid.RMS:
            for k in ("var", "acc_on", "acc_off"):
                assert rep[m][k] == pytest.approx(ev["report"][p][m][k], rel=1e-9, abs=1e-12), (p, m, k)


@pytest.mark.slow
def test_grid_resumes_after_interruption_to_identical_numbers(grid_run, tmp_path, copy_without):
    out = str(tmp_path / "g")
    copy_without(grid_run, out, ["rl_grpo", "figures"])
    grid.run(CFG, grid.QUICK, out, log=quiet, until="rl_grpo", stop_after_epoch=1)   # killed after its last epoch
    assert os.path.exists(os.path.join(out, "rl_grpo", "progress.json"))
    assert not os.path.exists(os.path.join(out, "rl_grpo", "results.json"))
    grid.run(CFG, grid.QUICK, out, log=quiet)                                        # resume
    a = strict_load(os.path.join(grid_run, "rl_grpo", "results.json"))
    b = strict_load(os.path.join(out, "rl_grpo", "results.json"))
    assert a == b


def test_reg_bias_offsets_are_minus_one_zero_plus_one_times_reg_bias():
    """The grader's offsets per operation are {−1, 0, +1}·reg_bias, as documented (the token id of REVERSE,
    5, subtracted from the op index 0–2 gave {−5, −4, −3}·reg_bias)."""
    p = T.unique_prompts(jax.random.PRNGKey(0), T.TaskSpec(n_content=8, m_min=2, m_max=4), 60)
    off = grid.op_offset(p.op, 2.0)
    assert set(np.unique(np.asarray(p.op)).tolist()) == {0, 1, 2}
    assert set(off.tolist()) == {-2.0, 0.0, 2.0}
    assert np.all(off[np.asarray(p.op) == 1] == 0)


def test_grid_settings_validation():
    with pytest.raises(ValueError, match="noisy_flip"):
        grid.GridSettings(noisy_flip=0.6)
    with pytest.raises(ValueError, match="seeds"):
        grid.GridSettings(seeds=(1, 1))


def test_readings_on_a_hand_made_table():
    def s(m, sd=0.01):
        return {"mean": m, "std": sd}

    R = grid.RMS
    cells = {p: {r: {"gt": s(0.1), "proxy": s(0.1)} for r in R} for p in grid.POLICIES}
    report = {p: {r: {"var": 0.5, "acc_on": 0.7} for r in R} for p in grid.POLICIES}
    p0 = grid.POLICIES[0]
    report[p0]["bt_length"]["var"] = 0.9
    cells[p0]["bt_length"]["proxy"] = s(0.5)       # highest Var, largest proxy
    report[p0]["bt_on"]["acc_on"] = 0.9            # most accurate ...
    cells[p0]["bt_off"]["gt"] = s(0.3)             # ... but bt_off teaches the GT best
    cells[grid.POLICIES[1]]["bt_noisy"]["gt"] = s(0.4)
    rd = grid.readings(cells, report)
    a = rd["a_highest_var_largest_proxy"][p0]
    assert a["holds"] and a["largest_proxy_separated_from_runner_up"]
    b = rd["b_most_accurate_not_best_teacher"][p0]
    assert b["most_accurate_rm"] == "bt_on" and b["best_gt_rm"] == "bt_off" and b["difference_beyond_seed_spread"]
    assert rd["c_summary"]["changes_with_policy"]
    assert rd["c_summary"]["best_rm_per_policy"][grid.POLICIES[1]] == "bt_noisy"
