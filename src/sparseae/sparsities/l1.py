"""``l1``: an L1 activity penalty on the code, ``weight * mean_over_batch(sum_j |h_j|)``.

That is exactly Keras' ``ActivityRegularization(l1=weight)`` (Keras divides its per-batch sum
by the batch size)."""

from __future__ import annotations

import torch
from torch import Tensor

from sparseae.sparsities.base import Sparsity, check_nonnegative, register_sparsity


@register_sparsity("l1")
class L1Sparsity(Sparsity):
    param_names = ("weight",)
    fused = True

    def __init__(self, n_latents: int, weight: float = 1e-3) -> None:
        super().__init__(n_latents)
        self.weight = check_nonnegative("l1 weight", weight)

    def penalty(self, a: Tensor, h: Tensor, atom_norms: Tensor | None = None) -> Tensor:
        return self.weight * h.abs().sum(dim=-1).mean()

    def fused_penalty(self, h: Tensor) -> tuple[Tensor, Tensor | None]:
        scale = self.weight / h.shape[0]
        return torch.abs(h).sum().mul_(scale), torch.sign(h).mul_(scale)

    def describe(self) -> str:
        return f"L1 activity penalty, weight {self.weight:g} x mean over samples of sum |h|"
