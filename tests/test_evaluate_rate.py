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


def _loo_mean(w, g):
    """û = (1/K) Σ_i (w_i − mean of w over the other samples) g_i, by explicit loops."""
    K = len(w)
    out = [0.0] * len(g[0])
    for i in range(K):
        c = w[i] - statistics.fmean(w[k] for k in range(K) if k != i)
        out = [o + c * x / K for o, x in zip(out, g[i])]
    return out


def reference_pooled(rows, model, gt, g_of):
    """(1/P²)[Σ_x T_x + Σ_{x≠x'} ⟨û_x, v̂_x'⟩] on globally z-scored scores, by explicit double loops."""
    def z(col):
        vals = [r[col] for r in rows]
        mu, sd = statistics.fmean(vals), math.sqrt(statistics.pvariance(vals) + EPS)
        return {id(r): (r[col] - mu) / sd for r in rows}
    zm = z(model)
    zg = z(gt) if gt else zm
    by_prompt = {}
    for r in rows:
        by_prompt.setdefault(r["prompt_id"], []).append(r)
    groups = list(by_prompt.values())
    us, vs, tg, ts = [], [], 0.0, 0.0
    for group in groups:
        b = [zm[id(r)] for r in group]
        a = [zg[id(r)] for r in group]
        g = [g_of[(r["prompt_id"], r["sample_id"])] for r in group]
        tg += _u(a, b, g)
        ts += _u(b, b, g)
        us.append(_loo_mean(a, g))
        vs.append(_loo_mean(b, g))
    cg = sum(sum(x * y for x, y in zip(us[i], vs[j])) for i in range(len(groups)) for j in range(len(groups)) if i != j)
    cs = sum(sum(x * y for x, y in zip(vs[i], vs[j])) for i in range(len(groups)) for j in range(len(groups)) if i != j)
    n2 = len(groups) ** 2
    return ((tg + cg) / n2 if gt else None), (ts + cs) / n2


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
        assert rep[m].rate_g_within == pytest.approx(rg, rel=1e-10, abs=1e-13)
        assert rep[m].rate_self_within == pytest.approx(rs, rel=1e-10, abs=1e-13)
        pg, ps = reference_pooled(rows, m, "ground_truth", sk)
        assert rep[m].rate_g == pytest.approx(pg, rel=1e-10, abs=1e-13)
        assert rep[m].rate_self == pytest.approx(ps, rel=1e-10, abs=1e-13)
    assert rep["ground_truth"].rate_g == pytest.approx(rep["ground_truth"].rate_self, rel=1e-12)
    assert rep["ground_truth"].rate_g_within == pytest.approx(rep["ground_truth"].rate_self_within, rel=1e-12)


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
            ("rate_g_within", rep["rm"].rate_g_within, np.sum(pi ** 2 * c(r_g) * c(r)),
             rep["rm"].std * rep["ground_truth"].std),
            ("rate_self_within", rep["rm"].rate_self_within, np.sum(pi ** 2 * c(r) ** 2), rep["rm"].std ** 2)):
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
    for m in ("rate_g", "rate_self", "rate_g_within", "rate_self_within"):
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
    assert rep["rm_x"].rate_self_within == pytest.approx(reference_rates(kept, "rm_x", None, sk)[1], rel=1e-10)
    assert rep["rm_x"].rate_self == pytest.approx(reference_pooled(kept, "rm_x", None, sk)[1], rel=1e-10)


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
        assert rep[m].rate_g_within == pytest.approx(rg, rel=1e-10)
        assert rep[m].rate_self_within == pytest.approx(rs, rel=1e-10)
        pg, ps = reference_pooled(rows, m, "ground_truth", g_of)
        assert rep[m].rate_g == pytest.approx(pg, rel=1e-10) and rep[m].rate_self == pytest.approx(ps, rel=1e-10)
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
    assert rep["m"].rate_self_within == pytest.approx(0.25 / (0.25 + 1e-8), rel=1e-12)
    # one prompt: the pooled rate is its same-prompt U-statistic
    assert rep["m"].rate_self == pytest.approx(rep["m"].rate_self_within, rel=1e-12)


# ---- the pooled columns ------------------------------------------------------------------------------------

def test_gram_factor_file_gives_the_per_prompt_columns_only_and_says_why(tmp_path, capsys):
    path, spath, rows, sk, _ = tabular_files(tmp_path, ks=(3,))
    with np.load(spath) as z:
        arrays = {k: z[k] for k in z.files}
    gf = tmp_path / "gram_factor.npz"
    np.savez(gf, **arrays, sketch_kind=np.array("gram_factor"))
    rep = evaluate(path, sketches=gf, bootstrap=20)
    full = evaluate(path, sketches=spath, bootstrap=0)
    assert rep.measures[-2:] == ("rate_g_within", "rate_self_within") and "rate_g" not in rep.measures
    assert rep["rm_x"].rate_g_within == pytest.approx(full["rm_x"].rate_g_within, rel=1e-12)
    assert math.isnan(rep["rm_x"].rate_g) and "rate_g_within" in rep["rm_x"].ci and "rate_g" not in rep["rm_x"].ci
    why = [w for w in rep.warnings if "gram_factor" in w]
    assert len(why) == 1 and "across prompts" in why[0] and "rate_G_within" in why[0]
    assert cli.main(["evaluate", str(path), "--sketches", str(gf), "--json", "--bootstrap", "0"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert all("rate_g" not in m and "rate_g_within" in m for m in d["models"]) and "rate_g" not in d["rankings"]


def test_pooled_bootstrap_value_is_the_estimator_on_the_resampled_prompts():
    """pooled_value with multiplicities w equals the pooled estimator on the prompt list where x appears w_x times
    (copies pair through ⟨û_x, v̂_x⟩, a copy with itself through T_x), by an explicit double loop."""
    from rmtheory.evaluate._rates import pooled_value

    rng = np.random.default_rng(3)
    P, D = 7, 5
    t, u, v = rng.normal(size=P), rng.normal(size=(P, D)), rng.normal(size=(P, D))
    own = np.einsum("pd,pd->p", u, v)
    w = rng.multinomial(P, np.ones(P) / P, size=4).astype(float)
    got = pooled_value(t, own, u, v, w)
    for b in range(4):
        items = [x for x in range(P) for _ in range(int(w[b, x]))]
        tot = sum(t[x] for x in items) + sum(u[items[i]] @ v[items[j]] for i in range(P) for j in range(P) if i != j)
        assert got[b] == pytest.approx(tot / P**2, rel=1e-12)
    assert pooled_value(t, own, u, v) == pytest.approx(pooled_value(t, own, u, v, np.ones((1, P)))[0], rel=1e-12)


def test_pooled_rates_with_bootstrap_cis_and_cross_terms_on_shared_scores(tmp_path):
    """With score vectors shared across prompts the pooled rate differs from the per-prompt mean (cross terms),
    and both get bootstrap CIs around their estimates."""
    path, spath, rows, sk, _ = tabular_files(tmp_path, ks=(4,), n_prompts=12)
    rep = evaluate(path, sketches=spath, bootstrap=300, seed=2)
    r = rep["rm_y"]
    assert abs(r.rate_g - r.rate_g_within / 12) > 1e-3 * abs(r.rate_g_within)   # the cross pairs count
    for m in ("rate_g", "rate_self", "rate_g_within", "rate_self_within"):
        lo, hi = r.ci[m]
        assert lo < getattr(r, m) < hi, m
