"""What the studies share: a study's run dir refuses other settings, naming what differs; its table records
the run dir relative to the working directory, never a machine's absolute path."""

import os
import shutil

import pytest

from rmtheory.lm.config import get_config
from rmtheory.lm.rundir import RunDir
from rmtheory.lm.studies import common, grid, paradox


def test_study_refuses_other_settings(tmp_path):
    rd = RunDir(str(tmp_path / "g"))
    common.save_study(rd, "grid", grid.QUICK)
    common.save_study(rd, "grid", grid.QUICK)  # the same settings: fine
    with pytest.raises(ValueError, match=r"differs in .*epochs"):
        common.save_study(rd, "grid", grid.GridSettings())


@pytest.mark.slow
@pytest.mark.usefixtures("grid_run", "paradox_run")  # static, so that the test runs where the session made them
@pytest.mark.parametrize("study, fixture", [(grid, "grid_run"), (paradox, "paradox_run")])
def test_study_table_records_its_run_dir_relative_to_the_working_directory(study, fixture, request, tmp_path,
                                                                           monkeypatch):
    run_dir = request.getfixturevalue(fixture)
    name = study.__name__.rsplit(".", 1)[1]
    md = open(os.path.join(run_dir, "figures", f"lm_{name}.md")).read()  # made outside the working directory
    assert run_dir not in md and "Run dir" not in md and "\nBase config `tiny`;" in md
    out = tmp_path / "runs" / "s"
    shutil.copytree(run_dir, out)
    monkeypatch.chdir(tmp_path)
    study.stage_analyze(get_config("tiny"), study.QUICK, RunDir(str(out)), lambda msg: None)
    md = open(out / "figures" / f"lm_{name}.md").read()
    assert "Run dir `" + os.path.join("runs", "s") + "`; base config `tiny`;" in md and str(tmp_path) not in md
