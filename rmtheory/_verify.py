"""``rmtheory verify``: check every theorem of the paper on random instances.

:data:`CHECKS` lists the checks (:mod:`rmtheory._verify_checks`, one ``check_*`` per result) in the order they
run; each draws a batch of random instances at the chosen scale, runs the exact gradient flows (batched: all
tabular flows share one compiled solver of shape [2·n, 6]) and compares with the bound: a lower bound t_γ ≥ B is
violated iff the target is reached before B; an upper bound t_γ ≤ B is violated iff it is not reached by B
(docs/theory.md, "Checking a bound numerically").

The ratio column is the tightest ratio over the instances, always oriented so that ≤ 1 means "holds":
``bound/t`` for time lower bounds, ``t/bound`` for time upper bounds, ``lhs/rhs`` for inequalities,
``err/tol`` for identities. :func:`run_checks` returns the rows as data.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Callable, NamedTuple

import numpy as np

from ._verify_checks import (
    Row,
    check_constructions,
    check_lemma8,
    check_lemma9,
    check_lemma10,
    check_pooled_rate,
    check_prop1,
    check_prop2,
    check_prop3,
    check_prop4,
    check_teaching_rate,
    check_thm4_ar,
    check_thm4_mlp,
    check_thm4_tabular,
    check_thm5,
    check_thm6,
    thm5_instances,
)

SCALES = {
    "quick": dict(n=24, n_neural=4, n_grid=8),
    "default": dict(n=256, n_neural=16, n_grid=24),
    "large": dict(n=2048, n_neural=64, n_grid=48),
}


class Check(NamedTuple):
    """One entry of :data:`CHECKS`: ``check(rng, cfg[, data]) -> Row | list[Row]``, announced as ``label``.
    ``data(rng, cfg)``, when given, makes instances that several checks share: it is drawn once per run, just
    before the first check that names it, from its own random stream."""

    label: str
    check: Callable
    data: Callable | None = None


CHECKS = (
    Check("Lemma 8", check_lemma8),
    Check("Lemma 9", check_lemma9),
    Check("Lemma 10", check_lemma10),
    Check("Prop 3", check_prop3),
    Check("Thm 4 tabular", check_thm4_tabular),
    Check("Prop 2", check_prop2),
    Check("Thm 4 AR", check_thm4_ar),
    Check("Thm 4 MLP", check_thm4_mlp),
    Check("Prop 4", check_prop4),
    Check("Thm 5 constructions", check_constructions, thm5_instances),
    Check("Thm 5 flows", check_thm5, thm5_instances),
    Check("Thm 6", check_thm6),
    Check("Prop 1", check_prop1),
    Check("Teaching rate", check_teaching_rate),
    Check("Pooled rate estimator", check_pooled_rate),
)
"""Every check of ``rmtheory verify``, in the order it runs (each gets its own random stream from the seed)."""


def run_checks(scale: str = "default", seed: int = 0, progress: Callable[[str], None] | None = None) -> list[Row]:
    """Run every check at ``scale`` ('quick', 'default', 'large') and return the table rows.

    Examples:
      The full run takes about a minute at ``quick`` scale, so it is not executed here:

      >>> import rmtheory
      >>> rmtheory.enable_x64()  # the theory computes in float64
      >>> from rmtheory._verify import format_table, run_checks
      >>> rows = run_checks("quick", seed=0)  # doctest: +SKIP
      >>> sum(r.violations for r in rows)  # doctest: +SKIP
      0

      Each ``check_*`` function (:data:`CHECKS`) is one row (or a few) of that table and runs on its own;
      Proposition 1 on two random instances per setting:

      >>> import numpy as np
      >>> from rmtheory._verify import check_prop1
      >>> row = check_prop1(np.random.default_rng(0), dict(n=2))
      >>> row.result, row.tried, row.violations, round(row.ratio, 6)
      ('Prop 1 (Best-of-N optimum)', 60, 0, 1.0)
      >>> print(format_table([row]))
      result                     | tried | violations | tightest ratio | ratio         | note
      ---------------------------+-------+------------+----------------+---------------+-----
      Prop 1 (Best-of-N optimum) | 60    | 0          | 1              | (E+1)/(opt+1) |
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {sorted(SCALES)}; got {scale!r}")
    cfg = SCALES[scale]
    rng = np.random.default_rng(seed)
    say = progress or (lambda s: None)
    rows: list[Row] = []
    t_start = time.time()

    shared = {}
    for label, check, data in CHECKS:
        args = ()
        if data is not None:
            if data not in shared:
                shared[data] = data(np.random.default_rng(rng.integers(1 << 62)), cfg)
            args = (shared[data],)
        t0 = time.time()
        say(f"[{time.time() - t_start:6.1f}s] {label} ...")
        out = check(np.random.default_rng(rng.integers(1 << 62)), cfg, *args)
        out = out if isinstance(out, list) else [out]
        rows.extend(out)
        for r in out:
            say(f"         {r.result}: {r.tried} tried, {r.violations} violations ({time.time() - t0:.1f}s)")
    say(f"[{time.time() - t_start:6.1f}s] done")
    return rows


def format_table(rows: list[Row]) -> str:
    head = ("result", "tried", "violations", "tightest ratio", "ratio", "note")
    body = [(r.result, str(r.tried), str(r.violations), f"{r.ratio:.4g}", r.ratio_kind, r.note) for r in rows]
    widths = [max(len(x[i]) for x in [head] + body) for i in range(len(head))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip() for cols in [head] + body]
    return "\n".join([lines[0], "-+-".join("-" * w for w in widths)] + lines[1:])


DESCRIPTION = """\
Check the paper's results (Lemmas 8–10, Propositions 1–4, Theorems 4–6 with their constructions, the
teaching rate and its estimator) on random instances: exact gradient flows against each bound, with
its constants. Prints one table (instances tried, violations, the tightest ratio; ≤ 1 means the
bound holds) to stdout and progress to stderr; the exit status is 1 if any bound is violated."""

EPILOG = """\
examples:
  rmtheory verify                          the default scale
  rmtheory verify --scale quick            fewer instances per check (a smoke test)
  rmtheory verify --scale large --seed 3   more instances, another draw"""


def configure(parser) -> None:
    parser.description, parser.epilog = DESCRIPTION, EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--scale", choices=sorted(SCALES), default="default",
                        help="number of random instances per check (quick ~1 min, default a few minutes)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw")


def main(args) -> int:
    if args.seed < 0:
        from .cli import fail
        return fail("verify", f"--seed must be >= 0; got {args.seed}")
    print(f"rmtheory verify: scale={args.scale} seed={args.seed}", file=sys.stderr)
    rows = run_checks(args.scale, args.seed, progress=lambda s: print(s, file=sys.stderr, flush=True))
    print(format_table(rows))
    n_viol = sum(r.violations for r in rows)
    print(f"\n{len(rows)} results, {sum(r.tried for r in rows)} instances, {n_viol} violations "
          "(ratio <= 1 means the bound holds; bound/t for time lower bounds, t/bound for upper bounds)")
    return 1 if n_viol else 0
