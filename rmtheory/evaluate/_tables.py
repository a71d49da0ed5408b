"""The input tables of ``rmtheory evaluate``: :class:`Source` (a CSV/TSV/JSONL/Parquet file or an in-memory
mapping) reads its column names, then the needed columns as a :class:`~rmtheory.evaluate._input.Table`.

CSV/TSV are read by :mod:`rmtheory.evaluate._csv`; JSONL, Parquet and mappings here. JSONL: one JSON object
per line; the columns are the union of the keys over the whole file; an absent key or null is a missing score.
The rules every format shares (ids, scores, errors) are in :mod:`rmtheory.evaluate._input`.
"""

from __future__ import annotations

import json
import os

import numpy as np

from ._csv import read_csv, read_csv_header
from ._input import (InputError, Table, id_column, numeric_column, numeric_error, open_text, reading,
                     require_columns, row_number)

_SUFFIXES = ((".csv", "csv"), (".tsv", "tsv"), (".jsonl", "jsonl"), (".ndjson", "jsonl"), (".parquet", "parquet"),
             (".pq", "parquet"))


def _detect_format(path: str, fmt: str | None) -> str:
    if fmt and fmt != "auto":
        return fmt
    low = path.lower()
    for suffix, f in _SUFFIXES:
        if low.endswith(suffix) or low.endswith(suffix + ".gz"):
            return f
    raise InputError(f"{path}: cannot tell the format from the file name; use --format csv|tsv|jsonl|parquet")


class Source:
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
            self.columns = read_csv_header(path, self.delimiter)
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

    def read(self, id_cols, numeric_cols) -> Table:
        """The named columns (ids as normalised text, scores as float64 with NaN = missing)."""
        if self._mapping is not None:
            return _table_from_columns(self._mapping, id_cols, numeric_cols)
        if self.fmt in ("csv", "tsv"):
            return read_csv(self.path, self.columns, id_cols, numeric_cols, self.delimiter)
        if self.fmt == "jsonl":
            require_columns(self.path, self.columns, list(id_cols) + list(numeric_cols), what="keys")
            lines = self._lines
            return _table_from_records(self.path, self._records, id_cols, numeric_cols,
                                       lambda k: f"line {lines[k]}")
        return _read_parquet(self.path, id_cols, numeric_cols)


def _read_jsonl_records(path):
    """All records of a JSONL file and their line numbers (1-based)."""
    with reading(path), open_text(path) as f:
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


def _table_from_records(source, records, id_cols, numeric_cols, where):
    ids = {c: id_column(source, [r.get(c) for r in records], c, where) for c in id_cols}
    values = {c: numeric_column(source, [r.get(c) for r in records], c, where) for c in numeric_cols}
    return Table(source, ids, values, len(records))


def _read_parquet(path, id_cols, numeric_cols):
    pq, pa = _pyarrow_parquet(path)
    try:
        table = pq.read_table(path, columns=list(id_cols) + list(numeric_cols))
    except Exception as e:  # noqa: BLE001 - pyarrow raises many types (missing column, bad file)
        raise InputError(f"{path}: cannot read Parquet: {str(e).splitlines()[0]}") from None
    n = table.num_rows
    if n == 0:
        raise InputError(f"{path}: no data rows")
    ids = {c: id_column(path, table.column(c).to_pylist(), c, row_number) for c in id_cols}
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
            raise numeric_error(path, row_number(int(bad[0])), c, float(arr[bad[0]]))
        values[c] = arr
    return Table(path, ids, values, n)


def _pyarrow_parquet(path):
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(f"{path}: reading Parquet needs pyarrow, which is not installed: "
                         "pip install pyarrow") from None
    return pq, pa


def _table_from_columns(cols, id_cols, numeric_cols):
    lengths = {len(v) for v in cols.values()}
    if len(lengths) > 1:
        raise InputError(f"<table>: columns have different lengths {sorted(lengths)}")
    n = lengths.pop() if lengths else 0
    if n == 0:
        raise InputError("<table>: no data rows")
    require_columns("<table>", list(cols), list(id_cols) + list(numeric_cols))
    ids = {c: id_column("<table>", list(cols[c]), c, row_number) for c in id_cols}
    values = {}
    for c in numeric_cols:
        col = cols[c]
        if isinstance(col, np.ndarray) and col.dtype.kind in "fiu":
            arr = col.astype(np.float64)
            bad = np.flatnonzero(~np.isfinite(arr))
            if bad.size:
                raise numeric_error("<table>", row_number(int(bad[0])), c, float(arr[bad[0]]))
            values[c] = arr
        else:
            values[c] = numeric_column("<table>", list(col), c, row_number)
    return Table("<table>", ids, values, n)
