"""Whatever ``fit`` was given, as a `BatchSource`: a source as is, a shard folder or
`ShardDataset` streamed from disk, anything array-like held in memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from sparseae.data.shards import ShardDataset, StreamSource, is_shard_folder
from sparseae.data.sources import BatchSource, InMemorySource
from sparseae.data.tensors import as_tensor


def make_source(
    data: Any,
    *,
    batch_size: int,
    seed: int,
    device: torch.device,
    rank: int = 0,
    world_size: int = 1,
) -> BatchSource:
    if isinstance(data, BatchSource):
        data.check(batch_size, rank, world_size)
        return data
    if isinstance(data, str | Path) and is_shard_folder(data):
        data = ShardDataset(data)
    if isinstance(data, ShardDataset):
        return StreamSource(
            data, batch_size=batch_size, seed=seed, rank=rank, world_size=world_size, device=device
        )
    x = as_tensor(data, "training data")
    return InMemorySource(x, batch_size, seed, device, rank, world_size)
