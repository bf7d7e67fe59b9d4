"""``batchtopk`` (Bussmann et al. 2024): in training keep the k*B largest activations of the
whole (B, n) batch, so busy inputs may use more latents than quiet ones while the batch
average stays k. A running threshold (EMA of the smallest kept positive activation) is a
buffer, so it is saved with the weights, and replaces the batch top-k at inference:
``h = a * (a > threshold)``, which makes a sample's code independent of its batch."""

from __future__ import annotations

import torch
from torch import Tensor

from sparseae.errors import ConfigError
from sparseae.sparsities.base import Sparsity, check_k, register_sparsity


@register_sparsity("batchtopk")
class BatchTopKSparsity(Sparsity):
    param_names = ("k", "momentum")
    sparse_support = True

    def __init__(self, n_latents: int, k: int = 32, momentum: float = 0.01) -> None:
        super().__init__(n_latents)
        self.k = check_k("batchtopk", k, n_latents)
        if isinstance(momentum, bool) or not (
            isinstance(momentum, int | float) and 0.0 < momentum <= 1.0
        ):
            raise ConfigError(f"batchtopk momentum must lie in (0, 1], got {momentum!r}")
        self.momentum = float(momentum)
        # -1 marks "not yet estimated": eval before any training step then falls back to
        # the batch top-k instead of a meaningless threshold of 0
        self.register_buffer("threshold", torch.tensor(-1.0))

    def support(self, a: Tensor) -> tuple[Tensor, Tensor]:
        """(rows, cols) of the kept entries, row-major order; updates the threshold in
        training (the one statistic this mechanism keeps)."""
        if self.training or float(self.threshold) < 0:
            n_keep = min(a.numel(), self.k * a.shape[0])
            flat = a.detach().reshape(-1).topk(n_keep, sorted=False).indices.sort().values
            rows, cols = flat // a.shape[1], flat % a.shape[1]
            if self.training:
                self._update_threshold(a.detach()[rows, cols])
            return rows, cols
        return (a.detach() > self.threshold).nonzero(as_tuple=True)

    @torch.no_grad()
    def _update_threshold(self, kept: Tensor) -> None:
        positive = kept[kept > 0]
        if positive.numel() == 0:
            return
        low = positive.min().to(self.threshold.dtype)
        if float(self.threshold) < 0:
            self.threshold.copy_(low)
        else:
            self.threshold.lerp_(low, self.momentum)

    def activate(self, a: Tensor) -> Tensor:
        rows, cols = self.support(a)
        mask = torch.zeros_like(a, dtype=torch.bool)
        mask[rows, cols] = True
        return self.kept_values(a * mask)

    def kept_values(self, v: Tensor) -> Tensor:
        return torch.relu(v)

    def describe(self) -> str:
        return (
            f"BatchTopK: the k*B largest activations of each batch kept (k={self.k} on "
            f"average per sample); threshold {float(self.threshold):.4g} at inference"
        )
