"""Preparing an evaluation: options, which columns are reward models, rows and prompts (duplicates, missing
ground truth), the off-policy pairs, and the cost of the bootstrap. Every check here runs before the work."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._rm_eval import SCHEMES
from ._input import InputError, require_columns
from ._tables import Source

DEFAULT_GT = "ground_truth"
ID_COLUMNS = ("prompt_id", "sample_id")
MAX_BOOTSTRAP = 100_000   # resamples; the statistics of every resample are kept for the percentiles
MAX_BOOTSTRAP_DRAWS = 10**10   # resamples × prompts (the cost of the bootstrap), about 2 minutes on one core


def _factorise(values):
    """Dense integer codes in order of first appearance, and the distinct values (C-speed: each value's
    code is first the row of its first occurrence, then densified)."""
    d = {}
    first = np.fromiter(map(d.setdefault, values, range(len(values))), np.int64, len(values))
    uniq_rows, codes = np.unique(first, return_inverse=True)
    return codes.reshape(-1).astype(np.int64), [values[i] for i in uniq_rows]


def examples(names, k=3):
    """The first ``k`` of ``names`` for a message: "'a', 'b', 'c', …"."""
    names = list(names)
    s = ", ".join(repr(x) for x in names[:k])
    return s + (", …" if len(names) > k else "")


def _is_int(x):
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _is_real(x):
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


def check_options(normalisation, bootstrap, seed, ci, gamma, n_prompts):
    """Errors name the Python parameter (InputError.param); the CLI names its flag instead."""
    def bad(param, rule, value):
        raise InputError(lambda name: f"{name} must be {rule}; got {value!r}", param)

    if normalisation not in SCHEMES:
        bad("normalisation", f"one of {', '.join(SCHEMES)}", normalisation)
    if not _is_int(bootstrap) or not 0 <= bootstrap <= MAX_BOOTSTRAP:
        bad("bootstrap", f"an integer in [0, {MAX_BOOTSTRAP}] (resamples)", bootstrap)
    if not _is_int(seed) or seed < 0:
        bad("seed", "an integer >= 0", seed)
    if not _is_real(ci) or not 0 < ci < 1:
        bad("ci", "in (0, 1)", ci)
    if not _is_real(gamma) or not (math.isfinite(gamma) and gamma > 0):
        bad("gamma", "a finite number > 0", gamma)
    if n_prompts is not None and (not _is_int(n_prompts) or n_prompts <= 0):
        bad("n_prompts", "an integer > 0", n_prompts)


def check_bootstrap_cost(bootstrap, n_units):
    """Refuse, before the work, a bootstrap of more than MAX_BOOTSTRAP_DRAWS resamples × prompts."""
    if bootstrap * n_units > MAX_BOOTSTRAP_DRAWS:
        raise InputError(lambda name: f"{name} {bootstrap} over {n_units} prompts is {bootstrap * n_units:.3g} draws, "
                         f"above the limit of {MAX_BOOTSTRAP_DRAWS:.0e} (minutes of work); use {name} "
                         f"{MAX_BOOTSTRAP_DRAWS // n_units} or fewer", "bootstrap")


@dataclass
class Columns:
    gt: str | None          # the ground-truth column
    models: list            # reward-model columns
    sources: list           # reward sources to report (models, then the ground truth if reported)
    numeric: list           # score columns to read


def select_columns(source: Source, ground_truth, models, include_ground_truth, warnings) -> Columns:
    columns, src = source.columns, source.name
    require_columns(src, columns, ID_COLUMNS)
    dupcols = sorted({c for c in columns if columns.count(c) > 1})
    if dupcols:
        raise InputError(f"{src}: duplicated column(s) {', '.join(dupcols)} in the header")
    others = [c for c in columns if c not in ID_COLUMNS]
    if ground_truth == "auto":
        gt = DEFAULT_GT if DEFAULT_GT in others else None
    elif ground_truth is None or ground_truth == "":
        gt = None
    else:
        if ground_truth not in others:
            raise InputError(f"{src}: unknown ground-truth column '{ground_truth}' "
                             f"(score columns: {', '.join(others)})")
        gt = ground_truth
    if models is None:
        model_names = [c for c in others if c != gt]
    else:
        model_names = list(dict.fromkeys(models))
        unknown = [m for m in model_names if m not in others]
        if unknown:
            raise InputError(f"{src}: unknown model name(s) {', '.join(map(repr, unknown))} "
                             f"(score columns: {', '.join(others)})")
        model_names = [m for m in model_names if m != gt]
        ignored = [c for c in others if c not in model_names and c != gt]
        if ignored:
            warnings.append(f"columns not evaluated (not in --models): {', '.join(ignored)}")
    sources = model_names + ([gt] if gt is not None and include_ground_truth else [])
    if not sources:
        raise InputError(f"{src}: no reward-model columns to evaluate (columns: {', '.join(columns)})")
    if gt is None:
        warnings.append("no ground-truth column: on-policy accuracy, On&Off and Var&Acc are not computed "
                        f"(name one with --ground-truth; default '{DEFAULT_GT}')")
    return Columns(gt, model_names, sources, model_names + ([gt] if gt is not None else []))


@dataclass
class Rows:
    pcode: np.ndarray         # [rows] prompt code of each row
    prompt_names: list        # prompt id of each code
    keep: np.ndarray          # [rows] not a duplicate of an earlier (prompt_id, sample_id)
    counts: np.ndarray        # [prompts] kept rows per prompt
    gt_present: np.ndarray    # [rows] ground truth present (all True without one)

    @property
    def k_used(self):
        return self.counts[self.counts >= 2]


def index_rows(table, numeric, gt, warnings) -> Rows:
    """Prompts, duplicated rows, prompts with < 2 samples and rows without ground truth (with warnings)."""
    pcode, prompt_names = _factorise(table.ids["prompt_id"])
    scode, _ = _factorise(table.ids["sample_id"])
    n_p = len(prompt_names)
    key = pcode * (int(scode.max()) + 1) + scode
    order = np.argsort(key, kind="stable")
    ks = key[order]
    dup_sorted = np.concatenate([[False], ks[1:] == ks[:-1]])
    keep = np.ones(table.n, bool)
    if dup_sorted.any():
        dup_rows = np.sort(order[dup_sorted])
        keep[dup_rows] = False
        first_of = order[np.searchsorted(ks, key[dup_rows])]  # first occurrence of each duplicate's key
        differ = np.zeros(dup_rows.size, bool)
        for c in numeric:
            a, b = table.values[c][dup_rows], table.values[c][first_of]
            differ |= ~((a == b) | (np.isnan(a) & np.isnan(b)))
        r0 = int(dup_rows[0])
        warnings.append(
            f"{dup_rows.size} duplicated (prompt_id, sample_id) row(s), e.g. row {r0 + 1} "
            f"(prompt {table.ids['prompt_id'][r0]!r}, sample {table.ids['sample_id'][r0]!r}) repeats row "
            f"{int(first_of[0]) + 1}; kept the first occurrence, skipped {dup_rows.size} row(s)"
            + (f"; {int(differ.sum())} of them have different scores" if differ.any() else ""))
    counts_all = np.bincount(pcode[keep], minlength=n_p)
    few = np.flatnonzero(counts_all < 2)
    if few.size:
        warnings.append(f"{few.size} prompt(s) have fewer than 2 samples ({examples(prompt_names[i] for i in few)}); "
                        "skipped (no variance or pairs without 2 samples)")
    if not (counts_all >= 2).any():
        raise InputError(f"{table.source}: no prompt has 2 or more samples; nothing to evaluate")
    gt_present = ~np.isnan(table.values[gt]) if gt is not None else np.ones(table.n, bool)
    if gt is not None and not gt_present[keep].all():
        miss = np.flatnonzero(~gt_present & keep)
        warnings.append(f"ground truth '{gt}' missing on {miss.size} row(s) (first: row {int(miss[0]) + 1}); "
                        "those rows are skipped for every model")
    return Rows(pcode, prompt_names, keep, counts_all, gt_present)


def load_off_policy(source, sources, gt, fmt, warnings, prompt_index):
    """Off-policy pairs per model: {model: (chosen, rejected, gt_chosen, gt_rejected, prompt codes)}, and
    the prompts of the pairs file that are not in the rewards table (coded after them)."""
    source = Source(source, fmt)
    cols, osrc = source.columns, source.name
    require_columns(osrc, cols, ("prompt_id",))
    for c in cols:
        if c != "prompt_id" and not (c.endswith(".chosen") or c.endswith(".rejected")):
            raise InputError(f"{osrc}: unexpected column '{c}' "
                             "(expected prompt_id and <model>.chosen, <model>.rejected)")
    bases = list(dict.fromkeys(c.rsplit(".", 1)[0] for c in cols if c != "prompt_id"))
    for b in bases:
        for side in ("chosen", "rejected"):
            if f"{b}.{side}" not in cols:
                raise InputError(f"{osrc}: column '{b}.{side}' is missing (its pair column is present)")
    unknown = [b for b in bases if b not in sources and b != gt]
    if unknown:
        warnings.append(f"off-policy file: column(s) for {', '.join(map(repr, unknown))} ignored "
                        "(not a model being evaluated)")
    used = [b for b in bases if b in sources or b == gt]
    numeric = [f"{b}.{s}" for b in used for s in ("chosen", "rejected")]
    t = source.read(("prompt_id",), numeric)
    absent = [m for m in sources if m not in used and m != gt]
    if absent:
        warnings.append(f"off-policy file has no columns for {', '.join(map(repr, absent))}: "
                        "off-policy accuracy not computed for them")
    extra = []
    codes = np.empty(t.n, np.int64)
    n_p = len(prompt_index)
    extra_index = {}
    for i, p in enumerate(t.ids["prompt_id"]):
        c = prompt_index.get(p)
        if c is None:
            c = extra_index.get(p)
            if c is None:
                c = extra_index[p] = n_p + len(extra)
                extra.append(p)
        codes[i] = c
    if extra:
        warnings.append(f"off-policy file: {len(extra)} prompt(s) not in the rewards file ({examples(extra)}); "
                        "their pairs still count towards off-policy accuracy")
    gt_c = gt_r = None
    if gt is not None and gt in used:
        gt_c, gt_r = t.values[f"{gt}.chosen"], t.values[f"{gt}.rejected"]
        gmiss = np.isnan(gt_c) | np.isnan(gt_r)
        if gmiss.any():
            warnings.append(f"off-policy file: ground truth missing on {int(gmiss.sum())} pair(s) "
                            f"(first: row {int(np.flatnonzero(gmiss)[0]) + 1}); skipped for every model")
    else:
        gmiss = np.zeros(t.n, bool)
        warnings.append("off-policy file has no ground-truth columns: "
                        "the chosen response is taken as strictly preferred")
    per_model = {}
    for m in used:
        c, r = t.values[f"{m}.chosen"], t.values[f"{m}.rejected"]
        ok = ~(np.isnan(c) | np.isnan(r)) & ~gmiss
        if not ok[~gmiss].all():
            bad = np.flatnonzero(~ok & ~gmiss)
            warnings.append(f"off-policy file: model '{m}' missing on {bad.size} pair(s) "
                            f"(first: row {int(bad[0]) + 1}); "
                            "skipped for this model")
        per_model[m] = (c[ok], r[ok], None if gt_c is None else gt_c[ok], None if gt_r is None else gt_r[ok], codes[ok])
    if gt is not None and gt not in sources:
        per_model.pop(gt, None)
    return per_model, extra
