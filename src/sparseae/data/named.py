"""The named datasets: scikit-learn's bundled `digits` and the MNIST-like IDX sets.

MNIST-like sets split as Géron's Keras autoencoder examples do (Hands-On Machine Learning,
ch. 17): the first 5,000 training images are the validation set (a fixed, documented split,
so results are comparable across runs and with the book), the remaining 55,000 train, and
the 10,000 t10k images are the test set. Each split's `rows` number the images in their IDX
file (train and val: the training file; test: t10k), digits' rows index scikit-learn's array.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sparseae.data import fetch, idx
from sparseae.data.core import Dataset, apply_scale, make_split, resolve_count, split_indices
from sparseae.errors import ConfigError, DataError

NAMED_DATASETS: tuple[str, ...] = ("digits", "mnist", "fashion-mnist", "kmnist")

DIGIT_NAMES: tuple[str, ...] = tuple(str(i) for i in range(10))
CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "digits": DIGIT_NAMES,
    "mnist": DIGIT_NAMES,
    "fashion-mnist": (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
    # Romanised: the hiragana (お き す つ な は ま や れ を) are missing from most plot fonts.
    "kmnist": ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
}

MNIST_VAL_SIZE = 5000


def normalize_name(name: str) -> str:
    """'Fashion_MNIST' -> 'fashion-mnist', so spelling variants of a name all work."""
    return name.strip().lower().replace("_", "-")


def _finish(
    name: str,
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    divisor: float,
    scale: str,
    limit: int | None,
    image_shape: tuple[int, int],
) -> Dataset:
    """Float conversion, scaling (fitted on train) and `limit`, in the cheapest order;
    `parts` are (x, y, source rows) of train, val and test."""
    if scale in ("unit", "none") and limit is not None:
        # Nothing is fitted: cut before converting so a quick test never converts 60k images.
        parts = [(x[:limit], y[:limit], r[:limit]) for x, y, r in parts]
    xs = [x.astype(np.float32) for x, _, _ in parts]
    if scale != "none":
        for x in xs:
            x /= np.float32(divisor)
    train, others, fitted = apply_scale(xs[0], xs[1:], scale)
    splits = [
        make_split(x, y, limit, rows=r)
        for x, (_, y, r) in zip([train, *others], parts, strict=True)
    ]
    return Dataset(
        name=name,
        train=splits[0],
        val=splits[1],
        test=splits[2],
        image_shape=image_shape,
        class_names=CLASS_NAMES[name],
        scale=scale,
        transform=fitted,
        own_test=name != "digits",
    )


def load_digits(
    *,
    val_size: int | float | None,
    test_size: int | float | None,
    scale: str,
    limit: int | None,
    seed: int,
) -> Dataset:
    """scikit-learn's 1,797 8x8 digits (bundled, no download); stratified 70/10/20 split."""
    from sklearn.datasets import load_digits as _sk_load_digits

    d = _sk_load_digits()
    x = np.asarray(d.data, dtype=np.float32)
    y = np.asarray(d.target, dtype=np.int64)
    n = len(x)
    n_val = resolve_count(val_size, n, 0.1, "val_size")
    n_test = resolve_count(test_size, n, 0.2, "test_size")
    tr, va, te = split_indices(n, n_val, n_test, y, seed, "digits")
    parts = [(x[tr], y[tr], tr), (x[va], y[va], va), (x[te], y[te], te)]
    return _finish("digits", parts, 16.0, scale, limit, (8, 8))


_TRAIN_X, _TRAIN_Y = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
_TEST_X, _TEST_Y = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"


def _load_idx_files(name: str, files: dict[str, Path]) -> dict[str, np.ndarray]:
    """The four IDX arrays by file stem, checked to be the right kind (images 3-D, labels
    1-D, bytes) so a swapped or foreign file fails with its path, not deep in training."""
    arrays = {stem: idx.load_idx(files[stem]) for stem in (_TRAIN_X, _TRAIN_Y, _TEST_X, _TEST_Y)}
    for stem, nd in ((_TRAIN_X, 3), (_TRAIN_Y, 1), (_TEST_X, 3), (_TEST_Y, 1)):
        arr = arrays[stem]
        if arr.ndim != nd or arr.dtype != np.uint8:
            raise DataError(
                f"{files[stem]}: expected a {nd}-D unsigned-byte IDX file, got {arr.ndim}-D "
                f"{arr.dtype}; the file is not the {name} {stem} file"
            )
    return arrays


def _check_idx_pairs(files: dict[str, Path], arrays: dict[str, np.ndarray]) -> None:
    """Images and labels line up and train/test images share a shape: catches mixed-up or
    truncated downloads that are each valid IDX files on their own."""
    for ik, lk in ((_TRAIN_X, _TRAIN_Y), (_TEST_X, _TEST_Y)):
        img, lab = arrays[ik], arrays[lk]
        if len(img) != len(lab):
            raise DataError(
                f"{files[ik]}: {len(img)} images but {files[lk]} has {len(lab)} labels; "
                "images and labels must have the same length (mixed-up or truncated files)"
            )
    x_tr, x_te = arrays[_TRAIN_X], arrays[_TEST_X]
    if x_tr.shape[1:] != x_te.shape[1:]:
        raise DataError(
            f"{files[_TEST_X]}: images are {x_te.shape[1:]} but the training "
            f"images are {x_tr.shape[1:]}; the files come from different datasets"
        )


def load_idx_dataset(
    name: str,
    *,
    data_dir: str | Path | None,
    download: bool,
    val_size: int | float | None,
    test_size: int | float | None,
    scale: str,
    limit: int | None,
) -> Dataset:
    """An MNIST-like set from its four IDX files; the first `val_size` training images are
    the validation set (default 5,000; 0 keeps all 60,000 for training)."""
    if test_size is not None:
        raise ConfigError(
            f"test_size does not apply to {name}: its test split is the fixed t10k file"
        )
    files = fetch.locate(name, data_dir, download)
    arrays = _load_idx_files(name, files)
    _check_idx_pairs(files, arrays)
    x_tr, y_tr = arrays[_TRAIN_X], arrays[_TRAIN_Y]
    x_te, y_te = arrays[_TEST_X], arrays[_TEST_Y]
    n = len(x_tr)
    n_val = resolve_count(val_size, n, MNIST_VAL_SIZE, "val_size")
    if n_val >= n:
        raise ConfigError(
            f"val_size={n_val} leaves no training images: {files[_TRAIN_X]} "
            f"holds {n}; use a smaller val_size"
        )
    h, w = int(x_tr.shape[1]), int(x_tr.shape[2])
    flat_tr = x_tr.reshape(n, h * w)
    flat_te = x_te.reshape(len(x_te), h * w)
    parts = [
        (flat_tr[n_val:], y_tr[n_val:], np.arange(n_val, n, dtype=np.int64)),
        (flat_tr[:n_val], y_tr[:n_val], np.arange(n_val, dtype=np.int64)),
        (flat_te, y_te, np.arange(len(flat_te), dtype=np.int64)),
    ]
    return _finish(name, parts, 255.0, scale, limit, (h, w))
