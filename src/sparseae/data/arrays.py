"""User data files: `.npy`, `.npz` and `.csv`, turned into the same `Dataset` as named sets.

User files are where bad data comes from (a stray "n/a" in a CSV, NaNs from a failed
preprocessing step, a half-written file), so every check here ends in a one-line `DataError`
naming the file, the place and the fix instead of a NumPy traceback.
"""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import numpy as np

from sparseae.data.core import (
    Dataset,
    apply_scale,
    check_finite,
    make_split,
    resolve_count,
    split_indices,
)
from sparseae.errors import ConfigError, DataError

SUPPORTED_SUFFIXES: tuple[str, ...] = (".npy", ".npz", ".csv")

_X_KEYS = ("x", "X", "data")
_Y_KEYS = ("y", "Y", "labels", "targets")

#: `label_column="auto"`: take the CSV column whose header is one of these names (any case)
AUTO_LABEL = "auto"
LABEL_HEADERS: tuple[str, ...] = ("label", "labels", "target", "targets", "class", "y")


def _as_labels(values: np.ndarray, source: str) -> tuple[np.ndarray, tuple[str, ...] | None]:
    """Labels as int64 class indices (+ class names when they were strings).

    Whole-number floats (a CSV label column is parsed as numbers) become ints; strings become
    indices into their sorted unique values, which are kept as class names.
    """
    values = np.asarray(values)
    if values.ndim != 1:
        raise DataError(f"{source}: labels must be 1-D (one per row), got shape {values.shape}")
    if values.dtype.kind in "US":
        names, inv = np.unique(values.astype(str), return_inverse=True)
        return inv.astype(np.int64), tuple(str(s) for s in names)
    if values.dtype.kind == "b":
        return values.astype(np.int64), None
    if values.dtype.kind not in "iuf":
        raise DataError(f"{source}: labels of type {values.dtype} are not supported; use ints")
    if values.dtype.kind == "f":
        if not np.isfinite(values).all() or not np.array_equal(values, np.round(values)):
            raise DataError(
                f"{source}: labels must be whole-number class indices; found non-integer or "
                "NaN values. Fix: pass the right label_column, or store ints"
            )
    y = values.astype(np.int64)
    if len(y) and y.min() < 0:
        raise DataError(
            f"{source}: negative label {int(y.min())}; labels must be class indices 0, 1, ..."
        )
    return y, None


def _as_features(arr: np.ndarray, source: str) -> tuple[np.ndarray, tuple[int, int] | None]:
    """Features as a float32 (n, d) array; an (n, h, w) stack of images is flattened and its
    (h, w) kept so plots can show the rows as images."""
    if arr.dtype.kind not in "biuf":
        raise DataError(
            f"{source}: array of type {arr.dtype} is not numeric; store numbers (float or int)"
        )
    if arr.ndim < 2:
        raise DataError(
            f"{source}: expected a 2-D array (rows, features) or a stack of images, got "
            f"shape {arr.shape}; reshape it to (n, d) before saving"
        )
    if arr.shape[0] == 0:
        raise DataError(f"{source}: zero rows; the file holds no data")
    image_shape = (int(arr.shape[1]), int(arr.shape[2])) if arr.ndim == 3 else None
    x = np.asarray(arr, dtype=np.float32).reshape(arr.shape[0], -1)
    if x.shape[1] == 0:
        raise DataError(f"{source}: zero features per row (shape {arr.shape})")
    where = "row {row}, column {col} (0-based, after flattening)"
    check_finite(x, source, where)
    return x, image_shape


def _load_np(path: Path, what: str):  # noqa: ANN202 - ndarray or NpzFile
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:  # object arrays need pickle, or not a .npy at all
        raise DataError(
            f"{path}: cannot load the {what} file ({exc}); save plain numeric arrays with "
            "np.save / np.savez"
        ) from exc
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(
            f"{path}: corrupt or truncated {what} file ({exc or type(exc).__name__}); save it again"
        ) from exc


def _read_npy(path: Path):  # noqa: ANN202
    arr = _load_np(path, ".npy")
    return arr, None, None, None


def _pick(keys: list[str], options: tuple[str, ...]) -> str | None:
    return next((k for k in options if k in keys), None)


def _read_npz(path: Path):  # noqa: ANN202
    """(x, y, x_test, y_test) from x/X/data (+ y/labels) or x_train/y_train/x_test/y_test."""
    with _load_np(path, ".npz") as npz:
        keys = list(npz.files)
        try:
            k_xtr = _pick(keys, ("x_train", "X_train"))
            if k_xtr is not None:
                k_ytr = _pick(keys, ("y_train", "Y_train"))
                k_xte = _pick(keys, ("x_test", "X_test"))
                k_yte = _pick(keys, ("y_test", "Y_test"))
                return (
                    npz[k_xtr],
                    npz[k_ytr] if k_ytr else None,
                    npz[k_xte] if k_xte else None,
                    npz[k_yte] if k_yte else None,
                )
            k_x = _pick(keys, _X_KEYS)
            if k_x is None:
                raise DataError(
                    f"{path}: no data array; found keys {keys}, expected one of "
                    f"{', '.join(_X_KEYS)} (optionally with y/labels) or x_train/y_train/x_test/"
                    "y_test. Fix: save with np.savez(path, x=..., y=...)"
                )
            k_y = _pick(keys, _Y_KEYS)
            return npz[k_x], (npz[k_y] if k_y else None), None, None
        except ValueError as exc:
            raise DataError(f"{path}: cannot load an array ({exc}); save numeric arrays") from exc
        except (OSError, EOFError, zipfile.BadZipFile) as exc:
            raise DataError(
                f"{path}: corrupt or truncated .npz file ({exc}); save it again"
            ) from exc


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _csv_rows(path: Path) -> tuple[list[list[str]], list[int]]:
    """The non-blank rows and their 1-based file line numbers, kept so every later error can
    point at the exact line in the user's file (blank lines would shift a plain row count)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            rows: list[list[str]] = []
            lines: list[int] = []
            for row in reader:
                if not row or all(not c.strip() for c in row):
                    continue
                rows.append(row)
                lines.append(reader.line_num)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read the CSV file ({exc}); save it as UTF-8 CSV") from exc
    if not rows:
        raise DataError(f"{path}: the file is empty (no rows); it holds no data")
    return rows, lines


def _csv_header(
    path: Path, rows: list[list[str]], lines: list[int]
) -> tuple[list[str] | None, list[list[str]], list[int]]:
    """(header, data rows, their lines): the first row is a header when none of its cells is
    a number, so both headed and bare numeric CSVs load without an option."""
    if any(_is_number(c) for c in rows[0]):
        return None, rows, lines
    header = [c.strip() for c in rows[0]]
    rows, lines = rows[1:], lines[1:]
    if not rows:
        raise DataError(f"{path}: zero data rows (only a header line); it holds no data")
    return header, rows, lines


def _check_csv_widths(path: Path, rows: list[list[str]], lines: list[int], width: int) -> None:
    """Every row has `width` cells; a ragged row is named by its line rather than surfacing as
    NumPy's inhomogeneous-shape error."""
    for row, line in zip(rows, lines, strict=True):
        if len(row) != width:
            raise DataError(
                f"{path}: line {line} has {len(row)} columns but {width} were expected; "
                "fix the row (a missing or extra comma?)"
            )


def _auto_label_column(path: Path, header: list[str] | None) -> str | None:
    """The header cell that names a label column (`LABEL_HEADERS`, any case), or None.

    Without this a column called "label" silently became one more feature. Two such columns
    are ambiguous (which one holds the classes?), so they are refused with the fix.
    """
    hits = [h for h in header or [] if h.lower() in LABEL_HEADERS]
    if len(hits) > 1:
        names = " and ".join(repr(h) for h in hits)
        raise ConfigError(
            f"{path}: columns {names} both look like labels; pass --label-column with the "
            "one holding them (label_column= in Python), or none to keep them as features"
        )
    return hits[0] if hits else None


def _csv_label_index(
    path: Path, label_column: str | int | None, header: list[str] | None, width: int
) -> int | None:
    """The 0-based label column from a header name or a (possibly negative) index, checked
    against the file so a typo is a ConfigError naming the columns, not an IndexError."""
    if label_column == AUTO_LABEL:
        label_column = _auto_label_column(path, header)
    if label_column is None:
        return None
    if isinstance(label_column, str) and not label_column.lstrip("-").isdigit():
        if header is None:
            raise ConfigError(
                f"{path}: label_column={label_column!r} is a name but the file has no "
                "header row; pass the column index instead"
            )
        if label_column not in header:
            raise ConfigError(f"{path}: no column named {label_column!r}; the columns are {header}")
        return header.index(label_column)
    label_idx = int(label_column)
    if not -width <= label_idx < width:
        raise ConfigError(
            f"{path}: label_column={label_column} is out of range for {width} columns"
        )
    return label_idx % width


def _csv_features(
    path: Path, table: np.ndarray, lines: list[int], col_ids: list[int], names: list[str]
) -> np.ndarray:
    """The feature cells as float64; on failure the first non-numeric cell is reported with its
    line, column and value, because "could not convert string to float" without a place is
    useless in a million-row file."""
    try:
        return table.astype(np.float64)
    except ValueError:
        for r, row in enumerate(table):
            for c, cell in enumerate(row):
                if not _is_number(cell):
                    col = f"column {col_ids[c] + 1}" + (f" ({names[c]!r})" if names else "")
                    raise DataError(
                        f"{path}: non-numeric value {str(cell)!r} at line {lines[r]}, {col}; "
                        "fix or remove it (all feature cells must be numbers)"
                    ) from None
        raise  # pragma: no cover - astype failed, but every cell parsed one by one


def _check_csv_finite(
    path: Path, x: np.ndarray, table: np.ndarray, lines: list[int], col_ids: list[int]
) -> None:
    """No NaN/inf features ("nan" and "inf" parse as numbers), reported at the first one's line
    and column with the counts, so the user knows how much imputing is needed."""
    bad = ~np.isfinite(x)
    if bad.any():
        r, c = (int(v) for v in np.argwhere(bad)[0])
        n_nan = int(np.isnan(x).sum())
        raise DataError(
            f"{path}: {n_nan} NaN and {int(bad.sum()) - n_nan} inf value(s); the first "
            f"({str(table[r, c]).strip()!r}) is at line {lines[r]}, column {col_ids[c] + 1}. Fix: "
            "remove or impute them before loading"
        )


def _csv_labels(labels_raw: np.ndarray | None) -> np.ndarray | None:
    """Label cells as numbers when they all parse, else kept as strings (class names), which
    `_as_labels` then turns into indices."""
    if labels_raw is None:
        return None
    if all(_is_number(v) for v in labels_raw):
        return labels_raw.astype(np.float64)
    return labels_raw


def _check_auto_labels(path: Path, name: str, labels: np.ndarray) -> None:
    """A column picked by its name only must hold classes: a 'target' of real values (a
    regression target) is refused with both ways out, rather than failing as 'not ints'."""
    if labels.dtype.kind != "f":
        return
    if np.isfinite(labels).all() and np.array_equal(labels, np.round(labels)):
        return
    raise ConfigError(
        f"{path}: column {name!r} was taken as labels by its name but holds non-integer "
        "values; pass --label-column none to keep it as a feature, or store class indices"
    )


def _read_csv(path: Path, label_column: str | int | None):  # noqa: ANN202
    """Numeric CSV with an optional header; `label_column` (name, index, or "auto": a column
    named as in `LABEL_HEADERS`) goes to y. Returns (x, y, None, None, label column name).

    Each step (reading, header, widths, label column, parsing, finiteness) is a helper that
    reports the file's own line and column on failure.
    """
    rows, lines = _csv_rows(path)
    header, rows, lines = _csv_header(path, rows, lines)
    width = len(header) if header is not None else len(rows[0])
    _check_csv_widths(path, rows, lines, width)
    label_idx = _csv_label_index(path, label_column, header, width)
    table = np.array(rows, dtype=str)
    labels_raw = None
    if label_idx is not None:
        labels_raw = np.char.strip(table[:, label_idx])
        table = np.delete(table, label_idx, axis=1)
        names = [h for i, h in enumerate(header or []) if i != label_idx]
    else:
        names = list(header or [])
    col_ids = [i for i in range(width) if i != label_idx]
    x = _csv_features(path, table, lines, col_ids, names)
    if x.shape[1] == 0:
        raise DataError(f"{path}: no feature columns left after removing the label column")
    _check_csv_finite(path, x, table, lines, col_ids)
    labels = _csv_labels(labels_raw)
    label_name = None
    if label_idx is not None:
        label_name = header[label_idx] if header is not None else f"column {label_idx}"
        if label_column == AUTO_LABEL and labels is not None:
            _check_auto_labels(path, label_name, labels)
    return x, labels, None, None, label_name


def _check_file_options(path: Path, label_column: str | int | None, scale: str | None) -> str:
    """The scale to use (default "minmax"), after rejecting files and options that cannot
    work, before any (possibly large) file is read."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DataError(
            f"{path}: unsupported file type {path.suffix or '(no extension)'!r}; use .npy "
            "(x only), .npz (x and y arrays) or .csv (numbers, optional header)"
        )
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty (0 bytes); it holds no data")
    if label_column not in (None, AUTO_LABEL) and suffix != ".csv":
        raise ConfigError(
            f"{path}: label_column applies to .csv files only; store labels as y in a .npz"
        )
    scale = scale or "minmax"
    if scale == "unit":
        raise ConfigError(
            f"{path}: scale='unit' is for the named image datasets (pixels/255); use "
            "'minmax', 'standard' or 'none' for your own arrays"
        )
    return scale


def _read_raw(path: Path, label_column: str | int | None):  # noqa: ANN202
    """(x, y, x_test, y_test, label column name) from the reader for the file's suffix."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return (*_read_npy(path), None)
    if suffix == ".npz":
        return (*_read_npz(path), None)
    return _read_csv(path, label_column)


def _test_labels(
    yt_raw: np.ndarray | None, x_te: np.ndarray, class_names: tuple[str, ...] | None, src: str
) -> np.ndarray | None:
    """The file's y_test as class indices, checked to use the same string classes as y_train
    (else the indices would mean different classes) and to match x_test's length."""
    if yt_raw is None:
        return None
    y_te, te_names = _as_labels(yt_raw, f"{src} (y_test)")
    if te_names is not None and te_names != class_names:
        raise DataError(
            f"{src}: y_test has string classes {te_names} but y_train has "
            f"{class_names}; store integer labels instead"
        )
    if len(y_te) != len(x_te):
        raise DataError(
            f"{src}: x_test has {len(x_te)} rows but y_test {len(y_te)} labels; they "
            "must have the same length"
        )
    return y_te


def _own_test_parts(
    x: np.ndarray,
    y: np.ndarray | None,
    raw_test: tuple[np.ndarray, np.ndarray | None],
    class_names: tuple[str, ...] | None,
    n_val: int,
    seed: int,
    src: str,
) -> tuple[list[tuple[np.ndarray, np.ndarray | None, np.ndarray]], tuple[int, int] | None]:
    """(train, val, test) parts as (x, y, source rows) and the test images' shape when the
    file defines its own test split (x_test): only val is carved out of train."""
    xt_raw, yt_raw = raw_test
    x_te, te_shape = _as_features(np.asarray(xt_raw), f"{src} (x_test)")
    if x_te.shape[1] != x.shape[1]:
        raise DataError(
            f"{src}: x_test has {x_te.shape[1]} features per row but x_train has "
            f"{x.shape[1]}; they must match"
        )
    y_te = _test_labels(yt_raw, x_te, class_names, src)
    if (y is None) != (y_te is None):
        y = y_te = None  # labels for one side only are not usable for evaluation
    tr, va, _ = split_indices(len(x), n_val, 0, y, seed, src)
    parts = [
        (x[tr], y[tr] if y is not None else None, tr),
        (x[va], y[va] if y is not None else None, va),
        (x_te, y_te, np.arange(len(x_te), dtype=np.int64)),
    ]
    return parts, te_shape


def load_array_file(
    path: Path,
    *,
    val_size: int | float | None,
    test_size: int | float | None,
    scale: str | None,
    label_column: str | int | None,
    limit: int | None,
    seed: int,
) -> Dataset:
    """Load a user file and split it (seeded, stratified when labelled) and scale it
    (default "minmax", fitted on the training split, so BCE-style losses work)."""
    scale = _check_file_options(path, label_column, scale)
    x_raw, y_raw, xt_raw, yt_raw, label_name = _read_raw(path, label_column)

    src = str(path)
    x, image_shape = _as_features(np.asarray(x_raw), src)
    y, class_names = _as_labels(y_raw, src) if y_raw is not None else (None, None)
    if y is not None and len(y) != len(x):
        raise DataError(
            f"{src}: {len(x)} rows of data but {len(y)} labels; they must have the same length"
        )
    n = len(x)
    n_val = resolve_count(val_size, n, 0.1, "val_size")
    if xt_raw is not None:
        if test_size is not None:
            raise ConfigError(
                f"{src}: test_size does not apply: the file's x_test array is the test split"
            )
        parts, te_shape = _own_test_parts(x, y, (xt_raw, yt_raw), class_names, n_val, seed, src)
        image_shape = image_shape if image_shape == te_shape else None
    else:
        n_test = resolve_count(test_size, n, 0.1, "test_size")
        tr, va, te = split_indices(n, n_val, n_test, y, seed, src)
        parts = [(x[i], y[i] if y is not None else None, i) for i in (tr, va, te)]
    train, others, fitted = apply_scale(parts[0][0], [p[0] for p in parts[1:]], scale)
    splits = [
        make_split(a, p[1], limit, rows=p[2]) for a, p in zip([train, *others], parts, strict=True)
    ]
    return Dataset(
        name=path.stem,
        train=splits[0],
        val=splits[1],
        test=splits[2],
        image_shape=image_shape,
        class_names=class_names,
        scale=scale,
        transform=fitted,
        own_test=xt_raw is not None,
        label_column=label_name,
    )
