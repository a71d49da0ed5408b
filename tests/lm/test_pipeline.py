"""End-to-end `tiny` pipeline, resume after an interruption, determinism, artifact formats, validity report."""

import csv
import json
import os
import shutil

import numpy as np
import pytest

from rmtheory.lm import pipeline, stages
from rmtheory.lm.config import BASELINES, SOURCES, get_config
from rmtheory.lm.rundir import RunDir

CFG = get_config("tiny")


def _reject(c):
    raise ValueError(f"non-standard JSON constant {c}")


def strict_load(path):
    with open(path) as f:
        return json.loads(f.read(), parse_constant=_reject)


@pytest.mark.slow
def test_tiny_end_to_end(tiny_run):
    out, summary = tiny_run
    for f in ("config.json", "sft.eqx", "samples.npz", "rms.eqx", "rm_curves.csv", "perfect.npz", "rm_eval.json",
              "eval_rewards.csv", "eval_offpolicy.csv", "rl/results.json", "validity.json",
              "figures/lm_increase_vs_epoch.png", "figures/lm_increase_vs_kl.png", "figures/lm_tables.md",
              "figures/lm_rm_curves.png"):
        assert os.path.exists(os.path.join(out, f)), f
    with open(os.path.join(out, "eval_rewards.csv")) as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["prompt_id", "sample_id", *SOURCES, *BASELINES]
    assert len(rows) - 1 == CFG.n_eval_prompts * CFG.n_eval_samples
    with open(os.path.join(out, "eval_offpolicy.csv")) as fh:
        hdr = next(csv.reader(fh))
    assert hdr[0] == "prompt_id" and hdr[-2:] == ["ground_truth.chosen", "ground_truth.rejected"]
    t1 = summary["table1"]
    assert t1["perfect_lowvar"]["acc_on"] == 1.0 and t1["ground_truth"]["acc_off"] == 1.0
    assert t1["perfect_lowvar"]["var"] < t1["ground_truth"]["var"]
    res = json.load(open(os.path.join(out, "rl", "results.json")))
    inc = np.asarray(res["proxy_increase"])
    assert inc.shape == (CFG.rl_epochs + 1, len(SOURCES) * len(CFG.seeds.rl))
    assert np.all(inc[0] == 0) and np.all(np.isfinite(inc))
    assert np.all(np.asarray(res["test_gt_increase"])[0] == 0)
    assert res["max_abs_adv_sum"] < 1e-4  # RLOO advantages sum to zero per prompt inside training
    assert res["adam_steps_per_epoch"] == CFG.rollouts_per_epoch * CFG.n_minibatches
    # ground truth as the training reward: proxy increase == GT increase
    gt_runs = [i for i, r in enumerate(res["runs"]) if r["source"] == "ground_truth"]
    np.testing.assert_allclose(inc[:, gt_runs], np.asarray(res["gt_increase"])[:, gt_runs], atol=1e-5)


@pytest.mark.slow
def test_validity_report_lists_every_gate_with_its_measured_value(tiny_run):
    out, summary = tiny_run
    v = strict_load(os.path.join(out, "validity.json"))
    ids = [g["id"] for g in v["gates"]]
    assert ids == [f"G{i}" for i in range(1, 12)]
    ev = strict_load(os.path.join(out, "rm_eval.json"))
    byid = {g["id"]: g for g in v["gates"]}
    # the gate values are the measured numbers, not constants
    assert byid["G3"]["value"] == ev["report"]["sft_likelihood"]["global"]["acc_on"]
    assert byid["G4"]["value"] == ev["report"]["rm_100"]["global"]["acc_on"]
    assert byid["G7"]["value"] == CFG.adam_steps_per_epoch and byid["G7"]["pass"] is False  # tiny: 8 steps
    assert byid["G10"]["value"] == 2 and byid["G10"]["pass"] is False
    rep = {s: ev["report"][s]["global"] for s in ("perfect_lowvar", "ground_truth")}
    assert byid["G11"]["value"] == rep["perfect_lowvar"]["var"] / rep["ground_truth"]["var"]
    assert byid["G11"]["pass"]  # the shifted construction is low-variance under the global z-score (tiny too)
    assert v["all_pass"] == all(g["pass"] for g in v["gates"])
    md = open(os.path.join(out, "figures", "lm_tables.md")).read()
    assert md.index("## Validity report") < md.index("## Table 1 analogue")
    assert "**FAIL**" in md
    # the rm learning curves have every mix at every evaluation step
    with open(os.path.join(out, "rm_curves.csv")) as fh:
        rows = list(csv.DictReader(fh))
    steps = sorted({int(r["step"]) for r in rows})
    assert steps[0] == 0 and len(rows) == len(steps) * 5
    assert all(0 <= float(r["heldout_on_acc"]) <= 1 for r in rows)


@pytest.mark.slow
def test_every_json_artifact_is_strict(tiny_run):
    out, _ = tiny_run
    found = 0
    for root, _, files in os.walk(out):
        for f in files:
            if f.endswith(".json"):
                strict_load(os.path.join(root, f))
                found += 1
    assert found >= 6


@pytest.mark.slow
def test_resume_after_interruption_gives_identical_numbers(tiny_run, tmp_path):
    out, _ = tiny_run
    out2 = str(tmp_path / "resumed")
    os.makedirs(out2)
    for f in ("config.json", "data.npz", "sft.eqx", "samples.npz", "rms.eqx", "perfect.npz"):
        shutil.copy(os.path.join(out, f), os.path.join(out2, f))
    # an interrupted write of the evaluation stage leaves only a temp file behind
    open(os.path.join(out2, ".tmp-rm_eval.json-crashed"), "w").write("{")
    pipeline.run(CFG, out2, log=lambda m: None, until="rm_eval")
    # the RL stage is interrupted after epoch 2 of 3 ...
    stages.stage_rl(CFG, RunDir(out2), log=lambda m: None, stop_after_epoch=2)
    assert not os.path.exists(os.path.join(out2, "rl", "results.json"))
    assert json.load(open(os.path.join(out2, "rl", "progress.json")))["epoch"] == 2
    # ... and resumed
    pipeline.run(CFG, out2, log=lambda m: None)
    for f in ("rm_eval.json", "rl/results.json"):
        assert json.load(open(os.path.join(out, f))) == json.load(open(os.path.join(out2, f))), f
    a, b = (np.loadtxt(os.path.join(d, "eval_rewards.csv"), delimiter=",", skiprows=1) for d in (out, out2))
    np.testing.assert_array_equal(a, b)


def test_config_mismatch_is_refused(tmp_path):
    RunDir(str(tmp_path)).save_config(CFG)
    with pytest.raises(ValueError, match="different config"):
        RunDir(str(tmp_path)).save_config(get_config("small"))


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["global", "prompt_variance"])
def test_rmtheory_evaluate_agrees_with_the_pipeline_evaluation_stage(tiny_run, scheme):
    """`rmtheory evaluate` on the files the evaluation stage writes reproduces its numbers to 1e-12."""
    from rmtheory.evaluate import evaluate

    out, _ = tiny_run
    stage = json.load(open(os.path.join(out, "rm_eval.json")))["report"]
    rep = evaluate(os.path.join(out, "eval_rewards.csv"), off_policy=os.path.join(out, "eval_offpolicy.csv"),
                   normalisation=scheme, bootstrap=50, seed=0)
    names = list(SOURCES) + list(BASELINES)
    assert sorted(m.name for m in rep.models) == sorted(names)
    for name in names:
        for k in ("var", "acc_on", "acc_off", "on_off", "var_acc", "mean", "std"):
            assert abs(getattr(rep[name], k) - stage[name][scheme][k]) <= 1e-12, (name, k)


@pytest.mark.slow
def test_run_ends_with_a_short_summary_the_figures_dir_and_the_smoke_test_note(tiny_run, tmp_path, capsys):
    """`lm run --config tiny` closes with a few lines, not the whole lm_tables.md: the gates, where the tables
    and figures are, and that tiny is a smoke test whose gates are not expected to pass."""
    from rmtheory.cli import main as cli_main

    out, figs = str(tmp_path / "tiny"), str(tmp_path / "figs")
    shutil.copytree(tiny_run[0], out)  # every stage done: `run` re-runs only analyze
    assert cli_main(["lm", "run", "--out", out, "--figures-dir", figs]) == 0
    text = capsys.readouterr().out
    lines = text.strip().splitlines()
    assert "## Table 1 analogue" not in text and "| Gate |" not in text
    assert any(line.strip().startswith("validity: ") and "gates pass; FAIL: " in line for line in lines)
    assert lines[-3].startswith("done in ")
    assert lines[-2] == f"tables and figures in {os.path.join(out, 'figures')} (copied to {figs})"
    assert "`tiny` is a smoke test" in lines[-1] and "not expected to pass" in lines[-1]
    assert os.path.exists(os.path.join(figs, "lm_tables.md")) and os.path.exists(os.path.join(figs, "lm_validity.json"))
    md = open(os.path.join(out, "figures", "lm_tables.md")).read()
    assert "n/a" not in md and "—: undefined (a constant column)." in md  # one "undefined" mark in every lm table


@pytest.mark.slow
def test_evaluate_with_the_exported_sketches_gives_the_stage_rates(tiny_run):
    """The evaluation stage exports the policy's exact score-vector Gram factors (``eval_sketches.npz``) and count
    sketches (``eval_projections.npz``). ``rmtheory evaluate --sketches`` reproduces the per-prompt rates it
    records in ``rm_eval.json`` from the first, and the pooled rates of the count sketches from the second, which
    agree with the exact pooled rates within a few of their recorded sketch SEs."""
    from rmtheory.evaluate import evaluate

    out, _ = tiny_run
    stage = json.load(open(os.path.join(out, "rm_eval.json")))["rates"]
    assert json.load(open(os.path.join(out, "eval_rates.json")))["sources"] == stage
    rep = evaluate(os.path.join(out, "eval_rewards.csv"), ground_truth="ground_truth",
                   sketches=os.path.join(out, "eval_sketches.npz"), bootstrap=0)
    proj = evaluate(os.path.join(out, "eval_rewards.csv"), ground_truth="ground_truth",
                    sketches=os.path.join(out, "eval_projections.npz"), bootstrap=0)
    assert rep.meta["sketches"]["sketch_kind"] == "gram_factor"
    assert proj.meta["sketches"]["sketch_kind"] == "countsketch"
    names = [n for n in list(SOURCES) + list(BASELINES) if n != "ground_truth"]
    assert sorted(stage) == sorted(names + ["ground_truth"])
    for name in names:
        s = stage[name]
        for k in ("rate_g_within", "rate_self_within"):
            assert getattr(rep[name], k) == pytest.approx(s[k], rel=1e-9, abs=1e-12), (name, k)
        assert proj[name].rate_g == pytest.approx(s["rate_g_countsketch"], rel=1e-5, abs=1e-9), name
        assert abs(s["rate_g_countsketch"] - s["rate_g"]) <= 5 * s["countsketch_se"] + 1e-9, name
