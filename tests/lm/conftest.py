"""The expensive LM fixtures, made once per test session and shared by every test that reads them: one
``tiny`` pipeline run, and one set of ``--quick`` studies (grid, paradox, reportcard) on the same base config.

The studies start from the same prompts, SFT policy and samples as the pipeline (the same ``tiny`` config and
seeds make the same files), so those stages are copied from the pipeline run instead of being redone. Tests
that change a run work on a copy (``shutil.copytree``).

Most of an RL stage's time at ``tiny`` is XLA compiling its update and evaluation (13 s and 10 s against 0.4 s
an epoch), and the resume tests build the same functions again: the session's JAX compilation cache
(``tests/conftest.py``) compiles each of them once."""

import os
import shutil

import pytest

from rmtheory.lm import pipeline
from rmtheory.lm.config import get_config
from rmtheory.lm.studies import grid, paradox, reportcard

CFG = get_config("tiny")
BASE_FILES = ("config.json", "data.npz", "sft.eqx", "sft_log.json", "samples.npz")


def quiet(msg):
    pass


def _start_from(src, out):
    os.makedirs(out)
    for f in BASE_FILES:
        shutil.copy(os.path.join(src, f), os.path.join(out, f))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """(run dir, summary) of the whole ``tiny`` pipeline."""
    out = str(tmp_path_factory.mktemp("lm") / "tiny")
    summary = pipeline.run(CFG, out, log=quiet)
    return out, summary


def _study_run(tmp_path_factory, tiny_run, study, name):
    out = str(tmp_path_factory.mktemp(name) / name[0])
    _start_from(tiny_run[0], out)
    study.run(CFG, study.QUICK, out, log=quiet)
    return out


@pytest.fixture(scope="session")
def grid_run(tmp_path_factory, tiny_run):
    """``rmtheory lm grid --quick``'s run dir (base stages from the pipeline run)."""
    return _study_run(tmp_path_factory, tiny_run, grid, "grid")


@pytest.fixture(scope="session")
def paradox_run(tmp_path_factory, tiny_run):
    """``rmtheory lm paradox --quick``'s run dir (base stages from the pipeline run)."""
    return _study_run(tmp_path_factory, tiny_run, paradox, "paradox")


@pytest.fixture(scope="session")
def reportcard_run(tmp_path_factory, grid_run, paradox_run):
    """(output dir, summary) of ``rmtheory lm reportcard`` on the quick grid and paradox runs."""
    out = str(tmp_path_factory.mktemp("reportcard") / "rc")
    return out, reportcard.analyze(grid_run, paradox_run, out, log=quiet)


@pytest.fixture
def copy_without():
    """``copy_without(src, dst, drop)``: a copy of run dir ``src`` at ``dst`` without the files or directories
    ``drop`` (as an interrupted run would have left it)."""

    def copy(src, dst, drop):
        shutil.copytree(src, dst)
        for d in drop:
            p = os.path.join(dst, d)
            if os.path.isdir(p):
                shutil.rmtree(p)
            elif os.path.exists(p):
                os.remove(p)

    return copy
