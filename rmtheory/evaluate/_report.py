"""Results of ``rmtheory evaluate``: one :class:`ModelResult` per reward source, the :class:`Report` and its
table, JSON, CSV and plot."""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from io import StringIO

from .. import io
from ._input import InputError
from ._rates import NO_RATE_NOTE, POOLED_MEASURES, RATE_LABELS, RATE_MEASURES, RATE_NOTE

MEASURES = ("var", "acc_on", "acc_off", "on_off", "var_acc")
MEASURE_LABELS = {"var": "Var", "acc_on": "acc_on", "acc_off": "acc_off", "on_off": "On&Off", "var_acc": "Var&Acc"}
PROP3_NOTE = ("t_gamma_lower_bound: Proposition 3 lower bound 2|S|(1-exp(-gamma/2))/sqrt(Var) on the time to a "
              "gamma-increase, in units of the paper's gradient flow; it assumes a tabular policy and rewards in "
              "the normalised scale (the theorem's constants assume rewards in [-1, 1]); |S| = n_prompts.")


@dataclass
class ModelResult:
    name: str
    is_ground_truth: bool
    n_prompts: int          # prompts with >= 2 usable samples
    n_samples: int          # usable rows
    n_off_pairs: int
    mean: float             # normalisation shift μ
    std: float              # normalisation scale σ
    var: float
    acc_on: float
    acc_off: float
    on_off: float
    var_acc: float
    t_gamma_lower_bound: float
    ci: dict = field(default_factory=dict)            # measure -> (lo, hi)
    n_zero_variance_prompts: int = 0
    has_rates: bool = False  # computed from gradient sketches (evaluate/_rates.py); else the rates are absent
    has_pooled: bool = False  # the pooled rates (not from a gram_factor file); else rate_g, rate_self are absent
    rate_g: float = math.nan
    rate_self: float = math.nan
    rate_g_within: float = math.nan
    rate_self_within: float = math.nan

    def _rate_measures(self):
        if not self.has_rates:
            return ()
        return RATE_MEASURES if self.has_pooled else tuple(m for m in RATE_MEASURES if m not in POOLED_MEASURES)

    def as_dict(self):
        d = {k: getattr(self, k) for k in ("name", "is_ground_truth", "n_prompts", "n_samples", "n_off_pairs",
                                            "mean", "std", *MEASURES, "t_gamma_lower_bound",
                                            "n_zero_variance_prompts") + self._rate_measures()}
        d["ci"] = {k: [lo, hi] for k, (lo, hi) in self.ci.items()}
        return io.to_jsonable(d)   # strict JSON: non-finite -> None (the reason is in the warnings)


@dataclass
class Report:
    models: list
    rankings: dict          # measure -> [model names, best first] (models with NaN left out)
    warnings: list
    meta: dict

    def __getitem__(self, name) -> ModelResult:
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(name)

    @property
    def measures(self):
        """The reported measures: MEASURES, and the rates when sketches were given."""
        have = {r for m in self.models for r in m._rate_measures()}
        return MEASURES + tuple(r for r in RATE_MEASURES if r in have)

    @property
    def rate_note(self):
        return RATE_NOTE if len(self.measures) > len(MEASURES) else NO_RATE_NOTE

    @property
    def ranks(self) -> dict:
        """measure -> {reward model: rank} (1 = best; ties share a rank; the ground truth is not ranked)."""
        return ranks(self.models, self.measures)

    def to_dict(self):
        return {"models": [m.as_dict() for m in self.models], "rankings": self.rankings, "ranks": self.ranks,
                "warnings": list(self.warnings), "meta": io.to_jsonable(dict(self.meta)), "note": PROP3_NOTE,
                "rate_note": self.rate_note}

    def to_json(self, indent=None, sort_keys: bool = False) -> str:
        """Strict JSON (non-finite numbers are null; see :mod:`rmtheory.io`)."""
        return io.dumps(self.to_dict(), indent=indent, sort_keys=sort_keys)

    def to_csv(self) -> str:
        buf = StringIO()
        w = csv.writer(buf, lineterminator="\n")
        cols = ["model", "is_ground_truth", "n_prompts", "n_samples", "n_off_pairs", "norm_mean", "norm_std"]
        for m in self.measures:
            cols += [m, f"{m}_lo", f"{m}_hi", f"{m}_rank"]
        cols += ["t_gamma_lower_bound"]
        w.writerow(cols)
        ranks = self.ranks
        for r in self.models:
            row = [r.name, int(r.is_ground_truth), r.n_prompts, r.n_samples, r.n_off_pairs, _f(r.mean), _f(r.std)]
            for m in self.measures:
                lo, hi = r.ci.get(m, (math.nan, math.nan))
                row += [_f(getattr(r, m)), _f(lo), _f(hi), ranks.get(m, {}).get(r.name, "")]
            row += [_f(r.t_gamma_lower_bound)]
            w.writerow(row)
        return buf.getvalue()

    def format_table(self) -> str:
        meta = self.meta
        lines = [f"Reward-model report card: {meta['source']} ({meta['n_rows']} rows, {meta['n_prompts']} prompts, "
                 f"K={meta['k_min']}" + (f"..{meta['k_max']}" if meta['k_max'] != meta['k_min'] else "")
                 + f"; normalisation={meta['normalisation']})"]
        if meta["bootstrap"] > 0:
            lines.append(f"[lo, hi]: {100 * meta['ci']:g}% percentile bootstrap over prompts "
                         f"({meta['bootstrap']} resamples, seed {meta['seed']})")
        labels = {**MEASURE_LABELS, **RATE_LABELS}
        head = ["model", "prompts"] + [labels[m] for m in self.measures] + [f"t_γ ≥ (γ={meta['gamma']:g})"]
        rows = []
        for r in self.models:
            cells = [r.name + (" (GT)" if r.is_ground_truth else ""), str(r.n_prompts)]
            for m in self.measures:
                v = getattr(r, m)
                f3 = ".3g" if m in RATE_MEASURES else ".3f"   # rates: any magnitude
                cell = "—" if math.isnan(v) else _printed(v, m)
                if m in r.ci and not math.isnan(v):
                    lo, hi = r.ci[m]
                    cell += f" [{lo:{f3}}, {hi:{f3}}]" if not (math.isnan(lo) or math.isnan(hi)) else ""
                cells.append(cell)
            cells.append(f"{r.t_gamma_lower_bound:.4g}")
            rows.append(cells)
        widths = [max(len(h), *(len(c[i]) for c in rows)) for i, h in enumerate(head)]

        def fmt(cs):
            return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cs, widths)))

        lines += ["", fmt(head), fmt(["-" * w for w in widths])] + [fmt(c) for c in rows]
        lines += ["", "Ranking of the reward models (best first; '=': equal at the precision shown"
                  + ("; the ground truth is the reference, not ranked" if any(r.is_ground_truth for r in self.models)
                     else "") + "):"]
        gt = next((r for r in self.models if r.is_ground_truth), None)
        for m in self.measures:
            groups = _tie_groups(self.models, m)
            if groups:
                ref = "" if gt is None or math.isnan(getattr(gt, m)) else \
                    f"   (reference {gt.name}: {_printed(getattr(gt, m), m)})"
                lines.append(f"  {labels[m]:8s} " + " > ".join(" = ".join(g) for g in groups) + ref)
        lines += ["", "Note: " + PROP3_NOTE.replace("t_gamma_lower_bound", "t_γ ≥")
                  + f" Here |S| = {meta['n_prompts_bound'] or 'the number of evaluated prompts of each model'}.",
                  "Note: " + self.rate_note]
        return "\n".join(lines)

    def plot(self, path, accuracy: str = "acc_on") -> str:
        """Scatter of reward variance against accuracy, one labelled point per reward model. A path without
        an extension gets ``.png``; returns the path written."""
        path = plot_path(path)
        plt = io.pyplot()
        pts = [r for r in self.models if not (math.isnan(r.var) or math.isnan(getattr(r, accuracy)))]
        if not pts and accuracy == "acc_on":
            accuracy = "acc_off"
            pts = [r for r in self.models if not (math.isnan(r.var) or math.isnan(r.acc_off))]
        fig, ax = plt.subplots(figsize=(6, 4.5), constrained_layout=True)
        for r in pts:
            x, y = r.var, getattr(r, accuracy)
            xerr = yerr = None
            if "var" in r.ci and not any(map(math.isnan, r.ci["var"])):
                xerr = [[max(x - r.ci["var"][0], 0)], [max(r.ci["var"][1] - x, 0)]]
            if accuracy in r.ci and not any(map(math.isnan, r.ci[accuracy])):
                yerr = [[max(y - r.ci[accuracy][0], 0)], [max(r.ci[accuracy][1] - y, 0)]]
            ax.errorbar([x], [y], xerr=xerr, yerr=yerr, fmt="*" if r.is_ground_truth else "o", capsize=3)
            ax.annotate(r.name, (x, y), textcoords="offset points", xytext=(5, 5), fontsize=9)
        label = {"acc_on": "on-policy accuracy", "acc_off": "off-policy accuracy", "on_off": "On&Off accuracy"}
        ax.set_xlabel(f"reward variance under the policy (normalisation: {self.meta['normalisation']})")
        ax.set_ylabel(label.get(accuracy, accuracy))
        ax.set_title("Reward models: variance vs accuracy")
        ax.grid(alpha=0.3)
        try:
            io.save_figure(fig, path, dpi=150)
        finally:
            plt.close(fig)
        return path


PLOT_FORMATS = ("png", "pdf", "svg")


def plot_path(path) -> str:
    """The path a plot is written to (``.png`` added when there is no extension), checked before any work:
    a known extension and an existing, writable directory. Raises InputError."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    if not ext:
        path, ext = path + ".png", "png"
    if ext not in PLOT_FORMATS:
        raise InputError(lambda name: f"{name} {path}: unknown extension '.{ext}' "
                         f"(use {', '.join('.' + f for f in PLOT_FORMATS)})", "plot")
    try:
        io.check_writable(path)
    except ValueError as e:
        why = str(e)
        raise InputError(lambda name: f"{name} {why}", "plot") from None
    return path


def _f(v):
    return "" if isinstance(v, float) and math.isnan(v) else repr(float(v))


def _printed(v: float, m: str) -> str:
    """A measure as the table prints it: 4 decimals, the rates (any magnitude) 4 significant digits."""
    return f"{v:.4g}" if m in RATE_MEASURES else f"{v:.4f}"


def _tie_groups(results, m) -> list:
    """The reward models (not the ground truth, which is the reference) with a value of measure ``m``, in groups
    of equal printed value, best group first (input order within a group)."""
    groups = {}
    for r in results:
        v = getattr(r, m)
        if not r.is_ground_truth and not math.isnan(v):
            groups.setdefault(float(_printed(v, m)), []).append(r.name)
    return [groups[k] for k in sorted(groups, reverse=True)]


def rankings(results, measures=MEASURES) -> dict:
    """measure -> reward-model names, best first; models equal at the printed precision keep their input order
    (see :func:`ranks`); the ground truth and models without a value are left out."""
    return {m: [n for g in _tie_groups(results, m) for n in g] for m in measures}


def ranks(results, measures=MEASURES) -> dict:
    """measure -> {reward model: rank}, 1 = best, with ties at the printed precision (4 decimals; the rates 4
    significant digits) sharing a rank (1, 1, 3); the ground truth is the reference and is not ranked."""
    out = {}
    for m in measures:
        out[m], k = {}, 1
        for g in _tie_groups(results, m):
            out[m].update({n: k for n in g})
            k += len(g)
    return out
