"""Callbacks: hooks into the one training loop, and the per-epoch `History`.

A callback that keeps state between steps returns it from `state_dict` (tensors and JSON
values); the trainer saves it with its own state, so a resumed run continues exactly."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class History:
    """Per-epoch records (dicts of floats): ``history["val_recon"]`` is the list over epochs."""

    records: list[dict[str, Any]] = field(default_factory=list)

    def __getitem__(self, key: str) -> list[Any]:
        return [r[key] for r in self.records if key in r]

    def __len__(self) -> int:
        return len(self.records)

    @property
    def last(self) -> dict[str, Any]:
        return self.records[-1] if self.records else {}


class Callback:
    """Override what you need; the trainer only calls per-step hooks that are overridden,
    so unused hooks cost nothing in the hot loop."""

    def on_train_begin(self, trainer: Any) -> None: ...

    def on_epoch_begin(self, trainer: Any, epoch: int) -> None: ...

    def on_after_backward(self, trainer: Any) -> None: ...

    def on_step_end(self, trainer: Any, out: Any) -> None: ...

    def on_epoch_end(self, trainer: Any, record: dict[str, Any]) -> None: ...

    def on_train_end(self, trainer: Any) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        """State to checkpoint (tensors and JSON values); empty for stateless callbacks."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def overrides(cb: Callback, name: str) -> bool:
    return getattr(type(cb), name) is not getattr(Callback, name)


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
