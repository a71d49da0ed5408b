"""`rmtheory lm reportcard` on the quick grid and paradox runs: it runs `rmtheory evaluate` on their exports,
and its command line names missing runs."""

import os

import pytest

from rmtheory.io import load_json as strict_load  # strict: NaN/Infinity are an error
from rmtheory.lm.studies import grid, paradox, reportcard


@pytest.mark.slow
def test_reportcard_runs_rmtheory_evaluate_on_the_exports(grid_run, reportcard_run):
    out, s = reportcard_run
    n = len(grid.POLICIES) * len(grid.RMS) + paradox.QUICK.n_ckpts
    assert s["n_cells"] == n
    strict_load(os.path.join(out, "lm_reportcard.json"))
    assert os.path.exists(os.path.join(out, "lm_reportcard.png"))
    # the predictors are what the runs measured internally (the export round-trips)
    ev = strict_load(os.path.join(grid_run, "grid_eval.json"))
    for c in s["cells"]:
        if c["source"] == "grid":
            assert c["Var"] == pytest.approx(ev["report"][c["policy"]][c["model"]]["var"], rel=1e-9)
    assert set(s["correlations"]) == set(reportcard.PREDICTORS)  # the rates too: every export has its sketches
    for p in grid.POLICIES:
        assert os.path.exists(os.path.join(grid_run, "exports", f"{p}_sketches.npz"))
    # the cells' rates are the per-prompt rates `rmtheory evaluate --sketches` reports on the export (a gram_factor
    # file: no pooled rate)
    cells = [c for c in s["cells"] if c["source"] == "grid" and c["policy"] == grid.POLICIES[0]]
    rep = reportcard.run_evaluate(os.path.join(grid_run, "exports", f"{grid.POLICIES[0]}.csv"),
                                  os.path.join(grid_run, "exports", "offpolicy.csv"))
    for c in cells:
        assert c["rate_G"] == pytest.approx(rep[c["model"]]["rate_g_within"], rel=1e-12)
        assert c["rate_self"] == pytest.approx(rep[c["model"]]["rate_self_within"], rel=1e-12)
        assert "rate_g" not in rep[c["model"]]


def test_reportcard_cli_names_missing_runs(tmp_path, capsys):
    from rmtheory.cli import main

    assert main(["lm", "reportcard", "--out", str(tmp_path / "rc")]) == 2
    assert "--grid" in capsys.readouterr().err
    assert main(["lm", "reportcard", "--grid", str(tmp_path / "nothing"), "--out", str(tmp_path / "rc")]) == 2
    assert "rl_rloo/results.json" in capsys.readouterr().err


@pytest.mark.slow
def test_reportcard_records_no_machine_path(grid_run, paradox_run, reportcard_run):
    out, s = reportcard_run
    text = open(os.path.join(out, "lm_reportcard.json")).read()
    assert grid_run not in text and paradox_run not in text  # both lie outside the working directory
    assert "grid" not in s and "paradox" not in s and s["n_cells"] == len(s["cells"])
