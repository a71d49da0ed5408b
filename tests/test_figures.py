"""The figures (:mod:`rmtheory.figures`, quick mode), ``rmtheory figures`` and the scaling-law notebook.

The quick figures run once per session (module fixture) in a subprocess, exactly as
``rmtheory figures --quick --out DIR``, started from a directory outside the repository (the figure code is
part of the installed package); each test then checks one figure's PNG and data: expected columns, sane
values and the inequalities the figure illustrates (measured t_γ ≥ its lower bound, …). The subprocess
compiles with XLA's backend optimisation level 0, which roughly halves the JIT time of the quick run; it
changes results only at the rounding level (compared below against an in-process run).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rmtheory import figures
from rmtheory.figures import FIGURES, read_columns, write_columns, write_json

ROOT = Path(__file__).resolve().parents[1]
EXP = ROOT / "experiments"
CLI = "import sys; from rmtheory.cli import main; sys.exit(main(sys.argv[1:]))"

DATA_EXT = {"fig1": ("csv", "json"), "fig2": ("csv", "json"), "fig3": ("csv", "json"), "fig4": ("csv", "json"),
            "fig5": ("csv", "json"), "fig6": ("csv", "json"), "fig7": ("csv", "json")}
FAST_XLA = "--xla_backend_optimization_level=0"
TOL = 1e-9


def _env(**extra):
    env = dict(os.environ, **extra)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + FAST_XLA).strip()
    return env


class _QuickRun:
    """``rmtheory figures --quick`` in a background subprocess (its working directory outside the repository),
    started once per module; ``wait()`` returns its output directory. The notebook and CLI tests run first (they
    compile in another process) while it runs, which roughly halves this file's wall time on two cores."""

    def __init__(self, out: Path):
        self.out = out
        self.t0 = time.perf_counter()
        self.log = open(out.parent / (out.name + ".log"), "w+")
        self.proc = subprocess.Popen([sys.executable, "-c", CLI, "figures", "--quick", "--seed", "0",
                                      "--out", str(out)], env=_env(), stdout=self.log, stderr=subprocess.STDOUT,
                                     text=True, cwd=str(out.parent))
        self.rc = None

    def wait(self) -> Path:
        if self.rc is None:
            self.rc = self.proc.wait(timeout=900)
            self.log.seek(0)
            self.text = self.log.read()
            print(f"quick figures: {time.perf_counter() - self.t0:.1f} s")
        assert self.rc == 0, f"rmtheory figures --quick failed:\n{self.text[-6000:]}"
        assert "all figures done" in self.text
        return self.out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    run = _QuickRun(tmp_path_factory.mktemp("figures") / "quick")
    yield run
    run.stop()


@pytest.fixture
def quick(quick_run):
    """Output directory of the module's quick run (every figure), waiting for it if needed."""
    return quick_run.wait()


def _json(d: Path, fig: str):
    return json.loads((d / f"{FIGURES[fig]}.json").read_text())


def _csv(d: Path, fig: str):
    return read_columns(str(d / f"{FIGURES[fig]}.csv"))


def _f(x):
    """A JSON number; non-finite floats are stored as null (rmtheory.io's strict rule), read back as NaN."""
    return math.nan if x is None else float(x)


def _reject_constant(c):
    raise ValueError(f"non-standard JSON constant {c}")


# --------------------------------------------------------------------------------------------------
# Notebook
# --------------------------------------------------------------------------------------------------

NOTEBOOK = EXP / "scaling_law.ipynb"


def _run_notebook_module():
    """``experiments/run_notebook.py`` loaded from its path (experiments/ is not a package)."""
    spec = importlib.util.spec_from_file_location("run_notebook", EXP / "run_notebook.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_long_figures_report_progress_and_no_timings_file(quick_run):
    """fig1, fig5, fig6 and fig7 (62 s, 22 s, 111 s and 127 s by default on 2 cores) print a progress line per step
    on stderr;
    the timings go to the terminal, never into a file beside the committed figures."""
    out = quick_run.wait()
    for fig in ("fig1", "fig5", "fig6", "fig7"):
        assert f"{fig} [1/3] " in quick_run.text and f"{fig} [3/3] " in quick_run.text
    assert "all figures done in" in quick_run.text and "fig1 " in quick_run.text.splitlines()[-1]
    assert not (out / "make_figures_timings.json").exists()


def test_notebook_committed_outputs_are_current():
    """The notebook is committed executed in default mode (so its plot shows where people read it); its
    outputs are current: the code-cell sources hash to the one recorded by ``experiments/run_notebook.py``
    when it ran, every code cell ran, and no output is an error."""
    nbformat = pytest.importorskip("nbformat")
    run_notebook = _run_notebook_module()

    nb = nbformat.read(str(NOTEBOOK), as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and "RMTHEORY_QUICK" in "".join(c.source for c in code)
    meta = nb.metadata.get("rmtheory", {})
    assert meta.get("mode") == "default"
    assert meta.get("sources_sha256") == run_notebook.sources_sha256(nb), \
        "the notebook's code changed since its outputs were made: run python experiments/run_notebook.py"
    assert all(c.execution_count is not None for c in code)
    outputs = [o for c in code for o in c.outputs]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream" and o.get("name") == "stdout")
    assert "QUICK=False" in text
    assert any("image/png" in o.get("data", {}) for o in outputs)


def test_notebook_executes_in_quick_mode(quick_run, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("RMTHEORY_QUICK", "1")
    monkeypatch.setenv("XLA_FLAGS", _env()["XLA_FLAGS"])
    nb = nbformat.read(str(NOTEBOOK), as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
                   if o.get("output_type") == "stream")
    assert "QUICK=True" in text
    assert any("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    for fam in ("tabular, rescaled RM", "tabular, peaked policies", "autoregressive tabular"):
        assert fam in text


# --------------------------------------------------------------------------------------------------
# CLI and make_figures
# --------------------------------------------------------------------------------------------------

def test_cli_figures_only_one_figure(quick_run, tmp_path, monkeypatch):
    """``rmtheory figures --quick --only fig4`` in process (while the quick run works in its subprocess; fig4 is
    the quickest figure), from a directory outside the repository and without ``--out``: it writes
    ``./figures-quick`` (never the default figures' ``./figures``); deterministic: the same data as the quick
    run's fig4."""
    from rmtheory.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["figures", "--quick", "--only", "fig4"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figures-quick"]
    out = tmp_path / "figures-quick"
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"{FIGURES['fig4']}.{e}" for e in ("png", "csv", "json"))
    a, b = _csv(out, "fig4"), _csv(quick_run.wait(), "fig4")
    assert list(a) == list(b)
    for col in a:
        if a[col].dtype.kind in "fiu":
            np.testing.assert_allclose(a[col], b[col], rtol=1e-7, equal_nan=True, err_msg=col)
        else:
            assert list(a[col]) == list(b[col]), col
    ja, jb = _json(out, "fig4"), _json(quick_run.wait(), "fig4")
    assert ja["fraction_infinite"] == jb["fraction_infinite"] and ja["n_reward_models"] == jb["n_reward_models"]


def test_cli_figures_bad_only(tmp_path, capsys):
    from rmtheory.cli import main

    assert main(["figures", "--quick", "--only", "fig9", "--out", str(tmp_path)]) == 2
    assert "fig9" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_every_figure_is_a_package_module():
    """``rmtheory.figures.FIGURES`` names one module per figure, each with ``run`` and ``main``; ``--only``
    takes a short name or a module-name prefix."""
    assert list(FIGURES) == ["fig1", "fig2", "fig3", "fig4", "fig5", "fig6", "fig7"]
    for key, name in FIGURES.items():
        mod = figures.figure(key)
        assert mod.__name__ == f"rmtheory.figures.{name}" and mod.NAME == name
        assert callable(mod.run) and callable(mod.main)
    assert figures.select(["fig2_acc", "fig4"]) == {"fig2": FIGURES["fig2"], "fig4": FIGURES["fig4"]}
    with pytest.raises(ValueError, match="fig9"):
        figures.select(["fig9"])


def test_make_figures_script_is_the_cli(tmp_path):
    """``python experiments/make_figures.py`` is a thin wrapper of ``rmtheory figures`` (same checks, which
    fail before computing)."""
    r = subprocess.run([sys.executable, str(EXP / "make_figures.py"), "--seed", "-1", "--out", str(tmp_path)],
                       capture_output=True, text=True, cwd=str(tmp_path), timeout=120)
    assert r.returncode == 2 and "rmtheory figures: error: --seed must be >= 0; got -1" in r.stderr
    assert not any(tmp_path.iterdir())


# --------------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fig", sorted(FIGURES))
def test_png_and_data_written(quick, fig):
    png = quick / f"{FIGURES[fig]}.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image as mpimg

    img = mpimg.imread(str(png))
    assert img.shape[0] >= 400 and img.shape[1] >= 600  # readable at 100 % zoom, not a thumbnail
    assert img.std() > 0.05  # not blank
    for ext in DATA_EXT[fig]:
        path = quick / f"{FIGURES[fig]}.{ext}"
        assert path.is_file() and path.stat().st_size > 0
    text = (quick / f"{FIGURES[fig]}.json").read_text()
    json.loads(text, parse_constant=_reject_constant)  # strict JSON (no NaN/Infinity literals)
    assert '"inf"' not in text and '"nan"' not in text and '"-inf"' not in text  # non-finite -> null
    assert not list(quick.glob("*.tmp*")), "atomic writes left temporary files"


# --------------------------------------------------------------------------------------------------
# Figure 1: scaling law
# --------------------------------------------------------------------------------------------------

def test_fig1_scaling_law(quick):
    d = _csv(quick, "fig1")
    assert {"family", "variance", "t_gamma", "status", "gamma", "bound_prop3", "bound_thm4", "jacobian"} <= set(d)
    fams = set(d["family"])
    assert {"tabular, rescaled RM", "tabular, peaked policies", "autoregressive tabular (|V|=3, L=2)",
            "neural: MLP policy (|V|=3, L=2)", "worst case: 2 equiprobable outputs"} == fams
    t, var, b3, b4 = d["t_gamma"], d["variance"], d["bound_prop3"], d["bound_thm4"]
    assert np.all(var >= 0) and np.all(var <= 1 + TOL)
    assert not np.any(np.isnan(t))
    # every measured t_γ is at least its lower bound(s): Prop. 3 for tabular rows, Thm. 4 for all
    assert np.all(t >= b4 * (1 - TOL))
    tab = np.isfinite(b3)
    assert tab.sum() > 0 and np.all(t[tab] >= b3[tab] * (1 - TOL))
    assert np.all(np.isnan(b3[d["family"] == "neural: MLP policy (|V|=3, L=2)"]))  # Prop. 3 is tabular only
    mlp = d["family"] == "neural: MLP policy (|V|=3, L=2)"
    assert mlp.sum() >= 4 and np.all(np.isfinite(t[mlp])) and np.all(d["jacobian"][mlp] > 0)
    for fam in fams - {"tabular, peaked policies", "tabular, rescaled RM"}:
        assert np.all(np.isfinite(t[d["family"] == fam])), fam
    assert np.isfinite(t[d["family"] == "tabular, rescaled RM"]).mean() > 0.9
    s = _json(quick, "fig1")
    for fam, rec in s["families"].items():
        assert _f(rec["slope"]) < 0, fam
        assert rec["violations_prop3"] == 0 and rec["violations_thm4"] == 0, fam
        assert _f(rec["min_ratio_thm4"]) >= 1 - TOL
    # rescaling r_RM rescales time exactly: t_γ ∝ Var^{-1/2} along the worst-case line
    assert abs(_f(s["families"]["worst case: 2 equiprobable outputs"]["slope"]) + 0.5) < 1e-3
    w = s["worst_case"]
    assert w["violations"] == 0 and w["below_floor"] == 0
    assert 1.0 <= _f(w["min_ratio"]) < 2.1  # two equiprobable outputs at small γ approach the floor 1 + e^{-γ/2}
    assert _f(w["min_ratio"]) >= _f(w["at"]["floor_at_gamma"]) * (1 - 1e-6)


# --------------------------------------------------------------------------------------------------
# Figure 2: Theorem 2
# --------------------------------------------------------------------------------------------------

def test_fig2_accuracy_not_enough(quick):
    d = _csv(quick, "fig2")
    assert {"time", "reward_model", "ground_truth_reward"} <= set(d)
    assert np.all(np.abs(d["ground_truth_reward"]) <= 1 + TOL) and np.all(d["time"] >= 0)
    s = _json(quick, "fig2")
    perfect = [m for m in s["models"] if m["label"].startswith("r_perfect")]
    fast = [m for m in s["models"] if not m["label"].startswith("r_perfect")]
    assert len(perfect) >= 2 and len(fast) == 1
    for m in s["models"]:
        assert 0 <= m["accuracy"] <= 1 and m["variance"] >= 0
    assert all(m["accuracy"] == 1.0 for m in perfect)
    assert fast[0]["accuracy"] <= 2.0 / s["n_outputs"] + TOL
    sw = s["slow_sweep"]
    T, t, lb = (np.array([_f(x) for x in sw[k]]) for k in ("slowness", "t_gamma", "thm5_slow_lower_bound"))
    assert np.all(np.array(sw["accuracy"]) == 1.0)
    assert np.all(np.isfinite(t)) and np.all(np.diff(t) > 0)  # t_γ increasing in T at accuracy 1
    assert np.all(t >= lb * (1 - TOL))
    assert _f(s["fast"]["t_gamma"]) <= _f(s["fast"]["thm5_fast_upper_bound"]) * (1 + TOL)
    # the inaccurate RM beats the accurate ones once T is large
    assert _f(s["fast"]["t_gamma"]) < t[-1]


# --------------------------------------------------------------------------------------------------
# Figure 3: Theorem 3
# --------------------------------------------------------------------------------------------------

def test_fig3_policy_dependence(quick):
    d = _csv(quick, "fig3")
    assert {"family", "reward_model", "policy_index", "variance", "t_gamma", "bound", "bound_kind"} <= set(d)
    assert np.all(np.isfinite(d["t_gamma"])) and np.all(d["variance"] >= 0)
    fast = np.array([k.startswith("upper") for k in d["bound_kind"]])
    assert fast.sum() > 0 and (~fast).sum() > 0
    assert np.max(d["t_gamma"][fast]) < np.min(d["t_gamma"][~fast])  # every fast cell beats every slow cell
    assert np.all(d["t_gamma"][fast] <= d["bound"][fast] * (1 + TOL))  # Thm. 6 fast: upper bound
    assert np.all(d["t_gamma"][~fast] >= d["bound"][~fast] * (1 - TOL))  # Thm. 6 slow: lower bound
    s = _json(quick, "fig3")
    assert len(s["cells"]) == 4 and all(c["bound_holds"] for c in s["cells"])
    # the 2×2 is a cross: each family has one fast and one slow teacher, and the roles swap
    kinds = {(c["family"], c["reward_model"]): c["bound_kind"] for c in s["cells"]}
    for fam in {c["family"] for c in s["cells"]}:
        assert sorted(v.split()[0] for (f, _), v in kinds.items() if f == fam) == ["lower", "upper"]


# --------------------------------------------------------------------------------------------------
# Figure 4: landscape
# --------------------------------------------------------------------------------------------------

def test_fig4_landscape(quick):
    d = _csv(quick, "fig4")
    assert {"sigma", "scale", "accuracy", "variance", "t_gamma", "status"} <= set(d)
    assert np.all((d["accuracy"] >= 0) & (d["accuracy"] <= 1))
    assert np.all(d["variance"] >= 0) and not np.any(np.isnan(d["t_gamma"]))
    assert np.all(d["t_gamma"] > 0)
    fin = np.isfinite(d["t_gamma"])
    assert fin.mean() > 0.5
    s = _json(quick, "fig4")
    rv, ra = _f(s["spearman_t_vs_variance_finite_only"]), _f(s["spearman_t_vs_accuracy_finite_only"])
    assert -1 <= rv <= 1 and -1 <= ra <= 1
    assert rv < -0.5 and abs(rv) > abs(ra)  # variance, not accuracy, orders the speed
    assert _f(s["spearman_t_vs_variance"]) < 0


# --------------------------------------------------------------------------------------------------
# Figure 5: flow vs practice
# --------------------------------------------------------------------------------------------------

def test_fig5_flow_vs_practice(quick):
    d = _csv(quick, "fig5")
    sgd = [c for c in d if c.startswith("t_SGD")]
    assert len(sgd) >= 3, "SGD at several step sizes"
    assert any(c.startswith("t_Adam") for c in d)
    assert any(c.startswith("t_REINFORCE") for c in d) and any(c.startswith("t_RLOO") for c in d)
    assert {"rm_set", "scale", "variance", "accuracy", "t_flow"} <= set(d)
    assert np.all(np.isfinite(d["t_flow"])) and np.all((d["accuracy"] >= 0) & (d["accuracy"] <= 1))
    s = _json(quick, "fig5")
    m = s["methods"]
    for name, rec in m.items():
        assert rec["n_not_reached"] == 0, name
    # small-step SGD is forward Euler of the flow: same times, same ordering
    small = m["SGD η=0.1"]
    for st in ("noisy", "rescaled"):
        assert _f(small[st]["spearman_vs_flow"]) > 0.9
        assert abs(_f(small[st]["median_ratio_to_flow"]) - 1) < 0.1
    # Adam is invariant to the reward scale: identical times along pure rescalings (the flow's scale as 1/s)
    adam = next(k for k in m if k.startswith("Adam"))
    assert _f(m[adam]["rescaled"]["relative_spread"]) < 1e-6
    assert _f(small["rescaled"]["relative_spread"]) > 1
    assert "invariant" in s["adam_note"]
    rescaled = d["rm_set"] == "rescaled"
    np.testing.assert_allclose(d["t_flow"][rescaled] * d["scale"][rescaled],
                               d["t_flow"][rescaled][-1] * d["scale"][rescaled][-1], rtol=1e-6)


# --------------------------------------------------------------------------------------------------
# Figure 6: the teaching rate against Var and accuracy
# --------------------------------------------------------------------------------------------------

def test_fig6_teaching_rate(quick):
    d = _csv(quick, "fig6")
    assert {"target", "gamma", "predictor", "reached", "spearman", "spearman_lo", "spearman_hi", "kendall",
            "paired_diff", "paired_lo", "paired_hi", "verdict"} <= set(d)
    s = _json(quick, "fig6")
    assert s["n_columns"] == 2 * s["n_instances"] and len(s["families"]) == 5
    gammas = s["gammas"]
    assert gammas[0] == 1e-3 and gammas == sorted(gammas)
    gt = [s["table"][f"ground truth | gamma={g:g}"] for g in gammas]
    for rec in gt + [s["table"][f"proxy | gamma={g:g}"] for g in gammas]:
        for p, r in rec["predictors"].items():
            rho, (lo, hi), tau = _f(r["spearman"]), map(_f, r["spearman_ci"]), _f(r["kendall"])
            assert -1 <= lo <= hi <= 1 and -1 <= rho <= 1 and -1 <= tau <= 1, p
        first = "rate_G" if "rate_G" in rec["predictors"] else "rate_self"
        for p, r in rec["predictors"].items():
            if p != first:  # the paired difference is the difference of the two point estimates
                assert abs(_f(r[f"paired_diff_vs_{first}"]) - (_f(rec["predictors"][first]["spearman"])
                                                                 - _f(r["spearman"]))) < 1e-12
                lo, hi = map(_f, r["paired_diff_ci"])
                assert r["verdict"] == ("beats" if lo > 0 else "loses" if hi < 0 else "not distinguishable")
    # a larger γ is never reached more often (t_γ is non-decreasing in γ for every column)
    reached = [rec["reached"] for rec in gt]
    assert all(a >= b for a, b in zip(reached, reached[1:])) and reached[0] > 0.5
    # at fixed |S| and γ, the Prop. 3 bound is a decreasing function of Var: the same ranks (up to ties that the
    # square root makes or breaks among variances equal to rounding)
    for rec in gt:
        p3, var = (_f(rec["predictors"][p]["spearman"]) for p in ("Prop 3 bound", "Var"))
        assert abs(p3 - var) < 1e-3
    # at the smallest γ the exact first-order speed ranks the ground-truth speed almost perfectly, and beats the rest
    small = gt[0]["predictors"]
    assert _f(small["rate_G"]["spearman"]) > 0.9
    assert all(r["verdict"] == "beats" for p, r in small.items() if p != "rate_G")
    dec = s["decision"]["ground truth"]
    assert dec["first_order_predictor"] == "rate_G" and dec["per_gamma"][0]["wins"]


# --------------------------------------------------------------------------------------------------
# Figure 7: per-prompt, pooled and held-out rates with shared parameters
# --------------------------------------------------------------------------------------------------

def test_fig7_shared_parameters(quick):
    d = _csv(quick, "fig7")
    assert {"target", "gamma", "predictor", "reached", "spearman", "spearman_lo", "spearman_hi", "kendall",
            "paired_diff", "paired_lo", "paired_hi", "verdict"} <= set(d)
    assert set(d["target"]) == {"train", "held-out"}
    s = _json(quick, "fig7")
    assert s["n_instances"] == 100 and len(s["families"]) == 5 and s["mode"] == "quick"
    assert s["n_prompts"] == 6 and s["n_train_prompts"] == 4 and s["n_outputs"] == 9
    gammas = s["gammas"]
    assert gammas == sorted(gammas) and len(d["target"]) == len(gammas) * (7 + 8)
    assert _f(s["rate_crosscheck_max_rel_diff"]) < 1e-10  # neural_teaching_rate = ⟨ū, v̄⟩ from u_x, v_x
    for target, first in (("train", "pooled rate"), ("held-out", "held-out rate")):
        recs = [s["table"][f"{target} | gamma={g:g}"] for g in gammas]
        for rec in recs:
            assert list(rec["predictors"])[-1] == first
            for p, r in rec["predictors"].items():
                rho, (lo, hi) = _f(r["spearman"]), map(_f, r["spearman_ci"])
                assert -1 <= lo <= hi <= 1 and -1 <= rho <= 1, p
                if p != first:
                    assert abs(_f(r[f"paired_diff_vs_{first}"]) - (_f(rec["predictors"][first]["spearman"])
                                                                     - rho)) < 1e-12
                    lo, hi = map(_f, r["paired_diff_ci"])
                    assert r["verdict"] == ("beats" if lo > 0 else "loses" if hi < 0 else "not distinguishable")
        reached = [rec["reached"] for rec in recs]  # a larger target is first hit later: never reached more often
        assert all(a >= b for a, b in zip(reached, reached[1:])) and reached[0] > 0.5
        assert s["decision"][target]["first_order_predictor"] == first
    assert "held-out rate" not in s["table"][f"train | gamma={gammas[0]:g}"]["predictors"]
    assert list(s["primary"]) == ["pooled vs per-prompt (train)", "held-out vs per-prompt (held-out)",
                                  "held-out vs pooled (held-out)"]
    # the exact first-order rate of the averaged ground truth ranks its speed at the smallest γ
    assert _f(s["table"][f"train | gamma={gammas[0]:g}"]["predictors"]["pooled rate"]["spearman"]) > 0.8


def test_fig7_rates_are_the_flow_derivatives():
    """fig7's rates from its exact per-prompt gradients u_x, v_x: the pooled rate (1/|S|²) Σ_{x,x'∈S} ⟨u_x, v_x'⟩ is
    ``parametric_teaching_rate(...).total`` (as is the figure's pooled rate) and the held-out rate is the mean
    over A of its ``per_prompt``, on two instances; the per-prompt rate keeps the diagonal only (it differs)."""
    import jax

    import rmtheory as rt
    from rmtheory.figures import fig7_shared_parameters as f7

    rt.enable_x64()
    rng = np.random.default_rng(5)
    shapes = jax.eval_shape(f7.POLICY.init, jax.random.PRNGKey(0))  # random parameters of the figure's MLP
    params = {k: rng.normal(size=(2,) + a.shape) for k, a in shapes.items()}
    r_g = rng.uniform(-1, 1, (2, f7.N_PROMPTS, f7.N_OUT))
    r_rm = np.clip(0.3 * r_g + 0.5 * rng.uniform(-1, 1, r_g.shape), -1, 1)
    lam = np.zeros(2)
    preds, check = f7.predictors(params, r_g, r_rm, lam)
    assert check < 1e-10
    u, v = f7.prompt_gradients(params, r_g, r_rm, lam)
    s, a = f7.TRAIN, ~f7.TRAIN
    rate = jax.jit(lambda p, r, m, w: rt.parametric_teaching_rate(f7.POLICY.log_probs, p, r, m, train_mask=w))
    for i in range(2):
        ref = rate({k: x[i] for k, x in params.items()}, r_rm[i], r_g[i], s.astype(float))
        pooled = np.einsum("xd,yd->", u[i, s], v[i, s]) / s.sum() ** 2
        held = np.einsum("xd,yd->", u[i, a], v[i, s]) / (s.sum() * a.sum())
        np.testing.assert_allclose([pooled, held, preds["pooled rate"][i], preds["held-out rate"][i]],
                                   [float(ref.total), float(np.mean(ref.per_prompt[a]))] * 2, rtol=1e-10)
        diagonal = np.einsum("xd,xd->", u[i, s], v[i, s]) / s.sum()
        np.testing.assert_allclose(preds["per-prompt rate"][i], diagonal, rtol=1e-12)
        assert abs(diagonal / s.sum() - pooled) > 1e-3 * abs(pooled)  # the cross-prompt terms matter


def test_write_json_writes_non_finite_as_null(tmp_path, capsys):
    """Figure data follow rmtheory.io's strict rule: non-finite values are null, never the strings "inf"/"nan"."""
    write_json({"t": [1.5, float("inf"), -np.inf], "rho": np.float64("nan"), "n": np.int64(3)}, str(tmp_path), "x.json")
    text = (tmp_path / "x.json").read_text()
    assert json.loads(text, parse_constant=_reject_constant) == {"t": [1.5, None, None], "rho": None, "n": 3}
    assert not list(tmp_path.glob(".tmp*"))


def test_data_file_with_the_same_numbers_is_kept(tmp_path, capsys):
    """A data file is replaced only when a number moves by more than KEEP_RTOL (or a text cell or the shape
    changes): a rerun whose floats differ in the 13th digit (another CPU) keeps the bytes; a real change is
    written and named."""
    from rmtheory.figures._output import KEEP_RTOL

    cols = {"name": np.array(["a", "b", "c"]), "t": np.array([1.0, 2.5e-7, np.inf]), "n": np.array([1, 2, 3])}
    path = Path(write_columns(cols, str(tmp_path), "d.csv"))
    write_json({"x": 1.0 / 3.0, "v": [0.1, None], "k": "s"}, str(tmp_path), "d.json")
    jpath = tmp_path / "d.json"
    before, jbefore = path.read_bytes(), jpath.read_bytes()
    capsys.readouterr()

    tiny = dict(cols, t=cols["t"] * (1 + 1e-13))
    write_columns(tiny, str(tmp_path), "d.csv")
    write_json({"x": (1.0 / 3.0) * (1 + 1e-13), "v": [0.1, None], "k": "s"}, str(tmp_path), "d.json")
    assert path.read_bytes() == before and jpath.read_bytes() == jbefore
    out = capsys.readouterr().out
    assert out.count("kept") == 2 and "wrote" not in out

    moved = dict(cols, t=cols["t"] * np.array([1.0, 1 + 100 * KEEP_RTOL, 1.0]))
    write_columns(moved, str(tmp_path), "d.csv")
    out = capsys.readouterr().out
    assert path.read_bytes() != before and "differs from the previous file" in out and "column t, row 2" in out
    assert np.isclose(read_columns(str(path))["t"][1], moved["t"][1], rtol=0, atol=0)

    write_json({"x": 1.0 / 3.0, "v": [0.1, None], "k": "other"}, str(tmp_path), "d.json")
    out = capsys.readouterr().out
    assert jpath.read_bytes() != jbefore and "changed at k" in out
    assert json.loads(jpath.read_text())["k"] == "other"


def test_png_with_the_same_pixels_is_kept(tmp_path, capsys):
    from rmtheory import io
    from rmtheory.figures._output import FIGURE_RC, write_figure

    plt = io.pyplot(FIGURE_RC)

    def draw(y):
        fig, ax = plt.subplots(figsize=(2, 2))
        ax.plot([0, 1], [0, y])
        return fig

    path = Path(write_figure(draw(1.0), str(tmp_path), "f.png"))
    before = path.read_bytes()
    path.write_bytes(before)  # same bytes, new mtime
    write_figure(draw(1.0), str(tmp_path), "f.png")
    assert "kept" in capsys.readouterr().out.splitlines()[-1] and path.read_bytes() == before
    write_figure(draw(0.2), str(tmp_path), "f.png")
    assert "differs from the previous image" in capsys.readouterr().out and path.read_bytes() != before
