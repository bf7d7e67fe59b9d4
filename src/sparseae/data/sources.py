"""Where the trainer's batches come from: one interface for data in memory and data on disk.

A `BatchSource` turns (epoch, first step) into the batches of that epoch, deterministically,
so a run resumed mid-epoch sees exactly the batches it would have seen, and so that every
data-parallel rank can compute its own share of each global batch without talking to the
others. The trainer's loop only iterates; it never knows which source it reads.

Data-parallel convention (shared by every source): ``batch_size`` is the GLOBAL batch; rank
``r`` of ``world_size`` takes the ``r``-th of ``world_size`` near-equal contiguous chunks of
each global batch. DDP averages the ranks' gradients, so with equal chunks the update equals
the single-process update on the whole global batch (up to floating-point reordering).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor

from sparseae.errors import ConfigError


def epoch_generator(seed: int, epoch: int, salt: int = 0) -> torch.Generator:
    """The RNG of one epoch's shuffle (``salt`` separates several draws within an epoch)."""
    g = torch.Generator()
    g.manual_seed((seed * 1_000_003 + epoch * 7919 + 1 + salt * 104_729) % (2**63))
    return g


def global_steps(n_rows: int, batch_size: int, world_size: int) -> int:
    """Global batches per epoch; a last partial batch too small to give every rank a row is
    dropped under data parallelism (a rank with an empty batch would have no loss)."""
    steps = math.ceil(n_rows / batch_size)
    last = n_rows - (steps - 1) * batch_size
    if world_size > 1 and last < world_size:
        steps -= 1
    if steps < 1:
        raise ConfigError(
            f"{n_rows} training rows cannot fill one batch on each of {world_size} processes: "
            "use more data or fewer processes"
        )
    return steps


def rank_rows(index: Tensor, batch_size: int, rank: int, world_size: int) -> list[Tensor]:
    """This rank's chunk of every global batch in ``index`` (row ids in batch order)."""
    if world_size == 1:
        return list(index.split(batch_size))
    return [chunk.tensor_split(world_size)[rank] for chunk in index.split(batch_size)]


class BatchSource:
    """Yields the (rank-local) training batches of an epoch, as tensors on the device."""

    n_rows: int
    steps_per_epoch: int

    def epoch_batches(self, epoch: int, start_step: int = 0) -> Iterator[Tensor]:
        raise NotImplementedError

    def sample_rows(self, n: int) -> Tensor:
        """Up to ``n`` rows in stored order, for data-dependent initialisation (the same on
        every rank, so every rank initialises the same model)."""
        raise NotImplementedError

    def check(self, batch_size: int, rank: int, world_size: int) -> None:
        """Sources built by the user must agree with the trainer's settings."""


class InMemorySource(BatchSource):
    """Data held in one tensor: per epoch one permutation from (seed, epoch), one gather,
    then zero-copy slices; so no Python work per sample."""

    def __init__(
        self,
        x: Tensor,
        batch_size: int,
        seed: int,
        device: torch.device,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.x = x.to(device)
        self.n_rows = x.shape[0]
        self.batch_size, self.seed, self.device = batch_size, seed, device
        self.rank, self.world_size = rank, world_size
        self.steps_per_epoch = global_steps(self.n_rows, batch_size, world_size)

    def sample_rows(self, n: int) -> Tensor:
        return self.x[:n]

    def epoch_batches(self, epoch: int, start_step: int = 0) -> Iterator[Tensor]:
        perm = torch.randperm(self.n_rows, generator=epoch_generator(self.seed, epoch))
        bs = self.batch_size
        if self.world_size == 1:
            shuffled = self.x.index_select(0, perm.to(self.device))
            steps = range(start_step, self.steps_per_epoch)
            return (shuffled[step * bs : (step + 1) * bs] for step in steps)
        chunks = rank_rows(perm[: self.steps_per_epoch * bs], bs, self.rank, self.world_size)
        shuffled = self.x.index_select(0, torch.cat(chunks).to(self.device))
        return iter(shuffled.split([len(c) for c in chunks])[start_step:])
