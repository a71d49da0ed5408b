"""The confirmatory pre-registered study of the pooled and Adam-geometry teaching rates (``rmtheory lm confirm``).

Design, outcomes and decision rules: ``paper_claims.md`` §10 (committed before any of its cells existed). 88 new
cells, 8 initial policies × 11 reward models, none of them used by an earlier study:

* base stages (``data``, ``sft``, ``samples``) of the ``small`` config with SFT seed 11 and RM seed 11 (the
  first stages of ``rmtheory lm run --config small --set seeds.sft=11 --set seeds.rm=11``);
* ``policies`` — :data:`POLICIES`: that SFT policy, a second SFT seed, two short SFT runs, a cleaner teacher, two
  intermediate teachers, and an instruct policy (RLOO on r_G);
* ``rms`` — :data:`RMS`, trained on the base SFT policy's RM pairs (one stacked run, the same steps and batch
  order), differing in their data or targets; ``bt_on_q`` is ``bt_on``'s snapshot nearest a quarter of the steps;
* ``rm_eval`` — each policy's eval samples scored by every RM, exported for ``rmtheory evaluate`` with the
  exact-gradient rates (``exports/<policy>_rates.json``) and the count sketches (``<policy>_projections.npz``);
* ``rl_sgd``, ``rl_adam`` — RLOO for one epoch (SGD at the registered learning rate; Adam at ``rl_lr``) on every
  cell × seed; ``rl_sgd_short``, ``rl_adam_short`` — the first ``short_steps`` optimizer steps of the same runs
  (the same rollouts: :func:`rmtheory.lm.rloo.make_rl`'s ``rollouts``); all evaluated on the held-out test
  prompts;
* ``analyze`` — the predictors, the outcomes, both registered statistics (:mod:`._confirm_stats`) and the
  verdicts of the registered rules: ``figures/lm_confirm.{md,json,png}``, ``lm_confirm_cells.csv``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from ... import io
from .. import task as T
from ..config import Config, get_config
from ..measure import (
    curve_set,
    ground_truth,
    increases,
    rm_pairs,
)
from ..reward_model import Objective, train_rms
from ..rundir import RunDir, publish
from ..sft import train_sft
from ..stacking import stack
from . import _confirm_stats as S
from . import common, grid
from .reportcard import run_evaluate

POLICIES = ("sft_s11", "sft_s12", "short_s11", "short_s12", "clean_s11", "mid_s11", "mid_s12", "instruct_s11")
RMS = ("bt_on", "bt_off", "bt_mix50", "bt_noisy_20", "bt_noisy_40", "bt_length_x2", "bt_on_q", "reg_gt",
       "reg_noise_1", "reg_hard_only", "reg_easy_only")
BASE_OVERRIDES = ("seeds.sft=11", "seeds.rm=11")
RUNS = {"rl_sgd": ("sgd", False), "rl_adam": ("adam", False), "rl_sgd_short": ("sgd", True),
        "rl_adam_short": ("adam", True)}
OUTCOME_OF = {"rl_sgd": "sgd_1", "rl_adam": "adam_1", "rl_sgd_short": "sgd_short", "rl_adam_short": "adam_short"}


@dataclass(frozen=True)
class ConfirmSettings:
    second_seed: int = 12            # the _s12 policies' SFT seed (the _s11 ones use the base config's)
    short_sft_steps: int = 300       # short_*
    clean_conf_hard: float = 0.3     # clean_s11's teacher
    mid_conf_hard: float = 0.55      # mid_*'s teacher
    instruct_epochs: int = 2
    instruct_seed: int = 200
    quarter: float = 0.25            # bt_on_q: the snapshot nearest this fraction of the RM steps
    mix_fraction: float = 0.5        # bt_mix50: this fraction of the prompts' pairs on-policy, the rest off-policy
    noisy: tuple = (0.2, 0.4)        # label-swap fractions of bt_noisy_20, bt_noisy_40
    length_bonus: float = 0.6        # bt_length_x2: twice the grid's 0.3
    reg_noise_sd: float = 1.0        # reg_noise_1's fixed per-response noise
    sgd_lr: float = 0.003            # P1's learning rate (§9's r_G rule's choice, fixed at registration)
    short_steps: int = 10            # S1/S2: optimizer steps of the short horizon
    seeds: tuple = (0, 1, 2)
    data_seed: int = 111             # the label swaps, the on/off mix and the regression noise
    n_boot: int = 10000

    def __post_init__(self):
        if self.short_sft_steps < 1 or self.instruct_epochs < 1 or self.short_steps < 1:
            raise ValueError("short_sft_steps, instruct_epochs and short_steps must be >= 1")
        if not 0 < self.quarter < 1 or not 0 < self.mix_fraction < 1:
            raise ValueError(f"quarter and mix_fraction must be in (0, 1); got {self.quarter}, {self.mix_fraction}")
        if len(self.noisy) != 2 or not all(0 <= v < 0.5 for v in self.noisy):
            raise ValueError(f"noisy must be two fractions in [0, 0.5); got {list(self.noisy)}")
        if not all(0 <= v <= 1 for v in (self.clean_conf_hard, self.mid_conf_hard)):
            raise ValueError("clean_conf_hard and mid_conf_hard must be in [0, 1]")
        if not self.sgd_lr > 0 or not self.reg_noise_sd >= 0:
            raise ValueError(f"sgd_lr must be > 0 and reg_noise_sd >= 0; got {self.sgd_lr}, {self.reg_noise_sd}")
        if len(self.seeds) < 1 or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct; got {list(self.seeds)}")
        if self.n_boot < 100:
            raise ValueError(f"n_boot must be >= 100; got {self.n_boot}")


QUICK = ConfirmSettings(short_sft_steps=30, instruct_epochs=1, short_steps=4, seeds=(0,), n_boot=200)
MARKER = {"data": "data.npz", "sft": "sft.eqx", "samples": "samples.npz", "policies": "confirm_policies.eqx",
          "rms": "confirm_rms.eqx", "rm_eval": "confirm_eval.json", **{k: f"{k}/results.json" for k in RUNS},
          "analyze": None}


def base_config(quick: bool = False) -> Config:
    """The registered base config: ``small`` (``tiny`` for ``--quick``) with :data:`BASE_OVERRIDES`."""
    return get_config("tiny" if quick else "small").with_overrides(list(BASE_OVERRIDES))


# ------------------------------------------------------------------------------------------ policies
def stage_policies(cfg: Config, st: ConfirmSettings, run: RunDir, log=print):
    base = run.policy(cfg)

    def sft(name, seed=None, steps=None, conf_hard=None):
        c = cfg.replace(seeds=dataclasses.replace(cfg.seeds, sft=cfg.seeds.sft if seed is None else seed))
        c = c if steps is None else c.replace(sft_steps=steps)
        c = c if conf_hard is None else c.replace(teacher=dataclasses.replace(cfg.teacher, conf_hard=conf_hard))
        log(f"  {name}: SFT seed {c.seeds.sft}, {c.sft_steps} steps, teacher.conf_hard {c.teacher.conf_hard}")
        return train_sft(c, log)[0]

    b = st.second_seed
    pols = [base, sft("sft_s12", b), sft("short_s11", steps=st.short_sft_steps),
            sft("short_s12", b, st.short_sft_steps), sft("clean_s11", conf_hard=st.clean_conf_hard),
            sft("mid_s11", conf_hard=st.mid_conf_hard), sft("mid_s12", b, conf_hard=st.mid_conf_hard),
            grid.instruct_policy(cfg, run, base, st.instruct_epochs, st.instruct_seed, log)]
    run.save_tree("confirm_policies.eqx", stack(pols))


def load_policies(cfg: Config, run: RunDir):
    return run.policies(cfg, "confirm_policies.eqx", len(POLICIES))


# ----------------------------------------------------------------------------------------------- rms
def rm_training_data(cfg: Config, st: ConfirmSettings, run: RunDir):
    """chosen/rejected [11, N, T] and the :class:`Objective` of :data:`RMS` (in that order), from the base SFT
    policy's RM pairs; the random choices are drawn from ``numpy.random.default_rng(data_seed)`` in a fixed
    order: the swapped pairs, the on-policy half of bt_mix50, the regression noise."""
    pairs = rm_pairs(run, run.data(), run.load_npz("samples.npz"))
    p, n = pairs.prompts, pairs.prompts.n
    on_c, on_r, off_c, off_r = pairs.on_chosen, pairs.on_rejected, pairs.off_chosen, pairs.off_rejected
    full = pairs.full
    rng = np.random.default_rng(st.data_seed)
    order = rng.permutation(n)
    on_half = np.zeros(n, bool)
    on_half[rng.permutation(n)[: int(round(st.mix_fraction * n))]] = True
    noise = rng.normal(0.0, st.reg_noise_sd, (2, n))

    def swapped(frac):
        flip = np.zeros(n, bool)
        flip[order[: int(round(frac * n))]] = True
        return np.where(flip[:, None], on_r, on_c), np.where(flip[:, None], on_c, on_r)

    mix = (np.where(on_half[:, None], on_c, off_c), np.where(on_half[:, None], on_r, off_r))
    g_c, g_r = ground_truth(cfg, p, on_c), ground_truth(cfg, p, on_r)
    len_c = np.asarray(T.response_length(jnp.asarray(on_c)), np.float64)
    len_r = np.asarray(T.response_length(jnp.asarray(on_r)), np.float64)
    swap = g_r + st.length_bonus * len_r > g_c + st.length_bonus * len_c
    length = (np.where(swap[:, None], on_r, on_c), np.where(swap[:, None], on_c, on_r))
    hard = np.asarray(p.hard(cfg.task, cfg.teacher.hard_fraction))
    bt = [(on_c, on_r), (off_c, off_r), mix, swapped(st.noisy[0]), swapped(st.noisy[1]), length, (on_c, on_r)]
    reg = [(g_c, g_r), (g_c + noise[0], g_r + noise[1]), (np.where(hard, g_c, 0.0), np.where(hard, g_r, 0.0)),
           (np.where(hard, 0.0, g_c), np.where(hard, 0.0, g_r))]
    chosen = np.stack([full(c) for c, _ in bt] + [full(on_c)] * len(reg))
    rejected = np.stack([full(r) for _, r in bt] + [full(on_r)] * len(reg))
    t_c, t_r = np.zeros((len(RMS), n)), np.zeros((len(RMS), n))
    for i, (a, b) in enumerate(reg, start=len(bt)):
        t_c[i], t_r[i] = a, b
    obj = Objective(w_bt=np.array([1.0] * len(bt) + [0.0] * len(reg), np.float32),
                    w_reg=np.array([0.0] * len(bt) + [1.0] * len(reg), np.float32), t_chosen=t_c, t_rejected=t_r)
    info = {"n_pairs": int(n), "on_policy_in_mix": int(on_half.sum()),
            "swapped": [int(round(f * n)) for f in st.noisy], "length_judge_swapped": int(swap.sum()),
            "hard_fraction": float(hard.mean())}
    return chosen, rejected, obj, info


def stage_rms(cfg: Config, st: ConfirmSettings, run: RunDir, log=print):
    chosen, rejected, obj, info = rm_training_data(cfg, st, run)
    d, smp, pol = run.data(), run.load_npz("samples.npz"), run.policy(cfg)
    snaps = []
    rms, losses, _ = train_rms(cfg, pol, chosen, rejected, curve_set(cfg, run, d, smp), log, objective=obj,
                               on_chunk=lambda step, m: snaps.append((step, m)))
    total = int(losses.shape[0])
    step_q, snap_q = min(snaps, key=lambda s: abs(s[0] - st.quarter * total))
    q = RMS.index("bt_on_q")
    rms = jax.tree_util.tree_map(lambda a, b: a.at[q].set(b[q]), rms, snap_q)
    run.save_json("confirm_rm_log.json", {**info, "steps": total, "quarter_step": int(step_q), "rms": list(RMS)})
    run.save_tree("confirm_rms.eqx", rms)


def load_rms(cfg: Config, run: RunDir):
    return run.rms(cfg, "confirm_rms.eqx", len(RMS))


# ------------------------------------------------------------------------------------------- rm_eval
def stage_rm_eval(cfg: Config, st: ConfirmSettings, run: RunDir, log=print):
    """Every policy's eval samples scored by every RM: the report, the RL normalisation, the exports."""
    out = common.evaluate_policies(cfg, run, load_policies(cfg, run), POLICIES, load_rms(cfg, run), RMS, log)
    run.save_json("confirm_eval.json", out)


# ------------------------------------------------------------------------------------------------ rl
def cells() -> list:
    """The 88 cells as (policy, RM), policy-major."""
    return [(p, m) for p in POLICIES for m in RMS]


def stage_rl(cfg: Config, st: ConfirmSettings, run: RunDir, sub: str, log=print, stop_after_epoch=None):
    """RLOO on every cell × seed: one epoch, or the first ``short_steps`` optimizer steps (``sub``: :data:`RUNS`),
    evaluated on the held-out test prompts before and after."""
    optimizer, short = RUNS[sub]
    rollouts = None
    if short:
        if st.short_steps % cfg.n_minibatches:
            raise ValueError(f"short_steps ({st.short_steps}) must be a multiple of n_minibatches "
                             f"({cfg.n_minibatches}): whole rollouts")
        rollouts = st.short_steps // cfg.n_minibatches
    runs = [(p, m, s) for p, m in cells() for s in st.seeds]
    ev = run.load_json("confirm_eval.json")
    lr = st.sgd_lr if optimizer == "sgd" else cfg.rl_lr
    log(f"  {len(cells())} cells × {len(st.seeds)} seeds, {optimizer} lr {lr}, "
        + (f"{st.short_steps} optimizer steps" if short else "one epoch"))
    prog = common.rl_sweep(cfg, sub, run, run.data(), load_policies(cfg, run), [POLICIES.index(p) for p, _, _ in runs],
                           load_rms(cfg, run), [RMS.index(m) for _, m, _ in runs],
                           [ev["norm_stats"][p][m] for p, m, _ in runs], [s for *_, s in runs], 1, log,
                           stop_after_epoch, optimizer=optimizer, lr=lr, rollouts=rollouts, eval_sets=("test",))
    if prog is None:
        return
    raw = increases(prog, "test", gt_sd=np.ones(len(runs)))
    run.save_json(os.path.join(sub, "results.json"),
                  {"runs": [{"policy": p, "model": m, "seed": s} for p, m, s in runs], "optimizer": optimizer,
                   "lr": lr, "optimizer_steps": st.short_steps if short else cfg.adam_steps_per_epoch,
                   "test_gt_increase": raw["gt"][-1].tolist(), "test_proxy_increase": raw["proxy"][-1].tolist(),
                   "test_kl": raw["kl"][-1].tolist()})


# ------------------------------------------------------------------------------------------- analyze
def collect(run: RunDir, st: ConfirmSettings, log=print) -> list:
    """One row per cell: policy, model, the predictors (``rmtheory evaluate`` on the export with its count
    sketches; the exact rates from ``exports/<policy>_rates.json``) and the outcomes, each the mean over seeds
    (``"<run>.test_gt"``, ``"<run>.test_proxy"``), a non-finite cell outcome replaced by that outcome's worst."""
    ex = run.path("exports")
    preds = {}
    for p in POLICIES:
        log(f"  rmtheory evaluate {os.path.join(ex, p + '.csv')} --sketches {p}_projections.npz")
        rep = run_evaluate(os.path.join(ex, f"{p}.csv"), os.path.join(ex, "offpolicy.csv"),
                           os.path.join(ex, f"{p}_projections.npz"))
        rates = run.load_json(os.path.join("exports", f"{p}_rates.json"))["sources"]
        for m in RMS:
            preds[(p, m)] = S.predictor_values(rep[m], rates[m])
    outcomes = {}
    for sub, tag in OUTCOME_OF.items():
        res = run.load_json(os.path.join(sub, "results.json"))
        for kind in ("gt", "proxy"):
            a = np.asarray(res[f"test_{kind}_increase"], np.float64)
            by = {}
            for r, v in zip(res["runs"], a):
                by.setdefault((r["policy"], r["model"]), []).append(v)
            vals = {c: float(np.mean(v)) for c, v in by.items()}
            finite = [v for v in vals.values() if np.isfinite(v)]
            worst = min(finite) if finite else float("nan")
            for c, v in vals.items():
                outcomes.setdefault(c, {})[f"{tag}.test_{kind}"] = v if np.isfinite(v) else worst
    return [{"policy": p, "model": m, **preds[(p, m)], **outcomes[(p, m)]} for p, m in cells()]


def stage_analyze(cfg: Config, st: ConfirmSettings, run: RunDir, log=print, figures_dir: str | None = None):
    rows = collect(run, st, log)
    groups = [np.flatnonzero(np.array([r["policy"] for r in rows]) == p) for p in POLICIES]
    res = S.analyze(rows, groups, st.n_boot)
    res.update(settings=dataclasses.asdict(st), base_overrides=list(BASE_OVERRIDES), cells=rows,
               policies=run.load_json("confirm_eval.json")["policies"],
               rm_log=run.load_json("confirm_rm_log.json"))
    figs = run.path("figures")
    os.makedirs(figs, exist_ok=True)
    cols = ["policy", "model", *S.PREDICTORS, *S.EXTRA, *S.outcome_names()]
    io.save_csv(os.path.join(figs, "lm_confirm_cells.csv"), cols, [[r[c] for c in cols] for r in rows])
    io.save_json(os.path.join(figs, "lm_confirm.json"), res)
    md = S.markdown(res)
    io.save_text(os.path.join(figs, "lm_confirm.md"), md)
    S.plot(os.path.join(figs, "lm_confirm.png"), rows, res, POLICIES)
    publish(figs, ("lm_confirm.md", "lm_confirm.json", "lm_confirm.png", "lm_confirm_cells.csv"), figures_dir)
    log(md)


# ---------------------------------------------------------------------------------------------- run
def run(cfg: Config, st: ConfirmSettings, out, log=print, until: str | None = None,
        figures_dir: str | None = None, stop_after_epoch: int | None = None):
    """Run (or resume) the study in run dir ``out`` from the base config ``cfg`` (:func:`base_config`)."""

    def own_stages(rd):
        return {"policies": lambda: stage_policies(cfg, st, rd, log), "rms": lambda: stage_rms(cfg, st, rd, log),
                "rm_eval": lambda: stage_rm_eval(cfg, st, rd, log),
                **{k: (lambda k=k: stage_rl(cfg, st, rd, k, log, stop_after_epoch)) for k in RUNS},
                "analyze": lambda: stage_analyze(cfg, st, rd, log, figures_dir)}

    return common.run_study("confirm", cfg, st, out, own_stages, MARKER, log, until)
