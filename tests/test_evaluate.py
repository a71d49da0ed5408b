"""``rmtheory evaluate``: known answers on hand-made fixtures, the LM pipeline's file format, malformed
input, warnings, the CLI, and property tests (hypothesis)."""

from __future__ import annotations

import csv
import itertools
import json
import math
import statistics
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import rmtheory
from rmtheory import cli, rm_report
from rmtheory.evaluate import InputError, evaluate

FIX = Path(__file__).parent / "fixtures" / "evaluate"
EPS = 1e-8


# ---- an independent pure-Python reference (no numpy, no rm_report) ------------------------------------

def _sign(x):
    return (x > 0) - (x < 0)


def reference(rows, model, gt=None, scheme="global"):
    """rows: list of dicts (prompt_id, model, gt). Returns (var, acc_on) per the paper's protocol."""
    by_prompt = {}
    for r in rows:
        by_prompt.setdefault(r["prompt_id"], []).append(r)
    groups = [g for g in by_prompt.values() if len(g) >= 2]
    scores = [r[model] for g in groups for r in g]
    if scheme == "global":
        s2 = statistics.pvariance(scores) + EPS
    else:
        s2 = statistics.fmean(statistics.variance([r[model] for r in g]) for g in groups) + EPS
    var = statistics.fmean(statistics.variance([r[model] for r in g]) / s2 for g in groups)
    acc = None
    if gt is not None:
        accs = []
        for g in groups:
            pairs = list(itertools.combinations(g, 2))
            ok = sum(_sign(x[model] - y[model]) == _sign(x[gt] - y[gt]) for x, y in pairs)
            accs.append(ok / len(pairs))
        acc = statistics.fmean(accs)
    return var, acc


def read_rows(path):
    with open(path) as f:
        return [{k: (v if k in ("prompt_id", "sample_id") else (float(v) if v else None)) for k, v in r.items()}
                for r in csv.DictReader(f)]


# ---- known answers ------------------------------------------------------------------------------------

def test_known_answers_tiny():
    """Hand-computed: see the fixture. a = [1,2,3 | 4,4,0], b = [5,5,0 | 1,2,3], gt = [1,2,3 | 0,1,2]."""
    rep = evaluate(FIX / "tiny.csv", off_policy=FIX / "tiny_pairs.csv", bootstrap=0)
    a, b, g = rep["a"], rep["b"], rep["ground_truth"]
    # a: population variance of all 6 scores 80/36; per-prompt unbiased variances 1 and 48/9.
    assert a.var == pytest.approx((1 + 48 / 9) / 2 / (80 / 36 + EPS), rel=1e-13)
    assert a.var == pytest.approx(1.425, rel=1e-7)
    assert b.var == pytest.approx((25 / 3 + 1) / 2 / (32 / 9 + EPS), rel=1e-13)
    assert g.var == pytest.approx(1 / (11 / 12 + EPS), rel=1e-13)
    # on-policy: a is perfect on p1, wrong on all 3 pairs of p2 (a tie vs a strict order counts as an error)
    assert a.acc_on == 0.5 and b.acc_on == 0.5 and g.acc_on == 1.0
    # off-policy: a: correct, both tie (correct), wrong -> 2/3; b: wrong, wrong (strict vs tie), correct
    assert a.acc_off == pytest.approx(2 / 3, abs=1e-15) and b.acc_off == pytest.approx(1 / 3, abs=1e-15)
    assert g.acc_off == 1.0
    assert a.on_off == pytest.approx(7 / 12) and a.var_acc == pytest.approx((a.var + 7 / 12) / 2)
    assert b.on_off == pytest.approx(5 / 12)
    assert a.n_prompts == 2 and a.n_samples == 6 and a.n_off_pairs == 3
    assert a.mean == pytest.approx(14 / 6) and a.std == pytest.approx(math.sqrt(80 / 36 + EPS))
    # rankings by each measure, best first; the ground truth is the reference, not ranked
    assert rep.rankings["var"] == ["a", "b"]
    assert "ground_truth" not in rep.rankings["acc_on"] and "ground_truth" not in rep.ranks["acc_on"]
    assert rep.rankings["acc_off"] == ["a", "b"] and rep.ranks["acc_off"] == {"a": 1, "b": 2}
    # Proposition 3 bound: 2|S|(1 - e^{-γ/2}) / sqrt(Var), |S| = 2 evaluated prompts, γ = 1
    assert a.t_gamma_lower_bound == pytest.approx(2 * 2 * (1 - math.exp(-0.5)) / math.sqrt(a.var), rel=1e-12)
    assert rep.warnings == []


def test_known_answers_prompt_variance_and_no_gt_pairs():
    rep = evaluate(FIX / "tiny.csv", off_policy=FIX / "tiny_pairs_nogt.csv", normalisation="prompt_variance",
                   bootstrap=0)
    a = rep["a"]
    mv = (1 + 48 / 9) / 2
    assert a.var == pytest.approx(mv / (mv + EPS), rel=1e-13)
    # without ground-truth columns the chosen response is strictly preferred: a's tie is now an error
    assert a.acc_off == pytest.approx(1 / 3) and rep["b"].acc_off == pytest.approx(2 / 3)
    assert math.isnan(rep["ground_truth"].acc_off)
    assert any("strictly preferred" in w for w in rep.warnings)


def test_jsonl_and_mapping_match_csv(tmp_path):
    r_csv = evaluate(FIX / "tiny.csv", bootstrap=0)
    r_jsonl = evaluate(FIX / "tiny.jsonl", bootstrap=0)
    rows = read_rows(FIX / "tiny.csv")
    r_map = evaluate({k: [r[k] for r in rows] for k in rows[0]}, bootstrap=0)
    for r in (r_jsonl, r_map):
        for m in ("a", "b", "ground_truth"):
            assert r[m].var == r_csv[m].var and r[m].acc_on == r_csv[m].acc_on


def test_parquet_roundtrip(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rows = read_rows(FIX / "tiny.csv")
    path = tmp_path / "tiny.parquet"
    pq.write_table(pa.table({k: [r[k] for r in rows] for k in rows[0]}), path)
    r_pq, r_csv = evaluate(path, bootstrap=0), evaluate(FIX / "tiny.csv", bootstrap=0)
    assert r_pq["a"].var == r_csv["a"].var and r_pq["b"].acc_on == r_csv["b"].acc_on


def test_parquet_without_pyarrow(monkeypatch, tmp_path):
    path = tmp_path / "x.parquet"
    path.write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(InputError, match="pip install pyarrow"):
        evaluate(path)


# ---- the LM pipeline's files --------------------------------------------------------------------------

PIPE_MODELS = ["rm_100", "rm_75", "rm_50", "rm_25", "rm_0", "perfect_lowvar"]


def _write_pipeline_files(tmp_path, P=40, K=10, seed=0):
    rng = np.random.default_rng(seed)
    gt = rng.normal(size=(P, K))
    scores = {f"rm_{f}": gt * f / 100 + rng.normal(size=(P, K)) * (1 - f / 100 + 0.1) for f in (100, 75, 50, 25, 0)}
    low = np.where(rng.random(P) < 0.5, 1e-3, 1.0)[:, None]
    scores["perfect_lowvar"] = gt * low
    scores["ground_truth"] = gt
    with open(tmp_path / "eval_rewards.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["prompt_id", "sample_id", *PIPE_MODELS, "ground_truth"])
        for p in range(P):
            for k in range(K):
                w.writerow([f"q{p:04d}", k] + [repr(float(scores[m][p, k])) for m in PIPE_MODELS + ["ground_truth"]])
    off = {m: rng.normal(size=(P, 2)) for m in PIPE_MODELS + ["ground_truth"]}
    with open(tmp_path / "eval_offpolicy.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["prompt_id"] + [f"{m}.{s}" for m in PIPE_MODELS + ["ground_truth"] for s in ("chosen", "rejected")])
        for p in range(P):
            w.writerow([f"q{p:04d}"]
                       + [repr(float(off[m][p, j])) for m in PIPE_MODELS + ["ground_truth"] for j in (0, 1)])
    return scores, off


@pytest.mark.parametrize("scheme", ["global", "prompt_variance"])
def test_pipeline_format_agrees_with_rm_report(tmp_path, scheme):
    scores, off = _write_pipeline_files(tmp_path)
    rep = evaluate(tmp_path / "eval_rewards.csv", off_policy=tmp_path / "eval_offpolicy.csv",
                   normalisation=scheme, bootstrap=200, seed=1)
    assert [m.name for m in rep.models] == PIPE_MODELS + ["ground_truth"]
    gc, gr = off["ground_truth"][:, 0], off["ground_truth"][:, 1]
    for m in PIPE_MODELS + ["ground_truth"]:
        exp = rm_report(scores[m], scores["ground_truth"], off[m][:, 0], off[m][:, 1], gc, gr, scheme=scheme)
        got = rep[m]
        for k in ("var", "acc_on", "acc_off", "on_off", "var_acc", "mean", "std"):
            assert abs(getattr(got, k) - getattr(exp, k)) <= 1e-12, (m, k)
        lo, hi = got.ci["var_acc"]
        assert lo <= got.var_acc <= hi
    assert rep["perfect_lowvar"].acc_on == 1.0
    assert rep.rankings["acc_on"][0] == "perfect_lowvar" and "ground_truth" not in rep.rankings["acc_on"]
    assert rep.warnings == []


# ---- warnings: duplicates, missing, unequal K, < 2 samples, constant rewards -----------------------------

def test_messy_file_warnings_and_numbers():
    rep = evaluate(FIX / "messy.csv", ground_truth="gold", bootstrap=100)
    text = " | ".join(rep.warnings)
    assert "1 duplicated (prompt_id, sample_id) row(s), e.g. row 4" in text
    assert "fewer than 2 samples ('p3')" in text
    assert "model 'b': scores missing on 1 row(s) (first: row 5)" in text
    assert "model 'b': 1 prompt(s) missing for this model ('p2')" in text
    assert "model 'flat': constant rewards" in text
    assert "unequal numbers of samples" in text
    rows = read_rows(FIX / "messy.csv")
    rows = [r for i, r in enumerate(rows) if i != 3]                     # the duplicate
    for model in ("a", "gold"):
        var, acc = reference(rows, model, "gold")
        assert rep[model].var == pytest.approx(var, rel=1e-12)
        assert rep[model].acc_on == pytest.approx(acc, rel=1e-12)
    var_b, acc_b = reference([r for r in rows if r["prompt_id"] != "p2"], "b", "gold")
    assert rep["b"].var == pytest.approx(var_b, rel=1e-12) and rep["b"].acc_on == pytest.approx(acc_b, rel=1e-12)
    assert rep["flat"].var == 0 and rep["flat"].t_gamma_lower_bound == math.inf
    assert rep["a"].n_prompts == 3 and rep["b"].n_prompts == 2
    d = rep.to_dict()
    assert d["warnings"] == rep.warnings and json.loads(json.dumps(d))


# ---- malformed input ----------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, needle", [
    ([str(FIX / "bad_nonnumeric.csv")], "line 3 (data row 2), column 'a': value 'abc' is not a finite number"),
    ([str(FIX / "bad_nan.csv")], "line 3 (data row 2), column 'a': value 'nan' is not a finite number"),
    ([str(FIX / "bad_missing_column.csv")], "missing column 'sample_id'"),
    ([str(FIX / "bad_empty.csv")], "empty file"),
    ([str(FIX / "bad_nonnumeric.jsonl")], "line 2, column 'a': value 'high'"),
    ([str(FIX / "tiny.csv"), "--models", "a,zzz"], "unknown model name(s) 'zzz'"),
    ([str(FIX / "tiny.csv"), "--ground-truth", "gold"], "unknown ground-truth column 'gold'"),
    ([str(FIX / "nope.csv")], "no such file"),
    ([str(FIX / "tiny.csv"), "--off-policy", str(FIX / "tiny.csv")], "unexpected column 'sample_id'"),
])
def test_malformed_input_exit_2(argv, needle, capsys):
    assert cli.main(["evaluate", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("rmtheory evaluate: error:")
    assert needle in err


def test_ragged_and_header_only(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("prompt_id,sample_id,a\np,0,1\np,1\n")
    with pytest.raises(InputError, match=r"line 3 \(data row 2\): expected 3 fields"):
        evaluate(p)
    p.write_text("prompt_id,sample_id,a\n")
    with pytest.raises(InputError, match="no data rows"):
        evaluate(p)


# ---- CLI outputs --------------------------------------------------------------------------------------

def test_cli_table_json_csv_plot(tmp_path, capsys):
    base = ["evaluate", str(FIX / "tiny.csv"), "--off-policy", str(FIX / "tiny_pairs.csv"), "--bootstrap", "50"]
    assert cli.main(base) == 0
    out = capsys.readouterr().out
    assert "Var&Acc" in out and "Ranking" in out and "tabular policy" in out and "ground_truth (GT)" in out
    assert cli.main(base + ["--json", "--exclude-ground-truth", "--gamma", "0.5"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert [m["name"] for m in d["models"]] == ["a", "b"] and d["meta"]["gamma"] == 0.5
    assert "tabular policy" in d["note"]
    assert set(d["models"][0]["ci"]) == {"var", "acc_on", "acc_off", "on_off", "var_acc"}
    png = tmp_path / "card.png"
    assert cli.main(base + ["--csv", "--plot", str(png)]) == 0
    rows = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    assert [r["model"] for r in rows] == ["a", "b", "ground_truth"] and rows[0]["var_rank"] == "1"
    assert rows[2]["var_rank"] == ""  # the ground truth is the reference, not ranked
    assert png.stat().st_size > 1000
    assert cli.main(["evaluate", str(FIX / "messy.csv"), "--no-ground-truth", "--bootstrap", "0"]) == 0
    err = capsys.readouterr().err
    assert "warning: no ground-truth column" in err and "warning: 1 duplicated" in err


def test_bootstrap_seeded_and_covering(tmp_path):
    _write_pipeline_files(tmp_path, P=30)
    kw = dict(off_policy=tmp_path / "eval_offpolicy.csv", bootstrap=300)
    path = tmp_path / "eval_rewards.csv"
    r1, r2, r3 = evaluate(path, seed=3, **kw), evaluate(path, seed=3, **kw), evaluate(path, seed=4, **kw)
    assert r1["rm_50"].ci == r2["rm_50"].ci and r1["rm_50"].ci != r3["rm_50"].ci
    for m in r1.models:
        assert set(m.ci) == {"var", "acc_on", "acc_off", "on_off", "var_acc"}
        for k, (lo, hi) in m.ci.items():
            assert lo <= getattr(m, k) <= hi
    r1 = evaluate(FIX / "tiny.csv", off_policy=FIX / "tiny_pairs.csv", bootstrap=300)
    # two prompts: resamples are {p1,p1}, {p1,p2}, {p2,p2}; acc_on of a is 1, 0.5 or 0
    assert r1["a"].ci["acc_on"][0] == 0.0 and r1["a"].ci["acc_on"][1] == 1.0
    assert evaluate(FIX / "tiny.csv", bootstrap=0)["a"].ci == {}


# ---- properties ---------------------------------------------------------------------------------------

@st.composite
def reward_tables(draw):
    n_prompts = draw(st.integers(1, 6))
    ks = draw(st.lists(st.integers(2, 6), min_size=n_prompts, max_size=n_prompts))
    vals = st.integers(-4, 4)
    rows = []
    for p, k in enumerate(ks):
        for s in range(k):
            rows.append({"prompt_id": f"p{p}", "sample_id": str(s), "m": float(draw(vals)),
                         "ground_truth": float(draw(vals))})
    return rows


def _cols(rows):
    return {k: [r[k] for r in rows] for k in rows[0]}


@given(reward_tables())
def test_property_accuracy_invariant_to_increasing_transform(rows):
    base = evaluate(_cols(rows), bootstrap=0)["m"]
    t = [dict(r, m=r["m"] ** 3 + 2 * r["m"] + 7) for r in rows]     # strictly increasing, exact on integers
    assert evaluate(_cols(t), bootstrap=0)["m"].acc_on == base.acc_on


@given(reward_tables(), st.sampled_from(["global", "prompt_variance"]), st.randoms(use_true_random=False))
def test_property_grouped_equals_per_prompt_reference(rows, scheme, rnd):
    """Unequal K (grouped by K inside) agrees with a per-prompt pure-Python computation, for any row order."""
    rnd.shuffle(rows)
    got = evaluate(_cols(rows), normalisation=scheme, bootstrap=0)["m"]
    var, acc = reference(rows, "m", "ground_truth", scheme)
    assert got.var == pytest.approx(var, rel=1e-9, abs=1e-12)
    assert got.acc_on == pytest.approx(acc, abs=1e-12)


def test_prop3_bound_is_the_shared_function():
    rep = evaluate(FIX / "tiny.csv", bootstrap=0, gamma=0.3, n_prompts=500)
    a = rep["a"]
    assert a.t_gamma_lower_bound == float(rmtheory.prop3_time_lower_bound(a.var, 0.3, 500))


def test_rankings_tie_at_the_printed_precision_and_leave_the_ground_truth_out(tmp_path):
    """rm_a and rm_b order every prompt's samples as the ground truth does (acc_on 1 for all three) and their
    variances differ by ~1e-7: they tie ('='), share rank 1, and the ground truth is shown as the reference."""
    lines = ["prompt_id,sample_id,rm_a,rm_b,rm_c,ground_truth"]
    for p in range(4):
        for j in range(3):
            g = j + 0.1 * p
            lines.append(f"p{p},{j},{g},{g + 1e-7 * j * j},{-g if j != 1 else 5},{g}")
    f = tmp_path / "ties.csv"
    f.write_text("\n".join(lines) + "\n")
    rep = evaluate(f, ground_truth="ground_truth", bootstrap=0)
    assert rep["rm_a"].acc_on == rep["rm_b"].acc_on == rep["ground_truth"].acc_on == 1.0
    assert rep["rm_a"].var != rep["rm_b"].var
    assert rep.ranks["acc_on"] == {"rm_a": 1, "rm_b": 1, "rm_c": 3}
    assert rep.ranks["var"]["rm_a"] == rep.ranks["var"]["rm_b"]
    table = rep.format_table()
    line = next(ln for ln in table.splitlines() if ln.strip().startswith("acc_on") and "=" in ln)
    assert "rm_a = rm_b > rm_c" in line and "reference ground_truth: 1.0000" in line
    assert "ground_truth >" not in table and "> ground_truth" not in table
    assert json.loads(rep.to_json())["ranks"]["acc_on"] == {"rm_a": 1, "rm_b": 1, "rm_c": 3}
