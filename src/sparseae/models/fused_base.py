"""What every hand-written training step (`FusedMLPStep`, `SAEFusedStep`) shares: it owns
one gradient buffer per parameter, written in place each step (no fresh allocation, whose
page faults cost about as much as the arithmetic), and attaches them as ``.grad`` so the
optimizer and the trainer's hooks see ordinary gradients. If a parameter's storage moved
(``.to()``, ``.double()``), the buffers are rebuilt."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn


def not_plain(model: Any, plain: type | None) -> str | None:
    """Why a hand-written step does not apply to ``model``'s class, or None."""
    if plain is not None and type(model) is not plain:
        return f"not a plain {plain.__name__} (a subclass may change the objective)"
    return None


class OwnedGradients:
    params: list[nn.Parameter]
    grads: list[Tensor]
    _storage: list[int]

    def _build(self) -> None:
        raise NotImplementedError

    def _attach_grads(self) -> None:
        if [p.data_ptr() for p in self.params] != self._storage:
            self._build()
        for p, g in zip(self.params, self.grads, strict=True):
            if p.grad is not g:
                p.grad = g
