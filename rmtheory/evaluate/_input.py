"""The rules every reader of ``rmtheory evaluate`` shares: :class:`InputError`, :class:`Table`, required
columns, the id rule and the score rule (docs/evaluate.md, "Accepted input").

* ids (prompt_id, sample_id): see :func:`normalise_id`.
* scores: float64; a missing score (empty cell, JSON ``null`` or absent key, Parquet null) is NaN; an explicit
  NaN/inf, a boolean or a non-number is an error naming the source, the row and the column.
"""

from __future__ import annotations

import contextlib
import csv
import math
from dataclasses import dataclass
from io import TextIOWrapper

import numpy as np


class InputError(ValueError):
    """Malformed input (the CLI turns it into exit status 2 with a one-line message).

    An error about one parameter of :func:`rmtheory.evaluate.evaluate` carries ``param`` (its Python name)
    and a message function of the name, so that the CLI can say ``--n-prompts`` where Python says
    ``n_prompts``."""

    def __init__(self, message, param: str | None = None):
        self.param = param
        self._message = message
        super().__init__(message(param) if callable(message) else message)

    def message_for(self, names: dict) -> str:
        """The message with the parameter named as in ``names`` (e.g. the CLI's flags)."""
        if callable(self._message) and self.param in names:
            return self._message(names[self.param])
        return str(self)


@dataclass
class Table:
    """Columns of one input table. Numeric columns are float64 with NaN marking a *missing* score (explicit
    NaN/inf in the input are rejected when reading). ``ids`` are lists of strings."""

    source: str
    ids: dict            # name -> list[str]
    values: dict         # name -> np.ndarray float64 (NaN = missing)
    n: int


def require_columns(source: str, columns, needed, what: str = "columns") -> None:
    """Raise InputError naming the first of ``needed`` that is not in ``columns`` (the table's column names,
    listed in the message as its ``what``)."""
    for c in needed:
        if c not in columns:
            raise InputError(f"{source}: missing column '{c}' ({what}: {', '.join(map(str, columns))})")


def normalise_id(v):
    """The one rule for ids (prompt_id, sample_id), in every format: the id as text, or None if invalid.

    * text is used as is, without surrounding whitespace (so CSV cells ``1`` and ``1.0`` are different ids);
    * a number from a typed format (JSON, Parquet, an in-memory table) stands for its value: integral values
      as the integer (``1``, ``1.0`` and ``"1"`` are the same id), others as Python's shortest repr
      (``0.5`` → ``"0.5"``);
    * missing/empty values, booleans, NaN/inf, lists and objects are invalid.
    """
    if isinstance(v, str):
        v = v.strip()
        return v or None
    if isinstance(v, (bool, np.bool_)) or v is None:
        return None
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if not math.isfinite(v):
            return None
        return str(int(v)) if v.is_integer() else repr(v)
    return None


def id_column(source, col, name, where):
    """The ids of column ``name`` as text (:func:`normalise_id`); ``where(k)`` names row k in errors."""
    out = []
    for k, v in enumerate(col):
        s = normalise_id(v)
        if s is None:
            raise InputError(f"{source}: {where(k)}, column '{name}': invalid or missing id {short(v)}")
        out.append(s)
    return out


def short(v, n=40):
    """``repr(v)``, cut to ``n`` characters."""
    r = repr(v)
    return r if len(r) <= n else r[:n - 1] + "…"


def row_number(k: int) -> str:
    """How errors name data row ``k`` (0-based) of a table without line numbers."""
    return f"row {k + 1}"


def numeric_error(source, where, col, cell) -> InputError:
    """The error for a score cell that is not a finite number (``where`` names its row)."""
    if cell is None or (isinstance(cell, str) and cell.strip() == ""):
        what = "missing value"
    else:
        what = f"value {short(cell)}"
    return InputError(f"{source}: {where}, column '{col}': {what} is not a finite number"
                      + (" (leave the cell empty to mark a missing score)" if what != "missing value" else ""))


_MAX_INT_AS_FLOAT = int(np.finfo(np.float64).max)


def numeric_column(source, col, name, where):
    """A column of Python/numpy scalars (None = missing) as float64 with NaN = missing; anything but a finite
    number raises InputError naming the row (``where(k)``)."""
    types = set(map(type, col))
    if not types <= {int, float, type(None), np.float64, np.float32, np.int64, np.int32}:
        for k, v in enumerate(col):
            if v is not None and (isinstance(v, (bool, np.bool_))
                                  or not isinstance(v, (int, float, np.floating, np.integer))):
                raise numeric_error(source, where(k), name, v)
    try:
        arr = np.array(col, dtype=np.float64)       # None -> NaN (missing)
    except OverflowError:                           # an integer beyond the float64 range
        k = next(k for k, v in enumerate(col) if isinstance(v, int) and abs(v) > _MAX_INT_AS_FLOAT)
        raise InputError(f"{source}: {where(k)}, column '{name}': value {short(col[k])} is outside the "
                         "float64 range (|x| < 1.8e308)") from None
    nonfinite = ~np.isfinite(arr)
    if nonfinite.any():
        is_none = np.fromiter((v is None for v in col), bool, len(col))
        bad = np.flatnonzero(nonfinite & ~is_none)
        if bad.size:
            raise numeric_error(source, where(int(bad[0])), name, col[int(bad[0])])
    return arr


def open_text(path):
    """A text file (UTF-8, a leading BOM ignored), gzip-decompressed if the name ends in ``.gz``."""
    if path.lower().endswith(".gz"):
        import gzip
        return TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


@contextlib.contextmanager
def reading(path):
    """Turn decoding and decompression failures into an InputError naming the file."""
    import gzip
    import zlib
    try:
        yield
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text (invalid byte 0x{e.object[e.start]:02x}); "
                         "save the file as UTF-8") from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise InputError(f"{path}: corrupt or truncated gzip file ({e})") from None
    except csv.Error as e:   # e.g. a NUL byte or a field over the csv module's size limit
        raise InputError(f"{path}: malformed CSV ({e})") from None
