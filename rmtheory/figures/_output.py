"""Output helpers shared by the figure modules: command-line wrapper, the figures' matplotlib style
(:data:`FIGURE_RC`, for :func:`rmtheory.io.pyplot`), atomic PNG/CSV/JSON writes (through :mod:`rmtheory.io`)
and captions.

Every figure module exposes ``run(quick, seed, out) -> dict`` (the data it plotted) and ``main(argv=None)``.
The ``write_*`` helpers take ``(data, out, name)``, write ``out/name`` and print its path; the ``save_*``
functions of :mod:`rmtheory.io` take ``(path, data)``.

**Data files repeat across CPUs.** Another CPU (or BLAS, or XLA build) rounds the figures' float64 sums
differently, in about the 13th significant digit, while the solver guarantees about 8 (its tolerances are
1e-8 and tighter). So a data file that already exists is compared with the new data before it is replaced:
when every number agrees to :data:`KEEP_RTOL` relative (and every text cell is equal), the existing file is
kept byte for byte and the line says ``kept``; otherwise it is replaced and the line names the largest
difference (file, column or key, relative size). Regenerating the committed figures therefore leaves
``git status`` clean unless a result really moved, and then says what moved.
"""

from __future__ import annotations

import argparse
import csv
import io as io_
import math
import os
import time

import numpy as np

from .. import io

QUICK_OUT = "figures-quick"
"""Default output directory of quick mode (ignored by git): a quick run never replaces the default figures."""

KEEP_RTOL = 1e-9
"""Relative agreement at which an existing data file is kept (solver accuracy ~1e-8, CPU rounding ~1e-13)."""

FIGURE_RC = {"font.size": 9, "axes.titlesize": 10, "legend.fontsize": 8, "figure.dpi": 110}
"""The rcParams every figure is drawn with: ``plt = io.pyplot(FIGURE_RC)``."""


def parse_args(argv, description: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="small configuration (CI)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random draw")
    p.add_argument("--out", default=None,
                   help=f"output directory for the PNG and its data (default: figures, or {QUICK_OUT} with --quick)")
    args = p.parse_args(argv)
    args.out = default_out(args.quick) if args.out is None else args.out
    return args


def default_out(quick: bool) -> str:
    """``figures`` for the default mode, :data:`QUICK_OUT` for quick mode."""
    return QUICK_OUT if quick else "figures"


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


def _pixels_changed(old: bytes, new: bytes):
    """How many pixels differ between two PNG files (0: the same image; metadata and compression may differ),
    and the image's size; ``None`` when either cannot be compared (unreadable, or of another shape)."""
    import matplotlib.image as mpimg

    try:
        a, b = mpimg.imread(io_.BytesIO(old), format="png"), mpimg.imread(io_.BytesIO(new), format="png")
    except Exception:  # noqa: BLE001 - an unreadable previous file is simply replaced
        return None
    if a.shape != b.shape:
        return None
    return int((a != b).reshape(a.shape[0], a.shape[1], -1).any(-1).sum()), a.shape[0] * a.shape[1]


def write_figure(fig, out: str, name: str) -> str:
    """Write ``fig`` to ``out/name`` atomically (tmp file + os.replace) and close it. An existing PNG with the
    same pixels is kept byte for byte (as a data file with the same numbers is)."""
    import matplotlib.pyplot as plt

    fmt = os.path.splitext(name)[1][1:]
    path = os.path.join(out, name)
    buf = io_.BytesIO()
    fig.savefig(buf, dpi=130, bbox_inches="tight", format=fmt)
    plt.close(fig)
    data = buf.getvalue()
    if fmt == "png" and os.path.exists(path):
        with open(path, "rb") as f:
            old = f.read()
        changed = (0, 0) if old == data else _pixels_changed(old, data)
        if changed is not None and changed[0] == 0:
            print(f"kept {path} (same pixels)")
            return path
        what = "another size" if changed is None else f"{changed[0]:,} of {changed[1]:,} pixels"
        print(f"wrote {path} (differs from the previous image: {what})")
    else:
        print(f"wrote {path}")

    def w(tmp):
        with open(tmp, "wb") as f:
            f.write(data)
    return io.atomic(w, path)


def _close(a, b) -> float:
    """0 when two JSON/CSV leaves agree (numbers to KEEP_RTOL relative, anything else exactly), else their
    relative difference (inf for a change of type or text)."""
    if isinstance(a, bool) or isinstance(b, bool) or not all(isinstance(v, (int, float)) for v in (a, b)):
        return 0.0 if a == b else math.inf
    if a == b or (math.isnan(a) and math.isnan(b)):
        return 0.0
    if not (math.isfinite(a) and math.isfinite(b)):
        return math.inf
    rel = abs(a - b) / max(abs(a), abs(b))
    return 0.0 if rel <= KEEP_RTOL else rel


def _json_diff(a, b, where="") -> tuple[float, str]:
    """The largest difference between two JSON trees and where it is (``(0.0, "")`` when they agree)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if list(a) != list(b):
            return math.inf, where or "keys"
        return max((_json_diff(a[k], b[k], f"{where}.{k}" if where else k) for k in a), default=(0.0, ""))
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return math.inf, f"{where} (length)"
        return max((_json_diff(x, y, f"{where}[{i}]") for i, (x, y) in enumerate(zip(a, b))), default=(0.0, ""))
    d = _close(a, b)
    return (d, where) if d else (0.0, "")


def _csv_cell(v: str):
    try:
        return float(v)
    except ValueError:
        return v


def _csv_diff(old: str, new: str) -> tuple[float, str]:
    rows_a, rows_b = list(csv.reader(old.splitlines())), list(csv.reader(new.splitlines()))
    if len(rows_a) != len(rows_b) or not rows_a or rows_a[0] != rows_b[0]:
        return math.inf, "header or row count"
    header = rows_a[0]
    worst = (0.0, "")
    for i, (ra, rb) in enumerate(zip(rows_a[1:], rows_b[1:]), 1):
        if len(ra) != len(rb):
            return math.inf, f"row {i}"
        for j, (x, y) in enumerate(zip(ra, rb)):
            d = _close(_csv_cell(x), _csv_cell(y))
            if d > worst[0]:
                worst = (d, f"column {header[j] if j < len(header) else j}, row {i}")
    return worst


def _write_data(path: str, text: str, diff) -> str:
    """Write ``text`` to ``path`` atomically unless the file there holds the same numbers (see the module
    docstring); print what was done."""
    if os.path.exists(path):
        with open(path, encoding="utf-8", newline="") as f:
            old = f.read()
        if old == text:
            print(f"kept {path} (unchanged)")
            return path
        try:
            d, where = diff(old, text)
        except ValueError:  # not readable as before: replace it
            d, where = math.inf, "unreadable previous file"
        if d == 0.0:
            print(f"kept {path} (same numbers to {KEEP_RTOL:g} relative)")
            return path
        size = "changed" if math.isinf(d) else f"max rel diff {d:.2g}"
        print(f"wrote {path} (differs from the previous file: {size} at {where})")
    else:
        print(f"wrote {path}")
    return io.save_text(path, text)


def write_json(obj, out: str, name: str) -> str:
    """Strict JSON (rmtheory.io's rule: non-finite floats are written as null), atomically; an existing file
    with the same numbers is kept (module docstring)."""
    import json

    return _write_data(os.path.join(out, name), io.dumps(obj, sort_keys=False) + "\n",
                       lambda a, b: _json_diff(json.loads(a), json.loads(b)))


def write_columns(columns: dict, out: str, name: str) -> str:
    """A CSV of columns given as {name: 1-D array} (equal lengths); floats written with repr precision ('inf'
    allowed); an existing file with the same numbers is kept (module docstring)."""
    cols = list(columns)
    n = len(next(iter(columns.values())))
    arrs = [np.asarray(columns[c]) for c in cols]
    if any(len(a) != n for a in arrs):
        raise ValueError("write_columns: columns of unequal length")

    buf = io_.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(cols)
    for i in range(n):
        w.writerow([repr(float(a[i])) if a.dtype.kind == "f" else a[i] for a in arrs])
    return _write_data(os.path.join(out, name), buf.getvalue(), _csv_diff)


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
