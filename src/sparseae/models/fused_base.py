"""What every hand-written training step (`FusedMLPStep`, `SAEFusedStep`) shares: it owns
one gradient buffer per parameter, written in place each step (no fresh allocation, whose
page faults cost about as much as the arithmetic), and attaches them as ``.grad`` so the
optimizer and the trainer's hooks see ordinary gradients. If a parameter's storage moved
(``.to()``, ``.double()``), the buffers are rebuilt."""

from __future__ import annotations

from typing import Any, Protocol

from torch import Tensor, nn


class AuxTerm(Protocol):
    """An auxiliary reconstruction term a hand-written step can fold in (the trainer's AuxK):
    which entries take part and how the residual is normalised; the step does the rest."""

    weight: float

    def support(self, pre: Tensor) -> tuple[Tensor, Tensor, Tensor | None] | None:
        """The entries whose code reconstructs the residual, as (rows, local, columns):
        entry i is (rows[i], columns[local[i]]) (columns None: every latent); None: no term."""

    def normaliser(self, residual: Tensor) -> Tensor:
        """The scalar the residual's squared error is divided by."""


def not_plain(model: Any, plain: type | None) -> str | None:
    """Why a hand-written step does not apply to ``model``'s class, or None."""
    if plain is not None and type(model) is not plain:
        return f"not a plain {plain.__name__} (a subclass may change the objective)"
    return None


def untrainable_parts(model: Any) -> str | None:
    """What a hand-written step would get wrong in an autoencoder, or None: it derives no
    gradient for a corruption's own parameters and writes every parameter's gradient."""
    if any(p.requires_grad for p in model.corruption.parameters()):
        return "a trainable corruption"
    if not all(p.requires_grad for p in model.parameters()):
        return "frozen parameters"
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
