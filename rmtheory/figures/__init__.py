"""The seven theory figures: data, plot and files, installed with the package (``rmtheory figures``).

Each figure is one module, ``fig1_scaling_law`` … ``fig7_shared_parameters``, exposing
``run(quick=False, seed=0, out="figures") -> dict`` (writes ``out/<name>.png`` and its CSV/JSON data, returns
the data it plotted) and ``main(argv=None)`` (``python -m rmtheory.figures.fig2_accuracy_not_enough --quick``).
:func:`run_all` runs them in turn; ``rmtheory figures`` is its command line (:mod:`rmtheory.figures.cli`).

The figures compute in float64: :func:`run_all` and the command lines switch it on with
:func:`rmtheory.enable_x64`; a bare ``fig*.run`` needs it switched on first (it raises otherwise).
"""

from __future__ import annotations

import importlib
import time

from ._output import QUICK_OUT, default_out, read_columns, write_columns, write_json
from ._tabular import BUCKET, N_OUTPUTS, T_MAX, embed, loglog_slope, tabular_t_gamma

FIGURES = {
    "fig1": "fig1_scaling_law",
    "fig2": "fig2_accuracy_not_enough",
    "fig3": "fig3_policy_dependence",
    "fig4": "fig4_landscape",
    "fig5": "fig5_flow_vs_practice",
    "fig6": "fig6_teaching_rate",
    "fig7": "fig7_shared_parameters",
}
"""{short name: module name} of every figure, in the order :func:`run_all` runs them."""

__all__ = ["BUCKET", "FIGURES", "N_OUTPUTS", "QUICK_OUT", "T_MAX", "default_out", "embed", "figure", "loglog_slope",
           "read_columns", "run_all", "select", "tabular_t_gamma", "write_columns", "write_json"]


def figure(key: str):
    """The module of figure ``key`` (``"fig1"`` … ``"fig7"``)."""
    return importlib.import_module(f"{__name__}.{FIGURES[key]}")


def select(only=None) -> dict:
    """{short name: module name} of the figures named in ``only`` (short names such as ``"fig2"`` or module-name
    prefixes such as ``"fig2_acc"``); all of them when ``only`` is empty. Raises ValueError on an unknown name."""
    if not only:
        return dict(FIGURES)
    chosen = {}
    for o in only:
        key = o.split("_")[0] if o.startswith("fig") else o
        matches = {k: v for k, v in FIGURES.items() if k == key or (v + ".py").startswith(o)}
        if not matches:
            raise ValueError(f"{o!r}: no such figure; choose from {', '.join(FIGURES)}")
        chosen.update(matches)
    return chosen


def run_all(quick: bool = False, seed: int = 0, out: str | None = None, only=None) -> dict:
    """Run the selected figures (all by default) into ``out``, printing progress; returns {name: seconds}.

    ``out`` defaults to ``figures`` in the default mode and to ``figures-quick`` in quick mode, so a quick run
    never replaces the default figures. A data file that already holds the same numbers (to 1e-9 relative) is
    kept byte for byte, so a rerun on another CPU leaves the committed files as they are.

    Switches JAX to float64 (:func:`rmtheory.enable_x64`), which the figures' theory needs. The wall times go
    to the terminal only: the committed figures carry no machine timings.
    """
    from .. import enable_x64

    enable_x64()
    out = default_out(quick) if out is None else out
    todo = select(only)
    timings = {}
    t_all = time.perf_counter()
    for i, (key, name) in enumerate(todo.items(), 1):
        print(f"[{i}/{len(todo)}] {name} ({'quick' if quick else 'default'}, seed {seed}) → {out}", flush=True)
        t0 = time.perf_counter()
        figure(key).run(quick=quick, seed=seed, out=out)
        timings[key] = time.perf_counter() - t0
        print(f"[{i}/{len(todo)}] {key} done in {timings[key]:.1f} s", flush=True)
    total = time.perf_counter() - t_all
    print(f"all figures done in {total:.1f} s ({', '.join(f'{k} {v:.1f} s' for k, v in timings.items())})",
          flush=True)
    return timings
