"""The ``rmtheory`` command line.

Each subcommand lives in its own module exposing ``configure(parser)`` and ``main(args) -> int``; this
file only wires them together (imports are lazy so ``rmtheory --help`` is instant). Every subcommand runs
with JAX in 64-bit mode (:func:`rmtheory.enable_x64`, switched on here once for all of them) and with the
persistent compilation cache (:mod:`rmtheory._cache`, switched on here before the first compilation).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

SUBCOMMANDS = {
    "demo": ("rmtheory._demo", "quick theory demo: t_γ against reward variance (table + figure)"),
    "figures": ("rmtheory.figures.cli", "regenerate the seven theory figures (PNG + CSV/JSON data) into ./figures"),
    "verify": ("rmtheory._verify", "check every theorem on random instances; non-zero exit on a violation"),
    "evaluate": ("rmtheory.evaluate", "reward-model report card from exported rewards (CSV/JSONL/Parquet)"),
    "score": ("rmtheory.hf.score",
              "sample a Hugging Face policy, score with reward models → evaluate's input ([hf] extra)"),
    "lm": ("rmtheory.lm.cli", "the miniature LM pipeline (SFT → RMs → RLOO → tables) and its studies"),
    "cache": ("rmtheory._cache", "the JAX compilation cache every command reuses: info (path, size), clear"),
}


def fail(command: str, message) -> int:
    """Report bad input on one line, ``rmtheory <command>: error: <message>``, and return exit status 2."""
    print(f"rmtheory {command}: error: {' '.join(str(message).split())}", file=sys.stderr)
    return 2


DESCRIPTION = """\
A JAX toolkit that verifies the optimization theory of reward models of Razin et al., "What Makes a
Reward Model a Good Teacher? An Optimization Perspective" (arXiv 2503.15477): exact gradient flows
and time-to-γ on tabular softmax policies, every bound of the paper checked on random instances, the
seven theory figures, a reward-model report card for your own policy's samples, and a miniature LM
pipeline that reproduces the paper's empirical claims. `rmtheory COMMAND --help` describes each
command."""

EPILOG = """\
examples:
  rmtheory figures                                      the seven theory figures into ./figures
  rmtheory verify --scale quick                         check every theorem on random instances
  rmtheory evaluate rewards.csv --off-policy pairs.csv  a report card from exported scores
  rmtheory lm run --config tiny --out runs/tiny         the miniature LM pipeline, end to end"""


def _parser(configured) -> argparse.ArgumentParser:
    """The ``rmtheory`` parser with a row per :data:`SUBCOMMANDS` entry; the module of each subcommand for which
    ``configured(name)`` holds is imported and configures its parser (options, description, examples)."""
    parser = argparse.ArgumentParser(prog="rmtheory", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, title="commands")
    for name, (module, help_) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_)
        if configured(name):
            mod = importlib.import_module(module)
            mod.configure(p)
            p.set_defaults(_run=mod.main)
    return parser


def build_parser(full: bool = True) -> argparse.ArgumentParser:
    """The ``rmtheory`` parser with every subcommand of :data:`SUBCOMMANDS`; with ``full``, each one configured
    (its module imported: every option, description and example), for documentation. :func:`main` configures
    only the chosen subcommand, so ``rmtheory --help`` stays instant."""
    return _parser(lambda name: full)


def main(argv=None) -> int:
    console = argv is None
    argv = sys.argv[1:] if argv is None else list(argv)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    if chosen in SUBCOMMANDS:  # before the subcommand's module is imported and creates any array
        from . import enable_x64

        enable_x64()  # the LM's committed numbers were made with it on too
        if chosen != "cache":  # it compiles nothing, and reports the directory as it finds it
            from ._cache import enable_for_command

            enable_for_command()  # before the first compilation: compiled functions are reused across runs
    parser = _parser(lambda name: name == chosen)
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
