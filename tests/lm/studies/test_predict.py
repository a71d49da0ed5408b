"""`rmtheory lm predict --quick` on the session's quick grid and paradox runs: every registered cell, predictor
and outcome is there, the verdicts follow the registered rules from the numbers, and the CLI refuses bad input."""

import os

import numpy as np
import pytest

from rmtheory.io import load_json as strict_load
from rmtheory.lm.config import get_config
from rmtheory.lm.studies import grid, predict

CFG = get_config("tiny")


def quiet(msg):
    pass


@pytest.fixture(scope="session")
def predict_run(tmp_path_factory, grid_run, paradox_run):
    out = str(tmp_path_factory.mktemp("predict") / "p")
    predict.run(CFG, predict.QUICK, out, grid_run, paradox_run, log=quiet)
    return out


@pytest.mark.slow
def test_predict_quick_covers_every_cell_predictor_and_outcome(predict_run, paradox_run):
    s = strict_load(os.path.join(predict_run, "figures", "lm_predict.json"))
    n_paradox = len(strict_load(os.path.join(paradox_run, "paradox_eval.json"))["names"])
    assert s["families"] == {"grid": 20, "paradox": n_paradox, "new": 4 * len(predict.NEW_RMS)}
    assert s["n_cells"] == 20 + n_paradox + 40
    for p in predict.PREDICTORS:
        assert all(np.isfinite(c[p]) for c in s["cells"]), p
    outs = predict.outcome_names(s["cells"])
    assert {o.split(".")[0] for o in outs} == {"adam_1", "adam_final", "sgd_1"}
    assert {o.split(".")[1] for o in outs} == {"pg_gt", "pg_proxy", "test_gt", "test_proxy"}
    assert s["sgd_lr"]["lr"] in predict.QUICK.sgd_lrs
    # the new RMs differ from one another (their data or targets differ), and the quarter models from the full ones
    ev = strict_load(os.path.join(predict_run, "predict_eval.json"))["report"]["sft"]
    assert len({round(ev[m]["var"], 9) for m in predict.NEW_RMS}) == len(predict.NEW_RMS)
    # the registered paired comparisons, and verdicts that follow from their CIs
    gt = s["correlations"]["sgd_1.test_gt"]
    assert [(d["a"], d["b"]) for d in gt["paired"]] == [(a, b) for k, a, b in predict.PAIRED if k == "gt"]
    for d in gt["paired"]:
        expect = "beats" if d["ci"][0] > 0 else "loses" if d["ci"][1] < 0 else "not distinguishable"
        assert d["verdict"] == expect
    v = s["verdicts"]["P1 (SGD)"]
    assert v["rate_better_confirmed"] == all(d["verdict"] == "beats" for d in gt["paired"])
    md = open(os.path.join(predict_run, "figures", "lm_predict.md")).read()
    assert "## Verdicts" in md and "paper_claims.md" in md


@pytest.mark.slow
def test_predict_resumes_without_redoing_finished_stages(predict_run, grid_run, paradox_run, tmp_path):
    """A re-run over a finished run dir redoes no stage (up to the RL stages; ``analyze`` always runs, and reads
    only what the stages wrote), and a run dir with other settings is refused before any work."""
    import shutil

    out = str(tmp_path / "p")
    shutil.copytree(predict_run, out)
    files = [os.path.join(out, f) for f in ("predict_rms.eqx", "predict_eval.json", "sgd_lr.json",
                                            "rl_adam/results.json", "rl_sgd/results.json")]
    before = [os.path.getmtime(f) for f in files]
    predict.run(CFG, predict.QUICK, out, grid_run, paradox_run, log=quiet, until="rl_sgd")
    assert [os.path.getmtime(f) for f in files] == before
    with pytest.raises(ValueError, match="different predict settings"):
        predict.run(CFG, predict.PredictSettings(), out, grid_run, paradox_run, log=quiet)


def test_predict_refuses_unfinished_runs_and_bad_settings(tmp_path):
    with pytest.raises(ValueError, match="finish that run first"):
        predict.run(CFG, predict.QUICK, str(tmp_path / "p"), str(tmp_path), str(tmp_path), log=quiet)
    with pytest.raises(ValueError, match="noisy"):
        predict.PredictSettings(noisy=(0.3, 0.6))
    with pytest.raises(ValueError, match="sgd_lrs"):
        predict.PredictSettings(sgd_lrs=(0.1, -1.0))
    assert grid.POLICIES == ("sft", "sft_short", "sft_clean", "instruct")
