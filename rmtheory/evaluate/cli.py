"""The ``rmtheory evaluate`` command line (options, then :func:`rmtheory.evaluate.evaluate`)."""

from __future__ import annotations

import argparse
import sys

from .._rm_eval import SCHEMES
from ._prepare import DEFAULT_GT
from ._report import plot_path
from ._input import InputError


DESCRIPTION = """\
Reward-model report card for a policy, from the scores of its samples: reward variance, on- and
off-policy accuracy, On&Off and Var&Acc with bootstrap CIs, rankings against the ground truth, and
the Proposition 3 lower bound on t_γ. Reads a CSV/TSV/JSONL/Parquet table (prompt_id, sample_id, one
score column per reward model) and prints the report to stdout as a table (or JSON / CSV); --plot
also saves a figure."""

EPILOG = """\
examples:
  rmtheory evaluate rewards.csv                                every score column, as a table
  rmtheory evaluate rewards.csv --off-policy pairs.csv --json  with off-policy accuracy, as JSON
  rmtheory evaluate rewards.parquet --models rm_a,rm_b --plot card.png
  rmtheory evaluate rewards.csv --sketches sketches.npz        with the teaching rates"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description, parser.epilog = DESCRIPTION, EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("rewards", metavar="REWARDS_FILE",
                        help="CSV/TSV/JSONL/Parquet table: prompt_id, sample_id, one score column per reward model "
                             "(K policy samples per prompt), optionally a ground-truth column")
    parser.add_argument("--ground-truth", metavar="NAME", default="auto",
                        help=f"ground-truth column (default: '{DEFAULT_GT}' if present)")
    parser.add_argument("--no-ground-truth", action="store_true",
                        help="treat every score column as a reward model; no on-policy accuracy")
    parser.add_argument("--exclude-ground-truth", action="store_true",
                        help="do not report the ground-truth column as a reward source")
    parser.add_argument("--models", metavar="A,B,...", help="evaluate only these reward-model columns")
    parser.add_argument("--off-policy", metavar="PAIRS_FILE",
                        help="table of off-policy pairs: prompt_id, M.chosen, M.rejected per model M "
                             "(optionally <ground-truth>.chosen/.rejected; else chosen is strictly preferred)")
    parser.add_argument("--sketches", metavar="SKETCH_FILE",
                        help="per-sample gradient sketches (.npz: prompt_id, sample_id, g [N, D]; docs/evaluate.md): "
                             "adds the teaching rates rate_G and rate_self (pooled over prompts) and rate_G_within, "
                             "rate_self_within (per prompt)")
    parser.add_argument("--format", dest="fmt", choices=("auto", "csv", "tsv", "jsonl", "parquet"), default="auto",
                        help="input format (default: from the file extension)")
    parser.add_argument("--normalisation", "--normalization", choices=SCHEMES, default="global",
                        help="reward normalisation: global z-score (paper default) or prompt_variance (Table 9)")
    parser.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                        help="bootstrap resamples over prompts for the CIs (0: none; default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--ci", type=float, default=0.95, help="confidence level (default 0.95)")
    parser.add_argument("--gamma", type=float, default=1.0,
                        help="γ for the Proposition 3 bound on t_γ (normalised reward units; default 1)")
    parser.add_argument("--n-prompts", type=int, default=None, metavar="S",
                        help="|S| for the Proposition 3 bound (default: each model's number of evaluated prompts)")
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true",
                     help="print JSON (metrics, CIs, rankings, warnings) instead of the table")
    out.add_argument("--csv", action="store_true", help="print one CSV row per reward model instead of the table")
    parser.add_argument("--plot", metavar="PATH", help="save a variance-vs-accuracy scatter (PNG/PDF/SVG)")
    parser.add_argument("--plot-accuracy", choices=("acc_on", "acc_off", "on_off"), default="acc_on",
                        help="accuracy on the plot's y axis (default: on-policy)")


# the CLI flag of each parameter of evaluate() that an error can name
FLAGS = {"normalisation": "--normalisation", "bootstrap": "--bootstrap", "seed": "--seed", "ci": "--ci",
         "gamma": "--gamma", "n_prompts": "--n-prompts", "plot": "--plot"}


def main(args) -> int:
    from ..cli import fail
    from . import evaluate

    try:
        plot = plot_path(args.plot) if args.plot else None     # before the work, not after the report
        gt = None if args.no_ground_truth else args.ground_truth
        models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
        report = evaluate(args.rewards, off_policy=args.off_policy, ground_truth=gt, models=models,
                          include_ground_truth=not args.exclude_ground_truth, normalisation=args.normalisation,
                          bootstrap=args.bootstrap, seed=args.seed, ci=args.ci, gamma=args.gamma,
                          n_prompts=args.n_prompts, fmt=args.fmt, off_policy_fmt=None,
                          sketches=getattr(args, "sketches", None))
    except InputError as e:
        return fail("evaluate", e.message_for(FLAGS))
    except OSError as e:
        return fail("evaluate", e)
    for w in report.warnings:
        print(f"rmtheory evaluate: warning: {w}", file=sys.stderr)
    if args.json:
        print(report.to_json(indent=2))
    elif args.csv:
        sys.stdout.write(report.to_csv())
    else:
        print(report.format_table())
    if plot:
        print(f"rmtheory evaluate: wrote {report.plot(plot, accuracy=args.plot_accuracy)}", file=sys.stderr)
    return 0


def _standalone(argv=None) -> int:
    from ..cli import main as rmtheory_main  # switches on 64-bit mode, as every subcommand

    return rmtheory_main(["evaluate", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(_standalone())
