"""Sparsities of modern dictionary learning on model activations: BatchTopK and JumpReLU.

- ``batchtopk`` (Bussmann et al. 2024): in training keep the k*B largest activations of the
  whole (B, n) batch, so busy inputs may use more latents than quiet ones while the batch
  average stays k. A running threshold (EMA of the smallest kept positive activation) is a
  buffer, so it is saved with the weights, and replaces the batch top-k at inference:
  ``h = a * (a > threshold)``, which makes a sample's code independent of its batch.
- ``jumprelu`` (Rajamanoharan et al. 2024): ``h = a * H(a - theta)`` with a learned
  per-latent threshold theta (stored as its log, so it stays positive). The penalty is
  ``weight * mean_over_batch(sum_j H(a_j - theta_j))`` (an L0 penalty); its gradient and the
  gradient of h with respect to theta come from the rectangle-kernel straight-through
  estimator with bandwidth ``bandwidth`` (the Heaviside step has zero derivative almost
  everywhere, so without the estimator theta would never learn).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from sparseae.errors import ConfigError
from sparseae.sparsities.base import Sparsity, _check_nonnegative, register_sparsity


def _check_k(name: str, k: Any, n_latents: int) -> int:
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= n_latents:
        raise ConfigError(
            f"{name} needs 1 <= k <= n_latents ({n_latents}), got k={k!r}: "
            "lower k or raise the number of latents"
        )
    return int(k)


@register_sparsity("batchtopk")
class BatchTopKSparsity(Sparsity):
    """Top k*B over the whole batch in training; a learned fixed threshold at inference."""

    param_names = ("k", "momentum")

    def __init__(self, n_latents: int, k: int = 32, momentum: float = 0.01) -> None:
        super().__init__(n_latents)
        self.k = _check_k("batchtopk", k, n_latents)
        if not (isinstance(momentum, int | float) and 0.0 < momentum <= 1.0):
            raise ConfigError(f"batchtopk momentum must lie in (0, 1], got {momentum!r}")
        self.momentum = float(momentum)
        # -1 marks "not yet estimated": eval before any training step then falls back to
        # the batch top-k instead of a meaningless threshold of 0
        self.register_buffer("threshold", torch.tensor(-1.0))

    def support(self, a: Tensor) -> tuple[Tensor, Tensor]:
        """(rows, cols) of the kept entries, row-major order; updates the threshold."""
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
        return torch.relu(a * mask)

    def describe(self) -> str:
        return (
            f"BatchTopK: the k*B largest activations of each batch kept (k={self.k} on "
            f"average per sample); threshold {float(self.threshold):.4g} at inference"
        )


class _JumpReLUFunction(torch.autograd.Function):
    """h = a * H(a - theta); d h / d theta by the rectangle-kernel STE."""

    @staticmethod
    def forward(ctx: Any, a: Tensor, theta: Tensor, eps: float) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(a, theta)
        ctx.eps = eps
        return a * (a > theta)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor, None]:  # type: ignore[override]
        a, theta = ctx.saved_tensors
        eps = ctx.eps
        grad_a = grad * (a > theta)
        kernel = ((a - theta).abs() < eps / 2).to(grad.dtype) / eps
        grad_theta = -theta * kernel * grad
        return grad_a, grad_theta.sum(dim=0), None


class _StepFunction(torch.autograd.Function):
    """H(a - theta); gradient reaches theta only (rectangle-kernel STE), as in the paper."""

    @staticmethod
    def forward(ctx: Any, a: Tensor, theta: Tensor, eps: float) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(a, theta)
        ctx.eps = eps
        return (a > theta).to(a.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[None, Tensor, None]:  # type: ignore[override]
        a, theta = ctx.saved_tensors
        eps = ctx.eps
        kernel = ((a - theta).abs() < eps / 2).to(grad.dtype) / eps
        return None, (-kernel * grad).sum(dim=0), None


@register_sparsity("jumprelu")
class JumpReLUSparsity(Sparsity):
    """JumpReLU with a learned per-latent threshold and an STE-trained L0 penalty."""

    param_names = ("weight", "bandwidth", "threshold_init")

    def __init__(
        self,
        n_latents: int,
        weight: float = 1e-3,
        bandwidth: float = 1e-3,
        threshold_init: float = 1e-3,
    ) -> None:
        super().__init__(n_latents)
        self.weight = _check_nonnegative("jumprelu weight", weight)
        if not (isinstance(bandwidth, int | float) and bandwidth > 0):
            raise ConfigError(f"jumprelu bandwidth must be > 0, got {bandwidth!r}")
        if not (isinstance(threshold_init, int | float) and threshold_init > 0):
            raise ConfigError(f"jumprelu threshold_init must be > 0, got {threshold_init!r}")
        self.bandwidth = float(bandwidth)
        self.threshold_init = float(threshold_init)
        self.log_threshold = torch.nn.Parameter(
            torch.full((n_latents,), math.log(self.threshold_init))
        )

    @property
    def theta(self) -> Tensor:
        return self.log_threshold.exp()

    def activate(self, a: Tensor) -> Tensor:
        # the code is relu'd first: a latent with negative pre-activation never fires.
        # The pre-activation is kept for `penalty`: the STE window must see the values just
        # below theta, which the code h itself has already zeroed.
        a = torch.relu(a)
        self._last_a = a
        return _JumpReLUFunction.apply(a, self.theta, self.bandwidth)

    def penalty(self, h: Tensor) -> Tensor:
        if self.weight == 0:
            return h.new_zeros(())
        a = getattr(self, "_last_a", None)
        if a is None or a.shape != h.shape:
            a = h  # a code handed in from elsewhere: same forward value, narrower STE window
        self._last_a = None
        return self.weight * _StepFunction.apply(a, self.theta, self.bandwidth).sum(-1).mean()

    def describe(self) -> str:
        return (
            f"JumpReLU: per-latent learned threshold (init {self.threshold_init:g}), L0 penalty "
            f"weight {self.weight:g}, STE bandwidth {self.bandwidth:g}"
        )
