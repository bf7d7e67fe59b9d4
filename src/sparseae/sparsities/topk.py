"""``topk``: the k-sparse autoencoder (Makhzani & Frey 2013): keep the k largest code units.

At inference the support is widened to ``alpha * k`` units as in the paper, which gives better
features for classification. ``relu=True`` also clamps the kept values at 0 (Gao et al. 2024),
so an input that excites fewer than k units gets no negative codes."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from sparseae.errors import ConfigError
from sparseae.sparsities.base import Sparsity, check_k, register_sparsity
from sparseae.sparsities.selection import topk_indices

_threshold_backward = torch.ops.aten.threshold_backward.default


class _TopKFunction(torch.autograd.Function):
    """Keep the k largest entries per row; the backward pass only touches those k, which is
    what makes the k-sparse AE's gradient flow through the selected support alone."""

    @staticmethod
    def forward(ctx: Any, a: Tensor, k: int) -> Tensor:  # type: ignore[override]
        indices = topk_indices(a.reshape(-1, a.shape[-1]), k).reshape(*a.shape[:-1], k)
        values = a.gather(-1, indices)
        ctx.save_for_backward(indices)
        ctx.shape = a.shape
        return torch.zeros_like(a).scatter_(-1, indices, values)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        (indices,) = ctx.saved_tensors
        out = torch.zeros(ctx.shape, dtype=grad.dtype, device=grad.device)
        return out.scatter_(-1, indices, grad.gather(-1, indices)), None


def topk_mask(a: Tensor, k: int) -> Tensor:
    """Zero all but the k largest entries of each row (gradient only through the kept ones)."""
    return _TopKFunction.apply(a, k)


@register_sparsity("topk")
class TopKSparsity(Sparsity):
    param_names = ("k", "alpha", "relu")
    sparse_support = True

    def __init__(self, n_latents: int, k: int = 32, alpha: float = 1.0, relu: bool = True) -> None:
        super().__init__(n_latents)
        self.k = check_k("topk", k, n_latents)
        if isinstance(alpha, bool) or not (
            isinstance(alpha, int | float) and 1.0 <= alpha < float("inf")
        ):
            raise ConfigError(f"topk alpha (inference support alpha*k) must be >= 1, got {alpha!r}")
        if not isinstance(relu, bool):
            raise ConfigError(f"topk relu must be true or false, got {relu!r}")
        self.alpha = float(alpha)
        self.relu = relu

    @property
    def fused(self) -> bool:  # type: ignore[override]
        return self.relu  # the hand-derived backward passes the gradient where h > 0

    @property
    def current_k(self) -> int:
        """k in training, alpha * k at inference."""
        if self.training:
            return self.k
        return min(self.n_latents, max(1, round(self.alpha * self.k)))

    @property
    def inference_k(self) -> int:
        return min(self.n_latents, max(1, round(self.alpha * self.k)))

    def activate(self, a: Tensor) -> Tensor:
        return self.kept_values(topk_mask(a, self.current_k))

    def support(self, a: Tensor) -> tuple[Tensor, Tensor]:
        k = self.current_k
        cols = topk_indices(a, k).reshape(-1)
        rows = torch.arange(a.shape[0], device=a.device).repeat_interleave(k)
        return rows, cols

    def kept_values(self, v: Tensor) -> Tensor:
        return torch.relu(v) if self.relu else v

    def fused_backward(self, grad_h: Tensor, h: Tensor) -> Tensor:
        return _threshold_backward(grad_h, h, 0)

    def describe(self) -> str:
        extra = f", alpha*k = {self.inference_k} at inference" if self.alpha != 1 else ""
        relu = "" if self.relu else " (kept values may be negative)"
        return (
            f"k-sparse code: the k={self.k} largest of {self.n_latents} latents kept{extra}{relu}"
        )
