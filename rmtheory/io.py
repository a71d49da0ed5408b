"""Artifact I/O for every part of rmtheory (figures, the LM pipeline, ``evaluate``): one module, one rule.

* **Atomic.** Every writer writes a temporary file in the target's directory and ``os.replace``-s it into
  place, so an interrupted job never leaves a half-written artifact behind.
* **Strict JSON.** Non-finite floats (NaN, ±inf) are written as ``null``: the files load in ``jq``,
  JavaScript, Go and ``json.loads(..., parse_constant=...)`` that rejects NaN/Infinity. Writers that need
  to say *why* a value is missing put the reason in a sibling field. numpy scalars and arrays are written as
  plain numbers and lists.
* **CSV** takes ``(path, header, rows)``; non-finite floats are written as empty cells.
"""

from __future__ import annotations

import csv
import json
import math
import os
import tempfile

import numpy as np

__all__ = ["atomic", "check_writable", "to_jsonable", "dumps", "save_json", "load_json", "save_csv", "save_text",
           "save_npz", "load_npz", "save_tree", "load_tree", "save_figure", "pyplot", "differing_keys"]


def _tmp(path: str) -> str:
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-" + os.path.basename(path) + "-")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the artifact the usual permissions
    return tmp


def check_writable(path: str, *, directory: bool = False) -> str:
    """Check, before any work, that artifacts can be written: ``path`` is a directory (created if missing)
    when ``directory``, else a file path whose directory must already exist. A probe file is created and
    removed there. Returns the directory; raises ValueError naming the path and the reason."""
    d = path if directory else (os.path.dirname(os.path.abspath(path)) or ".")
    try:
        if directory:
            if os.path.exists(d) and not os.path.isdir(d):
                raise ValueError(f"{path}: exists and is not a directory")
            os.makedirs(d, exist_ok=True)
        elif not os.path.isdir(d):
            raise ValueError(f"{path}: directory {d} does not exist")
        fd, probe = tempfile.mkstemp(dir=d, prefix=".tmp-probe-")
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        raise ValueError(f"{path}: cannot write there ({e.strerror or e})") from None
    return d


def atomic(write, path: str) -> str:
    """Call ``write(tmp)`` then move ``tmp`` onto ``path`` atomically; returns ``path``."""
    tmp = _tmp(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def to_jsonable(obj):
    """Plain-Python copy of ``obj`` with numpy values converted and non-finite floats replaced by None."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        return x if math.isfinite(x) else None
    if hasattr(obj, "_asdict"):  # NamedTuple
        return to_jsonable(obj._asdict())
    if hasattr(obj, "item") and callable(obj.item):  # 0-d jax/numpy arrays
        return to_jsonable(obj.item())
    return obj


def dumps(obj, indent: int | None = 2, sort_keys: bool = True) -> str:
    """Strict JSON text of ``obj`` (non-finite → null)."""
    return json.dumps(to_jsonable(obj), indent=indent, sort_keys=sort_keys, allow_nan=False)


def save_json(path: str, obj, sort_keys: bool = True) -> str:
    text = dumps(obj, sort_keys=sort_keys) + "\n"

    def w(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
    return atomic(w, path)


def _reject_constant(c):
    raise ValueError(f"non-standard JSON constant {c}")


def load_json(path: str, strict: bool = True):
    """Load a JSON file; ``strict`` rejects NaN/Infinity. Errors name the file."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    try:
        return json.loads(text, parse_constant=_reject_constant) if strict else json.loads(text)
    except ValueError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None


def _cell(v):
    if isinstance(v, (float, np.floating)):
        return repr(float(v)) if math.isfinite(v) else ""
    if isinstance(v, np.integer):
        return int(v)
    return v


def save_csv(path: str, header, rows) -> str:
    def w(tmp):
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            wr = csv.writer(f)
            wr.writerow(header)
            wr.writerows([[_cell(v) for v in row] for row in rows])
    return atomic(w, path)


def save_text(path: str, text: str) -> str:
    def w(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
    return atomic(w, path)


def save_npz(path: str, **arrays) -> str:
    def w(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()})
    return atomic(w, path)


def load_npz(path: str) -> dict:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def save_tree(path: str, tree) -> str:
    """Serialise the array leaves of a pytree (equinox's format); load with :func:`load_tree` and a like-tree."""
    import equinox as eqx

    return atomic(lambda tmp: eqx.tree_serialise_leaves(tmp, tree), path)


def load_tree(path: str, like):
    import equinox as eqx

    return eqx.tree_deserialise_leaves(path, like)


def save_figure(fig, path: str, dpi: int = 120) -> str:
    """Save a matplotlib figure atomically; the format follows the extension (default png)."""
    fmt = os.path.splitext(path)[1].lstrip(".").lower() or "png"
    return atomic(lambda tmp: fig.savefig(tmp, dpi=dpi, format=fmt), path)


def pyplot(rc: dict | None = None):
    """``matplotlib.pyplot`` on the non-interactive Agg backend: the one plotting set-up of rmtheory (figures, the
    LM pipeline, ``evaluate --plot``, ``demo``). ``rc`` updates ``plt.rcParams`` when given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if rc:
        plt.rcParams.update(rc)
    return plt


def differing_keys(old: dict, new: dict, keys=None) -> list:
    """The sorted top-level keys (of ``keys`` when given) whose values differ between two settings dicts (a key
    missing on one side differs): what a refused resume names (the LM pipeline, its studies, ``rmtheory score``)."""
    keys = set(old) | set(new) if keys is None else set(keys)
    return sorted(k for k in keys if old.get(k) != new.get(k))
