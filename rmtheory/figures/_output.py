"""Output helpers shared by the figure modules: command-line wrapper, the figures' matplotlib style
(:data:`FIGURE_RC`, for :func:`rmtheory.io.pyplot`), atomic PNG/CSV/JSON writes (through :mod:`rmtheory.io`)
and captions.

Every figure module exposes ``run(quick, seed, out) -> dict`` (the data it plotted) and ``main(argv=None)``.
The ``write_*`` helpers take ``(data, out, name)``, write ``out/name`` and print its path; the ``save_*``
functions of :mod:`rmtheory.io` take ``(path, data)``.
"""

from __future__ import annotations

import argparse
import csv
import os
import time

import numpy as np

from .. import io

FIGURE_RC = {"font.size": 9, "axes.titlesize": 10, "legend.fontsize": 8, "figure.dpi": 110}
"""The rcParams every figure is drawn with: ``plt = io.pyplot(FIGURE_RC)``."""


def parse_args(argv, description: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="small configuration (CI)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random draw")
    p.add_argument("--out", default="figures", help="output directory for the PNG and its data")
    return p.parse_args(argv)


def script_main(run, argv, description: str) -> int:
    from .. import enable_x64

    args = parse_args(argv, description)
    enable_x64()
    t0 = time.perf_counter()
    run(quick=args.quick, seed=args.seed, out=args.out)
    print(f"done in {time.perf_counter() - t0:.1f} s")
    return 0


def figure_main(run, doc: str):
    """``main(argv=None) -> int`` for a figure script whose ``run(quick, seed, out)`` is given."""
    return lambda argv=None: script_main(run, argv, doc.splitlines()[0])


def write_figure(fig, out: str, name: str) -> str:
    """Write ``fig`` to ``out/name`` atomically (tmp file + os.replace) and close it."""
    import matplotlib.pyplot as plt

    fmt = os.path.splitext(name)[1][1:]
    path = io.atomic(lambda p: fig.savefig(p, dpi=130, bbox_inches="tight", format=fmt), os.path.join(out, name))
    plt.close(fig)
    print(f"wrote {path}")
    return path


def write_json(obj, out: str, name: str) -> str:
    """Strict JSON (rmtheory.io's rule: non-finite floats are written as null), atomically."""
    path = io.save_json(os.path.join(out, name), obj, sort_keys=False)
    print(f"wrote {path}")
    return path


def write_columns(columns: dict, out: str, name: str) -> str:
    """A CSV of columns given as {name: 1-D array} (equal lengths); floats written with repr precision ('inf'
    allowed)."""
    cols = list(columns)
    n = len(next(iter(columns.values())))
    arrs = [np.asarray(columns[c]) for c in cols]
    if any(len(a) != n for a in arrs):
        raise ValueError("write_columns: columns of unequal length")

    def write(p):
        with open(p, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(cols)
            for i in range(n):
                w.writerow([repr(float(a[i])) if a.dtype.kind == "f" else a[i] for a in arrs])

    path = io.atomic(write, os.path.join(out, name))
    print(f"wrote {path}")
    return path


def read_columns(path: str) -> dict:
    """Read a CSV written by :func:`write_columns` back as {column: np.ndarray} (numeric where possible)."""
    with open(path) as f:
        r = csv.reader(f)
        cols = next(r)
        data = list(r)
    out = {}
    for j, c in enumerate(cols):
        vals = [row[j] for row in data]
        try:
            out[c] = np.array([float(v) for v in vals])
        except ValueError:
            out[c] = np.array(vals)
    return out


def caption(fig, text: str, y: float = -0.01, fontsize: float = 7.5):
    """A wrapped caption under the axes (saved thanks to bbox_inches='tight')."""
    import textwrap

    width = int(fig.get_figwidth() * 17)
    fig.text(0.01, y, "\n".join(textwrap.fill(p, width) for p in text.split("\n")), ha="left", va="top",
             fontsize=fontsize, color="0.2")
