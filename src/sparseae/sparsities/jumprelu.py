"""``jumprelu`` (Rajamanoharan et al. 2024): ``h = a * H(a - theta)`` with a learned per-latent
threshold theta (stored as its log, so it stays positive), on ``a = relu(activation)``.

The penalty is ``weight * mean_over_batch(sum_j H(a_j - theta_j))`` (an L0 penalty). Its
gradient, and that of h with respect to theta, come from the rectangle-kernel straight-through
estimator of width ``bandwidth``: the Heaviside step has zero derivative almost everywhere, so
without the estimator theta would never learn. The estimator must see the values just below
theta, which the code h has zeroed; the contract hands ``penalty`` the activation ``a`` too,
so nothing is remembered between calls."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from sparseae.sparsities.base import Sparsity, check_nonnegative, check_positive, register_sparsity


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
    param_names = ("weight", "bandwidth", "threshold_init")

    def __init__(
        self,
        n_latents: int,
        weight: float = 1e-3,
        bandwidth: float = 1e-3,
        threshold_init: float = 1e-3,
    ) -> None:
        super().__init__(n_latents)
        self.weight = check_nonnegative("jumprelu weight", weight)
        self.bandwidth = check_positive("jumprelu bandwidth", bandwidth)
        self.threshold_init = check_positive("jumprelu threshold_init", threshold_init)
        self.log_threshold = torch.nn.Parameter(
            torch.full((n_latents,), math.log(self.threshold_init))
        )

    @property
    def theta(self) -> Tensor:
        return self.log_threshold.exp()

    def activate(self, a: Tensor) -> Tensor:
        # relu first: a latent with negative activation never fires, whatever theta
        return _JumpReLUFunction.apply(torch.relu(a), self.theta, self.bandwidth)

    def penalty(self, a: Tensor, h: Tensor, atom_norms: Tensor | None = None) -> Tensor:
        if self.weight == 0:
            return h.new_zeros(())
        step = _StepFunction.apply(torch.relu(a), self.theta, self.bandwidth)
        return self.weight * step.sum(-1).mean()

    def describe(self) -> str:
        return (
            f"JumpReLU: per-latent learned threshold (init {self.threshold_init:g}), L0 penalty "
            f"weight {self.weight:g}, STE bandwidth {self.bandwidth:g}"
        )
