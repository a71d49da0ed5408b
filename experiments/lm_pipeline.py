"""Run the miniature LM pipeline (Section 4.1) and write its figures/tables into figures/.

    python experiments/lm_pipeline.py [--config small] [--out runs/small]

A thin wrapper of ``rmtheory lm run --out runs/small --figures-dir figures`` (which runs in 64-bit mode).
"""

import sys

from rmtheory.cli import main

if __name__ == "__main__":
    argv = sys.argv[1:]
    if not argv or argv[0].startswith("-"):
        argv = ["run"] + argv
    if "--out" not in argv:
        argv += ["--out", "runs/small"]
    if "--figures-dir" not in argv:
        argv += ["--figures-dir", "figures"]
    sys.exit(main(["lm", *argv]))
