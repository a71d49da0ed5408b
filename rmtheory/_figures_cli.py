"""``rmtheory figures``: regenerate every figure into ``figures/`` by running the scripts in ``experiments/``.

``experiments/`` is not part of the installed package, so it is looked up (1) under the current directory
(or any parent), then (2) next to the package source for an editable install (the repository root found
from ``rmtheory.__file__``). The scripts are loaded with importlib.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys


def find_experiments(start: str | None = None) -> str | None:
    """Directory holding ``make_figures.py``, or None."""
    cands = []
    d = os.path.abspath(start or os.getcwd())
    while True:
        cands.append(os.path.join(d, "experiments"))
        parent = os.path.dirname(d)
        if parent == d:
            break
        d = parent
    cands.append(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "experiments"))
    for c in cands:
        if os.path.isfile(os.path.join(c, "make_figures.py")):
            return c
    return None


def configure(p: argparse.ArgumentParser):
    p.add_argument("--quick", action="store_true", help="small configurations (CI, ~1 min in all)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random draw")
    p.add_argument("--out", default="figures", help="output directory (PNG + CSV/JSON data)")
    p.add_argument("--only", action="append", metavar="NAME",
                   help="run only this figure (fig1 … fig5, or a script name prefix); repeatable")


def main(args) -> int:
    from . import io
    from .cli import fail

    if args.seed < 0:
        return fail("figures", f"--seed must be >= 0; got {args.seed}")
    try:
        io.check_writable(args.out, directory=True)   # before minutes of computing
    except ValueError as e:
        return fail("figures", f"--out {e}")
    exp = find_experiments()
    if exp is None:
        print("rmtheory figures: cannot find the experiments/ directory (with make_figures.py). Run this from the "
              "rmtheory repository checkout (or any directory inside it), or use an editable install "
              "(pip install -e .).", file=sys.stderr)
        return 2
    spec = importlib.util.spec_from_file_location("rmtheory_experiments_make_figures", os.path.join(exp, "make_figures.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    try:
        mod.run_all(bool(args.quick), int(args.seed), args.out, getattr(args, "only", None), directory=exp)
    except SystemExit as e:  # bad --only
        print(e, file=sys.stderr)
        return 2
    return 0
