"""Reading IDX files (the MNIST family's format), gzip-compressed or not.

Everything that can go wrong with a downloaded or copied file (truncated or corrupt gzip, wrong
magic number, a header that disagrees with the payload size) becomes a one-line `DataError`
naming the file and the fix, because a raw `EOFError` from gzip tells a user nothing.

Parsing is one `np.frombuffer` on the decompressed bytes (no per-image Python loop), and the
parsed uint8 arrays are cached per (path, mtime, size) so a test suite that loads MNIST several
times pays the ~0.3 s decompression once. Cached arrays are read-only; callers get fresh float
copies from `sparseae.data.named`, so nobody can corrupt the cache.
"""

from __future__ import annotations

import functools
import gzip
import zlib
from pathlib import Path

import numpy as np

from sparseae.errors import DataError

# IDX type codes (third byte of the magic number) -> big-endian NumPy dtype.
IDX_DTYPES: dict[int, str] = {
    0x08: "u1",
    0x09: "i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}

_FIX = "delete it so it is downloaded again, or pass data_dir=... / --data-dir to a good copy"


def read_maybe_gzip(path: Path) -> bytes:
    """Return the file's bytes, decompressed when it is gzip (by magic bytes, not by name).

    Detecting gzip by content means a user who gunzipped the files but kept the `.gz` name
    (or the other way round) still gets a working load instead of a confusing error.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file ({exc.strerror or exc}); {_FIX}") from exc
    if not raw:
        raise DataError(f"{path}: the file is empty (0 bytes); {_FIX}")
    if raw[:2] != b"\x1f\x8b":
        if path.name.endswith(".gz"):
            raise DataError(
                f"{path}: not a gzip file (bad gzip magic bytes {raw[:2].hex()}), the file is "
                f"corrupt; {_FIX}"
            )
        return raw
    try:
        return gzip.decompress(raw)
    except EOFError as exc:
        raise DataError(
            f"{path}: truncated gzip file (it ends early, probably an interrupted download); {_FIX}"
        ) from exc
    except (gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise DataError(f"{path}: corrupt gzip file ({exc}); {_FIX}") from exc


def parse_idx(data: bytes, source: str | Path) -> np.ndarray:
    """Parse IDX bytes into an array of the header's shape, checking magic and exact size.

    The exact-size check catches truncated uncompressed files and files that were
    concatenated or padded, which would otherwise load as silently shifted images.
    """
    if len(data) < 4:
        raise DataError(f"{source}: too short to be an IDX file ({len(data)} bytes); {_FIX}")
    magic = int.from_bytes(data[:4], "big")
    code, ndim = data[2], data[3]
    if data[0] != 0 or data[1] != 0 or code not in IDX_DTYPES or ndim == 0:
        raise DataError(
            f"{source}: wrong IDX magic number 0x{magic:08x} (expected 0x0000TTNN: 0x00000803 "
            f"for images, 0x00000801 for labels); not an IDX file or corrupt; {_FIX}"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{source}: IDX header cut short ({len(data)} bytes); {_FIX}")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(IDX_DTYPES[code])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    got = len(data) - header
    if got != expected:
        raise DataError(
            f"{source}: wrong size: the IDX header says {' x '.join(map(str, dims))} "
            f"({expected} data bytes) but the file holds {got}; {_FIX}"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=False)


@functools.lru_cache(maxsize=16)
def _load_cached(path: str, mtime_ns: int, size: int) -> np.ndarray:
    # mtime_ns and size are only part of the cache key: a replaced file is re-read.
    del mtime_ns, size
    arr = parse_idx(read_maybe_gzip(Path(path)), path)
    arr.setflags(write=False)
    return arr


def load_idx(path: str | Path) -> np.ndarray:
    """Load an IDX(.gz) file as a read-only array, cached while the file is unchanged."""
    p = Path(path).resolve()
    try:
        st = p.stat()
    except OSError as exc:
        raise DataError(f"{p}: cannot read the file ({exc.strerror or exc}); {_FIX}") from exc
    return _load_cached(str(p), st.st_mtime_ns, st.st_size)


def clear_cache() -> None:
    """Drop the cached arrays (frees the memory; the next load re-reads the files)."""
    _load_cached.cache_clear()
