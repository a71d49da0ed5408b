"""``rmtheory evaluate`` on hostile input: no silently wrong report card, no traceback, no hang.

Every CSV case runs on each reader path (pyarrow when importable, numpy's C parser, the exact csv-module
path): the paths must apply the same rules.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from rmtheory import cli
from rmtheory import evaluate as E
from rmtheory.evaluate import _compute, _csv, _input, _prepare
from rmtheory.evaluate import InputError, evaluate

FIX = Path(__file__).parent / "fixtures" / "evaluate"


def _strict_loads(text):
    def bad(c):
        raise ValueError(f"non-standard JSON constant {c}")
    return json.loads(text, parse_constant=bad)


@pytest.fixture(params=["arrow", "numpy", "exact"])
def csv_path(request, monkeypatch):
    """Select one CSV reader path: pyarrow (skipped when not installed), numpy's loadtxt, or the csv module."""
    if request.param == "arrow":
        pytest.importorskip("pyarrow.csv")
    else:
        monkeypatch.setitem(sys.modules, "pyarrow.csv", None)    # Parquet still readable
    if request.param == "exact":
        monkeypatch.setattr(_csv, "_read_csv_fast", lambda *a, **k: None)
    return request.param


def _run(argv, capsys):
    rc = cli.main(["evaluate", *map(str, argv)])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err.strip()


def _one_line_error(argv, capsys):
    rc, out, err = _run(argv, capsys)
    assert rc == 2, (out, err)
    assert len(err.splitlines()) == 1 and err.startswith("rmtheory evaluate: error:"), err
    assert out == ""
    return err


# ---- silently wrong results ---------------------------------------------------------------------------

HEADER4 = "prompt_id,sample_id,rm_a,ground_truth\n"


@pytest.mark.parametrize("row", ["p0,1,0,7,0.9", "p0,1,0,7,"])
def test_extra_fields_rejected_on_every_path(tmp_path, csv_path, row):
    p = tmp_path / "r.csv"
    p.write_text(HEADER4 + "p0,0,1,1\n" + row + "\np1,0,1,1\np1,1,0,0\n")
    with pytest.raises(InputError, match=r"line 3 \(data row 2\): expected 4 fields \(as in the header\), got 5"):
        evaluate(p, bootstrap=0)


def test_unquoted_comma_in_text_column_rejected(tmp_path, csv_path):
    p = tmp_path / "r.csv"
    p.write_text("prompt_id,sample_id,response,rm_a,ground_truth\n"
                 "p0,0,\"x, 9\",1,1\np0,1,x, 9,0,0\n")      # read shifted: rm_a = 9, ground truth = 0
    with pytest.raises(InputError, match=r"line 3 \(data row 2\): expected 5 fields"):
        evaluate(p, models=["rm_a"], bootstrap=0)
    p.write_text("prompt_id,sample_id,response,rm_a,ground_truth\n"
                 "p0,0,\"hello, world\",1,1\np0,1,\"hello, \"\"world\"\"\",0,0\n")
    rep = evaluate(p, models=["rm_a"], bootstrap=0)
    assert rep["rm_a"].acc_on == 1.0 and rep["rm_a"].n_samples == 2


def test_jsonl_columns_are_the_union_of_keys(tmp_path):
    p = tmp_path / "r.jsonl"
    recs = [{"prompt_id": "p0", "sample_id": 0, "rm_a": 1},                 # no rm_b, no ground truth
            {"prompt_id": "p0", "sample_id": 1, "rm_a": 0, "rm_b": 0, "ground_truth": 0},
            {"prompt_id": "p0", "sample_id": 2, "rm_a": 2, "rm_b": 2, "ground_truth": 2},
            {"prompt_id": "p0", "sample_id": 3, "rm_a": 3, "rm_b": 1, "ground_truth": 3}]
    p.write_text("".join(json.dumps(r) + "\n" for r in recs))
    rep = evaluate(p, bootstrap=0)
    assert [m.name for m in rep.models] == ["rm_a", "rm_b", "ground_truth"]
    assert rep.meta["ground_truth"] == "ground_truth"
    assert rep["rm_a"].acc_on == 1.0 and rep["rm_b"].acc_on == pytest.approx(2 / 3)
    assert any("ground truth 'ground_truth' missing on 1 row(s) (first: row 1)" in w for w in rep.warnings)
    assert evaluate(p, ground_truth="ground_truth", bootstrap=0)["rm_b"].n_samples == 3


@pytest.mark.parametrize("scale", [1e200, 1e300, 1.7e308])
def test_huge_scores_do_not_overflow(tmp_path, scale):
    """±1e200: σ overflowed to inf (Var 0, accuracy 0, a false 'constant rewards' warning)."""
    rows = [("p0", 0, -1.0, 0), ("p0", 1, 1.0, 1), ("p1", 0, 1.0, 1), ("p1", 1, -1.0, 0)]
    cols = {"prompt_id": [r[0] for r in rows], "sample_id": [r[1] for r in rows],
            "m": [r[2] * scale for r in rows], "ground_truth": [float(r[3]) for r in rows]}
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")     # no leaked numpy RuntimeWarning
        rep = evaluate(cols, bootstrap=0)
    m = rep["m"]
    assert m.acc_on == 1.0 and m.var == pytest.approx(2.0, rel=1e-12)   # 1e-8 in σ² is negligible here
    assert m.std == pytest.approx(scale, rel=1e-12) and math.isfinite(m.t_gamma_lower_bound)
    assert not any("constant" in w for w in rep.warnings)
    # the same through the unequal-K path and prompt_variance normalisation
    cols3 = {k: v + [v[-1]] for k, v in cols.items()}
    cols3["sample_id"][-1] = 2
    for scheme in ("global", "prompt_variance"):
        if scale > 1e300 and scheme == "prompt_variance":   # the mean unbiased variance exceeds 1.8e308²
            with pytest.raises(InputError, match="model 'm': scores too large: .* float64 range"):
                evaluate(cols3, normalisation=scheme, bootstrap=0)
            continue
        r3 = evaluate(cols3, normalisation=scheme, bootstrap=0)["m"]
        assert math.isfinite(r3.var) and r3.var > 0 and math.isfinite(r3.std) and r3.acc_on == 1.0


def test_huge_equal_scores_keep_the_eps_floor():
    """Found by the fuzz test: a prompt of equal scores -1e200 next to a prompt of zeros (unequal K); σ of
    the constant group must be sqrt(1e-8), not 0 (EPS/c² underflowed), and Var = 0, not NaN."""
    cols = {"prompt_id": ["a"] * 4 + ["b"] * 2, "sample_id": [0, 1, 2, 3, 0, 1],
            "m": [0.0] * 4 + [-1e200] * 2, "ground_truth": [0.0] * 6}
    m = evaluate(cols, bootstrap=0)["m"]
    assert m.var == 0 and m.acc_on == 1.0 and m.t_gamma_lower_bound == math.inf
    from rmtheory import normalisation_stats, normalise
    stats = normalisation_stats(np.full((1, 2), -1e200))
    assert stats == (-1e200, math.sqrt(1e-8)) and np.all(normalise(np.full((1, 2), -1e200), stats) == 0)


def test_one_huge_score_does_not_collapse_the_others_into_ties():
    """One score of 1e17 made the others equal after z-scoring; accuracy must use the raw scores."""
    cols = {"prompt_id": ["p0"] * 3 + ["p1"] * 3, "sample_id": [0, 1, 2] * 2,
            "m": [1.0, 2.0, 3.0, 4.0, 5.0, 1e17], "ground_truth": [1.0, 2.0, 3.0, 1.0, 2.0, 3.0]}
    m = evaluate(cols, bootstrap=0)["m"]
    assert m.acc_on == 1.0


def test_rm_report_accuracy_uses_raw_scores():
    from rmtheory import rm_report
    s = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 1e17]])
    g = np.array([[1.0, 2.0, 3.0]] * 2)
    rep = rm_report(s, g)
    assert rep.acc_on == 1.0 and list(rep.on_accuracy) == [1.0, 1.0]


def test_json_output_is_strict_json(capsys):
    """--json wrote the string "inf" next to numbers; non-finite must be null."""
    rc, out, err = _run([FIX / "messy.csv", "--ground-truth", "gold", "--bootstrap", "20", "--json"], capsys)
    assert rc == 0
    d = _strict_loads(out)
    flat = next(m for m in d["models"] if m["name"] == "flat")
    assert flat["t_gamma_lower_bound"] is None and flat["var"] == 0
    assert any("Var = 0 and the Proposition 3 bound is infinite" in w for w in d["warnings"])
    assert "inf" not in out.replace("infinite", "")
    assert "NaN" not in out and "Infinity" not in out


# ---- tracebacks -> one-line errors with exit code 2 ----------------------------------------------------

TINY = FIX / "tiny.csv"


@pytest.mark.parametrize("args, needle", [
    (["--seed", "-1"], "--seed must be an integer >= 0; got -1"),
    (["--gamma", "inf"], "--gamma must be a finite number > 0; got inf"),
    (["--gamma", "nan"], "--gamma must be a finite number > 0; got nan"),
    (["--ci", "nan"], "--ci must be in (0, 1); got nan"),
    (["--bootstrap", "1000000000000"], "--bootstrap must be an integer in [0, 100000] (resamples)"),
    (["--n-prompts", "0"], "--n-prompts must be an integer > 0"),
])
def test_bad_numeric_options(args, needle, capsys):
    assert needle in _one_line_error([TINY, *args], capsys)


@pytest.mark.parametrize("kw, needle", [
    (dict(n_prompts=0), "n_prompts must be an integer > 0; got 0"),
    (dict(seed=-1), "seed must be an integer >= 0; got -1"),
    (dict(bootstrap=10**12), "bootstrap must be an integer in [0, 100000] (resamples); got 1000000000000"),
    (dict(gamma=math.inf), "gamma must be a finite number > 0; got inf"),
    (dict(normalisation="zscore"), "normalisation must be one of global, prompt_variance; got 'zscore'"),
])
def test_python_api_errors_name_the_parameter(kw, needle):
    with pytest.raises(InputError) as ei:
        evaluate(TINY, **kw)
    assert str(ei.value) == needle and ei.value.param == next(iter(kw))


def test_bootstrap_cost_is_bounded_before_the_work(monkeypatch, capsys):
    monkeypatch.setattr(_prepare, "MAX_BOOTSTRAP_DRAWS", 1000)
    monkeypatch.setattr(_compute, "_evaluate_model", lambda *a, **k: pytest.fail("metrics computed before refusing"))
    err = _one_line_error([TINY, "--bootstrap", "600"], capsys)
    assert "--bootstrap 600 over 2 prompts is 1.2e+03 draws, above the limit of 1e+03" in err
    assert "use --bootstrap 500 or fewer" in err


def test_bootstrap_matches_a_direct_resampling_reference(tmp_path):
    """Chunked count-vector bootstrap = resampling prompts directly with the same draws."""
    rng = np.random.default_rng(5)
    P, K, B = 7, 3, 300
    cols = {"prompt_id": [f"p{p}" for p in range(P) for _ in range(K)], "sample_id": list(range(K)) * P,
            "m": rng.normal(size=P * K), "ground_truth": rng.normal(size=P * K)}
    rep = evaluate(cols, bootstrap=B, seed=11)
    s, g = cols["m"].reshape(P, K), cols["ground_truth"].reshape(P, K)
    full = __import__("rmtheory").rm_report(s, g)
    draws = np.random.default_rng(11)
    var_b, acc_b = [], []
    for _ in range(B):
        idx = draws.integers(0, P, P)
        var_b.append(full.variance[idx].mean())
        acc_b.append(full.on_accuracy[idx].mean())
    for name, x in (("var", var_b), ("acc_on", acc_b)):
        np.testing.assert_allclose(rep["m"].ci[name], np.quantile(x, [0.025, 0.975]), rtol=1e-12, atol=1e-15)


def test_jsonl_integer_beyond_float64(tmp_path, capsys):
    p = tmp_path / "r.jsonl"
    p.write_text('{"prompt_id": "p", "sample_id": 0, "m": 1}\n'
                 '{"prompt_id": "p", "sample_id": 1, "m": 1' + "0" * 310 + "}\n")
    err = _one_line_error([p], capsys)
    assert "line 2, column 'm': value 1000000000" in err and "outside the float64 range" in err


@pytest.mark.parametrize("plot, needle", [
    ("{tmp}/missing/card.png", "does not exist"),
    ("/proc/card.png", "cannot write there"),
    ("{tmp}/card.foo", "unknown extension '.foo' (use .png, .pdf, .svg)"),
])
def test_plot_path_checked_before_the_work(tmp_path, capsys, plot, needle):
    err = _one_line_error([TINY, "--bootstrap", "0", "--plot", plot.format(tmp=tmp_path)], capsys)
    assert "--plot" in err and needle in err


def test_plot_without_extension_says_what_was_written(tmp_path, capsys):
    rc, out, err = _run([TINY, "--bootstrap", "0", "--plot", tmp_path / "cardnoext"], capsys)
    assert rc == 0 and f"wrote {tmp_path / 'cardnoext.png'}" in err
    assert (tmp_path / "cardnoext.png").read_bytes()[:4] == b"\x89PNG" and not (tmp_path / "cardnoext").exists()
    assert not list(tmp_path.glob(".tmp*"))


def test_verify_and_figures_bad_arguments_fail_first(tmp_path, monkeypatch, capsys):
    from rmtheory import _verify, figures
    monkeypatch.setattr(_verify, "run_checks", lambda *a, **k: pytest.fail("ran checks with a bad seed"))
    monkeypatch.setattr(figures, "run_all", lambda *a, **k: pytest.fail("started the figures"))
    (tmp_path / "afile").write_text("x")
    for argv, needle in [(["verify", "--seed", "-1"], "rmtheory verify: error: --seed must be >= 0; got -1"),
                         (["figures", "--seed", "-1"], "rmtheory figures: error: --seed must be >= 0; got -1"),
                         (["figures", "--out", "/proc/nope"],
                          "rmtheory figures: error: --out /proc/nope: cannot write"),
                         (["figures", "--out", str(tmp_path / "afile")], "exists and is not a directory")]:
        assert cli.main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and needle in err, err


# ---- messages -----------------------------------------------------------------------------------------

def test_bom_is_stripped(tmp_path, csv_path):
    p = tmp_path / "bom.csv"
    p.write_bytes(b"\xef\xbb\xbf" + TINY.read_bytes())
    assert evaluate(p, bootstrap=0)["a"].var == evaluate(TINY, bootstrap=0)["a"].var
    j = tmp_path / "bom.jsonl"
    j.write_bytes(b"\xef\xbb\xbf" + (FIX / "tiny.jsonl").read_bytes())
    assert evaluate(j, bootstrap=0)["a"].var == evaluate(TINY, bootstrap=0)["a"].var


def test_delimiter_hint(tmp_path, capsys):
    p = tmp_path / "tabs.csv"
    p.write_text(TINY.read_text().replace(",", "\t"))
    assert "is it a TSV file? Use --format tsv" in _one_line_error([p], capsys)
    assert evaluate(p, fmt="tsv", bootstrap=0)["a"].var == evaluate(TINY, bootstrap=0)["a"].var
    q = tmp_path / "commas.tsv"
    q.write_text(TINY.read_text())
    assert "is it a CSV file? Use --format csv" in _one_line_error([q], capsys)


def test_trailing_comma_in_header_rejected(tmp_path, capsys):
    p = tmp_path / "r.csv"
    p.write_text("prompt_id,sample_id,a,\np,0,1,\np,1,2,\n")
    assert "column 4 of the header has an empty name (a trailing delimiter?)" in _one_line_error([p], capsys)


def test_digit_separators_rejected_on_every_path(tmp_path, csv_path):
    """Decided: a score is a plain decimal number; '1_000' (which Python's float() accepts) is an error."""
    p = tmp_path / "r.csv"
    for bad in ("1_000", "１", "0x10", "1,000"):
        p.write_text(f'prompt_id,sample_id,a\np,0,"{bad}"\np,1,2\n')
        with pytest.raises(InputError, match=r"line 2 \(data row 1\), column 'a': value '.*' is not a finite number"):
            evaluate(p, bootstrap=0)


@pytest.mark.parametrize("content, needle", [
    (b"garbage, not gzip\n", "corrupt or truncated gzip file"),
    (None, "corrupt or truncated gzip file"),          # a truncated real gzip stream
])
def test_bad_gzip_names_the_file(tmp_path, capsys, content, needle):
    import gzip
    p = tmp_path / "r.csv.gz"
    if content is None:
        full = gzip.compress(TINY.read_bytes() * 50)
        content = full[:len(full) // 2]
    p.write_bytes(content)
    err = _one_line_error([p], capsys)
    assert str(p) in err and needle in err


def test_non_utf8_late_in_a_large_file_names_the_file(tmp_path, capsys, csv_path):
    p = tmp_path / "r.csv"
    body = "".join(f"q{i},{k},{i % 7 + k}\n" for i in range(3000) for k in range(2))
    p.write_bytes(b"prompt_id,sample_id,a\n" + body.encode() + b"q\xff,0,1\n")
    err = _one_line_error([p], capsys)
    assert str(p) in err and "not UTF-8 text (invalid byte 0xff)" in err


def test_pipe_is_refused_with_a_message(tmp_path, capsys):
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    err = _one_line_error([fifo], capsys)     # refused without opening it (opening a FIFO would block)
    assert "is a pipe or device; reading from a pipe is not supported" in err


def test_jsonl_ids_normalised_once(tmp_path):
    """1, "1" and 1.0 are one prompt id; sample ids 0 and 0.0 are duplicates."""
    p = tmp_path / "r.jsonl"
    recs = [{"prompt_id": 1, "sample_id": 0, "m": 1.0, "ground_truth": 1.0},
            {"prompt_id": "1", "sample_id": 1, "m": 2.0, "ground_truth": 2.0},
            {"prompt_id": 1.0, "sample_id": 2, "m": 3.0, "ground_truth": 3.0},
            {"prompt_id": " 1 ", "sample_id": 0.0, "m": 9.0, "ground_truth": 0.0}]
    p.write_text("".join(json.dumps(r) + "\n" for r in recs))
    rep = evaluate(p, bootstrap=0)
    assert rep["m"].n_prompts == 1 and rep["m"].n_samples == 3 and rep["m"].acc_on == 1.0
    assert any("1 duplicated (prompt_id, sample_id) row(s), e.g. row 4 (prompt '1', sample '0')" in w
               for w in rep.warnings)
    assert [_input.normalise_id(v) for v in (1, "1", 1.0, np.int64(1), np.float32(1.0), 0.5, " a ")] == \
        ["1", "1", "1", "1", "1", "0.5", "a"]
    assert [_input.normalise_id(v) for v in (None, "", " ", True, math.nan, math.inf, [1], {})] == [None] * 8


def test_csv_ids_are_text(tmp_path, csv_path):
    """In a CSV every id is text: '1' and '1.0' are different prompts."""
    p = tmp_path / "r.csv"
    p.write_text("prompt_id,sample_id,m\n1,0,1\n1,1,2\n1.0,0,1\n1.0,1,2\n")
    assert evaluate(p, ground_truth=None, bootstrap=0)["m"].n_prompts == 2


# ---- fuzz: random tables written as CSV/TSV/JSONL/Parquet, with random quoting and damage ------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_ID_CHARS = st.sampled_from(list("abcXYZ019_-. ,;\"'\t\né✓"))
_SCORES = st.one_of(st.integers(-3, 3).map(float), st.sampled_from([0.5, -2.25, 1e-3, 7e10, -1e200, 1e-310]),
                    st.floats(allow_nan=False, allow_infinity=False, width=64))


@st.composite
def _clean_tables(draw):
    """A valid table as {column: list}: ids as (already normalised) text, scores as floats or None (missing)."""
    names = draw(st.sampled_from([["m0"], ["m0", "ground_truth"], ["m0", "m1", "ground_truth"]]))
    prompts = draw(st.lists(st.text(_ID_CHARS, min_size=1, max_size=4).map(str.strip).filter(bool),
                            min_size=1, max_size=4, unique=True))
    rows = []
    for p in prompts:
        for k in range(draw(st.integers(1, 4))):
            rows.append([p, str(k)] + [draw(st.one_of(_SCORES, st.none()) if draw(st.booleans()) else _SCORES)
                                       for _ in names])
    rows = draw(st.permutations(rows))
    cols = ["prompt_id", "sample_id", *names]
    return {c: [r[j] for r in rows] for j, c in enumerate(cols)}


def _num_text(draw, v):
    if v is None:
        return ""
    return draw(st.sampled_from([repr(v), f"{v:.17g}", f"{v:+.17e}", f" {v!r} "]))


def _cell(draw, text, delim):
    must = any(ch in text for ch in (delim, '"', "\n", "\r")) or text != text.strip()
    if must or draw(st.booleans()):
        return '"' + text.replace('"', '""') + '"'
    return text


@st.composite
def _written_tables(draw, formats):
    """(clean table, format, file bytes, damaged?) — damage always makes the file invalid."""
    table = draw(_clean_tables())
    fmt = draw(st.sampled_from(formats))
    cols = list(table)
    n = len(table["prompt_id"])
    damage = draw(st.sampled_from([None, None, "extra_field", "missing_field", "junk_line", "bad_number"]))
    at = draw(st.integers(0, n - 1))
    if fmt in ("csv", "tsv"):
        d = "," if fmt == "csv" else "\t"
        lines = [d.join(_cell(draw, c, d) for c in cols)]
        for i in range(n):
            cells = [_cell(draw, table[c][i], d) for c in cols[:2]]
            cells += [_cell(draw, _num_text(draw, table[c][i]), d) for c in cols[2:]]
            if i == at and damage == "extra_field":
                cells.append(draw(st.sampled_from(["", "0", "7", "x"])))
            elif i == at and damage == "missing_field":
                cells.pop()
            elif i == at and damage == "bad_number":
                cells[-1] = draw(st.sampled_from(["abc", "nan", "inf", "1_000", "0x1", "1e", "--1"]))
            lines.append(d.join(cells))
            if draw(st.integers(0, 9)) == 0:
                lines.append("")                                   # blank lines are skipped
            if i == at and damage == "junk_line":
                lines.append(draw(st.sampled_from(["junk", "# comment", "§§§"])))
        eol = draw(st.sampled_from(["\n", "\r\n"]))
        bom = draw(st.sampled_from(["", "\ufeff"]))
        data = (bom + eol.join(lines) + draw(st.sampled_from([eol, ""]))).encode()
    elif fmt == "jsonl":
        out = []
        for i in range(n):
            rec = {"prompt_id": table["prompt_id"][i],
                   "sample_id": draw(st.sampled_from([table["sample_id"][i], int(table["sample_id"][i])]))}
            for c in cols[2:]:
                v = table[c][i]
                if v is not None or draw(st.booleans()):
                    rec[c] = v                                      # absent key or null = missing
            if i == at and damage == "bad_number":
                rec[cols[-1]] = draw(st.sampled_from(["1.5", True, [1], {"v": 1}]))
            keys = draw(st.permutations(list(rec)))
            out.append(json.dumps({k: rec[k] for k in keys}, ensure_ascii=draw(st.booleans())))
            if i == at and damage in ("junk_line", "extra_field", "missing_field"):
                out.append(draw(st.sampled_from(["junk", "[1, 2]", "{\"prompt_id\": ", "null"])))
        data = ("\n".join(out) + "\n").encode()
        order = {}    # the columns of a JSONL file are its keys in order of first appearance (a key that is
        for line in out:              # absent from every record is no column at all)
            rec = json.loads(line) if line.startswith("{") and line.endswith("}") else {}
            order.update(dict.fromkeys(k for k in rec if k in table))
        table = {k: table[k] for k in order}
    else:   # parquet
        import pyarrow as pa
        import pyarrow.parquet as pq
        damage = None
        sink = pa.BufferOutputStream()
        arrays = {c: pa.array(table[c], pa.string()) for c in cols[:2]}
        arrays.update({c: pa.array(table[c], pa.float64()) for c in cols[2:]})
        pq.write_table(pa.table(arrays), sink)
        data = sink.getvalue().to_pybytes()
    gz = fmt != "parquet" and draw(st.integers(0, 3)) == 0
    return table, fmt, data, damage, gz


def _outcome(source, **kw):
    try:
        rep = evaluate(source, bootstrap=20, seed=1, **kw)
    except InputError:
        return "InputError"
    d = rep.to_dict()
    for k in ("source", "timings_s"):
        d["meta"].pop(k)
    return d


_FORMATS = ["csv", "tsv", "jsonl"]
try:
    import pyarrow.parquet  # noqa: F401
    _FORMATS.append("parquet")
except ImportError:
    pass


@settings(max_examples=3 * settings.default.max_examples,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=_written_tables(_FORMATS))
def test_fuzz_readers(case, csv_path, tmp_path_factory):
    """Either a clear InputError, or exactly the report of the clean in-memory table; damage is an error."""
    import gzip
    table, fmt, data, damage, gz = case
    path = tmp_path_factory.mktemp("fuzz") / (f"r.{fmt}" + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(data) if gz else data)
    got = _outcome(path)
    if damage is not None:
        assert got == "InputError", (damage, data[:300])
    else:
        assert got == _outcome(table), data[:300]


def test_docs_document_the_input_rules():
    text = (Path(__file__).parents[1] / "docs" / "evaluate.md").read_text()
    start, end = text.index("## Accepted input"), text.index("## Teaching rates from gradient sketches")
    section = " ".join(text[start:end].split())
    assert "**Accepted input.**" in section
    assert f"{E.MAX_BOOTSTRAP:,} resamples" in section
    assert f"{E.MAX_BOOTSTRAP_DRAWS:.0e}".replace("e+", "e") + " resamples × prompts" in section
    for fmt in E.PLOT_FORMATS:
        assert f"`.{fmt}`" in section
    for phrase in ("union of the keys", "`1_000`", "BOM", "pipe", "`0` and `0.0` are duplicates"):
        assert phrase in section, phrase
