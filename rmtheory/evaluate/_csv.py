"""Reading CSV/TSV tables for ``rmtheory evaluate``: the header, then the needed columns by one of three readers
that take the same arguments ``(path, header, id_cols, numeric_cols, delimiter)``.

Rules (docs/evaluate.md, "Accepted input"): UTF-8 (a leading BOM is ignored), optionally gzip-compressed (.gz); a header
line of unique, non-empty column names; every data row has exactly as many fields as the header (quote a
field that contains the delimiter); blank lines are skipped. A score is a decimal number (``_NUMBER``:
optional sign, digits with an optional decimal point, optional exponent; surrounding spaces allowed): no
NaN/inf, no digit separators ("1_000", "1,000"), no hex. An empty cell is a missing score. Ids follow
:func:`rmtheory.evaluate._input.normalise_id` (for text: stripped, non-empty).
"""

from __future__ import annotations

import csv
import math
import re
import warnings

import numpy as np

from ._input import InputError, Table, numeric_error, open_text, reading, require_columns

_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_DELIM_NAMES = {",": "comma", "\t": "tab"}


def read_csv_header(path, delimiter):
    """The column names of a CSV/TSV file (stripped); raises InputError on an empty or malformed header."""
    with reading(path), open_text(path) as f:
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


def read_csv(path, header, id_cols, numeric_cols, delimiter=",") -> Table:
    """Fast paths (pyarrow if installed, else numpy's C parser) that return None on anything unusual; then
    the exact csv-module path, which reports the offending line. The fast paths check the field count of
    every row like the exact path does."""
    seen = set()
    for h in header:
        if h in seen:
            raise InputError(f"{path}: duplicated column '{h}' in the header")
        seen.add(h)
    require_columns(path, header, list(id_cols) + list(numeric_cols))
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
    return Table(path, ids, values, tbl.num_rows)


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
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
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
        return Table(path, ids, values, int(arr.size))
    return None


def _read_csv_slow(path, header, id_cols, numeric_cols, delimiter):
    """The exact path (the csv module, one row at a time): the reference the fast paths agree with, and the
    one whose errors name the offending line."""
    col_ix = {h: i for i, h in enumerate(header)}
    ids = {c: [] for c in id_cols}
    vals = {c: [] for c in numeric_cols}
    nfields = len(header)
    n = 0
    with reading(path), open_text(path) as f:
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
                    raise numeric_error(path, where, c, cell) from None
    if n == 0:
        raise InputError(f"{path}: no data rows")
    values = {c: np.array([np.nan if x is None else x for x in v], np.float64) for c, v in vals.items()}
    return Table(path, ids, values, n)


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
