"""``rmtheory lm``: run the miniature LM pipeline or one of its stages.

    rmtheory lm run --config small --out runs/small [--figures-dir figures] [--set key=value ...]
    rmtheory lm run --config path/to/config.json --out runs/mine
    rmtheory lm {data,sft,samples,rm,perfect,evaluate,rl,analyze} --out runs/small

Every stage writes its artifacts atomically and is skipped when they exist, so re-running resumes. The run
dir's ``config.json`` is the one source of truth on resume; a different config is refused. A command that
fails validation leaves the directory as it found it. Ctrl-C stops with exit code 130 and a one-line message;
finished stages and RL epochs are kept, and re-running the same command resumes.
"""

from __future__ import annotations

import argparse
import sys
import time

from .config import CONFIGS, get_config
from .pipeline import STAGES, catching_sigint, check_inputs, run, run_stage
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
                       help="override a config value (JSON value; dotted keys for nested groups, e.g. teacher.conf_hard=0.6)")
        p.add_argument("--out", required=True, help="run directory (artifacts, config.json)")
        p.add_argument("--figures-dir", default=None, help="also copy figures/tables here (e.g. figures)")
        if name == "run":
            p.add_argument("--until", default=None, choices=STAGES, help="stop after this stage")
    return parser


def _cfg(args, rd: RunDir):
    stored = rd.stored_config()
    if args.config is None:
        if stored is not None:
            cfg = stored
        elif args.lm_command == "run":
            cfg = get_config("small")
        else:
            raise ValueError(f"{rd.out} holds no config.json; pass --config (a stage command never starts a new run "
                             "dir: use `rmtheory lm run`)")
    else:
        cfg = get_config(args.config)
    if args.set:
        cfg = cfg.with_overrides(args.set)
    return cfg


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


def _main(args, log, t) -> int:
    try:
        rd = RunDir(args.out)
        cfg = _cfg(args, rd)
        rd.check_config(cfg)
        if args.lm_command == "run":
            run(cfg, rd, log, until=args.until, figures_dir=args.figures_dir)
        else:
            check_inputs(rd, args.lm_command)  # before anything is written
            rd.save_config(cfg)
            run_stage(cfg, rd, args.lm_command, log, args.figures_dir)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    log(f"done in {time.time() - t:.1f}s; artifacts in {args.out}")
    return 0
