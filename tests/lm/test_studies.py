"""`rmtheory lm grid`, `lm paradox` and `lm reportcard` on their --quick settings: artifacts, resume after an
interruption to identical numbers, the exported files agree with the internal evaluation, and the analysis
helpers on hand-made inputs."""

import os
import shutil

import numpy as np
import pytest

import rmtheory
from rmtheory.lm import grid, paradox, reportcard, study
from rmtheory.lm.config import get_config
from rmtheory.lm.rundir import RunDir

CFG = get_config("tiny")
quiet = lambda m: None  # noqa: E731


strict_load = rmtheory.io.load_json  # strict: NaN/Infinity are an error

@pytest.fixture(scope="module")
def grid_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("grid") / "g")
    grid.run(CFG, grid.QUICK, out, log=quiet)
    return out


@pytest.fixture(scope="module")
def paradox_run(tmp_path_factory, grid_run):
    # the same base config: the pipeline stages (prompts, SFT policy, its samples) are shared, not redone
    out = str(tmp_path_factory.mktemp("paradox") / "p")
    os.makedirs(out)
    for f in ("config.json", "data.npz", "sft.eqx", "sft_log.json", "samples.npz"):
        shutil.copy(os.path.join(grid_run, f), os.path.join(out, f))
    paradox.run(CFG, paradox.QUICK, out, log=quiet)
    return out


def _copy_before(src, dst, drop):
    shutil.copytree(src, dst)
    for d in drop:
        p = os.path.join(dst, d)
        if os.path.isdir(p):
            shutil.rmtree(p)
        elif os.path.exists(p):
            os.remove(p)


# ---------------------------------------------------------------------------------------------- grid
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
def test_grid_resumes_after_interruption_to_identical_numbers(grid_run, tmp_path):
    out = str(tmp_path / "g")
    _copy_before(grid_run, out, ["rl_grpo", "figures"])
    grid.run(CFG, grid.QUICK, out, log=quiet, until="rl_grpo", stop_after_epoch=1)   # killed after its last epoch
    assert os.path.exists(os.path.join(out, "rl_grpo", "progress.json"))
    assert not os.path.exists(os.path.join(out, "rl_grpo", "results.json"))
    grid.run(CFG, grid.QUICK, out, log=quiet)                                        # resume
    a = strict_load(os.path.join(grid_run, "rl_grpo", "results.json"))
    b = strict_load(os.path.join(out, "rl_grpo", "results.json"))
    assert a == b


def test_grid_refuses_other_settings(tmp_path):
    rd = RunDir(str(tmp_path / "g"))
    study.save_study(rd, "grid", grid.QUICK)
    study.save_study(rd, "grid", grid.QUICK)  # the same settings: fine
    with pytest.raises(ValueError, match="differs in .*epochs"):
        study.save_study(rd, "grid", grid.GridSettings())


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


# ------------------------------------------------------------------------------------------- paradox
@pytest.mark.slow
def test_paradox_quick_artifacts(paradox_run):
    out = paradox_run
    ck = strict_load(os.path.join(out, "paradox_ckpts.json"))
    assert len(ck["steps"]) == paradox.QUICK.n_ckpts == len(set(ck["steps"]))
    assert ck["curve_acc"][int(np.argmax(ck["curve_acc"]))] == max(ck["curve_acc"])
    s = strict_load(os.path.join(out, "figures", "lm_paradox.json"))
    assert set(s["checkpoints"]) == set(paradox.ckpt_names(paradox.QUICK))
    assert set(s["answer"]) == {"final", "best", "kl_stop", "one_epoch"}
    for f in ("lm_paradox.md", "lm_paradox.png"):
        assert os.path.exists(os.path.join(out, "figures", f))


@pytest.mark.slow
def test_paradox_resumes_after_interruption_to_identical_numbers(paradox_run, tmp_path):
    out = str(tmp_path / "p")
    _copy_before(paradox_run, out, ["rl_paradox", "figures"])
    paradox.run(CFG, paradox.QUICK, out, log=quiet, until="rl", stop_after_epoch=1)  # killed after epoch 1 of 2
    prog = strict_load(os.path.join(out, "rl_paradox", "progress.json"))
    assert prog["epoch"] == 1 and not os.path.exists(os.path.join(out, "rl_paradox", "results.json"))
    paradox.run(CFG, paradox.QUICK, out, log=quiet)                          # resume
    a = strict_load(os.path.join(paradox_run, "rl_paradox", "results.json"))
    b = strict_load(os.path.join(out, "rl_paradox", "results.json"))
    assert a == b


def test_select_evenly_spans_chance_to_best_and_keeps_the_best():
    acc = np.array([0.05, 0.3, 0.45, 0.5, 0.52, 0.6, 0.61, 0.7, 0.74, 0.8, 0.85, 0.86, 0.9, 0.89])
    idx, targets = paradox.select_evenly(acc, 5, low=0.45)
    assert len(set(idx)) == 5 and int(np.argmax(acc)) in idx
    assert targets[0] == 0.45 and targets[-1] == 0.9
    assert np.max(np.abs(np.sort(acc[idx]) - targets)) <= 0.05
    idx, targets = paradox.select_evenly(acc[2:], 5, low=0.2)   # nothing below 0.45: the targets start there
    assert targets[0] == 0.45 and len(set(idx)) == 5
    with pytest.raises(ValueError, match="ckpt_every"):
        paradox.select_evenly(acc[:3], 5, low=0.45)


def test_kl_stop_outcomes():
    gt = np.array([[0.0, 0.0], [0.2, 0.1], [0.5, 0.3], [0.1, 0.4]])   # [E+1, R]
    kl = np.array([[0.0, 0.0], [0.5, 0.5], [1.5, 0.8], [2.0, 0.9]])
    o = paradox.outcomes(gt, kl, kl_stop=1.0)
    assert o["stop_epoch"].tolist() == [2, 3]          # run 0 exceeds the KL after epoch 2; run 1 never
    assert o["kl_stop"].tolist() == [0.5, 0.4]
    assert o["final"].tolist() == [0.1, 0.4] and o["best"].tolist() == [0.5, 0.4] and o["one_epoch"].tolist() == [0.2, 0.1]


def test_moderate_vs_most_accurate_detects_a_clear_paradox_and_its_absence():
    acc = np.linspace(0.5, 0.9, 9)
    rng = np.random.default_rng(0)
    noise = 0.01 * rng.standard_normal((9, 5))
    peaked = 1.0 - (acc - 0.7) ** 2 * 20               # the middle is best
    a = paradox.moderate_vs_most_accurate(peaked[:, None] + noise, acc, 500)
    assert a["D"] > 0 and a["ci"][0] > 0
    rising = acc * 2                                    # the most accurate is best
    b = paradox.moderate_vs_most_accurate(rising[:, None] + noise, acc, 500)
    assert b["D"] < 0 and b["ci"][1] < 0


# ---------------------------------------------------------------------------------------- reportcard
@pytest.mark.slow
def test_reportcard_runs_rmtheory_evaluate_on_the_exports(grid_run, paradox_run, tmp_path):
    out = str(tmp_path / "rc")
    s = reportcard.analyze(grid_run, paradox_run, out, log=quiet)
    n = len(grid.POLICIES) * len(grid.RMS) + paradox.QUICK.n_ckpts
    assert s["n_cells"] == n
    strict_load(os.path.join(out, "lm_reportcard.json"))
    assert os.path.exists(os.path.join(out, "lm_reportcard.png"))
    # the predictors are what the runs measured internally (the export round-trips)
    ev = strict_load(os.path.join(grid_run, "grid_eval.json"))
    for c in s["cells"]:
        if c["source"] == "grid":
            assert c["Var"] == pytest.approx(ev["report"][c["policy"]][c["model"]]["var"], rel=1e-9)
    assert set(s["correlations"]) == set(reportcard.PREDICTORS)


def test_corr_with_ci_on_exact_and_constant_data():
    x = np.arange(10.0)
    c = study.corr_with_ci(rmtheory.spearman, x, 3 * x + 1, n_boot=200)
    assert c["r"] == pytest.approx(1.0) and c["ci"][0] == pytest.approx(1.0)
    assert study.corr_with_ci(rmtheory.pearson, x, np.ones(10))["r"] is None


def test_reportcard_cli_names_missing_runs(tmp_path, capsys):
    from rmtheory.cli import main

    assert main(["lm", "reportcard", "--out", str(tmp_path / "rc")]) == 2
    assert "--grid" in capsys.readouterr().err
    assert main(["lm", "reportcard", "--grid", str(tmp_path / "nothing"), "--out", str(tmp_path / "rc")]) == 2
    assert "rl_rloo/results.json" in capsys.readouterr().err
