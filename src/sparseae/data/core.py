"""The `Split`/`Dataset` containers and the split, scale and limit steps every loader shares.

One place for these so the named datasets and user files behave the same way: scaling is
always fitted on the training split only (fitting on val/test would leak them into training),
and every returned array is a fresh C-contiguous float32 array that the trainer can hand to
`torch.from_numpy` without copies or read-only warnings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sparseae.errors import ConfigError, DataError

SCALES: tuple[str, ...] = ("unit", "minmax", "standard", "none")


#: the names `Dataset.select` takes: the three splits, and "all" (every row, in file order)
SPLIT_CHOICES: tuple[str, ...] = ("train", "val", "test", "all")


@dataclass(frozen=True)
class Split:
    """One split: `x` float32 (n, d) flat (images flattened row-major), `y` int64 (n,) or None.

    `rows` (int64 (n,) or None) are the 0-based positions of these rows in their source (the
    row of a user file, the image of an IDX file), so results can be keyed by the user's own
    row numbers rather than by a position in a shuffled split. None: positions 0..n-1.
    """

    x: np.ndarray
    y: np.ndarray | None = None
    rows: np.ndarray | None = None

    def __post_init__(self) -> None:
        # Catch a mismatched pair where it is made, not as an index error deep in training.
        if self.x.ndim != 2:
            raise DataError(f"Split.x must be 2-D (n, d), got shape {self.x.shape}")
        if self.y is not None and self.y.shape != (self.x.shape[0],):
            raise DataError(
                f"Split.y has shape {self.y.shape} but x has {self.x.shape[0]} rows; "
                "images and labels must have the same length"
            )
        if self.rows is not None and self.rows.shape != (self.x.shape[0],):
            raise DataError(
                f"Split.rows has shape {self.rows.shape} but x has {self.x.shape[0]} rows; "
                "give one source row number per row"
            )

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def row_numbers(self) -> np.ndarray:
        """`rows`, or 0..n-1 for a split made without them."""
        return self.rows if self.rows is not None else np.arange(len(self), dtype=np.int64)


@dataclass(frozen=True)
class Dataset:
    """A train/val/test triple plus what is needed to show and interpret it.

    `val`/`test` may be empty Splits (0 rows, same d). `scale` records how `x` was scaled
    ("unit", "minmax", "standard" or "none") so reports and plots can say so. `own_test`:
    the test rows come from a file (or array) of their own (t10k, an .npz's x_test), so their
    `rows` number that file, and train/val rows number the training file.
    `label_column`: the CSV column the labels were read from (None: no CSV column).
    """

    name: str
    train: Split
    val: Split
    test: Split
    image_shape: tuple[int, int] | None = None
    class_names: tuple[str, ...] | None = None
    scale: str = "none"
    #: the fitted scaling as (shift, scale, clip or None) for `InputTransform.set`: what a
    #: model trained on this data must apply to raw inputs (None: nothing was fitted)
    transform: tuple[Any, Any, Any] | None = None
    own_test: bool = False
    label_column: str | None = None

    @property
    def d_in(self) -> int:
        """Input dimension (pixels per image, columns per row)."""
        return int(self.train.x.shape[1])

    @property
    def n_classes(self) -> int | None:
        """Number of classes: from `class_names`, else max label + 1, else None (unlabelled)."""
        if self.class_names is not None:
            return len(self.class_names)
        ys = [s.y for s in (self.train, self.val, self.test) if s.y is not None and len(s.y)]
        if not ys:
            return None
        return int(max(int(y.max()) for y in ys)) + 1

    def select(self, which: str) -> tuple[Split, np.ndarray]:
        """(rows, the split name of each row) for "train", "val", "test" or "all".

        "all" is every row in source order: sorted by row number (the training file's rows,
        then the test file's when `own_test`), so output row i is the file's row i when the
        file was split by `split_indices` and no `limit` cut the splits.
        """
        if which not in SPLIT_CHOICES:
            raise ConfigError(f"unknown split {which!r}; choose one of {', '.join(SPLIT_CHOICES)}")
        if which != "all":
            split = getattr(self, which)
            return split, np.full(len(split), which, dtype="<U5")
        parts = [("train", self.train), ("val", self.val), ("test", self.test)]
        rows = np.concatenate([s.row_numbers() for _, s in parts])
        names = np.concatenate([np.full(len(s), n, dtype="<U5") for n, s in parts])
        later_file = (names == "test") if self.own_test else np.zeros(len(rows), dtype=bool)
        order = np.lexsort((rows, later_file))
        x = np.concatenate([s.x for _, s in parts])[order]
        # labels only when every non-empty split has them (else they cannot line up)
        filled = [s for _, s in parts if len(s)]
        y = None
        if filled and all(s.y is not None for s in filled):
            y = np.concatenate([s.y for s in filled if s.y is not None])[order]
        return Split(np.ascontiguousarray(x), y, rows[order]), names[order]


def resolve_count(size: int | float | None, n: int, default: int | float, what: str) -> int:
    """Turn a count or a fraction of `n` into a row count, rejecting nonsense early."""
    if size is None:
        size = default
    if isinstance(size, bool) or not isinstance(size, int | float | np.integer | np.floating):
        raise ConfigError(f"{what} must be a count or a fraction in [0, 1), got {size!r}")
    if isinstance(size, float | np.floating):
        if not 0.0 <= size < 1.0:
            raise ConfigError(
                f"{what}={size} must be a fraction in [0, 1) or a whole number of rows"
            )
        return int(round(float(size) * n))
    if size < 0:
        raise ConfigError(f"{what}={size} must not be negative")
    return int(size)


def split_indices(
    n: int,
    n_val: int,
    n_test: int,
    y: np.ndarray | None,
    seed: int,
    source: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random (stratified when labels allow it) train/val/test row indices.

    Stratified so that small sets keep every class in each split; when a class is too rare to
    stratify (fewer than 2 rows, or fewer test rows than classes) it falls back to a plain
    seeded permutation rather than failing.
    """
    if n_val + n_test >= n:
        raise ConfigError(
            f"{source}: val_size ({n_val} rows) + test_size ({n_test} rows) leave no training "
            f"rows out of {n}; use smaller sizes"
        )
    idx = np.arange(n)

    def _cut(pool: np.ndarray, k: int, salt: int) -> tuple[np.ndarray, np.ndarray]:
        if k == 0:
            return pool, pool[:0]
        from sklearn.model_selection import train_test_split

        strat = y[pool] if y is not None else None
        try:
            rest, taken = train_test_split(
                pool, test_size=k, random_state=seed + salt, stratify=strat
            )
        except ValueError:
            rest, taken = train_test_split(pool, test_size=k, random_state=seed + salt)
        return np.sort(rest), np.sort(taken)

    rest, test = _cut(idx, n_test, 0)
    train, val = _cut(rest, n_val, 1)
    return train, val, test


def check_finite(x: np.ndarray, source: str, where: str = "row {row}, column {col}") -> None:
    """DataError with the count and first location of NaN/inf values: a single NaN turns the
    loss into NaN, and it is far easier to fix in the file than to debug in training."""
    if not np.issubdtype(x.dtype, np.floating):
        return
    bad = ~np.isfinite(x)
    if not bad.any():
        return
    n_nan = int(np.isnan(x).sum())
    n_inf = int(bad.sum()) - n_nan
    first = np.argwhere(bad)[0]
    row = int(first[0])
    col = int(first[1]) if len(first) > 1 else 0
    loc = where.format(row=row, col=col)
    raise DataError(
        f"{source}: {n_nan} NaN and {n_inf} inf value(s); the first ({x[tuple(first)]}) is at "
        f"{loc}. Fix: remove or impute them before loading"
    )


def apply_scale(
    train: np.ndarray, others: list[np.ndarray], mode: str
) -> tuple[np.ndarray, list[np.ndarray], tuple[Any, Any, Any] | None]:
    """Scale float32 arrays with statistics fitted on `train` only.

    "minmax": (x - min) / (max - min) per column, constant columns -> 0; val/test are clipped
    to [0, 1] so BCE-style losses (the reason minmax is the user-array default) stay valid.
    "standard": (x - mean) / std per column, zero-std columns -> 0. "unit"/"none": unchanged
    (the loader already applied the unit scaling).
    """
    if mode in ("unit", "none"):
        return train, others, None
    if mode == "minmax":
        lo = train.min(axis=0) if len(train) else np.zeros(train.shape[1], np.float32)
        span = (train.max(axis=0) if len(train) else lo) - lo
        ok = span > 0
        inv = np.where(ok, 1.0 / np.where(ok, span, 1.0), 0.0).astype(np.float32)

        def f(a: np.ndarray, clip: bool) -> np.ndarray:
            out = (a - lo) * inv
            if clip:
                np.clip(out, 0.0, 1.0, out=out)
            return np.ascontiguousarray(out, dtype=np.float32)

        return f(train, False), [f(a, True) for a in others], (lo, inv, (0.0, 1.0))
    if mode == "standard":
        mean = train.mean(axis=0, dtype=np.float64)
        std = train.std(axis=0, dtype=np.float64)
        ok = std > 0
        inv = np.where(ok, 1.0 / np.where(ok, std, 1.0), 0.0).astype(np.float32)
        mean32 = mean.astype(np.float32)

        def g(a: np.ndarray) -> np.ndarray:
            return np.ascontiguousarray((a - mean32) * inv, dtype=np.float32)

        return g(train), [g(a) for a in others], (mean32, inv, None)
    raise ConfigError(f"unknown scale {mode!r}; choose one of {', '.join(SCALES)}")


def make_split(
    x: np.ndarray, y: np.ndarray | None, limit: int | None, rows: np.ndarray | None = None
) -> Split:
    """A `Split` of the first `limit` rows as C-contiguous float32 / int64 arrays (x must be
    freshly computed by the caller: it is used as is when already float32); `rows` are the
    rows' positions in their source, cut with them."""
    if limit is not None and limit < len(x):
        # Copy the kept rows so the full-size array they came from can be freed.
        x = x[:limit].copy()
        y = y[:limit] if y is not None else None
        rows = rows[:limit] if rows is not None else None
    # Callers pass freshly computed arrays, so no defensive copy when already float32/C-order.
    xs = np.ascontiguousarray(x, dtype=np.float32)
    ys = np.array(y, dtype=np.int64, copy=True) if y is not None else None
    rs = np.array(rows, dtype=np.int64, copy=True) if rows is not None else None
    return Split(xs, ys, rs)


def check_limit(limit: int | None) -> None:
    """`limit` must be a positive row count (0 rows would only fail later, less clearly)."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"limit={limit!r} must be a positive number of rows or None")
