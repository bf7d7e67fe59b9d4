"""Metrics as pure functions on tensors/arrays, shared by the trainer, reports and benchmarks.

"Active" means a code entry whose magnitude exceeds ``threshold`` (0 by default: exactly
non-zero). `SparsityStats` keeps two notions of inactivity apart on purpose (the question
behind Dobilas' "three times as many inactive neurons" comparison of an undercomplete and
a sparse AE): ``frac_inactive`` is per input (how many latents are silent for this input,
averaged), while ``dead_latents`` counts latents silent for *every* input of the set.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
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


def normalized_mse(x_hat: Tensor, x: Tensor) -> float:
    """MSE divided by the variance of x around its mean (Gao et al. 2024's normaliser):
    1.0 is what predicting the data mean gives, 0.0 is perfect."""
    err = ((x_hat - x) ** 2).sum()
    var = ((x - x.mean(dim=0, keepdim=True)) ** 2).sum()
    return float(err / var) if var > 0 else math.nan


def fraction_variance_explained(x_hat: Tensor, x: Tensor) -> float:
    return 1.0 - normalized_mse(x_hat, x)


def psnr(clean: Any, estimate: Any, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB, the mean over images of each image's PSNR (the
    denoising literature's convention, so one bad image cannot hide behind many good ones).

    The peak is ``data_range`` (1.0: pixels in [0, 1], as sparseae's image loaders give);
    pass 255 for 8-bit images. Each image's MSE is floored at 1e-12, so a perfect image
    counts as 120 dB (at range 1) instead of making the mean infinite. Arrays or tensors of
    shape (n_images, ...)."""
    a = np.asarray(clean, dtype=np.float64)
    b = np.asarray(estimate, dtype=np.float64)
    mse = ((a - b) ** 2).reshape(len(a), -1).mean(axis=1)
    return float(np.mean(10 * np.log10(data_range**2 / np.maximum(mse, 1e-12))))
