"""``rmtheory figures``: regenerate every figure (PNG + CSV/JSON data) into ``--out`` (default ``./figures``).

The figure code is part of the installed package (:mod:`rmtheory.figures`), so the command works from any
directory; ``--out`` is relative to the current directory.
"""

from __future__ import annotations

import argparse


def configure(p: argparse.ArgumentParser):
    p.add_argument("--quick", action="store_true", help="small configurations (CI, ~1 min in all)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random draw")
    p.add_argument("--out", default="figures", help="output directory (PNG + CSV/JSON data); default ./figures")
    p.add_argument("--only", action="append", metavar="NAME",
                   help="run only this figure (fig1 … fig5, or a module name prefix); repeatable")
    return p


def main(args) -> int:
    from .. import io
    from ..cli import fail
    from . import run_all, select

    if args.seed < 0:
        return fail("figures", f"--seed must be >= 0; got {args.seed}")
    try:
        select(args.only)
    except ValueError as e:
        return fail("figures", f"--only {e}")
    try:
        io.check_writable(args.out, directory=True)   # before minutes of computing
    except ValueError as e:
        return fail("figures", f"--out {e}")
    run_all(bool(args.quick), int(args.seed), args.out, args.only)
    return 0
