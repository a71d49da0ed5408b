"""The confirmatory study's statistics, rules and report (``paper_claims.md`` §10; :mod:`.confirm` runs it).

Two primary statistics for each predictor and outcome: the Spearman over all cells with a percentile bootstrap
over cells (:func:`rmtheory._stats.corr_with_ci`, paired differences :func:`rmtheory._stats.paired_spearman_diff`),
and the mean over initial policies of the Spearman over each policy's reward models, with a bootstrap that
resamples the reward models within each policy (:func:`rmtheory._stats.within_group_spearman`, paired
differences :func:`rmtheory._stats.paired_within_group_diff`); 10,000 resamples, seed 0, for both.
"""

from __future__ import annotations

import numpy as np

from ..._stats import (
    corr_with_ci,
    paired_spearman_diff,
    paired_within_group_diff,
    pearson,
    spearman,
    within_group_spearman,
)
from ..measure import fmt
from . import common

ACCURACY = ("Var", "On", "Off", "On&Off", "Var&Acc")
RATES = ("rate_G", "rate_adam", "rate_sign", "rate_G_within")
PREDICTORS = ACCURACY + RATES
EXTRA = ("rate_self", "rate_adam_self", "rate_G_countsketch")   # reported beside, no verdict
PRIMARY = {"P1": "sgd_1.test_gt", "P2": "adam_1.test_gt"}
SECONDARY = {"S1": "sgd_short.test_gt", "S2": "adam_short.test_gt"}
PROXY = {f"proxy {k}": v.replace("_gt", "_proxy") for k, v in {**PRIMARY, **SECONDARY}.items()}
OUTCOMES = {**PRIMARY, **SECONDARY, **PROXY}
LEAD = {"P1": "rate_G", "P2": "rate_adam", "S1": "rate_G", "S2": "rate_adam"}   # R1 / R2's rate per outcome
TRUST = ("rate_G", "rate_adam", "On", "Off", "On&Off", "Var&Acc")
STATS = ("over_cells", "within_policy")


def outcome_names() -> list:
    return list(OUTCOMES.values())


def predictor_values(row: dict, rates: dict) -> dict:
    """The predictors of one cell: the accuracy columns from its ``rmtheory evaluate --json`` row, the rates from
    its ``<policy>_rates.json`` source entry (and, extra, the pooled rate evaluate estimates from the count
    sketches)."""
    return {"Var": row["var"], "On": row["acc_on"], "Off": row["acc_off"], "On&Off": row["on_off"],
            "Var&Acc": row["var_acc"], "rate_G": rates["rate_g"], "rate_adam": rates["rate_adam"],
            "rate_sign": rates["rate_sign"], "rate_G_within": rates["rate_g_within"], "rate_self": rates["rate_self"],
            "rate_adam_self": rates["rate_adam_self"], "rate_G_countsketch": row.get("rate_g")}


def comparisons(label: str) -> list:
    """The registered (A, B) comparisons of outcome ``label`` (P1, P2; S1, S2 the same, secondary)."""
    lead = LEAD[label]
    return [(lead, b) for b in ("On", "Off", "On&Off", "Var&Acc")] + [(a, "rate_G_within") for a in RATES[:3]]


def _col(rows, k) -> np.ndarray:
    return np.array([np.nan if r[k] is None else r[k] for r in rows], np.float64)


def _compare(rows, groups, a, b, y, n_boot) -> dict:
    return {"over_cells": paired_spearman_diff(_col(rows, a), _col(rows, b), y, n_boot, 0),
            "within_policy": paired_within_group_diff(_col(rows, a), _col(rows, b), y, groups, n_boot, 0)}


def rule(comps: dict, lead: str) -> str:
    """R1/R2: ``lead`` against On, Off, On&Off, Var&Acc under both statistics: "confirmed" if it beats each under
    both, "reversed" if it loses to any, "partly" if it beats at least one and loses to none, else "not shown"."""
    v = [comps[f"{lead} - {b}"][s]["verdict"] for b in ("On", "Off", "On&Off", "Var&Acc") for s in STATS]
    if all(x == "beats" for x in v):
        return "confirmed"
    if any(x == "loses" for x in v):
        return "reversed"
    return "partly" if any(x == "beats" for x in v) else "not shown"


def column_to_trust(within: dict, pairs: dict) -> dict:
    """The registered column-to-trust rule on one outcome's within-policy statistic: the largest mean Spearman
    among :data:`TRUST` that no other of them beats; when it is a rate and an accuracy column is not
    distinguishable from it, the best such accuracy column is named sufficient."""
    beaten = {b for (a, b), d in pairs.items() if d["verdict"] == "beats"}
    beaten |= {a for (a, b), d in pairs.items() if d["verdict"] == "loses"}
    cands = [c for c in TRUST if c not in beaten and within[c]["r"] is not None]
    if not cands:
        return {"column": None, "sufficient": None, "unbeaten": []}
    best = max(cands, key=lambda c: within[c]["r"])
    sufficient = None
    if best.startswith("rate"):
        same = [c for c in TRUST if not c.startswith("rate") and within[c]["r"] is not None
                and pairs.get((best, c), pairs.get((c, best)))["verdict"] == "not distinguishable"]
        sufficient = max(same, key=lambda c: within[c]["r"]) if same else None
    return {"column": best, "sufficient": sufficient, "unbeaten": cands}


def analyze(rows: list, groups: list, n_boot: int) -> dict:
    """Every outcome's correlations (both statistics, Pearson beside), the registered comparisons, the rules."""
    out = {"n_cells": len(rows), "n_policies": len(groups), "n_boot": n_boot, "outcomes": {}}
    for label, o in OUTCOMES.items():
        y = _col(rows, o)
        rec = {"outcome": o, "predictors": {}, "comparisons": {}}
        for p in PREDICTORS + EXTRA:
            x = _col(rows, p)
            if not np.all(np.isfinite(x)):
                continue
            rec["predictors"][p] = {"over_cells": corr_with_ci(spearman, x, y, n_boot, 0),
                                    "pearson": corr_with_ci(pearson, x, y, n_boot, 0),
                                    "within_policy": within_group_spearman(x, y, groups, n_boot, 0)}
        if label in LEAD:
            for a, b in comparisons(label):
                rec["comparisons"][f"{a} - {b}"] = _compare(rows, groups, a, b, y, n_boot)
        out["outcomes"][label] = rec
    ver = {}
    for label in LEAD:
        rec = out["outcomes"][label]
        r3 = {k: {s: v[s]["verdict"] for s in STATS} for k, v in rec["comparisons"].items()
              if k.endswith("rate_G_within")}
        ver[label] = {"rule": rule(rec["comparisons"], LEAD[label]), "lead": LEAD[label], "R3": r3}
        if label in ("P2", "S2"):
            y = _col(rows, rec["outcome"])
            done = {k: c["within_policy"] for k, c in rec["comparisons"].items()}  # the registered ones, reused
            pairs = {(a, b): done.get(f"{a} - {b}") or paired_within_group_diff(_col(rows, a), _col(rows, b), y,
                                                                                groups, n_boot, 0)
                     for i, a in enumerate(TRUST) for b in TRUST[i + 1:]}
            within = {c: rec["predictors"][c]["within_policy"] for c in TRUST}
            ver[label]["trust"] = column_to_trust(within, pairs)
            ver[label]["trust_pairs"] = [{"a": a, "b": b, **d} for (a, b), d in pairs.items()]
    out["verdicts"] = ver
    return out


def _ci(c, key="r") -> str:
    v = c.get(key)
    if v is None or c["ci"][0] is None:
        return "—"
    return f"{v:+.3f} [{c['ci'][0]:+.2f}, {c['ci'][1]:+.2f}]"


def markdown(res: dict) -> str:
    lines = ["# Confirmatory study: the pooled and Adam-geometry teaching rates against accuracy", "",
             f"{res['n_cells']} cells ({res['n_policies']} initial policies × their reward models); outcomes are "
             f"means over RL seeds of the raw r_G (or proxy) gain on the held-out test prompts; {res['n_boot']} "
             "bootstrap resamples, seed 0.", ""]
    for label, rec in res["outcomes"].items():
        lines += [f"## {label}: `{rec['outcome']}`", "",
                  "| predictor | Spearman over cells [95 % CI] | within-policy mean Spearman [95 % CI] | Pearson |",
                  "|---|---|---|---|"]
        for p, c in rec["predictors"].items():
            r = fmt(c["pearson"]["r"], "{:+.3f}")
            lines.append(f"| {p} | {_ci(c['over_cells'])} | {_ci(c['within_policy'])} | {r} |")
        if rec["comparisons"]:
            lines += ["", "| comparison | over cells [95 % paired CI] | within policy [95 % paired CI] |",
                      "|---|---|---|"]
            for k, c in rec["comparisons"].items():
                lines.append(f"| {k} | {_ci(c['over_cells'], 'diff')} {c['over_cells']['verdict']} | "
                             f"{_ci(c['within_policy'], 'diff')} {c['within_policy']['verdict']} |")
        lines.append("")
    lines += ["## Verdicts by the registered rules", ""]
    for label, v in res["verdicts"].items():
        if label in PRIMARY:
            lines.append(f"- **{label}** (primary): {v['lead']} against On, Off, On&Off, Var&Acc: **{v['rule']}**.")
        else:
            lines.append(f"- {label} (secondary, no verdict): {v['lead']} against On, Off, On&Off, Var&Acc would "
                         f"read {v['rule']} by the same rule.")
        lines.append("  - against rate_G_within: " + "; ".join(
            f"{k.split(' - ')[0]} {d['over_cells']} over cells, {d['within_policy']} within policy"
            for k, d in v["R3"].items()))
        if "trust" in v:
            t = v["trust"]
            extra = (f", with **{t['sufficient']}** sufficient (not distinguishable, no gradients)"
                     if t["sufficient"] else "")
            lines.append(f"  - column to trust (within-policy): **{t['column']}**{extra}; unbeaten: "
                         f"{', '.join(t['unbeaten'])}")
    return "\n".join(lines) + "\n"


MARKERS = ("o", "s", "^", "v", "D", "P", "X", "*")


def plot(path: str, rows: list, res: dict, policies) -> None:
    """Predictor × outcome scatter plots of the cells (P1, P2, S1, S2), marked by initial policy."""
    labels = [*PRIMARY, *SECONDARY]
    preds = ("rate_G", "rate_adam", "rate_sign", "rate_G_within", "On", "Off", "On&Off", "Var&Acc")

    def rho(o, p):
        lab = next(k for k in labels if OUTCOMES[k] == o)
        return res["outcomes"][lab]["predictors"][p]["over_cells"]["r"]

    common.scatter_grid(path, rows, [OUTCOMES[k] for k in labels], preds, rho, "policy",
                        list(zip(policies, MARKERS)), lambda o: next(k for k in labels if OUTCOMES[k] == o),
                        cell=(2.2, 2.2), marker_size=10, font=7)
