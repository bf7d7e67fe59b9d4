"""``none``: the plain (undercomplete) autoencoder; the bottleneck is the only constraint."""

from __future__ import annotations

from sparseae.sparsities.base import Sparsity, register_sparsity


@register_sparsity("none")
class NoSparsity(Sparsity):
    fused = True

    def describe(self) -> str:
        return "no sparsity constraint (the bottleneck size is the only constraint)"
