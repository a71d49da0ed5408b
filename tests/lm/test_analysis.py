"""The validity gates of :func:`rmtheory.lm.analysis.validity_gates` on hand-made measurements: each gate reads
the numbers it names (G8/G9 the held-out test prompts, G9's RM chosen on the PG eval prompts, G11 the
perfect source's Var against r_G's)."""

from rmtheory.lm.analysis import validity_gates
from rmtheory.lm.config import BASELINES, RM_SOURCES, SOURCES


def _st(mean, std):
    return {"mean": mean, "std": std, "ci": [mean - std, mean + std]}


def _inputs(pg_gain, test_gain, var_perfect=0.1):
    rep = {s: {"global": {"var": 0.7, "acc_on": 0.85, "acc_off": 0.9}} for s in SOURCES + BASELINES}
    rep["sft_likelihood"]["global"]["acc_on"] = 0.6
    rep["rm_100"]["global"]["acc_on"] = 0.9
    rep["perfect_lowvar"]["global"]["var"] = var_perfect
    ev = {"report": rep, "initial_policy": {"gt_between_prompt_share": 0.4, "distinct_per_prompt": 8.0,
                                            "chance_on_acc": 0.5}}
    inc = {"gt": {s: _st(pg_gain.get(s, 0.1), 0.01) for s in SOURCES},
           "test_gt": {s: _st(test_gain.get(s, 0.1), 0.01) for s in SOURCES}}
    cfg = {"seeds": {"rl": [0, 1, 2]}, "adam_steps_per_epoch": 100}
    return ev, inc, cfg


def _gates(*args, **kw):
    return {g["id"]: g for g in validity_gates(*_inputs(*args, **kw))}


def test_all_gates_pass_on_a_good_instrument():
    g = _gates({"ground_truth": 0.3, "rm_0": 0.2}, {"ground_truth": 0.3, "rm_0": 0.2})
    assert [k for k, v in g.items() if not v["pass"]] == []
    assert list(g) == [f"G{i}" for i in range(1, 12)]


def test_g8_reads_the_held_out_test_prompts():
    """A gain on the PG eval prompts (the RL training prompts) that does not carry over fails G8."""
    g = _gates({"ground_truth": 0.3}, {"ground_truth": 0.0})
    assert not g["G8"]["pass"] and g["G8"]["value"] == 0.0


def test_g9_chooses_on_pg_eval_and_reports_on_test():
    """The RM with the best PG-eval gain is named, and its *test* gain decides, even if another RM did well on
    the test prompts (choosing by the reported number would select its noise)."""
    rm_a, rm_b = RM_SOURCES[0], RM_SOURCES[1]
    g = _gates({rm_a: 0.5, rm_b: 0.2, "ground_truth": 0.3}, {rm_a: -0.01, rm_b: 0.4, "ground_truth": 0.3})
    assert not g["G9"]["pass"] and g["G9"]["value"] == -1.0
    assert "RM 100" in g["G9"]["gate"]


def test_g11_needs_the_perfect_source_at_most_half_r_g_variance():
    ok = _gates({"ground_truth": 0.3}, {"ground_truth": 0.3}, var_perfect=0.35)["G11"]
    bad = _gates({"ground_truth": 0.3}, {"ground_truth": 0.3}, var_perfect=0.657)["G11"]
    assert ok["pass"] and ok["value"] == 0.5
    assert not bad["pass"] and abs(bad["value"] - 0.657 / 0.7) < 1e-12
