"""Reading the input tables of ``rmtheory evaluate`` (CSV/TSV/JSONL/Parquet files, in-memory mappings)."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import re
import warnings as _pywarnings
from dataclasses import dataclass

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
