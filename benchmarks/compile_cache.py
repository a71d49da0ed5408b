"""Benchmark the persistent compilation cache: each command run twice on one fresh cache directory.

Run by hand:  python benchmarks/compile_cache.py [--only verify,figures,lm] [--uncached] [--dir DIR]

For ``rmtheory verify --scale quick``, ``rmtheory figures --quick --out <dir>`` and ``rmtheory lm run --config tiny
--out <dir>``, one subprocess each time (``python -m rmtheory.cli``): the first run with a fresh
``RMTHEORY_CACHE_DIR`` (it compiles everything and writes the entries), the second with the same directory (it
loads them). Prints both wall times, their ratio first/second, whether the two runs' outputs are byte-identical
(verify: its table on stdout, the per-check timings going to stderr; figures and lm: every file under
``--out``, images, checkpoints and logs included) and the cache's entries and size after the second run.
``--uncached`` adds a third run with ``RMTHEORY_NO_CACHE=1`` (compared with the first). Wall times on a shared
machine move with its load: the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time

from _machine import cpu_model, loadavg

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
COMMANDS = {
    "verify": ["verify", "--scale", "quick"],
    "figures": ["figures", "--quick", "--out", "{out}"],
    "lm": ["lm", "run", "--config", "tiny", "--out", "{out}"],
}


def _env(cache: str, off: bool = False) -> dict:
    env = dict(os.environ, RMTHEORY_CACHE_DIR=cache, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for name in ("RMTHEORY_NO_CACHE", "JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"):
        env.pop(name, None)
    if off:
        env["RMTHEORY_NO_CACHE"] = "1"
    return env


def run(name: str, cache: str, out: str, off: bool = False):
    """One run: (wall seconds, its outputs as {relative path: bytes})."""
    args = [a.format(out=out) for a in COMMANDS[name]]
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "rmtheory.cli", *args], env=_env(cache, off), capture_output=True,
                       cwd=os.path.dirname(out))
    secs = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({p.returncode}):\n{p.stderr.decode()[-3000:]}")
    files = {"stdout": p.stdout} if name == "verify" else {}
    for root, _, names in os.walk(out):
        for n in names:
            path = os.path.join(root, n)
            with open(path, "rb") as f:
                files[os.path.relpath(path, out)] = f.read()
    return secs, files


def _cache_size(cache: str):
    """The number of entries (JAX's ``<key>-cache`` files) and the bytes of every file, as table cells."""
    sizes = [(n, os.path.getsize(os.path.join(r, n))) for r, _, names in os.walk(cache) for n in names]
    return f"{sum(n.endswith('-cache') for n, _ in sizes)}", f"{sum(s for _, s in sizes) / 1e6:.1f} MB"


def _differ(a: dict, b: dict) -> str:
    """"yes" if identical, else the differing paths."""
    diff = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    return "yes" if not diff else "no: " + ", ".join(diff[:5]) + (" …" if len(diff) > 5 else "")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(COMMANDS), help="comma-separated subset of " + ",".join(COMMANDS))
    ap.add_argument("--uncached", action="store_true", help="also run each command with RMTHEORY_NO_CACHE=1")
    ap.add_argument("--dir", default="/tmp/rmtheory_compile_cache", help="scratch directory (emptied first)")
    args = ap.parse_args()
    import jax

    print(f"CPU: {cpu_model()}; cpus available: {len(os.sched_getaffinity(0))}; load average: {loadavg()}; "
          f"jax {jax.__version__}")
    shutil.rmtree(args.dir, ignore_errors=True)
    rows = []
    for name in args.only.split(","):
        base = os.path.join(args.dir, name)
        cache = os.path.join(base, "cache")
        os.makedirs(base)
        t1, first = run(name, cache, os.path.join(base, "first"))
        t2, second = run(name, cache, os.path.join(base, "second"))
        row = [" ".join(COMMANDS[name]).replace("{out}", "DIR"), f"{t1:.1f}", f"{t2:.1f}", f"{t1 / t2:.2f}×",
               _differ(first, second), *_cache_size(cache)]
        if args.uncached:
            t0, plain = run(name, os.path.join(base, "unused"), os.path.join(base, "uncached"), off=True)
            row += [f"{t0:.1f}", _differ(first, plain)]
        rows.append(row)
        print(f"  {row[0]}: {' | '.join(row[1:])}   (load average {loadavg()})", flush=True)
    head = ["command", "first run (s)", "second run (s)", "first/second", "identical outputs", "entries",
            "cache size"] + (["uncached run (s)", "identical to uncached"] if args.uncached else [])
    print()
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in rows:
        print("| " + " | ".join([f"`rmtheory {row[0]}`"] + row[1:]) + " |")


if __name__ == "__main__":
    main()
