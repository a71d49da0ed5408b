"""Run the miniature LM pipeline (Section 4.1) and write its figures/tables into figures/.

    python experiments/lm_pipeline.py [--config small] [--out runs/small]
"""

import argparse
import sys

from rmtheory.lm.cli import configure, main

if __name__ == "__main__":
    p = configure(argparse.ArgumentParser())
    argv = sys.argv[1:]
    if not argv or argv[0].startswith("-"):
        argv = ["run"] + argv
    if "--out" not in argv:
        argv += ["--out", "runs/small"]
    if "--figures-dir" not in argv:
        argv += ["--figures-dir", "figures"]
    sys.exit(main(p.parse_args(argv)))
