"""``rmtheory evaluate``: a reward-model report card for any policy.

Reads rewards exported from any framework — a CSV, JSONL or Parquet table with columns ``prompt_id``,
``sample_id`` and one column per reward model (scores of K samples per prompt from *your* policy),
optionally a ground-truth column — and an optional table of off-policy chosen/rejected pairs (columns
``prompt_id``, ``M.chosen``, ``M.rejected`` per model M, optionally ``<ground-truth>.chosen/.rejected``).

For every reward source it reports, with bootstrap confidence intervals over prompts: the reward variance
under the policy after the paper's normalisation (Definition 2, Section 3.2), on-policy accuracy over all
sample pairs (Definition 1, ties included), off-policy accuracy, On&Off, Var&Acc, the ranking by each
measure, and the Proposition 3 lower bound on t_γ implied by the variance. Every metric comes from the
shared implementation :func:`rmtheory.rm_report` (the LM pipeline's evaluation stage uses the same one).
With per-sample gradient sketches (``sketches=``, ``--sketches``) it also reports the teaching rates rate_G
and rate_self, pooled over prompts, and their per-prompt parts rate_G_within and rate_self_within (``_rates.py``,
``docs/rate_estimator.md``).

Python API::

    from rmtheory.evaluate import evaluate
    report = evaluate("rewards.csv", off_policy="pairs.csv", bootstrap=1000, seed=0)
    print(report.format_table()); report.to_dict(); report.plot("rm_card.png")

``rewards`` may also be an in-memory table: a mapping column name → sequence (a dict, or e.g. a pandas
DataFrame). Missing scores are empty CSV cells, JSON ``null``/absent keys or Parquet nulls; NaN/inf are
errors. Malformed input raises :class:`InputError` (the CLI exits with status 2 and a one-line message).
The accepted formats, the number syntax and the id rule (``_input.normalise_id``) are listed in ``_input.py``,
``_csv.py`` and ``_tables.py`` and in docs/evaluate.md ("Accepted input"). Errors about a parameter name it
(``n_prompts``); the CLI names its flag (``--n-prompts``).

Layout: ``_input`` (the rules every reader shares) → ``_csv``, ``_tables`` (readers) → ``_prepare`` (options,
columns, rows, off-policy pairs) → ``_compute`` (metrics, bootstrap; ``_rates``: the teaching rates from gradient
sketches) → ``_report`` (results, table/JSON/CSV/plot); ``cli`` (the command line).
"""

from __future__ import annotations

import os
import time

from .._precision import require_x64
from ._compute import bootstrap as _bootstrap, evaluate_models
from ._prepare import (DEFAULT_GT, ID_COLUMNS, MAX_BOOTSTRAP, MAX_BOOTSTRAP_DRAWS, check_bootstrap_cost, check_options,
                       index_rows, load_off_policy, select_columns)
from ._report import MEASURE_LABELS, MEASURES, PLOT_FORMATS, PROP3_NOTE, ModelResult, Report, plot_path, rankings
from ._input import InputError
from ._rates import RATE_MEASURES, load_sketches
from ._tables import Source
from .cli import configure, main

__all__ = ["evaluate", "InputError", "Report", "ModelResult", "MEASURES", "MEASURE_LABELS", "PROP3_NOTE",
           "RATE_MEASURES",
           "DEFAULT_GT", "ID_COLUMNS", "MAX_BOOTSTRAP", "MAX_BOOTSTRAP_DRAWS", "PLOT_FORMATS", "plot_path",
           "configure", "main"]


def evaluate(rewards, *, off_policy=None, ground_truth: str | None = "auto", models=None,
             include_ground_truth: bool = True, normalisation: str = "global", bootstrap: int = 1000,
             seed: int = 0, ci: float = 0.95, gamma: float = 1.0, n_prompts: int | None = None,
             fmt: str | None = None, off_policy_fmt: str | None = None, sketches=None) -> Report:
    """Reward-model report card (see the module docstring).

    Args:
      rewards: path (CSV/TSV/JSONL/Parquet, optionally .gz for text) or mapping column -> values.
      off_policy: optional path or mapping of off-policy chosen/rejected pairs.
      ground_truth: name of the ground-truth column; ``"auto"`` uses ``ground_truth`` if present; ``None``
        means there is none (no on-policy accuracy).
      models: reward-model columns to evaluate (default: every other column).
      include_ground_truth: also report the ground-truth column as a reward source.
      normalisation: ``global`` (the paper's default) or ``prompt_variance`` (Table 9).
      bootstrap, seed, ci: percentile bootstrap over prompts (0 disables).
      gamma, n_prompts: Proposition 3 bound; |S| defaults to each model's number of evaluated prompts.
      sketches: optional path of an ``.npz`` (or a mapping) of per-sample gradient sketches ``prompt_id``,
        ``sample_id``, ``g`` [N, D] (format: ``evaluate/_rates.py``): adds rate_G and rate_self (pooled over
        prompts; not from a ``gram_factor`` file) and rate_G_within, rate_self_within (per prompt).

    Examples:
      A tiny CSV: two prompts, three samples each, two reward models and the ground truth:

      >>> import os, tempfile
      >>> from rmtheory import enable_x64
      >>> from rmtheory.evaluate import evaluate
      >>> enable_x64()
      >>> path = os.path.join(tempfile.mkdtemp(), "rewards.csv")
      >>> with open(path, "w") as f:
      ...     _ = f.write("prompt_id,sample_id,rm_a,rm_b,ground_truth\\n"
      ...                 "p0,0,0.9,0.1,1\\n" "p0,1,0.2,0.8,0\\n" "p0,2,0.5,0.4,0.5\\n"
      ...                 "p1,0,0.3,0.6,0\\n" "p1,1,0.7,0.5,1\\n" "p1,2,0.1,0.2,0.2\\n")
      >>> report = evaluate(path, bootstrap=0)
      >>> for m in report.models:
      ...     print(m.name, m.n_prompts, round(m.var, 4), round(m.acc_on, 4))
      rm_a 2 1.3684 0.8333
      rm_b 2 1.5 0.1667
      ground_truth 2 1.4791 1.0
      >>> report.rankings["acc_on"]     # the reward models; the ground truth is the reference, not ranked
      ['rm_a', 'rm_b']

      The same table can be passed in memory, as a mapping column -> values:

      >>> table = {"prompt_id": ["p0"] * 3 + ["p1"] * 3, "sample_id": [0, 1, 2] * 2,
      ...          "rm_a": [0.9, 0.2, 0.5, 0.3, 0.7, 0.1], "ground_truth": [1, 0, 0.5, 0, 1, 0.2]}
      >>> round(evaluate(table, bootstrap=0)["rm_a"].acc_on, 4)
      0.8333
    """
    require_x64("rmtheory.evaluate.evaluate")
    check_options(normalisation, bootstrap, seed, ci, gamma, n_prompts)
    warnings: list[str] = []
    clock = _Clock()
    source = Source(rewards, fmt)
    cols = select_columns(source, ground_truth, models, include_ground_truth, warnings)
    table = source.read(ID_COLUMNS, cols.numeric)
    clock.lap("read")
    rows = index_rows(table, cols.numeric, cols.gt, warnings)
    sk = load_sketches(sketches, table, rows) if sketches is not None else None
    off, extra_prompts = None, []
    if off_policy is not None:
        off, extra_prompts = load_off_policy(off_policy, cols.sources, cols.gt, off_policy_fmt, warnings,
                                             {p: i for i, p in enumerate(rows.prompt_names)})
    n_units = len(rows.prompt_names) + len(extra_prompts)
    check_bootstrap_cost(bootstrap, n_units)
    clock.lap("prepare")
    results, unit_cols = evaluate_models(table, cols, rows, off, normalisation, gamma, n_prompts, n_units, warnings,
                                         sk)
    clock.lap("metrics")
    if bootstrap > 0 and n_units >= 2:
        _bootstrap(results, unit_cols, n_units, bootstrap, seed, ci)
    clock.lap("bootstrap")
    k = rows.k_used
    if k.min() != k.max():
        warnings.append(f"prompts have unequal numbers of samples (K = {int(k.min())}..{int(k.max())}); "
                        "handled per prompt (grouped by K, one normalisation per model over all samples)")
    meta = {"source": table.source, "off_policy": (os.fspath(off_policy) if isinstance(off_policy, (str, os.PathLike))
                                                 else ("<table>" if off_policy is not None else None)),
            "n_rows": table.n, "n_prompts": int(k.size), "k_min": int(k.min()), "k_max": int(k.max()),
            "ground_truth": cols.gt, "normalisation": normalisation, "bootstrap": int(bootstrap), "seed": int(seed),
            "ci": float(ci), "gamma": float(gamma), "n_prompts_bound": n_prompts,
            "n_off_prompts_not_in_rewards": len(extra_prompts), "timings_s": clock.laps,
            "sketches": sk.meta if sk is not None else None}
    have = {r for m in results for r in m._rate_measures()}
    return Report(results, rankings(results, MEASURES + tuple(r for r in RATE_MEASURES if r in have)), warnings, meta)


class _Clock:
    """Wall time of each named step (meta["timings_s"])."""

    def __init__(self):
        self.laps, self._t = {}, time.perf_counter()

    def lap(self, name):
        t = time.perf_counter()
        self.laps[name], self._t = t - self._t, t
