"""`rmtheory lm paradox --quick`: artifacts, resume after an interruption to identical numbers, checkpoint
selection, KL-stop outcomes and the moderate-vs-most-accurate bootstrap on hand-made inputs."""

import os

import numpy as np
import pytest

from rmtheory.io import load_json as strict_load  # strict: NaN/Infinity are an error
from rmtheory.lm.config import get_config
from rmtheory.lm.studies import paradox

CFG = get_config("tiny")


def quiet(msg):
    pass


@pytest.mark.slow
def test_paradox_quick_artifacts(paradox_run):
    out = paradox_run
    ck = strict_load(os.path.join(out, "paradox_ckpts.json"))
    assert len(ck["steps"]) == paradox.QUICK.n_ckpts == len(set(ck["steps"]))
    assert ck["curve_acc"][int(np.argmax(ck["curve_acc"]))] == max(ck["curve_acc"])
    s = strict_load(os.path.join(out, "figures", "lm_paradox.json"))
    assert set(s["checkpoints"]) == set(paradox.ckpt_names(paradox.QUICK))
    assert set(s["answer"]) == {"final", "best", "kl_stop", "one_epoch"}
    for f in ("lm_paradox.md", "lm_paradox.png"):
        assert os.path.exists(os.path.join(out, "figures", f))
    res = strict_load(os.path.join(out, "rl_paradox", "results.json"))
    gt = np.asarray(res["gt_increase"])
    for k in ("test_proxy_increase", "test_gt_increase"):  # the held-out test prompts, beside the PG eval prompts
        t = np.asarray(res[k])
        assert t.shape == gt.shape and np.all(t[0] == 0) and np.all(np.isfinite(t))


@pytest.mark.slow
def test_paradox_resumes_after_interruption_to_identical_numbers(paradox_run, tmp_path, copy_without):
    out = str(tmp_path / "p")
    copy_without(paradox_run, out, ["rl_paradox", "figures"])
    paradox.run(CFG, paradox.QUICK, out, log=quiet, until="rl", stop_after_epoch=1)  # killed after epoch 1 of 2
    prog = strict_load(os.path.join(out, "rl_paradox", "progress.json"))
    assert prog["epoch"] == 1 and not os.path.exists(os.path.join(out, "rl_paradox", "results.json"))
    paradox.run(CFG, paradox.QUICK, out, log=quiet)                          # resume
    a = strict_load(os.path.join(paradox_run, "rl_paradox", "results.json"))
    b = strict_load(os.path.join(out, "rl_paradox", "results.json"))
    assert a == b


def test_select_evenly_spans_chance_to_best_and_keeps_the_best():
    acc = np.array([0.05, 0.3, 0.45, 0.5, 0.52, 0.6, 0.61, 0.7, 0.74, 0.8, 0.85, 0.86, 0.9, 0.89])
    idx, targets = paradox.select_evenly(acc, 5, low=0.45)
    assert len(set(idx)) == 5 and int(np.argmax(acc)) in idx
    assert targets[0] == 0.45 and targets[-1] == 0.9
    assert np.max(np.abs(np.sort(acc[idx]) - targets)) <= 0.05
    idx, targets = paradox.select_evenly(acc[2:], 5, low=0.2)   # nothing below 0.45: the targets start there
    assert targets[0] == 0.45 and len(set(idx)) == 5
    with pytest.raises(ValueError, match="ckpt_every"):
        paradox.select_evenly(acc[:3], 5, low=0.45)


def test_kl_stop_outcomes():
    gt = np.array([[0.0, 0.0], [0.2, 0.1], [0.5, 0.3], [0.1, 0.4]])   # [E+1, R]
    kl = np.array([[0.0, 0.0], [0.5, 0.5], [1.5, 0.8], [2.0, 0.9]])
    o = paradox.outcomes(gt, kl, kl_stop=1.0)
    assert o["stop_epoch"].tolist() == [2, 3]          # run 0 exceeds the KL after epoch 2; run 1 never
    assert o["kl_stop"].tolist() == [0.5, 0.4]
    assert o["final"].tolist() == [0.1, 0.4] and o["best"].tolist() == [0.5, 0.4]
    assert o["one_epoch"].tolist() == [0.2, 0.1]


def test_moderate_vs_most_accurate_detects_a_clear_paradox_and_its_absence():
    acc = np.linspace(0.5, 0.9, 9)
    rng = np.random.default_rng(0)
    noise = 0.01 * rng.standard_normal((9, 5))
    peaked = 1.0 - (acc - 0.7) ** 2 * 20               # the middle is best
    a = paradox.moderate_vs_most_accurate(peaked[:, None] + noise, acc, 500)
    assert a["D"] > 0 and a["ci"][0] > 0
    rising = acc * 2                                    # the most accurate is best
    b = paradox.moderate_vs_most_accurate(rising[:, None] + noise, acc, 500)
    assert b["D"] < 0 and b["ci"][1] < 0
