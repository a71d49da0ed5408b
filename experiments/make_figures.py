"""Regenerate every figure: ``python experiments/make_figures.py [--quick] [--seed S] [--out DIR] [--only NAME]``.

A thin wrapper of ``rmtheory figures`` (the figure code lives in the package, :mod:`rmtheory.figures`).
"""

import sys

from rmtheory.cli import main

if __name__ == "__main__":
    sys.exit(main(["figures", *sys.argv[1:]]))
