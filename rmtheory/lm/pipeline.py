"""The miniature Section 4.1 pipeline: the stage table and ``run``.

Every stage is ``stage(cfg, run: RunDir, log)``; it writes its artifacts atomically into the run directory
and is skipped when its marker artifact exists. The RL stage also checkpoints after every epoch and resumes
from the last one; every random number is a function of the config's seeds, so an interrupted and resumed
run gives the same numbers as an uninterrupted one.
"""

from __future__ import annotations

import os

from .._precision import require_x64
from .analysis import stage_analyze
from .config import Config
from .loop import run_stages
from .rundir import RunDir
from .stages import stage_data, stage_perfect, stage_rl, stage_rm, stage_rm_eval, stage_samples, stage_sft

STAGES = ("data", "sft", "samples", "rm", "perfect", "rm_eval", "rl", "analyze")
MARKER = {"data": "data.npz", "sft": "sft.eqx", "samples": "samples.npz", "rm": "rms.eqx", "perfect": "perfect.npz",
          "rm_eval": "rm_eval.json", "rl": os.path.join("rl", "results.json"),
          "analyze": os.path.join("figures", "lm_tables.md")}
NEEDS = {"sft": ("data",), "samples": ("data", "sft"), "rm": ("data", "sft", "samples"), "perfect": ("data",),
         "rm_eval": ("data", "sft", "samples", "rm", "perfect"), "rl": ("data", "sft", "rm", "perfect", "rm_eval"),
         "analyze": ("rm_eval", "rl")}
STAGE_FUNCS = {"data": stage_data, "sft": stage_sft, "samples": stage_samples, "rm": stage_rm,
               "perfect": stage_perfect, "rm_eval": stage_rm_eval, "rl": stage_rl, "analyze": stage_analyze}


def check_inputs(run: RunDir, stage: str):
    """Raise a clear error (and write nothing) if a stage's inputs are missing."""
    missing = [s for s in NEEDS.get(stage, ()) if not run.exists(MARKER[s])]
    if missing:
        raise ValueError(f"stage '{stage}' needs the output of stage(s) {missing} in {run.out}; run "
                         f"`rmtheory lm run --out {run.out}` (or those stages) first")


def run_stage(cfg: Config, run: RunDir, stage: str, log=print, figures_dir: str | None = None):
    """Run one stage unless its artifacts exist (always for analyze, which is cheap and reads only; it alone
    takes ``figures_dir``)."""
    if stage != "analyze" and run.exists(MARKER[stage]):
        log(f"  (done already: {MARKER[stage]})")
        return None
    check_inputs(run, stage)
    extra = {"figures_dir": figures_dir} if stage == "analyze" else {}
    return STAGE_FUNCS[stage](cfg, run, log, **extra)


def run(cfg: Config, out, log=print, until: str | None = None, figures_dir: str | None = None):
    """Run (or resume) every stage up to and including ``until``."""
    require_x64("rmtheory.lm.pipeline.run (its numbers are made with JAX's x64 mode on)")
    if until is not None and until not in STAGES:
        raise ValueError(f"until must be one of {STAGES}; got {until!r}")
    rd = out if isinstance(out, RunDir) else RunDir(out)
    rd.save_config(cfg)
    stages = {st: (lambda st=st: run_stage(cfg, rd, st, log, figures_dir)) for st in STAGES}  # skips done stages
    return run_stages(stages, {}, rd, log, until)
