"""``rmtheory evaluate --sketches``: the teaching-rate columns rate_G and rate_self (``evaluate/_rates.py``).

References here are independent of the package: the normalisation with ``statistics``, the U-statistic over
ordered pairs with explicit loops, and the exact tabular rate Σ_y π_y² (a_y − E a)(b_y − E b) with the exact
score vectors g_y = e_y − π of a softmax policy.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import statistics
from pathlib import Path

import numpy as np
import pytest

from rmtheory import cli
from rmtheory.evaluate import InputError, evaluate

FIX = Path(__file__).parent / "fixtures" / "evaluate"
EPS = 1e-8


def _u(a, b, g):
    """(1/(K(K−1))) Σ_{i≠j} (a_i − mean a over the others)(b_j − mean b over the others)⟨g_i, g_j⟩."""
    K = len(a)
    tot = 0.0
    for i, j in itertools.permutations(range(K), 2):
        rest = [k for k in range(K) if k != i and k != j]
        ca = statistics.fmean(a[k] for k in rest) if rest else 0.0
        cb = statistics.fmean(b[k] for k in rest) if rest else 0.0
        tot += (a[i] - ca) * (b[j] - cb) * sum(x * y for x, y in zip(g[i], g[j]))
    return tot / (K * (K - 1))


def reference_rates(rows, model, gt, g_of):
    """Mean over prompts of the U-statistic on globally z-scored scores (the paper's default normalisation)."""
    def z(col):
        vals = [r[col] for r in rows]
        mu, sd = statistics.fmean(vals), math.sqrt(statistics.pvariance(vals) + EPS)
        return {id(r): (r[col] - mu) / sd for r in rows}
    zm, zg = z(model), (z(gt) if gt else None)
    by_prompt = {}
    for r in rows:
        by_prompt.setdefault(r["prompt_id"], []).append(r)
    rg, rs = [], []
    for group in by_prompt.values():
        b = [zm[id(r)] for r in group]
        g = [g_of[(r["prompt_id"], r["sample_id"])] for r in group]
        rs.append(_u(b, b, g))
        if gt:
            rg.append(_u([zg[id(r)] for r in group], b, g))
    return (statistics.fmean(rg) if gt else None), statistics.fmean(rs)


def tabular_files(tmp_path, seed=0, n_prompts=6, n_out=4, ks=(5,), models=("rm_x", "rm_y")):
    """A tabular softmax policy per prompt, K samples each (K cycling through ks), reward models that are noisy
    rescaled copies of the ground truth; the exact score vectors e_y − π as the sketches. Returns the paths,
    the rows, the sketch map and the exact per-prompt (π, r_G, r_m) for the exact rates."""
    rng = np.random.default_rng(seed)
    rows, sk, exact = [], {}, {}
    for p in range(n_prompts):
        logits = rng.normal(0, 1.2, n_out)
        pi = np.exp(logits) / np.exp(logits).sum()
        r_g = rng.normal(size=n_out)
        rms = {m: (1 + i) * r_g + rng.normal(0, 0.8, n_out) for i, m in enumerate(models)}
        exact[f"q{p}"] = (pi, r_g, rms)
        k = ks[p % len(ks)]
        for s, y in enumerate(rng.choice(n_out, size=k, p=pi)):
            row = {"prompt_id": f"q{p}", "sample_id": f"s{s}", "ground_truth": float(r_g[y])}
            row.update({m: float(v[y]) for m, v in rms.items()})
            rows.append(row)
            sk[(f"q{p}", f"s{s}")] = list(np.eye(n_out)[y] - pi)
    path = tmp_path / "rewards.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, ["prompt_id", "sample_id", *models, "ground_truth"])
        w.writeheader()
        for r in rows:
            w.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in r.items()})
    spath = tmp_path / "sketches.npz"
    keys = list(sk)
    np.savez(spath, prompt_id=np.array([k[0] for k in keys]), sample_id=np.array([k[1] for k in keys]),
             g=np.array([sk[k] for k in keys]))
    return path, spath, rows, sk, exact


# ---- the numbers -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ks", [(2,), (3,), (5,), (2, 3, 6)])
def test_equals_direct_u_statistic(tmp_path, ks):
    path, spath, rows, sk, _ = tabular_files(tmp_path, ks=ks)
    rep = evaluate(path, sketches=spath, bootstrap=0)
    for m in ("rm_x", "rm_y", "ground_truth"):
        rg, rs = reference_rates(rows, m, "ground_truth", sk)
        assert rep[m].rate_g == pytest.approx(rg, rel=1e-10, abs=1e-13)
        assert rep[m].rate_self == pytest.approx(rs, rel=1e-10, abs=1e-13)
    assert rep["ground_truth"].rate_g == pytest.approx(rep["ground_truth"].rate_self, rel=1e-12)


def test_matches_exact_tabular_rate_over_many_prompts(tmp_path):
    """The same tabular prompt repeated 400 times with K = 6 samples: the mean of the per-prompt estimates is
    within 3 SE (std over prompts/√P) of the exact rate in the normalised scale, Σπ²(r_G − E r_G)(r − E r)/(σ_G σ)
    with σ the normalisation scales evaluate reports."""
    rng = np.random.default_rng(5)
    pi = np.array([0.5, 0.25, 0.15, 0.1])
    r_g = np.array([1.0, -0.5, 2.0, 0.0])
    r = np.array([0.3, -1.0, 2.5, 1.0])
    P, K = 400, 6
    y = np.array([rng.choice(4, size=K, p=pi) for _ in range(P)])
    table = {"prompt_id": np.repeat([f"p{i}" for i in range(P)], K).tolist(), "sample_id": list(range(K)) * P,
             "rm": r[y].ravel().tolist(), "ground_truth": r_g[y].ravel().tolist()}
    g = (np.eye(4)[y] - pi).reshape(P * K, 4)
    sketches = {"prompt_id": table["prompt_id"], "sample_id": np.array(table["sample_id"]), "g": g}
    rep = evaluate(table, sketches=sketches, bootstrap=200, seed=1)

    def c(v):
        return v - pi @ v

    for name, got, exact, scale in (
            ("rate_g", rep["rm"].rate_g, np.sum(pi ** 2 * c(r_g) * c(r)), rep["rm"].std * rep["ground_truth"].std),
            ("rate_self", rep["rm"].rate_self, np.sum(pi ** 2 * c(r) ** 2), rep["rm"].std ** 2)):
        lo, hi = rep["rm"].ci[name]
        se = (hi - lo) / (2 * 1.96)    # the bootstrap's spread over prompts
        assert abs(got - exact / scale) <= 3 * se, (name, got, exact / scale, se)
        assert lo < got < hi


def test_rates_scale_free_and_rank_higher_first(tmp_path):
    """A positive rescaling and shift of a model's raw scores leaves its normalised rates unchanged; the
    rankings put the higher rate first."""
    _path, spath, rows, _sk, _ = tabular_files(tmp_path, ks=(4,), models=("rm_x",))
    table = {k: [r[k] for r in rows] for k in rows[0]}
    table["rm_z"] = [1000 * v - 3 for v in table["rm_x"]]
    rep = evaluate(table, sketches=spath, bootstrap=0)
    assert rep["rm_z"].rate_g == pytest.approx(rep["rm_x"].rate_g, rel=1e-8)
    assert rep["rm_z"].rate_self == pytest.approx(rep["rm_x"].rate_self, rel=1e-8)
    for m in ("rate_g", "rate_self"):
        vals = [float(f"{getattr(rep[n], m):.4g}") for n in rep.rankings[m]]  # ties at the printed precision
        assert vals == sorted(vals, reverse=True) and len(vals) == 2  # rm_x, rm_z: the ground truth is not ranked
        assert rep.ranks[m]["rm_x"] == rep.ranks[m]["rm_z"]  # equal rates tie (scale-free)


def test_missing_scores_use_the_rows_of_var(tmp_path):
    """A row with a missing model score is left out of that model's rate, as of its variance."""
    _path, spath, rows, sk, _ = tabular_files(tmp_path, ks=(4,), models=("rm_x",))
    table = {k: [r[k] for r in rows] for k in rows[0]}
    table["rm_x"][1] = None
    rep = evaluate(table, sketches=spath, bootstrap=0)
    kept = [r for i, r in enumerate(rows) if i != 1]
    assert rep["rm_x"].rate_self == pytest.approx(reference_rates(kept, "rm_x", None, sk)[1], rel=1e-10)


def test_no_ground_truth_only_rate_self(tmp_path, capsys):
    path, spath, *_ = tabular_files(tmp_path)
    assert cli.main(["evaluate", str(path), "--sketches", str(spath), "--no-ground-truth", "--json",
                     "--bootstrap", "20"]) == 0
    d = json.loads(capsys.readouterr().out)
    m = d["models"][0]
    assert m["rate_g"] is None and isinstance(m["rate_self"], float)
    assert "rate_self" in m["ci"] and "rate_g" not in m["ci"] and d["rankings"]["rate_g"] == []


# ---- outputs -----------------------------------------------------------------------------------------------

def _strict(text):
    return json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))


def test_fixture_table_json_csv(capsys):
    base = ["evaluate", str(FIX / "tiny.csv"), "--sketches", str(FIX / "tiny_sketches.npz"), "--bootstrap", "50"]
    assert cli.main(base) == 0
    out = capsys.readouterr().out
    assert "rate_G" in out and "rate_self" in out and "first-order speed" in out
    assert cli.main(base + ["--json"]) == 0
    d = _strict(capsys.readouterr().out)
    assert all({"rate_g", "rate_self"} <= set(m) and {"rate_g", "rate_self"} <= set(m["ci"]) for m in d["models"])
    assert set(d["rankings"]) >= {"rate_g", "rate_self"} and d["meta"]["sketches"]["dim"] == 4
    assert "first-order" in d["rate_note"]
    rep = evaluate(FIX / "tiny.csv", sketches=FIX / "tiny_sketches.npz", bootstrap=0)
    with np.load(FIX / "tiny_sketches.npz") as z:
        g_of = {(p, s): list(v) for p, s, v in zip(z["prompt_id"], z["sample_id"], z["g"])}
    with open(FIX / "tiny.csv") as f:
        rows = [{k: (v if k.endswith("_id") else float(v)) for k, v in r.items()} for r in csv.DictReader(f)]
    for m in ("a", "b", "ground_truth"):
        rg, rs = reference_rates(rows, m, "ground_truth", g_of)
        assert rep[m].rate_g == pytest.approx(rg, rel=1e-10) and rep[m].rate_self == pytest.approx(rs, rel=1e-10)
    assert cli.main(base + ["--csv"]) == 0
    rows = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    assert {"rate_g", "rate_g_lo", "rate_g_hi", "rate_g_rank", "rate_self_rank"} <= set(rows[0])
    assert float(rows[0]["rate_g"]) == pytest.approx(rep["a"].rate_g, rel=1e-12)


def test_without_sketches_columns_absent_and_a_note_says_why(capsys):
    assert cli.main(["evaluate", str(FIX / "tiny.csv"), "--bootstrap", "0"]) == 0
    out = capsys.readouterr().out
    assert "rate_G, rate_self: not reported" in out and "  rate_G" not in out.split("Note:")[0]
    assert cli.main(["evaluate", str(FIX / "tiny.csv"), "--bootstrap", "10", "--json"]) == 0
    d = _strict(capsys.readouterr().out)
    assert "--sketches" in d["rate_note"] and "rate_g" not in d["rankings"]
    assert all("rate_g" not in m and "rate_g" not in m["ci"] for m in d["models"])
    assert cli.main(["evaluate", str(FIX / "tiny.csv"), "--bootstrap", "0", "--csv"]) == 0
    assert "rate_g" not in capsys.readouterr().out


# ---- bad input ---------------------------------------------------------------------------------------------

def _tiny_sketch(tmp_path, **over):
    with np.load(FIX / "tiny_sketches.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(over)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    p = tmp_path / "s.npz"
    np.savez(p, **arrays)
    return p


@pytest.mark.parametrize("over, needle", [
    ({"g": None}, "missing array(s) g"),
    ({"prompt_id": np.array(["p1", "p1", "p1", "p2", "p2", "p9"])}, "no sketch for 1 scored row(s)"),
    ({"sample_id": np.array(["s1", "s2", "s3", "s1", "s2", "s2"])}, "duplicated (prompt_id, sample_id)"),
    ({"g": np.ones((5, 4))}, "lengths disagree: prompt_id 6, sample_id 6, g 5 rows"),
    ({"g": np.ones(6)}, "'g' must have shape [samples, D >= 1]; got [6]"),
    ({"g": np.where(np.eye(6, 4) > 0, np.nan, 1.0)}, "'g' has NaN/inf in 4 row(s), first: prompt 'p1', sample 's1'"),
    ({"g": np.full((6, 4), np.inf)}, "NaN/inf"),
    ({"prompt_id": np.array([1.5] * 6)}, "'prompt_id' must hold strings or integers"),
])
def test_bad_sketch_file_exit_2(tmp_path, capsys, over, needle):
    p = _tiny_sketch(tmp_path, **over)
    assert cli.main(["evaluate", str(FIX / "tiny.csv"), "--sketches", str(p)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"rmtheory evaluate: error: {p}:"), err
    assert needle in err, err


def test_extra_sketch_and_k1_and_unreadable(tmp_path, capsys):
    def run(p, rewards=FIX / "tiny.csv"):
        assert cli.main(["evaluate", str(rewards), "--sketches", str(p)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(p) in err
        return err
    more = _tiny_sketch(tmp_path, prompt_id=np.array(["p1"] * 3 + ["p2"] * 3 + ["p3"]),
                        sample_id=np.array(["s1", "s2", "s3"] * 2 + ["s1"]), g=np.ones((7, 4)))
    assert "1 sketch(es) match no row" in run(more)
    rewards = tmp_path / "r.csv"
    rewards.write_text((FIX / "tiny.csv").read_text() + "p3,s1,1,1,1\n")
    assert "1 prompt(s) with K = 1 sketched sample ('p3')" in run(more, rewards)
    junk = tmp_path / "junk.npz"
    junk.write_text("not a zip")
    assert "not a readable .npz" in run(junk)
    obj = tmp_path / "obj.npz"
    np.savez(obj, prompt_id=np.array(["p1"] * 6, dtype=object), sample_id=np.arange(6), g=np.ones((6, 4)))
    assert "not a readable .npz" in run(obj)
    npy = tmp_path / "g.npy"
    np.save(npy, np.ones((6, 4)))
    assert "not an .npz archive" in run(npy)
    assert cli.main(["evaluate", str(FIX / "tiny.csv"), "--sketches", str(tmp_path / "nope.npz")]) == 2
    assert "nope.npz" in capsys.readouterr().err


def test_in_memory_sketches_are_checked_too():
    table = {"prompt_id": ["a", "a"], "sample_id": [0, 1], "m": [0.0, 1.0]}
    with pytest.raises(InputError, match="<sketches>: 'g' has NaN"):
        evaluate(table, sketches={"prompt_id": ["a", "a"], "sample_id": [0, 1], "g": [[1.0], [np.nan]]})
    rep = evaluate(table, sketches={"prompt_id": ["a", "a"], "sample_id": [0, 1], "g": [[1.0], [-1.0]]},
                   bootstrap=0)
    # K = 2, z = (∓1)/σ with σ = sqrt(0.25 + 1e-8): T = (z_1 z_2 + z_2 z_1)⟨g_1, g_2⟩/2 = −z_1 z_2
    assert rep["m"].rate_self == pytest.approx(0.25 / (0.25 + 1e-8), rel=1e-12)
