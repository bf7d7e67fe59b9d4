"""Metrics as pure functions on tensors/arrays, shared by the trainer, reports and benchmarks.

"Active" means a code entry whose magnitude exceeds ``threshold`` (0 by default: exactly
non-zero). Two notions of inactivity are kept apart on purpose (document 000's question):
``frac_inactive`` is per input (how many latents are silent for this input, averaged), while
``dead_latents`` counts latents silent for *every* input of the set.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


class SparsityStats:
    """Streaming accumulator of code statistics over many batches (no full code matrix kept)."""

    def __init__(self, n_latents: int, threshold: float = 0.0, device: str | torch.device = "cpu"):
        self.threshold = threshold
        self.n = 0
        self.active_total = 0.0
        self.fire_counts = torch.zeros(n_latents, dtype=torch.float64, device=device)
        self.sum_h = torch.zeros(n_latents, dtype=torch.float64, device=device)

    def update(self, h: Tensor) -> None:
        h = h.detach()
        active = h.abs() > self.threshold
        counts = active.sum(dim=0, dtype=torch.float64)
        self.fire_counts += counts
        self.sum_h += h.sum(dim=0, dtype=torch.float64)
        self.active_total += float(counts.sum())
        self.n += h.shape[0]

    def result(self) -> dict[str, float]:
        n_latents = self.fire_counts.numel()
        if self.n == 0:
            return {}
        l0 = self.active_total / self.n
        freq = self.fire_counts / self.n
        return {
            "l0": l0,
            "frac_inactive": 1.0 - l0 / n_latents,
            "dead_latents": int((self.fire_counts == 0).sum()),
            "dense_latents": int((freq > 0.1).sum()),
            "mean_activation": float(self.sum_h.sum() / (self.n * n_latents)),
        }

    def firing_frequency(self) -> Tensor:
        return (self.fire_counts / max(self.n, 1)).float().cpu()


def l0(h: Tensor, threshold: float = 0.0) -> float:
    """Mean number of active latents per input."""
    return float((h.abs() > threshold).sum(dim=-1).float().mean())


def frac_inactive(h: Tensor, threshold: float = 0.0) -> float:
    """Mean fraction of latents that are inactive for an input."""
    return 1.0 - l0(h, threshold) / h.shape[-1]


def dead_latents(h: Tensor, threshold: float = 0.0) -> int:
    """Latents inactive for every input of h."""
    return int(((h.abs() > threshold).sum(dim=0) == 0).sum())


def mse(x_hat: Tensor, x: Tensor) -> float:
    return float(((x_hat - x) ** 2).mean())


def bce(x_hat: Tensor, x: Tensor, eps: float = 1e-7) -> float:
    """Binary cross-entropy of probabilities (clipped as Keras does), mean over elements."""
    p = x_hat.clamp(eps, 1 - eps)
    return float(-(x * p.log() + (1 - x) * (1 - p).log()).mean())


def normalized_mse(x_hat: Tensor, x: Tensor) -> float:
    """MSE divided by the variance of x around its mean (Gao et al. 2024's normaliser):
    1.0 is what predicting the data mean gives, 0.0 is perfect."""
    err = ((x_hat - x) ** 2).sum()
    var = ((x - x.mean(dim=0, keepdim=True)) ** 2).sum()
    return float(err / var) if var > 0 else math.nan


def fraction_variance_explained(x_hat: Tensor, x: Tensor) -> float:
    return 1.0 - normalized_mse(x_hat, x)


def psnr(x_hat: Tensor, x: Tensor, data_range: float = 1.0) -> float:
    m = float(((x_hat - x) ** 2).mean())
    return math.inf if m == 0 else 10.0 * math.log10(data_range**2 / m)
