"""``rmtheory verify --scale quick``: exit code 0 and a complete table."""

import argparse

from rmtheory import _verify as V

EXPECTED = ["Lemma 8", "Lemma 9", "Lemma 10", "Prop 3", "Thm 4 (tabular", "Prop 2", "Thm 4 (AR", "Thm 4 (MLP",
            "Prop 4", "Thm 5 constructions", "Thm 5 slow", "Thm 5 fast", "Thm 6 fast", "Thm 6 slow", "Prop 1",
            "Teaching rate (= autodiff", "Teaching rate bounds", "Pooled rate estimator"]


def test_verify_quick(capsys):
    parser = argparse.ArgumentParser()
    V.configure(parser)
    args = parser.parse_args(["--scale", "quick", "--seed", "1"])
    assert V.main(args) == 0
    out = capsys.readouterr().out
    for name in EXPECTED:
        assert name in out
    assert "0 violations" in out


def test_rows_as_data_and_nonzero_exit_on_violation(monkeypatch):
    rows = [V.Row("x", 3, 1, 1.5, "bound/t")]
    monkeypatch.setattr(V, "run_checks", lambda *a, **k: rows)
    parser = argparse.ArgumentParser()
    V.configure(parser)
    assert V.main(parser.parse_args(["--scale", "quick"])) == 1
    assert "x" in V.format_table(rows)


def test_teaching_rate_row_catches_a_wrong_rate(monkeypatch):
    """The row compares the closed form with autodiff and the flow: a rate off by 1e-4 relative is a violation."""
    import numpy as np

    from rmtheory import _teaching_rate as TR

    ok = V.check_teaching_rate(np.random.default_rng(0), dict(n=8))
    assert [r.violations for r in ok] == [0, 0] and ok[0].ratio < 1 and ok[1].ratio <= 1
    real = TR.teaching_rate
    monkeypatch.setattr(TR, "teaching_rate", lambda i, m: TR.TeachingRate(*(1.0001 * a for a in real(i, m))))
    bad = V.check_teaching_rate(np.random.default_rng(0), dict(n=8))
    assert bad[0].violations == 1 and bad[0].ratio > 1


def test_pooled_rate_row_catches_dropped_cross_prompt_terms(monkeypatch):
    """The row compares the pooled estimator's Monte-Carlo mean with the exact rate: an estimator that keeps only
    the same-prompt pairs (the per-prompt estimator) is a violation on every instance."""
    import numpy as np

    from rmtheory import _rate_estimator as RE

    ok = V.check_pooled_rate(np.random.default_rng(0), dict(n_neural=2))
    assert ok.tried == 4 and ok.violations == 0 and ok.ratio < 1
    real = RE.pooled_rate_estimate

    def within_only(a, b, g):
        e = real(a, b, g)
        return e._replace(total=e.within, rate_self=real(b, b, g).within)

    monkeypatch.setattr(RE, "pooled_rate_estimate", within_only)
    bad = V.check_pooled_rate(np.random.default_rng(0), dict(n_neural=2))
    assert bad.violations == 4 and bad.ratio > 1

