"""Sparsity mechanisms: how the code layer's activation becomes the sparse code, and what
that code costs in the loss.

Every mechanism is one small `Sparsity` subclass registered by name, so a new one (BatchTopK,
JumpReLU, ...) is a class and a decorator, and every backbone gets it for free.

Penalty scale convention (stated once, used everywhere): the reconstruction loss is a mean
over elements and samples, and `penalty(h)` is a per-batch quantity added to it unchanged:

- ``l1``: ``weight * mean_over_batch(sum_over_latents |h|)``. This is exactly Keras'
  ``ActivityRegularization(l1=weight)`` (Keras divides its per-batch sum by the batch size).
- ``kl``: ``weight * sum_over_latents KL(rho || mean_over_batch(h_j))`` as in Ng's notes.
  Keras 3 (and tf.keras 2) divide *every* activity regulariser by the batch size, even this
  one, which is already a batch statistic: a Keras recipe with weight ``w`` at batch size
  ``B`` is sparseae's ``kl`` with ``weight = w / B`` (document 003: 0.05 at batch 32 is
  ``weight=0.0015625``). Use :func:`keras_kl_weight` to convert.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from sparseae.errors import ConfigError

_REGISTRY: dict[str, type[Sparsity]] = {}


def register_sparsity(name: str) -> Callable[[type[Sparsity]], type[Sparsity]]:
    """Class decorator: make a mechanism available by name to models, configs and the CLI."""

    def wrap(cls: type[Sparsity]) -> type[Sparsity]:
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def sparsity_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def sparsity_class(name: str) -> type[Sparsity]:
    if name not in _REGISTRY:
        raise ConfigError(
            f"unknown sparsity {name!r}: choose one of {', '.join(sorted(_REGISTRY))}"
        )
    return _REGISTRY[name]


def make_sparsity(name: str, n_latents: int, **params: Any) -> Sparsity:
    """Build a mechanism from its name and parameters, with errors a user can act on."""
    if name not in _REGISTRY:
        raise ConfigError(
            f"unknown sparsity {name!r}: choose one of {', '.join(sorted(_REGISTRY))}"
        )
    cls = _REGISTRY[name]
    unknown = set(params) - set(cls.param_names)
    if unknown:
        allowed = ", ".join(cls.param_names) or "none"
        raise ConfigError(
            f"sparsity {name!r} takes no parameter {', '.join(sorted(unknown))} "
            f"(its parameters: {allowed})"
        )
    return cls(n_latents=n_latents, **params)


def keras_kl_weight(keras_weight: float, batch_size: int) -> float:
    """The sparseae ``kl`` weight equivalent to a Keras activity-regulariser weight."""
    return keras_weight / batch_size


def kl_to_target(q: Any, rho: float, log: Callable[[Any], Any] = torch.log) -> Any:
    """KL(rho || q_j) for each latent's (already clamped) mean activation q_j; ``log`` is
    torch.log for tensors or numpy.log for arrays (`sparseae.manual_step`'s CPU path)."""
    return rho * log(rho / q) + (1.0 - rho) * log((1.0 - rho) / (1.0 - q))


def _check_nonnegative(name: str, value: float) -> float:
    if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
        raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


class Sparsity(nn.Module):
    """Base class. Subclasses set ``param_names`` and implement `activate` (and `penalty`
    if they cost something). ``needs_unit_interval`` marks mechanisms whose code must lie in
    (0, 1), so the model can refuse a code activation that cannot deliver that."""

    name: ClassVar[str] = "base"
    param_names: ClassVar[tuple[str, ...]] = ()
    needs_unit_interval: ClassVar[bool] = False

    def __init__(self, n_latents: int) -> None:
        super().__init__()
        if n_latents < 1:
            raise ConfigError(f"n_latents must be >= 1, got {n_latents}")
        self.n_latents = int(n_latents)

    def activate(self, a: Tensor) -> Tensor:
        """Turn the code layer's activation into the code (identity unless overridden)."""
        return a

    def penalty(self, h: Tensor) -> Tensor:
        """The per-batch cost added to the reconstruction loss (see module docstring)."""
        return h.new_zeros(())

    def forward(self, a: Tensor) -> Tensor:
        return self.activate(a)

    def params(self) -> dict[str, Any]:
        """The constructor arguments, for saving to config.json."""
        return {name: getattr(self, name) for name in self.param_names}

    def describe(self) -> str:
        return self.name

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.params().items())


@register_sparsity("none")
class NoSparsity(Sparsity):
    """Plain (undercomplete) autoencoder: the bottleneck's size is the only constraint."""

    def describe(self) -> str:
        return "no sparsity constraint (the bottleneck size is the only constraint)"


@register_sparsity("l1")
class L1Sparsity(Sparsity):
    """L1 activity penalty on the code, Keras ActivityRegularization(l1=weight) semantics."""

    param_names = ("weight",)

    def __init__(self, n_latents: int, weight: float = 1e-3) -> None:
        super().__init__(n_latents)
        self.weight = _check_nonnegative("l1 weight", weight)

    def penalty(self, h: Tensor) -> Tensor:
        return self.weight * h.abs().sum(dim=-1).mean()

    def describe(self) -> str:
        return f"L1 activity penalty, weight {self.weight:g} x mean over samples of sum |h|"


@register_sparsity("kl")
class KLSparsity(Sparsity):
    """Ng's sparse autoencoder: KL(rho || batch-mean activation) summed over latents.

    The batch mean is clamped into [eps, 1 - eps] so no log of 0 or of a negative number can
    occur; the reference implementations produce NaN there."""

    param_names = ("rho", "weight")
    needs_unit_interval = True
    eps: ClassVar[float] = 1e-6

    def __init__(self, n_latents: int, rho: float = 0.05, weight: float = 0.1) -> None:
        super().__init__(n_latents)
        if not (isinstance(rho, int | float) and 0.0 < rho < 1.0):
            raise ConfigError(f"kl target rate rho must lie strictly inside (0, 1), got {rho!r}")
        self.rho = float(rho)
        self.weight = _check_nonnegative("kl weight", weight)

    def penalty(self, h: Tensor) -> Tensor:
        q = h.mean(dim=0).clamp(self.eps, 1.0 - self.eps)
        return self.weight * kl_to_target(q, self.rho).sum()

    def describe(self) -> str:
        return (
            f"KL divergence between target rate rho={self.rho:g} and each latent's mean "
            f"activation over the batch, summed over latents, weight {self.weight:g}"
        )


class _TopKFunction(torch.autograd.Function):
    """Keep the k largest entries per row; the backward pass only touches those k, which is
    what makes the k-sparse AE's gradient flow through the selected support alone."""

    @staticmethod
    def forward(ctx: Any, a: Tensor, k: int) -> Tensor:  # type: ignore[override]
        values, indices = a.topk(k, dim=-1, sorted=False)
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
    """k-sparse autoencoder (Makhzani & Frey 2013): keep the k largest code units.

    At inference the support is widened to ``alpha * k`` units as in the paper, which gives
    better features for classification. ``relu=True`` additionally clamps the kept values at
    0 (Gao et al. 2024), so an input that excites fewer than k units does not get negative
    codes."""

    param_names = ("k", "alpha", "relu")

    def __init__(self, n_latents: int, k: int = 32, alpha: float = 1.0, relu: bool = True) -> None:
        super().__init__(n_latents)
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= n_latents:
            raise ConfigError(
                f"topk needs 1 <= k <= n_latents ({n_latents}), got k={k!r}: "
                f"lower k or raise the number of latents"
            )
        if not (isinstance(alpha, int | float) and alpha >= 1.0):
            raise ConfigError(f"topk alpha (inference support alpha*k) must be >= 1, got {alpha!r}")
        self.k = int(k)
        self.alpha = float(alpha)
        self.relu = bool(relu)

    @property
    def inference_k(self) -> int:
        return min(self.n_latents, max(1, round(self.alpha * self.k)))

    def activate(self, a: Tensor) -> Tensor:
        k = self.k if self.training else self.inference_k
        h = topk_mask(a, k)
        return torch.relu(h) if self.relu else h

    def describe(self) -> str:
        extra = f", alpha*k = {self.inference_k} at inference" if self.alpha != 1 else ""
        return f"k-sparse code: the k={self.k} largest of {self.n_latents} latents kept{extra}"


# registers batchtopk and jumprelu
from sparseae.sparsities import modern as _sparsity_modern  # noqa: E402,F401
