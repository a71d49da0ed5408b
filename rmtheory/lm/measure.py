"""The measurements the pipeline's stages and the studies share: samples of a policy and their ground truth,
mean per-token log-probabilities, the RM training pairs, reward models scored and reported
(:func:`rmtheory.rm_report`), RL increases, the RM measures correlated with them, and the files written in the
format of ``rmtheory evaluate``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import io
from .._rm_eval import combined_measures, normalisation_stats, rm_report
from .._stats import pearson, spearman
from . import task as T
from .config import CORR_SOURCES, Config
from .model import in_chunks, token_logprobs
from .reward_model import CurveSet, score
from .rundir import RunDir
from .sampling import sample
from .stacking import unstack

RM_FIELDS = ("var", "acc_on", "acc_off", "on_off", "var_acc", "mean", "std")  # an RM report's summary numbers
MEASURES = ("Var", "On", "Off", "On&Off", "Var&Acc", "(Var+On)/2")  # the RM measures the tables correlate

_sample_tokens = jax.jit(lambda m, pr, k, L: sample(m, pr, k, L)[0], static_argnums=3)
_token_logprobs = jax.jit(token_logprobs, static_argnums=2)


# ------------------------------------------------------------------------------------------ samples
def sample_tokens(model, prompts, key, cfg: Config, batch: int = 4096):
    """Sample full sequences [N, T] for prompt tokens [N, P] in chunks (chunk j's key is fold_in(key, j))."""
    return in_chunks(lambda p, j: _sample_tokens(model, p, jax.random.fold_in(key, j), cfg.task.resp_len), prompts,
                     batch)


def ground_truth(cfg: Config, prompts: T.Prompts, resp):
    """r_G of responses [N, L] to ``prompts`` [N] (float64)."""
    return np.asarray(T.ground_truth(prompts.target, prompts.tlen, resp, cfg.n_content), np.float64)


def mean_token_logprob(model, tokens, prompt_len: int, axis=-1):
    """``model``'s mean log-probability per generated response token (up to and including EOS) of full
    sequences [N, T]: per sequence (``axis=-1``) or over all of them (``axis=None``)."""
    mask = np.asarray(T.response_mask(jnp.asarray(tokens[:, prompt_len:])), np.float64)
    lp = in_chunks(lambda t, _: _token_logprobs(model, t, prompt_len), tokens, 4096).astype(np.float64)
    return np.sum(lp * mask, axis) / np.sum(mask, axis)


def _pair_fraction(same) -> float:
    """Mean over prompts and within-prompt pairs i < j of ``same`` [P, K, K] (a boolean pair matrix)."""
    K = same.shape[1]
    iu = np.triu_indices(K, 1)
    return float(np.mean(same[:, iu[0], iu[1]]))


def tie_fraction(gt) -> float:
    """Fraction of the within-prompt sample pairs that r_G ties. gt: [P, K]."""
    gt = np.asarray(gt)
    return _pair_fraction(gt[:, :, None] == gt[:, None, :])


def duplicate_fraction(resp) -> float:
    """Fraction of the within-prompt sample pairs whose two responses are identical. resp: [P, K, L]."""
    resp = np.asarray(resp)
    return _pair_fraction(np.all(resp[:, :, None, :] == resp[:, None, :, :], axis=-1))


def chance_on_acc(resp, gt) -> float:
    """The on-policy accuracy of an uninformative *deterministic* score: one independent continuous value per
    distinct response. Identical responses tie under it and under r_G, so it agrees on them for free; it never
    ties two distinct responses, so it misses r_G's other ties; it orders the rest right half the time:

        chance = dup + ½·(1 − tie),   dup, tie = the fractions of sample pairs that are identical / r_G-tied.

    (½·(1 − tie) alone is the chance of a score drawn afresh per sample, which ties nothing; every reward model
    here is deterministic.) resp: [P, K, L] responses, gt: [P, K]."""
    return duplicate_fraction(resp) + 0.5 * (1.0 - tie_fraction(gt))


def sample_stats(toks, gt, prompt_len: int) -> dict:
    """A policy's samples [P·K, T] with r_G [P, K]: between-prompt share of r_G's variance (NaN if r_G is
    constant), distinct responses per prompt, the fractions of the sample pairs that r_G ties and that are
    identical, and the deterministic chance on-policy accuracy (:func:`chance_on_acc`)."""
    K = gt.shape[1]
    resp = toks[:, prompt_len:].reshape(-1, K, toks.shape[1] - prompt_len)
    distinct = np.mean([len({r.tobytes() for r in resp[i]}) for i in range(resp.shape[0])])
    return {"gt_between_prompt_share": float(gt.mean(1).var() / gt.var()) if gt.var() > 0 else float("nan"),
            "distinct_per_prompt": float(distinct), "gt_tie_fraction": tie_fraction(gt),
            "duplicate_fraction": duplicate_fraction(resp), "chance_on_acc": chance_on_acc(resp, gt)}


def perfect_scores(cfg: Config, gt, scale):
    """The perfect-accuracy low-variance source's scores: (r_G(x, y) + ``perfect_shift``)·s(x), s(x) its prompt
    scale (``perfect_factor`` on a fixed fraction of the prompts, else 1); ``gt`` and ``scale`` broadcast.

    Within each prompt it is an increasing affine map of r_G, so its accuracy is 1 on- and off-policy. The
    shift is a constant (Remark 3), which RLOO's leave-one-out baseline removes; but under the global z-score
    the gap between the scaled prompts' mean (≈ 0) and the others' (≈ shift) enters σ, so the normalised
    reward is small on every prompt: low variance as the pipeline measures it, as for the theory's
    b_y = (r_G + 2)/(4T). Without the shift (r_G·s(x)) the z-score undoes the scaling when r_G's mean is near 0:
    σ shrinks with the within-prompt variance and the normalised variance stays r_G's (gate G11)."""
    return (np.asarray(gt, np.float64) + cfg.perfect_shift) * np.asarray(scale, np.float64)


# ------------------------------------------------------------------------------------- eval prompts
def off_policy_eval(cfg: Config, run: RunDir, d: dict):
    """The PG eval prompts' ids and off-policy pairs: full sequences and r_G (policy independent)."""
    ev = run.prompts("eval", d)
    ids = d["pg_id"][d["eval_idx"]]
    resp = {w: d[f"off_{w}"][ids] for w in ("chosen", "rejected")}
    full = {w: np.concatenate([ev.tokens, resp[w]], axis=1) for w in resp}
    gt = {w: ground_truth(cfg, ev, resp[w]) for w in resp}
    return ids, full, gt


def curve_set(cfg: Config, run: RunDir, d: dict, smp: dict) -> CurveSet:
    """The RM learning curves' held-out data: the first ``rm_curve_prompts`` PG eval prompts, their
    initial-policy samples and their off-policy pairs."""
    C, K = cfg.rm_curve_prompts, cfg.n_eval_samples
    ev = run.prompts("eval", d).take(np.arange(C))
    ids = d["pg_id"][d["eval_idx"][:C]]
    full = {w: np.concatenate([ev.tokens, d[f"off_{w}"][ids]], axis=1) for w in ("chosen", "rejected")}
    off_gt = {w: ground_truth(cfg, ev, d[f"off_{w}"][ids]) for w in full}
    return CurveSet(smp["eval_tokens"][: C * K], smp["eval_gt"][:C], full["chosen"], full["rejected"],
                    off_gt["chosen"], off_gt["rejected"])


# ------------------------------------------------------------------------------------------ RM data
class RMPairs(NamedTuple):
    """The RM prompts whose on-policy pair r_G does not tie, with that pair and their off-policy pair
    (responses [N, L])."""

    prompts: T.Prompts
    on_chosen: np.ndarray
    on_rejected: np.ndarray
    off_chosen: np.ndarray
    off_rejected: np.ndarray

    def full(self, resp):
        """Full sequences [N, T]: the prompts followed by responses [N, L]."""
        return np.concatenate([self.prompts.tokens, resp], axis=1)


def rm_pairs(run: RunDir, d: dict, smp: dict) -> RMPairs:
    """The RM training pairs (the ``samples`` stage's on-policy pairs, ties dropped)."""
    usable = np.flatnonzero(~smp["tied"])
    ids = d["rm_id"][usable]
    return RMPairs(run.prompts("rm", d).take(usable), smp["on_chosen"][usable], smp["on_rejected"][usable],
                   d["off_chosen"][ids], d["off_rejected"][ids])


def save_rm_curves(path: str, curves: list, names, name_col: str = "source", loss_col: str = "train_bt_loss"):
    """The learning curves of :func:`rmtheory.lm.reward_model.train_rms` as CSV rows (step, name, losses,
    accuracies), one per evaluation step and reward model ``names[i]``."""
    keys = ("train_bt_loss", "heldout_bt_loss", "heldout_on_acc", "off_acc")
    rows = [[r["step"], s] + [r[k][i] for k in keys] for r in curves for i, s in enumerate(names)]
    io.save_csv(path, ["step", name_col, loss_col, *keys[1:]], rows)


# -------------------------------------------------------------------------------------- RM reports
def score_models(rms, names, toks, K: int) -> dict:
    """{name: [P, K] scores} of stacked reward models on samples [P·K, T]."""
    return {n: score(unstack(rms, i), toks).reshape(-1, K) for i, n in enumerate(names)}


def score_pairs(rms, names, full: dict) -> dict:
    """{name: {"chosen", "rejected": [Q] scores}} of stacked reward models on pairs of full sequences."""
    return {n: {w: score(unstack(rms, i), full[w]) for w in full} for i, n in enumerate(names)}


def rm_summary(report) -> dict:
    """The summary numbers (:data:`RM_FIELDS`) of an :class:`rmtheory.RMReport`."""
    return {k: float(getattr(report, k)) for k in RM_FIELDS}


def report_models(scores: dict, gt, off_scores: dict, off_gt: dict, norm_scheme: str):
    """Per model: the global-z-score RM report (Var, accuracies; always global, as in the paper's tables) and
    the normalisation stats RL uses (``norm_scheme`` under this initial policy)."""
    rep, stats = {}, {}
    for n, s in scores.items():
        rep[n] = rm_summary(rm_report(s, gt, off_scores[n]["chosen"], off_scores[n]["rejected"], off_gt["chosen"],
                                      off_gt["rejected"], scheme="global"))
        stats[n] = [float(v) for v in normalisation_stats(s, norm_scheme)]
    return rep, stats


def save_eval_rewards(path: str, ids, scores: dict):
    """The ``rmtheory evaluate`` rewards table: prompt_id, sample_id, one column per entry of ``scores``
    (name → [P, K], in dict order)."""
    names = list(scores)
    P, K = next(iter(scores.values())).shape
    rows = [[int(ids[i]), j] + [float(scores[s][i, j]) for s in names] for i in range(P) for j in range(K)]
    io.save_csv(path, ["prompt_id", "sample_id", *names], rows)


def save_eval_offpolicy(path: str, ids, off: dict, off_gt: dict):
    """The ``rmtheory evaluate --off-policy`` table: prompt_id, <name>.chosen/.rejected per entry of ``off``
    (name → {"chosen", "rejected"}), then the ground truth's."""
    names = list(off)
    pair = ("chosen", "rejected")
    hdr = ["prompt_id"] + [f"{s}.{w}" for s in names for w in pair] + ["ground_truth.chosen", "ground_truth.rejected"]
    rows = [[int(ids[i])] + [float(off[s][w][i]) for s in names for w in pair]
            + [float(off_gt["chosen"][i]), float(off_gt["rejected"][i])] for i in range(len(ids))]
    io.save_csv(path, hdr, rows)


# ---------------------------------------------------------------------------------------- increases
def increases(prog: dict, which: str = "pg", gt_sd=None) -> dict:
    """Per-epoch increases [E+1, R] over epoch 0 from an RL progress dict (:func:`rmtheory.lm.loop.train_epochs`)
    on eval set ``which``: "proxy" (normalised reward), "gt" (the normalised r_G the RL evaluation reports;
    with ``gt_sd`` [R]: the raw r_G in units of each run's ``gt_sd``), and the KL to the reference, "kl"."""
    ev = [m[which] for m in prog["eval"]]
    proxy = np.asarray([m["proxy"] for m in ev], np.float64)
    kl = np.asarray([m["kl"] for m in ev], np.float64)
    if gt_sd is None:
        gt = np.asarray([m["gt"] for m in ev], np.float64)
        return {"proxy": proxy - proxy[0], "gt": gt - gt[0], "kl": kl}
    gt = np.asarray([m["gt_raw"] for m in ev], np.float64)
    return {"proxy": proxy - proxy[0], "gt": (gt - gt[0]) / np.asarray(gt_sd, np.float64)[None, :], "kl": kl}


def fmt(x, spec: str = "{:.3f}") -> str:
    """A table entry: ``spec.format(x)``, or "—" where the value is undefined (None or not finite)."""
    return "—" if x is None or (isinstance(x, float) and not np.isfinite(x)) else spec.format(x)


def measures(var, on, off) -> dict:
    """The RM measures :data:`MEASURES`: Var, on- and off-policy accuracy, On&Off and Var&Acc
    (:func:`rmtheory.combined_measures`) and Table 8's (Var + On)/2."""
    c = combined_measures(var, on, off)
    return dict(zip(MEASURES, (var, on, off, c["on_off"], c["var_acc"], 0.5 * (var + on))))


def _corr(f, a, b):
    """A correlation, or None when an input is constant."""
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return float(f(a, b))


def correlation_table(rm_metrics: dict, proxy_increase: dict, gt_increase: dict, sources=CORR_SOURCES):
    """Pearson and Spearman correlations of each RM measure with the one-epoch increases.

    Args:
      rm_metrics: source -> {"var", "acc_on", "acc_off"}.
      proxy_increase, gt_increase: source -> one-epoch increase (mean over seeds).
    Returns: measure -> {"proxy_pearson", "proxy_spearman", "gt_pearson", "gt_spearman"}; a value is None
    where a correlation is undefined (a constant measure or increase).
    """
    missing = [s for s in sources if s not in rm_metrics or s not in proxy_increase or s not in gt_increase]
    if missing:
        raise ValueError(f"rm_metrics / proxy_increase / gt_increase lack sources {missing}")
    var, on, off = (np.array([rm_metrics[s][k] for s in sources], np.float64) for k in ("var", "acc_on", "acc_off"))
    px = np.array([proxy_increase[s] for s in sources], np.float64)
    gt = np.array([gt_increase[s] for s in sources], np.float64)
    return {name: {"proxy_pearson": _corr(pearson, m, px), "proxy_spearman": _corr(spearman, m, px),
                   "gt_pearson": _corr(pearson, m, gt), "gt_spearman": _corr(spearman, m, gt)}
            for name, m in measures(var, on, off).items()}
