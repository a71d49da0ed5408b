"""Regenerate every figure: ``python experiments/make_figures.py [--quick] [--seed S] [--out DIR] [--only NAME]``.

Runs each ``experiments/fig*.py`` script's ``run(quick, seed, out)`` in turn, printing progress and timings.
(``rmtheory figures`` does the same.)
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import os
import sys
import time

from rmtheory._figures_cli import configure  # the options of `rmtheory figures`, defined once
from rmtheory.io import check_writable

HERE = os.path.dirname(os.path.abspath(__file__))


def scripts(directory: str = HERE) -> dict:
    """{short name: path} of the figure scripts, e.g. {"fig1": ".../fig1_scaling_law.py"}."""
    out = {}
    for path in sorted(glob.glob(os.path.join(directory, "fig*_*.py"))):
        base = os.path.splitext(os.path.basename(path))[0]
        out[base.split("_")[0]] = path
    return out


def load(path: str):
    name = "rmtheory_experiments_" + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def select(only, available: dict) -> dict:
    if not only:
        return available
    chosen = {}
    for o in only:
        key = o.split("_")[0] if o.startswith("fig") else o
        matches = {k: v for k, v in available.items() if k == key or os.path.basename(v).startswith(o)}
        if not matches:
            raise SystemExit(f"--only {o!r}: no such figure; choose from {', '.join(available)}")
        chosen.update(matches)
    return chosen


def run_all(quick: bool, seed: int, out: str, only=None, directory: str = HERE) -> dict:
    todo = select(only, scripts(directory))
    timings = {}
    t_all = time.perf_counter()
    for i, (key, path) in enumerate(todo.items(), 1):
        print(f"[{i}/{len(todo)}] {os.path.basename(path)} ({'quick' if quick else 'default'}, seed {seed}) → {out}",
              flush=True)
        t0 = time.perf_counter()
        load(path).run(quick=quick, seed=seed, out=out)
        timings[key] = time.perf_counter() - t0
        print(f"[{i}/{len(todo)}] {key} done in {timings[key]:.1f} s", flush=True)
    total = time.perf_counter() - t_all
    print(f"all figures done in {total:.1f} s", flush=True)
    if not only:  # a full run records its wall times next to the figures
        import json
        import platform

        os.makedirs(out, exist_ok=True)
        rec = {"mode": "quick" if quick else "default", "seed": seed, "seconds": {k: round(v, 1) for k, v in timings.items()},
               "total_seconds": round(total, 1), "cpu_count": os.cpu_count(), "python": platform.python_version(),
               "command": "python experiments/make_figures.py" + (" --quick" if quick else "")}
        with open(os.path.join(out, "make_figures_timings.json"), "w") as f:
            f.write(json.dumps(rec, indent=2) + "\n")
    return timings


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    configure(p)
    a = p.parse_args(argv)
    if a.seed < 0:
        p.error(f"--seed must be >= 0; got {a.seed}")
    try:
        check_writable(a.out, directory=True)   # before minutes of computing
    except ValueError as e:
        p.error(f"--out {e}")
    run_all(a.quick, a.seed, a.out, a.only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
