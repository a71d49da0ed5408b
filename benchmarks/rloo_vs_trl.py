"""Our RLOO update against Hugging Face TRL's RLOOTrainer, in alternating rounds on one machine.

    python benchmarks/rloo_vs_trl.py --trl-python /path/to/torch-venv/bin/python [--rounds 3] [--runs 8]

Each round runs, one after another: ``rloo_step.py`` in the pipeline's mode (one reference policy) and in the
studies' mode (``--per-run-refs``: every run its own reference, as ``rmtheory lm grid``/``paradox``/``predict``
train), each with the stacked runs trained the way the pipeline picks on this machine (``rloo.default_mode()``);
then ``trl_rloo.py --mode tuned`` with 1 and with 2 torch threads (TRL's best thread count depends on the load),
and (``--pair``) two 1-thread TRL processes at once, their updates/s summed: ours uses the second core by
training two blocks of runs at once ("cores" mode), which a TRL user could match by running two trainings side by
side, so that line is the fairer throughput baseline (it is not the target's "best thread count").
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


def run_pair(cmd, pattern):
    """Run two copies of ``cmd`` at once; return the sum of the floats ``pattern`` captures in their outputs."""
    la = loadavg()
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    total = 0.0
    for p in procs:
        out, err = p.communicate()
        m = re.search(pattern, out)
        if p.returncode != 0 or not m:
            sys.exit(f"failed: {' '.join(cmd)}\n{out[-3000:]}\n{err[-3000:]}")
        total += float(m.group(1))
    return total, la


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trl-python", required=True, help="a Python with torch and trl (the bench-trl extra)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=8, help="stacked runs in rloo_step.py (even: on 2 cores the \"cores\" "
                    "mode deals them into 2 equal blocks, as the studies' dozens of runs are dealt)")
    ap.add_argument("--reps", type=int, default=2, help="repetitions inside each script (best/median of them)")
    ap.add_argument("--updates", type=int, default=20, help="timed TRL updates per repetition")
    ap.add_argument("--pair", action="store_true", help="also two 1-thread TRL processes at once (summed)")
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
        row = [pipe / best, studies / best]
        print(f"round {r}: ours / TRL tuned at its best thread count ({best:.2f}): pipeline {pipe / best:.2f}×, "
              f"studies {studies / best:.2f}×", flush=True)
        if a.pair:
            pair, la5 = run_pair(trl + ["--threads", "1"], trl_pat)
            row += [pipe / pair, studies / pair]
            print(f"round {r}: TRL tuned, 2 processes × 1 thread: {pair:.2f} updates/s in all (load {la5}); ours / "
                  f"that: pipeline {pipe / pair:.2f}×, studies {studies / pair:.2f}×", flush=True)
        rows.append(row)
    med = [statistics.median(x[i] for x in rows) for i in range(len(rows[0]))]
    print(f"median over {a.rounds} rounds: pipeline {med[0]:.2f}×, studies {med[1]:.2f}× TRL tuned at its best "
          "thread count" + (f"; pipeline {med[2]:.2f}×, studies {med[3]:.2f}× two 1-thread TRL processes"
                            if a.pair else ""))


if __name__ == "__main__":
    main()
