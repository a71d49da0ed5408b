"""The confirmatory study (`rmtheory lm confirm`, paper_claims.md §10): its reward models' data, its registered
rules on hand-made comparisons, and its analysis on synthetic cells with a planted best predictor. The whole
`--quick` study is run by hand (`rmtheory lm confirm --out runs/cq --quick`, about 2 min), not in the suite."""

import numpy as np
import pytest

from rmtheory.lm.config import get_config
from rmtheory.lm.rundir import RunDir
from rmtheory.lm.studies import _confirm_stats as S
from rmtheory.lm.studies import confirm

CFG = get_config("tiny")


def test_reward_model_data_follow_their_definitions(tiny_run):
    run = RunDir(tiny_run[0])
    st = confirm.ConfirmSettings()
    chosen, rejected, obj, info = confirm.rm_training_data(CFG, st, run)
    n = info["n_pairs"]
    assert chosen.shape[:2] == rejected.shape[:2] == (len(confirm.RMS), n)
    i = {m: confirm.RMS.index(m) for m in confirm.RMS}
    on_c, on_r = chosen[i["bt_on"]], rejected[i["bt_on"]]
    np.testing.assert_array_equal(chosen[i["bt_on_q"]], on_c)
    # bt_mix50: each pair is the on-policy pair or the off-policy pair of its prompt, half and half
    is_on = np.all(chosen[i["bt_mix50"]] == on_c, 1) & np.all(rejected[i["bt_mix50"]] == on_r, 1)
    is_off = np.all(chosen[i["bt_mix50"]] == chosen[i["bt_off"]], 1) & np.all(
        rejected[i["bt_mix50"]] == rejected[i["bt_off"]], 1)
    half = info["on_policy_in_mix"]
    assert half == round(0.5 * n) and np.all(is_on | is_off) and is_on.sum() >= half and is_off.sum() >= n - half
    # the noisy models swap their fraction of the pairs, the 20 % swaps among the 40 % ones
    distinct = np.any(on_c != on_r, 1)
    sw = {f: np.all(chosen[i[f"bt_noisy_{f}"]] == on_r, 1) & distinct for f in (20, 40)}
    for f in (20, 40):
        assert round(f / 100 * n) - (n - distinct.sum()) <= sw[f].sum() <= round(f / 100 * n)
    assert np.all(sw[40][sw[20]]) and sw[40].sum() > sw[20].sum()
    # the regression targets: r_G, r_G + N(0, 1), r_G on hard prompts only, on easy prompts only
    gt = obj.t_chosen[i["reg_gt"]]
    h, e = obj.t_chosen[i["reg_hard_only"]], obj.t_chosen[i["reg_easy_only"]]
    np.testing.assert_array_equal(h + e, gt)
    assert np.all((h == 0) | (e == 0)) and 0 < info["hard_fraction"] < 1
    resid = np.concatenate([obj.t_chosen[i["reg_noise_1"]] - gt, obj.t_rejected[i["reg_noise_1"]]
                            - obj.t_rejected[i["reg_gt"]]])
    assert abs(resid.std() - 1.0) < 4 / np.sqrt(resid.size) * 1.5 and abs(resid.mean()) < 4 / np.sqrt(resid.size)
    assert list(obj.w_bt) == [1.0] * 7 + [0.0] * 4 and list(obj.w_reg) == [0.0] * 7 + [1.0] * 4
    assert confirm.rm_training_data(CFG, st, run)[3] == info  # seeded


def _comps(verdicts: dict, lead="rate_G"):
    return {f"{lead} - {b}": {s: {"verdict": verdicts.get((b, s), "not distinguishable")} for s in S.STATS}
            for b in ("On", "Off", "On&Off", "Var&Acc")}


def test_registered_rule_r1_r2():
    every = {(b, s): "beats" for b in ("On", "Off", "On&Off", "Var&Acc") for s in S.STATS}
    assert S.rule(_comps(every), "rate_G") == "confirmed"
    assert S.rule(_comps({("Off", "within_policy"): "beats"}), "rate_G") == "partly"
    assert S.rule(_comps({**every, ("Off", "over_cells"): "loses"}), "rate_G") == "reversed"
    assert S.rule(_comps({}), "rate_G") == "not shown"


def _within(values):
    return {c: {"r": v} for c, v in zip(S.TRUST, values)}


def test_column_to_trust_names_the_unbeaten_best_and_a_sufficient_accuracy_column():
    nd = {(a, b): {"verdict": "not distinguishable"} for i, a in enumerate(S.TRUST) for b in S.TRUST[i + 1:]}
    # rate_adam is best and not distinguishable from Off (the best accuracy column) → Off sufficient
    t = S.column_to_trust(_within([0.5, 0.9, 0.6, 0.8, 0.7, 0.4]), nd)
    assert t == {"column": "rate_adam", "sufficient": "Off", "unbeaten": list(S.TRUST)}
    # rate_adam beats every accuracy column → nothing sufficient
    beats = {**nd, **{("rate_adam", b): {"verdict": "beats"} for b in S.TRUST[2:]}}
    assert S.column_to_trust(_within([0.5, 0.9, 0.6, 0.8, 0.7, 0.4]), beats)["sufficient"] is None
    # the largest is beaten (On beats rate_G, registered as (rate_G, On): "loses") → the next unbeaten one
    loses = {**nd, ("rate_G", "On"): {"verdict": "loses"}}
    t = S.column_to_trust(_within([0.95, 0.5, 0.6, 0.55, 0.3, 0.2]), loses)
    assert t["column"] == "On" and "rate_G" not in t["unbeaten"] and t["sufficient"] is None


def test_analysis_finds_a_planted_best_predictor():
    """Synthetic cells: the outcome is (a monotone function of) rate_adam within every policy, plus a small policy
    offset; the accuracy columns are noise. R2 must come out confirmed and the column to trust rate_adam."""
    rng = np.random.default_rng(0)
    rows = []
    for p in range(8):
        for m in range(11):
            lead = rng.normal()
            row = {c: rng.normal() for c in S.PREDICTORS + S.EXTRA}
            row.update(policy=f"p{p}", model=f"m{m}", rate_adam=lead, rate_G=lead + 0.05 * rng.normal())
            for o in S.outcome_names():
                row[o] = np.exp(lead) + 0.1 * p
            rows.append(row)
    groups = [np.arange(p * 11, (p + 1) * 11) for p in range(8)]
    res = S.analyze(rows, groups, n_boot=200)
    v = res["verdicts"]
    assert v["P2"]["rule"] == "confirmed" and v["P2"]["trust"]["column"] == "rate_adam"
    assert v["P2"]["trust"]["sufficient"] is None and v["P1"]["rule"] == "confirmed"
    assert res["outcomes"]["P2"]["predictors"]["rate_adam"]["within_policy"]["r"] == pytest.approx(1.0)
    assert v["P2"]["R3"]["rate_adam - rate_G_within"] == {"over_cells": "beats", "within_policy": "beats"}
    assert "**confirmed**" in S.markdown(res)


def test_settings_are_checked():
    for bad in (dict(noisy=(0.2, 0.6)), dict(mix_fraction=1.0), dict(sgd_lr=0.0), dict(seeds=(0, 0)),
                dict(short_steps=0), dict(n_boot=10)):
        with pytest.raises(ValueError):
            confirm.ConfirmSettings(**bad)
    assert confirm.base_config().seeds.sft == 11 and confirm.base_config().seeds.rm == 11
