"""``rmtheory lm``: run the miniature LM pipeline or one of its stages.

    rmtheory lm run --config small --out runs/small [--figures-dir figures] [--set key=value ...]
    rmtheory lm run --config path/to/config.json --out runs/mine
    rmtheory lm {data,sft,samples,rm,perfect,evaluate,rl,analyze} --out runs/small
    rmtheory lm grid --out runs/grid [--quick] [--figures-dir figures]         (Section 4.2: policies × RMs)
    rmtheory lm paradox --out runs/paradox [--quick] [--figures-dir figures]   (the Accuracy Paradox sweep)
    rmtheory lm reportcard --grid runs/grid --paradox runs/paradox --out runs/reportcard [--figures-dir figures]
    rmtheory lm predict --grid runs/grid --paradox runs/paradox --out runs/predict [--quick] [--figures-dir figures]

Every stage writes its artifacts atomically and is skipped when they exist, so re-running resumes. The run
dir's ``config.json`` is the one source of truth on resume; a different config is refused. A command that
fails validation leaves the directory as it found it. Ctrl-C stops with exit code 130 and a one-line message;
finished stages and RL epochs are kept, and re-running the same command resumes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from .config import CONFIGS, SMOKE_TESTS, get_config
from .loop import catching_sigint
from .pipeline import STAGES, check_inputs, run, run_stage
from .rundir import RunDir


def configure(parser: argparse.ArgumentParser):
    sub = parser.add_subparsers(dest="lm_command", required=True)
    for name in ("run",) + STAGES:
        help_ = "the whole pipeline" if name == "run" else f"stage '{name}' only (its inputs must exist)"
        p = sub.add_parser(name, help=help_)
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
    for name, help_ in (("grid", "Section 4.2 analogue: initial policies × reward models (RLOO and GRPO)"),
                        ("paradox", "the Accuracy Paradox sweep: RLOO with RM checkpoints along training")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--out", required=True, help="run directory")
        p.add_argument("--quick", action="store_true", help="the tiny base config and a small study (CI, ~2 min)")
        p.add_argument("--config", default=None, help="base pipeline config (default: small, or tiny with --quick)")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a base config value")
        p.add_argument("--figures-dir", default=None, help="also copy the tables and figure here (e.g. figures)")
    p = sub.add_parser("reportcard",
                       help="validate `rmtheory evaluate` as a predictor of the teacher on grid + paradox cells")
    p.add_argument("--grid", default=None, help="a finished `rmtheory lm grid` run directory")
    p.add_argument("--paradox", default=None, help="a finished `rmtheory lm paradox` run directory")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--figures-dir", default=None, help="also copy the table and figure here (e.g. figures)")
    p = sub.add_parser("predict", help="the pre-registered prediction study (paper_claims.md §9) on grid + paradox "
                                       "cells and 40 new ones")
    p.add_argument("--grid", required=True, help="a finished `rmtheory lm grid` run directory")
    p.add_argument("--paradox", required=True, help="a finished `rmtheory lm paradox` run directory (same config)")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--quick", action="store_true", help="a small study (CI; on --quick grid and paradox runs)")
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


STUDIES = ("grid", "paradox", "reportcard", "predict")
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
