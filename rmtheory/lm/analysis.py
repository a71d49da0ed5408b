"""The ``analyze`` stage: the validity report, the analogues of the paper's Table 1 (RM properties), Table 2
(correlations with the one-epoch increase), Figure 2 (increase vs epoch), Figure 4 (increase vs KL), and the
reward models' learning curves.

RM properties are always the globally normalised ones (the paper's Table 9 keeps them and changes only the
normalisation used in RL); ``norm_scheme`` affects only the RL stage.

**Validity gates** (fixed before any result was looked at). Each gate is reported with its measured value,
pass/fail, and what a failure means for the tables below it. A failed gate does not stop the run.
"""

from __future__ import annotations

import csv
import os

import numpy as np

from .. import io
from .._stats import seed_stats
from .config import BASELINE_LABELS, BASELINES, LABELS, RM_SOURCES, SOURCES, Config
from .measure import correlation_table, fmt
from .rundir import RunDir, publish


# ------------------------------------------------------------------------------------------- gates
def validity_gates(ev: dict, inc: dict, cfg: dict) -> list:
    """The instrument's validity gates: a list of {id, gate, value, threshold, pass, meaning}."""
    rep = {s: v["global"] for s, v in ev["report"].items()}
    ini = ev["initial_policy"]
    like = rep["sft_likelihood"]["acc_on"]
    chance = ini["chance_on_acc"]
    # G8/G9 on the held-out test prompts (the PG eval prompts are the RL training prompts); G9's RM is chosen by
    # its gain on the PG eval prompts and reported on the test prompts, so the choice does not select its noise
    gt1 = inc["test_gt"]["ground_truth"]
    rm_best = max(RM_SOURCES, key=lambda s: inc["gt"][s]["mean"])
    best = inc["test_gt"][rm_best]
    var_perfect, var_gt = rep["perfect_lowvar"]["var"], rep["ground_truth"]["var"]
    worst_rm = min(RM_SOURCES, key=lambda s: rep[s]["acc_on"])
    n_seeds = len(cfg["seeds"]["rl"])

    def ratio(st):
        if st["std"] and st["std"] > 0:
            return st["mean"] / st["std"]
        return float("inf") if st["mean"] > 0 else float("-inf")

    share = ini["gt_between_prompt_share"]
    g = [
        ("G1", "r_G's between-prompt share of variance under the SFT policy in [0.20, 0.70]", share, "[0.20, 0.70]",
         share is not None and 0.20 <= share <= 0.70,
         "r_G varies (almost) only within or only between prompts: the perfect-accuracy source cannot be "
         "low-variance relative to the RMs, and 'a proxy beats r_G early' is impossible or trivial by construction"),
        ("G2", "SFT samples are diverse: distinct responses per prompt (of n_eval_samples)", ini["distinct_per_prompt"],
         ">= 6", ini["distinct_per_prompt"] >= 6,
         "many of the 45 pairs per prompt are duplicates: on-policy accuracy and variance are coarse"),
        ("G3", "the SFT policy's mean per-token log-prob, as a reward, has on-policy accuracy <= 0.70", like, "<= 0.70",
         like <= 0.70,
         "being likely under the SFT policy ≈ being correct: RMs initialised from it inherit the answer and "
         "the on/off-policy mix cannot matter"),
        ("G4", "RM 100% held-out on-policy accuracy >= 0.70", rep["rm_100"]["acc_on"], ">= 0.70",
         rep["rm_100"]["acc_on"] >= 0.70, "the reward models do not learn the task: Table 1/2 differences are noise"),
        ("G5", "RM 100% beats the SFT-likelihood baseline on-policy by >= 0.05", rep["rm_100"]["acc_on"] - like,
         ">= 0.05", rep["rm_100"]["acc_on"] - like >= 0.05,
         "on-policy RM training adds nothing beyond what the initial policy already knows"),
        ("G6", f"every RM beats chance ({chance:.3f}: a deterministic uninformative score, which agrees on identical "
               f"samples) on-policy by >= 0.10 (worst: {LABELS[worst_rm]})",
         rep[worst_rm]["acc_on"] - chance, ">= 0.10", rep[worst_rm]["acc_on"] - chance >= 0.10,
         "an RM at chance: its RL runs and its table entries measure noise"),
        ("G7", "Adam steps per RL epoch", cfg["adam_steps_per_epoch"], ">= 100", cfg["adam_steps_per_epoch"] >= 100,
         "an epoch is too short for the one-epoch increase to rise above noise"),
        ("G8", "with r_G as the reward, one-epoch GT gain on the held-out test prompts / seed std", ratio(gt1),
         ">= 5", ratio(gt1) >= 5, "the RL signal is too weak to measure any increase: Table 2's GT columns are noise"),
        ("G9", f"best trained RM by PG-eval gain ({LABELS[rm_best]}): one-epoch GT gain on the held-out test prompts "
               "> 0, gain / seed std", ratio(best), ">= 3", best["mean"] > 0 and ratio(best) >= 3,
         "no trained RM measurably improves the ground truth: the GT correlations compare noise"),
        ("G10", "RL seeds per source", n_seeds, ">= 3", n_seeds >= 3, "seed std and CIs are not estimable reliably"),
        ("G11", "the perfect-accuracy low-variance source's Var / r_G's Var (both globally z-scored)",
         var_perfect / var_gt if var_gt > 0 else float("inf"), "<= 0.5", var_perfect <= 0.5 * var_gt,
         "the 'low-variance' source is not low-variance as the tables measure Var: its row tests nothing"),
    ]
    return [{"id": i, "gate": t, "value": v, "threshold": th, "pass": bool(ok), "meaning": m}
            for i, t, v, th, ok, m in g]


# ------------------------------------------------------------------------------------------ tables
def _fmt_table2(t):
    lines = ["| Measure | Proxy Pearson | Proxy Spearman | GT Pearson | GT Spearman |", "|---|---|---|---|---|"]
    for name, r in t.items():
        lines.append(f"| {name} | {fmt(r['proxy_pearson'])} | {fmt(r['proxy_spearman'])} | {fmt(r['gt_pearson'])} | "
                     f"{fmt(r['gt_spearman'])} |")
    return "\n".join(lines)


def _fmt_table1(rep, baselines, labels):
    cols = list(SOURCES) + list(baselines)
    hdr = "| Metric | " + " | ".join(LABELS.get(s, labels.get(s, s)) for s in cols) + " |"
    lines = [hdr, "|---" * (len(cols) + 1) + "|"]
    for key, lab in (("var", "Var"), ("acc_on", "On-acc"), ("acc_off", "Off-acc")):
        lines.append(f"| {lab} | " + " | ".join(fmt(rep[s][key]) for s in cols) + " |")
    return "\n".join(lines)


def _fmt_gates(gates):
    lines = ["| Gate | What | Measured | Threshold | Result | If it fails |", "|---|---|---|---|---|---|"]
    for g in gates:
        v = g["value"]
        vs = fmt(v) if isinstance(v, float) else str(v)
        lines.append(f"| {g['id']} | {g['gate']} | {vs} | {g['threshold']} | {'PASS' if g['pass'] else '**FAIL**'} | "
                     f"{g['meaning']} |")
    return "\n".join(lines)


def stage_analyze(cfg: Config, run: RunDir, log=print, figures_dir: str | None = None):
    """The ``analyze`` stage (it reads the run dir's own ``config.json``): :func:`analyze`."""
    return analyze(run, figures_dir, log)


def analyze(run, figures_dir: str | None = None, log=print):
    """Write the validity report, tables and figures for the run (and copies into ``figures_dir`` if given)."""
    run = run if isinstance(run, RunDir) else RunDir(run)
    ev = run.load_json("rm_eval.json")
    res = run.load_json(os.path.join("rl", "results.json"))
    cfg = run.load_json("config.json")["config"]
    cfg["adam_steps_per_epoch"] = res["adam_steps_per_epoch"]
    rep = {s: v["global"] for s, v in ev["report"].items()}
    runs = res["runs"]
    arrays = {k: np.asarray(res[k]) for k in ("proxy_increase", "gt_increase", "test_gt_increase", "kl_train")}
    proxy, gt, kl = arrays["proxy_increase"], arrays["gt_increase"], arrays["kl_train"]  # [E+1, R]
    by = {s: [i for i, r in enumerate(runs) if r["source"] == s] for s in SOURCES}
    inc = {"proxy": {s: seed_stats(proxy[1, by[s]]) for s in SOURCES},
           "gt": {s: seed_stats(gt[1, by[s]]) for s in SOURCES},
           "test_gt": {s: seed_stats(arrays["test_gt_increase"][1, by[s]]) for s in SOURCES},
           "final_proxy": {s: seed_stats(proxy[-1, by[s]]) for s in SOURCES},
           "final_gt": {s: seed_stats(gt[-1, by[s]]) for s in SOURCES}}
    one_proxy = {s: inc["proxy"][s]["mean"] for s in SOURCES}
    one_gt = {s: inc["gt"][s]["mean"] for s in SOURCES}
    table2 = correlation_table(rep, one_proxy, one_gt)
    gates = validity_gates(ev, inc, cfg)
    n_fail = sum(not g["pass"] for g in gates)
    figs = run.path("figures")
    os.makedirs(figs, exist_ok=True)
    summary = {"validity": gates, "all_gates_pass": n_fail == 0, "table1": {s: rep[s] for s in SOURCES},
               "baselines": {b: rep[b] for b in BASELINES}, "initial_policy": ev["initial_policy"],
               "table2": table2, "increases": inc, "norm_scheme": ev["norm_scheme"], "config": cfg["name"],
               "rm_metrics_normalisation": "global"}
    def pm(st):
        return f"{st['mean']:+.3f} ± {fmt(st['std'])} [{st['ci'][0]:+.3f}, {st['ci'][1]:+.3f}]"

    md = [f"# LM pipeline tables (config `{cfg['name']}`, RL normalisation `{ev['norm_scheme']}`)", "",
          "## Validity report", "",
          ("All gates pass: the tables below measure the instrument's claims." if n_fail == 0 else
           f"**{n_fail} gate(s) FAIL: read the tables below with the failure's meaning in mind.**"), "",
          _fmt_gates(gates), "",
          "## Table 1 analogue: RM properties under the initial policy (global z-score)", "",
          "Reference scores (not RL sources) on the right: the SFT policy's own likelihood and two hand-written "
          "scores. Chance on-policy accuracy (a deterministic uninformative score): "
          f"{ev['initial_policy']['chance_on_acc']:.3f}.", "",
          _fmt_table1(rep, BASELINES, BASELINE_LABELS), "",
          "## Increases (normalised reward; mean ± std over seeds (ddof 1) [95 % bootstrap CI over seeds])", "",
          "| Source | one-epoch proxy | one-epoch GT | one-epoch GT, test prompts | final proxy | final GT "
          "| KL (final epoch) |",
          "|---|---|---|---|---|---|---|"]
    for s in SOURCES:
        md.append(f"| {LABELS[s]} | {pm(inc['proxy'][s])} | {pm(inc['gt'][s])} | {pm(inc['test_gt'][s])} | "
                  f"{inc['final_proxy'][s]['mean']:+.3f} | {inc['final_gt'][s]['mean']:+.3f} | "
                  f"{kl[-1, by[s]].mean():.3f} |")
    md += ["", "## Table 2 analogue: correlation with the one-epoch increase (6 non-GT sources)", "",
           _fmt_table2(table2), "", "—: undefined (a constant column)."]
    io.save_text(os.path.join(figs, "lm_tables.md"), "\n".join(md) + "\n")
    io.save_json(os.path.join(figs, "lm_tables.json"), summary)
    io.save_json(run.path("validity.json"), {"gates": gates, "all_pass": n_fail == 0})
    rows = [[r["source"], r["seed"], e, proxy[e, i], gt[e, i], arrays["test_gt_increase"][e, i], kl[e, i]]
            for e in range(proxy.shape[0]) for i, r in enumerate(runs)]
    io.save_csv(os.path.join(figs, "lm_increase.csv"),
                ["source", "seed", "epoch", "proxy_increase", "gt_increase", "test_gt_increase", "kl"], rows)
    _plots(figs, proxy, gt, kl, by)
    curves = run.path("rm_curves.csv")
    files = ["lm_tables.md", "lm_tables.json", "lm_increase.csv", "lm_increase_vs_epoch.png", "lm_increase_vs_kl.png"]
    if os.path.exists(curves):
        publish(run.out, ["rm_curves.csv"], figs, rename={"rm_curves.csv": "lm_rm_curves.csv"})
        _plot_curves(figs, curves)
        files += ["lm_rm_curves.png", "lm_rm_curves.csv"]
    publish(run.out, ["validity.json"], figures_dir, rename={"validity.json": "lm_validity.json"})
    publish(figs, files, figures_dir)
    failed = [g["id"] for g in gates if not g["pass"]]
    log(f"  validity: {len(gates) - n_fail} of {len(gates)} gates pass" + (f"; FAIL: {', '.join(failed)}" if failed
                                                                            else ""))
    log("  one-epoch GT increase (mean over seeds): "
        + ", ".join(f"{LABELS[s]} {inc['gt'][s]['mean']:+.3f}" for s in SOURCES))
    log(f"  the validity report (what each failure means) and Tables 1 and 2: {os.path.join(figs, 'lm_tables.md')}")
    return summary


def _seed_std(a):
    """Std over the seed axis (ddof 1, as in the tables; 0 for a single seed). a: [E, S]."""
    return a.std(1, ddof=1) if a.shape[1] > 1 else np.zeros(a.shape[0])


def _plots(figs, proxy, gt, kl, by):
    plt = io.pyplot()
    colors = dict(zip(SOURCES, ["#08306b", "#2171b5", "#6baed6", "#9ecae1", "#c6dbef", "#d62728", "#2ca02c"]))
    epochs = np.arange(proxy.shape[0])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, a, title in ((axes[0], proxy, "proxy reward increase"), (axes[1], gt, "ground-truth reward increase")):
        for s in SOURCES:
            m, sd = a[:, by[s]].mean(1), _seed_std(a[:, by[s]])
            ax.plot(epochs, m, marker="o", ms=3, color=colors[s], label=LABELS[s])
            ax.fill_between(epochs, m - sd, m + sd, color=colors[s], alpha=0.15)
        ax.set_xlabel("epoch")
        ax.set_ylabel("increase (normalised reward)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle("Miniature LM: reward increase vs epoch (mean ± std over seeds)")
    fig.tight_layout()
    io.save_figure(fig, os.path.join(figs, "lm_increase_vs_epoch.png"))
    plt.close(fig)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, a, title in ((axes[0], proxy, "proxy reward increase"), (axes[1], gt, "ground-truth reward increase")):
        for s in SOURCES:
            ax.errorbar(kl[:, by[s]].mean(1), a[:, by[s]].mean(1), yerr=_seed_std(a[:, by[s]]), marker="o", ms=3,
                        color=colors[s], label=LABELS[s], capsize=2)
        ax.set_xlabel("KL(π‖π_ref) (sequence log-ratio, last batches of each epoch)")
        ax.set_ylabel("increase (normalised reward)")
        ax.set_title(title + " vs KL")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    io.save_figure(fig, os.path.join(figs, "lm_increase_vs_kl.png"))
    plt.close(fig)


def _plot_curves(figs, path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    plt = io.pyplot()
    colors = dict(zip(RM_SOURCES, ["#08306b", "#2171b5", "#6baed6", "#9ecae1", "#c6dbef"]))
    keys = (("train_bt_loss", "train BT loss"), ("heldout_bt_loss", "held-out BT loss (on-policy pairs)"),
            ("heldout_on_acc", "held-out on-policy accuracy"), ("off_acc", "off-policy accuracy"))
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.8))
    for ax, (k, title) in zip(axes, keys):
        for s in RM_SOURCES:
            pts = [(int(r["step"]), float(r[k])) for r in rows if r["source"] == s and r[k] != ""]
            if pts:
                ax.plot(*zip(*pts), color=colors[s], label=LABELS[s])
        ax.set_title(title)
        ax.set_xlabel("RM step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    io.save_figure(fig, os.path.join(figs, "lm_rm_curves.png"))
    plt.close(fig)
