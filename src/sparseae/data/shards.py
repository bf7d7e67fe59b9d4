"""Activation datasets larger than memory: a folder of ``.npy`` shards plus ``index.json``.

Format (docs/SHARDS.md)::

    folder/
      index.json          {"format": "sparseae-shards", "version": 1, "dtype": "float32",
                           "d_in": 384, "total_rows": N, "shards": [{"file": "shard-00000.npy",
                           "rows": 65536}, ...], "metadata": {...}}
      shard-00000.npy     a plain (rows, d_in) NumPy array, opened memory-mapped
      ...

``.npy`` is chosen because NumPy memory-maps it with no extra dependency and any tool can
read it. The writer writes ``index.json`` last and atomically, so a folder with an index is
complete; the reader opens shards memory-mapped and never holds more than one shuffle window.

Streaming shuffle (`StreamSource`): each epoch visits the shards in an order drawn from
(seed, epoch), concatenated into one stream of rows that is cut into windows of
``buffer_size`` rows (a multiple of the batch size). Each window is read, permuted by an RNG
drawn from (seed, epoch, window) and cut into batches. Every row is seen exactly once per
epoch, and the batch at any step is a pure function of (seed, epoch, step): resuming in the
middle of an epoch re-reads one window and continues bit-exactly.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sparseae.atomic import atomic_write_text
from sparseae.data.sources import BatchSource, epoch_generator, global_steps, rank_rows
from sparseae.errors import ConfigError, DataError

INDEX_FILE = "index.json"
FORMAT = "sparseae-shards"
VERSION = 1
DTYPES = ("float32", "float16")


def is_shard_folder(path: str | Path) -> bool:
    p = Path(path)
    return p.is_dir() and (p / INDEX_FILE).is_file()


class ShardWriter:
    """Appends row batches and cuts them into shards of ``rows_per_shard`` rows.

    ``with ShardWriter(folder, d_in=384) as w: w.append(batch)``; ``close()`` flushes the
    last shard and writes ``index.json`` (last, atomically). Extra per-row columns (e.g. the
    provenance of each activation row: source index, token position) go to ``append(...,
    extra={"source": ids})`` and are stored as ``<name>-XXXXX.npy`` next to each shard.
    """

    def __init__(
        self,
        folder: str | Path,
        d_in: int,
        rows_per_shard: int = 65536,
        *,
        dtype: str = "float32",
        metadata: dict[str, Any] | None = None,
        overwrite: bool = False,
    ) -> None:
        if dtype not in DTYPES:
            raise ConfigError(f"shard dtype {dtype!r} not supported: use one of {DTYPES}")
        if d_in < 1 or rows_per_shard < 1:
            raise ConfigError("d_in and rows_per_shard must be positive integers")
        self.folder = Path(folder)
        if is_shard_folder(self.folder) and not overwrite:
            raise DataError(
                f"{self.folder} already holds a shard dataset: choose a new folder or pass "
                "overwrite=True"
            )
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / INDEX_FILE).unlink(missing_ok=True)
        self.d_in, self.rows_per_shard, self.dtype = d_in, rows_per_shard, np.dtype(dtype)
        self.metadata = dict(metadata or {})
        self.shards: list[dict[str, Any]] = []
        self._pending: list[np.ndarray] = []
        self._pending_extra: dict[str, list[np.ndarray]] = {}
        self._pending_rows = 0
        self.total_rows = 0
        self.closed = False

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        if exc_type is None:
            self.close()

    def append(self, batch: Any, extra: dict[str, Any] | None = None) -> None:
        if self.closed:
            raise DataError(f"ShardWriter for {self.folder} is closed")
        if isinstance(batch, Tensor):
            batch = batch.detach().cpu().numpy()
        arr = np.asarray(batch, dtype=self.dtype)
        if arr.ndim != 2 or arr.shape[1] != self.d_in:
            raise DataError(f"expected rows of shape (n, {self.d_in}), got {arr.shape}")
        if not np.isfinite(arr).all():
            raise DataError("activation batch contains NaN or inf values")
        extra = extra or {}
        if self.shards or self._pending_rows:
            if set(extra) != set(self._pending_extra):
                raise DataError("every append must pass the same extra columns")
        for name, values in extra.items():
            col = np.asarray(values.cpu() if isinstance(values, Tensor) else values)
            if col.shape[:1] != (arr.shape[0],):
                raise DataError(f"extra column {name!r} needs one value per row")
            self._pending_extra.setdefault(name, []).append(col)
        self._pending.append(arr)
        self._pending_rows += arr.shape[0]
        while self._pending_rows >= self.rows_per_shard:
            self._flush(self.rows_per_shard)

    def _flush(self, rows: int) -> None:
        data = np.concatenate(self._pending)
        self._pending = [data[rows:]] if data.shape[0] > rows else []
        extras = {}
        for name, cols in self._pending_extra.items():
            col = np.concatenate(cols)
            self._pending_extra[name] = [col[rows:]] if col.shape[0] > rows else []
            extras[name] = col[:rows]
        self._pending_rows -= rows
        i = len(self.shards)
        entry: dict[str, Any] = {"file": f"shard-{i:05d}.npy", "rows": rows}
        np.save(self.folder / entry["file"], np.ascontiguousarray(data[:rows]))
        for name, col in extras.items():
            fname = f"{name}-{i:05d}.npy"
            np.save(self.folder / fname, col)
            entry.setdefault("extra", {})[name] = fname
        self.shards.append(entry)
        self.total_rows += rows

    def close(self) -> Path:
        if self.closed:
            return self.folder
        if self._pending_rows:
            self._flush(self._pending_rows)
        if not self.shards:
            raise DataError(f"no rows were written to {self.folder}")
        index = {
            "format": FORMAT,
            "version": VERSION,
            "dtype": self.dtype.name,
            "d_in": self.d_in,
            "total_rows": self.total_rows,
            "rows_per_shard": self.rows_per_shard,
            "shards": self.shards,
            "metadata": self.metadata,
        }
        atomic_write_text(self.folder / INDEX_FILE, json.dumps(index, indent=1))
        self.closed = True
        return self.folder


def write_shards(folder: str | Path, x: Any, rows_per_shard: int = 65536, **kwargs: Any) -> Path:
    """Write an in-memory array as a shard folder (tests, small conversions)."""
    arr = np.asarray(x.detach().cpu() if isinstance(x, Tensor) else x)
    w = ShardWriter(folder, arr.shape[1], rows_per_shard, **kwargs)
    w.append(arr)
    return w.close()


class ShardDataset:
    """A shard folder opened memory-mapped: ``len(ds)``, ``ds.d_in``, ``ds.read(rows)``.

    Nothing is read until rows are asked for; ``read`` copies only the requested rows.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        index_path = self.folder / INDEX_FILE
        if not index_path.is_file():
            raise DataError(
                f"{self.folder} is not a shard dataset (no {INDEX_FILE}): write one with "
                "sparseae.shards.ShardWriter"
            )
        try:
            index = json.loads(index_path.read_text(encoding="utf-8"))
            if index.get("format") != FORMAT:
                raise ValueError(f"format is {index.get('format')!r}, not {FORMAT!r}")
            self.d_in = int(index["d_in"])
            self.dtype = np.dtype(index["dtype"])
            entries = list(index["shards"])
            self.metadata: dict[str, Any] = dict(index.get("metadata", {}))
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{index_path} is not a valid shard index ({exc})") from None
        self.shard_files = [self.folder / e["file"] for e in entries]
        self.shard_rows = np.array([int(e["rows"]) for e in entries], dtype=np.int64)
        self.extra_files = [e.get("extra", {}) for e in entries]
        self.shards = [
            self._open(p, r) for p, r in zip(self.shard_files, self.shard_rows, strict=True)
        ]
        self.n_rows = int(self.shard_rows.sum())
        if self.n_rows != int(index.get("total_rows", self.n_rows)):
            raise DataError(f"{index_path}: total_rows does not match the shards' rows")
        self.offsets = np.concatenate([[0], np.cumsum(self.shard_rows)])

    def _open(self, path: Path, rows: int) -> np.ndarray:
        if not path.is_file():
            raise DataError(f"shard {path} is missing: the shard folder is incomplete")
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise DataError(f"shard {path} is corrupt or not a .npy file ({exc})") from None
        if arr.shape != (rows, self.d_in) or arr.dtype != self.dtype:
            raise DataError(
                f"shard {path} has shape {arr.shape} {arr.dtype}, index.json says "
                f"({rows}, {self.d_in}) {self.dtype}: rewrite the shard folder"
            )
        return arr

    def __len__(self) -> int:
        return self.n_rows

    def read(
        self, rows: np.ndarray, order: np.ndarray | None = None, out: np.ndarray | None = None
    ) -> np.ndarray:
        """Rows by global id (in the shards' stored order) as one float32 array.

        ``order``: shard visiting order of an epoch (permutation of shard ids); global ids then
        count rows along that order. Only the touched rows of each shard are read, into
        ``out`` if given ((len(rows), d_in) float32).
        """
        rows = np.asarray(rows, dtype=np.int64)
        sizes = self.shard_rows if order is None else self.shard_rows[order]
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        which = np.searchsorted(offsets, rows, side="right") - 1
        if out is None:
            out = np.empty((rows.shape[0], self.d_in), dtype=np.float32)
        for pos in np.unique(which):
            sel = np.nonzero(which == pos)[0]
            shard = int(pos if order is None else order[pos])
            local = rows[sel] - offsets[pos]
            srt = np.argsort(local, kind="stable")
            out[sel[srt]] = self.shards[shard][local[srt]]
        return out

    def read_extra(self, name: str) -> np.ndarray:
        """An extra per-row column (e.g. provenance) for all rows, in stored order."""
        try:
            parts = [np.load(self.folder / e[name], allow_pickle=False) for e in self.extra_files]
        except KeyError:
            raise DataError(f"{self.folder} has no extra column {name!r}") from None
        return np.concatenate(parts)

    def to_numpy(self) -> np.ndarray:
        """Every row in memory (only for data that fits)."""
        return np.concatenate([np.asarray(s, dtype=np.float32) for s in self.shards])


class StreamSource(BatchSource):
    """Shuffled batches streamed from a shard folder through a window of ``buffer_size``
    rows (see the module docstring); rank ``r`` keeps its chunk of each global batch."""

    def __init__(
        self,
        data: ShardDataset | str | Path,
        *,
        batch_size: int,
        buffer_size: int = 65536,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        device: str | torch.device = "cpu",
        scale: float = 1.0,
    ) -> None:
        self.data = data if isinstance(data, ShardDataset) else ShardDataset(data)
        self.scale = float(scale)  # rows are multiplied by it as they are read
        if batch_size < 1 or buffer_size < 1:
            raise ConfigError("batch_size and buffer_size must be positive")
        self.n_rows = len(self.data)
        self.batch_size, self.seed = batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.device = torch.device(device)
        self.window = max(1, buffer_size // batch_size) * batch_size
        self.steps_per_epoch = global_steps(self.n_rows, batch_size, world_size)
        self.rows_held = 0  # rows of the current window in memory (for tests and logs)

    def check(self, batch_size: int, rank: int, world_size: int) -> None:
        if (batch_size, rank, world_size) != (self.batch_size, self.rank, self.world_size):
            raise ConfigError(
                f"StreamSource was built for batch_size={self.batch_size}, rank={self.rank}/"
                f"{self.world_size} but the trainer uses batch_size={batch_size}, rank={rank}/"
                f"{world_size}: pass the shard folder instead and let the trainer build it"
            )

    def sample_rows(self, n: int) -> Tensor:
        ids = np.arange(min(n, self.n_rows))
        return torch.from_numpy(self.data.read(ids)).mul_(self.scale).to(self.device)

    def shard_order(self, epoch: int) -> np.ndarray:
        n = len(self.data.shard_files)
        return torch.randperm(n, generator=epoch_generator(self.seed, epoch, salt=1)).numpy()

    def epoch_batches(self, epoch: int, start_step: int = 0) -> Iterator[Tensor]:
        order = self.shard_order(epoch)
        bs, n = self.batch_size, self.steps_per_epoch * self.batch_size
        n = min(n, self.n_rows)
        per_window = self.window // bs
        first_window = start_step // per_window
        for w in range(first_window, math.ceil(n / self.window)):
            lo, hi = w * self.window, min(n, (w + 1) * self.window)
            g = epoch_generator(self.seed, epoch, salt=2 + w)
            perm = lo + torch.randperm(hi - lo, generator=g)
            chunks = rank_rows(perm, bs, self.rank, self.world_size)
            ids = torch.cat(chunks).numpy()
            # rows are read straight into a torch-owned buffer (numpy only views it)
            window = torch.empty((ids.shape[0], self.data.d_in), dtype=torch.float32)
            self.data.read(ids, order, out=window.numpy())
            if self.scale != 1.0:
                window.mul_(self.scale)
            self.rows_held = ids.shape[0]
            window = window.to(self.device)
            batches = window.split([len(c) for c in chunks])
            skip = start_step - w * per_window if w == first_window else 0
            yield from batches[skip:]


def row_batches(x: Any, batch_size: int, max_rows: int | None = None) -> Iterator[Any]:
    """Consecutive batches of (the first ``max_rows`` of) ``x``: a `ShardDataset` read from
    disk a batch at a time (never loaded whole), or anything sliceable (arrays, tensors)."""
    n = len(x) if max_rows is None else min(max_rows, len(x))
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        yield x.read(np.arange(start, stop)) if isinstance(x, ShardDataset) else x[start:stop]


def shard_data(folder: str | Path) -> Any:
    """A shard folder dressed as `sparseae.data.Dataset` for the CLI: ``train.x`` is the
    `ShardDataset` (streamed by the trainer), no validation or test split."""
    from types import SimpleNamespace

    ds = ShardDataset(folder)

    class _Split(SimpleNamespace):
        def __len__(self) -> int:
            return 0 if self.x is None else len(self.x)

    meta = ds.metadata
    shape = meta.get("image_shape")
    return SimpleNamespace(
        name=str(meta.get("name", Path(folder).name)),
        train=_Split(x=ds, y=None),
        val=_Split(x=None, y=None),
        test=_Split(x=None, y=None),
        d_in=ds.d_in,
        image_shape=tuple(shape) if shape else None,
        scale=str(meta.get("scale", "none")),
        n_classes=None,
        class_names=None,
        transform=None,
    )
