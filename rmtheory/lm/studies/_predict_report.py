"""The prediction study's report (``rmtheory lm predict``, :mod:`rmtheory.lm.studies.predict`): its Markdown table
of correlations, paired differences and verdicts, and its predictor × outcome scatter figure."""

from __future__ import annotations

from . import common
from ..measure import fmt


def markdown(s: dict) -> str:
    def c(x):
        return "—" if x["r"] is None else f"{x['r']:+.3f} [{fmt(x['ci'][0], '{:+.2f}')}, {fmt(x['ci'][1], '{:+.2f}')}]"

    def d3(x, lo, hi):
        return f"{fmt(x, '{:+.3f}')} [{fmt(lo, '{:+.3f}')}, {fmt(hi, '{:+.3f}')}]"

    L = [f"# Which report-card column predicts the teacher? ({s['n_cells']} cells: {s['families']['grid']} grid, "
         f"{s['families']['paradox']} paradox, {s['families']['new']} new)", "",
         "Pre-registered in `paper_claims.md` §9. Predictors from `rmtheory evaluate --sketches` on each cell's "
         "exported initial-policy samples; outcomes: increases (GT in units of the policy's r_G std), mean over seeds; "
         f"Spearman [95 % bootstrap CI over cells]. SGD learning rate {s['sgd_lr']['lr']} (chosen on r_G alone).", ""]
    for o in ("sgd_1.test_gt", "adam_1.test_gt", "sgd_1.test_proxy", "adam_1.test_proxy", "adam_final.test_gt",
              "adam_1.pg_gt", "sgd_1.pg_gt"):
        rec = s["correlations"][o]
        L += [f"## {o}", "", "| predictor | Spearman | Pearson |", "|---|---|---|"]
        L += [f"| {p} | {c(v['spearman'])} | {c(v['pearson'])} |" for p, v in rec["predictors"].items()]
        for d in rec["paired"]:
            L.append(f"\nPaired: Spearman({d['a']}) − Spearman({d['b']}) = {d3(d['diff'], *d['ci'])}: "
                     f"{d['a']} {d['verdict']} {d['b']}.")
        L.append("")
    L += ["## Verdicts (the registered rules)", ""]
    for name, v in s["verdicts"].items():
        L.append(f"- {name}, `{v['outcome']}`: the rate is the better first-order predictor: "
                 f"{'**confirmed**' if v['rate_better_confirmed'] else '**not shown**'}; trust: {v['trust_note']}.")
    for k, f in s["fading_rate_G"].items():
        L.append(f"- Fading ({k} prompts, Adam): Spearman(rate_G, one epoch) − Spearman(rate_G, final) = "
                 f"{d3(f['diff'], *f['ci'])}: "
                 f"{'fades' if f['verdict'] == 'beats' else 'does not fade measurably'}.")
    return "\n".join(L) + "\n"


def plot(path, rows, corr, predictors):
    common.scatter_grid(path, rows, ("sgd_1.test_gt", "adam_1.test_gt"), predictors,
                        lambda o, p: corr[o]["predictors"][p]["spearman"]["r"], "family",
                        (("grid", "o"), ("paradox", "^"), ("new", "s")), lambda o: o, cell=(2.4, 2.5), marker_size=10,
                        font=7, xlabels=False)
