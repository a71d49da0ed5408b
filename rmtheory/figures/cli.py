"""``rmtheory figures``: regenerate every figure (PNG + CSV/JSON data) into ``--out`` (default ``./figures``).

The figure code is part of the installed package (:mod:`rmtheory.figures`), so the command works from any
directory; ``--out`` is relative to the current directory.
"""

from __future__ import annotations

import argparse


DESCRIPTION = """\
Regenerate the seven theory figures (fig1_scaling_law … fig7_shared_parameters), each a PNG with the
CSV/JSON data it plots, into --out (default ./figures, or ./figures-quick with --quick). The figure
code is part of the installed package, so the command works from any directory; each figure's wall
time is printed at the end."""

EPILOG = """\
examples:
  rmtheory figures                              all seven figures into ./figures
  rmtheory figures --quick                      small configurations (for CI) into ./figures-quick
  rmtheory figures --only fig2 --only fig4      only these two figures
  rmtheory figures --seed 1 --out /tmp/figs     another seed, into another directory"""


def configure(p: argparse.ArgumentParser):
    p.description, p.epilog, p.formatter_class = DESCRIPTION, EPILOG, argparse.RawDescriptionHelpFormatter
    p.add_argument("--quick", action="store_true", help="small configurations, for CI")
    p.add_argument("--seed", type=int, default=0, help="seed of every random draw")
    p.add_argument("--out", default=None,
                   help="output directory (PNG + CSV/JSON data); default ./figures, or ./figures-quick with --quick "
                        "(so a quick run never replaces the default figures)")
    p.add_argument("--only", action="append", metavar="NAME",
                   help="run only this figure (fig1 … fig7, or a module name prefix); repeatable")
    return p


def main(args) -> int:
    from .. import io
    from ..cli import fail
    from . import default_out, run_all, select

    if args.out is None:
        args.out = default_out(bool(args.quick))
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
