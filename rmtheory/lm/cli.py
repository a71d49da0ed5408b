"""``rmtheory lm``: run the miniature LM pipeline or one of its stages.

    rmtheory lm run --config small --out runs/small [--figures-dir figures]
    rmtheory lm {sft,prefs,rm,perfect,evaluate,rl,analyze} --out runs/small [--config small]

Every stage writes its artifacts atomically and is skipped when they exist, so re-running resumes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from .config import CONFIGS, get_config
from .pipeline import STAGE_FUNCS, STAGES, load_config, run, save_config


def configure(parser: argparse.ArgumentParser):
    sub = parser.add_subparsers(dest="lm_command", required=True)
    for name in ("run",) + STAGES:
        help_ = "the whole pipeline" if name == "run" else f"stage '{name}' only (its inputs must exist)"
        p = sub.add_parser(name, help=help_)
        p.add_argument("--config", default=None, choices=sorted(CONFIGS),
                       help="named config (default: the run dir's config.json, else 'small')")
        p.add_argument("--out", required=True, help="run directory (artifacts, config.json)")
        p.add_argument("--figures-dir", default=None, help="also copy figures/tables here (e.g. figures)")
        if name == "run":
            p.add_argument("--until", default=None, choices=STAGES, help="stop after this stage")
    return parser


def _cfg(args):
    cfg_path = os.path.join(args.out, "config.json")
    if args.config is None and os.path.exists(cfg_path):
        return load_config(args.out)
    return get_config(args.config or "small")


def main(args) -> int:
    def log(msg):
        print(msg, flush=True)

    try:
        cfg = _cfg(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    t = time.time()
    try:
        if args.lm_command == "run":
            run(cfg, args.out, log, until=args.until, figures_dir=args.figures_dir)
        else:
            save_config(cfg, args.out)
            if args.lm_command == "analyze":
                from .analysis import analyze
                analyze(args.out, figures_dir=args.figures_dir, log=log)
            else:
                STAGE_FUNCS[args.lm_command](cfg, args.out, log)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    log(f"done in {time.time() - t:.1f}s; artifacts in {args.out}")
    return 0
