"""``rmtheory evaluate``: a reward-model report card for any policy.

Reads rewards exported from any framework — a CSV, JSONL or Parquet table with columns ``prompt_id``,
``sample_id`` and one column per reward model (scores of K samples per prompt from *your* policy),
optionally a ground-truth column — and an optional table of off-policy chosen/rejected pairs (columns
``prompt_id``, ``M.chosen``, ``M.rejected`` per model M, optionally ``<ground-truth>.chosen/.rejected``).

For every reward source it reports, with bootstrap confidence intervals over prompts: the reward variance
under the policy after the paper's normalisation (Definition 2, Section 3.2), on-policy accuracy over all
sample pairs (Definition 1, ties included), off-policy accuracy, On&Off, Var&Acc, the ranking by each
measure, and the Proposition 3 lower bound on t_γ implied by the variance. Every metric comes from the
shared implementation :func:`rmtheory.rm_report` (the LM pipeline's evaluation stage uses the same one).

Python API::

    from rmtheory.evaluate import evaluate
    report = evaluate("rewards.csv", off_policy="pairs.csv", bootstrap=1000, seed=0)
    print(report.format_table()); report.to_dict(); report.plot("rm_card.png")

``rewards`` may also be an in-memory table: a mapping column name → sequence (a dict, or e.g. a pandas
DataFrame). Missing scores are empty CSV cells, JSON ``null``/absent keys or Parquet nulls; NaN/inf are
errors. Malformed input raises :class:`InputError` (the CLI exits with status 2 and a one-line message).
The accepted formats, the number syntax and the id rule (:func:`_normalise_id`) are listed under "Reading
tables" below and in the README ("Accepted input").
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import math
import os
import re
import sys
import time
import warnings as _pywarnings
from dataclasses import dataclass, field

import numpy as np

from . import io as _io
from ._bounds import prop3_time_lower_bound
from ._rm_eval import SCHEMES, combined_measures, pooled_normalisation_stats, rm_report

MEASURES = ("var", "acc_on", "acc_off", "on_off", "var_acc")
MEASURE_LABELS = {"var": "Var", "acc_on": "acc_on", "acc_off": "acc_off", "on_off": "On&Off", "var_acc": "Var&Acc"}
DEFAULT_GT = "ground_truth"
ID_COLUMNS = ("prompt_id", "sample_id")
PROP3_NOTE = ("t_gamma_lower_bound: Proposition 3 lower bound 2|S|(1-exp(-gamma/2))/sqrt(Var) on the time to a "
              "gamma-increase, in units of the paper's gradient flow; it assumes a tabular policy and rewards in "
              "the normalised scale (the theorem's constants assume rewards in [-1, 1]); |S| = n_prompts.")


class InputError(ValueError):
    """Malformed input (the CLI turns it into exit status 2 with a one-line message)."""


# --------------------------------------------------------------------------------------------------------
# Reading tables
#
# Rules (the same for every reader path; README "Accepted input"):
# * CSV/TSV: UTF-8 (a leading BOM is ignored), optionally gzip-compressed (.gz); a header line of unique,
#   non-empty column names; every data row has exactly as many fields as the header (quote a field that
#   contains the delimiter); blank lines are skipped. A score is a decimal number (_NUMBER: optional sign,
#   digits with an optional decimal point, optional exponent; surrounding spaces allowed): no NaN/inf, no
#   digit separators ("1_000", "1,000"), no hex. An empty cell is a missing score.
# * JSONL: one JSON object per line; the columns are the union of the keys over the whole file; an absent
#   key or null is a missing score.
# * ids (prompt_id, sample_id): see _normalise_id.
# --------------------------------------------------------------------------------------------------------

_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


@dataclass
class _Table:
    """Columns of one input table. Numeric columns are float64 with NaN marking a *missing* score (explicit
    NaN/inf in the input are rejected when reading). ``ids`` are lists of strings."""

    source: str
    ids: dict            # name -> list[str]
    values: dict         # name -> np.ndarray float64 (NaN = missing)
    n: int


def _normalise_id(v):
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


def _ids(source, col, name, where):
    out = []
    for k, v in enumerate(col):
        s = _normalise_id(v)
        if s is None:
            raise InputError(f"{source}: {where(k)}, column '{name}': invalid or missing id {_short(v)}")
        out.append(s)
    return out


def _short(v, n=40):
    r = repr(v)
    return r if len(r) <= n else r[:n - 1] + "…"


def _detect_format(path: str, fmt: str | None) -> str:
    if fmt and fmt != "auto":
        return fmt
    low = path.lower()
    for suffix, f in ((".csv", "csv"), (".tsv", "tsv"), (".jsonl", "jsonl"), (".ndjson", "jsonl"),
                      (".parquet", "parquet"), (".pq", "parquet")):
        if low.endswith(suffix) or low.endswith(suffix + ".gz"):
            return f
    raise InputError(f"{path}: cannot tell the format from the file name; use --format csv|tsv|jsonl|parquet")


def _open_text(path):
    if path.lower().endswith(".gz"):
        import gzip
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


@contextlib.contextmanager
def _reading(path):
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


def _numeric_error(source, where, col, cell):
    if cell is None or (isinstance(cell, str) and cell.strip() == ""):
        what = "missing value"
    else:
        what = f"value {_short(cell)}"
    return InputError(f"{source}: {where}, column '{col}': {what} is not a finite number"
                      + (" (leave the cell empty to mark a missing score)" if what != "missing value" else ""))


def _parse_float_cell(cell: str):
    """float or None (missing); raises ValueError on anything but a finite decimal number (_NUMBER)."""
    s = cell.strip()
    if s == "":
        return None
    if not _NUMBER.fullmatch(s):
        raise ValueError
    v = float(s)
    if not math.isfinite(v):
        raise ValueError
    return v


def _read_csv_header(path, delimiter):
    with _reading(path), _open_text(path) as f:
        header = next(csv.reader(f, delimiter=delimiter), None)
    if header is None or not any(h.strip() for h in header):
        raise InputError(f"{path}: empty file (no header line)")
    header = [h.strip() for h in header]
    other, other_fmt = ("\t", "tsv") if delimiter == "," else (",", "csv")
    if len(header) == 1 and other in header[0]:
        raise InputError(f"{path}: the header has no '{_DELIM_NAMES[delimiter]}' but contains "
                         f"'{_DELIM_NAMES[other]}': is it a {other_fmt.upper()} file? Use --format {other_fmt}")
    for i, h in enumerate(header):
        if h == "":
            hint = " (a trailing delimiter?)" if i == len(header) - 1 else ""
            raise InputError(f"{path}: column {i + 1} of the header has an empty name{hint}")
    return header


_DELIM_NAMES = {",": "comma", "\t": "tab"}


def _read_csv(path, header, numeric_cols, id_cols, delimiter=","):
    """Fast paths (pyarrow if installed, else numpy's C parser) that return None on anything unusual; then
    the exact csv-module path, which reports the offending line. The fast paths check the field count of
    every row like the exact path does."""
    _check_header(path, header, id_cols, numeric_cols)
    table = _read_csv_arrow(path, header, id_cols, numeric_cols, delimiter)
    if table is not None:
        return table
    if not path.lower().endswith(".gz"):
        table = _read_csv_fast(path, header, id_cols, numeric_cols, delimiter)
        if table is not None:
            return table
    return _read_csv_slow(path, header, id_cols, numeric_cols, delimiter)


def _read_csv_arrow(path, header, id_cols, numeric_cols, delimiter):
    """Fastest path when the optional pyarrow is installed (multi-threaded C++ CSV reader). Every column is
    parsed (so ragged rows and invalid UTF-8 anywhere are noticed); returns None on anything unusual so that
    the exact path reports it."""
    try:
        import pyarrow as pa
        import pyarrow.csv as pacsv
    except ImportError:
        return None
    types = {h: pa.string() for h in header}
    types.update({c: pa.float64() for c in numeric_cols})
    try:
        tbl = pacsv.read_csv(path, read_options=pacsv.ReadOptions(column_names=header, skip_rows=1),
                             parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
                             convert_options=pacsv.ConvertOptions(
                                 column_types=types, null_values=[""], strings_can_be_null=True,
                                 quoted_strings_can_be_null=True, check_utf8=True))
    except Exception:  # noqa: BLE001 - any parse problem: let the exact path explain it
        return None
    if tbl.num_rows == 0:
        return None
    ids = {}
    for c in id_cols:
        col = tbl.column(c)
        if col.null_count:
            return None
        ids[c] = [v.strip() for v in col.to_pylist()]
        if not all(ids[c]):
            return None
    values = {}
    for c in numeric_cols:
        col = tbl.column(c)
        nulls = col.is_null().to_numpy(zero_copy_only=False)
        arr = col.fill_null(float("nan")).to_numpy(zero_copy_only=False).astype(np.float64)
        if not np.all(np.isfinite(arr) | nulls):
            return None
        values[c] = arr
    return _Table(path, ids, values, tbl.num_rows)


def _read_csv_fast(path, header, id_cols, numeric_cols, delimiter):
    """numpy's C parser over *every* column (unused ones as 1-character strings), so that a row with a
    wrong number of fields fails here as on the exact path."""
    width = 64
    kind = {c: ("i", j) for j, c in enumerate(id_cols)}
    kind.update({c: ("v", j) for j, c in enumerate(numeric_cols)})
    for _ in range(3):
        dtype = []
        for i, h in enumerate(header):
            k = kind.get(h)
            dtype.append((f"{k[0]}{k[1]}", f"U{width}" if k[0] == "i" else "f8") if k else (f"x{i}", "U1"))
        try:
            with _pywarnings.catch_warnings():
                _pywarnings.simplefilter("ignore")
                arr = np.loadtxt(path, delimiter=delimiter, skiprows=1, dtype=dtype, comments=None,
                                 quotechar='"', ndmin=1, encoding="utf-8-sig")
        except (ValueError, IndexError, UnicodeDecodeError):
            return None
        lens = [np.char.str_len(arr[f"i{j}"]) for j in range(len(id_cols))]
        if any(ln.size and ln.max() >= width for ln in lens):
            width *= 8      # an id may have been truncated: retry wider
            continue
        if arr.size == 0:
            raise InputError(f"{path}: no data rows")
        ids = {c: np.char.strip(arr[f"i{j}"]).tolist() for j, c in enumerate(id_cols)}
        if any(not all(v) for v in ids.values()):
            return None     # empty id -> exact error from the slow path
        values = {c: np.ascontiguousarray(arr[f"v{j}"]) for j, c in enumerate(numeric_cols)}
        if any(not np.all(np.isfinite(v)) for v in values.values()):
            return None     # NaN/inf -> exact error from the slow path
        return _Table(path, ids, values, int(arr.size))
    return None


def _read_csv_slow(path, header, id_cols, numeric_cols, delimiter):
    col_ix = {h: i for i, h in enumerate(header)}
    ids = {c: [] for c in id_cols}
    vals = {c: [] for c in numeric_cols}
    nfields = len(header)
    n = 0
    with _reading(path), _open_text(path) as f:
        reader = csv.reader(f, delimiter=delimiter)
        next(reader)
        for row in reader:
            if not row or (len(row) == 1 and row[0].strip() == ""):
                continue   # blank line
            n += 1
            where = f"line {reader.line_num} (data row {n})"
            if len(row) != nfields:
                raise InputError(f"{path}: {where}: expected {nfields} fields (as in the header), got {len(row)}"
                                 " (quote a field that contains the delimiter)")
            for c in id_cols:
                v = row[col_ix[c]].strip()
                if v == "":
                    raise InputError(f"{path}: {where}, column '{c}': empty id")
                ids[c].append(v)
            for c in numeric_cols:
                cell = row[col_ix[c]]
                try:
                    vals[c].append(_parse_float_cell(cell))
                except ValueError:
                    raise _numeric_error(path, where, c, cell) from None
    if n == 0:
        raise InputError(f"{path}: no data rows")
    values = {c: np.array([np.nan if x is None else x for x in v], np.float64) for c, v in vals.items()}
    return _Table(path, ids, values, n)


def _check_header(source, header, id_cols, numeric_cols):
    seen = set()
    for h in header:
        if h in seen:
            raise InputError(f"{source}: duplicated column '{h}' in the header")
        seen.add(h)
    for c in list(id_cols) + list(numeric_cols):
        if c not in seen:
            raise InputError(f"{source}: missing column '{c}' (columns: {', '.join(map(str, header))})")


def _read_jsonl_records(path):
    """All records of a JSONL file and their line numbers (1-based)."""
    with _reading(path), _open_text(path) as f:
        lines = f.read().splitlines()
    idx = [i for i, ln in enumerate(lines) if ln.strip()]
    if not idx:
        raise InputError(f"{path}: empty file (no JSON records)")
    try:
        records = json.loads("[" + ",".join(lines[i] for i in idx) + "]")
    except ValueError:   # JSONDecodeError, or e.g. an integer with more digits than Python converts
        records = None
    if records is None:
        for i in idx:
            try:
                json.loads(lines[i])
            except json.JSONDecodeError as e:
                raise InputError(f"{path}: line {i + 1}: invalid JSON ({e.msg})") from None
            except ValueError as e:
                raise InputError(f"{path}: line {i + 1}: invalid JSON ({e})") from None
        raise InputError(f"{path}: invalid JSON lines (a record split over several lines?)")
    for k, r in enumerate(records):
        if not isinstance(r, dict):
            raise InputError(f"{path}: line {idx[k] + 1}: each line must be a JSON object")
    return records, [i + 1 for i in idx]


def _union_of_keys(records):
    keys = {}
    for r in records:
        keys.update(dict.fromkeys(r))
    return list(keys)


def _table_from_records(source, records, numeric_cols, id_cols, where):
    ids = {c: _ids(source, [r.get(c) for r in records], c, where) for c in id_cols}
    values = {c: _numeric_column(source, [r.get(c) for r in records], c, where) for c in numeric_cols}
    return _Table(source, ids, values, len(records))


def _numeric_column(source, col, name, where):
    types = set(map(type, col))
    if not types <= {int, float, type(None), np.float64, np.float32, np.int64, np.int32}:
        for k, v in enumerate(col):
            if v is not None and (isinstance(v, (bool, np.bool_))
                                  or not isinstance(v, (int, float, np.floating, np.integer))):
                raise _numeric_error(source, where(k), name, v)
    try:
        arr = np.array(col, dtype=np.float64)       # None -> NaN (missing)
    except OverflowError:                           # an integer beyond the float64 range
        k = next(k for k, v in enumerate(col) if isinstance(v, int) and abs(v) > _MAX_INT_AS_FLOAT)
        raise InputError(f"{source}: {where(k)}, column '{name}': value {_short(col[k])} is outside the "
                         "float64 range (|x| < 1.8e308)") from None
    nonfinite = ~np.isfinite(arr)
    if nonfinite.any():
        is_none = np.fromiter((v is None for v in col), bool, len(col))
        bad = np.flatnonzero(nonfinite & ~is_none)
        if bad.size:
            raise _numeric_error(source, where(int(bad[0])), name, col[int(bad[0])])
    return arr


_MAX_INT_AS_FLOAT = int(np.finfo(np.float64).max)


def _read_parquet(path, numeric_cols, id_cols):
    pq, pa = _pyarrow_parquet(path)
    try:
        table = pq.read_table(path, columns=list(id_cols) + list(numeric_cols))
    except Exception as e:  # noqa: BLE001 - pyarrow raises many types (missing column, bad file)
        raise InputError(f"{path}: cannot read Parquet: {str(e).splitlines()[0]}") from None
    n = table.num_rows
    if n == 0:
        raise InputError(f"{path}: no data rows")
    where = lambda k: f"row {k + 1}"  # noqa: E731
    ids = {c: _ids(path, table.column(c).to_pylist(), c, where) for c in id_cols}
    values = {}
    for c in numeric_cols:
        col = table.column(c)
        t = col.type
        if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)):
            raise InputError(f"{path}: column '{c}' has non-numeric type {t}")
        nulls = col.is_null().to_numpy(zero_copy_only=False)
        arr = col.cast(pa.float64()).fill_null(float("nan")).to_numpy(zero_copy_only=False).astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(arr) & ~nulls)
        if bad.size:
            raise _numeric_error(path, where(int(bad[0])), c, float(arr[bad[0]]))
        values[c] = arr
    return _Table(path, ids, values, n)


def _pyarrow_parquet(path):
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(f"{path}: reading Parquet needs pyarrow, which is not installed: pip install pyarrow") from None
    return pq, pa


class _Source:
    """One input table (a file or an in-memory mapping): its column names, then the columns needed.

    A JSONL file is parsed once (its columns are the union of the keys of every record)."""

    def __init__(self, source, fmt=None):
        self._records = self._mapping = None
        if not isinstance(source, (str, os.PathLike)):
            try:
                self._mapping = {str(k): source[k] for k in source.keys()}
            except AttributeError:
                raise InputError("a table must be a path or a mapping column name -> values") from None
            self.name, self.path, self.fmt = "<table>", None, "mapping"
            self.columns = list(self._mapping)
            return
        path = self.name = self.path = os.fspath(source)
        if not os.path.exists(path):
            raise InputError(f"{path}: no such file")
        if os.path.isdir(path):
            raise InputError(f"{path}: is a directory, not a table file")
        if not os.path.isfile(path):
            raise InputError(f"{path}: is a pipe or device; reading from a pipe is not supported: "
                             "save the data to a file first")
        self.fmt = _detect_format(path, fmt)
        if self.fmt in ("csv", "tsv"):
            self.delimiter = "\t" if self.fmt == "tsv" else ","
            self.columns = _read_csv_header(path, self.delimiter)
        elif self.fmt == "jsonl":
            self._records, self._lines = _read_jsonl_records(path)
            self.columns = _union_of_keys(self._records)
        elif self.fmt == "parquet":
            pq, _ = _pyarrow_parquet(path)
            try:
                self.columns = list(pq.read_schema(path).names)
            except Exception as e:  # noqa: BLE001
                raise InputError(f"{path}: cannot read Parquet: {str(e).splitlines()[0]}") from None
        else:
            raise InputError(f"unknown format {fmt!r}; use csv, tsv, jsonl or parquet")

    def read(self, numeric_cols, id_cols) -> _Table:
        """The named columns (ids as normalised text, scores as float64 with NaN = missing)."""
        if self._mapping is not None:
            return _table_from_columns(self._mapping, numeric_cols, id_cols)
        if self.fmt in ("csv", "tsv"):
            return _read_csv(self.path, self.columns, numeric_cols, id_cols, self.delimiter)
        if self.fmt == "jsonl":
            for c in list(id_cols) + list(numeric_cols):
                if c not in self.columns:
                    raise InputError(f"{self.path}: missing column '{c}' (keys: {', '.join(map(str, self.columns))})")
            lines = self._lines
            return _table_from_records(self.path, self._records, numeric_cols, id_cols,
                                       lambda k: f"line {lines[k]}")
        return _read_parquet(self.path, numeric_cols, id_cols)


def _table_from_columns(cols, numeric_cols, id_cols):
    lengths = {len(v) for v in cols.values()}
    if len(lengths) > 1:
        raise InputError(f"<table>: columns have different lengths {sorted(lengths)}")
    n = lengths.pop() if lengths else 0
    if n == 0:
        raise InputError("<table>: no data rows")
    for c in list(id_cols) + list(numeric_cols):
        if c not in cols:
            raise InputError(f"<table>: missing column '{c}' (columns: {', '.join(cols)})")
    where = lambda k: f"row {k + 1}"  # noqa: E731
    ids = {c: _ids("<table>", list(cols[c]), c, where) for c in id_cols}
    values = {}
    for c in numeric_cols:
        col = cols[c]
        if isinstance(col, np.ndarray) and col.dtype.kind in "fiu":
            arr = col.astype(np.float64)
            bad = np.flatnonzero(~np.isfinite(arr))
            if bad.size:
                raise _numeric_error("<table>", where(int(bad[0])), c, float(arr[bad[0]]))
            values[c] = arr
        else:
            values[c] = _numeric_column("<table>", list(col), c, where)
    return _Table("<table>", ids, values, n)


# --------------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------------

@dataclass
class ModelResult:
    name: str
    is_ground_truth: bool
    n_prompts: int          # prompts with >= 2 usable samples
    n_samples: int          # usable rows
    n_off_pairs: int
    mean: float             # normalisation shift μ
    std: float              # normalisation scale σ
    var: float
    acc_on: float
    acc_off: float
    on_off: float
    var_acc: float
    t_gamma_lower_bound: float
    ci: dict = field(default_factory=dict)            # measure -> (lo, hi)
    n_zero_variance_prompts: int = 0

    def as_dict(self):
        d = {k: getattr(self, k) for k in ("name", "is_ground_truth", "n_prompts", "n_samples", "n_off_pairs",
                                            "mean", "std", *MEASURES, "t_gamma_lower_bound",
                                            "n_zero_variance_prompts")}
        d["ci"] = {k: [lo, hi] for k, (lo, hi) in self.ci.items()}
        return _io.to_jsonable(d)   # strict JSON: non-finite -> None (the reason is in the warnings)


@dataclass
class Report:
    models: list
    rankings: dict          # measure -> [model names, best first] (models with NaN left out)
    warnings: list
    meta: dict

    def __getitem__(self, name) -> ModelResult:
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(name)

    def to_dict(self):
        return {"models": [m.as_dict() for m in self.models], "rankings": self.rankings,
                "warnings": list(self.warnings), "meta": _io.to_jsonable(dict(self.meta)), "note": PROP3_NOTE}

    def to_json(self, indent=None, sort_keys: bool = False) -> str:
        """Strict JSON (non-finite numbers are null; see :mod:`rmtheory.io`)."""
        return _io.dumps(self.to_dict(), indent=indent, sort_keys=sort_keys)

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        cols = ["model", "is_ground_truth", "n_prompts", "n_samples", "n_off_pairs", "norm_mean", "norm_std"]
        for m in MEASURES:
            cols += [m, f"{m}_lo", f"{m}_hi", f"{m}_rank"]
        cols += ["t_gamma_lower_bound"]
        w.writerow(cols)
        ranks = {k: {name: i + 1 for i, name in enumerate(v)} for k, v in self.rankings.items()}
        for r in self.models:
            row = [r.name, int(r.is_ground_truth), r.n_prompts, r.n_samples, r.n_off_pairs, _f(r.mean), _f(r.std)]
            for m in MEASURES:
                lo, hi = r.ci.get(m, (math.nan, math.nan))
                row += [_f(getattr(r, m)), _f(lo), _f(hi), ranks[m].get(r.name, "")]
            row += [_f(r.t_gamma_lower_bound)]
            w.writerow(row)
        return buf.getvalue()

    def format_table(self) -> str:
        meta = self.meta
        lines = [f"Reward-model report card: {meta['source']} ({meta['n_rows']} rows, {meta['n_prompts']} prompts, "
                 f"K={meta['k_min']}" + (f"..{meta['k_max']}" if meta['k_max'] != meta['k_min'] else "")
                 + f"; normalisation={meta['normalisation']})"]
        if meta["bootstrap"] > 0:
            lines.append(f"[lo, hi]: {100 * meta['ci']:g}% percentile bootstrap over prompts "
                         f"({meta['bootstrap']} resamples, seed {meta['seed']})")
        head = ["model", "prompts"] + [MEASURE_LABELS[m] for m in MEASURES] + [f"t_γ ≥ (γ={meta['gamma']:g})"]
        rows = []
        for r in self.models:
            cells = [r.name + (" (GT)" if r.is_ground_truth else ""), str(r.n_prompts)]
            for m in MEASURES:
                v = getattr(r, m)
                cell = "—" if math.isnan(v) else f"{v:.4f}"
                if m in r.ci and not math.isnan(v):
                    lo, hi = r.ci[m]
                    cell += f" [{lo:.3f}, {hi:.3f}]" if not (math.isnan(lo) or math.isnan(hi)) else ""
                cells.append(cell)
            cells.append(f"{r.t_gamma_lower_bound:.4g}")
            rows.append(cells)
        widths = [max(len(h), *(len(c[i]) for c in rows)) for i, h in enumerate(head)]
        fmt = lambda cs: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cs, widths)))  # noqa: E731
        lines += ["", fmt(head), fmt(["-" * w for w in widths])] + [fmt(c) for c in rows]
        lines += ["", "Ranking (best first):"]
        for m in MEASURES:
            if self.rankings.get(m):
                lines.append(f"  {MEASURE_LABELS[m]:8s} " + " > ".join(self.rankings[m]))
        lines += ["", "Note: " + PROP3_NOTE.replace("t_gamma_lower_bound", "t_γ ≥")
                  + f" Here |S| = {meta['n_prompts_bound'] or 'the number of evaluated prompts of each model'}."]
        return "\n".join(lines)

    def plot(self, path, accuracy: str = "acc_on") -> str:
        """Scatter of reward variance against accuracy, one labelled point per reward model. A path without
        an extension gets ``.png``; returns the path written."""
        path = plot_path(path)
        import matplotlib
        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
        pts = [r for r in self.models if not (math.isnan(r.var) or math.isnan(getattr(r, accuracy)))]
        if not pts and accuracy == "acc_on":
            accuracy = "acc_off"
            pts = [r for r in self.models if not (math.isnan(r.var) or math.isnan(r.acc_off))]
        fig, ax = plt.subplots(figsize=(6, 4.5), constrained_layout=True)
        for r in pts:
            x, y = r.var, getattr(r, accuracy)
            xerr = yerr = None
            if "var" in r.ci and not any(map(math.isnan, r.ci["var"])):
                xerr = [[max(x - r.ci["var"][0], 0)], [max(r.ci["var"][1] - x, 0)]]
            if accuracy in r.ci and not any(map(math.isnan, r.ci[accuracy])):
                yerr = [[max(y - r.ci[accuracy][0], 0)], [max(r.ci[accuracy][1] - y, 0)]]
            ax.errorbar([x], [y], xerr=xerr, yerr=yerr, fmt="*" if r.is_ground_truth else "o", capsize=3)
            ax.annotate(r.name, (x, y), textcoords="offset points", xytext=(5, 5), fontsize=9)
        label = {"acc_on": "on-policy accuracy", "acc_off": "off-policy accuracy", "on_off": "On&Off accuracy"}
        ax.set_xlabel(f"reward variance under the policy (normalisation: {self.meta['normalisation']})")
        ax.set_ylabel(label.get(accuracy, accuracy))
        ax.set_title("Reward models: variance vs accuracy")
        ax.grid(alpha=0.3)
        try:
            _io.save_figure(fig, path, dpi=150)
        finally:
            plt.close(fig)
        return path


PLOT_FORMATS = ("png", "pdf", "svg")


def plot_path(path) -> str:
    """The path a plot is written to (``.png`` added when there is no extension), checked before any work:
    a known extension and an existing, writable directory. Raises InputError."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    if not ext:
        path, ext = path + ".png", "png"
    if ext not in PLOT_FORMATS:
        raise InputError(f"--plot {path}: unknown extension '.{ext}' (use {', '.join('.' + f for f in PLOT_FORMATS)})")
    try:
        _io.check_writable(path)
    except ValueError as e:
        raise InputError(f"--plot {e}") from None
    return path


def _f(v):
    return "" if isinstance(v, float) and math.isnan(v) else repr(float(v))


# --------------------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------------------

def _factorise(values):
    """Dense integer codes in order of first appearance, and the distinct values (C-speed: each value's
    code is first the row of its first occurrence, then densified)."""
    d = {}
    first = np.fromiter(map(d.setdefault, values, range(len(values))), np.int64, len(values))
    uniq_rows, codes = np.unique(first, return_inverse=True)
    return codes.reshape(-1).astype(np.int64), [values[i] for i in uniq_rows]


def _eg(names, k=3):
    names = list(names)
    s = ", ".join(repr(x) for x in names[:k])
    return s + (", …" if len(names) > k else "")


class _Grouping:
    """Rows of one model grouped into [P_K, K] index matrices, one per distinct sample count K ≥ 2."""

    def __init__(self, rows, pcode, n_prompts):
        codes = pcode[rows]
        order = np.argsort(codes, kind="stable")
        self.rows = rows[order]
        self.counts = np.bincount(codes, minlength=n_prompts)
        starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]])
        self.groups = []   # (prompt codes [P_K], row index matrix [P_K, K])
        for k in np.unique(self.counts[self.counts >= 2]):
            prompts = np.flatnonzero(self.counts == k)
            idx = self.rows[starts[prompts][:, None] + np.arange(k)[None, :]]
            self.groups.append((prompts, idx))
        self.used = np.flatnonzero(self.counts >= 2)


MAX_BOOTSTRAP = 100_000   # resamples; the statistics of every resample are kept for the percentiles
MAX_BOOTSTRAP_DRAWS = 10**10   # resamples × prompts (the cost of the bootstrap), about 2 minutes on one core


def _is_int(x):
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _is_real(x):
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


def _check_options(normalisation, bootstrap, seed, ci, gamma, n_prompts):
    if normalisation not in SCHEMES:
        raise InputError(f"--normalisation must be one of {', '.join(SCHEMES)}; got {normalisation!r}")
    if not _is_int(bootstrap) or not 0 <= bootstrap <= MAX_BOOTSTRAP:
        raise InputError(f"--bootstrap must be an integer in [0, {MAX_BOOTSTRAP}] (resamples); got {bootstrap!r}")
    if not _is_int(seed) or seed < 0:
        raise InputError(f"--seed must be an integer >= 0; got {seed!r}")
    if not _is_real(ci) or not 0 < ci < 1:
        raise InputError(f"--ci must lie in (0, 1); got {ci!r}")
    if not _is_real(gamma) or not (math.isfinite(gamma) and gamma > 0):
        raise InputError(f"--gamma must be a finite number > 0; got {gamma!r}")
    if n_prompts is not None and (not _is_int(n_prompts) or n_prompts <= 0):
        raise InputError(f"--n-prompts must be an integer > 0; got {n_prompts!r}")


def evaluate(rewards, *, off_policy=None, ground_truth: str | None = "auto", models=None,
             include_ground_truth: bool = True, normalisation: str = "global", bootstrap: int = 1000,
             seed: int = 0, ci: float = 0.95, gamma: float = 1.0, n_prompts: int | None = None,
             fmt: str | None = None, off_policy_fmt: str | None = None) -> Report:
    """Reward-model report card (see the module docstring).

    Args:
      rewards: path (CSV/TSV/JSONL/Parquet, optionally .gz for text) or mapping column -> values.
      off_policy: optional path or mapping of off-policy chosen/rejected pairs.
      ground_truth: name of the ground-truth column; ``"auto"`` uses ``ground_truth`` if present; ``None``
        means there is none (no on-policy accuracy).
      models: reward-model columns to evaluate (default: every other column).
      include_ground_truth: also report the ground-truth column as a reward source.
      normalisation: ``global`` (the paper's default) or ``prompt_variance`` (Table 9).
      bootstrap, seed, ci: percentile bootstrap over prompts (0 disables).
      gamma, n_prompts: Proposition 3 bound; |S| defaults to each model's number of evaluated prompts.
    """
    _check_options(normalisation, bootstrap, seed, ci, gamma, n_prompts)
    warnings: list[str] = []
    timings = {}
    t_start = time.perf_counter()

    # ---- which columns --------------------------------------------------------------------------------
    source = _Source(rewards, fmt)
    columns, src = source.columns, source.name
    for c in ID_COLUMNS:
        if c not in columns:
            raise InputError(f"{src}: missing column '{c}' (columns: {', '.join(columns)})")
    dupcols = sorted({c for c in columns if columns.count(c) > 1})
    if dupcols:
        raise InputError(f"{src}: duplicated column(s) {', '.join(dupcols)} in the header")
    others = [c for c in columns if c not in ID_COLUMNS]
    if ground_truth == "auto":
        gt = DEFAULT_GT if DEFAULT_GT in others else None
    elif ground_truth is None or ground_truth == "":
        gt = None
    else:
        if ground_truth not in others:
            raise InputError(f"{src}: unknown ground-truth column '{ground_truth}' (score columns: {', '.join(others)})")
        gt = ground_truth
    if models is None:
        model_names = [c for c in others if c != gt]
    else:
        model_names = list(dict.fromkeys(models))
        unknown = [m for m in model_names if m not in others]
        if unknown:
            raise InputError(f"{src}: unknown model name(s) {', '.join(map(repr, unknown))} "
                             f"(score columns: {', '.join(others)})")
        model_names = [m for m in model_names if m != gt]
        ignored = [c for c in others if c not in model_names and c != gt]
        if ignored:
            warnings.append(f"columns not evaluated (not in --models): {', '.join(ignored)}")
    sources = model_names + ([gt] if gt is not None and include_ground_truth else [])
    if not sources:
        raise InputError(f"{src}: no reward-model columns to evaluate (columns: {', '.join(columns)})")
    if gt is None:
        warnings.append("no ground-truth column: on-policy accuracy, On&Off and Var&Acc are not computed "
                        f"(name one with --ground-truth; default '{DEFAULT_GT}')")
    numeric = model_names + ([gt] if gt is not None else [])
    table = source.read(numeric, ID_COLUMNS)
    timings["read"] = time.perf_counter() - t_start

    # ---- rows, prompts, duplicates ---------------------------------------------------------------------
    pcode, prompt_names = _factorise(table.ids["prompt_id"])
    scode, _ = _factorise(table.ids["sample_id"])
    n_p = len(prompt_names)
    key = pcode * (int(scode.max()) + 1) + scode
    order = np.argsort(key, kind="stable")
    ks = key[order]
    dup_sorted = np.concatenate([[False], ks[1:] == ks[:-1]])
    keep = np.ones(table.n, bool)
    if dup_sorted.any():
        dup_rows = np.sort(order[dup_sorted])
        keep[dup_rows] = False
        first_of = order[np.searchsorted(ks, key[dup_rows])]  # first occurrence of each duplicate's key
        differ = np.zeros(dup_rows.size, bool)
        for c in numeric:
            a, b = table.values[c][dup_rows], table.values[c][first_of]
            differ |= ~((a == b) | (np.isnan(a) & np.isnan(b)))
        r0 = int(dup_rows[0])
        warnings.append(
            f"{dup_rows.size} duplicated (prompt_id, sample_id) row(s), e.g. row {r0 + 1} "
            f"(prompt {table.ids['prompt_id'][r0]!r}, sample {table.ids['sample_id'][r0]!r}) repeats row "
            f"{int(first_of[0]) + 1}; kept the first occurrence, skipped {dup_rows.size} row(s)"
            + (f"; {int(differ.sum())} of them have different scores" if differ.any() else ""))
    counts_all = np.bincount(pcode[keep], minlength=n_p)
    few = np.flatnonzero(counts_all < 2)
    if few.size:
        warnings.append(f"{few.size} prompt(s) have fewer than 2 samples ({_eg(prompt_names[i] for i in few)}); "
                        "skipped (no variance or pairs without 2 samples)")
    k_used = counts_all[counts_all >= 2]
    if k_used.size == 0:
        raise InputError(f"{table.source}: no prompt has 2 or more samples; nothing to evaluate")

    gt_vals = table.values[gt] if gt is not None else None
    gt_present = ~np.isnan(gt_vals) if gt is not None else np.ones(table.n, bool)
    if gt is not None and not gt_present[keep].all():
        miss = np.flatnonzero(~gt_present & keep)
        warnings.append(f"ground truth '{gt}' missing on {miss.size} row(s) (first: row {int(miss[0]) + 1}); "
                        "those rows are skipped for every model")

    # ---- off-policy pairs ------------------------------------------------------------------------------
    off = None
    extra_prompts: list = []
    if off_policy is not None:
        off, extra_prompts = _load_off_policy(off_policy, sources, gt, off_policy_fmt, warnings,
                                               {p: i for i, p in enumerate(prompt_names)})
    n_units = n_p + len(extra_prompts)
    if bootstrap * n_units > MAX_BOOTSTRAP_DRAWS:   # refuse before the work
        raise InputError(f"--bootstrap {bootstrap} over {n_units} prompts is {bootstrap * n_units:.3g} draws, above "
                         f"the limit of {MAX_BOOTSTRAP_DRAWS:.0e} (minutes of work); use --bootstrap "
                         f"{MAX_BOOTSTRAP_DRAWS // n_units} or fewer")
    timings["prepare"] = time.perf_counter() - t_start - timings["read"]
    t0 = time.perf_counter()

    # ---- per model -------------------------------------------------------------------------------------
    cache: list = []
    results, unit_cols = [], []
    for name in sources:
        is_gt = name == gt
        vals = table.values[name]
        present = ~np.isnan(vals)
        valid = keep & present & gt_present
        if not present[keep].all():
            miss = np.flatnonzero(keep & ~present)
            warnings.append(f"model '{name}': scores missing on {miss.size} row(s) (first: row {int(miss[0]) + 1}); "
                            "those rows are skipped for this model")
        grouping = next((g for m, g in cache if np.array_equal(m, valid)), None)
        if grouping is None:
            grouping = _Grouping(np.flatnonzero(valid), pcode, n_p)
            cache.append((valid, grouping))
        lost = np.flatnonzero((counts_all >= 2) & (grouping.counts < 2))
        if lost.size:
            warnings.append(f"model '{name}': {lost.size} prompt(s) missing for this model "
                            f"({_eg(prompt_names[i] for i in lost)}), so models are compared on different prompt sets")
        res, cols = _evaluate_model(name, is_gt, vals, gt_vals, grouping, off, normalisation, gamma, n_prompts,
                                    n_units, warnings)
        results.append(res)
        unit_cols.append(cols)

    timings["metrics"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    if bootstrap > 0 and n_units >= 2:
        _bootstrap(results, unit_cols, n_units, bootstrap, seed, ci)
    timings["bootstrap"] = time.perf_counter() - t0

    rankings = {}
    for m in MEASURES:
        vals = [(getattr(r, m), r.name) for r in results if not math.isnan(getattr(r, m))]
        rankings[m] = [name for _, name in sorted(vals, key=lambda t: -t[0])]
    meta = {"source": table.source, "off_policy": (os.fspath(off_policy) if isinstance(off_policy, (str, os.PathLike))
                                                 else ("<table>" if off_policy is not None else None)),
            "n_rows": table.n, "n_prompts": int((counts_all >= 2).sum()),
            "k_min": int(k_used.min()), "k_max": int(k_used.max()), "ground_truth": gt,
            "normalisation": normalisation, "bootstrap": int(bootstrap), "seed": int(seed), "ci": float(ci),
            "gamma": float(gamma), "n_prompts_bound": n_prompts, "n_off_prompts_not_in_rewards": len(extra_prompts),
            "timings_s": timings}
    if k_used.min() != k_used.max():
        warnings.append(f"prompts have unequal numbers of samples (K = {int(k_used.min())}..{int(k_used.max())}); "
                        "handled per prompt (grouped by K, one normalisation per model over all samples)")
    return Report(results, rankings, warnings, meta)


def _load_off_policy(source, sources, gt, fmt, warnings, prompt_index):
    source = _Source(source, fmt)
    cols, osrc = source.columns, source.name
    if "prompt_id" not in cols:
        raise InputError(f"{osrc}: missing column 'prompt_id' (columns: {', '.join(cols)})")
    for c in cols:
        if c != "prompt_id" and not (c.endswith(".chosen") or c.endswith(".rejected")):
            raise InputError(f"{osrc}: unexpected column '{c}' (expected prompt_id and <model>.chosen, <model>.rejected)")
    bases = list(dict.fromkeys(c.rsplit(".", 1)[0] for c in cols if c != "prompt_id"))
    for b in bases:
        for side in ("chosen", "rejected"):
            if f"{b}.{side}" not in cols:
                raise InputError(f"{osrc}: column '{b}.{side}' is missing (its pair column is present)")
    unknown = [b for b in bases if b not in sources and b != gt]
    if unknown:
        warnings.append(f"off-policy file: column(s) for {', '.join(map(repr, unknown))} ignored "
                        "(not a model being evaluated)")
    used = [b for b in bases if b in sources or b == gt]
    numeric = [f"{b}.{s}" for b in used for s in ("chosen", "rejected")]
    t = source.read(numeric, ("prompt_id",))
    absent = [m for m in sources if m not in used and m != gt]
    if absent:
        warnings.append(f"off-policy file has no columns for {', '.join(map(repr, absent))}: "
                        "off-policy accuracy not computed for them")
    extra = []
    codes = np.empty(t.n, np.int64)
    n_p = len(prompt_index)
    extra_index = {}
    for i, p in enumerate(t.ids["prompt_id"]):
        c = prompt_index.get(p)
        if c is None:
            c = extra_index.get(p)
            if c is None:
                c = extra_index[p] = n_p + len(extra)
                extra.append(p)
        codes[i] = c
    if extra:
        warnings.append(f"off-policy file: {len(extra)} prompt(s) not in the rewards file ({_eg(extra)}); "
                        "their pairs still count towards off-policy accuracy")
    gt_c = gt_r = None
    if gt is not None and gt in used:
        gt_c, gt_r = t.values[f"{gt}.chosen"], t.values[f"{gt}.rejected"]
        gmiss = np.isnan(gt_c) | np.isnan(gt_r)
        if gmiss.any():
            warnings.append(f"off-policy file: ground truth missing on {int(gmiss.sum())} pair(s) "
                            f"(first: row {int(np.flatnonzero(gmiss)[0]) + 1}); skipped for every model")
    else:
        gmiss = np.zeros(t.n, bool)
        warnings.append("off-policy file has no ground-truth columns: the chosen response is taken as strictly preferred")
    per_model = {}
    for m in used:
        c, r = t.values[f"{m}.chosen"], t.values[f"{m}.rejected"]
        ok = ~(np.isnan(c) | np.isnan(r)) & ~gmiss
        if not ok[~gmiss].all():
            bad = np.flatnonzero(~ok & ~gmiss)
            warnings.append(f"off-policy file: model '{m}' missing on {bad.size} pair(s) (first: row {int(bad[0]) + 1}); "
                            "skipped for this model")
        per_model[m] = (c[ok], r[ok], None if gt_c is None else gt_c[ok], None if gt_r is None else gt_r[ok], codes[ok])
    if gt is not None and gt not in sources:
        per_model.pop(gt, None)
    return per_model, extra


def _evaluate_model(name, is_gt, vals, gt_vals, grouping, off, scheme, gamma, n_prompts_bound, n_units, warnings):
    """Metrics of one reward source via rm_report; per-prompt columns for the bootstrap."""
    off_args = {}
    n_off = 0
    off_codes = np.zeros(0, np.int64)
    if off is not None and name in off:
        c, r, gc, gr, off_codes = off[name]
        if c.size:
            off_args = {"off_chosen": c, "off_rejected": r}
            if gc is not None:
                off_args.update(off_gt_chosen=gc, off_gt_rejected=gr)
            n_off = int(c.size)
    n_used = int(grouping.used.size)
    if n_used == 0:
        warnings.append(f"model '{name}': no prompt with 2 or more usable samples; not evaluated")
        nan = math.nan
        res = ModelResult(name, is_gt, 0, 0, n_off, nan, nan, nan, nan, nan, nan, nan, nan)
        return res, None
    has_gt = gt_vals is not None
    reports, constant = [], []
    for gi, (prompts, idx) in enumerate(grouping.groups):
        s = vals[idx]
        g = gt_vals[idx] if has_gt else None
        try:
            reports.append(rm_report(s, g, scheme=scheme, **(off_args if gi == 0 else {})))
        except ValueError as e:   # inputs are validated; what is left is scores beyond the float64 range
            raise InputError(f"model '{name}': {e}") from None
        constant.append(np.all(s == s[:, :1], axis=1))
    if len(reports) == 1:
        rep = reports[0]
        var_p, acc_p = rep.variance, rep.on_accuracy
        mean, std = rep.mean, rep.std
        var, acc_on, acc_off, on_off, var_acc = rep.var, rep.acc_on, rep.acc_off, rep.on_off, rep.var_acc
        prompts_order = grouping.groups[0][0]
    else:
        # Unequal K: rm_report normalises each K-group by that group's own statistics, but the paper's
        # protocol uses one (μ, σ) per reward source over all its samples. Per-prompt variances scale as
        # 1/σ², so rescale them to the all-sample σ; accuracies are invariant to the positive affine map.
        try:
            mean, std = pooled_normalisation_stats([vals[idx] for _, idx in grouping.groups], scheme)
        except ValueError as e:
            raise InputError(f"model '{name}': {e}") from None
        var_p = np.concatenate([rep.variance * (rep.std / std) ** 2 for rep in reports])
        acc_p = np.concatenate([rep.on_accuracy for rep in reports])
        prompts_order = np.concatenate([p for p, _ in grouping.groups])
        var = float(np.mean(var_p))
        acc_on = float(np.mean(acc_p))
        off_c = reports[0].off_correct
        acc_off = float(np.mean(off_c)) if off_c.size else math.nan
        on_off, var_acc = combined_measures(var, acc_on, acc_off).values()
    off_correct = reports[0].off_correct
    n_zero = int(np.sum(np.concatenate(constant)))   # from the raw scores (tiny scores underflow var_p)
    if n_zero == n_used:
        warnings.append(f"model '{name}': constant rewards within every prompt (zero reward variance); "
                        "Var = 0 and the Proposition 3 bound is infinite")
    elif n_zero:
        warnings.append(f"model '{name}': zero reward variance on {n_zero} of {n_used} prompt(s)")
    s_bound = n_prompts_bound if n_prompts_bound is not None else n_used
    t_lb = float(prop3_time_lower_bound(max(var, 0.0), gamma, s_bound))
    res = ModelResult(name, is_gt, n_used, int(grouping.counts[grouping.used].sum()), n_off, float(mean), float(std),
                      float(var), float(acc_on), float(acc_off), float(on_off), float(var_acc), t_lb,
                      n_zero_variance_prompts=n_zero)
    # per-unit (prompt) sums for the bootstrap: [w_on, w_on*var, w_on*acc, n_off, n_off_correct]
    cols = np.zeros((n_units, 5))
    cols[prompts_order, 0] = 1.0
    cols[prompts_order, 1] = var_p
    cols[prompts_order, 2] = acc_p if has_gt else 0.0
    if off_correct.size:
        np.add.at(cols[:, 3], off_codes, 1.0)
        np.add.at(cols[:, 4], off_codes, off_correct)
    return res, (cols, has_gt, bool(off_correct.size))


def _bootstrap(results, unit_cols, n_units, n_boot, seed, ci):
    """Percentile bootstrap over prompts, all models and measures at once: each resample is a vector of
    prompt multiplicities (counts), and every statistic is a ratio of count-weighted sums (one matmul).

    Resamples are drawn in chunks (at most 128 resamples and 1e7 counts at a time); what is kept is one row
    of sums per resample (n_boot × distinct columns, bounded by MAX_BOOTSTRAP)."""
    live = [(i, c) for i, c in enumerate(unit_cols) if c is not None]
    if not live:
        return
    A = np.concatenate([c[0] for _, c in live], axis=1)          # [U, 5 * models]
    A, inverse = np.unique(A, axis=1, return_inverse=True)         # shared columns (e.g. weights) once
    inverse = inverse.reshape(len(live), 5)
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_boot, 128, int(1e7 // n_units)))
    counts = np.empty((chunk, n_units))
    S = np.empty((n_boot, A.shape[1]))
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        for i in range(b):   # row by row: the draws and their histogram stay in cache
            counts[i] = np.bincount(rng.integers(0, n_units, n_units), minlength=n_units)
        S[start:start + b] = counts[:b] @ A
    q = [(1 - ci) / 2, 1 - (1 - ci) / 2]
    for j, (i, (_, has_gt, has_off)) in enumerate(live):
        w, wv, wa, n_off, n_ok = (S[:, k] for k in inverse[j])
        with np.errstate(invalid="ignore", divide="ignore"):
            stats = {"var": wv / w}
            if has_gt:
                stats["acc_on"] = wa / w
            if has_off:
                stats["acc_off"] = n_ok / n_off
        if has_gt and has_off:
            stats.update(combined_measures(stats["var"], stats["acc_on"], stats["acc_off"]))
        r = results[i]
        for m, x in stats.items():
            x = x[np.isfinite(x)]
            r.ci[m] = tuple(float(v) for v in np.quantile(x, q)) if x.size else (math.nan, math.nan)


# --------------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------------

def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Reward-model report card for a policy: reward variance, on-/off-policy accuracy, On&Off, "
                          "Var&Acc with bootstrap CIs, rankings and the Proposition 3 bound on t_γ.")
    parser.add_argument("rewards", metavar="REWARDS_FILE",
                        help="CSV/TSV/JSONL/Parquet table: prompt_id, sample_id, one score column per reward model "
                             "(K policy samples per prompt), optionally a ground-truth column")
    parser.add_argument("--ground-truth", metavar="NAME", default="auto",
                        help=f"ground-truth column (default: '{DEFAULT_GT}' if present)")
    parser.add_argument("--no-ground-truth", action="store_true",
                        help="treat every score column as a reward model; no on-policy accuracy")
    parser.add_argument("--exclude-ground-truth", action="store_true",
                        help="do not report the ground-truth column as a reward source")
    parser.add_argument("--models", metavar="A,B,...", help="evaluate only these reward-model columns")
    parser.add_argument("--off-policy", metavar="PAIRS_FILE",
                        help="table of off-policy pairs: prompt_id, M.chosen, M.rejected per model M "
                             "(optionally <ground-truth>.chosen/.rejected; else chosen is strictly preferred)")
    parser.add_argument("--format", dest="fmt", choices=("auto", "csv", "tsv", "jsonl", "parquet"), default="auto",
                        help="input format (default: from the file extension)")
    parser.add_argument("--normalisation", "--normalization", choices=SCHEMES, default="global",
                        help="reward normalisation: global z-score (paper default) or prompt_variance (Table 9)")
    parser.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                        help="bootstrap resamples over prompts for the CIs (0: none; default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--ci", type=float, default=0.95, help="confidence level (default 0.95)")
    parser.add_argument("--gamma", type=float, default=1.0,
                        help="γ for the Proposition 3 bound on t_γ (normalised reward units; default 1)")
    parser.add_argument("--n-prompts", type=int, default=None, metavar="S",
                        help="|S| for the Proposition 3 bound (default: each model's number of evaluated prompts)")
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print JSON (metrics, CIs, rankings, warnings) instead of the table")
    out.add_argument("--csv", action="store_true", help="print one CSV row per reward model instead of the table")
    parser.add_argument("--plot", metavar="PATH", help="save a variance-vs-accuracy scatter (PNG/PDF/SVG)")
    parser.add_argument("--plot-accuracy", choices=("acc_on", "acc_off", "on_off"), default="acc_on",
                        help="accuracy on the plot's y axis (default: on-policy)")


def main(args) -> int:
    from .cli import fail

    try:
        plot = plot_path(args.plot) if args.plot else None     # before the work, not after the report
        gt = None if args.no_ground_truth else args.ground_truth
        models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
        report = evaluate(args.rewards, off_policy=args.off_policy, ground_truth=gt, models=models,
                          include_ground_truth=not args.exclude_ground_truth, normalisation=args.normalisation,
                          bootstrap=args.bootstrap, seed=args.seed, ci=args.ci, gamma=args.gamma,
                          n_prompts=args.n_prompts, fmt=args.fmt, off_policy_fmt=None)
    except (InputError, OSError) as e:
        return fail("evaluate", e)
    for w in report.warnings:
        print(f"rmtheory evaluate: warning: {w}", file=sys.stderr)
    if args.json:
        print(report.to_json(indent=2))
    elif args.csv:
        sys.stdout.write(report.to_csv())
    else:
        print(report.format_table())
    if plot:
        print(f"rmtheory evaluate: wrote {report.plot(plot, accuracy=args.plot_accuracy)}", file=sys.stderr)
    return 0


def _standalone(argv=None) -> int:
    p = argparse.ArgumentParser(prog="rmtheory evaluate")
    configure(p)
    return main(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(_standalone())
