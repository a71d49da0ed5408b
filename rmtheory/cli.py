"""The ``rmtheory`` command line.

Each subcommand lives in its own module exposing ``configure(parser)`` and ``main(args) -> int``; this
file only wires them together (imports are lazy so ``rmtheory --help`` is instant). Every subcommand runs
with JAX in 64-bit mode (:func:`rmtheory.enable_x64`, switched on here once for all of them).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

SUBCOMMANDS = {
    "demo": ("rmtheory._demo", "quick theory demo: t_γ against reward variance (table + figure)"),
    "figures": ("rmtheory.figures.cli", "regenerate every figure (PNG + CSV/JSON data) into ./figures"),
    "verify": ("rmtheory._verify", "check every theorem on random instances; non-zero exit on a violation"),
    "evaluate": ("rmtheory.evaluate", "reward-model report card from exported rewards (CSV/JSONL/Parquet)"),
    "score": ("rmtheory.hf.score",
              "sample a Hugging Face policy, score with reward models → evaluate's input ([hf] extra)"),
    "lm": ("rmtheory.lm.cli", "the miniature LM pipeline (SFT → RMs → RLOO → tables)"),
}


def fail(command: str, message) -> int:
    """Report bad input on one line, ``rmtheory <command>: error: <message>``, and return exit status 2."""
    print(f"rmtheory {command}: error: {' '.join(str(message).split())}", file=sys.stderr)
    return 2


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="rmtheory", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    console = argv is None
    argv = sys.argv[1:] if argv is None else list(argv)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, help_) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_)
        if name == chosen:
            from . import enable_x64

            enable_x64()  # before the subcommand creates any array (the LM's committed numbers were made so too)
            mod = importlib.import_module(module)
            mod.configure(p)
            p.set_defaults(_run=mod.main)
    args = parser.parse_args(argv)
    rc = int(args._run(args) or 0)
    if rc == 130 and console:
        # interrupted (Ctrl-C): every artifact is already written atomically or not at all; leave without the
        # interpreter's teardown, which can crash while XLA is still compiling on another thread
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)
    return rc


if __name__ == "__main__":
    sys.exit(main())
