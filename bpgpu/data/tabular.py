"""The user's own table: a CSV (header row) or an NPZ file → numeric features and a target column.

- CSV (``.csv``, ``.tsv``, optionally ``.gz``): the first row names the columns; every column but the
  target must hold numbers (an empty cell, NaN or text is an error naming the column and the line).
- NPZ: each array is a column (1-D) or a block of columns (2-D, named ``key[j]``); the target is the
  array named ``target`` (1-D or (n, 1)). Read with ``allow_pickle=False``: nothing in the file runs code.

The target decides the task (``task="auto"``): text labels, or numbers that are all whole, are
classes (coded 0…k−1 in sorted order; ``classes`` maps a code back to the label, so labels 1…k or
"setosa"/… work); other numbers are a regression target. ``task`` forces either.
:func:`split` draws a held-out part (stratified by class) with a seeded generator.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import os
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from bpgpu.errors import ConfigError, DataError

TASKS = ("auto", "classification", "regression")


@dataclass
class Table:
    """Features ``x`` (n, d) float, target ``y`` (n,) — class codes (int64) or values (float)."""

    x: np.ndarray
    y: np.ndarray
    feature_names: list[str]
    target: str
    classes: np.ndarray | None  # classes[code] = the original label; None for regression
    source: str = ""

    @property
    def task(self) -> str:
        return "regression" if self.classes is None else "classification"

    def rows(self, index: np.ndarray) -> "Table":
        return Table(self.x[index], self.y[index], self.feature_names, self.target, self.classes, self.source)

    def __len__(self) -> int:
        return int(self.x.shape[0])


def load_table(
    path: str | os.PathLike, target: str, dtype: str = "float32", task: str = "auto",
    names: Mapping[str, str] | None = None,
) -> Table:
    """Read ``path`` (CSV or NPZ) and split off the column ``target``; see the module docstring.

    ``names`` maps this function's argument names ("path", "target", "task") to what the caller
    calls them (the CLI passes {"target": "--target", …}) so errors speak the caller's terms.
    """
    said = {"path": "path", "target": "target", "task": "task", **(names or {})}
    if task not in TASKS:
        raise ConfigError(f"{said['task']}={task!r} is not one of {', '.join(TASKS)}.")
    if dtype not in ("float32", "float64"):
        raise ConfigError(f"dtype must be 'float32' or 'float64'; got {dtype!r}.")
    path = os.fspath(path)
    lower = path.lower()
    if lower.endswith(".npz"):
        columns = _read_npz(path, said)
    elif lower.endswith((".csv", ".tsv", ".csv.gz", ".tsv.gz", ".txt")):
        columns = _read_csv(path, target)
    else:
        raise ConfigError(f"{said['path']} {path!r}: expected a .csv, .tsv or .npz file.")
    if target not in columns:
        shown = ", ".join(repr(c) for c in list(columns)[:30]) + (" …" if len(columns) > 30 else "")
        raise ConfigError(f"{said['target']} {target!r} is not a column of {path!r}; its columns are {shown}.")
    features = [name for name in columns if name != target]
    if not features:
        raise DataError(f"{path!r} has no feature columns besides the target {target!r}.")
    n = len(columns[target])
    if n < 1:
        raise DataError(f"{path!r} has a header but no data rows.")
    x = np.empty((n, len(features)), dtype=dtype)
    for j, name in enumerate(features):
        x[:, j] = _numeric(columns[name], name, path)
    y, classes = _encode_target(columns[target], target, task, path, said)
    return Table(x, y, features, target, classes, path)


def split(table: Table, fraction: float, seed: int | None = 0) -> tuple[Table, Table]:
    """(training, held-out) with about ``fraction`` of the rows held out; for classes, the share of
    every class (at least one row of each class stays in training)."""
    if not (isinstance(fraction, (int, float)) and 0.0 < fraction < 1.0):
        raise ConfigError(f"the validation fraction must be in (0, 1), e.g. 0.2; got {fraction!r}.")
    rng = np.random.default_rng(seed)
    n = len(table)
    groups = [np.arange(n)] if table.classes is None else [np.flatnonzero(table.y == c) for c in range(len(table.classes))]
    held = []
    for group in groups:
        group = rng.permutation(group)
        k = min(int(math.floor(fraction * len(group) + 0.5)), len(group) - 1)
        held.append(group[:k])
    held_out = np.sort(np.concatenate(held))
    if held_out.size == 0:
        raise DataError(f"holding out {fraction:g} of {n} rows leaves no held-out rows; use a larger fraction or more data.")
    train = np.setdiff1d(np.arange(n), held_out)
    return table.rows(train), table.rows(held_out)


# -- readers: name -> column (a 1-D NumPy array of str or numbers) -------------------------------------

def _read_csv(path: str, target: str) -> dict[str, np.ndarray]:
    opener = gzip.open if path.lower().endswith(".gz") else open
    delimiter = "\t" if ".tsv" in path.lower() else ","
    with opener(path, "rt", encoding="utf-8-sig", newline="") as fh:  # type: ignore[operator]
        text = fh.read()
    fast = _read_csv_fast(text, delimiter, target, path)
    if fast is not None:
        return fast
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    rows = [row for row in reader if any(cell.strip() for cell in row)]
    if not rows:
        raise DataError(f"{path!r} is empty; expected a header row naming the columns, then the data.")
    header = [cell.strip() for cell in rows[0]]
    _check_header(header, path)
    body = rows[1:]
    for i, row in enumerate(body):
        if len(row) != len(header):
            raise DataError(
                f"{path!r}: data row {i + 1} has {len(row)} fields but the header names {len(header)} columns."
            )
    cells = np.array(body, dtype=str).reshape(len(body), len(header))
    return {name: np.char.strip(cells[:, j]) for j, name in enumerate(header)}


def _read_csv_fast(text: str, delimiter: str, target: str, path: str) -> dict[str, np.ndarray] | None:
    """The common case in C (numpy.loadtxt, ~5× faster than the csv module): no quotes, every row with
    the header's number of fields, numeric features. None (the careful path above decides and words
    any error) otherwise."""
    if '"' in text:
        return None
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        return None
    header = [cell.strip() for cell in lines[0].split(delimiter)]
    _check_header(header, path)
    fields = len(header) - 1
    if target not in header or any(line.count(delimiter) != fields for line in lines):
        return None
    features = [j for j, name in enumerate(header) if name != target]
    body = lines[1:]
    try:
        x = np.loadtxt(body, delimiter=delimiter, usecols=features, dtype=np.float64, comments=None, ndmin=2)
        y = np.loadtxt(body, delimiter=delimiter, usecols=[header.index(target)], dtype=str, comments=None, ndmin=1)
    except ValueError:
        return None
    columns = {header[j]: x[:, k] for k, j in enumerate(features)}
    columns[target] = np.char.strip(y)
    return {name: columns[name] for name in header}


def _check_header(header: list[str], path: str) -> None:
    seen: set[str] = set()
    for j, name in enumerate(header):
        if not name:
            raise DataError(f"{path!r}: column {j + 1} of the header row has no name; the first row must name every column.")
        if name in seen:
            raise DataError(f"{path!r}: the header names column {name!r} twice; column names must be unique.")
        seen.add(name)
    try:  # a first row of numbers is data, not a header
        [float(name) for name in header]
    except ValueError:
        return
    raise DataError(f"{path!r}: the first row ({', '.join(header[:5])}, …) is all numbers; add a header row naming the columns.")


def _read_npz(path: str, said: Mapping[str, str]) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except ValueError as exc:  # object arrays need pickle: refused
        raise DataError(f"{said['path']} {path!r} cannot be read without running code from it ({exc}); save plain "
                        "numeric or string arrays.") from None
    columns: dict[str, np.ndarray] = {}
    for key, a in arrays.items():
        if a.ndim == 1 or (a.ndim == 2 and a.shape[1] == 1):
            columns[key] = a.reshape(-1)
        elif a.ndim == 2:
            columns.update({f"{key}[{j}]": a[:, j] for j in range(a.shape[1])})
        else:
            raise DataError(f"{path!r}: array {key!r} has shape {a.shape}; expected 1-D columns or 2-D (rows, columns) blocks.")
    lengths = {name: len(c) for name, c in columns.items()}
    if len(set(lengths.values())) > 1:
        raise DataError(f"{path!r}: the arrays have different numbers of rows: {lengths}.")
    return columns


# -- conversion --------------------------------------------------------------------------------------

def _numeric(column: np.ndarray, name: str, path: str) -> np.ndarray:
    """A feature column as float64; text, empty cells and NaN/inf are errors naming the column."""
    if column.dtype.kind in "biuf":
        values = column.astype(np.float64)
    else:
        try:
            values = column.astype(np.float64)
        except ValueError:
            bad = next(i for i, cell in enumerate(column) if not _is_number(cell))
            cell = column[bad]
            what = "an empty cell" if not str(cell).strip() else f"{str(cell)!r}"
            raise DataError(
                f"feature column {name!r} of {path!r} is not numeric: data row {bad + 1} holds {what}. "
                "Features must be numbers: encode the column as numbers, fill missing values, or drop the column."
            ) from None
    finite = np.isfinite(values)
    if not finite.all():
        bad = int(np.flatnonzero(~finite)[0])
        raise DataError(
            f"feature column {name!r} of {path!r} holds {values[bad]} in data row {bad + 1}; fill or drop missing values."
        )
    return values


def _is_number(cell: Any) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _encode_target(
    column: np.ndarray, name: str, task: str, path: str, said: Mapping[str, str],
) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        values = column.astype(np.float64)
    except ValueError:
        values = None
    if values is not None and not np.isfinite(values).all():
        bad = int(np.flatnonzero(~np.isfinite(values))[0])
        raise DataError(f"the target column {name!r} of {path!r} holds {values[bad]} in data row {bad + 1}; fill or drop those rows.")
    if values is None:
        if task == "regression":
            raise DataError(f"{said['task']} regression needs a numeric target but {said['target']} {name!r} holds text.")
        if any(not str(c).strip() for c in column):
            raise DataError(f"the target column {name!r} of {path!r} has empty cells; fill or drop those rows.")
        classification = True
    else:
        classification = task == "classification" or (task == "auto" and bool(np.all(values == np.round(values))))
    if not classification:
        return values, None
    labels = column if values is None else (values.astype(np.int64) if np.all(values == np.round(values)) else values)
    classes, codes = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        raise DataError(f"the target column {name!r} of {path!r} holds a single class ({classes[0]!r}); classification needs two or more.")
    return codes.astype(np.int64).reshape(-1), classes
