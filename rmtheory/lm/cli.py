"""``rmtheory lm``: run the miniature LM pipeline or one of its stages.

    rmtheory lm run --config small --out runs/small [--figures-dir figures] [--set key=value ...]
    rmtheory lm run --config path/to/config.json --out runs/mine
    rmtheory lm {data,sft,samples,rm,perfect,rm_eval,rl,analyze} --out runs/small
    rmtheory lm grid --out runs/grid [--quick] [--figures-dir figures]         (Section 4.2: policies × RMs)
    rmtheory lm paradox --out runs/paradox [--quick] [--figures-dir figures]   (the Accuracy Paradox sweep)
    rmtheory lm reportcard --grid runs/grid --paradox runs/paradox --out runs/reportcard [--figures-dir figures]
    rmtheory lm predict --grid runs/grid --paradox runs/paradox --out runs/predict [--quick] [--figures-dir figures]
    rmtheory lm confirm --out runs/confirm [--quick] [--figures-dir figures]   (the confirmatory rate study)

Every stage writes its artifacts atomically and is skipped when they exist, so re-running resumes. The run
dir's ``config.json`` is the one source of truth on resume; a different config is refused. A command that
fails validation leaves the directory as it found it. Ctrl-C stops with exit code 130 and a one-line message;
finished stages and RL epochs are kept, and re-running the same command resumes.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
import time

from .config import CONFIGS, SMOKE_TESTS, get_config
from .loop import catching_sigint
from .pipeline import STAGES, check_inputs, run, run_stage
from .rundir import RunDir


RAW = argparse.RawDescriptionHelpFormatter

DESCRIPTION = """\
The miniature LM pipeline of the paper's Section 4.1 (a small transformer on a synthetic task with
an exact ground truth: SFT, Bradley–Terry reward models on on/off-policy mixes, RLOO/GRPO, the Table
1/2 and Figure 2/4 analogues) and the studies built on it. Every command writes its artifacts
atomically into its --out directory, and the pipeline and the grid, paradox and prediction studies
resume when re-run; --figures-dir also copies the tables and figures there."""

EPILOG = """\
examples:
  rmtheory lm run --config tiny --out runs/tiny      the pipeline end to end (a smoke test)
  rmtheory lm run --config small --out runs/small --figures-dir figures
  rmtheory lm grid --out runs/grid --quick           Section 4.2: policies × reward models
  rmtheory lm reportcard --grid runs/grid --paradox runs/paradox --out runs/reportcard"""

RUN_DESCRIPTION = """\
Run (or resume) the whole pipeline in --out: data → sft → samples → rm → perfect → rm_eval → rl →
analyze. Each stage writes its artifacts atomically and is skipped when they exist, so re-running
the same command resumes (RL from its last epoch checkpoint). The run dir's config.json is the one
source of truth on resume: a different --config or --set is refused. Tables, validity report and
figures go to <out>/figures (lm_tables.md, lm_*.png) and <out>/validity.json."""

RUN_EPILOG = """\
examples:
  rmtheory lm run --config tiny --out runs/tiny              a smoke test of every stage
  rmtheory lm run --config small --out runs/small --figures-dir figures
  rmtheory lm run --out runs/small --until rm_eval           stop after the RM evaluation
  rmtheory lm run --config small --set rl_lr=1e-4 --out runs/lr   one config value changed"""

STAGE_HELP = {
    "data": ("the prompts and their splits",
             "Makes the prompts (disjoint test / RM / PG splits), their off-policy pairs and the PG eval prompts: "
             "data.npz."),
    "sft": ("train the SFT policy", "Trains the SFT policy on the noisy teacher's answers: sft.eqx, sft_log.json."),
    "samples": ("sample the SFT policy",
                "Samples the SFT policy: two responses per RM prompt (the on-policy pairs, ordered by the ground "
                "truth) and n_eval_samples per PG eval prompt: samples.npz."),
    "rm": ("train the Bradley–Terry reward models",
           "Trains the five Bradley–Terry reward models rm_100 … rm_0 (100 % … 0 % of their pairs on-policy) as "
           "one stacked run: rms.eqx, rm_log.json, rm_curves.csv."),
    "perfect": ("the perfect-accuracy, low-variance reward source",
                "Draws the per-prompt scale of the perfect-accuracy, low-variance reward source: perfect.npz."),
    "rm_eval": ("evaluate the reward models on the SFT policy's samples",
                "Evaluates every reward source on the SFT policy's eval samples (reward variance, on- and "
                "off-policy accuracy, teaching rates) and measures the initial policy: rm_eval.json; exports the "
                "scores as `rmtheory evaluate` input: eval_rewards.csv, eval_offpolicy.csv, eval_sketches.npz "
                "(and eval_per_prompt.npz)."),
    "rl": ("RLOO/GRPO with every reward source × seed",
           "Runs RLOO (or GRPO) from the SFT policy with every reward source × seed, evaluated and checkpointed "
           "after every epoch (an interrupted stage resumes from its last epoch): rl/progress.json, "
           "rl/results.json."),
    "analyze": ("the tables, validity report and figures",
                "Writes the validity report and the Table 1/2 and Figure 2/4 analogues from rm_eval.json and "
                "rl/results.json: validity.json, figures/lm_tables.md and figures/lm_*.png."),
}
"""{stage: (one-line help, what it makes and writes)}, for ``rmtheory lm <stage> --help``."""

STUDY_HELP = {
    "grid": ("Section 4.2 analogue: initial policies × reward models (RLOO and GRPO)", """\
Section 4.2 analogue: several initial policies × several reward models trained on the SFT policy's
data, RLOO (and a GRPO pass) per cell and seed, from the pipeline's first stages. Writes the Tables
10–12 analogues and the Fig. 3 analogue to <out>/figures/lm_grid.{md,json,png}, and each policy's
samples scored by every reward model (`rmtheory evaluate` input) to <out>/exports/. Resumes when
re-run.""", """\
examples:
  rmtheory lm grid --out runs/grid --quick                 the tiny base config and a small study
  rmtheory lm grid --out runs/grid --figures-dir figures   the default study on the small config
  rmtheory lm grid --out runs/grid --set rl_lr=1e-4        one base config value changed"""),
    "paradox": ("the Accuracy Paradox sweep: RLOO with RM checkpoints along training", """\
The Accuracy Paradox sweep (Chen et al., arXiv 2410.06554): checkpoints of one reward model along
its training, evenly spaced in held-out accuracy, each used as the RLOO reward over several seeds
(with a KL-stop variant); a bootstrap over seeds asks whether a moderately accurate checkpoint
teaches better than the most accurate one. Writes <out>/figures/lm_paradox.{md,json,png} and
<out>/exports/.""", """\
examples:
  rmtheory lm paradox --out runs/paradox --quick
  rmtheory lm paradox --out runs/paradox --figures-dir figures"""),
    "reportcard": ("validate `rmtheory evaluate` as a predictor of the teacher on grid + paradox cells", """\
Run `rmtheory evaluate` on every cell a finished grid and/or paradox run exported (the initial
policy's samples scored by each reward model) and correlate its predictors (variance, accuracies,
the Proposition 3 bound, the teaching rates) with the reward increase RL realised in that cell.
Writes <out>/lm_reportcard.{md,json,png}.""", """\
examples:
  rmtheory lm reportcard --grid runs/grid --paradox runs/paradox --out runs/reportcard
  rmtheory lm reportcard --grid runs/grid --out runs/reportcard-grid --figures-dir figures"""),
    "predict": ("the pre-registered prediction study (paper_claims.md §9) on grid + paradox cells and 40 new ones",
                """\
The pre-registered prediction study (paper_claims.md §9): the report card's predictors, from
`rmtheory evaluate --sketches` on every exported cell of a finished grid and paradox run plus 40 new
cells, against the increases RLOO realises with Adam and with SGD, with paired bootstrap tests.
Writes <out>/figures/lm_predict.{md,json,png} and lm_predict_cells.csv. Resumes when re-run.""", """\
examples:
  rmtheory lm predict --grid runs/grid --paradox runs/paradox --out runs/predict
  rmtheory lm predict --grid runs/grid --paradox runs/paradox --out runs/predict-quick --quick"""),
    "confirm": ("the confirmatory pre-registered study of the pooled and Adam-geometry teaching rates (§10)", """\
The confirmatory pre-registered study (paper_claims.md §10): 88 new cells (8 initial policies × 11
reward models, from a base run with SFT and RM seed 11), RLOO for one epoch and for the first 10
optimizer steps with SGD and with Adam × 3 seeds, and the pooled, Adam-geometry, sign and
per-prompt teaching rates against the accuracy columns, over cells and within policy. Writes
<out>/figures/lm_confirm.{md,json,png} and lm_confirm_cells.csv. Resumes when re-run.""", """\
examples:
  rmtheory lm confirm --out runs/confirm --figures-dir figures   the registered study (small config)
  rmtheory lm confirm --out runs/confirm-quick --quick           a small study on the tiny config"""),
}
"""{study: (one-line help, description, examples)}, for ``rmtheory lm <study> --help``."""


def _stage_text(name: str) -> tuple:
    """The description and examples of ``rmtheory lm <stage>``."""
    what = STAGE_HELP[name][1]
    when = "It always runs: it only reads" if name == "analyze" else "It is skipped when its artifacts exist"
    text = (f"Run the pipeline's '{name}' stage alone in the run directory --out (with its config.json, unless "
            f"--config is given); the artifacts of the stages it reads must be there. {when}. {what}")
    extra = " --figures-dir figures" if name == "analyze" else ""
    epilog = (f"examples:\n  rmtheory lm {name} --out runs/small{extra}\n"
              f"  rmtheory lm run --out runs/small --until {name}    every stage up to this one")
    return textwrap.fill(text, 100), epilog


def configure(parser: argparse.ArgumentParser):
    parser.description, parser.epilog, parser.formatter_class = DESCRIPTION, EPILOG, RAW
    sub = parser.add_subparsers(dest="lm_command", required=True, metavar="COMMAND")
    for name in ("run",) + STAGES:
        if name == "run":
            p = sub.add_parser(name, help="the whole pipeline", description=RUN_DESCRIPTION, epilog=RUN_EPILOG,
                               formatter_class=RAW)
        else:
            description, epilog = _stage_text(name)
            p = sub.add_parser(name, help=f"stage '{name}' only: {STAGE_HELP[name][0]}", description=description,
                               epilog=epilog, formatter_class=RAW)
        p.add_argument("--config", default=None,
                       help=f"named config {sorted(CONFIGS)} or a .json file (default: the run dir's config.json; "
                            "for `run` in a new dir: small)")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config value (JSON value; dotted keys for nested groups, e.g. "
                            "teacher.conf_hard=0.6)")
        p.add_argument("--out", required=True, help="run directory (artifacts, config.json)")
        p.add_argument("--figures-dir", default=None, help="also copy figures/tables here (e.g. figures)")
        if name == "run":
            p.add_argument("--until", default=None, choices=STAGES, help="stop after this stage")
    for name in ("grid", "paradox"):
        help_, description, epilog = STUDY_HELP[name]
        p = sub.add_parser(name, help=help_, description=description, epilog=epilog, formatter_class=RAW)
        p.add_argument("--out", required=True, help="run directory")
        p.add_argument("--quick", action="store_true", help="the tiny base config and a small study (CI, ~2 min)")
        p.add_argument("--config", default=None, help="base pipeline config (default: small, or tiny with --quick)")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a base config value")
        p.add_argument("--figures-dir", default=None, help="also copy the tables and figure here (e.g. figures)")
    help_, description, epilog = STUDY_HELP["reportcard"]
    p = sub.add_parser("reportcard", help=help_, description=description, epilog=epilog, formatter_class=RAW)
    p.add_argument("--grid", default=None, help="a finished `rmtheory lm grid` run directory")
    p.add_argument("--paradox", default=None, help="a finished `rmtheory lm paradox` run directory")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--figures-dir", default=None, help="also copy the table and figure here (e.g. figures)")
    help_, description, epilog = STUDY_HELP["predict"]
    p = sub.add_parser("predict", help=help_, description=description, epilog=epilog, formatter_class=RAW)
    p.add_argument("--grid", required=True, help="a finished `rmtheory lm grid` run directory")
    p.add_argument("--paradox", required=True, help="a finished `rmtheory lm paradox` run directory (same config)")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--quick", action="store_true", help="a small study (CI; on --quick grid and paradox runs)")
    p.add_argument("--figures-dir", default=None, help="also copy the tables and figure here (e.g. figures)")
    help_, description, epilog = STUDY_HELP["confirm"]
    p = sub.add_parser("confirm", help=help_, description=description, epilog=epilog, formatter_class=RAW)
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--quick", action="store_true", help="the tiny base config and a small study (CI)")
    p.add_argument("--figures-dir", default=None, help="also copy the tables and figure here (e.g. figures)")
    return parser


def _config(args, rd: RunDir, default: str | None):
    """The run's config: ``--config``, else the run dir's ``config.json``, else the named ``default`` (None: a
    stage command, which never starts a new run dir); then ``--set``."""
    if args.config is not None:
        cfg = get_config(args.config)
    else:
        cfg = rd.stored_config()
        if cfg is None and default is None:
            raise ValueError(f"{rd.out} holds no config.json; pass --config (a stage command never starts a new run "
                             "dir: use `rmtheory lm run`)")
        cfg = cfg if cfg is not None else get_config(default)
    return cfg.with_overrides(args.set) if args.set else cfg


def main(args) -> int:
    def log(msg):
        print(msg, flush=True)

    t = time.time()
    try:
        with catching_sigint():
            return _main(args, log, t)
    except KeyboardInterrupt:
        print(f"\ninterrupted; finished stages are kept in {args.out}: re-run the same command to resume",
              file=sys.stderr, flush=True)
        return 130


STUDIES = ("grid", "paradox", "reportcard", "predict", "confirm")
MARKERS = {"--grid": "rl_rloo/results.json", "--paradox": "rl_paradox/results.json"}


def _study(args, log) -> None:
    if args.lm_command == "reportcard":
        from .studies.reportcard import analyze

        if not args.grid and not args.paradox:
            raise ValueError("pass --grid and/or --paradox run directories")
        for flag, d in (("--grid", args.grid), ("--paradox", args.paradox)):
            if d and not os.path.exists(os.path.join(d, MARKERS[flag])):
                raise ValueError(f"{flag} {d}: no {MARKERS[flag]}; finish that run first")
        analyze(args.grid, args.paradox, args.out, args.figures_dir, log)
        return
    if args.lm_command == "predict":
        from .studies import predict

        cfg = RunDir(args.grid).stored_config()
        if cfg is None:
            raise ValueError(f"--grid {args.grid}: no config.json; finish that run first")
        predict.run(cfg, predict.QUICK if args.quick else predict.PredictSettings(), args.out, args.grid, args.paradox,
                    log, figures_dir=args.figures_dir)
        return
    if args.lm_command == "confirm":
        from .studies import confirm

        rd = RunDir(args.out)
        cfg = rd.stored_config() or confirm.base_config(args.quick)
        confirm.run(cfg, confirm.QUICK if args.quick else confirm.ConfirmSettings(), rd, log,
                    figures_dir=args.figures_dir)
        return
    from .studies import grid, paradox

    mod = grid if args.lm_command == "grid" else paradox
    rd = RunDir(args.out)
    cfg = _config(args, rd, "tiny" if args.quick else "small")
    settings = mod.QUICK if args.quick else (mod.GridSettings() if mod is grid else mod.ParadoxSettings())
    mod.run(cfg, settings, rd, log, figures_dir=args.figures_dir)


def _pipeline(args, log) -> list:
    """Run the pipeline or one stage; returns the closing lines (where the tables went; a smoke test says so)."""
    rd = RunDir(args.out)
    cfg = _config(args, rd, "small" if args.lm_command == "run" else None)
    rd.check_config(cfg)
    if args.lm_command == "run":
        run(cfg, rd, log, until=args.until, figures_dir=args.figures_dir)
    else:
        check_inputs(rd, args.lm_command)  # before anything is written
        rd.save_config(cfg)
        run_stage(cfg, rd, args.lm_command, log, args.figures_dir)
    if args.lm_command not in ("run", "analyze") or (args.lm_command == "run" and args.until not in (None, "analyze")):
        return []
    copies = f" (copied to {args.figures_dir})" if args.figures_dir else ""
    lines = [f"tables and figures in {rd.path('figures')}{copies}"]
    if cfg.name in SMOKE_TESTS:
        lines.append(f"note: config `{cfg.name}` is a smoke test (it shows the pipeline runs end to end): its validity "
                     "gates are not expected to pass; `--config small` makes the instrument's numbers")
    return lines


def _main(args, log, t) -> int:
    from ..cli import fail

    study = args.lm_command in STUDIES
    # a study's failed `rmtheory evaluate` subprocess is a RuntimeError; in the pipeline one is a bug (traceback)
    errors = (ValueError, FileNotFoundError, RuntimeError) if study else (ValueError, FileNotFoundError)
    try:
        closing = (_study if study else _pipeline)(args, log) or []
    except errors as e:
        return fail("lm", e)
    log(f"done in {time.time() - t:.1f}s; artifacts in {args.out}")
    for line in closing:
        log(line)
    return 0
