"""Tests for sparseae.data: named datasets, lookup/download (never the network), user files
and every bad-data error. Small IDX/CSV/NPY files are generated in tmp_path; the real MNIST
and Fashion-MNIST come from the shared reference folder and are skipped without it."""

from __future__ import annotations

import gzip
import hashlib
import socket
import struct
from pathlib import Path

import numpy as np
import pytest

from sparseae.data import (
    NAMED_DATASETS,
    Dataset,
    Split,
    fetch,
    find_shared_data_dir,
    idx,
    load_dataset,
    verify_checksums,
)
from sparseae.errors import ConfigError, DataError

IMG, LBL = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
TIMG, TLBL = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"


# ---------------------------------------------------------------------------- fixtures / helpers


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test may reach the network or find data in the real cache/env/Debian folders."""

    def _no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("a test tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", _no_network)
    monkeypatch.setattr(socket, "create_connection", _no_network)
    monkeypatch.delenv("SPARSEAE_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setattr(fetch, "SYSTEM_DATASETS_DIR", tmp_path / "usr-share-datasets")


def idx_bytes(arr: np.ndarray) -> bytes:
    """Uncompressed IDX bytes of a uint8 array (the MNIST format)."""
    head = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return head + arr.astype(np.uint8).tobytes()


def write_idx_set(
    folder: Path, n_train: int = 40, n_test: int = 12, hw: tuple[int, int] = (4, 3), seed: int = 0
) -> dict[str, bytes]:
    """Write the four gzip IDX files of a tiny MNIST-like set; return their raw bytes."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    raw = {
        IMG: idx_bytes(rng.integers(0, 256, (n_train, *hw), dtype=np.uint8)),
        LBL: idx_bytes(np.arange(n_train, dtype=np.uint8) % 10),
        TIMG: idx_bytes(rng.integers(0, 256, (n_test, *hw), dtype=np.uint8)),
        TLBL: idx_bytes(np.arange(n_test, dtype=np.uint8) % 10),
    }
    for stem, data in raw.items():
        (folder / f"{stem}.gz").write_bytes(gzip.compress(data))
    return raw


def assert_data_error(exc: pytest.ExceptionInfo[DataError], *fragments: str) -> None:
    msg = str(exc.value)
    assert "\n" not in msg, msg
    for frag in fragments:
        assert frag in msg, f"{frag!r} not in {msg!r}"


# -------------------------------------------------------------------------------------- digits


def test_digits_shapes_range_and_split() -> None:
    d = load_dataset("digits")
    assert isinstance(d, Dataset) and d.name == "digits"
    assert len(d.train) + len(d.val) + len(d.test) == 1797
    assert (len(d.train), len(d.val), len(d.test)) == (1258, 180, 359)
    assert d.d_in == 64 and d.image_shape == (8, 8) and d.n_classes == 10
    assert d.class_names == tuple("0123456789") and d.scale == "unit"
    for s in (d.train, d.val, d.test):
        assert s.x.dtype == np.float32 and s.x.flags.c_contiguous and s.x.flags.writeable
        assert s.y is not None and s.y.dtype == np.int64
        assert s.x.min() >= 0.0 and s.x.max() <= 1.0
    assert d.train.x.max() == 1.0


def test_digits_deterministic_and_stratified() -> None:
    a, b = load_dataset("digits"), load_dataset("digits")
    np.testing.assert_array_equal(a.train.x, b.train.x)
    np.testing.assert_array_equal(a.test.y, b.test.y)
    c = load_dataset("digits", seed=1)
    assert not np.array_equal(a.train.x, c.train.x)
    total = np.bincount(np.concatenate([a.train.y, a.val.y, a.test.y]), minlength=10) / 1797
    for s in (a.train, a.val, a.test):
        frac = np.bincount(s.y, minlength=10) / len(s)
        assert np.abs(frac - total).max() < 0.02


def test_digits_fresh_arrays_limit_and_scales() -> None:
    a = load_dataset("digits")
    a.train.x[:] = 99.0  # callers may modify what they get without affecting later loads
    assert load_dataset("digits").train.x.max() == 1.0
    lim = load_dataset("digits", limit=50)
    assert (len(lim.train), len(lim.val), len(lim.test)) == (50, 50, 50)
    st = load_dataset("digits", scale="standard")
    mean, std = st.train.x.mean(0), st.train.x.std(0)
    assert np.abs(mean).max() < 1e-4
    assert np.all((np.abs(std - 1) < 1e-3) | (std == 0))
    raw = load_dataset("digits", scale="none")
    assert raw.train.x.max() == 16.0 and raw.scale == "none"


# ------------------------------------------------------------------------- real MNIST / Fashion


@pytest.fixture(scope="module")
def shared_dir() -> Path:
    d = find_shared_data_dir()
    if d is None or not (d / "mnist").is_dir():
        pytest.skip("shared reference data (../shared/data or $SPARSEAE_TEST_DATA) not present")
    return d


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_real_mnist_like(shared_dir: Path, name: str) -> None:
    d = load_dataset(name, data_dir=shared_dir)
    assert (len(d.train), len(d.val), len(d.test)) == (55000, 5000, 10000)
    assert d.d_in == 784 and d.image_shape == (28, 28) and d.n_classes == 10
    assert d.train.x.dtype == np.float32 and d.train.x.flags.c_contiguous
    assert 0.0 <= d.train.x.min() and d.train.x.max() <= 1.0
    raw_x = idx.load_idx(shared_dir / name / f"{IMG}.gz")
    raw_y = idx.load_idx(shared_dir / name / f"{LBL}.gz")
    # The first 5,000 training images are the validation set, the next one starts train.
    np.testing.assert_array_equal(d.val.x[0], raw_x[0].reshape(-1) / np.float32(255))
    np.testing.assert_array_equal(d.val.x[-1], raw_x[4999].reshape(-1) / np.float32(255))
    np.testing.assert_array_equal(d.train.x[0], raw_x[5000].reshape(-1) / np.float32(255))
    np.testing.assert_array_equal(d.val.y, raw_y[:5000])
    for s in (d.train, d.val, d.test):
        assert s.y.min() == 0 and s.y.max() == 9
    full = load_dataset(name, data_dir=shared_dir, val_size=0)
    assert len(full.train) == 60000 and len(full.val) == 0 and full.val.x.shape == (0, 784)
    if name == "fashion-mnist":
        assert d.class_names[0] == "T-shirt/top" and d.class_names[9] == "Ankle boot"


def test_real_checksums(shared_dir: Path) -> None:
    for name in ("mnist", "fashion-mnist"):
        sums = verify_checksums(shared_dir / name, name)
        assert sums[f"{IMG}.gz"] == fetch.CHECKSUMS[name][IMG]
        assert len(sums) == 4


# ------------------------------------------------------------------------------- lookup order


def test_lookup_env_var_parent_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    raw = write_idx_set(tmp_path / "env" / "mnist")
    monkeypatch.setenv("SPARSEAE_DATA", str(tmp_path / "env"))
    d = load_dataset("mnist", val_size=5, download=False)
    assert (len(d.train), len(d.val), len(d.test)) == (35, 5, 12)
    assert d.image_shape == (4, 3) and d.d_in == 12
    first = np.frombuffer(raw[IMG], np.uint8, offset=16)[:12] / np.float32(255)
    np.testing.assert_array_equal(d.val.x[0], first)


def test_lookup_data_dir_wins_over_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    write_idx_set(tmp_path / "env" / "kmnist", n_train=30)
    write_idx_set(tmp_path / "parent" / "kmnist", n_train=20)
    monkeypatch.setenv("SPARSEAE_DATA", str(tmp_path / "env"))
    d = load_dataset("kmnist", data_dir=tmp_path / "parent", val_size=0, download=False)
    assert len(d.train) == 20 and d.class_names[0] == "o"
    # data_dir pointing straight at the folder also works
    d2 = load_dataset("kmnist", data_dir=tmp_path / "parent" / "kmnist", val_size=2)
    assert len(d2.train) == 18


def test_lookup_cache_folder(tmp_path: Path) -> None:
    write_idx_set(fetch.cache_dir("fashion-mnist"))
    d = load_dataset("fashion-mnist", val_size=0.25, download=False)
    assert (len(d.train), len(d.val)) == (30, 10)


def test_not_found_lists_every_place(tmp_path: Path) -> None:
    with pytest.raises(DataError) as exc:
        load_dataset("mnist", data_dir=tmp_path / "nowhere", download=False)
    assert_data_error(
        exc,
        str(tmp_path / "nowhere"),
        str(fetch.cache_dir("mnist")),
        str(tmp_path / "usr-share-datasets" / "mnist"),
        "data_dir=",
        "SPARSEAE_DATA",
    )


def test_find_shared_data_dir_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SPARSEAE_TEST_DATA", str(tmp_path))
    assert find_shared_data_dir() == tmp_path
    monkeypatch.setenv("SPARSEAE_TEST_DATA", str(tmp_path / "missing"))
    assert find_shared_data_dir() is None


# ------------------------------------------------------------------------ download (no network)


@pytest.fixture
def mirror(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    """A file:// mirror of a tiny mnist with its checksum table, instead of the internet."""
    folder = tmp_path / "mirror"
    raw = write_idx_set(folder, n_train=30, n_test=10)
    monkeypatch.setitem(fetch.MIRRORS, "mnist", (folder.as_uri() + "/",))
    sums = {stem: hashlib.md5(data).hexdigest() for stem, data in raw.items()}
    monkeypatch.setitem(fetch.CHECKSUMS, "mnist", sums)
    return folder, raw


def test_download_into_cache_with_md5(mirror: tuple[Path, dict[str, bytes]]) -> None:
    d = load_dataset("mnist", val_size=5)
    assert (len(d.train), len(d.val), len(d.test)) == (25, 5, 10)
    cache = fetch.cache_dir("mnist")
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        f"{s}.gz" for s in (IMG, LBL, TIMG, TLBL)
    )
    assert len(verify_checksums(cache, "mnist")) == 4


def test_download_checksum_mismatch_leaves_nothing(
    mirror: tuple[Path, dict[str, bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = dict(fetch.CHECKSUMS["mnist"], **{TIMG: "0" * 32})
    monkeypatch.setitem(fetch.CHECKSUMS, "mnist", bad)
    with pytest.raises(DataError) as exc:
        load_dataset("mnist", val_size=5)
    assert_data_error(exc, "checksum mismatch", TIMG, "data_dir=")
    cache = fetch.cache_dir("mnist")
    assert not (cache / f"{TIMG}.gz").exists()
    assert not list(cache.glob("*.part"))


def test_download_network_failure_is_data_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import urllib.error

    def refuse(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(fetch.urllib.request, "urlopen", refuse)
    with pytest.raises(DataError) as exc:
        load_dataset("fashion-mnist")
    assert_data_error(exc, "download failed", "no route to host", "SPARSEAE_DATA")
    assert not list(fetch.cache_dir("fashion-mnist").glob("*"))


def test_verify_checksums_mismatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_idx_set(tmp_path / "m")
    with pytest.raises(DataError) as exc:
        verify_checksums(tmp_path / "m", "mnist")
    assert_data_error(exc, "checksum mismatch", "train-images-idx3-ubyte.gz")


# ------------------------------------------------------------------------ bad IDX/gzip files


def _load_small(folder: Path) -> Dataset:
    return load_dataset("mnist", data_dir=folder, val_size=2, download=False)


def test_truncated_gzip(tmp_path: Path) -> None:
    write_idx_set(tmp_path / "mnist")
    p = tmp_path / "mnist" / f"{IMG}.gz"
    p.write_bytes(p.read_bytes()[:-30])
    with pytest.raises(DataError) as exc:
        _load_small(tmp_path)
    assert_data_error(exc, str(p), "truncated gzip")


def test_corrupt_gzip(tmp_path: Path) -> None:
    write_idx_set(tmp_path / "mnist")
    p = tmp_path / "mnist" / f"{TIMG}.gz"
    data = bytearray(p.read_bytes())
    data[15:60] = b"\xff" * 45
    p.write_bytes(bytes(data))
    with pytest.raises(DataError) as exc:
        _load_small(tmp_path)
    assert_data_error(exc, str(p), "gzip")


def test_not_gzip_at_all(tmp_path: Path) -> None:
    write_idx_set(tmp_path / "mnist")
    p = tmp_path / "mnist" / f"{LBL}.gz"
    p.write_bytes(b"<html>404 not found</html>")
    with pytest.raises(DataError) as exc:
        _load_small(tmp_path)
    assert_data_error(exc, str(p), "not a gzip file")


def test_bad_magic(tmp_path: Path) -> None:
    raw = write_idx_set(tmp_path / "mnist")
    p = tmp_path / "mnist" / f"{IMG}.gz"
    p.write_bytes(gzip.compress(b"\x12\x34" + raw[IMG][2:]))
    with pytest.raises(DataError) as exc:
        _load_small(tmp_path)
    assert_data_error(exc, str(p), "magic number")


def test_wrong_byte_count(tmp_path: Path) -> None:
    raw = write_idx_set(tmp_path / "mnist")
    p = tmp_path / "mnist" / f"{IMG}.gz"
    p.write_bytes(gzip.compress(raw[IMG][:-5]))
    with pytest.raises(DataError) as exc:
        _load_small(tmp_path)
    assert_data_error(exc, str(p), "wrong size")


def test_image_label_count_mismatch(tmp_path: Path) -> None:
    write_idx_set(tmp_path / "mnist", n_train=40)
    (tmp_path / "mnist" / f"{LBL}.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(39))))
    with pytest.raises(DataError) as exc:
        _load_small(tmp_path)
    assert_data_error(exc, f"{IMG}.gz", f"{LBL}.gz", "40 images", "39 labels")


def test_uncompressed_idx_files_accepted(tmp_path: Path) -> None:
    raw = write_idx_set(tmp_path / "gz")
    folder = tmp_path / "plain" / "mnist"
    folder.mkdir(parents=True)
    for stem, data in raw.items():
        (folder / stem).write_bytes(data)
    assert len(_load_small(tmp_path / "plain").train) == 38


def test_idx_cache_follows_file_changes(tmp_path: Path) -> None:
    write_idx_set(tmp_path / "mnist", n_train=40)
    assert len(_load_small(tmp_path).train) == 38
    write_idx_set(tmp_path / "mnist", n_train=30)
    assert len(_load_small(tmp_path).train) == 28


def test_val_size_too_large_and_test_size_rejected(tmp_path: Path) -> None:
    write_idx_set(tmp_path / "mnist", n_train=40)
    with pytest.raises(ConfigError, match="val_size"):
        load_dataset("mnist", data_dir=tmp_path)  # default 5000 > 40 images
    with pytest.raises(ConfigError, match="test_size"):
        load_dataset("mnist", data_dir=tmp_path, val_size=2, test_size=0.1)


# --------------------------------------------------------------------------------- user files


def test_csv_header_and_label_column_by_name(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 3))
    y = np.arange(100) % 2
    lines = ["a,label,b,c"] + [f"{r[0]},{t},{r[1]},{r[2]}" for r, t in zip(x, y, strict=True)]
    p = tmp_path / "table.csv"
    p.write_text("\n".join(lines) + "\n")
    d = load_dataset(str(p), label_column="label")
    assert (len(d.train), len(d.val), len(d.test)) == (80, 10, 10)
    assert d.d_in == 3 and d.n_classes == 2 and d.scale == "minmax" and d.image_shape is None
    assert d.name == "table" and d.train.y.dtype == np.int64
    assert np.bincount(d.test.y).tolist() == [5, 5]  # stratified
    # minmax fitted on train: train spans exactly [0, 1]; val/test use train's statistics
    assert d.train.x.min() == 0.0 and d.train.x.max() == 1.0
    by_index = load_dataset(p, label_column=1)
    np.testing.assert_array_equal(by_index.train.x, d.train.x)


def test_csv_without_header_string_labels(tmp_path: Path) -> None:
    p = tmp_path / "s.csv"
    p.write_text("".join(f"{i},{i * 2},{'cat' if i % 2 else 'dog'}\n" for i in range(20)))
    d = load_dataset(p, label_column=-1, scale="none", val_size=0, test_size=4)
    assert d.class_names == ("cat", "dog") and len(d.test) == 4 and d.d_in == 2


def test_npz_train_test_and_standard_scaling_fit_on_train(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x_train = rng.normal(5.0, 2.0, size=(200, 4)).astype(np.float32)
    x_train[:, 3] = 7.0  # a constant column -> 0, not NaN
    x_test = rng.normal(50.0, 2.0, size=(30, 4)).astype(np.float32)
    p = tmp_path / "arr.npz"
    np.savez(
        p, x_train=x_train, y_train=np.arange(200) % 4, x_test=x_test, y_test=np.arange(30) % 4
    )
    d = load_dataset(p, scale="standard", val_size=20)
    assert (len(d.train), len(d.val), len(d.test)) == (180, 20, 30)
    assert d.scale == "standard" and d.n_classes == 4
    assert np.abs(d.train.x[:, :3].mean(0)).max() < 1e-4
    assert np.abs(d.train.x[:, :3].std(0) - 1).max() < 1e-3
    assert np.all(d.train.x[:, 3] == 0) and np.all(d.test.x[:, 3] == 0)
    assert d.test.x[:, :3].mean() > 10  # test scaled with train's mean/std, not its own


def test_npy_images_minmax_and_split(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    arr = rng.integers(0, 200, size=(50, 5, 6)).astype(np.uint8)
    p = tmp_path / "imgs.npy"
    np.save(p, arr)
    d = load_dataset(p, val_size=0.2, test_size=5, seed=3)
    assert (len(d.train), len(d.val), len(d.test)) == (35, 10, 5)
    assert d.image_shape == (5, 6) and d.d_in == 30 and d.train.y is None and d.n_classes is None
    assert d.train.x.min() == 0.0 and d.train.x.max() == 1.0
    assert d.test.x.min() >= 0.0 and d.test.x.max() <= 1.0  # clipped to [0, 1] for BCE
    assert isinstance(d.test, Split)


def test_npz_x_y_keys(tmp_path: Path) -> None:
    p = tmp_path / "xy.npz"
    np.savez(p, data=np.ones((30, 2)), labels=np.arange(30) % 3)
    d = load_dataset(p, scale="none")
    assert len(d.train) + len(d.val) + len(d.test) == 30 and d.n_classes == 3


# ------------------------------------------------------------------------- bad user files


def test_nan_in_npy(tmp_path: Path) -> None:
    a = np.ones((10, 4))
    a[3, 2] = np.nan
    a[7, 0] = np.nan
    p = tmp_path / "nan.npy"
    np.save(p, a)
    with pytest.raises(DataError) as exc:
        load_dataset(p)
    assert_data_error(exc, str(p), "2 NaN", "row 3, column 2")


def test_inf_in_csv(tmp_path: Path) -> None:
    p = tmp_path / "inf.csv"
    p.write_text("x,y\n1,2\n3,inf\n5,6\n")
    with pytest.raises(DataError) as exc:
        load_dataset(p)
    assert_data_error(exc, str(p), "1 inf", "line 3, column 2")


def test_non_numeric_csv_cell(tmp_path: Path) -> None:
    p = tmp_path / "bad.csv"
    p.write_text("a,b,c\n1,2,3\n4,n/a,6\n7,8,9\n")
    with pytest.raises(DataError) as exc:
        load_dataset(p)
    assert_data_error(exc, str(p), "value 'n/a' at line 3", "column 2", "'b'")


def test_ragged_csv(tmp_path: Path) -> None:
    p = tmp_path / "ragged.csv"
    p.write_text("1,2,3\n4,5\n")
    with pytest.raises(DataError) as exc:
        load_dataset(p)
    assert_data_error(exc, str(p), "line 2")


@pytest.mark.parametrize("suffix", [".csv", ".npy", ".npz"])
def test_empty_file(tmp_path: Path, suffix: str) -> None:
    p = tmp_path / f"empty{suffix}"
    p.write_bytes(b"")
    with pytest.raises(DataError) as exc:
        load_dataset(p)
    assert_data_error(exc, str(p), "empty")


def test_zero_rows(tmp_path: Path) -> None:
    p = tmp_path / "zero.npy"
    np.save(p, np.zeros((0, 5)))
    with pytest.raises(DataError) as exc:
        load_dataset(p)
    assert_data_error(exc, str(p), "zero rows")
    h = tmp_path / "header_only.csv"
    h.write_text("a,b\n")
    with pytest.raises(DataError) as exc:
        load_dataset(h)
    assert_data_error(exc, str(h), "zero data rows")


def test_corrupt_npy(tmp_path: Path) -> None:
    p = tmp_path / "cut.npy"
    np.save(p, np.ones((100, 10)))
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(DataError) as exc:
        load_dataset(p)
    assert_data_error(exc, str(p))


def test_npz_length_mismatch_and_missing_key(tmp_path: Path) -> None:
    p = tmp_path / "mis.npz"
    np.savez(p, x=np.ones((10, 2)), y=np.zeros(9, dtype=int))
    with pytest.raises(DataError) as exc:
        load_dataset(p)
    assert_data_error(exc, str(p), "10 rows", "9 labels")
    q = tmp_path / "nokey.npz"
    np.savez(q, weights=np.ones((3, 3)))
    with pytest.raises(DataError) as exc:
        load_dataset(q)
    assert_data_error(exc, str(q), "weights", "x_train")


def test_unknown_extension(tmp_path: Path) -> None:
    p = tmp_path / "data.parquet"
    p.write_bytes(b"PAR1")
    with pytest.raises(DataError) as exc:
        load_dataset(p)
    assert_data_error(exc, str(p), ".parquet", ".npy", ".npz", ".csv")


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(DataError) as exc:
        load_dataset("cifar10")
    assert_data_error(exc, "cifar10", *NAMED_DATASETS, ".npy", ".npz", ".csv")
    with pytest.raises(DataError) as exc:
        load_dataset("missing/file.csv")
    assert_data_error(exc, "missing/file.csv", "no such file")


def test_bad_options() -> None:
    with pytest.raises(ConfigError):
        load_dataset("digits", scale="log")
    with pytest.raises(ConfigError):
        load_dataset("digits", limit=0)
    with pytest.raises(ConfigError):
        load_dataset("digits", val_size=1.5)
    with pytest.raises(ConfigError):
        load_dataset("digits", val_size=1000, test_size=900)


# --------------------------------------------------------- row numbers and label-column detection


def _labelled_csv(path: Path, header: str, n: int = 60) -> np.ndarray:
    """A CSV whose first column is 10*row, so each loaded row names the file row it came from."""
    rows = [f"{10 * i},{i % 3},{(i * 7) % 5}" for i in range(n)]
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return np.arange(n) * 10.0


def test_csv_splits_keep_file_rows_and_select_all_is_file_order(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    first = _labelled_csv(p, "a,label,b")
    d = load_dataset(p, label_column="label", scale="none", seed=4)
    for split in (d.train, d.val, d.test):
        np.testing.assert_array_equal(split.x[:, 0], first[split.rows])  # rows = file rows
        np.testing.assert_array_equal(split.y, split.rows % 3)
    assert not np.array_equal(d.train.rows, np.arange(len(d.train)))  # the split is shuffled
    every, names = d.select("all")
    np.testing.assert_array_equal(every.rows, np.arange(60))
    np.testing.assert_array_equal(every.x[:, 0], first)  # output row i is file row i
    np.testing.assert_array_equal(every.y, np.arange(60) % 3)
    assert set(names) == {"train", "val", "test"} and names[d.test.rows[0]] == "test"
    test, test_names = d.select("test")
    assert test is d.test and set(test_names) == {"test"}
    with pytest.raises(ConfigError, match="choose one of train, val, test, all"):
        d.select("everything")
    # scaled "all" rows equal the splits' scaled rows (fitted on train, applied to all)
    scaled = load_dataset(p, label_column="label", seed=4)
    np.testing.assert_allclose(scaled.select("all")[0].x[scaled.test.rows], scaled.test.x)


def test_own_test_files_number_their_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_idx_set(tmp_path / "env" / "mnist", n_train=20, n_test=6)
    monkeypatch.setenv("SPARSEAE_DATA", str(tmp_path / "env"))
    d = load_dataset("mnist", val_size=5, download=False)
    assert d.own_test
    np.testing.assert_array_equal(d.val.rows, np.arange(5))  # the first training images
    np.testing.assert_array_equal(d.train.rows, np.arange(5, 20))
    np.testing.assert_array_equal(d.test.rows, np.arange(6))  # t10k's own numbering
    every, names = d.select("all")
    np.testing.assert_array_equal(every.rows, [*range(20), *range(6)])
    assert names.tolist() == ["val"] * 5 + ["train"] * 15 + ["test"] * 6
    np.testing.assert_array_equal(every.y, [*(np.arange(20) % 10), *(np.arange(6) % 10)])
    limited = load_dataset("mnist", val_size=5, limit=3, download=False)
    np.testing.assert_array_equal(limited.train.rows, [5, 6, 7])
    p = tmp_path / "own.npz"
    np.savez(p, x_train=np.arange(40.0).reshape(20, 2), x_test=np.arange(8.0).reshape(4, 2))
    n = load_dataset(p, scale="none", val_size=4)
    every, names = n.select("all")
    np.testing.assert_array_equal(every.rows, [*range(20), *range(4)])
    np.testing.assert_array_equal(every.x[:20, 0], np.arange(0.0, 40.0, 2.0))


def test_label_column_auto_by_header_name(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    _labelled_csv(p, "a,Label,b")
    d = load_dataset(p, label_column="auto")
    assert d.d_in == 2 and d.n_classes == 3 and d.label_column == "Label"
    plain = load_dataset(p)  # the library default is still "no labels"
    assert plain.d_in == 3 and plain.train.y is None and plain.label_column is None
    for header in ("a,target,b", "a,class,b", "a,y,b"):
        _labelled_csv(p, header)
        assert load_dataset(p, label_column="auto").d_in == 2, header
    _labelled_csv(p, "a,b,c")
    assert load_dataset(p, label_column="auto").train.y is None  # no such name: no labels
    assert load_dataset("digits", label_column="auto").d_in == 64  # named sets: ignored
    np.save(tmp_path / "x.npy", np.ones((10, 2)))
    assert load_dataset(tmp_path / "x.npy", label_column="auto").d_in == 2


def test_label_column_auto_refuses_ambiguity_and_real_valued_targets(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    _labelled_csv(p, "label,target,b")
    with pytest.raises(ConfigError) as exc:
        load_dataset(p, label_column="auto")
    msg = str(exc.value)
    assert "'label' and 'target'" in msg and "--label-column" in msg and "\n" not in msg
    p.write_text("a,y\n" + "".join(f"{i},{i / 7:.4f}\n" for i in range(30)))
    with pytest.raises(ConfigError, match="non-integer values; pass --label-column none"):
        load_dataset(p, label_column="auto")
