"""The on-disk shard format and the streaming, shuffling reader the trainer trains from."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest
import torch

import sparseae
from sparseae.data.shards import ShardDataset, ShardWriter, StreamSource, write_shards
from sparseae.errors import DataError
from sparseae.training.trainer import Trainer

from .helpers import digits


def _rows(n: int, d: int = 6) -> np.ndarray:
    """Row i carries its own id in column 0, so batches tell which rows they hold."""
    x = np.random.default_rng(0).random((n, d), dtype=np.float32)
    x[:, 0] = np.arange(n)
    return x


def test_writer_reader_round_trip_with_uneven_appends_and_extra_columns(tmp_path):
    x = _rows(1000)
    with ShardWriter(tmp_path, d_in=6, rows_per_shard=300, metadata={"layer": "fc1"}) as w:
        for start in range(0, 1000, 170):  # appends that straddle shard boundaries
            ids = np.arange(start, min(start + 170, 1000))
            w.append(x[ids], extra={"source": ids[:, None] // 2})
    index = json.loads((tmp_path / "index.json").read_text())
    assert [s["rows"] for s in index["shards"]] == [300, 300, 300, 100]
    assert index["total_rows"] == 1000 and index["metadata"] == {"layer": "fc1"}
    ds = ShardDataset(tmp_path)
    assert len(ds) == 1000 and ds.d_in == 6
    np.testing.assert_array_equal(ds.to_numpy(), x)
    np.testing.assert_array_equal(ds.read_extra("source")[:, 0], np.arange(1000) // 2)
    rows = np.array([999, 0, 301, 299, 300])
    np.testing.assert_array_equal(ds.read(rows), x[rows])


@pytest.mark.parametrize("world_size", [1, 2])
def test_every_row_is_seen_exactly_once_per_epoch(tmp_path, world_size):
    n = 1037
    write_shards(tmp_path, _rows(n), rows_per_shard=200)
    for epoch in range(2):
        ids = []
        for rank in range(world_size):
            src = StreamSource(
                tmp_path, batch_size=64, buffer_size=256, seed=1, rank=rank, world_size=world_size
            )
            batches = list(src.epoch_batches(epoch))
            assert len(batches) == src.steps_per_epoch == 17
            ids.append(torch.cat(batches)[:, 0].long())
        all_ids = torch.cat(ids)
        assert sorted(all_ids.tolist()) == list(range(n))
    if world_size == 2:  # each rank holds half of every global batch
        assert abs(len(ids[0]) - len(ids[1])) <= 17


def test_shuffle_is_deterministic_per_seed_and_differs_across_epochs(tmp_path):
    write_shards(tmp_path, _rows(800), rows_per_shard=100)

    def order(seed, epoch, start=0):
        src = StreamSource(tmp_path, batch_size=50, buffer_size=200, seed=seed)
        return torch.cat(list(src.epoch_batches(epoch, start)))[:, 0].long()

    a = order(seed=0, epoch=0)
    assert torch.equal(a, order(seed=0, epoch=0))
    assert not torch.equal(a, order(seed=0, epoch=1))
    assert not torch.equal(a, order(seed=1, epoch=0))
    # rows mix across shard boundaries, not only within a shard
    first_batch_shards = set((a[:50] // 100).tolist())
    assert len(first_batch_shards) >= 2
    # resuming mid-epoch (step 7, inside the 2nd window) gives exactly the remaining batches
    assert torch.equal(order(seed=0, epoch=1, start=7), order(seed=0, epoch=1)[7 * 50 :])


def test_streaming_never_holds_the_whole_dataset_in_memory(tmp_path):
    n, d = 80_000, 64  # 20 MB on disk
    rng = np.random.default_rng(0)
    with ShardWriter(tmp_path, d_in=d, rows_per_shard=4000) as w:
        for _ in range(n // 4000):
            w.append(rng.random((4000, d), dtype=np.float32))
    total_bytes = n * d * 4
    src = StreamSource(tmp_path, batch_size=256, buffer_size=2048, seed=0)
    tracemalloc.start()
    try:
        rows = 0
        for batch in src.epoch_batches(0):
            rows += batch.shape[0]
            assert src.rows_held <= 2048
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rows == n
    assert all(isinstance(s, np.memmap) for s in src.data.shards)
    assert peak < total_bytes / 8, f"peak {peak / 1e6:.1f} MB for a {total_bytes / 1e6:.0f} MB set"


def test_bad_missing_and_corrupt_shards_are_data_errors_naming_the_file(tmp_path):
    with pytest.raises(DataError, match="not a shard dataset"):
        ShardDataset(tmp_path)
    write_shards(tmp_path / "a", _rows(500), rows_per_shard=200)
    (tmp_path / "a" / "shard-00001.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DataError, match="shard-00001.npy"):
        ShardDataset(tmp_path / "a")
    write_shards(tmp_path / "b", _rows(500), rows_per_shard=200)
    (tmp_path / "b" / "shard-00002.npy").unlink()
    with pytest.raises(DataError, match="shard-00002.npy is missing"):
        ShardDataset(tmp_path / "b")
    write_shards(tmp_path / "c", _rows(500), rows_per_shard=200)
    np.save(tmp_path / "c" / "shard-00000.npy", np.zeros((200, 5), np.float32))
    with pytest.raises(DataError, match="shard-00000.npy has shape"):
        ShardDataset(tmp_path / "c")
    with pytest.raises(DataError, match="already holds"):
        ShardWriter(tmp_path / "c", d_in=6)


def test_training_streams_from_a_shard_folder_and_the_loss_falls(tmp_path):
    x, _ = digits(1000)
    write_shards(tmp_path, x, rows_per_shard=256)
    torch.manual_seed(0)  # the model's init, independent of the tests run before
    model = sparseae.Autoencoder(
        d_in=64,
        n_latents=32,
        sparsity="topk",
        sparsity_params={"k": 6},
        code_activation="linear",
        output_activation="linear",
    )
    cfg = sparseae.TrainConfig(epochs=4, batch_size=50, seed=0)
    history = Trainer(model, cfg, progress=False).fit(str(tmp_path), x[:200])
    assert history["loss"][-1] < 0.6 * history["loss"][0]
    assert history["val_l0"][-1] == pytest.approx(6.0, abs=0.02)  # k kept (a kept 0.0 is rare)
