"""Our RLOO update against Hugging Face TRL's RLOOTrainer, in alternating rounds on one machine.

    python benchmarks/rloo_vs_trl.py --trl-python /path/to/torch-venv/bin/python [--rounds 3] [--runs 7]

Each round runs, one after another: ``rloo_step.py`` in the pipeline's mode (one reference policy) and in the
studies' mode (``--per-run-refs``: every run its own reference, as ``rmtheory lm grid``/``paradox``/``predict``
train), each with the stacked runs trained the way the pipeline picks on this machine (``rloo.default_mode()``);
then ``trl_rloo.py --mode tuned`` with 1 and with 2 torch threads (TRL's best thread count depends on the load).
It prints every measurement with the load average before it, and the ratios of ours to TRL tuned at its best
thread count in the same round. ``trl_rloo.py`` needs torch and trl (the ``bench-trl`` extra), best in a separate
venv; ``--trl-python`` is that venv's interpreter.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys

from _machine import loadavg  # benchmarks/_machine.py (this script's directory is on sys.path)

HERE = os.path.dirname(os.path.abspath(__file__))


def run(cmd, pattern):
    """Run ``cmd``; return the float captured by ``pattern`` in its output (exit on failure)."""
    la = loadavg()
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    m = re.search(pattern, p.stdout)
    if not m:
        sys.exit(f"no match for {pattern!r} in the output of {' '.join(cmd)}:\n{p.stdout[-3000:]}")
    return float(m.group(1)), la


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trl-python", required=True, help="a Python with torch and trl (the bench-trl extra)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=7, help="stacked runs in rloo_step.py")
    ap.add_argument("--reps", type=int, default=2, help="repetitions inside each script (best/median of them)")
    ap.add_argument("--updates", type=int, default=20, help="timed TRL updates per repetition")
    a = ap.parse_args(argv)
    ours = [sys.executable, os.path.join(HERE, "rloo_step.py"), "--config", "small", "--runs", str(a.runs),
            "--reps", str(a.reps), "--no-baseline"]
    trl = [a.trl_python, os.path.join(HERE, "trl_rloo.py"), "--mode", "tuned", "--reps", str(a.reps), "--warmup", "3",
           "--updates", str(a.updates)]
    ours_pat = r"RLOO \(\w+\): ([\d.]+) updates/s"
    trl_pat = r"TRL RLOOTrainer tuned: ([\d.]+) updates/s"
    rows = []
    for r in range(1, a.rounds + 1):
        pipe, la1 = run(ours, ours_pat)
        print(f"round {r}: ours, pipeline mode: {pipe:.2f} updates/s (load {la1})", flush=True)
        studies, la2 = run(ours + ["--per-run-refs"], ours_pat)
        print(f"round {r}: ours, studies mode:  {studies:.2f} updates/s (load {la2})", flush=True)
        t1, la3 = run(trl + ["--threads", "1"], trl_pat)
        print(f"round {r}: TRL tuned, 1 thread:  {t1:.2f} updates/s (load {la3})", flush=True)
        t2, la4 = run(trl + ["--threads", "2"], trl_pat)
        print(f"round {r}: TRL tuned, 2 threads: {t2:.2f} updates/s (load {la4})", flush=True)
        best = max(t1, t2)
        rows.append((pipe / best, studies / best))
        print(f"round {r}: ours / TRL tuned at its best thread count ({best:.2f}): pipeline {pipe / best:.2f}×, "
              f"studies {studies / best:.2f}×", flush=True)
    print(f"median over {a.rounds} rounds: pipeline {statistics.median(x for x, _ in rows):.2f}×, "
          f"studies {statistics.median(y for _, y in rows):.2f}× TRL tuned")


if __name__ == "__main__":
    main()
