"""Finding (and, when allowed, downloading) the IDX files of the MNIST-like datasets.

Lookup order, first folder holding all four files wins: explicit `data_dir` (the folder itself
or its `<name>/` subfolder), `$SPARSEAE_DATA` (same rule), the cache
`$XDG_CACHE_HOME/sparseae/<name>` (default `~/.cache/sparseae/<name>`), Debian's
`/usr/share/datasets/<name>`, else a download into the cache. Machines without network (CI,
clusters) are the common case, so the not-found error lists every place looked and the fix.

Local folders are checked for structure only (magic numbers, sizes; see `idx.py`) to keep
loading fast; MD5 checksums are verified on download, and `verify_checksums` is there for
anyone who wants to check a local copy.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path

from sparseae.errors import DataError

IDX_FILES: tuple[str, ...] = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

# Base URLs tried in order. Tests point these at file:// folders, never at the network.
MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    "kmnist": ("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
}

# MD5 of the *uncompressed* IDX bytes (the canonical published values): mirrors re-gzip the
# files, so only the bytes inside are stable.
CHECKSUMS: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    },
}

# KMNIST publishes no MD5 of the uncompressed bytes; these are the MD5s of the .gz files as
# served by the CODH mirror (the values torchvision's KMNIST dataset checks). They are
# compared against the downloaded .gz file itself; the IDX structure check still applies.
GZ_CHECKSUMS: dict[str, dict[str, str]] = {
    "kmnist": {
        "train-images-idx3-ubyte": "bdb82020997e1d708af4cf47b453dcf7",
        "train-labels-idx1-ubyte": "e144d726b3acfaa3e44228e80efcd344",
        "t10k-images-idx3-ubyte": "5c965bf0a639b31b8f53240b1b52f4d7",
        "t10k-labels-idx1-ubyte": "7320c461ea6c1c855c0b718fb2a4b134",
    },
}

# Debian's dataset packages install here (dataset-fashion-mnist). A module attribute so tests
# can point it at an empty folder.
SYSTEM_DATASETS_DIR = Path("/usr/share/datasets")

DOWNLOAD_TIMEOUT_S = 60.0
_FIX = "pass data_dir=... / --data-dir, or set SPARSEAE_DATA, to a folder holding the files"


def cache_dir(name: str) -> Path:
    """`$XDG_CACHE_HOME/sparseae/<name>` (default `~/.cache/sparseae/<name>`), read each call
    so tests and users can redirect it through the environment."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "sparseae" / name


def _with_subfolder(base: Path, name: str) -> list[Path]:
    # The <name>/ subfolder first: a parent folder that holds mnist's files directly and a
    # fashion-mnist/ subfolder must not serve mnist's files as fashion-mnist.
    subs = [base / name]
    if "-" in name:
        subs.append(base / name.replace("-", "_"))
    return [*subs, base]


def candidate_dirs(name: str, data_dir: str | Path | None = None) -> list[Path]:
    """Every folder looked in for `name`, in lookup order (without the download)."""
    dirs: list[Path] = []
    if data_dir is not None:
        dirs += _with_subfolder(Path(data_dir).expanduser(), name)
    env = os.environ.get("SPARSEAE_DATA")
    if env:
        dirs += _with_subfolder(Path(env).expanduser(), name)
    dirs.append(cache_dir(name))
    dirs.append(SYSTEM_DATASETS_DIR / name)
    return dirs


def find_files(folder: Path) -> dict[str, Path] | None:
    """The four IDX files in `folder` (`X.gz` preferred, plain `X` accepted), or None."""
    found: dict[str, Path] = {}
    for stem in IDX_FILES:
        for fname in (stem + ".gz", stem):
            p = folder / fname
            if p.is_file():
                found[stem] = p
                break
        else:
            return None
    return found


def locate(name: str, data_dir: str | Path | None = None, download: bool = True) -> dict[str, Path]:
    """Paths of the four IDX files of `name`: found locally, else downloaded into the cache."""
    looked = candidate_dirs(name, data_dir)
    for folder in looked:
        files = find_files(folder)
        if files is not None:
            return files
    places = ", ".join(str(p) for p in dict.fromkeys(looked))
    if not download:
        raise DataError(
            f"{name}: the files {', '.join(f + '.gz' for f in IDX_FILES)} were not found in "
            f"any of: {places}; downloading is off. Fix: {_FIX}, or allow the download"
        )
    try:
        return download_dataset(name, cache_dir(name))
    except _DownloadFailed as exc:
        raise DataError(
            f"{name}: the files were not found in any of: {places}; and the download failed "
            f"({exc}). Fix: {_FIX} (e.g. copy them there from a machine with network)"
        ) from exc


class _DownloadFailed(Exception):
    """Internal: every mirror failed for a file (network error or checksum mismatch)."""


def _md5_of_content(path: Path, name: str, stem: str) -> tuple[str, str] | None:
    """(computed, expected) MD5 for the file, using whichever checksum `name` publishes."""
    if stem in CHECKSUMS.get(name, {}):
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            try:
                raw = gzip.decompress(raw)
            except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
                raise DataError(
                    f"{path}: corrupt or truncated gzip file ({exc or type(exc).__name__}); "
                    f"delete it and download again"
                ) from exc
        return hashlib.md5(raw).hexdigest(), CHECKSUMS[name][stem]
    if stem in GZ_CHECKSUMS.get(name, {}):
        return hashlib.md5(path.read_bytes()).hexdigest(), GZ_CHECKSUMS[name][stem]
    return None


def verify_checksums(folder: str | Path, name: str) -> dict[str, str]:
    """Check the MD5 of each of `name`'s four files in `folder`; return {file: md5}.

    Raises `DataError` naming the file on a missing file or a mismatch. Uncompressed MD5 for
    mnist and fashion-mnist (gzip wrappers differ between mirrors), MD5 of the .gz for kmnist.
    """
    if name not in CHECKSUMS and name not in GZ_CHECKSUMS:
        known = ", ".join(sorted({*CHECKSUMS, *GZ_CHECKSUMS}))
        raise DataError(f"{name}: no published checksums for this dataset (known: {known})")
    folder = Path(folder)
    files = find_files(folder)
    if files is None:
        files = find_files(folder / name)
    if files is None:
        raise DataError(
            f"{folder}: does not hold the four {name} files ({', '.join(IDX_FILES)}, .gz or not)"
        )
    out: dict[str, str] = {}
    for stem, path in files.items():
        res = _md5_of_content(path, name, stem)
        if res is None:
            continue
        got, want = res
        if got != want:
            raise DataError(
                f"{path}: checksum mismatch (MD5 {got}, expected {want}): the file is corrupt "
                f"or not the canonical {name} file; delete it and download it again"
            )
        out[path.name] = got
    return out


def _progress(total: int | None, desc: str):  # noqa: ANN202 - tqdm or None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is a dependency, but downloading must not need it
        return None
    return tqdm(total=total, unit="B", unit_scale=True, desc=desc, disable=None, leave=False)


def _fetch_to(url: str, dest: Path) -> None:
    """Stream `url` into a temp file next to `dest`, then rename it atomically.

    The temp file is removed on any failure, so an interrupted download never leaves a
    half-written file that a later run would find and trust.
    """
    fd, tmp_name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with (
            os.fdopen(fd, "wb") as out,
            urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as resp,
        ):
            length = resp.headers.get("Content-Length") if hasattr(resp, "headers") else None
            bar = _progress(int(length) if length else None, dest.name)
            try:
                while chunk := resp.read(1 << 20):
                    out.write(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
            finally:
                if bar is not None:
                    bar.close()
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def download_dataset(name: str, dest: Path) -> dict[str, Path]:
    """Download the missing files of `name` into `dest`, verifying each file's MD5.

    A mirror that fails (network error or checksum mismatch) is skipped for the next one; a
    file that fails its checksum is deleted. Raises `_DownloadFailed` naming every attempt.
    """
    mirrors = MIRRORS.get(name)
    if not mirrors:
        raise _DownloadFailed(f"no download mirror is known for {name}")
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _DownloadFailed(f"cannot create the cache folder {dest}: {exc}") from exc
    files: dict[str, Path] = {}
    for stem in IDX_FILES:
        target = dest / (stem + ".gz")
        if target.is_file():
            files[stem] = target
            continue
        errors: list[str] = []
        for base in mirrors:
            url = base + stem + ".gz"
            try:
                _fetch_to(url, target)
            except (urllib.error.URLError, OSError, ValueError) as exc:
                errors.append(f"{url}: {getattr(exc, 'reason', None) or exc}")
                continue
            try:
                res = _md5_of_content(target, name, stem)
            except DataError as exc:
                res, bad = None, str(exc)
            else:
                bad = (
                    ""
                    if res is None or res[0] == res[1]
                    else (f"checksum mismatch (MD5 {res[0]}, expected {res[1]})")
                )
            if bad:
                target.unlink(missing_ok=True)
                errors.append(f"{url}: {bad}")
                continue
            files[stem] = target
            break
        else:
            raise _DownloadFailed("; ".join(errors))
    return files
