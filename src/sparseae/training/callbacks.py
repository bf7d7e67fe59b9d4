"""Ready-made training callbacks."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from sparseae.training.trainer import Callback


class FilterSnapshots(Callback):
    """Keep a copy of ``model.filters()`` (first ``n_atoms`` atoms) at chosen epochs, plus
    the initial filters as epoch 0, so reports can show how filters evolve in training."""

    def __init__(self, epochs: Iterable[int], n_atoms: int = 64) -> None:
        self.epochs = set(epochs)
        self.n_atoms = n_atoms
        self.snapshots: list[tuple[int, np.ndarray]] = []

    def _take(self, model: Any, epoch: int) -> None:
        filters = model.filters()
        if filters is not None:
            self.snapshots.append((epoch, filters[: self.n_atoms].detach().cpu().numpy().copy()))

    def on_train_begin(self, trainer: Any) -> None:
        if 0 in self.epochs and not any(e == 0 for e, _ in self.snapshots):
            self._take(trainer.model, 0)

    def on_epoch_end(self, trainer: Any, record: dict[str, Any]) -> None:
        if record["epoch"] in self.epochs:
            self._take(trainer.model, record["epoch"])


def snapshot_epochs(total: int, count: int = 4) -> list[int]:
    """Epochs at which to snapshot: after the first, evenly spread, and the last."""
    if total <= count:
        return list(range(1, total + 1))
    picks = {1, total}
    for i in range(1, count - 1):
        picks.add(round(1 + i * (total - 1) / (count - 1)))
    return sorted(picks)
