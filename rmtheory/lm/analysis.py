"""Stage 7: the analogues of the paper's Table 1 (RM properties), Table 2 (correlations with the
one-epoch increase), Figure 2 (increase vs epoch) and Figure 4 (increase vs KL)."""

from __future__ import annotations

import os

import numpy as np

import rmtheory

from .. import io
from .config import SOURCES

CORR_SOURCES = SOURCES[:6]  # the 6 non-ground-truth sources (theory.md 3.6)
MEASURES = ("Var", "On", "Off", "On&Off", "Var&Acc", "(Var+On)/2")
LABELS = {"rm_100": "RM 100%", "rm_75": "RM 75%", "rm_50": "RM 50%", "rm_25": "RM 25%", "rm_0": "RM 0%",
          "perfect_lowvar": "Perfect acc., low var.", "ground_truth": "Ground truth"}


def measures(var, on, off):
    """The RM measures of theory.md 3.6: On&Off = (on+off)/2, Var&Acc = (Var + On&Off)/2 (plain means)."""
    on_off = 0.5 * (on + off)
    return {"Var": var, "On": on, "Off": off, "On&Off": on_off, "Var&Acc": 0.5 * (var + on_off),
            "(Var+On)/2": 0.5 * (var + on)}


def correlation_table(rm_metrics: dict, proxy_increase: dict, gt_increase: dict, sources=CORR_SOURCES):
    """Pearson and Spearman correlations of each RM measure with the one-epoch increases.

    Args:
      rm_metrics: source -> {"var", "acc_on", "acc_off"}.
      proxy_increase, gt_increase: source -> one-epoch increase (mean over seeds).
    Returns: measure -> {"proxy_pearson", "proxy_spearman", "gt_pearson", "gt_spearman"}.
    """
    missing = [s for s in sources if s not in rm_metrics or s not in proxy_increase or s not in gt_increase]
    if missing:
        raise ValueError(f"rm_metrics / proxy_increase / gt_increase lack sources {missing}")
    var = np.array([rm_metrics[s]["var"] for s in sources], np.float64)
    on = np.array([rm_metrics[s]["acc_on"] for s in sources], np.float64)
    off = np.array([rm_metrics[s]["acc_off"] for s in sources], np.float64)
    px = np.array([proxy_increase[s] for s in sources], np.float64)
    gt = np.array([gt_increase[s] for s in sources], np.float64)
    table = {}
    for name, m in measures(var, on, off).items():
        table[name] = {"proxy_pearson": rmtheory.pearson(m, px), "proxy_spearman": rmtheory.spearman(m, px),
                       "gt_pearson": rmtheory.pearson(m, gt), "gt_spearman": rmtheory.spearman(m, gt)}
    return table


def _fmt_table2(t):
    lines = ["| Measure | Proxy Pearson | Proxy Spearman | GT Pearson | GT Spearman |", "|---|---|---|---|---|"]
    for name, r in t.items():
        lines.append(f"| {name} | {r['proxy_pearson']:.3f} | {r['proxy_spearman']:.3f} | {r['gt_pearson']:.3f} | "
                     f"{r['gt_spearman']:.3f} |")
    return "\n".join(lines)


def _fmt_table1(rep, scheme):
    hdr = "| Metric | " + " | ".join(LABELS[s] for s in SOURCES) + " |"
    lines = [hdr, "|---" * (len(SOURCES) + 1) + "|"]
    for key, lab in (("var", "Var"), ("acc_on", "On-acc"), ("acc_off", "Off-acc")):
        lines.append(f"| {lab} | " + " | ".join(f"{rep[s][scheme][key]:.3f}" for s in SOURCES) + " |")
    return "\n".join(lines)


def analyze(out: str, figures_dir: str | None = None, log=print):
    """Write figures/ + tables for the run in ``out`` (and copies into ``figures_dir`` if given)."""
    ev = io.load_json(os.path.join(out, "rm_eval.json"))
    res = io.load_json(os.path.join(out, "rl", "results.json"))
    cfg = io.load_json(os.path.join(out, "config.json"))
    scheme = ev["norm_scheme"]
    rep = ev["report"]
    runs = res["runs"]
    proxy, gt = np.asarray(res["proxy_increase"]), np.asarray(res["gt_increase"])  # [E+1, R]
    kl = np.asarray(res["kl_train"])
    by = {s: [i for i, r in enumerate(runs) if r["source"] == s] for s in SOURCES}
    mean = lambda a, s: a[:, by[s]].mean(1)  # noqa: E731
    std = lambda a, s: a[:, by[s]].std(1)  # noqa: E731
    one_proxy = {s: float(mean(proxy, s)[1]) for s in SOURCES}
    one_gt = {s: float(mean(gt, s)[1]) for s in SOURCES}
    tables = {}
    for sch in ("global", "prompt_variance"):
        metrics = {s: rep[s][sch] for s in SOURCES}
        tables[sch] = correlation_table(metrics, one_proxy, one_gt)
    figs = os.path.join(out, "figures")
    os.makedirs(figs, exist_ok=True)
    summary = {"table1": {s: rep[s][scheme] for s in SOURCES}, "table2": tables[scheme],
               "table2_prompt_variance_metrics": tables["prompt_variance"],
               "one_epoch_proxy_increase": one_proxy, "one_epoch_gt_increase": one_gt,
               "final_proxy_increase": {s: float(mean(proxy, s)[-1]) for s in SOURCES},
               "final_gt_increase": {s: float(mean(gt, s)[-1]) for s in SOURCES},
               "norm_scheme": scheme, "config": cfg["name"]}
    md = [f"# LM pipeline tables (config `{cfg['name']}`, normalisation `{scheme}`)", "",
          "## Table 1 analogue: RM properties under the initial policy", "", _fmt_table1(rep, scheme), "",
          "## One-epoch increases (mean ± std over seeds)", "",
          "| Source | Proxy increase | GT increase | final proxy | final GT | KL (final epoch) |", "|---|---|---|---|---|---|"]
    for s in SOURCES:
        md.append(f"| {LABELS[s]} | {mean(proxy, s)[1]:+.3f} ± {std(proxy, s)[1]:.3f} | {mean(gt, s)[1]:+.3f} ± "
                  f"{std(gt, s)[1]:.3f} | {mean(proxy, s)[-1]:+.3f} | {mean(gt, s)[-1]:+.3f} | {mean(kl, s)[-1]:.3f} |")
    md += ["", "## Table 2 analogue: correlation with the one-epoch increase (6 non-GT sources)", "",
           _fmt_table2(tables[scheme]), ""]
    io.save_text(os.path.join(figs, "lm_tables.md"), "\n".join(md) + "\n")
    io.save_json(os.path.join(figs, "lm_tables.json"), summary)
    rows = [[s, r["seed"], e, proxy[e, i], gt[e, i], kl[e, i]] for e in range(proxy.shape[0]) for i, r in enumerate(runs)
            for s in [r["source"]]]
    io.save_csv(os.path.join(figs, "lm_increase.csv"), ["source", "seed", "epoch", "proxy_increase", "gt_increase", "kl"], rows)
    _plots(figs, proxy, gt, kl, by)
    if figures_dir:
        import shutil
        os.makedirs(figures_dir, exist_ok=True)
        for f in ("lm_tables.md", "lm_tables.json", "lm_increase.csv", "lm_increase_vs_epoch.png", "lm_increase_vs_kl.png"):
            shutil.copyfile(os.path.join(figs, f), os.path.join(figures_dir, f))
    log("\n".join(md))
    return summary


def _plots(figs, proxy, gt, kl, by):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = dict(zip(SOURCES, ["#08306b", "#2171b5", "#6baed6", "#9ecae1", "#c6dbef", "#d62728", "#2ca02c"]))
    epochs = np.arange(proxy.shape[0])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, a, title in ((axes[0], proxy, "proxy reward increase"), (axes[1], gt, "ground-truth reward increase")):
        for s in SOURCES:
            m, sd = a[:, by[s]].mean(1), a[:, by[s]].std(1)
            ax.plot(epochs, m, marker="o", ms=3, color=colors[s], label=LABELS[s])
            ax.fill_between(epochs, m - sd, m + sd, color=colors[s], alpha=0.15)
        ax.set_xlabel("epoch")
        ax.set_ylabel("increase (normalised reward)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle("Miniature LM: reward increase vs epoch (mean ± std over seeds)")
    fig.tight_layout()
    io.atomic(lambda tmp: fig.savefig(tmp, dpi=120, format="png"), os.path.join(figs, "lm_increase_vs_epoch.png"))
    plt.close(fig)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, a, title in ((axes[0], proxy, "proxy reward increase"), (axes[1], gt, "ground-truth reward increase")):
        for s in SOURCES:
            ax.errorbar(kl[:, by[s]].mean(1), a[:, by[s]].mean(1), yerr=a[:, by[s]].std(1), marker="o", ms=3,
                        color=colors[s], label=LABELS[s], capsize=2)
        ax.set_xlabel("KL(π‖π_ref) (sequence log-ratio, last batches of each epoch)")
        ax.set_ylabel("increase (normalised reward)")
        ax.set_title(title + " vs KL")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    io.atomic(lambda tmp: fig.savefig(tmp, dpi=120, format="png"), os.path.join(figs, "lm_increase_vs_kl.png"))
    plt.close(fig)
