"""Datasets for sparse autoencoders: named sets and user arrays, as one `Dataset` type.

>>> data = load_dataset("digits")
>>> data.train.x.shape, data.train.x.dtype
((1257, 64), dtype('float32'))

Every loader returns flat float32 (n, d) arrays split into train/val/test, so the trainer,
metrics and plots never care where the data came from. See `load_dataset` for the options.
"""

from __future__ import annotations

import os
from pathlib import Path

from sparseae.data.core import SCALES, Dataset, Split, check_limit
from sparseae.data.fetch import verify_checksums
from sparseae.data.named import NAMED_DATASETS, load_digits, load_idx_dataset, normalize_name
from sparseae.errors import ConfigError, DataError

__all__ = [
    "NAMED_DATASETS",
    "Dataset",
    "Split",
    "find_shared_data_dir",
    "load_dataset",
    "verify_checksums",
]


def _check_label_column(label_column: str | int | None, key: str) -> None:
    """Reject a `label_column` for a named set (only CSVs have columns) before anything is
    read or downloaded."""
    auto = label_column == "auto"  # "auto" means "a CSV column named label, if any"
    if label_column is not None and not auto and key in NAMED_DATASETS:  # digits is one
        raise ConfigError(f"label_column applies to .csv files only, not to {key}")


def _missing_file_error(path: Path, raw: str) -> DataError:
    """Why `raw` is neither a dataset name nor a data file, worded for the likely mistake: a
    folder, a mistyped path, or a mistyped dataset name."""
    if path.exists():
        return DataError(
            f"{path}: is a folder, not a data file; pass a .npy, .npz or .csv file, or a "
            f"dataset name ({', '.join(NAMED_DATASETS)}) with data_dir={str(path)!r}"
        )
    if path.suffix or os.sep in raw or "/" in raw:
        return DataError(f"{path}: no such file; check the path")
    return DataError(
        f"{raw!r}: unknown dataset; valid names are {', '.join(NAMED_DATASETS)}, or pass a "
        "path to a .npy, .npz or .csv file"
    )


def load_dataset(
    name_or_path: str | os.PathLike[str],
    *,
    data_dir: str | Path | None = None,
    download: bool = True,
    val_size: int | float | None = None,
    test_size: int | float | None = None,
    scale: str | None = None,
    label_column: str | int | None = None,
    limit: int | None = None,
    seed: int = 0,
) -> Dataset:
    """Load a named dataset or a user file as a train/val/test `Dataset`.

    Names: "digits" (scikit-learn, bundled; stratified 70/10/20 split, x/16), "mnist",
    "fashion-mnist", "kmnist" (IDX files from `data_dir`, `$SPARSEAE_DATA`, the cache or
    `/usr/share/datasets`, else downloaded with MD5 checks; x/255; the first `val_size`
    (default 5,000) training images are the validation set; test is t10k). Otherwise a path
    to `.npy`, `.npz` or `.csv` (split randomly with `seed`, default 10% val / 10% test,
    stratified when labelled; scaled "minmax" by default, fitted on train).

    `val_size`/`test_size`: rows or a fraction. `scale`: "unit" (named sets), "minmax",
    "standard" or "none", fitted on train. `limit`: the first N rows of each split.
    `label_column` (CSV): name, index, None, or "auto" (a column headed label/target/class/y).
    Splits keep source `rows`. Raises `DataError` (bad data) or `ConfigError` (bad options).
    """
    check_limit(limit)
    if scale is not None and scale not in SCALES:
        raise ConfigError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    raw = os.fspath(name_or_path)
    key = normalize_name(raw)
    _check_label_column(label_column, key)
    if key == "digits":
        return load_digits(
            val_size=val_size, test_size=test_size, scale=scale or "unit", limit=limit, seed=seed
        )
    if key in NAMED_DATASETS:
        return load_idx_dataset(
            key,
            data_dir=data_dir,
            download=download,
            val_size=val_size,
            test_size=test_size,
            scale=scale or "unit",
            limit=limit,
        )
    path = Path(raw).expanduser()
    if not path.is_file():
        raise _missing_file_error(path, raw)
    from sparseae.data.arrays import load_array_file

    return load_array_file(
        path,
        val_size=val_size,
        test_size=test_size,
        scale=scale,
        label_column=label_column,
        limit=limit,
        seed=seed,
    )


def find_shared_data_dir() -> Path | None:
    """The shared reference-data folder for tests and benchmarks, or None.

    `$SPARSEAE_TEST_DATA` when set (and a folder), else `<repo root>/../shared/data` (or
    `<repo root>/shared/data`) when it exists. Tests skip cleanly on machines without it
    instead of trying to download.
    """
    env = os.environ.get("SPARSEAE_TEST_DATA")
    if env:
        p = Path(env).expanduser()
        return p if p.is_dir() else None
    root = Path(__file__).resolve().parents[3]
    if not (root / "pyproject.toml").is_file():
        return None  # installed package, not a checkout: no repo-relative folder
    for cand in (root.parent / "shared" / "data", root / "shared" / "data"):
        if cand.is_dir():
            return cand
    return None
