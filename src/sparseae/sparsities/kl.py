"""``kl``: Ng's sparse autoencoder, ``weight * sum_j KL(rho || mean_over_batch(h_j))``.

The code must lie in (0, 1) (a sigmoid code activation). The batch mean is clamped into
[eps, 1 - eps], so no log of 0 or of a negative number can occur where reference
implementations produce NaN.

Keras 3 (and tf.keras 2) divide *every* activity regulariser by the batch size, even this one,
which is already a batch statistic: a Keras recipe with weight ``w`` at batch size ``B`` is
sparseae's ``kl`` with ``weight = w / B`` (0.05 at batch 32 is ``weight=0.0015625``); use
`keras_kl_weight` to convert.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from sparseae.errors import ConfigError
from sparseae.sparsities.base import Sparsity, check_nonnegative, register_sparsity


def keras_kl_weight(keras_weight: float, batch_size: int) -> float:
    """The sparseae ``kl`` weight equivalent to a Keras activity-regulariser weight."""
    return keras_weight / batch_size


def kl_to_target(q: Any, rho: float, log: Callable[[Any], Any] = torch.log) -> Any:
    """KL(rho || q_j) for each latent's (already clamped) mean activation q_j; ``log`` is
    torch.log for tensors or numpy.log for arrays."""
    return rho * log(rho / q) + (1.0 - rho) * log((1.0 - rho) / (1.0 - q))


@register_sparsity("kl")
class KLSparsity(Sparsity):
    param_names = ("rho", "weight")
    needs_unit_interval = True
    fused = True
    eps: ClassVar[float] = 1e-6

    def __init__(self, n_latents: int, rho: float = 0.05, weight: float = 0.1) -> None:
        super().__init__(n_latents)
        if isinstance(rho, bool) or not (isinstance(rho, int | float) and 0.0 < rho < 1.0):
            raise ConfigError(f"kl target rate rho must lie strictly inside (0, 1), got {rho!r}")
        self.rho = float(rho)
        self.weight = check_nonnegative("kl weight", weight)

    def penalty(self, a: Tensor, h: Tensor, atom_norms: Tensor | None = None) -> Tensor:
        q = h.mean(dim=0).clamp(self.eps, 1.0 - self.eps)
        return self.weight * kl_to_target(q, self.rho).sum()

    def fused_penalty(self, h: Tensor) -> tuple[Tensor, Tensor | None]:
        """Written with as few (tiny) ops as possible: on CPU in NumPy, whose per-call cost
        is about a fifth of torch's on a few hundred numbers."""
        batch = h.shape[0]
        if h.device.type == "cpu":
            q = torch.sum(h, 0).numpy() / batch
            penalty, dq = self._kl_and_gradient(q, np)
            return torch.from_numpy(np.asarray(penalty)), torch.from_numpy(dq / batch)
        penalty_t, dq_t = self._kl_and_gradient(torch.mean(h, 0), _TorchMath)
        return penalty_t, dq_t.div_(batch)

    def _kl_and_gradient(self, q: Any, xp: Any) -> tuple[Any, Any]:
        """The penalty and its derivative in q, with q clamped as in `penalty` (zero
        derivative where the clamp acts); ``xp`` is NumPy or `_TorchMath`."""
        rho, weight, eps = self.rho, self.weight, self.eps
        qc = xp.clip(q, eps, 1.0 - eps)
        grad = (weight * (1.0 - rho)) / (1.0 - qc) - (weight * rho) / qc
        return weight * xp.sum(kl_to_target(qc, rho, xp.log)), grad * xp.equal(qc, q)

    def describe(self) -> str:
        return (
            f"KL divergence between target rate rho={self.rho:g} and each latent's mean "
            f"activation over the batch, summed over latents, weight {self.weight:g}"
        )


class _TorchMath:
    """The four NumPy functions `KLSparsity._kl_and_gradient` uses, for tensors."""

    clip = staticmethod(torch.clamp)
    log = staticmethod(torch.log)
    sum = staticmethod(torch.sum)
    equal = staticmethod(torch.eq)
